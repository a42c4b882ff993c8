"""`keras_sign.inference.ensemble_model`: the resize inside an ensemble that feeds members of other input sizes."""

import keras
import numpy as np

from keras_sign.inference.ensemble_model import resized


def test_the_in_model_resize_is_keras_antialiased_resize():
    images = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    for size in (64, 40, 95):
        expected = keras.layers.Resizing(size, size, antialias=True)(images)
        x = keras.Input((96, 96, 3))
        got = keras.Model(x, resized(x, size, "resize"))(images)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected), atol=2e-4)
