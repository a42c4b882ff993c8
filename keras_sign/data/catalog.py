"""Named datasets: where each one comes from, its on-disk layout, where it lives here.

`digits` ships inside the package; the others are fetched from Kaggle once with
`keras-sign data download NAME` into the cache folder
(`$KERAS_SIGN_DATA`, else `~/.keras/datasets/keras_sign`).
"""

import dataclasses
import os
import string
from pathlib import Path

from keras_sign.errors import KerasSignError

SAMPLE_DIR = Path(__file__).parent / "sample"
CACHE_ENV = "KERAS_SIGN_DATA"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How a named dataset looks on disk and where it is published."""

    name: str
    description: str
    classes: tuple  # every class folder the published dataset has
    grouped: bool = False  # SET/GROUP/CLASS/image (the group is the signer)
    default_classes: tuple | None = None  # the subset used when --classes is not given
    file_pattern: str = "*"  # which files in a class folder are images of this dataset
    kaggle_handle: str | None = None
    embedded_dir: Path | None = None

    @property
    def url(self):
        return f"https://www.kaggle.com/datasets/{self.kaggle_handle}" if self.kaggle_handle else None


_LETTERS = tuple(string.ascii_uppercase)

CATALOG = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="digits",
            description="Embedded sample: 400 photos of ASL digits 0-9 (Sign Language Digits Dataset, Apache-2.0).",
            classes=tuple(str(d) for d in range(10)),
            embedded_dir=SAMPLE_DIR / "digits",
        ),
        DatasetSpec(
            name="numbers",
            description="Kaggle 'Sign Language for Numbers': digits 0-9 plus 'unknown'.",
            classes=tuple(str(d) for d in range(10)) + ("unknown",),
            kaggle_handle="muhammadkhalid/sign-language-for-numbers",
        ),
        DatasetSpec(
            name="alphabet",
            description="Kaggle 'ASL Alphabet': A-Z, del, nothing, space (default: the study's del/nothing/space).",
            classes=_LETTERS + ("del", "nothing", "space"),
            default_classes=("del", "nothing", "space"),
            kaggle_handle="grassknotted/asl-alphabet",
        ),
        DatasetSpec(
            name="fingerspelling",
            description="Kaggle 'ASL RGB-D fingerspelling, Spelling it out': 24 letters, 5 signers (colour images).",
            classes=tuple(c for c in string.ascii_lowercase if c not in "jz"),
            grouped=True,
            file_pattern="color_*",
            kaggle_handle="mrgeislinger/asl-rgb-depth-fingerspelling-spelling-it-out",
        ),
    ]
}


def cache_root(cache_dir=None):
    """The folder that holds downloaded datasets: flag, then environment, then the Keras cache."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path("~/.keras/datasets/keras_sign").expanduser()


def get_spec(name):
    if name not in CATALOG:
        raise KerasSignError(
            f"Unknown dataset '{name}'; choose one of {', '.join(CATALOG)} or pass --data-dir PATH for your own folder."
        )
    return CATALOG[name]


def find_class_root(top, spec, max_depth=4):
    """The folder under `top` whose sub-folders are the dataset's classes (or its groups).

    Downloads wrap the data in one or more folders (`asl_alphabet_train/asl_alphabet_train/`,
    `dataset5/`); searching for the class folders, shallowest first, copes with any wrapping.
    """
    wanted = {c.lower() for c in spec.classes}

    def holds_classes(folder):
        subfolders = [p for p in folder.iterdir() if p.is_dir()]
        known = [p for p in subfolders if p.name.lower() in wanted]
        # Mostly class folders (a subset of the classes is fine, a stray extra folder too) that hold
        # files: signer folders A-E of fingerspelling also look like letters but hold folders.
        return (
            len(known) >= max(2, 0.8 * len(subfolders))
            and any(f.is_file() for p in known for f in p.iterdir())
        )

    level = [Path(top)]
    for _ in range(max_depth + 1):
        for folder in level:
            subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
            if not spec.grouped and holds_classes(folder):
                return folder
            if spec.grouped and subfolders and any(holds_classes(sub) for sub in subfolders):
                return folder
        level = [sub for folder in level for sub in sorted(folder.iterdir()) if sub.is_dir()]
    return None


def dataset_location(name, cache_dir=None):
    """The folder to scan for a named dataset, or a one-line error saying how to get it."""
    spec = get_spec(name)
    if spec.embedded_dir is not None:
        return spec.embedded_dir
    top = cache_root(cache_dir) / name
    root = find_class_root(top, spec) if top.is_dir() else None
    if root is None:
        raise KerasSignError(
            f"Dataset '{name}' is not in {top}; run `keras-sign data download {name}` "
            f"(needs `pip install kagglehub` and Kaggle credentials), or download {spec.url} yourself "
            f"and run `keras-sign data download {name} --archive FILE.zip`, or pass --data-dir PATH."
        )
    return root


def resolve_classes(spec, requested):
    """The class names to use: the dataset default, `all`, or a comma-separated list."""
    if requested is None:
        return list(spec.default_classes) if spec and spec.default_classes else None
    if requested == "all":
        return None
    chosen = [c.strip() for c in requested.split(",") if c.strip()]
    if spec is not None:
        unknown = [c for c in chosen if c not in spec.classes]
        if unknown:
            raise KerasSignError(
                f"Class(es) {', '.join(unknown)} are not in dataset '{spec.name}'; "
                f"choose from {', '.join(spec.classes)} or use --classes all."
            )
    return chosen


def scan_dataset(dataset="digits", data_dir=None, classes=None, cache_dir=None):
    """Scan a named dataset, or any folder when `data_dir` is given, into a `FileTable`."""
    from keras_sign.data.scan import scan_folder

    if data_dir:
        return scan_folder(data_dir, classes=resolve_classes(None, classes))
    spec = get_spec(dataset)
    root = dataset_location(dataset, cache_dir)
    return scan_folder(root, spec.grouped, spec.file_pattern, resolve_classes(spec, classes))
