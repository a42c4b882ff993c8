"""`keras-sign sweep`: plans and their errors, a grid end to end with two workers, SIGKILL and resume,
and workers sharing a grid on a real PostgreSQL server."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from keras_sign.config import read_yaml_mapping
from keras_sign.errors import KerasSignError
from keras_sign.runs.folder import RunFolder
from keras_sign.studies.sweep import storage as storages
from keras_sign.studies.sweep.plan import make_plan, parse_swept

TINY = ["--image-size", "32", "--epochs", "2", "--no-augment"]


def _cli_process(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KERAS_BACKEND", None)
    return subprocess.Popen([sys.executable, "-m", "keras_sign.cli", "sweep", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _study(sweep_dir):
    record = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    storage = storages.open_storage(record["storage"] or Path(sweep_dir) / storages.JOURNAL_FILE)
    return storages.load(storage, record["study"])


def _complete_cells(study):
    from optuna.trial import TrialState

    return sorted(tuple(sorted(t.params.items())) for t in study.get_trials(states=(TrialState.COMPLETE,)))


# -- plans ----------------------------------------------------------------------------------------------

def test_swept_values_are_lists_or_ranges():
    assert parse_swept("lr", "1e-2,1e-3", float) == [0.01, 0.001]
    assert parse_swept("lr", [0.1, 0.01], float) == [0.1, 0.01]
    assert parse_swept("lr", "1e-5:1e-2:log", float) == {"low": 1e-5, "high": 1e-2, "log": True}
    assert parse_swept("batch_size", "16:128", int) == {"low": 16, "high": 128, "log": False}
    assert parse_swept("lr", "0.001", float) is None  # one value: not swept


@pytest.mark.parametrize("flags, message", [
    (["--lr", "1e-2,abc"], "'abc' is not a number"),
    (["--batch-size", "16,32.5"], "'32.5' is not a whole number"),
    (["--lr", ","], "the list of values is empty"),
    (["--lr", "1e-3,1e-3"], "repeats a value"),
    (["--lr", "1e-2:1e-5:log"], "LOW < HIGH"),
    (["--lr", "1e-5:1e-2:log"], "A grid needs lists of values"),
    (["--lr", "1e-5:1e-2:log", "--search", "tpe"], "needs --trials"),
    (["--epochs", "3"], "Nothing to sweep"),
    (["--lr", "1e-2,-1"], "lr must be a positive number"),
    (["--lr", "1e-2,nan"], "'nan' is not a finite number"),
])
def test_bad_sweep_values_get_one_line(tmp_path, flags, message):
    result = run_cli("sweep", *flags, "--out", tmp_path / "s")
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s").exists()


def test_a_batch_size_larger_than_the_training_split_is_refused(small_digits, tmp_path):
    result = run_cli("sweep", "--data-dir", small_digits, "--batch-size", "8,64", "--out", tmp_path / "s")
    assert result.returncode != 0 and "Batch size 64 is larger than the training split (24 images)" in result.stderr


def test_a_storage_that_does_not_answer_is_one_line(small_digits, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli("sweep", "--data-dir", small_digits, "--batch-size", "8", "--lr", "1e-2,1e-3",
                     "--out", tmp_path / "s", "--storage", f"postgresql://keras:secret@127.0.0.1:{port}/sweeps")
    assert result.returncode != 0 and "Cannot open the sweep storage" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_a_sweep_folder_with_another_grid_is_refused(small_digits, tmp_path):
    from keras_sign.studies.sweep import _write_sweep_file

    first = make_plan({"data_dir": str(small_digits), "lr": "1e-2,1e-3", "batch_size": "4,8"})
    (tmp_path / "s").mkdir()
    _write_sweep_file(tmp_path / "s", first, None, "s", "auto")
    result = run_cli("sweep", "--data-dir", small_digits, "--lr", "1e-2,1e-4", "--batch-size", "4,8",
                     "--out", tmp_path / "s")
    assert result.returncode != 0 and "holds a sweep with another plan" in result.stderr
    assert "swept lr: [0.01, 0.0001] here, [0.01, 0.001] in the sweep folder" in result.stderr


def test_plans_from_yaml_lists_and_the_shipped_study_grid():
    plan = make_plan(read_yaml_mapping(REPO / "configs" / "paper" / "sweep-numbers-shufflenetv2.yaml", "Config", "--config", ""))
    assert plan.params == {"lr": [1e-2, 1e-3, 1e-4, 1e-5], "batch_size": [16, 32, 64, 128]}
    assert plan.fixed["arch"] == "shufflenetv2_x1_0" and plan.fixed["dataset"] == "numbers"
    assert len(plan.cells()) == 16 and plan.total_trials() == 16
    with pytest.raises(KerasSignError, match="cannot be swept"):
        make_plan({"arch": ["resnet18", "shufflenetv2"], "lr": "1e-2,1e-3"})


# -- running --------------------------------------------------------------------------------------------

def test_workers_are_capped_at_the_trials_left_and_warned_about(tmp_path, caplog):
    """`sweep --workers 50` on a 2-cell grid started 50 worker processes within 2 s (about 1 GB each)."""
    from keras_sign.studies.sweep import worker_count

    plan = make_plan({"lr": "1e-2,1e-3", "epochs": 1})
    study = storages.create_or_load(storages.open_storage(tmp_path / storages.JOURNAL_FILE), "s", plan)
    with caplog.at_level("INFO", logger="keras_sign"):
        assert worker_count(50, study, plan, cores=8, available=64e9) == 2
    assert "50 worker(s) asked for, 2 started: the sweep has 2 trial(s) left." in caplog.text
    assert "cores" not in caplog.text and "memory" not in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="keras_sign"):
        assert worker_count(2, study, plan, cores=1, available=1.5e9) == 2
    assert "2 workers on 1 cores" in caplog.text
    assert "2 workers need about 2 GB while they train, and 1.5 GB of memory is free" in caplog.text
    assert "use --workers 1 or fewer" in caplog.text


def test_a_launch_is_refused_while_workers_of_an_earlier_one_still_run(small_digits, tmp_path):
    """`kill -9` of the launcher left its workers training, and a new launch went ahead beside them."""
    out = tmp_path / "s"
    out.mkdir()
    orphan = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(handle, fcntl.LOCK_SH); print('held', flush=True); time.sleep(600)"), out / ".workers.lock"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "held"
        result = run_cli("sweep", "--data-dir", small_digits, "--lr", "1e-2,1e-3", "--batch-size", "8", "--out", out)
        assert result.returncode == 1 and "Worker processes of an earlier launch still work" in result.stderr
        assert "Traceback" not in result.stderr and not (out / "trials").exists()
    finally:
        orphan.kill()
        orphan.wait()


@pytest.mark.slow
def test_workers_die_with_their_launcher(small_digits, tmp_path):
    out = tmp_path / "orphans"
    process = _cli_process("--data-dir", small_digits, *TINY[:2], "--epochs", "200", "--batch-size", "8",
                           "--lr", "1e-2,1e-3", "--workers", "2", "--out", out)
    started, deadline = None, time.time() + 300
    for line in process.stdout:
        if "Started 2 worker processes (PIDs" in line:
            started = [int(pid) for pid in line.split("(PIDs ")[1].split(")")[0].split(", ")]
            break
        assert time.time() < deadline
    assert started, "the launcher never said which workers it started"
    runs = [out / "trials" / name / "history.csv" for name in ("lr-0.01", "lr-0.001")]
    while not all(run.is_file() for run in runs):  # both workers are training
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 30
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in started):
        assert time.time() < deadline, f"workers {started} outlived their launcher"
        time.sleep(0.2)


def _state(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"

@pytest.mark.slow
def test_two_workers_run_every_cell_of_a_grid_exactly_once_and_the_report_matches(small_digits, tmp_path):
    out = tmp_path / "grid"
    result = run_cli("sweep", "--data-dir", small_digits, *TINY, "--lr", "1e-2,1e-3", "--batch-size", "4,8",
                     "--workers", "2", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    study = _study(out)
    assert _complete_cells(study) == sorted(
        ((("batch_size", b), ("lr", lr)) for lr in (1e-2, 1e-3) for b in (4, 8)))
    assert len(study.trials) == 4  # no cell ran twice, none failed
    started = [line for n in (1, 2) for line in (out / "workers" / f"worker-{n}.log").read_text().splitlines()
               if " -> " in line and line.startswith("Trial ")]
    assert len(started) == 4

    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:  # the table is what each trial's history says
        history = RunFolder(row["run"]).read_history()
        assert len(history) == 2 and row["state"] == "complete"
        assert float(row["best_val_accuracy"]) == pytest.approx(max(float(h["val_accuracy"]) for h in history))
        assert float(row["final_val_loss"]) == pytest.approx(float(history[-1]["val_loss"]))
        assert float(row["mean_epoch_seconds"]) == pytest.approx(float(history[1]["epoch_seconds"]))
        assert RunFolder(row["run"]).read_json("run.json")["status"] == "finished"
    markdown = (out / "results.md").read_text()
    assert "| lr \\ batch_size | 4 | 8 |" in markdown and "Best trial: " in markdown
    for figure in ("heatmap_best_val_accuracy.png", "heatmap_mean_epoch_seconds.png",
                   "best_val_accuracy_vs_lr.png", "final_val_loss_vs_lr.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = run_cli("sweep", "--report", out)
    assert again.returncode == 0 and again.stdout == markdown
    busy = run_cli("sweep", "--data-dir", small_digits, *TINY, "--lr", "1e-2,1e-3", "--batch-size", "4,8",
                   "--out", out)  # a finished sweep started again trains nothing
    assert busy.returncode == 0 and len(_study(out).trials) == 4


@pytest.mark.slow
def test_a_tpe_search_over_a_range_reports_every_epoch_to_its_pruner(small_digits, tmp_path):
    out = tmp_path / "tpe"
    result = run_cli("sweep", "--data-dir", small_digits, *TINY, "--batch-size", "8", "--lr", "1e-4:1e-1:log",
                     "--search", "tpe", "--trials", "2", "--prune", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _study(out).trials
    assert len(trials) == 2 and all(1e-4 <= t.params["lr"] <= 1e-1 for t in trials)
    assert trials[0].params["lr"] != trials[1].params["lr"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-0000", "trial-0001"]
    assert all(t.state.name in ("COMPLETE", "PRUNED") and len(t.intermediate_values) >= 1 for t in trials)
    assert "| trial | state | lr |" in (out / "results.md").read_text()


@pytest.mark.parametrize("arch", ["landmarks", pytest.param("fusion:mobilenetv3", marks=pytest.mark.slow)])
def test_a_sweep_of_a_model_that_reads_the_hand(arch, small_digits, tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("sweep", "--data-dir", small_digits, *TINY, "--batch-size", "8", "--arch", arch,
                     "--lr", "0.002,0.01", "--out", out, "--hand-cache-dir", tmp_path / "hands")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _complete_cells(_study(out)) == [(("lr", 0.002),), (("lr", 0.01),)]
    for trial in (out / "trials").iterdir():
        info = json.loads((trial / "run.json").read_text())
        assert info["hands"]["stage"] == ("landmarks" if arch == "landmarks" else "fusion") and info["status"] == "finished"


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_resumes_without_rerunning_finished_trials(small_digits, tmp_path):
    out = tmp_path / "killed"
    args = ["--data-dir", small_digits, "--image-size", "32", "--batch-size", "8", "--epochs", "4", "--no-augment",
            "--lr", "1e-2,1e-3", "--out", out]
    process = _cli_process(*args)
    second = out / "trials" / "lr-0.001" / "history.csv"
    deadline = time.time() + 300
    # two epochs in the history: the first one's checkpoint is certainly written (the second began after it)
    while not (second.is_file() and len(second.read_text().splitlines()) >= 3):
        assert process.poll() is None and time.time() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first_run = out / "trials" / "lr-0.01"
    finished_before = (first_run / "run.json").read_bytes(), (first_run / "history.csv").read_bytes()
    epoch_one = second.read_text().splitlines()[1]

    other = _cli_process(*args)  # a second launcher cannot share the folder while the first runs
    output, _ = other.communicate(timeout=300)
    assert other.returncode == 0, output[-3000:]
    assert "worker is gone" in output and "was interrupted: resuming it" in output
    assert ((first_run / "run.json").read_bytes(), (first_run / "history.csv").read_bytes()) == finished_before
    history = second.read_text().splitlines()
    assert len(history) == 5 and history[1] == epoch_one  # resumed, not started again
    study = _study(out)
    assert len(_complete_cells(study)) == 2
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE", "FAIL"]


def test_two_sweeps_cannot_run_into_one_folder(small_digits, tmp_path):
    out = tmp_path / "busy"
    args = ["--data-dir", small_digits, "--image-size", "32", "--batch-size", "8", "--epochs", "3", "--lr", "1e-2,1e-3",
            "--out", out]
    first = _cli_process(*args)
    try:
        deadline = time.time() + 120
        while not (out / "sweep.json").is_file():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.2)
        second = run_cli("sweep", *args)
        assert second.returncode != 0 and "is being written by another process" in second.stderr
        assert "--workers N" in second.stderr
    finally:
        first.kill()
        first.wait()


# -- a real PostgreSQL server ---------------------------------------------------------------------------

def _postgres_bin():
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture
def postgres():
    """A PostgreSQL server in a temporary data directory on a free loopback port; yields its URL."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does this)")
    pytest.importorskip("psycopg", reason="pip install keras-sign[sweep]")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    data = Path(tempfile.mkdtemp(prefix="keras-sign-pg-"))
    if as_user:
        shutil.chown(data, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_user, binaries / "initdb", "-D", data / "db", "-U", "keras", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, binaries / "pg_ctl", "-D", data / "db", "-l", data / "log", "-w", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "keras", "sweeps"],
                       check=True, capture_output=True)
        yield f"postgresql://keras@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*as_user, binaries / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def _planned(url, name):
    try:
        return storages.PLAN_ATTR in storages.load(storages.open_storage(url), name).user_attrs
    except KerasSignError:
        return False


