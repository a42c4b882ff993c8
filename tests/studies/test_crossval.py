"""`keras-sign crossval` (`keras_sign.studies.crossval`): a run per signer or fold, pooled, finished folds
kept, and bad input refused before any fold trains."""

import csv
import json

import numpy as np
import pytest

from conftest import SAMPLE, copy_subset, run_cli
from keras_sign.runs.locks import FolderLock
from keras_sign.studies.crossval import markdown, top_confusions


@pytest.mark.slow
def test_crossval_trains_a_run_per_signer_pools_them_and_keeps_finished_folds(three_signers, tmp_path):
    out = tmp_path / "cv"
    args = ["crossval", "--data-dir", three_signers, "--epochs", "1", "--image-size", "32", "--batch-size", "8",
            "--out", out]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "crossval.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["signer-ann", "signer-bob", "signer-cy"]
    assert all(f["test_images"] == 12 for f in summary["folds"])
    for signer in ("ann", "bob", "cy"):
        with (out / f"signer-{signer}" / "split.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        assert {row["group"] for row in rows if row["split"] == "test"} == {signer}
        assert signer not in {row["group"] for row in rows if row["split"] != "test"}
    with (out / "confusion_matrix.csv").open(newline="") as file:
        pooled = list(csv.reader(file))[1:]
    assert sum(int(count) for row in pooled for count in row[1:]) == 36
    assert "mean +- std" in first.stdout and (out / "confusion_matrix.png").stat().st_size > 1000

    model = (out / "signer-bob" / "model.keras").stat().st_mtime_ns
    again = run_cli(*args)
    assert again.returncode == 0 and (out / "signer-bob" / "model.keras").stat().st_mtime_ns == model
    assert json.loads((out / "crossval.json").read_text())["accuracy"] == summary["accuracy"]

    changed = run_cli(*args[:-2], "--lr", "0.01", "--out", out)
    assert changed.returncode != 0 and "was trained with other settings (lr)" in changed.stderr

    with FolderLock(out, "crossval folder"):
        held = run_cli(*args)
    assert held.returncode != 0 and "another process" in held.stderr

    from keras_sign.analysis.compare import compare_runs

    evaluated = run_cli("evaluate", out / "signer-ann", "--data-dir", three_signers / "bob", "--name", "bob")
    assert evaluated.returncode == 0, evaluated.stderr
    table, _ = compare_runs([out / "signer-ann", out / "signer-cy"], out=tmp_path / "cmp")
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert all(row["crossval"].endswith("(3 folds)") for row in rows)
    assert rows[0]["other_data"].startswith("bob ") and rows[1]["other_data"] == ""


@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds must be 'signer' or a number of folds >= 2"),
    (["--test-signers", "ann"], "crossval chooses each fold's test split itself"),
    ([], "has 0 signer folder(s)"),
    # Folds 1-3 trained, then fold 4 had no test image and ended in FileNotFoundError (metrics.json).
    (["--folds", "5"], "--folds 5 leaves 2 fold(s) without test images: the largest class of "),
    (["--folds", "50", "--limit-per-class", "2"], "has 2 images (at most 2 per class with --limit-per-class); use "
                                                  "--folds 2 or fewer"),
])
def test_crossval_bad_input_is_one_line(args, message, tmp_path):
    data = copy_subset(SAMPLE, tmp_path / "flat", ["0", "1"], 3)
    result = run_cli("crossval", "--data-dir", data, "--out", tmp_path / "cv", *args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list((tmp_path / "cv").glob("fold-*"))  # refused before any fold trained


def test_the_most_frequent_confusions_come_first():
    counts = np.array([[5, 2, 0], [3, 4, 3], [0, 0, 9]])
    top = top_confusions(["0", "o", "v"], ["0", "o", "v"], counts, limit=2)
    assert top == [{"true": "o", "predicted": "0", "count": 3}, {"true": "o", "predicted": "v", "count": 3}]
    fold = {"fold": "signer-a", "test_images": 4, "accuracy": 0.5, "macro_f1": 0.5}
    summary = {"folds": [fold], "accuracy": {"mean": 0.5, "std": 0.0}, "macro_f1": {"mean": 0.5, "std": 0.0}}
    assert "o as 0 3, o as v 3" in markdown({**summary, "top_confusions": top})
