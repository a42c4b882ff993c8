"""`keras-sign ensemble RUN RUN [...] --out DIR`: one model that averages the class probabilities of runs.

    keras-sign ensemble runs/massey-resnet18-96 runs/massey-mobilenetv3-64 --out ensembles/massey
    keras-sign predict ensembles/massey photo.jpg
    keras-sign transcribe ensembles/massey clip.mp4
    keras-sign ensemble crossval/massey-resnet18 crossval/massey-mobilenetv3 --out ensembles/massey-crossval

Models of other architectures and input sizes err on other photos, so their mean errs less: on
leave-one-signer-out Massey four models together beat the best of them (README, "How well does it
generalise?"). The ensemble is one plain Keras model (`model.keras`, loadable by `keras.saving.load_model`
without keras-sign): its input is the largest member's size, and a smaller member sees the image resized
inside the model (bilinear, antialiased, as training resizes). Beside it, `model.json` and `labels.txt`
say what inference needs (classes, input size) and which runs it holds, so `predict`, `transcribe` and
`demo` take the folder as they take an export bundle.

The folder is a run folder too (`arch: ensemble` in its `run.json`), so `evaluate`, `calibrate`, `export`
and `compare` take it as they take a run. Its `split.csv` keeps each photo that all members put in the
same split: `evaluate` scores the test photos, `export` verifies on them, and the ensemble is calibrated
on the validation photos, which none of the members trained on (their calibrations do not carry over to
their mean). Members trained on one split (the same data, split and seed: the folds of `crossval` runs of
one data folder) share all of it; members of other seeds share the held-out signer's test photos but
hardly any validation photos, so their ensemble is not calibrated.

Given `crossval` folders, `keras-sign ensemble` builds one ensemble per fold and scores it on the fold's
held-out signer: the leave-one-signer-out figure of the ensemble, in crossval's own report.
"""

import contextlib
import glob
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from keras_sign import __version__
from keras_sign.errors import KerasSignError
from keras_sign.export import preprocessing_record
from keras_sign.runs import (FolderLock, RunFolder, atomic_write_csv, atomic_write_json, atomic_write_text,
                             check_writable)

log = logging.getLogger("keras_sign")


def _members(run_paths):
    """`(RunFolder, run.json, classes)` of each run, checked to agree on classes and preprocessing."""
    if len(run_paths) < 2:
        raise KerasSignError("An ensemble needs two run folders or more; pass them all to `keras-sign ensemble`.")
    members, seen = [], {}
    for path in run_paths:
        run = RunFolder.open(path)
        info = run.read_json("run.json")
        if info["arch"] == "ensemble":
            raise KerasSignError(f"{path} is an ensemble; pass its members' run folders (its run.json lists them).")
        for key in (run.path.resolve(), model_sha256(run)):  # the same folder twice, or a copy of one
            if key in seen:
                raise KerasSignError(f"{path} and {seen[key]} are the same model ({'folder' if isinstance(key, Path) else 'weights'}); "
                                     "an ensemble of a model with itself is that model: pass different runs.")
            seen[key] = path
        members.append((run, info, run.read_json("classes.json")))
    first, first_info, first_classes = members[0]
    for run, info, classes in members[1:]:
        if classes != first_classes:
            raise KerasSignError(f"{run.path} has other classes than {first.path} ({len(classes)} against "
                                 f"{len(first_classes)}, or in another order); ensemble runs of one class list.")
        if bool(info.get("center_crop", False)) != bool(first_info.get("center_crop", False)):
            raise KerasSignError(f"{run.path} and {first.path} differ in --center-crop; ensemble runs that "
                                 "resize their photos the same way.")
    return members


def model_sha256(run):
    """The SHA-256 of a run's model.keras: what ties an ensemble (or an export) to the exact model it holds."""
    return hashlib.sha256(run.file("model.keras").read_bytes()).hexdigest()


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
    size = max(info["image_size"] for _, info, _ in members)
    image = keras.Input((size, size, 3), name="image")
    outputs = []
    for index, (run, info, _) in enumerate(members):
        model = run.load_model()
        model.name = f"member_{index}_{model.name}"  # two runs of one architecture would share a layer name
        member_size = info["image_size"]
        outputs.append(model(image if member_size == size else resized(image, member_size, f"resize_{index}")))
    mean = keras.layers.Average(name="mean_probabilities")(outputs)
    return keras.Model(image, mean, name="ensemble"), members


