"""Before training: scan and split the data, create or reopen the run folder.

Everything here is written to the run folder before the first epoch, so a run
that is resumed trains on exactly the split, normalisation and weights source
it started with.
"""

import dataclasses
import json
import logging
import time
from pathlib import Path

from keras_sign.backend import environment_record
from keras_sign.config import config_to_yaml, load_config
from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import channel_mean_std
from keras_sign.data.scan import summarised
from keras_sign.data.split import SPLITS, choose_method, make_split
from keras_sign.errors import KerasSignError
from keras_sign.hands.cache import HandCache
from keras_sign.hands.detector import NO_HAND_CLASS, HandDetector
from keras_sign.hands.features import SPEC as LANDMARK_SPEC
from keras_sign.models import canonical_name
from keras_sign.models.registry import get_spec
from keras_sign.runs.atomic import atomic_write_text
from keras_sign.runs.folder import RunFolder, check_new_folder, default_run_path
from keras_sign.runs.locks import FolderLock
from keras_sign.runs.record import HANDS_FILE, RunInfo, hand_stage_settings, write_classes
from keras_sign.training.checkpoints import read_state

log = logging.getLogger("keras_sign")


_STAGE_OF_INPUTS = {"landmarks": "landmarks", "fusion": "fusion"}  # the hand stage these models cannot do without


def with_hand_stage(config):
    """`config` with the hand stage its architecture needs: a landmark model reads the hand's landmarks
    (`--hands landmarks`, set for it), a fusion model its square and landmarks (`--hands fusion`), a CNN the
    photo or the hand's square."""
    needed = _STAGE_OF_INPUTS.get(get_spec(config.arch).inputs)
    if needed and config.mix != "none":
        raise KerasSignError(f"--mix {config.mix} blends images alone; --arch {config.arch} reads a hand's landmarks "
                             "too: drop --mix.")
    if needed and config.hands == "none":
        return dataclasses.replace(config, hands=needed)
    if needed != (config.hands if config.hands in _STAGE_OF_INPUTS.values() else None):
        raise KerasSignError(f"--arch {config.arch} reads {'a hand' if needed else 'images'}, not "
                             f"--hands {config.hands}; " + ("drop --hands." if needed else
                                                            f"--hands {config.hands} is for --arch "
                                                            f"{'landmarks' if config.hands == 'landmarks' else 'fusion:<cnn>'}."))
    return config


def scan_and_split(config):
    """`(table, split method, assignment, {split: image count})` of the config's data, as training splits it."""
    table = scan_dataset(config.dataset, config.data_dir, config.classes, config.cache_dir)
    if config.limit_per_class:
        table = table.limited(config.limit_per_class)
    method = choose_method(config.split, table)
    test_signers = config.test_signers.split(",") if config.test_signers else None
    assignment = make_split(table, method, config.val_fraction, config.test_fraction, config.seed, test_signers,
                            config.fold)
    counts = {s: sum(a == s for a in assignment) for s in SPLITS}
    log.info(
        "%s: %d classes, %s layout, split %s: %s", table.root, len(table.class_names), table.layout, method,
        ", ".join(f"{counts[s]} {s}" for s in SPLITS),
    )
    if counts["train"] == 0:
        raise KerasSignError(f"The training split of {table.root} is empty; add images or lower the val/test fractions.")
    return table, method, assignment, counts


def new_run(config, backend, backend_reason, start, held):
    """Scan and split the data, create the run folder and write everything known before training
    (`start` is the run's `StartingPoint`).

    The run folder is locked for this process until `held` (a `contextlib.ExitStack`) closes.
    """
    arch = canonical_name(config.arch)
    dataset_name = Path(config.data_dir).name if config.data_dir else config.dataset
    out = check_new_folder(config.out or default_run_path(dataset_name, arch), "Run folder")  # before the long scan
    table, method, assignment, counts = scan_and_split(config)
    stage, hands, crops = hand_crops(table, assignment, config) if config.hands != "none" else (None, None, None)

    run = RunFolder.create(out, dataset_name, arch, held)
    log.info("Run folder: %s", run.path)
    atomic_write_text(run.file("config.yaml"), config_to_yaml(config))
    write_classes(run.path, table.class_names)
    run.write_split(table.records, assignment, crops)
    if hands is not None:
        write_hands(run.path, table.records, hands)

    mean, std = start.mean, start.std
    if config.hands == "landmarks":  # the model reads no pixels
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if mean is None:
        train = [i for i, a in enumerate(assignment) if a == "train" and (crops is None or crops[i] is not None)]
        mean, std = channel_mean_std([table.root / table.records[i].path for i in train], config.image_size,
                                     config.center_crop, [table.records[i].orientation for i in train],
                                     None if crops is None else [crops[i] for i in train])
    environment = environment_record(backend, backend_reason)
    info = RunInfo(
        arch=arch, dataset=dataset_name, data_root=str(table.root.resolve()), image_size=config.image_size,
        center_crop=config.center_crop, status="training", split_method=method, hands=stage,
        normalization={"source": start.normalization, "mean": list(mean), "std": list(std)},
        backend=environment.pop("backend"),
        extra={
            "layout": table.layout,
            "split_counts": counts,
            "skipped_files": [list(item) for item in table.skipped],
            "rotated_files": sum(r.orientation != 1 for r in table.records),
            "start": start.description,
            "padding": start.padding,
            **environment,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "total_seconds": 0.0,
        },
    )
    info.write(run.path)
    return run, info


