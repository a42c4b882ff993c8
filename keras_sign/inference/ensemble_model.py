"""The ensemble as one plain Keras model: the mean of its members' class probabilities.

    ensemble, members = build_ensemble(["runs/massey-resnet18-96", "runs/massey-mobilenetv3-64"])

Its input is the largest member's size; a smaller member sees the image resized inside the model
(bilinear, antialiased, as training resizes), written with Permute and frozen Dense layers so that
plain Keras, TFLite and ONNX all run it. `model.keras` of an ensemble loads with
`keras.saving.load_model` in a process that never imported keras-sign. Members that read a hand's landmarks (a
landmark or a fusion model) give the ensemble a second input, the landmark features, as a fusion model has.
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
        if _finding(info.hands) != _finding(first_info.hands):
            raise KerasSignError(f"{run.path} and {first.path} find the hand differently (--hands none against a hand "
                                 "stage, or other --hand-models, --hand-margin, --mirror-left); ensemble runs that find "
                                 "and crop it alike.")
    return members


def _finding(hands):
    """How a run's hand stage finds and crops the hand, whatever its model reads of it (the square, the landmarks or
    both): CNN, landmark and fusion members of an ensemble share one stage."""
    if not hands:
        return None
    return {key: value for key, value in hands.items() if key not in ("stage", "features", "what")}


def ensemble_hands(infos):
    """The hand stage of an ensemble of runs (`RunInfo`s that share `_finding`): "fusion" where some members read
    the hand's square and some its landmarks, else the members' own; None without a stage."""
    from keras_sign.runs.record import hand_stage_settings, reads_pixels

    hands = infos[0].hands
    if not hands:
        return None
    pixels = any(reads_pixels(info.hands) for info in infos)
    features = next((info.hands["features"] for info in infos if reads_landmarks(info.hands)), None)
    stage = "fusion" if pixels and features else "landmarks" if features else "crop"
    description = {key: value for key, value in hands.items()
                   if key not in ("stage", "margin", "mirror_left", "retry_border", "features", "what")}
    return hand_stage_settings(hands["models"], hands["margin"], hands["mirror_left"], hands["retry_border"],
                               description, stage, features)


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


def ensemble_inputs(member_models):
    """The ensemble's Keras inputs, one per kind its members read: the image at the largest member's size, the
    landmark features; and a function giving each member (a model) the inputs it reads, a smaller member's image
    resized inside the model."""
    import keras

    wanted = [tensor for model in member_models for tensor in model.inputs]
    sizes = [tensor.shape[1] for tensor in wanted if tensor.name == "image"]
    inputs = {"image": keras.Input((max(sizes), max(sizes), 3), name="image")} if sizes else {}
    features = [tensor for tensor in wanted if tensor.name == "landmarks"]
    if features:
        inputs["landmarks"] = keras.Input(features[0].shape[1:], name="landmarks")

    def inputs_of(model, index):
        given = [inputs["landmarks"] if tensor.name == "landmarks" else inputs["image"]
                 if tensor.shape[1] == inputs["image"].shape[1] else resized(inputs["image"], tensor.shape[1],
                                                                             f"resize_{index}")
                 for tensor in model.inputs]
        return given if len(given) > 1 else given[0]

    return list(inputs.values()), inputs_of


def build_ensemble(run_paths):
    """The ensemble `keras.Model` of run folders, and the members' `(RunFolder, run.json, classes)`. Its inputs are
    those its members read (`ensemble_inputs`): CNNs, landmark and fusion models mix."""
    import keras

    members = _members(run_paths)
    models = [load_model(run.path) for run, _, _ in members]
    inputs, inputs_of = ensemble_inputs(models)
    outputs = []
    for index, model in enumerate(models):
        model.name = f"member_{index}_{model.name}"  # two runs of one architecture would share a layer name
        outputs.append(model(inputs_of(model, index)))
    mean = keras.layers.Average(name="mean_probabilities")(outputs)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], mean, name="ensemble"), members
