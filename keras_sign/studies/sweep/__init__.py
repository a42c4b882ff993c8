"""`keras-sign sweep`: a grid (or TPE search) of training runs on Optuna, resumable and shared by workers.

    keras-sign sweep --arch shufflenetv2 --dataset numbers --lr 1e-2,1e-3,1e-4,1e-5 \
        --batch-size 16,32,64,128 --epochs 10 --out sweeps/numbers [--workers 2]
    keras-sign sweep --config configs/paper/sweep-numbers-shufflenetv2.yaml --out sweeps/numbers
    keras-sign sweep --report sweeps/numbers                       # table and figures, at any time
    keras-sign sweep ... --storage postgresql://host/db --out sweeps/numbers   # on the first machine
    keras-sign sweep --join postgresql://host/db --study numbers                # on every other machine

The sweep folder holds sweep.json (the plan and where the study is stored), the default storage
(a journal file), one complete run folder per trial under trials/, and the results (see
`keras_sign.studies.sweep.results`). Started again on the same folder, a sweep goes on where it stopped:
finished trials are kept and a trial whose worker died resumes from its checkpoint.
"""

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import atomic_write_json, check_writable
from keras_sign.runs.locks import FolderLock
from keras_sign.studies.sweep import storage as storages
from keras_sign.studies.sweep.plan import SweepPlan
from keras_sign.studies.sweep.results import progress, report

log = logging.getLogger("keras_sign")

