"""Batch normalization through TensorFlow's fused kernel while keras-sign trains.

Keras' BatchNormalization computes a batch's moments and the normalisation from about ten small
ops, and their gradients from many more (a MobileNetV3-Small has 34 such layers, a ResNet-18 20,
a ShuffleNetV2 56). TensorFlow's `FusedBatchNormV3` does each direction in one kernel (oneDNN's on
a CPU), as PyTorch does. The answers differ from Keras' only by float rounding, and the default
job's wall time fell by 12% (docs/benchmarks.md, "End to end").

Only the training-mode call of each layer instance is replaced, and only under TensorFlow; the
layers stay Keras' own class, so a saved model loads in plain Keras and runs Keras' own code
everywhere else (inference, export, the JAX and PyTorch backends). Layers the kernel does not cover
(masks, renormalisation, a channel axis other than the last, inputs other than 4-D float32, a
distribution strategy) keep Keras' call.
"""

import keras


def fuse_batch_norms(model):
    """Route `model`'s BatchNormalization layers through the fused kernel in training (TensorFlow only;
    a no-op elsewhere, and for layers already routed)."""
    if keras.backend.backend() != "tensorflow":
        return
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and not hasattr(layer, "_keras_call"):
            layer._keras_call = layer.call
            layer.call = _fused_call(layer)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested model
            yield from _all_layers(layer)


def _fused_call(layer):
    import tensorflow as tf

    def call(inputs, training=None, mask=None):
        fusable = (training and layer.trainable and mask is None and not layer.renorm and inputs.dtype == tf.float32
                   and len(inputs.shape) == 4 and layer.axis in (-1, 3) and not tf.distribute.has_strategy())
        if not fusable:
            return layer._keras_call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        output, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=layer.gamma if layer.scale else tf.ones([channels]),
            offset=layer.beta if layer.center else tf.zeros([channels]),
            mean=tf.zeros([0]), variance=tf.zeros([0]), epsilon=layer.epsilon, is_training=True, data_format="NHWC",
        )
        # The kernel hands back the batch variance with Bessel's correction; Keras' moving variance
        # averages the plain (biased) one.
        count = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        momentum = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
        layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
        return output

    return call
