"""A landmark model of five of Massey's letters trained on signers 1 and 2, signer 3 held out: the run that
`keras-sign adapt` and the demo's teach mode adapt in the tests (built once per session)."""

import shutil
from pathlib import Path

import pytest

from conftest import SHARED_DATA, built_once, massey_subset, run_cli

MASSEY = SHARED_DATA / "massey_asl_hands"
SIGNS = ["a", "b", "l", "v", "y"]


@pytest.fixture(scope="session")
def landmark_parent(tmp_path_factory, worker_id):
    def build(root):
        massey_subset(root / "data", SIGNS, 6)
        run = root / "run"
        result = run_cli("train", "--arch", "landmarks", "--data-dir", root / "data", "--split", "signer",
                         "--test-signers", "hand3", "--epochs", "20", "--batch-size", "16", "--seed", "3", "--out",
                         run, "--hand-cache-dir", root / "hand-cache")
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        return {"run": str(run)}

    return Path(built_once(tmp_path_factory, worker_id, "landmark_parent", build)["run"])


def shots_of(folder, signs, per_class, signer="hand3"):
    """`folder` with the first `per_class` photos of each of `signs` by Massey's `signer`, as class folders."""
    for sign in signs:
        (folder / sign).mkdir(parents=True, exist_ok=True)
        for photo in sorted((MASSEY / signer / sign).iterdir())[:per_class]:
            shutil.copy(photo, folder / sign / photo.name)
    return folder
