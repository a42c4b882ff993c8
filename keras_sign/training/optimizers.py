"""Adam and AdamW whose update is one fused kernel per weight under TensorFlow.

    keras-sign train --optimizer adam     # FusedAdam
    keras-sign train --optimizer adamw    # FusedAdamW

Keras' Adam builds its update from about twenty small ops per weight; TensorFlow traces each one
into the training step, and a MobileNetV3-Small has 142 weights. `tf.raw_ops.ResourceApplyAdam`
computes the same update (the same formula, moments and bias correction) in one kernel, so the
first epoch traces faster and every step launches fewer kernels (docs/benchmarks.md, "End to end").
The answers differ from Keras' Adam only by float rounding. Under JAX and PyTorch, with a
distribution strategy (data-parallel training), with AMSGrad or with sparse gradients, Keras' own
update runs unchanged. Weight decay, gradient clipping and loss scaling stay Keras' own: they act
before the update.
"""

import keras


class _FusedUpdate:
    """`update_step` through `ResourceApplyAdam` where TensorFlow runs it plainly; Keras' otherwise."""

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if tf.distribute.has_strategy() or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


@keras.saving.register_keras_serializable(package="keras_sign")
class FusedAdam(_FusedUpdate, keras.optimizers.Adam):
    """keras.optimizers.Adam with a fused update under TensorFlow (same arguments, same state)."""


@keras.saving.register_keras_serializable(package="keras_sign")
class FusedAdamW(_FusedUpdate, keras.optimizers.AdamW):
    """keras.optimizers.AdamW with a fused update under TensorFlow (same arguments, same state)."""
