"""Training station: data -> model -> `model.fit` (Adam, categorical cross-entropy) -> run folder.

    keras-sign train --arch mobilenetv3 --dataset digits --epochs 30
    keras-sign train --resume runs/digits-mobilenetv3_small-20261126-101500

Training runs epoch by epoch and checkpoints after each (`keras_sign.training.checkpoints`),
so a run killed at any moment resumes with its history intact.
"""

import contextlib
import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_sign.analysis.calibration import MIN_CALIBRATION_IMAGES, calibrate_run
from keras_sign.analysis.evaluate import evaluate_run
from keras_sign.backend import configure_runtime
from keras_sign.data.image_cache import cached_split
from keras_sign.data.pipeline import batches, epochs_of_batches
from keras_sign.data.split import SPLITS
from keras_sign.errors import KerasSignError
from keras_sign.models import build_model, canonical_name
from keras_sign.models.registry import get_spec
from keras_sign.models.saving import save_model
from keras_sign.models.starting_weights import starting_point
from keras_sign.progress import progress_bar
from keras_sign.runs.atomic import atomic_write_csv
from keras_sign.runs.record import RunInfo, read_classes
from keras_sign.training.checkpoints import (
    Checkpointer,
    finished_history,
    load_resumable,
    read_state,
    remove_leftovers,
    restore,
    write_best_model,
)
from keras_sign.training.fused_batch_norm import fuse_batch_norms
from keras_sign.training.optimizers import FusedAdam, FusedAdamW
from keras_sign.training.preparation import new_run, open_for_resume, with_hand_stage
from keras_sign.training.schedules import WarmupSchedule

log = logging.getLogger("keras_sign")

HISTORY_COLUMNS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds", "images_per_second",
)


class HistoryWriter(keras.callbacks.Callback):
    """Rewrite `history.csv` atomically after every epoch, with timing and learning rate, and log the epoch."""

    def __init__(self, path, train_images, epochs, rows=()):
        super().__init__()
        self.path = path
        self.train_images = train_images
        self.epochs = epochs
        self.rows = [[row[column] for column in HISTORY_COLUMNS] for row in rows]  # earlier epochs of a resumed run

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        # The rate of the epoch's first step: with a schedule, the end-of-epoch rate is the next epoch's.
        self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        logs = dict(logs or {})
        logs["learning_rate"] = self.learning_rate
        logs["epoch_seconds"] = seconds
        logs["images_per_second"] = self.train_images / seconds
        self.rows.append([epoch + 1] + [_round(logs.get(column)) for column in HISTORY_COLUMNS[1:]])
        atomic_write_csv(self.path, HISTORY_COLUMNS, self.rows)
        shown = ", ".join(f"{key} {logs[key]:.4g}" for key in HISTORY_COLUMNS[1:6] if logs.get(key) is not None)
        log.info("epoch %d/%d: %s, %.1f s (%.0f images/s)", epoch + 1, self.epochs, shown, seconds,
                 logs["images_per_second"])


