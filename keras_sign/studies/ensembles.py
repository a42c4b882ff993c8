"""`keras-sign ensemble RUN RUN [...] --out DIR`: one model that averages the class probabilities of runs.

    keras-sign ensemble runs/massey-resnet18-96 runs/massey-mobilenetv3-64 --out ensembles/massey
    keras-sign predict ensembles/massey photo.jpg
    keras-sign transcribe ensembles/massey clip.mp4
    keras-sign ensemble crossval/massey-resnet18 crossval/massey-mobilenetv3 --out ensembles/massey-crossval

Models of other architectures and input sizes err on other photos, so their mean errs less: on
leave-one-signer-out Massey four models together beat the best of them (docs/results.md,
"Ensembles"). The ensemble is one plain Keras model (`model.keras`, loadable by `keras.saving.load_model`
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
import logging
import os
import shutil
import time
from pathlib import Path

from keras_sign import __version__
from keras_sign.errors import KerasSignError
from keras_sign.inference.ensemble_model import build_ensemble, ensemble_hands
from keras_sign.runs.atomic import atomic_write_csv, check_writable
from keras_sign.runs.folder import RunFolder
from keras_sign.runs.locks import FolderLock, remove_dead_staging
from keras_sign.runs.record import (HANDS_FILE, RunInfo, bundle_json, input_records, model_sha256, write_bundle,
                                    write_classes)

log = logging.getLogger("keras_sign")


def agreed_split(members):
    """The ensemble's split.csv rows: each photo that every member put in the same split (a photo one member
    trained on and another was validated or tested on belongs to none), or None for members of other data."""
    if any(info.data_root != members[0][1].data_root for _, info, _ in members[1:]):
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


def run_record(members, split):
    """The ensemble's run.json: what evaluate, calibrate, export and compare read of a run."""
    info = members[0][1]
    infos = [member_info for _, member_info, _ in members]
    sizes = [member_info.image_size for member_info in infos if member_info.preprocessing.reads_pixels]
    return RunInfo(
        arch="ensemble", dataset=info.dataset, data_root=info.data_root, image_size=max(sizes or [info.image_size]),
        center_crop=info.center_crop, hands=ensemble_hands(infos),
        status="finished", split_method=info.split_method if split else None,
        normalization={"source": "each member's own, inside the model"},
        members=[{"run": str(member.path.resolve()), "arch": member_info.arch, "image_size": member_info.image_size,
                  "model_keras_sha256": model_sha256(member.path)} for member, member_info, _ in members],
        extra={"keras_sign": __version__, "started": time.strftime("%Y-%m-%dT%H:%M:%S")},
    )


def write_ensemble(run_paths, out):
    """Build the ensemble of `run_paths` into the new folder `out`; return its `model.json` record.

    The folder is written under a temporary name and renamed into place, so an interrupted build never
    leaves a folder that looks usable.
    """
    from keras_sign.analysis.calibration import MIN_CALIBRATION_IMAGES, calibrate_run

    held = contextlib.ExitStack()
    out = Path(out)
    if out.exists():
        raise KerasSignError(f"{out} already exists; choose a new --out folder.")
    check_writable(out)
    ensemble, members = build_ensemble(run_paths)
    class_names = members[0][2]
    split = agreed_split(members)
    info = run_record(members, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(out, "an ensemble build")
    staging = RunFolder(out.parent / f".{out.name}.partial-{os.getpid()}")
    try:
        staging.path.mkdir()
        held.enter_context(FolderLock(staging.path, "Ensemble folder"))  # a rerun tells a dead build from a live one
        ensemble.save(staging.file("model.keras"))
        write_classes(staging.path, class_names)
        if members[0][0].file(HANDS_FILE).is_file():  # the hands each photo holds, found alike by every member
            shutil.copy(members[0][0].file(HANDS_FILE), staging.file(HANDS_FILE))
        info.write(staging.path)
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
        record = bundle_json(
            class_names, info.preprocessing, calibration,
            format="keras", file="model.keras",
            **input_records(info.preprocessing, [{"name": tensor.name, "shape": list(tensor.shape[1:])}
                                                 for tensor in ensemble.inputs]),
            output={"meaning": "the mean of the members' softmax class probabilities, in labels.txt order"},
            arch="ensemble", members=info.members, keras_sign=__version__, created=info.extra["started"],
        )
        write_bundle(staging.path, record)
        try:
            staging.path.rename(out)
        except OSError:  # another build of the same --out finished first
            if not out.exists():
                raise
            raise KerasSignError(f"{out} was written by another process while this one built it; this build is "
                                 "discarded: use that one, or choose a new --out.") from None
    finally:
        held.close()
        if staging.path.exists():
            shutil.rmtree(staging.path)
    return record


def is_crossval(path):
    return (Path(path) / "crossval.json").is_file()


def write_fold_ensembles(crossval_paths, out):
    """One ensemble per fold of `crossval` folders (`OUT/<fold>/`, each evaluated on its held-out test split)
    and their crossval.json / .md: the leave-one-signer-out score of the ensemble. Returns the summary.

    Resumable: a fold whose ensemble is built and evaluated is kept; running again finishes the rest.
    """
    from keras_sign.analysis.evaluate import evaluate_run
    from keras_sign.runs.atomic import read_csv
    from keras_sign.studies.crossval import write_report

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
            tests = [(RunInfo.read(m).data_root,
                      [row["path"] for row in read_csv(m / "split.csv") if row["split"] == "test"]) for m in members]
            if any(test != tests[0] for test in tests[1:]):
                raise KerasSignError(f"The {fold} folds of {', '.join(map(str, crossvals))} test other photos; "
                                     "ensemble crossvals of one data folder and --folds.")
            folder = out / fold
            if (folder / "run.json").is_file():  # built by an earlier, interrupted call: the same members?
                if [m["run"] for m in RunInfo.read(folder).members] != list(map(str, members)):
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