def features_and_probabilities(ensemble):
    """The ensemble with two outputs, as `evaluation.penultimate_model` gives a run's model: its members'
    penultimate features side by side (t-SNE's points) and the mean of their class probabilities."""
    import keras

    from keras_sign.evaluation import penultimate_model

    image = keras.Input(ensemble.input_shape[1:], name="image")
    features, probabilities = [], []
    for layer in ensemble.layers:
        if not layer.name.startswith("member_"):
            continue
        index, arch = layer.name.split("_", 2)[1:]
        member_size = layer.input.shape[1]
        x = image if member_size == image.shape[1] else resized(image, member_size, f"resize_{index}")
        member_features, member_probabilities = penultimate_model(layer, arch)(x)
        features.append(keras.layers.Flatten()(member_features))
        probabilities.append(member_probabilities)
    return keras.Model(image, [keras.layers.Concatenate()(features), keras.layers.Average()(probabilities)])


def agreed_split(members):
    """The ensemble's split.csv rows: each photo that every member put in the same split (a photo one member
    trained on and another was validated or tested on belongs to none), or None for members of other data."""
    if any(info["data_root"] != members[0][1]["data_root"] for _, info, _ in members[1:]):
        log.warning("The members were trained on different data folders: the ensemble has no split and no "
                    "calibration (its answers are never marked unsure); evaluate it with --data-dir.")
        return None
    rows = members[0][0].read_split()
    splits = [{row["path"]: row["split"] for row in run.read_split()} for run, _, _ in members[1:]]
    agreed = [row for row in rows if all(split.get(row["path"]) == row["split"] for split in splits)]
    if len(agreed) < len(rows):
        counts = {name: sum(row["split"] == name for row in agreed) for name in ("train", "val", "test")}
        log.warning("The members were trained on different splits (split or seed): the ensemble's split keeps the "
                    "photos they agree on, %d training, %d validation and %d test photos.", counts["train"],
                    counts["val"], counts["test"])
    return agreed


def run_record(members, size, split):
    """The ensemble's run.json: what evaluate, calibrate, export and compare read of a run."""
    info = members[0][1]
    return {
        "status": "finished",
        "arch": "ensemble",
        "dataset": info["dataset"],
        "data_root": info["data_root"],
        "split_method": info.get("split_method") if split else None,
        "image_size": size,
        "center_crop": bool(info.get("center_crop", False)),
        "normalization": {"source": "each member's own, inside the model"},
        "members": [{"run": str(member.path.resolve()), "arch": member_info["arch"],
                     "image_size": member_info["image_size"],
                     "model_keras_sha256": model_sha256(member)}
                    for member, member_info, _ in members],
        "keras_sign": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_ensemble(run_paths, out):
    """Build the ensemble of `run_paths` into the new folder `out`; return its `model.json` record.

    The folder is written under a temporary name and renamed into place, so an interrupted build never
    leaves a folder that looks usable.
    """
    from keras_sign.calibration import MIN_CALIBRATION_IMAGES, calibrate_run

    held = contextlib.ExitStack()
    out = Path(out)
    if out.exists():
        raise KerasSignError(f"{out} already exists; choose a new --out folder.")
    check_writable(out)
    ensemble, members = build_ensemble(run_paths)
    class_names = members[0][2]
    split = agreed_split(members)
    info = run_record(members, ensemble.input_shape[1], split)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(out)
    staging = RunFolder(out.parent / f".{out.name}.partial-{os.getpid()}")
    try:
        staging.path.mkdir()
        held.enter_context(FolderLock(staging.path, "Ensemble folder"))  # a rerun tells a dead build from a live one
        ensemble.save(staging.file("model.keras"))
        staging.write_json("classes.json", class_names)
        staging.write_json("run.json", info)
        calibration = None
        if split:
            atomic_write_csv(staging.file("split.csv"), list(split[0]), [list(row.values()) for row in split])
            validation = sum(row["split"] == "val" for row in split)
            if validation >= MIN_CALIBRATION_IMAGES:
                calibration = calibrate_run(staging.path, model=ensemble, shown_as=out)
            else:
                log.warning("The ensemble is not calibrated: its members share %d validation photos, fewer than the %d "
                            "calibration needs (its answers are never marked unsure).", validation,
                            MIN_CALIBRATION_IMAGES)
        record = {
            "format": "keras",
            "file": "model.keras",
            "classes": class_names,
            "labels_file": "labels.txt",
            "input": {"layout": "NHWC", "channels": "RGB", "pixel_range": [0, 255],
                      "shape": [info["image_size"], info["image_size"], 3]},
            "output": {"meaning": "the mean of the members' softmax class probabilities, in labels.txt order"},
            # as an export's: apps compute softmax(log(p) / temperature) and call an answer below the threshold unsure
            **({"calibration": calibration} if calibration else {}),
            "preprocessing": preprocessing_record(info["image_size"], info["center_crop"]),
            "members": info["members"],
            "keras_sign": __version__,
            "created": info["started"],
        }
        atomic_write_text(staging.file("labels.txt"), "".join(f"{name}\n" for name in class_names))
        atomic_write_json(staging.file("model.json"), record)
        try:
            staging.path.rename(out)
        except OSError as error:  # another build of the same --out finished first
            if not out.exists():
                raise
            raise KerasSignError(f"{out} was written by another process while this one built it; this build is "
                                 "discarded: use that one, or choose a new --out.") from None
    finally:
        held.close()
        if staging.path.exists():
            shutil.rmtree(staging.path)
    return record


def remove_dead_staging(out):
    """Remove the staging folders of builds of `out` that were killed (kill -9 leaves them): their lock is free.
    A build still running holds its staging folder's lock, and keeps it."""
    for stale in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):
        try:
            with FolderLock(stale, "Ensemble folder"):
                pass
        except KerasSignError:
            continue  # another build of the same --out, still at work
        except OSError:
            continue  # not a folder we can lock: leave it alone
        log.info("Removing %s, left by an ensemble build that was stopped.", stale)
        shutil.rmtree(stale, ignore_errors=True)


