"""The model registry and MobileNetV3-Small's torchvision-shaped rebuild."""

import keras
import numpy as np
import pytest

from keras_sign.errors import KerasSignError
from keras_sign.models import available_models, build_model, canonical_name


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_registry_names_and_aliases():
    assert "mobilenetv3_small" in available_models()
    assert canonical_name("mobilenetv3") == "mobilenetv3_small"
    with pytest.raises(KerasSignError, match="Unknown architecture 'vgg16'"):
        canonical_name("vgg16")


def test_mobilenetv3_small_has_torchvisions_parameter_count():
    # torchvision.models.mobilenet_v3_small(): 2,542,856 parameters (BN running stats are buffers).
    assert _trainable(build_model("mobilenetv3_small", num_classes=1000, image_size=224)) == 2_542_856


def test_layer_names_follow_torchvision_state_dict_keys():
    model = build_model("mobilenetv3_small", num_classes=10, image_size=32)
    names = {layer.name for layer in model.layers}
    for key in ["features.0.0", "features.0.1", "features.1.block.0.0", "features.1.block.1.fc1",
                "features.1.block.2.1", "features.4.block.2.fc2", "features.12.0", "classifier.0", "classifier.3"]:
        assert key.replace(".", "_") in names
    # Stride-2 convolutions pad both sides like PyTorch instead of Keras' bottom/right "same" padding.
    assert isinstance(model.get_layer("features_0_pad"), keras.layers.ZeroPadding2D)
    assert model.get_layer("features_0_0").padding == "valid"
    assert model.get_layer("features_0_1").epsilon == 1e-3


@pytest.mark.parametrize("image_size", [32, 57, 96])
def test_forward_backward_at_any_size(image_size):
    model = build_model("mobilenetv3", num_classes=5, image_size=image_size)
    images = np.random.default_rng(0).uniform(0, 255, (2, image_size, image_size, 3)).astype("float32")
    probabilities = np.asarray(model(images))
    assert probabilities.shape == (2, 5)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    loss = model.train_on_batch(images, np.eye(5)[[0, 3]])
    assert np.isfinite(loss)


def test_normalisation_is_inside_the_model_and_survives_save_and_load(tmp_path):
    model = build_model("mobilenetv3", 3, 32, mean=(100.0, 110.0, 120.0), std=(50.0, 55.0, 60.0))
    norm = model.get_layer("normalize")
    np.testing.assert_allclose(np.asarray(norm.mean).ravel(), [100, 110, 120])
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(restored(images)), np.asarray(model(images)), atol=1e-6)


def test_too_small_images_are_refused():
    with pytest.raises(KerasSignError, match="at least 32"):
        build_model("mobilenetv3", 3, 16)
