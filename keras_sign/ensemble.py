"""`keras-sign ensemble RUN RUN [...] --out DIR`: one model that averages the class probabilities of runs.

    keras-sign ensemble runs/massey-resnet18-96 runs/massey-mobilenetv3-64 --out ensembles/massey
    keras-sign predict ensembles/massey photo.jpg
    keras-sign transcribe ensembles/massey clip.mp4

Models of other architectures and input sizes err on other photos, so their mean errs less: on
leave-one-signer-out Massey four models together beat the best of them (README, "How well does it
generalise?"). The ensemble is one plain Keras model (`model.keras`, loadable by `keras.saving.load_model`
without keras-sign): its input is the largest member's size, and a smaller member sees the image resized
inside the model (bilinear, antialiased, as training resizes). Beside it, `model.json` and `labels.txt`
say what inference needs (classes, input size) and which runs it holds, so `predict`, `transcribe` and
`demo` take the folder as they take an export bundle.

The members' calibrations do not carry over to their mean. When every member was trained on the same
split of the same photos (the same data, split and seed: the folds of `crossval` runs of one data
folder), the ensemble is calibrated on that validation split, which none of them trained on, and
`model.json` holds its temperature and reject threshold; otherwise it has none, and says so.
"""

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from keras_sign import __version__
from keras_sign.errors import KerasSignError
from keras_sign.export import preprocessing_record
from keras_sign.runs import RunFolder, atomic_write_json, atomic_write_text, check_writable

log = logging.getLogger("keras_sign")


def _members(run_paths):
    """`(RunFolder, run.json, classes)` of each run, checked to agree on classes and preprocessing."""
    if len(run_paths) < 2:
        raise KerasSignError("An ensemble needs two run folders or more; pass them all to `keras-sign ensemble`.")
    members = []
    for path in run_paths:
        run = RunFolder.open(path)
        members.append((run, run.read_json("run.json"), run.read_json("classes.json")))
    first, first_info, first_classes = members[0]
    for run, info, classes in members[1:]:
        if classes != first_classes:
            raise KerasSignError(f"{run.path} has other classes than {first.path} ({len(classes)} against "
                                 f"{len(first_classes)}, or in another order); ensemble runs of one class list.")
        if bool(info.get("center_crop", False)) != bool(first_info.get("center_crop", False)):
            raise KerasSignError(f"{run.path} and {first.path} differ in --center-crop; ensemble runs that "
                                 "resize their photos the same way.")
    return members


def build_ensemble(run_paths):
    """The ensemble `keras.Model` of run folders, and the members' `(RunFolder, run.json, classes)`."""
    import keras

    members = _members(run_paths)
    size = max(info["image_size"] for _, info, _ in members)
    image = keras.Input((size, size, 3), name="image")
    outputs = []
    for index, (run, info, _) in enumerate(members):
        model = run.load_model()
        model.name = f"member_{index}_{model.name}"  # two runs of one architecture would share a layer name
        member_size = info["image_size"]
        x = image if member_size == size else keras.layers.Resizing(
            member_size, member_size, interpolation="bilinear", antialias=True, name=f"resize_{index}")(image)
        outputs.append(model(x))
    mean = keras.layers.Average(name="mean_probabilities")(outputs)
    return keras.Model(image, mean, name="ensemble"), members


def calibrate_ensemble(ensemble, members):
    """The calibration.json dict of the ensemble on its members' shared validation split, or None (logged)."""
    from keras_sign.calibration import MIN_CALIBRATION_IMAGES, fit, note_shared_signers
    from keras_sign.data.pipeline import make_dataset
    from keras_sign.evaluation import predict

    splits = [(info["data_root"], [(row["path"], row["split"]) for row in run.read_split()]) for run, info, _ in members]
    if any(split != splits[0] for split in splits[1:]):
        log.warning("The members were trained on different splits (data, split or seed), so a validation photo of "
                    "one may be a training photo of another: the ensemble is not calibrated, and its answers are "
                    "never marked unsure.")
        return None
    run, info, class_names = members[0]
    files = run.split_files("val")
    if len(files.paths) < MIN_CALIBRATION_IMAGES:
        log.warning("The members' validation split has %d images, fewer than the %d calibration needs: the "
                    "ensemble is not calibrated.", len(files.paths), MIN_CALIBRATION_IMAGES)
        return None
    dataset = make_dataset(files.paths, files.labels, len(class_names), ensemble.input_shape[1], 64,
                           bool(info.get("center_crop", False)), files.orientations)
    labels, (probabilities,) = predict(ensemble, dataset)
    calibration = note_shared_signers(fit(probabilities, labels), run, info)
    log.info("Calibrated on the members' %d validation images: temperature %.3f; answers below %.3f confidence are "
             "unsure", calibration["images"], calibration["temperature"], calibration["reject"]["threshold"])
    return calibration


def write_ensemble(run_paths, out):
    """Build the ensemble of `run_paths` into the new folder `out`; return its `model.json` record.

    The folder is written under a temporary name and renamed into place, so an interrupted build never
    leaves a folder that looks usable.
    """
    out = Path(out)
    if out.exists():
        raise KerasSignError(f"{out} already exists; choose a new --out folder.")
    check_writable(out)
    ensemble, members = build_ensemble(run_paths)
    _, first_info, class_names = members[0]
    size = ensemble.input_shape[1]
    center_crop = bool(first_info.get("center_crop", False))
    calibration = calibrate_ensemble(ensemble, members)
    record = {
        "format": "keras",
        "file": "model.keras",
        "classes": class_names,
        "labels_file": "labels.txt",
        "input": {"layout": "NHWC", "channels": "RGB", "pixel_range": [0, 255], "shape": [size, size, 3]},
        "output": {"meaning": "the mean of the members' softmax class probabilities, in labels.txt order"},
        # as an export's: apps compute softmax(log(p) / temperature) and call an answer below the threshold unsure
        **({"calibration": calibration} if calibration else {}),
        "preprocessing": preprocessing_record(size, center_crop),
        "members": [{"run": str(run.path.resolve()), "arch": info["arch"], "image_size": info["image_size"],
                     "model_keras_sha256": hashlib.sha256(run.file("model.keras").read_bytes()).hexdigest()}
                    for run, info, _ in members],
        "keras_sign": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        staging.mkdir()
        ensemble.save(staging / "model.keras")
        atomic_write_text(staging / "labels.txt", "".join(f"{name}\n" for name in class_names))
        atomic_write_json(staging / "model.json", record)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return record
