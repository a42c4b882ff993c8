"""Shared fixtures: real images from ../shared/data (skipped with a reason when absent) and the sample."""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# In-process tests share one backend; every backend gets its own process in test_end_to_end.py.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Two xdist workers share the cores: one compute thread each (TensorFlow, PyTorch; the processes tests start
# inherit it) instead of every process starting a thread per core that then fight.
for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# JAX processes compile with LLVM's optimisations off: the tests wait on XLA compiling far more than on the
# compiled code (plain Keras predicting with three models: 21 s -> 12 s). It changes JAX's rounding, so a test
# that judges how well JAX trains removes it (test_end_to_end.py).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

collect_ignore = ["parity/make_fixtures.py"]  # a script for a torchvision environment, not a test module

# The modules that take longest on 2 cores (their tests' seconds added up, measured), run first: xdist hands
# out work in this order (with --no-loadscope-reorder), and a long module handed out last keeps one worker
# busy while the other has nothing left to do.
LONGEST_FIRST = ["test_export", "test_training", "test_reliability", "test_sign_to_text", "test_artifacts",
                 "test_transfer", "test_analysis", "test_generalisation", "test_ensemble", "test_models",
                 "test_demo_browser"]


def pytest_collection_modifyitems(items):
    def rank(item):
        module = item.path.stem
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("KERAS_SIGN_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE = REPO / "keras_sign" / "data" / "sample" / "digits"


def shared_set(name):
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is not present (set KERAS_SIGN_SHARED_DATA to the folder of shared datasets)")
    return path


@pytest.fixture
def massey():
    return shared_set("massey_asl_hands")


@pytest.fixture
def alphabet():
    return shared_set("asl_alphabet_subset")


def copy_subset(source, target, classes, per_class):
    """Copy the first `per_class` images of each class folder of `source` into `target`."""
    for name in classes:
        (target / name).mkdir(parents=True)
        for image in sorted((source / name).iterdir())[:per_class]:
            shutil.copy(image, target / name / image.name)
    return target


@pytest.fixture
def small_digits(tmp_path):
    """3 classes x 10 real photos of the embedded sample, for quick training runs."""
    return copy_subset(SAMPLE, tmp_path / "digits3", ["0", "1", "2"], 10)


def built_once(tmp_path_factory, worker_id, name, build):
    """`build(folder)` (a dict of JSON values) made once per test session, whichever xdist workers ask:
    the first builds it into a folder they share, under a lock; the others wait and read it back."""
    shared = tmp_path_factory.getbasetemp()
    shared = shared if worker_id == "master" else shared.parent  # the session's folder above the workers'
    folder, done = shared / name, shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed left
            folder.mkdir()
            done.write_text(json.dumps(build(folder)))
    return json.loads(done.read_text())


def run_cli(*args, backend=None, cwd=None, fresh=False):
    """Run the command line; return a CompletedProcess-like result (returncode, stdout, stderr).

    A command that runs on the TensorFlow backend the in-process tests share runs in this process
    (click's CliRunner), saving a TensorFlow start per call; one that needs another backend, a fresh
    process-wide setting (--deterministic), another folder or a process untouched by earlier tests
    (`fresh`) runs as `python -m keras_sign.cli`.
    """
    args = [str(arg) for arg in args]
    pinned = args[args.index("--backend") + 1] if "--backend" in args else None
    if backend in (None, "tensorflow") and pinned in (None, "tensorflow", "auto") and "--deterministic" not in args \
            and cwd is None and not fresh:
        return _run_in_process(args)
    env = dict(os.environ)
    env.pop("KERAS_BACKEND", None)
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-m", "keras_sign.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=600,
    )


def _run_in_process(args):
    import traceback

    from click.testing import CliRunner

    from keras_sign.cli import cli

    result = CliRunner().invoke(cli, args, prog_name="keras-sign")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # as a crashed process would print it
    return subprocess.CompletedProcess(["keras-sign", *args], result.exit_code, result.stdout, stderr)


@contextlib.contextmanager
def locked_by_another_process(folder, what="Run folder"):
    """`folder`'s FolderLock held by another process, as `keras-sign train` holds its run folder while it
    trains; yields that process's PID."""
    script = ("import sys, time; from keras_sign.runs.folder import FolderLock; "
              "lock = FolderLock(sys.argv[1], sys.argv[2]).__enter__(); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(folder), what], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
