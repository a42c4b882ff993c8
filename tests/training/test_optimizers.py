"""FusedAdam and FusedAdamW: Keras' Adam and AdamW, step for step, with one fused kernel per weight."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sign.training.optimizers import FusedAdam, FusedAdamW
from keras_sign.training.schedules import WarmupSchedule

SHAPES = [(3, 3, 3, 16), (16,), (64, 10)]


def _steps(optimizer, steps=4):
    """Weights after `steps` updates of `optimizer` with the same seeded gradients, and where they began."""
    rng = np.random.default_rng(0)
    start = [rng.normal(0, 0.1, shape).astype("float32") for shape in SHAPES]
    variables = [keras.Variable(value) for value in start]
    for _ in range(steps):
        optimizer.apply([rng.normal(0, 1e-2, shape).astype("float32") for shape in SHAPES], variables)
    return [variable.numpy() for variable in variables], start


@pytest.mark.parametrize("fused, keras_own, options", [
    (FusedAdam, keras.optimizers.Adam, {}),
    (FusedAdamW, keras.optimizers.AdamW, {"weight_decay": 0.05}),
])
def test_the_fused_update_is_keras_update_up_to_rounding(fused, keras_own, options):
    schedule = WarmupSchedule("cosine", 1e-3, total_steps=10, warmup_steps=2)
    ours, start = _steps(fused(schedule, **options))
    theirs, _ = _steps(keras_own(schedule, **options))
    for after, reference, before in zip(ours, theirs, start):
        # Leaving out Adam's bias correction, the schedule or the decay moves these by 1e-4 or more.
        np.testing.assert_allclose(after, reference, rtol=0, atol=1e-7)
        assert np.abs(after - before).max() > 1e-3  # the weights moved: the comparison is not vacuous


def test_the_fused_kernel_is_what_runs():
    variables = [keras.Variable(np.zeros(shape, "float32")) for shape in SHAPES]
    optimizer = FusedAdam(1e-3)
    optimizer.build(variables)
    graph = tf.function(lambda: optimizer.apply([tf.ones_like(v.value) for v in variables], variables)
                        ).get_concrete_function().graph
    assert [op.type for op in graph.get_operations()].count("ResourceApplyAdam") == len(variables)


def test_a_saved_fused_optimizer_loads_back_with_its_state(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer=FusedAdamW(1e-3, weight_decay=0.01), loss="categorical_crossentropy")
    model.fit(np.ones((8, 4)), keras.utils.to_categorical(np.arange(8) % 2, 2), epochs=3, verbose=0)
    model.save(tmp_path / "checkpoint.keras")
    loaded = keras.saving.load_model(tmp_path / "checkpoint.keras")
    assert type(loaded.optimizer) is FusedAdamW and int(loaded.optimizer.iterations) == 3
    assert loaded.optimizer.weight_decay == 0.01
    for ours, theirs in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
