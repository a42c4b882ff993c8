"""Training station: data -> model -> `model.fit` (Adam, categorical cross-entropy) -> run folder.

    keras-sign train --arch mobilenetv3 --dataset digits --epochs 30
"""

import functools
import logging
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_sign import __version__
from keras_sign.config import config_to_yaml
from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import channel_mean_std, make_dataset
from keras_sign.data.split import SPLITS, choose_method, make_split
from keras_sign.errors import KerasSignError
from keras_sign.evaluation import evaluate_model
from keras_sign.models import build_model, canonical_name
from keras_sign.models.pretrained import (
    KERAS_APPLICATIONS_MEAN, KERAS_APPLICATIONS_STD, copy_matching_weights, is_keras_applications_source,
    load_starting_weights,
)
from keras_sign.models.registry import IMAGENET_MEAN, IMAGENET_STD
from keras_sign.runs import RunFolder, atomic_write_csv, atomic_write_text

log = logging.getLogger("keras_sign")

HISTORY_COLUMNS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds", "images_per_second",
)


class HistoryWriter(keras.callbacks.Callback):
    """Rewrite `history.csv` atomically after every epoch, with timing and learning rate."""

    def __init__(self, path, train_images):
        super().__init__()
        self.path = path
        self.train_images = train_images
        self.rows = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        logs = dict(logs or {})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch_seconds"] = seconds
        logs["images_per_second"] = self.train_images / seconds
        self.rows.append([epoch + 1] + [_round(logs.get(column)) for column in HISTORY_COLUMNS[1:]])
        atomic_write_csv(self.path, HISTORY_COLUMNS, self.rows)


def _round(value):
    return "" if value is None else round(float(value), 6)


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


def compile_model(model, learning_rate):
    """Adam and categorical cross-entropy, as in the study."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def head_layer_names(model):
    """The classifier: every layer after the global pooling (`avgpool`) of a registry model."""
    names = [layer.name for layer in model.layers]
    return set(names[names.index("avgpool") + 1:])


def set_backbone_trainable(model, trainable):
    """Freeze or unfreeze everything but the head; frozen batch norm runs in inference mode in Keras."""
    head = head_layer_names(model)
    for layer in model.layers:
        if layer.name not in head:
            layer.trainable = trainable


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


def fit(model, config, train_ds, val_ds, history):
    """`model.fit` for `config.epochs`; with `freeze_backbone`, first the head alone, then all at `finetune_lr`."""
    fit_epochs = functools.partial(
        model.fit, train_ds, validation_data=val_ds, callbacks=[history],
        verbose=1 if sys.stdout.isatty() else 2,  # one line per epoch when the output goes to a log file
        shuffle=False,  # tf.data already reshuffles every epoch, seeded
    )
    if config.freeze_backbone:
        set_backbone_trainable(model, False)
        compile_model(model, config.lr)
        log.info("Training the head only for %d epoch(s).", config.freeze_backbone)
        fit_epochs(epochs=config.freeze_backbone)
    if config.freeze_backbone < config.epochs:
        # Unfrozen only when training goes on, so a saved head-only model keeps the optimizer it trained with.
        set_backbone_trainable(model, True)
        finetune_lr = config.finetune_lr or config.lr / 10
        compile_model(model, finetune_lr if config.freeze_backbone else config.lr)
        fit_epochs(epochs=config.epochs, initial_epoch=config.freeze_backbone)


def train(config, backend, backend_reason):
    """Train `config.arch` on `config`'s data and write a complete run folder; return `(run, metrics)`."""
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    arch = canonical_name(config.arch)
    table = scan_dataset(config.dataset, config.data_dir, config.classes, config.cache_dir)
    method = choose_method(config.split, table)
    assignment = make_split(table, method, config.val_fraction, config.test_fraction, config.seed)
    files = {s: [(table.root / r.path, y) for r, y, a in zip(table.records, table.labels, assignment) if a == s]
             for s in SPLITS}
    counts = {s: len(files[s]) for s in SPLITS}
    log.info(
        "%s: %d classes, %s layout, split %s: %s", table.root, len(table.class_names), table.layout, method,
        ", ".join(f"{counts[s]} {s}" for s in SPLITS),
    )
    if counts["train"] == 0:
        raise KerasSignError(f"The training split of {table.root} is empty; add images or lower the val/test fractions.")

    start = starting_point(config, arch)
    dataset_name = Path(config.data_dir).name if config.data_dir else config.dataset
    run = RunFolder.create(config.out, dataset_name, arch)
    log.info("Run folder: %s", run.path)
    atomic_write_text(run.file("config.yaml"), config_to_yaml(config))
    run.write_json("classes.json", table.class_names)
    run.write_split(table.records, assignment)

    train_paths, train_labels = zip(*files["train"])
    mean, std = start["mean"], start["std"]
    if mean is None:
        mean, std = channel_mean_std(train_paths, config.image_size)
    record = {
        "status": "training",
        "arch": arch,
        "dataset": dataset_name,
        "data_root": str(table.root.resolve()),
        "layout": table.layout,
        "split_method": method,
        "split_counts": counts,
        "skipped_files": [list(item) for item in table.skipped],
        "image_size": config.image_size,
        "start": start["description"],
        "normalization": {"source": start["normalization"], "mean": list(mean), "std": list(std)},
        "padding": start["padding"],
        **environment_record(backend, backend_reason),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    run.write_json("run.json", record)

    model = build_model(
        arch, len(table.class_names), config.image_size, mean, std, config.dropout, config.bn_momentum,
        padding=start["padding"],
    )
    fresh = start["fill"](model)
    if fresh:
        log.info("Starting from %s; new initial weights for %s.", start["description"], ", ".join(fresh))
    train_ds = make_dataset(
        train_paths, train_labels, len(table.class_names), config.image_size, config.batch_size,
        training=True, augment=config.augment, seed=config.seed,
    )
    val_ds = None
    if files["val"]:
        val_paths, val_labels = zip(*files["val"])
        val_ds = make_dataset(val_paths, val_labels, len(table.class_names), config.image_size, config.batch_size)
    fit(model, config, train_ds, val_ds, HistoryWriter(run.file("history.csv"), counts["train"]))
    run.save_model(model)

    metrics = None
    if files["test"]:
        test_paths, test_labels = zip(*files["test"])
        metrics, report = evaluate_model(
            model, test_paths, test_labels, table.class_names, config.image_size, config.batch_size
        )
        metrics["evaluated_on"] = "test split"
        run.write_json("metrics.json", metrics)
        atomic_write_text(run.file("report.txt"), report)
    record.update(status="finished", total_seconds=round(time.time() - started, 1))
    run.write_json("run.json", record)
    return run, metrics
