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

# In-process tests share one backend; every backend gets its own process in tests/training/test_fit.py.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Two xdist workers share the cores: one compute thread each (TensorFlow, PyTorch; the processes tests start
# inherit it) instead of every process starting a thread per core that then fight.
for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# JAX processes compile with LLVM's optimisations off: the tests wait on XLA compiling far more than on the
# compiled code (plain Keras predicting with three models: 21 s -> 12 s). It changes JAX's rounding, so a test
# that judges how well JAX trains removes it (tests/training/test_fit.py).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

collect_ignore = ["parity/make_fixtures.py"]  # a script for a torchvision environment, not a test module

# The modules that take longest on 2 cores (their tests' seconds added up, measured), run first: xdist hands
# out work in this order (with --no-loadscope-reorder), and a long module handed out last keeps one worker
# busy while the other has nothing left to do. An xdist group is handed out where its first test comes, so
# the first module of each long group is ranked by the group's seconds: test_bundle for "export",
# test_evaluate for "analysis" and "users_run", test_predict for "sign_to_text". Test modules are named
# uniquely across the station folders, so a module's stem names it.
LONGEST_FIRST = ["test_bundle", "test_ensembles", "test_evaluate", "test_predict", "test_saving", "test_transfer",
                 "test_checkpoints", "test_reproduce", "test_train", "test_fit", "test_models", "test_parity",
                 "test_calibration", "test_server", "test_browser", "test_pretrained"]


def pytest_collection_modifyitems(items):
    def rank(item):
        module = item.path.stem
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order


@pytest.fixture(autouse=True)
def float32_after_each_test():
    """Keras' global dtype policy back at float32 after every test. `train --mixed-precision` sets it for the
    rest of its process, and `run_cli` runs that command in this one: a later test of the same worker then
    built bfloat16 models, which TFLite cannot convert and which compute other numbers (the order of the tests
    decides which worker runs what, so this failed only now and then)."""
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.config.set_dtype_policy("float32")


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


def assert_spells_a_clip_through_the_hand_stage(run, folder, text="CAB"):
    """A clip of `text` from the run's test photos, transcribed: the hand stage runs and the CER is printed."""
    result = run_cli("data", "clip", "--text", text, "--run", run, "--split", "test", "--out", folder, "--seed", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    spelled = run_cli("transcribe", run, folder / "frames", "--fps", "15", "--reference", text)
    assert spelled.returncode == 0, spelled.stderr[-2000:]
    assert "the hand stage" in spelled.stderr and "CER " in spelled.stdout


def massey_subset(target, signs, per_class):
    """`target` with the first `per_class` photos of each of `signs` by each of Massey's three signers (signer
    folders of class folders); the test is skipped where the shared data is not present."""
    massey = shared_set("massey_asl_hands")
    for signer in ("hand1", "hand2", "hand3"):
        for sign in signs:
            (target / signer / sign).mkdir(parents=True)
            for photo in sorted((massey / signer / sign).iterdir())[:per_class]:
                shutil.copy(photo, target / signer / sign / photo.name)
    return target


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


@pytest.fixture
def three_signers(tmp_path):
    """The embedded sample's photos of 3 digits, dealt out to 3 signer folders."""
    root = tmp_path / "signers"
    for number, signer in enumerate(["ann", "bob", "cy"]):
        copy_subset(SAMPLE, tmp_path / "all" / signer, ["0", "1", "2"], 12)
        for folder in (tmp_path / "all" / signer).iterdir():
            (root / signer / folder.name).mkdir(parents=True)
            for photo in sorted(folder.iterdir())[number * 4:(number + 1) * 4]:
                photo.rename(root / signer / folder.name / photo.name)
    return root


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


def invoke(*args):
    """The real command line, in this process (CliRunner): `(exit code, output)`."""
    from click.testing import CliRunner

    from keras_sign.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def one_line_error(code, output, *fragments):
    """Assert that a command failed with exit status 1 and one `Error:` line holding each of `fragments`,
    without a traceback."""
    assert code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


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


def assert_ok(result):
    """A command line that must have succeeded: its output when it did not."""
    assert result.returncode == 0, result.stdout + result.stderr


def history_rows(run):
    """A run folder's history.csv as dicts."""
    import csv

    with open(Path(run) / "history.csv", newline="") as file:
        return list(csv.DictReader(file))