def hand_crops(table, assignment, config):
    """`(stage settings, hands, crops)` of every photo of the table: its hands (from the hand cache, found now
    where they never were) and the square a model sees of the first (`(x0, y0, side, mirror)`, None where the
    photo holds no hand). Photos of a sign without a hand are left out of training and counted; a `nothing`
    photo without one is the no-hand answer itself."""
    detector = HandDetector(config.hand_models)
    cache = HandCache(detector, config.hand_cache_dir)
    hands = cache.hands_of([table.root / record.path for record in table.records],
                           [record.sha1 for record in table.records], f"finding the hands in {table.root.name}")
    crops = [found[0].crop(config.hand_margin, config.mirror_left) if found else None for found in hands]
    missing = [(record, split) for record, split, crop in zip(table.records, assignment, crops)
               if crop is None and record.label.lower() != NO_HAND_CLASS]
    if missing:
        by_split = {name: sum(split == name for _, split in missing) for name in SPLITS}
        log.warning("No hand in %d photo(s) of signs (%s): left out of training; in evaluation they answer `nothing`: "
                    "%s. The run's hands.jsonl lists every photo's hands.", len(missing),
                    ", ".join(f"{count} {name}" for name, count in by_split.items() if count),
                    summarised([record.path for record, _ in missing], "see hands.jsonl"))
    stage = hand_stage_settings(config.hand_models, config.hand_margin, config.mirror_left, detector.retry_border,
                                detector.description, config.hands,
                                LANDMARK_SPEC if config.hands in ("landmarks", "fusion") else None)
    return stage, hands, crops


def write_hands(folder, records, hands):
    """hands.jsonl: the hands of each photo of the split, as the run used them (path, then the hands)."""
    atomic_write_text(Path(folder) / HANDS_FILE, "".join(
        json.dumps({"path": record.path, "hands": [hand.to_json() for hand in found]}) + "\n"
        for record, found in zip(records, hands)))


def open_for_resume(config, backend, held):
    """The run folder of an interrupted (or extended) training and its record, locked for this process
    until `held` closes. Everything is checked before anything is written: a refused resume leaves
    the run folder as it was."""
    run = RunFolder(config.out)
    if not run.file("run.json").is_file() or not run.file("split.csv").is_file():
        raise KerasSignError(f"{config.out} is not a run folder that training started; pass the folder given to --out.")
    held.enter_context(FolderLock(run.path))
    info = RunInfo.read(run.path)
    if info.backend != backend:
        raise KerasSignError(
            f"{config.out} was trained with the {info.backend} backend; resume it with --backend "
            f"{info.backend} (optimizer state does not carry across backends)."
        )
    planned = load_config(run.file("config.yaml")).epochs
    if config.epochs != planned and config.schedule != "constant":
        # The checkpointed optimizer holds a schedule laid out over the planned epochs.
        raise KerasSignError(
            f"{run.path} follows a {config.schedule} schedule over {planned} epochs; it cannot be stretched to "
            f"{config.epochs}. Resume without --epochs, or start a new run with --init-from {run.path}."
        )
    state = read_state(run)
    # A run killed after its last checkpoint (while it saved, calibrated or evaluated) is finished without training.
    if (state["epoch"] >= config.epochs or state["stopped_early"]) and info.status == "finished":
        raise KerasSignError(
            f"{run.path} has already trained {state['epoch']} epoch(s)"
            f"{' and stopped early' if state['stopped_early'] else ''}; pass a larger --epochs to train on."
        )
    atomic_write_text(run.file("config.yaml"), config_to_yaml(config))  # --epochs / --patience may change
    return run, info
