"""Checkpoints of a run, so `keras-sign train --resume RUN` loses at most a few seconds of training.

    keras-sign train --resume runs/digits-mobilenetv3_small-20261126-101500

`checkpoint/` in the run folder holds `epoch-NNNN.npz` (the values of the
model's and the optimizer's variables after the last checkpointed epoch),
`best.npz` (the same for the epoch with the best validation accuracy so far)
and `state.json`, which names the epoch file and carries what early stopping
needs. The epoch file is complete before `state.json` points at it, and the
old one is removed only after that, so a `kill -9` at any moment leaves a
state that resumes: the model is built again from the run's record, takes the
checkpoint's values, and the epochs after the checkpoint are trained again.
A checkpoint damaged on disk afterwards (a full disk, a bad copy) is not
trusted (an `.npz` is a zip with checksums): resume falls back to `best.npz`,
or to the start. When training ends, `best.keras` beside `model.keras` is the
best epoch's model, for inference like `model.keras`.

A checkpoint is the variables' values alone, not a `.keras` file, because
Keras' saving walks every layer and optimizer slot in Python: for
MobileNetV3-Small's 19 MB, 0.31 s as `.keras` against 0.05 s as `.npz`
(docs/benchmarks.md, "Checkpoints per architecture"). A checkpoint is written after
the first epoch and then whenever the epochs since the last one took 33 times
as long as writing it and keeping the new best epochs' values in memory
(every epoch once epochs are that long): checkpoints cost about 3% of the
training time, and a kill loses at most 33 writes' worth of training.
`--checkpoint-every N` writes after every Nth epoch instead. The last epoch
and an early stop are always written.
"""

import logging
import time
import zipfile
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.models.saving import load_model, save_model
from keras_sign.runs.atomic import atomic_write_bytes, replaced_atomically
from keras_sign.runs.folder import check_model_file

log = logging.getLogger("keras_sign")

FOLDER = "checkpoint"
STATE = f"{FOLDER}/state.json"
BEST = f"{FOLDER}/best.npz"
BEST_MODEL = "best.keras"  # in the run folder, written when training ends
OLDER_BEST = f"{FOLDER}/best.keras"  # what keras-sign before 0.2's .npz checkpoints wrote
MONITOR = "val_accuracy"
WRITE_SHARE = 0.03  # by default checkpoints are spaced to take this share of the training time


def fresh_state():
    return {"epoch": 0, "model": None, "best_epoch": None, "best_val_accuracy": None, "epochs_without_improvement": 0,
            "stopped_early": False, "checkpoint_seconds": 0.0}


def read_state(run):
    """The checkpoint state of a run folder, or a fresh one when no epoch has finished yet."""
    path = run.file(STATE)
    return run.read_json(STATE) if path.is_file() else fresh_state()


def load_resumable(run, state):
    """`(values, state)` to continue from: the checkpointed values (see `read_values`) and their state.

    When the epoch file named by the state is damaged, the run goes back to `best.npz` (or an older
    keras-sign's `best.keras`, copied
    to that epoch's file, so the best file can move on independently) and trains the epochs after
    it again; when that is damaged too, training starts over. Each step is said in a warning.
    The values are None when there is nothing to resume (a fresh state, or nothing intact).
    """
    if not state["model"]:
        return None, state
    try:
        return read_values(run, state["model"]), state
    except KerasSignError as error:
        log.warning("%s", error)
    best = _best_file(run)
    if state["best_epoch"] and run.file(best).is_file():
        try:
            values = read_values(run, best)
        except KerasSignError as error:
            log.warning("%s", error)
        else:
            state = dict(state, epoch=state["best_epoch"], model=_epoch_file(state["best_epoch"], Path(best).suffix),
                         epochs_without_improvement=0, stopped_early=False)
            atomic_write_bytes(run.file(state["model"]), run.file(best).read_bytes())
            run.write_json(STATE, state)
            log.warning("Resuming from %s instead (epoch %d); the epochs after it are trained again.", best,
                        state["epoch"])
            return values, state
    log.warning("No intact checkpoint in %s: training starts again from the first epoch.", run.file(FOLDER))
    return None, fresh_state()


def checkpoint_values(model):
    """What a checkpoint keeps of a compiled model: its variables' values and its optimizer's, in order."""
    return {"model": [variable.numpy() for variable in model.variables],
            "optimizer": [variable.numpy() for variable in model.optimizer.variables]}


def write_values(run, name, values):
    """Write `checkpoint_values` to the run folder's file `name` (an `.npz`), atomically."""
    arrays = {f"{part}_{index:05d}": value for part, values in values.items() for index, value in enumerate(values)}
    run.file(FOLDER).mkdir(exist_ok=True)
    with replaced_atomically(run.file(name)) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def read_values(run, name):
    """The `checkpoint_values` in the run folder's file `name`, or a KerasSignError when it is damaged.

    A `.keras` checkpoint of an older keras-sign is read through Keras.
    """
    if name.endswith(".keras"):
        from keras_sign.training import optimizers, schedules  # noqa: F401  (what the saved optimizer names)

        return checkpoint_values(load_model(run.file(name), compile=True))
    check_model_file(run.file(name))  # a zip too: each member's checksum
    try:
        with np.load(run.file(name)) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise KerasSignError(f"{run.file(name)} is damaged or cut short ({error}).") from None
    return {part: [arrays[key] for key in sorted(arrays) if key.startswith(f"{part}_")] for part in ("model", "optimizer")}


