"""Longer checks (`pytest -m slow`): the README's main job really learns."""

import csv
import json

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_default_training_on_the_embedded_sample_learns(tmp_path):
    result = run_cli("train", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    # Ten classes: chance is 10%. The README's run reached 85% on the 40 test photos.
    assert metrics["accuracy"] >= 0.6
    assert float(history[-1]["val_accuracy"]) >= 0.6 > float(history[0]["val_accuracy"])
