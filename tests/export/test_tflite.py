"""`keras_sign.export.tflite`: builtin ops only; a model that needs Flex ops is refused, naming the op."""

import pytest

from export_fixtures import CLASSES, few_photos, untrained_run  # noqa: F401  (fixtures)
from keras_sign.errors import KerasSignError


def test_a_model_that_needs_flex_ops_is_refused_naming_the_op(few_photos, tmp_path):
    import keras
    import tensorflow as tf

    from keras_sign.export.bundle import export_run

    @keras.saving.register_keras_serializable(package="test_export")
    class CumulativeProduct(keras.layers.Layer):
        """tf.math.cumprod: a TensorFlow op with no TFLite builtin kernel (it needs Flex)."""

        def call(self, x):
            return tf.math.cumprod(x, axis=1)

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(CumulativeProduct()(inputs)))
    run = untrained_run(tmp_path / "flex", keras.Model(inputs, outputs, name="flex"), few_photos)
    with pytest.raises(KerasSignError, match="Cumprod") as error:
        export_run(run, "tflite", out=tmp_path / "exports")
    assert "Flex" in str(error.value) and "\n" not in str(error.value)
    assert not any((tmp_path / "exports").iterdir())  # nothing half-written is left behind
