"""`keras_sign.runs.locks`: one writer per folder, named to the second one, and no lock outliving its process."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from conftest import REPO, invoke, locked_by_another_process, one_line_error
from keras_sign.errors import KerasSignError
from keras_sign.runs.folder import create_empty_folder
from keras_sign.runs.locks import FolderLock, check_not_being_written
from users_fixtures import users_folder  # noqa: F401  (fixtures)


def test_a_run_folder_is_created_by_exactly_one_of_two_racing_processes(tmp_path):
    """'exists and empty' then mkdir(exist_ok=True) let both racers have the folder."""
    for trial in range(40):
        target, winners, barrier, stacks = tmp_path / f"race{trial}", [], threading.Barrier(2), []

        def race():
            stack = contextlib.ExitStack()
            stacks.append(stack)
            barrier.wait()
            with contextlib.suppress(KerasSignError):
                create_empty_folder(target, "Run folder", stack)
                (target / "config.yaml").write_text("mine")
                winners.append(threading.get_ident())

        threads = [threading.Thread(target=race) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for stack in stacks:
            stack.close()
        assert len(winners) == 1, trial


def test_a_reader_is_refused_while_another_process_writes_but_not_while_this_one_does(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    check_not_being_written(folder)  # never locked
    with FolderLock(folder):
        check_not_being_written(folder)  # this process's own lock: training evaluates its own run
    with locked_by_another_process(folder) as pid:
        try:
            check_not_being_written(folder)
        except KerasSignError as error:
            assert f"is being written by another process (PID {pid} on " in str(error)
        else:
            raise AssertionError(f"the folder locked by {pid} was read")
    check_not_being_written(folder)  # released


def test_a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_leaves_no_lock(users_folder,
                                                                                          tmp_path):
    """`train --resume RUN` while RUN trained deleted the other's checkpoint and both wrote, before."""
    run = tmp_path / "busy"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_sign.cli", "train", "--data-dir", users_folder, "--out", run, "--epochs", "200",
         "--image-size", "32", "--batch-size", "8"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while not (run / "run.json").is_file():  # written under the folder's lock, before the first epoch
            assert process.poll() is None and time.time() < deadline, "training ended before the test could meet it"
            time.sleep(0.1)
        before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
        code, output = invoke("train", "--resume", run)
        one_line_error(code, output, f"is being written by another process (PID {process.pid} on ", "wait for it")
        assert process.poll() is None  # the first writer carries on, its files untouched by the refused one
        assert {n: t for n, t in before.items() if n != "history.csv"} == \
            {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name in before and p.name != "history.csv"}
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with FolderLock(run):  # the operating system released the killed process's lock
        pass
