"""`keras_sign.runs.atomic`: an output that cannot be written is refused before any work, and a disk that
fills up mid-run leaves nothing half-written and a run that resumes."""

import json
import os
import subprocess

import pytest

from conftest import invoke, one_line_error
from users_fixtures import users_folder, users_run  # noqa: F401  (fixtures)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write in: permissions for a normal user; a read-only mount for root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root without a way to make a read-only folder ({mounted.stderr.decode().strip()})")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_an_unwritable_out_is_refused_before_the_data_scan(read_only_folder, caplog):
    """A raw PermissionError after the whole scan, before."""
    code, output = invoke("train", "--out", read_only_folder / "run", "--epochs", "1")
    one_line_error(code, output, f"Cannot write in {read_only_folder}", "choose another --out")
    assert "10 classes" not in caplog.text  # refused before the scan


@pytest.mark.xdist_group("users_run")
def test_runs_being_a_file_is_one_clear_line(tmp_path, monkeypatch, users_run):
    """NotADirectoryError, before, when `runs` (the default output's parent) is a file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    one_line_error(*invoke("compare", users_run), "Cannot create the folder runs/compare-", "runs, which is a file")
    one_line_error(*invoke("train", "--epochs", "1"), "which is a file", "choose another --out")


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_resumable(users_folder, tmp_path):
    """No space left while checkpointing: one line, nothing half-written, and the run resumes."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to simulate a full disk")
    try:
        run = disk / "run"
        code, output = invoke("train", "--data-dir", users_folder, "--out", run, "--epochs", "1", "--image-size", "32")
        one_line_error(code, output, "No space left on device", "--resume")
        assert not [p for p in run.rglob("*") if ".tmp" in p.name]  # no temporary file left behind
        assert json.loads((run / "run.json").read_text())["status"] == "training"
    finally:
        subprocess.run(["umount", str(disk)], check=True)
