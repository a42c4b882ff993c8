"""The ensemble as one plain Keras model: the mean of its members' class probabilities.

    ensemble, members = build_ensemble(["runs/massey-resnet18-96", "runs/massey-mobilenetv3-64"])

Its input is the largest member's size; a smaller member sees the image resized inside the model
(bilinear, antialiased, as training resizes), written with Permute and frozen Dense layers so that
plain Keras, TFLite and ONNX all run it. `model.keras` of an ensemble loads with
`keras.saving.load_model` in a process that never imported keras-sign.
"""

from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder
from keras_sign.runs.record import RunInfo, model_sha256, read_classes, reads_landmarks


def _members(run_paths):
    """`(RunFolder, RunInfo, classes)` of each run, checked to agree on classes and preprocessing."""
    if len(run_paths) < 2:
        raise KerasSignError("An ensemble needs two run folders or more; pass them all to `keras-sign ensemble`.")
    members, seen = [], {}
    for path in run_paths:
        run = RunFolder.open(path)
        info = RunInfo.read(run.path)
        if info.is_ensemble:
            raise KerasSignError(f"{path} is an ensemble; pass its members' run folders (its run.json lists them).")
        if reads_landmarks(info.hands):
            raise KerasSignError(f"{path} is a landmark model; ensembles are of image models (landmark members are "
                                 "not supported yet).")
        for key in (run.path.resolve(), model_sha256(run.path)):  # the same folder twice, or a copy of one
            if key in seen:
                raise KerasSignError(f"{path} and {seen[key]} are the same model ({'folder' if isinstance(key, Path) else 'weights'}); "
                                     "an ensemble of a model with itself is that model: pass different runs.")
            seen[key] = path
        members.append((run, info, read_classes(run.path)))
    first, first_info, first_classes = members[0]
    for run, info, classes in members[1:]:
        if classes != first_classes:
            raise KerasSignError(f"{run.path} has other classes than {first.path} ({len(classes)} against "
                                 f"{len(first_classes)}, or in another order); ensemble runs of one class list.")
        if info.center_crop != first_info.center_crop:
            raise KerasSignError(f"{run.path} and {first.path} differ in --center-crop; ensemble runs that "
                                 "resize their photos the same way.")
        if info.hands != first_info.hands:
            raise KerasSignError(f"{run.path} and {first.path} see photos through other hand stages (--hands, "
                                 "--hand-models, --hand-margin, --mirror-left); ensemble runs that crop them alike.")
    return members


def resize_matrix(size_in, size_out):
    """`(size_in, size_out)` weights of Keras' antialiased bilinear resize along one axis (it is separable):
    column j holds the input rows that output row j mixes. Read off the Resizing layer itself, by resizing
    images that are one row of ones each."""
    import keras
    import numpy as np

    rows = np.zeros((size_in, size_in, size_in, 1), np.float32)
    rows[np.arange(size_in), np.arange(size_in)] = 1.0
    resized = keras.layers.Resizing(size_out, size_out, interpolation="bilinear", antialias=True)(rows)
    return keras.ops.convert_to_numpy(resized)[:, :, 0, 0]


def resized(image, size_out, name):
    """`image` resized to `size_out` as Keras' antialiased bilinear Resizing does, made of Permute and frozen
    Dense layers: TFLite has no builtin kernel for the antialiased resize (TensorFlow's ScaleAndTranslate), and
    plain Keras and LiteRT both run these."""
    import keras

    matrix = resize_matrix(image.shape[1], size_out)
    x = keras.layers.Permute((2, 3, 1), name=f"{name}_rows_last")(image)  # (width, channels, height)
    rows = keras.layers.Dense(size_out, use_bias=False, trainable=False, name=f"{name}_rows")
    x = keras.layers.Permute((3, 2, 1), name=f"{name}_columns_last")(rows(x))  # (height', channels, width)
    columns = keras.layers.Dense(size_out, use_bias=False, trainable=False, name=f"{name}_columns")
    x = keras.layers.Permute((1, 3, 2), name=f"{name}_channels_last")(columns(x))  # (height', width', channels)
    rows.set_weights([matrix])
    columns.set_weights([matrix])
    return x


def build_ensemble(run_paths):
    """The ensemble `keras.Model` of run folders, and the members' `(RunFolder, run.json, classes)`."""
    import keras

    members = _members(run_paths)
    size = max(info.image_size for _, info, _ in members)
    image = keras.Input((size, size, 3), name="image")
    outputs = []
    for index, (run, info, _) in enumerate(members):
        model = load_model(run.path)
        model.name = f"member_{index}_{model.name}"  # two runs of one architecture would share a layer name
        member_size = info.image_size
        outputs.append(model(image if member_size == size else resized(image, member_size, f"resize_{index}")))
    mean = keras.layers.Average(name="mean_probabilities")(outputs)
    return keras.Model(image, mean, name="ensemble"), members
