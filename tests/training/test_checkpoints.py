"""When checkpoints are written, and that best.npz holds the best epoch even when that epoch was not
checkpointed: a small compiled Keras model, real files, the epochs' metrics and durations given. Then
resuming from them: after kill -9 mid-epoch, from a damaged checkpoint, and with none intact."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import REPO, SAMPLE, copy_subset, run_cli
from conftest import assert_ok as _ok
from conftest import history_rows as _history
from keras_sign.config import load_config
from keras_sign.models.saving import load_model, save_model
from keras_sign.runs.folder import RunFolder
from keras_sign.training.checkpoints import (
    BEST,
    BEST_MODEL,
    Checkpointer,
    fresh_state,
    read_state,
    read_values,
    write_best_model,
)
from keras_sign.training.fit import train
from users_fixtures import users_folder, users_run  # noqa: F401  (fixtures)


@pytest.fixture
def model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def _train_an_epoch(model, epoch):
    """Stand-in for an epoch: every saved variable gets values that name the epoch."""
    for variable in [*model.variables, *model.optimizer.variables]:
        variable.assign(np.full(variable.shape, epoch, variable.dtype))


def _written_epoch(run):
    return read_state(run)["epoch"]


def test_by_default_checkpoints_are_spaced_to_cost_three_percent_of_the_training_time(model, tmp_path):
    run = RunFolder(tmp_path)
    checkpoints = Checkpointer(run, fresh_state())
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=1.0, last=False)
    assert _written_epoch(run) == 1  # the first epoch, which also measures what writing costs
    checkpoints.write_seconds = 0.9  # as if writing took 0.9 s: due after 30 s of training
    for epoch, seconds in ((2, 20.0), (3, 9.0)):
        checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=seconds, last=False)
        assert _written_epoch(run) == 1, epoch
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=2.0, last=False)
    assert _written_epoch(run) == 4  # 31 s trained since the last checkpoint
    # Keeping a new best epoch's values in memory counts too: 0.9 s of writing and 0.3 s of copies need 40 s.
    checkpoints.write_seconds = 0.9
    checkpoints.after_epoch(model, {"val_accuracy": 0.6}, seconds=20.0, last=False)  # a new best
    checkpoints.copy_seconds = 0.3
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=11.0, last=False)
    assert _written_epoch(run) == 4  # 31 s would have been enough without the copy
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=10.0, last=False)
    assert _written_epoch(run) == 7
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=0.1, last=True)
    assert _written_epoch(run) == 8  # the last epoch always
    assert sorted(p.name for p in run.file("checkpoint").iterdir()) == ["best.npz", "epoch-0008.npz", "state.json"]


def test_every_n_epochs_and_an_early_stop(model, tmp_path):
    run = RunFolder(tmp_path)
    checkpoints = Checkpointer(run, fresh_state(), patience=3, every=2)
    written = []
    for accuracy in (0.5, 0.4, 0.4, 0.4):
        state = checkpoints.after_epoch(model, {"val_accuracy": accuracy}, seconds=100.0, last=False)
        written.append(_written_epoch(run))
    assert written == [0, 2, 2, 4] and state["stopped_early"]  # epoch 4 is both the 2nd and the stop


def test_best_npz_is_the_best_epoch_even_when_it_was_not_checkpointed(model, tmp_path):
    run = RunFolder(tmp_path)
    checkpoints = Checkpointer(run, fresh_state(), every=3)
    for epoch, accuracy in zip((1, 2, 3), (0.3, 0.9, 0.6)):
        _train_an_epoch(model, epoch)
        state = checkpoints.after_epoch(model, {"val_accuracy": accuracy}, seconds=1.0, last=False)
    assert state["epoch"] == 3 and state["best_epoch"] == 2
    best = read_values(run, BEST)
    assert len(best["model"]) == len(model.variables) and len(best["optimizer"]) == len(model.optimizer.variables)
    assert all(np.all(value == 2) for part in best.values() for value in part)
    # The model itself keeps training from epoch 3's values, and the epoch file holds those.
    assert all(np.all(variable.numpy() == 3) for variable in model.variables)
    latest = read_values(run, state["model"])
    assert all(np.all(value == 3) for part in latest.values() for value in part)

    # When training ends: best.keras is the best epoch's model, for inference; the model keeps its own values.
    save_model(model, run.file("model.keras"), optimizer=False)
    write_best_model(run, state, model)
    best_model = load_model(run.file(BEST_MODEL))
    assert getattr(best_model, "optimizer", None) is None and all(np.all(v.numpy() == 2) for v in best_model.variables)
    assert all(np.all(variable.numpy() == 3) for variable in model.variables)
    run.file(BEST).unlink()  # gone: the finished training is not undone for it
    run.file(BEST_MODEL).unlink()
    write_best_model(run, state, model)
    assert not run.file(BEST_MODEL).exists()


def test_a_damaged_checkpoint_is_refused_in_one_line(model, tmp_path):
    from keras_sign.errors import KerasSignError

    run = RunFolder(tmp_path)
    Checkpointer(run, fresh_state()).after_epoch(model, {}, seconds=1.0, last=True)
    path = run.file(read_state(run)["model"])
    whole = path.read_bytes()
    flipped = bytearray(whole)
    flipped[whole.index(model.variables[0].numpy().tobytes()) + 5] ^= 0xFF  # inside the kernel's values
    for damaged, message in ((bytes(flipped), "fails its checksum"), (whole[:len(whole) // 2], "cut short")):
        path.write_bytes(damaged)
        with pytest.raises(KerasSignError, match=message):
            read_values(run, read_state(run)["model"])


def test_a_run_folder_checkpointed_as_keras_files_by_an_older_version_resumes(model, tmp_path, caplog):
    from keras_sign.training.checkpoints import load_resumable

    run = RunFolder(tmp_path)
    _train_an_epoch(model, 4)
    save_model(model, run.file("checkpoint/best.keras"))  # what keras-sign wrote before its .npz checkpoints
    save_model(model, run.file("checkpoint/epoch-0005.keras"))
    state = dict(fresh_state(), epoch=5, model="checkpoint/epoch-0005.keras", best_epoch=4, best_val_accuracy=0.5)
    values, resumed = load_resumable(run, state)
    assert resumed["epoch"] == 5 and all(np.all(value == 4) for part in values.values() for value in part)
    run.file(state["model"]).write_bytes(b"")  # damaged: back to the older best file
    values, resumed = load_resumable(run, state)
    assert resumed["epoch"] == 4 and resumed["model"] == "checkpoint/epoch-0004.keras"
    assert "Resuming from checkpoint/best.keras instead" in caplog.text
    save_model(model, run.file("model.keras"), optimizer=False)
    write_best_model(run, resumed, model)  # best epoch 4 is the run's last: model.keras's copy
    assert run.file(BEST_MODEL).read_bytes() == run.file("model.keras").read_bytes()


# ResNet-18 has no dropout, so a deterministic run depends on nothing but the seed.
DETERMINISTIC = ["--arch", "resnet18", "--image-size", "32", "--batch-size", "4", "--epochs", "2", "--seed", "5",
                 "--deterministic", "--backend", "tensorflow"]


def _weights(run):
    return load_model(run).get_weights()


@pytest.fixture(scope="module")
def digits60(tmp_path_factory):
    """3 classes x 20 real photos: about 12 steps of batch 4 per epoch, a few seconds on 2 cores."""
    return copy_subset(SAMPLE, tmp_path_factory.mktemp("resume") / "digits", ["0", "1", "2"], 20)


@pytest.mark.slow  # moved from the fast tier, which stays under 5 minutes on 2 cores
def test_resume_after_kill_9_mid_epoch_equals_an_uninterrupted_run(digits60, tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    _ok(run_cli("train", "--data-dir", digits60, "--out", uninterrupted, *DETERMINISTIC))

    interrupted = tmp_path / "interrupted"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_sign.cli", "train", "--data-dir", digits60, "--out", interrupted, *DETERMINISTIC,
         "--checkpoint-every", "1"],  # epoch 1 is checkpointed however quickly it trains
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (interrupted / "checkpoint" / "state.json").is_file():
        assert process.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2, whose steps take about a second
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads((interrupted / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and not (interrupted / "model.keras").exists()

    _ok(run_cli("train", "--resume", interrupted))
    resumed, reference = _history(interrupted), _history(uninterrupted)
    assert [row["epoch"] for row in resumed] == ["1", "2"]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert [row[column] for row in resumed] == [row[column] for row in reference], column
    for after_resume, straight in zip(_weights(interrupted), _weights(uninterrupted)):
        np.testing.assert_array_equal(after_resume, straight)
    info = json.loads((interrupted / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs_trained"] == 2
    assert sorted(p.name for p in (interrupted / "checkpoint").iterdir()) == ["best.npz", "epoch-0002.npz",
                                                                             "state.json"]
    best = load_model(Path(interrupted) / "best.keras")  # the best epoch's model, beside model.keras
    assert best.count_params() == load_model(interrupted).count_params()

    # Nothing left to do: a clear error; a larger --epochs trains on.
    result = run_cli("train", "--resume", interrupted)
    assert result.returncode != 0 and "already trained 2 epoch(s)" in result.stderr
    result = run_cli("train", "--resume", interrupted, "--lr", "0.1")
    assert result.returncode != 0 and "only --epochs, --patience, --checkpoint-every, --backend, --image-cache, --image-cache-dir may" in result.stderr


@pytest.mark.xdist_group("users_run")
@pytest.mark.slow
def test_resume_falls_back_from_a_damaged_checkpoint(users_run, tmp_path, caplog):
    """Defect 8, on resume: the newest intact checkpoint (best.npz) is used and said so, and training
    goes on from there."""
    run = tmp_path / "resumed"
    shutil.copytree(users_run, run)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    (run / state["model"]).write_bytes(b"")  # a copy cut off, a full disk...
    config = load_config(run / "config.yaml", {"epochs": 3, "out": str(run)})
    train(config, "tensorflow", "test", resume=True)
    assert "Resuming from checkpoint/best.npz instead (epoch %d)" % state["best_epoch"] in caplog.text
    info = json.loads((run / "run.json").read_text())
    assert info["epochs_trained"] == 3
    assert [row["epoch"] for row in RunFolder(run).read_history()] == ["1", "2", "3"]


@pytest.mark.xdist_group("users_run")
def test_with_no_intact_checkpoint_training_starts_over(users_run, tmp_path, caplog):
    from keras_sign.training.checkpoints import load_resumable, read_state

    run = tmp_path / "damaged"
    shutil.copytree(users_run, run)
    folder = RunFolder(run)
    for name in (read_state(folder)["model"], "checkpoint/best.npz"):
        (run / name).write_bytes(b"PK\x03\x04 not a whole file")
    values, state = load_resumable(folder, read_state(folder))
    assert values is None and state["epoch"] == 0 and state["model"] is None
    assert "No intact checkpoint" in caplog.text and "training starts again from the first epoch" in caplog.text
