"""The model registry and the torchvision-shaped rebuilds (numerical parity is in test_parity.py)."""

import keras
import numpy as np
import pytest

from keras_sign.errors import KerasSignError
from keras_sign.models import available_models, build_model, canonical_name
from keras_sign.models.registry import get_spec

# The registry as torchvision publishes it: name -> parameters with 1000 classes (batch-norm statistics are
# buffers, not parameters). Typed out here so that a spec cannot drift without a test failing.
TORCHVISION = {
    "mobilenetv3_small": 2_542_856,
    "resnet18": 11_689_512,
    "shufflenetv2_x0_5": 1_366_792,
    "shufflenetv2_x1_0": 2_278_604,
    "shufflenetv2_x1_5": 3_503_624,
    "shufflenetv2_x2_0": 7_393_996,
}
IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
# The ShuffleNetV2 widths share one graph and differ in channel counts only: the fast tier builds, trains,
# saves and runs in bfloat16 two of them (2 s each per check on 2 cores), the slow tier all four.
SLOW_WIDTHS = ("shufflenetv2_x1_5", "shufflenetv2_x2_0")
EVERY_MODEL = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_WIDTHS else name for name in available_models()]


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_registry_names_aliases_and_specs():
    assert available_models() == sorted(TORCHVISION)
    assert {name: get_spec(name).parameters for name in TORCHVISION} == TORCHVISION
    assert canonical_name("mobilenetv3") == "mobilenetv3_small"
    assert get_spec("shufflenetv2").name == "shufflenetv2_x1_0"
    assert sorted(get_spec("mobilenetv3").weights) == ["imagenet", "imagenet-keras"]
    with pytest.raises(KerasSignError, match="Unknown architecture 'vgg16'"):
        canonical_name("vgg16")


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_parameter_counts_equal_the_specs(name):
    assert _trainable(build_model(name, num_classes=1000, image_size=224)) == get_spec(name).parameters


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_forward_and_backward_on_every_registered_model(name):
    spec = get_spec(name)
    model = build_model(name, num_classes=3, image_size=32)  # the smallest input every model takes
    # The spec's named layers exist, and 3 classes instead of 1000 remove exactly 997 rows of the last layer.
    embedding = model.get_layer(spec.embedding_layer).output.shape[-1]
    assert model.get_layer(spec.pool_layer).output.shape == (None, spec.features)
    assert _trainable(model) == spec.parameters - 997 * (embedding + 1)
    probabilities = keras.ops.convert_to_numpy(model(IMAGES))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    # Eagerly: graph tracing would cost more than the step; training graphs run in training/test_fit.py.
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(IMAGES, np.eye(3)[[0, 2]])
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_registered_model_survives_save_and_load(name, tmp_path):
    model = build_model(name, 3, 32, mean=(100.0, 110.0, 120.0), std=(50.0, 55.0, 60.0))
    np.testing.assert_allclose(np.asarray(model.get_layer("normalize").mean).ravel(), [100, 110, 120])
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(IMAGES)), keras.ops.convert_to_numpy(model(IMAGES)), atol=1e-6
    )


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_registered_model_runs_in_bfloat16(name):
    reference = build_model(name, 3, 32)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_model(name, 3, 32)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(reference.get_weights())
    assert mixed.get_layer(get_spec(name).pool_layer).compute_dtype == "bfloat16"
    probabilities = keras.ops.convert_to_numpy(mixed(IMAGES))
    assert str(probabilities.dtype) == "float32"  # the softmax layer stays float32 for a stable loss
    # bfloat16 keeps 8 bits of mantissa: probabilities agree to a few hundredths, not to float32's 1e-6.
    np.testing.assert_allclose(probabilities, keras.ops.convert_to_numpy(reference(IMAGES)), atol=0.05)


@pytest.mark.parametrize("name", ["mobilenetv3_small", "resnet18", "shufflenetv2_x0_5"])
def test_feature_extractor_without_top(name):
    model = build_model(name, num_classes=7, image_size=48, include_top=False)
    assert model.output_shape == (None, get_spec(name).features)


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


def test_too_small_images_are_refused():
    with pytest.raises(KerasSignError, match="at least 32"):
        build_model("mobilenetv3", 3, 16)