class EpochProgress(keras.callbacks.Callback):
    """A bar over the training steps of each epoch, with the running loss and accuracy (terminals only)."""

    def __init__(self, epochs, steps_per_epoch):
        super().__init__()
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = progress_bar(self.steps_per_epoch, f"epoch {epoch + 1}/{self.epochs}", unit="step")

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs:
            self.bar.set_postfix({key: f"{float(logs[key]):.4g}" for key in ("loss", "accuracy") if key in logs},
                                 refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()  # before HistoryWriter logs the epoch's line


class FirstStepTimer(keras.callbacks.Callback):
    """Seconds from `started` to the end of the first training step (start-up, data, tracing); attached
    to one epoch only, since a per-step hook makes Keras hand back every step's logs."""

    def __init__(self, started):
        super().__init__()
        self.started, self.seconds = started, None

    def on_train_batch_end(self, batch, logs=None):
        if self.seconds is None:
            self.seconds = round(time.time() - self.started, 2)


def _round(value):
    return "" if value is None else float(f"{float(value):.6g}")  # significant digits: rates can be 1e-7


def make_optimizer(config, learning_rate):
    """Adam as in the study, or AdamW; weight decay is decoupled in both (Keras applies it to the weights directly).
    Both update each weight in one fused kernel under TensorFlow (keras_sign/optimizers.py)."""
    if config.optimizer == "adamw":
        return FusedAdamW(learning_rate, weight_decay=0.01 if config.weight_decay is None else config.weight_decay)
    return FusedAdam(learning_rate, weight_decay=config.weight_decay or None)


def compile_model(model, config, peak_lr, phase_steps, warmup_steps=0):
    """Compile for one training phase: optimizer with its schedule over the phase, categorical cross-entropy."""
    schedule = WarmupSchedule(config.schedule, peak_lr, phase_steps, min(warmup_steps, phase_steps))
    model.compile(
        optimizer=make_optimizer(config, schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


def create_step_variables(model):
    """Create the optimizer's and the compiled metrics' variables now, outside any traced function.

    Keras creates them in the first training step; TensorFlow traces a function that creates
    variables twice, and the training step is the costliest trace of a run (the default job's first
    epoch: 19.2 s, 10.0 s with this; docs/benchmarks.md).
    """
    model.optimizer.build(model.trainable_variables)
    probe = np.zeros((1, model.output_shape[-1]), "float32")
    model.compute_metrics(None, probe, probe)
    model.reset_metrics()


def head_layer_names(model, arch):
    """The classifier: every layer after the global pooling (the spec's `pool_layer`) of a registered `arch`; of
    a fusion model, the landmark branch and the joint classifier."""
    names = [layer.name for layer in model.layers]
    if get_spec(arch).inputs == "fusion":  # the landmark branch and the joint classifier
        from keras_sign.models.fusion import HEAD_PREFIXES

        return {name for name in names if name.startswith(HEAD_PREFIXES)}
    return set(names[names.index(get_spec(arch).pool_layer) + 1:])


def set_backbone_trainable(model, arch, trainable):
    """Freeze or unfreeze everything but the head; frozen batch norm runs in inference mode in Keras."""
    head = head_layer_names(model, arch)
    for layer in model.layers:
        if layer.name not in head:
            layer.trainable = trainable


def phase_of(config, epoch):
    """`(first epoch, end epoch, peak learning rate, backbone trainable)` of the training phase holding `epoch`.

    With `freeze_backbone` N, epochs 0..N-1 train the head alone at `lr`, then everything at `finetune_lr`.
    """
    if epoch < config.freeze_backbone:
        return 0, config.freeze_backbone, config.lr, False
    peak = (config.finetune_lr or config.lr / 10) if config.freeze_backbone else config.lr
    return config.freeze_backbone, config.epochs, peak, True


class CheckpointEachEpoch(keras.callbacks.Callback):
    """Hand each finished epoch to the `Checkpointer` (after the history row is written) and stop
    training when it says so (early stopping); `end` is the phase's last epoch, always checkpointed."""

    def __init__(self, checkpoints, end):
        super().__init__()
        self.checkpoints, self.end = checkpoints, end

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        state = self.checkpoints.after_epoch(self.model, logs or {}, time.time() - self.started,
                                             last=epoch + 1 == self.end)
        if state["stopped_early"]:
            self.model.stop_training = True


def fit_epochs(model, config, run, data, history, state, callbacks=(), first_step=None, optimizer_values=None):
    """Train from the checkpoint `state` to the last epoch, checkpointing after each epoch as
    `keras_sign.training.checkpoints` says; return the final state. `first_step` (a `FirstStepTimer`) times the
    first step this call trains; `optimizer_values` are the checkpoint's optimizer state, restored
    unless a new phase starts a new optimizer.

    Each epoch's batches are seeded by (seed, epoch) alone, so an epoch trained after a resume sees
    the same data as it would have without the interruption. One `model.fit` call trains a whole
    phase (each call costs about 0.14 s of set-up, 4 s over the default job's 30 epochs), except that
    the first epoch trained has a call of its own: a per-step hook, as the first step's timer is, makes
    Keras hand back every step's logs, and it is left out of the rest.
    """
    steps_per_epoch = data["steps_per_epoch"]
    fuse_batch_norms(model)
    # Only for a terminal: a per-step hook makes Keras hand every step's logs back, a sync an accelerator waits on.
    progress = [EpochProgress(config.epochs, steps_per_epoch)] if sys.stderr.isatty() else []
    checkpoints = Checkpointer(run, state, config.patience, config.checkpoint_every)
    start = state["epoch"]
    while state["epoch"] < config.epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        first, end, peak, trainable = phase_of(config, epoch)
        if epoch == first or not model.compiled:
            set_backbone_trainable(model, config.arch, trainable)
            if not trainable:
                log.info("Training the head only for %d epoch(s).", end - first)
            compile_model(model, config, peak, (end - first) * steps_per_epoch, config.warmup_epochs * steps_per_epoch)
        if epoch in (first, start):  # newly compiled
            create_step_variables(model)
        if epoch == start != first and optimizer_values is not None:
            restore(model.optimizer.variables, optimizer_values, "optimizer")
        timed = [first_step] if first_step and epoch == start else []
        stop = epoch + 1 if timed else end
        model.fit(
            data["train_batches"](epoch, stop), steps_per_epoch=steps_per_epoch, validation_data=data["val"],
            initial_epoch=epoch, epochs=stop, callbacks=[*progress, history, *callbacks, *timed,
                                                         CheckpointEachEpoch(checkpoints, end)],
            verbose=0, shuffle=False,  # the epochs' batches are already shuffled, seeded
        )
        state = checkpoints.state
    return state


def _decoded_split(files, config):
    return cached_split(files, config.image_size, config.center_crop, config.image_cache, config.image_cache_dir)


def _steps_per_epoch(examples, batch_size, drop_remainder):
    return max(examples // batch_size if drop_remainder else -(-examples // batch_size), 1)


def training_data(config, files, num_classes, devices, hands=None, settings=None):
    """Cached training and validation images, and a function giving the batches of epochs `start` to `stop - 1`;
    for a landmark model the landmark features of `hands` (each split's hands, under the hand stage `settings`)
    instead, for a fusion model both."""
    drop_remainder = devices > 1  # every device needs an equal share of each batch
    if config.hands == "landmarks":
        return _landmark_training_data(config, files, num_classes, drop_remainder, hands, settings)
    if config.hands == "fusion":
        return _fusion_training_data(config, files, num_classes, drop_remainder, hands, settings)
    train_images = _decoded_split(files["train"], config)

    def train_batches(start, stop):
        return epochs_of_batches(train_images, config.seed, range(start, stop), config.augment,
                                 num_classes=num_classes, batch_size=config.batch_size, drop_remainder=drop_remainder,
                                 augment_policy=config.augment_policy, background=config.background_augment,
                                 mix=config.mix, mix_alpha=config.mix_alpha)

    val = None
    if files["val"][0]:
        val = batches(_decoded_split(files["val"], config), num_classes, config.batch_size,
                      drop_remainder=drop_remainder)
    return {"train_batches": train_batches, "val": val,
            "steps_per_epoch": _steps_per_epoch(len(files["train"].paths), config.batch_size, drop_remainder)}


def _landmark_training_data(config, files, num_classes, drop_remainder, hands, settings):
    from keras_sign.data.landmarks import epochs_of_landmark_batches, landmark_batches
    from keras_sign.inference.hand_crops import landmark_inputs

    inputs = {split: landmark_inputs(hands[split], settings) for split in ("train", "val")}
    options = {"num_classes": num_classes, "batch_size": config.batch_size, "drop_remainder": drop_remainder}

    def train_batches(start, stop):
        return epochs_of_landmark_batches(inputs["train"], files["train"].labels, config.seed, range(start, stop),
                                          config.augment, **options)

    val = landmark_batches(inputs["val"], files["val"].labels, **options) if len(inputs["val"]) else None
    return {"train_batches": train_batches, "val": val,
            "steps_per_epoch": _steps_per_epoch(len(inputs["train"]), config.batch_size, drop_remainder)}


def _fusion_training_data(config, files, num_classes, drop_remainder, hands, settings):
    from keras_sign.data.fusion import epochs_of_fusion_batches, fusion_batches
    from keras_sign.inference.hand_crops import landmark_inputs

    splits = [split for split in ("train", "val") if files[split].paths]
    features = {split: landmark_inputs(hands[split], settings) for split in splits}
    # Each photo's row number is its label in the image cache: a batch gathers its rows' features and classes.
    squares = {split: _decoded_split(files[split]._replace(labels=list(range(len(files[split].paths)))), config)
               for split in splits}
    options = {"num_classes": num_classes, "batch_size": config.batch_size, "drop_remainder": drop_remainder,
               "augment_policy": config.augment_policy, "background": config.background_augment}

    def train_batches(start, stop):
        return epochs_of_fusion_batches(squares["train"], features["train"], files["train"].labels, config.seed,
                                        range(start, stop), config.augment, **options)

    val = (fusion_batches(squares["val"], features["val"], files["val"].labels, **options) if "val" in splits
           else None)
    return {"train_batches": train_batches, "val": val,
            "steps_per_epoch": _steps_per_epoch(len(files["train"].paths), config.batch_size, drop_remainder)}


def train(config, backend, backend_reason, resume=False, callbacks=()):
    """Train `config.arch` and write a complete run folder; return `(run, metrics)`.

    With `resume`, `config.out` is an interrupted run folder: training continues after its last
    checkpointed epoch (its split, normalisation and history are kept). `callbacks` are further
    Keras callbacks, called after each epoch's history row is written.
    """
    started = time.time()
    config = with_hand_stage(config)
    devices = configure_runtime(config, backend)
    with contextlib.ExitStack() as held:  # this process alone writes the run folder until training ends
        if resume:  # the starting point matters only if no checkpoint survived (its --init-from may be gone)
            start, (run, info) = None, open_for_resume(config, backend, held)
        else:
            start = starting_point(config, canonical_name(config.arch))
            run, info = new_run(config, backend, backend_reason, start, held)
        info.extra.update(devices=[str(device) for device in devices], dtype_policy=keras.config.dtype_policy().name)
        class_names = read_classes(run.path)
        # split.csv, kept on resume; with a hand stage the model learns from the photos that hold a hand
        files = {split: run.split_files(split).with_hands() if split != "test" else run.split_files(split)
                 for split in SPLITS}
        hands = None
        if info.preprocessing.reads_landmarks:  # the hands the split's photos hold, as the scan found them
            from keras_sign.inference.hand_crops import run_hands

            hands = {split: run_hands(run.path, files[split].paths, info.data_root) for split in ("train", "val")}
        data = training_data(config, files, len(class_names), len(devices), hands, info.hands)

        normalization = info.normalization
        model = build_model(
            info.arch, len(class_names), config.image_size, normalization["mean"], normalization["std"],
            config.dropout, config.bn_momentum, padding=info.extra["padding"],
        )
        values, state = load_resumable(run, read_state(run))
        remove_leftovers(run, state)
        if values is not None:
            log.info("Resuming %s after epoch %d of %d.", run.path, state["epoch"], config.epochs)
            restore(model.variables, values["model"], "model")
        else:
            start = start or starting_point(config, info.arch)
            fresh = start.fill(model)
            if fresh:
                log.info("Starting from %s; new initial weights for %s.", start.description, ", ".join(fresh))
        history = HistoryWriter(run.file("history.csv"), len(files["train"].paths), config.epochs,
                                finished_history(run, state))
        first_step = FirstStepTimer(started)
        state = fit_epochs(model, config, run, data, history, state, callbacks, first_step,
                           values["optimizer"] if values else None)
        if len(devices) > 1:
            keras.distribution.set_distribution(None)  # evaluation runs on one device, whatever the batch size
        save_model(model, run.file("model.keras"), optimizer=False)  # model.keras: for inference, loadable by plain Keras
        write_best_model(run, state, model)

        info.status = "finished"
        info.extra.update(
            epochs_trained=state["epoch"], stopped_early=state["stopped_early"], best_epoch=state["best_epoch"],
            best_val_accuracy=state["best_val_accuracy"],
            total_seconds=round(info.extra.get("total_seconds", 0.0) + time.time() - started, 1),
            checkpoint_seconds=state.get("checkpoint_seconds"),  # writing checkpoints, over all attempts
        )
        if first_step.seconds is not None:  # this process's: from the start of training to its first step
            info.extra["seconds_to_first_step"] = first_step.seconds
        info.write(run.path)
        trained = model if len(devices) == 1 else None  # else model.keras, loaded outside the distribution
        if len(files["val"].paths) >= MIN_CALIBRATION_IMAGES:  # temperature and reject threshold, on validation
            calibrate_run(run.path, batch_size=config.batch_size, model=trained)
        metrics = None
        if files["test"].paths:  # reports, confusion matrix, t-SNE and curves, as `keras-sign evaluate` writes them
            metrics, _, _ = evaluate_run(run.path, batch_size=config.batch_size, model=trained)
    return run, metrics


def train_or_resume(config, backend, reason, callbacks=()):
    """Train `config.out`, or finish what an earlier attempt left there: a finished run folder is kept,
    an interrupted one resumes from its checkpoint; one trained with other settings is refused.
    Return the run folder's path."""
    from keras_sign.config import HOW_NOT_WHAT, load_config

    config = with_hand_stage(config)
    folder = Path(config.out)
    if (folder / "config.yaml").is_file():
        saved = load_config(folder / "config.yaml").to_dict()
        changed = sorted(key for key, value in config.to_dict().items()
                         if key not in ("out", *HOW_NOT_WHAT) and saved.get(key) != value)
        if changed:
            raise KerasSignError(f"{folder} was trained with other settings ({', '.join(changed)}); pass another "
                                 "--out for this recipe, or the same settings to finish that one.")
    if folder.is_dir() and (folder / "run.json").is_file():
        if RunInfo.read(folder).status == "finished":
            log.info("%s is finished: kept.", folder)
            return folder
        log.info("%s was interrupted: resuming it.", folder)
        resumed = load_config(folder / "config.yaml", {"out": str(folder), "backend": backend})
        return train(resumed, backend, reason, resume=True, callbacks=callbacks)[0].path
    return train(config, backend, reason, callbacks=callbacks)[0].path