def restore(variables, values, name):
    """Assign checkpointed `values` to `variables` (a model's or its optimizer's), checking that they fit."""
    if [tuple(variable.shape) for variable in variables] != [value.shape for value in values]:
        raise KerasSignError(f"The checkpoint's {name} variables do not fit the model this run builds; "
                             "train it again with a new --out.")
    for variable, value in zip(variables, values):
        variable.assign(value)


def write_best_model(run, state, model):
    """`best.keras`: the best validation epoch's model, for inference (no optimizer) like `model.keras`,
    which must already be written. Nothing without a validation split."""
    if state["best_epoch"] is None:
        return
    if state["best_epoch"] == state["epoch"]:  # model.keras is that epoch's
        atomic_write_bytes(run.file(BEST_MODEL), run.file("model.keras").read_bytes())
        return
    try:
        best = read_values(run, _best_file(run))["model"]
    except KerasSignError as error:  # the training itself is done and saved: say so and go on
        log.warning("%s; %s is not written.", error, BEST_MODEL)
        return
    own = [variable.numpy() for variable in model.variables]
    try:
        restore(model.variables, best, "model")
        save_model(model, run.file(BEST_MODEL), optimizer=False)
    finally:
        restore(model.variables, own, "model")


def _epoch_file(epoch, suffix=".npz"):
    return f"{FOLDER}/epoch-{epoch:04d}{suffix}"


def _best_file(run):
    """`best.npz`, or the `.keras` best file of a run folder checkpointed by an older keras-sign."""
    return OLDER_BEST if not run.file(BEST).is_file() and run.file(OLDER_BEST).is_file() else BEST


def finished_history(run, state):
    """`history.csv` rows of the finished epochs: an epoch logged but not checkpointed is trained again."""
    return [row for row in run.read_history() if int(row["epoch"]) <= state["epoch"]]


class Checkpointer:
    """Keeps the checkpoint state of a training run and writes it when it is due (see the module's text).

    `every`: write after every Nth epoch; None spaces the checkpoints by their measured cost.
    """

    def __init__(self, run, state, patience=None, every=None):
        self.run, self.state, self.patience, self.every = run, state, patience, every
        self.write_seconds = None  # how long the last checkpoint took to write; None before the first
        self.trained_seconds = 0.0  # spent training since the last checkpoint
        self.copy_seconds = 0.0  # spent since then keeping new best epochs' values in memory
        self.best = None  # the best epoch's checkpoint values, while best.npz on disk is older

    def after_epoch(self, model, logs, seconds, last):
        """Record the epoch just trained (`logs`: its metrics, `seconds`: how long it took) and write a
        checkpoint when it is due or `last`; return the state."""
        state = self.state = dict(self.state, epoch=self.state["epoch"] + 1)
        value = logs.get(MONITOR)
        if value is not None:
            if state["best_val_accuracy"] is None or value > state["best_val_accuracy"]:
                state.update(best_epoch=state["epoch"], best_val_accuracy=float(value), epochs_without_improvement=0)
                started = time.time()
                self.best = checkpoint_values(model)
                self._spent(copy=time.time() - started)
            else:
                state["epochs_without_improvement"] += 1
            if self.patience and state["epochs_without_improvement"] >= self.patience:
                state["stopped_early"] = True
                log.info("No better %s for %d epochs: stopping early after epoch %d (best: epoch %d, %.3f).",
                         MONITOR, self.patience, state["epoch"], state["best_epoch"], state["best_val_accuracy"])
        self.trained_seconds += seconds
        if last or state["stopped_early"] or self._due():
            self._write(model)
        return state

    def _due(self):
        if self.every:
            return self.state["epoch"] % self.every == 0
        if self.write_seconds is None:  # the first epoch: writing it measures what a write costs
            return True
        # the next write and the copies of new best epochs since the last one, against the training since then
        return self.trained_seconds * WRITE_SHARE >= self.write_seconds + self.copy_seconds

    def _write(self, model):
        started = time.time()
        state, previous = self.state, self.state["model"]
        values = checkpoint_values(model)
        state["model"] = _epoch_file(state["epoch"])
        write_values(self.run, state["model"], values)
        if self.best is not None:  # best.npz catches up: this epoch's values, or the best epoch's
            write_values(self.run, BEST, values if state["best_epoch"] == state["epoch"] else self.best)
            self.best = None
        self.run.write_json(STATE, state)
        if previous and previous != state["model"]:
            self.run.file(previous).unlink(missing_ok=True)
        self.trained_seconds, self.copy_seconds = 0.0, 0.0
        self.write_seconds = time.time() - started
        self._spent(write=self.write_seconds)

    def _spent(self, copy=0.0, write=0.0):
        """Count checkpoint work: in `checkpoint_seconds` of the state (run.json reports it) and, for copies,
        towards the next write."""
        self.copy_seconds += copy
        self.state["checkpoint_seconds"] = round(self.state.get("checkpoint_seconds", 0.0) + copy + write, 3)


def remove_leftovers(run, state):
    """Delete what a killed run left half done: epoch files `state.json` does not name, and temp files
    that were never renamed into place. Nothing trusts them."""
    stale = [p for p in run.file(FOLDER).glob("epoch-*") if f"{FOLDER}/{p.name}" != state["model"]]
    temporary = [p for folder in (run.path, run.file(FOLDER)) for p in folder.glob(".*.tmp*")]
    for path in stale + temporary:
        path.unlink(missing_ok=True)
