"""One sweep worker: take a queued trial, train its run folder, record the result; until none is left.

A trial is taken by moving it from WAITING to RUNNING in the storage, which succeeds for one
worker only. While training, the worker holds a lock file (`fcntl.flock`, released by the
operating system however the process ends) and, on a database server, Optuna's heartbeat. A
RUNNING trial of this machine whose lock is free, or one whose heartbeat went silent, belonged to
a worker that died: it is marked failed and queued again with the same values, and whoever takes
it resumes its run folder from the last checkpoint, as `train --resume` does.
"""

import contextlib
import logging
import os
import socket
import threading
import time
import warnings
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.locks import FolderLock
from keras_sign.studies.sweep.plan import trial_name
from keras_sign.studies.sweep.results import trial_result

log = logging.getLogger("keras_sign")

CLAIM_ATTR = "keras_sign_claim"
UNCLAIMED_GRACE_SECONDS = 60  # a trial RUNNING this long without its worker's claim record was never started
POLL_SECONDS = 5


def take_trial(study, storage, plan):
    """The next trial for this worker (a queued one first), or None when nothing is left to start."""
    import optuna
    from optuna.trial import TrialState

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    if plan.search == "tpe":
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        if len(study.get_trials(deepcopy=False, states=counted)) < plan.trials:
            return study.ask()
    return None


def suggest(trial, plan):
    """The trial's values of the swept settings (queued values come back as they were queued)."""
    values = {}
    for name, space in plan.params.items():
        if isinstance(space, list):
            values[name] = trial.suggest_categorical(name, space)
        elif all(isinstance(space[end], int) for end in ("low", "high")):
            values[name] = trial.suggest_int(name, space["low"], space["high"], log=space["log"])
        else:
            values[name] = trial.suggest_float(name, space["low"], space["high"], log=space["log"])
    return values


def requeue_dead_trials(study, storage):
    """Fail and queue again every RUNNING trial whose worker is gone (this machine: its lock is free;
    elsewhere: Optuna's heartbeat, on a database server)."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # heartbeat storages only; queues the retries itself
    host = socket.gethostname()
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        claim = frozen.system_attrs.get(CLAIM_ATTR) or {}
        if claim.get("trial_id") == frozen._trial_id:
            if claim.get("host") != host or _lock_held(Path(claim["lock"])):
                continue
        elif time.time() - frozen.datetime_start.timestamp() < UNCLAIMED_GRACE_SECONDS:
            continue  # just taken; its worker is writing its claim
        if fail_and_requeue(study, storage, frozen._trial_id):
            log.warning("Trial %d's worker is gone; its cell is queued again and resumes from its checkpoint.",
                        frozen.number)


def fail_and_requeue(study, storage, trial_id):
    """Mark a RUNNING trial failed and queue its values again; False when another worker did it first."""
    import optuna
    from optuna.trial import TrialState

    try:
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, storage.get_trial(trial_id))
    return True


def _lock_held(folder):
    try:
        with FolderLock(folder, "Trial"):
            return False
    except KerasSignError:
        return True
    except OSError:  # the folder is gone or unreadable: nobody holds it here
        return False


@contextlib.contextmanager
def heartbeat(storage, trial):
    """Record the trial's heartbeat every few seconds while training, where the storage has heartbeats."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()  # None: a journal file
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat():
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def prune_callback(trial):
    """A Keras callback that reports each epoch's validation accuracy to the trial and stops a trial the
    median pruner gives up on."""
    import keras
    import optuna

    class ReportToPruner(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs and logs.get("val_accuracy") is not None:
                trial.report(float(logs["val_accuracy"]), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch + 1}: below the median of earlier trials")

    return ReportToPruner()


def run_trial(study, storage, plan, trial, sweep_dir, backend, reason):
    """Train one trial's run folder (resuming what a dead worker left) and tell the study its result."""
    import keras
    import optuna

    from keras_sign.training.fit import train_or_resume

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(storage.get_trial(trial._trial_id))
    values = suggest(trial, plan)
    name = trial_name(plan, values, trial.number if retried is None else retried)
    run_dir = Path(sweep_dir) / "trials" / name
    lock_folder = (Path(sweep_dir) / "claims" / f"trial-{trial._trial_id}").resolve()  # read by other workers
    lock_folder.mkdir(parents=True, exist_ok=True)
    with FolderLock(lock_folder, "Trial"), heartbeat(storage, trial):
        storage.set_trial_system_attr(trial._trial_id, CLAIM_ATTR, {
            "trial_id": trial._trial_id, "host": socket.gethostname(), "pid": os.getpid(), "lock": str(lock_folder)})
        trial.set_user_attr("run", str(run_dir))
        log.info("Trial %d: %s -> %s", trial.number, ", ".join(f"{k} {v:g}" for k, v in values.items()), run_dir)
        config = plan.trial_config(values, run_dir, backend)
        callbacks = [prune_callback(trial)] if plan.prune else []
        pruned = False
        try:
            train_or_resume(config, backend, reason, callbacks=callbacks)
        except optuna.TrialPruned as stop:
            pruned = True
            log.info("Trial %d pruned at %s.", trial.number, stop)
        finally:
            keras.backend.clear_session()  # the next trial starts from an empty graph
        result = trial_result(run_dir)
        for key, value in result.items():
            trial.set_user_attr(key, value)
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        study.tell(trial, result["best_val_accuracy"])
        log.info("Trial %d: best validation accuracy %.4f", trial.number, result["best_val_accuracy"])


def work(study, storage, plan, sweep_dir, backend, reason, on_trial_end=None):
    """Run trials until the sweep has none left to start and none running elsewhere that could come back."""
    from optuna.trial import TrialState

    while True:
        requeue_dead_trials(study, storage)
        trial = take_trial(study, storage, plan)
        if trial is not None:
            try:
                run_trial(study, storage, plan, trial, sweep_dir, backend, reason)
            except BaseException:
                _fail_quietly(study, storage, trial)
                raise
            if on_trial_end:
                on_trial_end()
            continue
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            return
        time.sleep(POLL_SECONDS)  # others are training; one may die and its cell come back


def _fail_quietly(study, storage, trial):
    """Mark a trial this worker gave up on (Ctrl-C, an error) as failed and queue it again."""
    with contextlib.suppress(Exception):  # the storage may be what failed; the next start recovers the trial
        fail_and_requeue(study, storage, trial._trial_id)
