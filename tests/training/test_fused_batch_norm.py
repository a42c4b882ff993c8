"""Batch normalization through TensorFlow's fused kernel: Keras' layer, step for step, up to rounding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sign.training.fused_batch_norm import fuse_batch_norms


def _model(epsilon, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(epsilon=epsilon, momentum=0.9, name="bn")(x)
    x = keras.layers.BatchNormalization(center=False, scale=False, name="bare")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _train(model, images, steps=3):
    """Outputs and gradients of the first training step, then the weights after `steps` SGD steps."""
    optimizer = keras.optimizers.SGD(0.1)
    first = None
    for _ in range(steps):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = tf.reduce_mean(tf.square(outputs - 1.0))
        gradients = tape.gradient(loss, model.trainable_variables)
        first = first or (outputs.numpy(), [g.numpy() for g in gradients])
        optimizer.apply(gradients, model.trainable_variables)
    return first, [w.numpy() for w in model.weights]


@pytest.mark.parametrize("epsilon, shape", [(1e-3, (6, 5, 7, 3)), (1e-5, (6, 5, 7, 3)), (1e-5, (1, 1, 1, 3))])
def test_the_fused_layer_trains_as_keras_layer_up_to_rounding(epsilon, shape):
    """Outputs, gradients, moving mean and variance (the biased one, as Keras keeps) all agree; a
    single value per channel (batch 1, 1 x 1) is the edge where the variance has no Bessel correction."""
    images = np.random.default_rng(1).normal(3.0, 2.0, shape).astype("float32")
    plain, fused = _model(epsilon), _model(epsilon)
    fuse_batch_norms(fused)
    (outputs, gradients), weights = _train(plain, images)
    (fused_outputs, fused_gradients), fused_weights = _train(fused, images)
    np.testing.assert_allclose(fused_outputs, outputs, rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(fused_gradients, gradients):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    for ours, theirs in zip(fused_weights, weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    moving_variance = fused.get_layer("bn").moving_variance.numpy()
    assert np.all(np.isfinite(moving_variance)) and not np.allclose(moving_variance, 1.0)  # it moved


def test_the_fused_kernel_is_what_trains_and_keras_own_layer_is_what_is_saved(tmp_path):
    model = _model(1e-3)
    fuse_batch_norms(model)
    fuse_batch_norms(model)  # a second call changes nothing
    step = tf.function(lambda x: model(x, training=True)).get_concrete_function(tf.TensorSpec((2, 4, 4, 3)))
    assert sum(op.type == "FusedBatchNormV3" for op in step.graph.get_operations()) == 2
    inference = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec((2, 4, 4, 3)))
    assert not any(op.type == "FusedBatchNormV3" for op in inference.graph.get_operations())
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("bn")) is keras.layers.BatchNormalization
    assert "call" not in vars(loaded.get_layer("bn"))
