"""When checkpoints are written, and that best.keras holds the best epoch even when that epoch was not
checkpointed: a small compiled Keras model, real files, the epochs' metrics and durations given."""

import keras
import numpy as np
import pytest

from keras_sign.checkpoints import BEST, Checkpointer, fresh_state, read_state
from keras_sign.runs import RunFolder


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


def test_by_default_checkpoints_cost_at_most_a_twentieth_of_the_training_time(model, tmp_path):
    run = RunFolder(tmp_path)
    checkpoints = Checkpointer(run, fresh_state())
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=1.0, last=False)
    assert _written_epoch(run) == 1  # the first epoch, which also measures what writing costs
    checkpoints.write_seconds = 2.0  # as if writing took 2 s: due after 40 s of training
    for epoch, seconds in ((2, 30.0), (3, 9.0)):
        checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=seconds, last=False)
        assert _written_epoch(run) == 1, epoch
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=1.0, last=False)
    assert _written_epoch(run) == 4  # 40 s trained since the last checkpoint
    checkpoints.after_epoch(model, {"val_accuracy": 0.5}, seconds=0.1, last=True)
    assert _written_epoch(run) == 5  # the last epoch always
    assert sorted(p.name for p in run.file("checkpoint").iterdir()) == ["best.keras", "epoch-0005.keras", "state.json"]


def test_every_n_epochs_and_an_early_stop(model, tmp_path):
    run = RunFolder(tmp_path)
    checkpoints = Checkpointer(run, fresh_state(), patience=3, every=2)
    written = []
    for accuracy in (0.5, 0.4, 0.4, 0.4):
        state = checkpoints.after_epoch(model, {"val_accuracy": accuracy}, seconds=100.0, last=False)
        written.append(_written_epoch(run))
    assert written == [0, 2, 2, 4] and state["stopped_early"]  # epoch 4 is both the 2nd and the stop


def test_best_keras_is_the_best_epoch_even_when_it_was_not_checkpointed(model, tmp_path):
    run = RunFolder(tmp_path)
    checkpoints = Checkpointer(run, fresh_state(), every=3)
    for epoch, accuracy in zip((1, 2, 3), (0.3, 0.9, 0.6)):
        _train_an_epoch(model, epoch)
        state = checkpoints.after_epoch(model, {"val_accuracy": accuracy}, seconds=1.0, last=False)
    assert state["epoch"] == 3 and state["best_epoch"] == 2
    best = run.load_model(BEST, compile=True)
    for variable in [*best.variables, *best.optimizer.variables]:
        np.testing.assert_array_equal(variable.numpy(), np.full(variable.shape, 2, variable.dtype))
    # The model itself keeps training from epoch 3's values, and the epoch file holds those.
    assert all(np.all(variable.numpy() == 3) for variable in model.variables)
    latest = run.load_model(state["model"], compile=True)
    assert all(np.all(variable.numpy() == 3) for variable in [*latest.variables, *latest.optimizer.variables])
