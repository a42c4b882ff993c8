"""Per-epoch checkpoints of a run, so `keras-sign train --resume RUN` loses nothing but the unfinished epoch.

    keras-sign train --resume runs/digits-mobilenetv3_small-20261126-101500

`checkpoint/` in the run folder holds `epoch-NNNN.keras` (the model after the
last finished epoch, optimizer state included), `best.keras` (the best
validation accuracy so far) and `state.json`, which names the epoch file and
carries what early stopping needs. The epoch file is complete before
`state.json` points at it, and the old one is removed only after that, so a
`kill -9` at any moment leaves a state that resumes: at worst the epoch being
trained is trained again. A checkpoint damaged on disk afterwards (a full disk,
a bad copy) is not trusted: resume falls back to `best.keras`, or to the start.
"""

import logging

from keras_sign.errors import KerasSignError
from keras_sign.runs import atomic_write_bytes

log = logging.getLogger("keras_sign")

FOLDER = "checkpoint"
STATE = f"{FOLDER}/state.json"
BEST = f"{FOLDER}/best.keras"
MONITOR = "val_accuracy"


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


def record_epoch(run, model, state, logs, patience):
    """Checkpoint `model` after the epoch `state["epoch"] + 1`; update and return the state.

    `logs` are the epoch's metrics; with a validation split the best model is kept as `best.keras`
    and `patience` epochs without a better validation accuracy set `stopped_early`.
    """
    state = dict(state, epoch=state["epoch"] + 1)
    value = logs.get(MONITOR)
    if value is not None:
        if state["best_val_accuracy"] is None or value > state["best_val_accuracy"]:
            run.save_model(model, BEST)
            state.update(best_epoch=state["epoch"], best_val_accuracy=float(value), epochs_without_improvement=0)
        else:
            state["epochs_without_improvement"] += 1
        if patience and state["epochs_without_improvement"] >= patience:
            state["stopped_early"] = True
            log.info("No better %s for %d epochs: stopping early after epoch %d (best: epoch %d, %.3f).",
                     MONITOR, patience, state["epoch"], state["best_epoch"], state["best_val_accuracy"])
    previous = state["model"]
    state["model"] = f"{FOLDER}/epoch-{state['epoch']:04d}.keras"
    run.save_model(model, state["model"])
    run.write_json(STATE, state)
    if previous and previous != state["model"]:
        run.file(previous).unlink(missing_ok=True)
    return state


def remove_leftovers(run, state):
    """Delete what a killed run left half done: epoch files `state.json` does not name, and temp files
    that were never renamed into place. Nothing trusts them."""
    stale = [p for p in run.file(FOLDER).glob("epoch-*.keras") if f"{FOLDER}/{p.name}" != state["model"]]
    temporary = [p for folder in (run.path, run.file(FOLDER)) for p in folder.glob(".*.tmp*")]
    for path in stale + temporary:
        path.unlink(missing_ok=True)
