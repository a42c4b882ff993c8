"""Before training: scan and split the data, choose the starting weights, create or reopen the run folder.

Everything here is written to the run folder before the first epoch, so a run
that is resumed trains on exactly the split, normalisation and weights source
it started with.
"""

import logging
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_sign import __version__
from keras_sign.checkpoints import read_state
from keras_sign.config import config_to_yaml, load_config
from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import channel_mean_std
from keras_sign.data.split import SPLITS, choose_method, make_split
from keras_sign.errors import KerasSignError
from keras_sign.models import canonical_name
from keras_sign.models.pretrained import (
    KERAS_APPLICATIONS_MEAN, KERAS_APPLICATIONS_STD, copy_matching_weights, is_keras_applications_source,
    load_starting_weights,
)
from keras_sign.models.registry import IMAGENET_MEAN, IMAGENET_STD
from keras_sign.runs import FolderLock, RunFolder, atomic_write_text, check_new_folder, default_run_path

log = logging.getLogger("keras_sign")


def environment_record(backend, reason):
    """What ran the job: backend and why, library versions, machine."""
    import tensorflow as tf

    return {
        "backend": backend,
        "backend_reason": reason,
        "versions": {
            "keras_sign": __version__,
            "keras": keras.__version__,
            backend: sys.modules[backend].__version__,
            "tensorflow_data": tf.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
    }


def starting_point(config, arch):
    """Where the weights start and which normalisation goes with them.

    Returns a dict: `description`, `normalization` (its source), `mean`/`std` (None: compute them
    on the training split), `padding` (the model's, see `build_model`) and `fill(model)`, which loads
    the weights and returns the layers it left.
    """
    if config.weights != "none" and is_keras_applications_source(config.weights):
        return {
            "description": f"{config.weights} weights (keras.applications)",
            "normalization": "[-1, 1] (keras.applications' weights expect it)",
            "mean": KERAS_APPLICATIONS_MEAN,
            "std": KERAS_APPLICATIONS_STD,
            "padding": "same",
            "fill": lambda model: load_starting_weights(model, arch, config.weights),
        }
    if config.weights != "none":
        return {
            "description": f"{config.weights} weights",
            "normalization": "ImageNet (the pretrained weights expect it)",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "padding": "torch",
            "fill": lambda model: load_starting_weights(model, arch, config.weights),
        }
    if config.init_from:
        source = RunFolder.open(config.init_from)
        info = source.read_json("run.json")
        if info["arch"] != arch:
            raise KerasSignError(
                f"--init-from {config.init_from} holds a {info['arch']} model, not {arch}; pass --arch {info['arch']}."
            )
        return {
            "description": f"the model of run {config.init_from}",
            "normalization": f"copied from run {config.init_from}",
            "mean": info["normalization"]["mean"],
            "std": info["normalization"]["std"],
            "padding": info.get("padding", "torch"),
            "fill": lambda model: copy_matching_weights(source.load_model(), model),
        }
    return {
        "description": "random initialisation",
        "normalization": "training split",
        "mean": None,
        "std": None,
        "padding": "torch",
        "fill": lambda model: [],
    }


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


def new_run(config, backend, backend_reason, held):
    """Scan and split the data, create the run folder and write everything known before training.

    The run folder is locked for this process until `held` (a `contextlib.ExitStack`) closes.
    """
    arch = canonical_name(config.arch)
    dataset_name = Path(config.data_dir).name if config.data_dir else config.dataset
    out = check_new_folder(config.out or default_run_path(dataset_name, arch), "Run folder")  # before the long scan
    table, method, assignment, counts = scan_and_split(config)

    start = starting_point(config, arch)
    run = RunFolder.create(out, dataset_name, arch, held)
    log.info("Run folder: %s", run.path)
    atomic_write_text(run.file("config.yaml"), config_to_yaml(config))
    run.write_json("classes.json", table.class_names)
    run.write_split(table.records, assignment)

    mean, std = start["mean"], start["std"]
    if mean is None:
        train = [r for r, a in zip(table.records, assignment) if a == "train"]
        mean, std = channel_mean_std([table.root / r.path for r in train], config.image_size, config.center_crop,
                                     [r.orientation for r in train])
    record = {
        "status": "training",
        "arch": arch,
        "dataset": dataset_name,
        "data_root": str(table.root.resolve()),
        "layout": table.layout,
        "split_method": method,
        "split_counts": counts,
        "skipped_files": [list(item) for item in table.skipped],
        "rotated_files": sum(r.orientation != 1 for r in table.records),
        "image_size": config.image_size,
        "center_crop": config.center_crop,
        "start": start["description"],
        "normalization": {"source": start["normalization"], "mean": list(mean), "std": list(std)},
        "padding": start["padding"],
        **environment_record(backend, backend_reason),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "total_seconds": 0.0,
    }
    run.write_json("run.json", record)
    return run, record


def open_for_resume(config, backend, held):
    """The run folder of an interrupted (or extended) training and its record, locked for this process
    until `held` closes. Everything is checked before anything is written: a refused resume leaves
    the run folder as it was."""
    run = RunFolder(config.out)
    if not run.file("run.json").is_file() or not run.file("split.csv").is_file():
        raise KerasSignError(f"{config.out} is not a run folder that training started; pass the folder given to --out.")
    held.enter_context(FolderLock(run.path))
    record = run.read_json("run.json")
    if record["backend"] != backend:
        raise KerasSignError(
            f"{config.out} was trained with the {record['backend']} backend; resume it with --backend "
            f"{record['backend']} (optimizer state does not carry across backends)."
        )
    planned = load_config(run.file("config.yaml")).epochs
    if config.epochs != planned and config.schedule != "constant":
        # The checkpointed optimizer holds a schedule laid out over the planned epochs.
        raise KerasSignError(
            f"{run.path} follows a {config.schedule} schedule over {planned} epochs; it cannot be stretched to "
            f"{config.epochs}. Resume without --epochs, or start a new run with --init-from {run.path}."
        )
    state = read_state(run)
    if state["epoch"] >= config.epochs or state["stopped_early"]:
        raise KerasSignError(
            f"{run.path} has already trained {state['epoch']} epoch(s)"
            f"{' and stopped early' if state['stopped_early'] else ''}; pass a larger --epochs to train on."
        )
    atomic_write_text(run.file("config.yaml"), config_to_yaml(config))  # --epochs / --patience may change
    return run, record