SWEEP_FILE = "sweep.json"
WORKERS_LOCK = ".workers.lock"  # each worker process holds it shared for its whole life
PROGRESS_SECONDS = 10
BAR_WIDTH = 24
WORKER_MEMORY_BYTES = 1.2e9  # resident peak of a worker training MobileNetV3-Small at 64 px on the sample: 1.15-1.18 GB
PARENT_ENV = "KERAS_SIGN_SWEEP_PARENT"  # the launcher's PID, given to its workers
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _read_sweep_file(sweep_dir):
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise KerasSignError(f"{sweep_dir} is not a sweep folder (no {SWEEP_FILE}); pass the --out of a `keras-sign sweep`.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise KerasSignError(f"{path} is damaged ({error}); restore it or start the sweep in a new folder.") from None


def _write_sweep_file(sweep_dir, plan, storage_url, study_name, backend):
    """Record the plan and the storage; an existing record must hold the same plan."""
    path = Path(sweep_dir) / SWEEP_FILE
    if path.is_file():
        saved = _read_sweep_file(sweep_dir)
        differences = plan.differences(SweepPlan.from_dict(saved["plan"]))
        if differences:
            raise KerasSignError(f"{sweep_dir} holds a sweep with another plan ({'; '.join(differences)}); use a "
                                 "new --out for this one, or the same settings to finish that sweep.")
        if saved["storage"] != storage_url or saved["study"] != study_name:
            where = storages.redact(saved["storage"]) if saved["storage"] else "its own journal file"
            raise KerasSignError(f"{sweep_dir} records its trials in {where} (study {saved['study']}); pass that "
                                 "--storage and --study, or use a new --out.")
    atomic_write_json(path, {"plan": plan.to_dict(), "storage": storage_url, "study": study_name, "backend": backend})


def check_batch_sizes(plan):
    """Refuse batch sizes larger than the training split before any trial starts."""
    from keras_sign.training.preparation import scan_and_split

    sizes = plan.params.get("batch_size")
    if not isinstance(sizes, list):
        sizes = [sizes["high"]] if isinstance(sizes, dict) else [plan.fixed["batch_size"]]
    config = plan.trial_config(plan.cells()[0] if plan.search == "grid" else {}, "unused", "auto")
    train_images = scan_and_split(config)[3]["train"]
    too_large = [size for size in sizes if size > train_images]
    if too_large:
        raise KerasSignError(f"Batch size {', '.join(map(str, too_large))} is larger than the training split "
                             f"({train_images} images); use smaller batch sizes or more data.")


def _open(sweep_dir, storage_url):
    """The sweep's storage: the database at `storage_url`, or (None) the journal file in the sweep folder,
    found relative to the folder so that a moved sweep folder keeps working."""
    return storages.open_storage(storage_url or Path(sweep_dir) / storages.JOURNAL_FILE)


@contextlib.contextmanager
def _locked(sweep_dir):
    """The sweep folder for this launcher alone: its workers share it, a second launcher is told what to do."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    check_writable(sweep_dir, "--out")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(FolderLock(sweep_dir, "Sweep folder"))
        except KerasSignError as error:
            raise KerasSignError(f"{error} To run more trials at once, start it with --workers N; from another "
                                 "machine use --storage and --join.") from None
        check_no_workers_left(sweep_dir)
        yield


def check_no_workers_left(sweep_dir):
    """Refuse to launch while worker processes of an earlier launch still work the folder (its launcher was
    killed where they could not die with it): they hold the workers' lock, shared."""
    handle = os.open(Path(sweep_dir) / WORKERS_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise KerasSignError(f"Worker processes of an earlier launch still work {sweep_dir} (its launcher was "
                             "stopped); wait for them to finish or stop them (`pkill -f 'sweep --worker-of'`), "
                             "then start the sweep again.") from None
    finally:
        os.close(handle)


def hold_workers_lock(sweep_dir):
    """This worker's share of the workers' lock, held until the process ends (the OS releases it)."""
    handle = os.open(Path(sweep_dir) / WORKERS_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def die_with_launcher():
    """End this worker when its launcher ends, however it ends (kill -9 included): Linux's parent-death
    signal; elsewhere the next launch sees the worker through the workers' lock and waits for it."""
    parent = int(os.environ.get(PARENT_ENV, "0"))
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent and os.getppid() != parent:  # the launcher died before the signal was asked for
        raise SystemExit(f"the sweep's launcher (PID {parent}) is gone")


def start(plan, sweep_dir, workers, backend, storage_url=None, study_name=None):
    """Create or continue the sweep in `sweep_dir` and run `workers` workers until it is done."""
    check_batch_sizes(plan)
    study_name = study_name or Path(sweep_dir).resolve().name
    with _locked(sweep_dir):
        _write_sweep_file(sweep_dir, plan, storage_url, study_name, backend)
        storage = _open(sweep_dir, storage_url)
        study = storages.create_or_load(storage, study_name, plan)
        return _run_workers(study, storage, plan, sweep_dir, workers, backend)


def join(storage_url, study_name, sweep_dir, workers, backend):
    """Add this machine's workers to a sweep another machine started on a shared storage."""
    if "://" not in str(storage_url):
        raise KerasSignError("--join takes the database URL a sweep was started with (--storage), e.g. "
                             "postgresql://user@host/db; on one machine, add workers with --workers instead.")
    storage = storages.open_storage(storage_url)
    study = storages.load(storage, study_name)
    plan = storages.plan_of(study)
    with _locked(sweep_dir):
        _write_sweep_file(sweep_dir, plan, storage_url, study_name, backend)
        return _run_workers(study, storage, plan, sweep_dir, workers, backend)


def redraw(sweep_dir):
    """Write and return the report of a sweep folder, finished or not."""
    record = _read_sweep_file(sweep_dir)
    storage = _open(sweep_dir, record["storage"])
    study = storages.load(storage, record["study"], SweepPlan.from_dict(record["plan"]))
    return report(study, SweepPlan.from_dict(record["plan"]), sweep_dir)


def work_in_folder(sweep_dir):
    """A worker process of a local sweep (`--workers N` starts N of them)."""
    from keras_sign.backend import select_backend
    from keras_sign.studies.sweep.worker import work

    die_with_launcher()
    hold_workers_lock(sweep_dir)
    record = _read_sweep_file(sweep_dir)
    plan = SweepPlan.from_dict(record["plan"])
    storage = _open(sweep_dir, record["storage"])
    study = storages.load(storage, record["study"], plan)
    backend, reason = select_backend(record["backend"], plan.fixed.get("deterministic", False))
    work(study, storage, plan, sweep_dir, backend, reason)


def progress_line(study, plan, workers, started):
    """`sweep NAME [#####.....] 5/16 done, 2 running, 9 left; 48 s per trial; about 6 min left`."""
    from optuna.trial import TrialState

    done, running, left = progress(study, plan)
    total = max(plan.total_trials(), 1)
    filled = round(BAR_WIDTH * done / total)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    durations = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.datetime_complete and t.datetime_start and t.datetime_complete.timestamp() > started]
    line = f"sweep {study.study_name} [{bar}] {done}/{total} done, {running} running, {left} left"
    if durations:
        per_trial = sum(durations) / len(durations)
        remaining = per_trial * (left + running / 2) / max(workers, 1)
        line += f"; {per_trial:.0f} s per trial; about {remaining / 60:.0f} min left"
    return line


def _run_workers(study, storage, plan, sweep_dir, workers, backend):
    from keras_sign.backend import select_backend
    from keras_sign.studies.sweep.worker import work

    started = time.time()
    log.info("%s", progress_line(study, plan, workers, started))
    workers = worker_count(workers, study, plan)
    if workers == 0:
        log.info("Every trial of the sweep is done.")
    elif workers == 1:  # in this process: the trial's epoch lines go straight to the terminal
        backend_name, reason = select_backend(backend, plan.fixed.get("deterministic", False))
        work(study, storage, plan, sweep_dir, backend_name, reason,
             on_trial_end=lambda: (log.info("%s", progress_line(study, plan, workers, started)),
                                   report(study, plan, sweep_dir)))
    else:
        _supervise(study, plan, sweep_dir, workers, started)
        log.info("%s", progress_line(study, plan, workers, started))  # one worker logged it after its last trial
    return report(study, plan, sweep_dir)


def worker_count(asked, study, plan, cores=None, available=None):
    """The workers to start: no more than the trials left to run (each extra one would start, load TensorFlow
    and find nothing to do), with a warning when they outnumber the cores or would outgrow the memory."""
    done, _, _ = progress(study, plan)
    left = max(plan.total_trials() - done, 0)  # running ones included: a dead worker's trial comes back
    count = min(asked, left)
    if count < asked:
        log.info("%d worker(s) asked for, %d started: the sweep has %d trial(s) left.", asked, count, left)
    cores = cores or os.cpu_count() or 1
    if count > cores:
        log.warning("%d workers on %d cores: they share the cores, so each trial takes longer; more workers than "
                    "cores do not finish the sweep sooner.", count, cores)
    available = available_memory() if available is None else available
    if available and count * WORKER_MEMORY_BYTES > available:
        log.warning("%d workers need about %.0f GB while they train, and %.1f GB of memory is free: the machine may "
                    "run out of memory (use --workers %d or fewer).", count, count * WORKER_MEMORY_BYTES / 1e9,
                    available / 1e9, max(int(available // WORKER_MEMORY_BYTES), 1))
    return count


def available_memory():
    """Bytes of memory free for new processes (Linux's MemAvailable), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _supervise(study, plan, sweep_dir, workers, started):
    """Start `workers` worker processes (logs in SWEEP/workers/) and show progress until they end."""
    logs = Path(sweep_dir) / "workers"
    logs.mkdir(exist_ok=True)
    processes = []
    try:
        for number in range(1, workers + 1):
            handle = open(logs / f"worker-{number}.log", "a")
            processes.append((subprocess.Popen([sys.executable, "-m", "keras_sign.cli", "sweep", "--worker-of",
                                                str(sweep_dir)], stdout=handle, stderr=subprocess.STDOUT,
                                               env={**os.environ, "PYTHONUNBUFFERED": "1",
                                                    PARENT_ENV: str(os.getpid())}), handle, number))
        log.info("Started %d worker processes (PIDs %s); their logs are in %s.", len(processes),
                 ", ".join(str(process.pid) for process, _, _ in processes), logs)
        shown = None
        while any(process.poll() is None for process, _, _ in processes):
            time.sleep(PROGRESS_SECONDS)
            line = progress_line(study, plan, workers, started)
            epochs = [f"worker {n}: {_last_line(logs / f'worker-{n}.log')}" for _, _, n in processes]
            if (line, epochs) != shown:
                log.info("%s", line)
                for epoch_line in epochs:
                    log.info("  %s", epoch_line)
                report(study, plan, sweep_dir)
                shown = line, epochs
    finally:
        for process, handle, _ in processes:
            if process.poll() is None:
                process.terminate()  # its trial is picked up again (lock released) on the next start
            process.wait()
            handle.close()
    failed = [n for process, _, n in processes if process.returncode]
    if failed:
        last = _last_line(logs / f"worker-{failed[0]}.log")
        raise KerasSignError(f"Worker(s) {', '.join(map(str, failed))} stopped with an error ({last}); see "
                             f"{logs}. Start the sweep again to go on where it stopped.")


def _last_line(path):
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""
