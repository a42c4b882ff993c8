"""`keras-sign adapt RUN SHOTS --out NEW_RUN`: a copy of a run's model fine-tuned on a few photos of a new signer.

    keras-sign adapt runs/massey-landmarks my-shots/ --out runs/massey-landmarks-me
    keras-sign predict runs/massey-landmarks-me photo.jpg

SHOTS is a folder of class folders: a few photos of each sign (any subset of the model's classes) by the
person who will use the model. They go through the run's own hand stage (a shot without a hand is skipped and
counted) and preprocessing; the model trains on them beside a replay of its own training photos (`replay` per
class, seeded), so that the classes and signers it knew are not forgotten. `layers` chooses what trains: the
classifier alone ("head": for a fusion model the landmark branch too), or every layer ("all").

The new run folder is a complete run: its record names the parent run (and its model's SHA-256) and every
shot (`shots.csv`, with SHA-1s); its split is the parent's, with any photo that is a shot moved out of the test
split into `shots`; its calibration is fitted again on the parent's validation photos (held out from both
trainings). It is written under a temporary name and renamed into place when complete, so an interrupted adapt
leaves no folder that looks usable, and a second adapt into the same folder is refused. RUN is only read.
"""

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import atomic_write_csv
from keras_sign.runs.folder import SPLIT_COLUMNS, RunFolder, SplitFiles
from keras_sign.runs.locks import FolderLock, remove_dead_staging
from keras_sign.runs.record import CALIBRATION_FILE, HANDS_FILE, RunInfo, model_sha256, read_classes, write_classes

log = logging.getLogger("keras_sign")

LAYERS = ("head", "all")
SHOTS_FILE = "shots.csv"


@dataclasses.dataclass(frozen=True)
class AdaptSettings:
    """How a model is adapted (`keras-sign adapt --help` says each)."""

    layers: str = "all"
    epochs: int = 30
    lr: float = 5e-4
    replay: int = 10
    batch_size: int = 32
    seed: int = 0
    add_classes: bool = False


@dataclasses.dataclass(frozen=True)
class Shots:
    """The shots of a SHOTS folder that the model trains on, and those it cannot use."""

    paths: list  # absolute
    labels: list  # class indices of the adapted model
    sha1s: list
    orientations: list
    hands: list | None  # each shot's hand, under the run's hand stage (None without one)
    skipped: list  # (path, reason)
    new_classes: list  # class names the model grows (--add-classes)


def read_shots(folder, info, class_names, add_classes, hand_cache=None):
    """The usable shots of `folder` (class folders) for a run (`info`, `class_names`), or a one-line refusal."""
    from keras_sign.data.class_map import map_classes
    from keras_sign.data.scan import scan_folder
    from keras_sign.inference.hand_crops import hands_of_files

    table = scan_folder(folder, min_classes=1)
    try:
        known, unknown = map_classes(table.class_names, class_names)  # names as evaluate --data-dir matches them
    except KerasSignError:  # none of them is a class of the model
        known, unknown = {}, list(table.class_names)
    if unknown and not add_classes:
        raise KerasSignError(f"{folder} has shots of class(es) the model does not know: {', '.join(unknown)}; its "
                             f"classes are {', '.join(class_names)}. Rename the folders, leave them out, or pass "
                             "--add-classes (a landmark model).")
    if unknown and info.preprocessing.reads_pixels:
        raise KerasSignError(f"--add-classes grows a landmark model's classifier; {info.arch} reads pixels: adapt it to "
                             f"classes it knows, or train it again with {', '.join(unknown)}.")
    names = class_names + unknown
    records, hands = list(table.records), None
    skipped = [(str(path), reason) for path, reason in table.skipped]
    if info.hands:  # no hand, no sign: a shot without one teaches nothing
        found = hands_of_files([table.root / r.path for r in records], [r.sha1 for r in records], info.hands,
                               hand_cache)
        skipped += [(str(table.root / r.path), "no hand found") for r, hand in zip(records, found) if hand is None]
        kept = [i for i, hand in enumerate(found) if hand is not None]
        records, hands = [records[i] for i in kept], [found[i] for i in kept]
    if skipped:
        log.warning("%d of the shots are skipped (%s); shots.csv lists them.", len(skipped),
                    ", ".join(sorted({reason for _, reason in skipped})))
    if len(records) < 2:
        raise KerasSignError(f"{folder} has {len(records)} usable shot(s); adapting needs two or more (a few photos of "
                             "each sign, with the hand in view).")
    index = {name: i for i, name in enumerate(names)}
    label_of = {**known, **{name: name for name in unknown}}
    return Shots([table.root / r.path for r in records], [index[label_of[r.label]] for r in records],
                 [r.sha1 for r in records], [r.orientation for r in records], hands, skipped, unknown)


