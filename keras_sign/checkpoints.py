"""Checkpoints of a run, so `keras-sign train --resume RUN` loses at most a few seconds of training.

    keras-sign train --resume runs/digits-mobilenetv3_small-20261126-101500

`checkpoint/` in the run folder holds `epoch-NNNN.keras` (the model after the
last checkpointed epoch, optimizer state included), `best.keras` (the epoch
with the best validation accuracy so far, also with its optimizer state) and
`state.json`, which names the epoch file and carries what early stopping
needs. The epoch file is complete before `state.json` points at it, and the
old one is removed only after that, so a `kill -9` at any moment leaves a
state that resumes: the epochs after the checkpoint are trained again. A
checkpoint damaged on disk afterwards (a full disk, a bad copy) is not
trusted: resume falls back to `best.keras`, or to the start.

Writing a checkpoint takes a fixed time (0.35 s for MobileNetV3-Small, whose
file with the Adam state is 19 MB), which is a third of an epoch on a small
dataset. So by default a checkpoint is written after the first epoch and
then whenever the epochs since the last one took 20 times as long as writing
it (every epoch once epochs are that long): checkpoints cost at most 5% of
the training time, and a kill loses at most 20 writes' worth of training
(7 s here).
`--checkpoint-every N` writes after every Nth epoch instead. The last epoch
and an early stop are always written.
"""

import logging
import time

from keras_sign.errors import KerasSignError
from keras_sign.runs import atomic_write_bytes

log = logging.getLogger("keras_sign")

FOLDER = "checkpoint"
STATE = f"{FOLDER}/state.json"
BEST = f"{FOLDER}/best.keras"
MONITOR = "val_accuracy"
WRITE_SHARE = 0.05  # by default checkpoints may take this share of the training time


def fresh_state():
    return {"epoch": 0, "model": None, "best_epoch": None, "best_val_accuracy": None, "epochs_without_improvement": 0,
            "stopped_early": False}


def read_state(run):
    """The checkpoint state of a run folder, or a fresh one when no epoch has finished yet."""
    path = run.file(STATE)
    return run.read_json(STATE) if path.is_file() else fresh_state()


def load_resumable(run, state):
    """`(model, state)` to continue from: the checkpointed model compiled with its optimizer state.

    When the epoch file named by the state is damaged, the run goes back to `best.keras` (copied
    to that epoch's file, so the best file can move on independently) and trains the epochs after
    it again; when that is damaged too, training starts over. Each step is said in a warning.
    The model is None when there is nothing to resume (a fresh state, or nothing intact).
    """
    if not state["model"]:
        return None, state
    try:
        return run.load_model(state["model"], compile=True), state
    except KerasSignError as error:
        log.warning("%s", error)
    if state["best_epoch"] and run.file(BEST).is_file():
        try:
            model = run.load_model(BEST, compile=True)
        except KerasSignError as error:
            log.warning("%s", error)
        else:
            state = dict(state, epoch=state["best_epoch"], model=f"{FOLDER}/epoch-{state['best_epoch']:04d}.keras",
                         epochs_without_improvement=0, stopped_early=False)
            atomic_write_bytes(run.file(state["model"]), run.file(BEST).read_bytes())
            run.write_json(STATE, state)
            log.warning("Resuming from %s instead (epoch %d); the epochs after it are trained again.", BEST,
                        state["epoch"])
            return model, state
    log.warning("No intact checkpoint in %s: training starts again from the first epoch.", run.file(FOLDER))
    return None, fresh_state()


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
        self.best = None  # the best epoch's variable values, while best.keras on disk is older

    def after_epoch(self, model, logs, seconds, last):
        """Record the epoch just trained (`logs`: its metrics, `seconds`: how long it took) and write a
        checkpoint when it is due or `last`; return the state."""
        state = self.state = dict(self.state, epoch=self.state["epoch"] + 1)
        value = logs.get(MONITOR)
        if value is not None:
            if state["best_val_accuracy"] is None or value > state["best_val_accuracy"]:
                state.update(best_epoch=state["epoch"], best_val_accuracy=float(value), epochs_without_improvement=0)
                self.best = [variable.numpy() for variable in _saved_variables(model)]
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
        return self.write_seconds is None or self.trained_seconds * WRITE_SHARE >= self.write_seconds

    def _write(self, model):
        started = time.time()
        state, previous = self.state, self.state["model"]
        state["model"] = f"{FOLDER}/epoch-{state['epoch']:04d}.keras"
        self.run.save_model(model, state["model"])
        if self.best is not None:  # best.keras catches up: this epoch's file, or the best epoch's values
            if state["best_epoch"] == state["epoch"]:
                atomic_write_bytes(self.run.file(BEST), self.run.file(state["model"]).read_bytes())
            else:
                _save_with_values(self.run, model, self.best, BEST)
            self.best = None
        self.run.write_json(STATE, state)
        if previous and previous != state["model"]:
            self.run.file(previous).unlink(missing_ok=True)
        self.write_seconds, self.trained_seconds = time.time() - started, 0.0


def _saved_variables(model):
    """What a `.keras` file of a compiled model holds: the model's and the optimizer's variables."""
    return [*model.variables, *model.optimizer.variables]


def _save_with_values(run, model, values, name):
    """Save `model` as `name` with its saved variables set to `values`, then put its own values back."""
    variables = _saved_variables(model)
    own = [variable.numpy() for variable in variables]
    try:
        for variable, value in zip(variables, values):
            variable.assign(value)
        run.save_model(model, name)
    finally:
        for variable, value in zip(variables, own):
            variable.assign(value)


def remove_leftovers(run, state):
    """Delete what a killed run left half done: epoch files `state.json` does not name, and temp files
    that were never renamed into place. Nothing trusts them."""
    stale = [p for p in run.file(FOLDER).glob("epoch-*.keras") if f"{FOLDER}/{p.name}" != state["model"]]
    temporary = [p for folder in (run.path, run.file(FOLDER)) for p in folder.glob(".*.tmp*")]
    for path in stale + temporary:
        path.unlink(missing_ok=True)
