"""A tiny evaluated run and its data, shared by the evaluate, compare and features tests.

Both are built once per test session, whichever pytest-xdist worker asks first (`built_once`), in-process on
the TensorFlow backend that conftest sets. The tests that use `digit_run` write evaluations into it, so they
are all in xdist group "analysis": one worker runs them one after another, as when they shared one module.
"""

from pathlib import Path

import pytest

from conftest import SAMPLE, built_once, copy_subset


def train_run(out, **settings):
    """A run trained in this process: 2 epochs at 32 px unless `settings` say otherwise; its folder."""
    from keras_sign.config import TrainConfig
    from keras_sign.training.fit import train

    config = TrainConfig(out=str(out), **{"epochs": 2, "image_size": 32, "batch_size": 8, "seed": 1, **settings})
    run, _ = train(config, "tensorflow", "test")
    return run.path


@pytest.fixture(scope="session")
def digits(tmp_path_factory, worker_id):
    def build(folder):
        return {"root": str(copy_subset(SAMPLE, folder / "digits3", ["0", "1", "2"], 10))}

    return Path(built_once(tmp_path_factory, worker_id, "analysis_digits", build)["root"])


@pytest.fixture(scope="session")
def digit_run(digits, tmp_path_factory, worker_id):
    """MobileNetV3-Small on 3 digits, evaluated: `(run folder, files evaluate_run wrote)`."""

    def build(folder):
        from keras_sign.analysis.evaluate import evaluate_run

        # 9 test images, so the report and the t-SNE map have something to show
        path = train_run(folder / "digits_run", data_dir=str(digits), val_fraction=0.2, test_fraction=0.3)
        return {"run": str(path), "written": [str(p) for p in evaluate_run(path)[2]]}

    built = built_once(tmp_path_factory, worker_id, "analysis_digit_run", build)
    return Path(built["run"]), [Path(p) for p in built["written"]]
