"""The model registry and the torchvision-shaped rebuilds (numerical parity is in test_parity.py)."""

import keras
import numpy as np
import pytest

from keras_sign.errors import KerasSignError
from keras_sign.models import available_models, build_model, canonical_name

# torchvision's parameter counts for 1000 classes (batch-norm running statistics are buffers, not parameters).
TORCHVISION_PARAMETERS = {
    "mobilenetv3_small": 2_542_856,
    "resnet18": 11_689_512,
    "shufflenetv2_x0_5": 1_366_792,
    "shufflenetv2_x1_0": 2_278_604,
    "shufflenetv2_x1_5": 3_503_624,
    "shufflenetv2_x2_0": 7_393_996,
}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_registry_names_and_aliases():
    assert available_models() == sorted(TORCHVISION_PARAMETERS)
    assert canonical_name("mobilenetv3") == "mobilenetv3_small"
    assert canonical_name("shufflenetv2") == "shufflenetv2_x1_0"
    with pytest.raises(KerasSignError, match="Unknown architecture 'vgg16'"):
        canonical_name("vgg16")


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMETERS))
def test_parameter_counts_equal_torchvisions(name):
    assert _trainable(build_model(name, num_classes=1000, image_size=224)) == TORCHVISION_PARAMETERS[name]


@pytest.mark.parametrize("name", available_models())
def test_forward_and_backward_on_every_registered_model(name):
    # Size cap as in timm's registry test: the smallest input every model takes, 3 classes.
    model = build_model(name, num_classes=3, image_size=32)
    assert _trainable(model) < 12_000_000
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(images))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    # Eagerly: graph tracing would cost more than the step; training graphs run in test_end_to_end.py.
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(images, np.eye(3)[[0, 2]])
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("name, features", [("mobilenetv3_small", 576), ("resnet18", 512), ("shufflenetv2_x0_5", 1024)])
def test_feature_extractor_without_top(name, features):
    model = build_model(name, num_classes=7, image_size=48, include_top=False)
    assert model.output_shape == (None, features)


def test_odd_image_sizes_work():
    for size in (33, 57, 97):
        assert build_model("mobilenetv3", 5, size).output_shape == (None, 5)


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
    assert build_model("resnet18", 10, 32).get_layer("layer2_0_downsample_1").epsilon == 1e-5


@pytest.mark.parametrize("name", ["mobilenetv3_small", "shufflenetv2_x0_5"])
def test_normalisation_and_custom_layers_survive_save_and_load(name, tmp_path):
    model = build_model(name, 3, 32, mean=(100.0, 110.0, 120.0), std=(50.0, 55.0, 60.0))
    norm = model.get_layer("normalize")
    np.testing.assert_allclose(np.asarray(norm.mean).ravel(), [100, 110, 120])
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(images)), keras.ops.convert_to_numpy(model(images)), atol=1e-6
    )


def test_too_small_images_are_refused():
    with pytest.raises(KerasSignError, match="at least 32"):
        build_model("mobilenetv3", 3, 16)