def is_crossval(path):
    return (Path(path) / "crossval.json").is_file()


def write_fold_ensembles(crossval_paths, out):
    """One ensemble per fold of `crossval` folders (`OUT/<fold>/`, each evaluated on its held-out test split)
    and their crossval.json / .md: the leave-one-signer-out score of the ensemble. Returns the summary.

    Resumable: a fold whose ensemble is built and evaluated is kept; running again finishes the rest.
    """
    from keras_sign.crossval import write_report
    from keras_sign.evaluation import evaluate_run
    from keras_sign.runs import read_csv

    crossvals = [Path(path) for path in crossval_paths]
    plans = [[fold["fold"] for fold in RunFolder(path).read_json("crossval.json")["folds"]] for path in crossvals]
    for path, plan in zip(crossvals[1:], plans[1:]):
        if plan != plans[0]:
            raise KerasSignError(f"{path} has other folds than {crossvals[0]} ({', '.join(plan)} against "
                                 f"{', '.join(plans[0])}); ensemble crossvals of one data folder and --folds.")
    out = Path(out)
    check_writable(out)
    ours = {*plans[0], "crossval.json", "crossval.md", "confusion_matrix.csv", "confusion_matrix.png"}
    if out.is_dir() and any(p.name not in ours and not p.name.startswith(".") for p in out.iterdir()):
        raise KerasSignError(f"{out} already exists and holds other files; choose a new --out folder.")
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "Ensemble crossval folder"):
        runs = []
        for fold in plans[0]:
            members = [(path / fold).resolve() for path in crossvals]
            tests = [(RunFolder(m).read_json("run.json")["data_root"],
                      [row["path"] for row in read_csv(m / "split.csv") if row["split"] == "test"]) for m in members]
            if any(test != tests[0] for test in tests[1:]):
                raise KerasSignError(f"The {fold} folds of {', '.join(map(str, crossvals))} test other photos; "
                                     "ensemble crossvals of one data folder and --folds.")
            folder = out / fold
            if (folder / "run.json").is_file():  # built by an earlier, interrupted call: the same members?
                if [m["run"] for m in RunFolder(folder).read_json("run.json")["members"]] != list(map(str, members)):
                    raise KerasSignError(f"{out} holds ensembles of other runs; choose a new --out.")
            else:
                write_ensemble(members, folder)
            if not (folder / "metrics.json").is_file():
                evaluate_run(folder)
            runs.append(folder)
            log.info("fold %s: ensemble test accuracy %.3f", fold, RunFolder(folder).read_json("metrics.json")["accuracy"])
        head = {"folds_by": RunFolder(crossvals[0]).read_json("crossval.json")["folds_by"], "arch": "ensemble",
                "members": [str(path.resolve()) for path in crossvals]}
        return write_report(out, head, plans[0], runs)
