"""Which of another dataset's class folders are which of a model's classes (cross-dataset evaluation).

By default a folder matches the model's class of the same name, else the one whose name matches
case-insensitively (Massey's `a` is ASL Alphabet's `A`). A YAML mapping, `--class-map MAP.yaml`,
says the rest: `{folder name: model class}`, with `null` to leave a folder out, e.g.

    space: space
    blank: nothing
    "0": O          # a fist-shaped zero read as the letter
    junk: null

Folders that match nothing are listed and left out, not an error: two datasets rarely share every class.
"""

from keras_sign.config import read_yaml_mapping
from keras_sign.errors import KerasSignError


def read_class_map(path):
    """The `{folder: model class or None}` mapping of a YAML file."""
    mapping = read_yaml_mapping(path, "Class map", "--class-map", "folder names to the model's class names")
    return {str(folder): None if target is None else str(target) for folder, target in mapping.items()}


def map_classes(folder_names, model_classes, explicit=None):
    """`({folder: model class}, [left-out folders])` for the folders of another dataset."""
    explicit = explicit or {}
    wrong = sorted(f"{folder} -> {target}" for folder, target in explicit.items()
                   if target is not None and target not in model_classes)
    if wrong:
        raise KerasSignError(f"The class map names classes the model does not have ({', '.join(wrong)}); "
                             f"its classes are {', '.join(model_classes)}.")
    by_folded = {}
    for name in model_classes:
        by_folded.setdefault(name.casefold(), []).append(name)
    mapped, left_out = {}, []
    for folder in folder_names:
        if folder in explicit:
            target = explicit[folder]
        elif folder in model_classes:
            target = folder
        else:
            candidates = by_folded.get(folder.casefold(), [])
            target = candidates[0] if len(candidates) == 1 else None
        if target is None:
            left_out.append(folder)
        else:
            mapped[folder] = target
    if not mapped:
        raise KerasSignError(f"None of the class folders ({', '.join(folder_names)}) is a class of the model "
                             f"({', '.join(model_classes)}), even ignoring case; pass --class-map MAP.yaml.")
    return mapped, left_out