def replay_photos(run, info, per_class, seed):
    """`(SplitFiles, hands)` of up to `per_class` training photos of each class of the parent run (seeded): what the
    model rehearses beside the shots."""
    from keras_sign.inference.hand_crops import run_hands

    files = run.split_files("train").with_hands()
    rng = np.random.default_rng(seed)
    chosen = []
    for label in sorted(set(files.labels)):
        rows = [i for i, other in enumerate(files.labels) if other == label]
        chosen += sorted(rng.choice(rows, min(per_class, len(rows)), replace=False).tolist())
    pick = lambda values: None if values is None else [values[i] for i in chosen]  # noqa: E731
    replay = SplitFiles(pick(files.paths), pick(files.labels), pick(files.orientations), pick(files.crops))
    hands = run_hands(run.path, replay.paths, info.data_root) if info.preprocessing.reads_landmarks else None
    return replay, hands


def adapt(run_path, shots_folder, out, settings=AdaptSettings(), evaluate=True, hand_cache=None, progress=None):
    """Adapt the model of `run_path` to the shots in `shots_folder`, into the new run folder `out`; return its
    path. `evaluate`: score the adapted model on the test split (the reports `keras-sign evaluate` writes).
    `progress(epoch, epochs)` is called after each epoch (the demo page's progress bar)."""
    from keras_sign.analysis.calibration import MIN_CALIBRATION_IMAGES, calibrate_run
    from keras_sign.analysis.evaluate import evaluate_run
    from keras_sign.config import load_config
    from keras_sign.inference.hand_crops import crops_of
    from keras_sign.models.saving import save_model
    from keras_sign.runs.folder import check_new_folder

    started = time.time()
    out = Path(out)
    if out.exists():
        raise KerasSignError(f"{out} already exists; adapt into a new --out folder (RUN is never changed).")
    check_new_folder(out, "Run folder")
    run = RunFolder.open(run_path)
    info = RunInfo.read(run.path)
    if info.is_ensemble:
        raise KerasSignError(f"{run_path} is an ensemble; adapt its members and ensemble the adapted runs.")
    class_names = read_classes(run.path)
    shots = read_shots(shots_folder, info, class_names, settings.add_classes, hand_cache)
    names = class_names + shots.new_classes
    config = dataclasses.replace(load_config(run.file("config.yaml")), batch_size=settings.batch_size,
                                 seed=settings.seed, epochs=settings.epochs, lr=settings.lr, out=str(out))
    replay, replay_hands = replay_photos(run, info, settings.replay, settings.seed)
    shot_crops = crops_of(shots.hands, info.hands) if info.hands else None
    train = SplitFiles([*replay.paths, *shots.paths], [*replay.labels, *shots.labels],
                       [*(replay.orientations or [1] * len(replay.paths)), *shots.orientations],
                       None if shot_crops is None else [*replay.crops, *shot_crops])
    hands = None if replay_hands is None else {"train": [*replay_hands, *shots.hands], "val": []}
    model = _fine_tuned(run, info, config, settings, train, hands, len(names), progress)

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(out, "an adapt")
    staging = RunFolder(out.parent / f".{out.name}.partial-{os.getpid()}")
    with contextlib.ExitStack() as held:
        try:
            staging.path.mkdir()
            held.enter_context(FolderLock(staging.path, "Run folder"))
            save_model(model, staging.file("model.keras"), optimizer=False)
            _write_record(staging, run, info, names, shots, settings, time.time() - started)
            validation = sum(row["split"] == "val" for row in staging.read_split())
            if validation >= MIN_CALIBRATION_IMAGES and not shots.new_classes:
                calibrate_run(staging.path, batch_size=settings.batch_size, model=model, shown_as=out)
            elif run.file(CALIBRATION_FILE).is_file():
                shutil.copy(run.file(CALIBRATION_FILE), staging.file(CALIBRATION_FILE))
                log.warning("The adapted model keeps %s's calibration (%s): its answers may be surer or less sure "
                            "than it says.", run.path, "new classes have no validation photos" if shots.new_classes
                            else f"{validation} validation photos are too few to fit it again")
            staging.path.rename(out)
        except OSError:
            if out.exists():  # the rename found a folder another adapt into the same --out finished first
                raise KerasSignError(f"{out} was written by another process while this one adapted; this one is "
                                     "discarded: use that one, or choose a new --out.") from None
            raise
        finally:
            if staging.path.exists():
                shutil.rmtree(staging.path)
    log.info("Adapted %s on %d shots (%d replayed training photos) in %.1f s: %s", run.path, len(shots.paths),
             len(replay.paths), time.time() - started, out)
    if evaluate and any(row["split"] == "test" for row in RunFolder(out).read_split()):
        evaluate_run(out, batch_size=settings.batch_size, model=model)
    return out