@pytest.mark.slow
def test_machines_that_open_a_new_database_at_once_all_get_the_storage(postgres):
    # Optuna creates its tables on first use, and PostgreSQL refuses a CREATE TABLE that another
    # connection is running at the same moment: every machine of a sweep started at once meets this.
    barrier = threading.Barrier(4)
    errors = []

    def open_at_once():
        barrier.wait()
        try:
            storages.open_storage(postgres)
        except KerasSignError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=open_at_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.slow
def test_workers_on_two_machines_share_a_grid_on_postgresql(postgres, small_digits, tmp_path):
    grid = ["--data-dir", small_digits, *TINY, "--lr", "1e-2,1e-3", "--batch-size", "4,8"]
    starter = _cli_process(*grid, "--storage", postgres, "--study", "numbers", "--out", tmp_path / "first")
    deadline = time.time() + 120
    while not _planned(postgres, "numbers"):  # the first machine has created the study and queued its grid
        assert starter.poll() is None and time.time() < deadline, starter.stdout.read()[-3000:]
        time.sleep(0.5)
    joiner = _cli_process("--join", postgres, "--study", "numbers", "--out", tmp_path / "second")
    outputs = [process.communicate(timeout=600)[0] for process in (starter, joiner)]
    assert starter.returncode == 0 and joiner.returncode == 0, [text[-2000:] for text in outputs]
    study = storages.load(storages.open_storage(postgres), "numbers")
    assert len(_complete_cells(study)) == 4 and len(study.trials) == 4  # every cell once
    trained = [p.name for folder in ("first", "second") for p in (tmp_path / folder / "trials").glob("*")
               if (p / "run.json").is_file()]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 4
    report = run_cli("sweep", "--report", tmp_path / "second")
    assert report.returncode == 0 and "4 done, 0 running, 0 left" in report.stdout
