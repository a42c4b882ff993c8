"""`keras_sign.runs.folder`: split.csv carries what every later command needs of each photo."""

import pytest

from keras_sign.runs.folder import RunFolder
from keras_sign.runs.record import RunInfo
from users_fixtures import LATIN1_NAME, users_folder, users_run  # noqa: F401  (fixtures)


@pytest.mark.xdist_group("users_run")
def test_split_csv_carries_orientations_and_odd_names_into_training(users_run, users_folder):
    """The orientation reaches every later command through split.csv, and a Latin-1 file name survives
    split.csv (it crashed the write before)."""
    run = RunFolder(users_run)
    rows = {row["path"]: row for row in run.read_split()}
    assert rows["1/portrait.jpg"]["orientation"] == "6"
    assert f"2/{LATIN1_NAME}" in rows
    assert b"se\xf1a.png" in run.file("split.csv").read_bytes()  # the name's own bytes, not a mangled copy
    files = {split: run.split_files(split) for split in ("train", "val", "test")}
    everything = [path for split in files.values() for path in split.paths]
    assert users_folder / "2" / LATIN1_NAME in everything
    assert all(path.is_file() for path in everything)
    assert all(split.crops is None for split in files.values())  # no hand stage, no crops
    info = RunInfo.read(run.path)
    assert info.status == "finished" and info.extra["rotated_files"] == 1
    assert ["0/link.jpg", "broken symbolic link: its target does not exist"] in info.extra["skipped_files"]