def _fine_tuned(run, info, config, settings, train, hands, num_classes, progress=None):
    """The parent's model trained on `train` (shots and replay) as `settings` say."""
    import keras

    from keras_sign.models.saving import load_model
    from keras_sign.training.fit import set_backbone_trainable, training_data

    model = load_model(run.path)
    if num_classes != model.output_shape[-1]:
        model = _grown(model, info.arch, num_classes)
    if settings.layers == "head":
        set_backbone_trainable(model, info.arch, False)
    empty = SplitFiles([], [], [], None if train.crops is None else [])
    data = training_data(config, {"train": train, "val": empty}, num_classes, 1, hands, info.hands)
    model.compile(optimizer=keras.optimizers.Adam(settings.lr), loss="categorical_crossentropy", metrics=["accuracy"])
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: progress(epoch + 1, settings.epochs))
                 ] if progress else []
    model.fit(data["train_batches"](0, settings.epochs), epochs=settings.epochs, callbacks=callbacks,
              steps_per_epoch=data["steps_per_epoch"], verbose=0, shuffle=False)  # batches come shuffled, seeded
    for layer in model.layers:
        layer.trainable = True
    return model


def _grown(model, arch, num_classes):
    """A landmark model with a classifier for `num_classes` (--add-classes): the old classes keep their weights, the
    new ones start as Keras initialises them."""
    from keras_sign.models.registry import build_model

    grown = build_model(arch, num_classes)
    for layer in model.layers:
        if layer.weights and layer.name != "logits":
            grown.get_layer(layer.name).set_weights(layer.get_weights())
    kernel, bias = model.get_layer("logits").get_weights()
    new_kernel, new_bias = grown.get_layer("logits").get_weights()
    new_kernel[:, :kernel.shape[1]], new_bias[:bias.shape[0]] = kernel, bias
    grown.get_layer("logits").set_weights([new_kernel, new_bias])
    return grown


def _write_record(staging, run, info, names, shots, settings, seconds):
    """run.json (naming the parent and the shots), classes, config, split (the shots out of the test split), the
    hands and shots.csv of the adapted run."""
    shot_sha1s = set(shots.sha1s)
    rows = run.read_split()
    for row in rows:
        if row["sha1"] in shot_sha1s:
            row["split"] = "shots"
    atomic_write_csv(staging.file("split.csv"), list(rows[0]) if rows else SPLIT_COLUMNS,
                     [list(row.values()) for row in rows])
    for name in ("config.yaml", HANDS_FILE):
        if run.file(name).is_file():
            shutil.copy(run.file(name), staging.file(name))
    write_classes(staging.path, names)
    atomic_write_csv(staging.file(SHOTS_FILE), ["path", "class", "sha1", "used"],
                     [[str(path), names[label], sha1, "yes"] for path, label, sha1 in
                      zip(shots.paths, shots.labels, shots.sha1s)] + [[path, "", "", reason] for path, reason in
                                                                       shots.skipped])
    adapted = dataclasses.replace(info, status="finished", extra={
        **info.extra,
        "adapted_from": {"run": str(run.path.resolve()), "model_keras_sha256": model_sha256(run.path)},
        "shots": {"used": len(shots.paths), "skipped": len(shots.skipped), "new_classes": shots.new_classes,
                  "sha1": sorted(shot_sha1s), "file": SHOTS_FILE},
        "adapt": {**dataclasses.asdict(settings), "seconds": round(seconds, 1)},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    adapted.write(staging.path)
