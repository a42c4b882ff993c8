"""A model trained on hands (`train --hands crop`) and its TFLite bundle: shared by the hand-stage tests of
training and the browser test of the demo, built once per session (`built_once`)."""

import shutil
from pathlib import Path

import pytest

from conftest import SAMPLE, built_once, copy_subset, run_cli
from spelling_fixtures import add_nothing_class

CLASSES = ["0", "1", "2"]


@pytest.fixture(scope="session")
def hand_run(tmp_path_factory, worker_id):
    """MobileNetV3-Small on the crops of 3 digits' hands, with a `nothing` class of empty backdrops and one
    backdrop filed under a sign (a photo of a sign without a hand), and its TFLite bundle."""

    def build(root):
        data = copy_subset(SAMPLE, root / "digits", CLASSES, 14)
        add_nothing_class(data / "nothing", 14)
        shutil.copy(data / "nothing" / "empty-0.jpg", data / "1" / "no-hand-here.jpg")
        run = root / "run"
        result = run_cli("train", "--data-dir", data, "--hands", "crop", "--epochs", "6", "--image-size", "32",
                         "--batch-size", "8", "--seed", "4", "--no-augment", "--out", run, "--hand-cache-dir",
                         root / "hand-cache")
        assert result.returncode == 0, result.stderr[-3000:]
        export = run_cli("export", run, "--out", root / "exports")
        assert export.returncode == 0, export.stderr[-3000:]
        return {"run": str(run), "data": str(data), "bundle": str(root / "exports" / "run-tflite-none"),
                "stderr": result.stderr, "root": str(root)}

    built = built_once(tmp_path_factory, worker_id, "hand_crops", build)
    return {key: Path(value) if key != "stderr" else value for key, value in built.items()}
