"""`keras_sign.inference.features`: the penultimate features and the probabilities from one model."""

import numpy as np
import pytest

from analysis_fixtures import digit_run, digits  # noqa: F401  (fixtures)
from keras_sign.inference.features import penultimate_model
from keras_sign.models import build_model
from keras_sign.models.saving import load_model


@pytest.mark.parametrize("arch, width", [("resnet18", 512), ("shufflenetv2_x0_5", 1024)])
def test_features_of_pooled_architectures_are_the_pooled_output(arch, width):
    model = build_model(arch, 3, 32)
    features, probabilities = penultimate_model(model, arch).outputs
    assert features.shape == (None, width) and probabilities.shape == (None, 3)
    assert model.get_layer("avgpool").output.shape == (None, width)


@pytest.mark.xdist_group("analysis")
def test_features_and_probabilities_come_from_one_model(digit_run):
    model = load_model(digit_run[0])
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    features, probabilities = penultimate_model(model, "mobilenetv3_small").predict_on_batch(images)
    assert features.shape == (2, 1024)  # MobileNetV3-Small's hidden classifier layer
    np.testing.assert_allclose(probabilities, model.predict_on_batch(images), atol=1e-6)
    # One two-output view per model, so calibration and evaluation after training share its traced step.
    assert penultimate_model(model, "mobilenetv3_small") is penultimate_model(model, "mobilenetv3_small")
    assert penultimate_model(load_model(digit_run[0]), "mobilenetv3_small") is not \
        penultimate_model(model, "mobilenetv3_small")
