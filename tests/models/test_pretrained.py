"""Starting weights: download with hash check, .pth / .safetensors / .weights.h5, the ImageNet cache.

Every file here is a local stand-in (seeded torchvision-shaped tensors); nothing is downloaded.
"""

import hashlib
import json

import keras
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from conftest import REPO
from keras_sign.errors import KerasSignError
from keras_sign.models import build_model
from keras_sign.models.registry import get_spec
from keras_sign.models.starting_weights import (
    MIRROR_ENV,
    download_checked,
    imagenet_weights_file,
    load_starting_weights,
    read_state_dict,
)
from keras_sign.models.weight_mapping import load_torchvision_state_dict
from standin_weights import seeded_state_dict

ARCH = "shufflenetv2_x0_5"


@pytest.fixture
def standin_state_dict():
    """ShuffleNetV2 x0.5 ImageNet-shaped (1000 classes) weights drawn from the parity fixture's seeds."""
    spec = json.loads((REPO / "tests" / "parity" / "fixtures" / f"{ARCH}.json").read_text())
    tensors = [(k, [1000, *s[1:]] if k.startswith("fc.") else s) for k, s in spec["tensors"]]
    return seeded_state_dict(tensors, spec["base_seed"], spec["gains"])


def _save_pth(state, path):
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    return path


def _outputs(model, size=64):
    images = np.random.default_rng(3).uniform(0, 255, (2, size, size, 3)).astype("float32")
    return keras.ops.convert_to_numpy(model(images))


def test_pth_and_safetensors_read_the_same_tensors(standin_state_dict, tmp_path):
    from_pth = read_state_dict(_save_pth(standin_state_dict, tmp_path / "w.pth"))
    save_file(standin_state_dict, tmp_path / "w.safetensors")
    from_safetensors = read_state_dict(tmp_path / "w.safetensors")
    assert from_pth.keys() == from_safetensors.keys() == standin_state_dict.keys()
    assert all(np.array_equal(from_pth[k], from_safetensors[k]) for k in from_pth)


def test_conversion_round_trip_through_weights_h5(standin_state_dict, tmp_path):
    reference = build_model(ARCH, 1000, 64)
    load_torchvision_state_dict(reference, standin_state_dict, skip_mismatched_head=False)
    path = _save_pth(standin_state_dict, tmp_path / "w.pth")

    five_classes = build_model(ARCH, 5, 64)
    assert load_starting_weights(five_classes, ARCH, str(path)) == ["fc"]  # new head, rest converted
    backbone = keras.Model(five_classes.input, five_classes.get_layer("avgpool").output)
    expected = keras.Model(reference.input, reference.get_layer("avgpool").output)
    np.testing.assert_allclose(_outputs(backbone), _outputs(expected), atol=1e-5)

    reference.save_weights(tmp_path / "converted.weights.h5")
    reloaded = build_model(ARCH, 1000, 96)  # another input size: the weights do not depend on it
    assert load_starting_weights(reloaded, ARCH, str(tmp_path / "converted.weights.h5")) == []
    reference_96 = build_model(ARCH, 1000, 96)
    load_torchvision_state_dict(reference_96, standin_state_dict, skip_mismatched_head=False)
    np.testing.assert_allclose(_outputs(reloaded, 96), _outputs(reference_96, 96), atol=1e-6)


def test_imagenet_is_converted_once_and_cached(standin_state_dict, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(MIRROR_ENV, "file:///nonexistent-mirror/")
    cache = tmp_path / "models" / "keras_sign"
    published = cache / get_spec(ARCH).weights["imagenet"].file_name
    with pytest.raises(KerasSignError, match=f"put it at {published}"):
        imagenet_weights_file(ARCH)

    cache.mkdir(parents=True, exist_ok=True)
    _save_pth(standin_state_dict, published)  # as a user copies the file in by hand
    converted = imagenet_weights_file(ARCH)
    assert converted == cache / f"{ARCH}_imagenet.weights.h5"
    stamp = converted.stat().st_mtime_ns
    model = build_model(ARCH, 3, 32)
    assert load_starting_weights(model, ARCH, "imagenet") == ["fc"]
    assert converted.stat().st_mtime_ns == stamp


def test_download_checks_the_published_hash_prefix(tmp_path):
    payload = b"stand-in weights"
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / f"model-{prefix}.pth").write_bytes(payload)
    (mirror / "model-00000000.pth").write_bytes(payload)

    target = download_checked((mirror / f"model-{prefix}.pth").as_uri(), tmp_path / "cache" / f"model-{prefix}.pth",
                              prefix)
    assert target.read_bytes() == payload
    with pytest.raises(KerasSignError, match="not the published 00000000"):
        download_checked((mirror / "model-00000000.pth").as_uri(), tmp_path / "cache" / "model-00000000.pth",
                         "00000000")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"model-{prefix}.pth"]


def test_wrong_weights_are_refused(standin_state_dict, tmp_path):
    with pytest.raises(KerasSignError, match="do not fit resnet18"):
        load_starting_weights(build_model("resnet18", 3, 32), "resnet18", str(_save_pth(standin_state_dict, tmp_path / "w.pth")))
    with pytest.raises(KerasSignError, match="does not exist"):
        load_starting_weights(build_model(ARCH, 3, 32), ARCH, str(tmp_path / "missing.pth"))
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(KerasSignError, match="Unknown weights file type"):
        load_starting_weights(build_model(ARCH, 3, 32), ARCH, str(tmp_path / "w.onnx"))


def _keras_applications_standin(path):
    """keras.applications' MobileNetV3Small with seeded weights, saved in its published (legacy .h5) format.

    He-scaled kernels and spread batch-norm statistics keep the signal alive to the logits, so a
    one-pixel padding shift shows up clearly.
    """
    model = keras.applications.MobileNetV3Small(input_shape=(224, 224, 3), weights=None, classifier_activation=None)
    rng = np.random.default_rng(11)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.weights[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])
        elif layer.weights:
            kernel, *bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:2]) * (1 if isinstance(layer, keras.layers.DepthwiseConv2D) else kernel.shape[2])
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), kernel.shape), *[rng.normal(0, 0.1, b.shape) for b in bias]])
    model.save(path)
    return path


def test_keras_applications_weights_compute_keras_applications_model_exactly(tmp_path):
    path = _keras_applications_standin(tmp_path / "weights_mobilenet_v3_small_224_1.0_float.h5")
    images = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    reference = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), weights=str(path), classifier_activation=None)
    expected = keras.ops.convert_to_numpy(reference(images))

    def logits(padding):
        model = build_model("mobilenetv3", 1000, 64, mean=(127.5,) * 3, std=(127.5,) * 3, padding=padding)
        assert load_starting_weights(model, "mobilenetv3_small", str(path)) == []
        return keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer("classifier_3").output)(images))

    scale = np.abs(expected).max()
    assert np.abs(logits("same") - expected).max() <= 1e-5 * scale
    # torchvision's symmetric padding computes another function with the same weights: that is why
    # a model started from these weights keeps Keras' padding.
    assert np.abs(logits("torch") - expected).max() > 1e-2 * scale


def test_imagenet_keras_downloads_with_md5_check_and_is_refused_elsewhere(tmp_path, monkeypatch):
    from keras_sign.config import TrainConfig
    from keras_sign.models.starting_weights import starting_point

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(MIRROR_ENV, mirror.as_uri())
    with pytest.raises(KerasSignError, match="put it at .*weights_mobilenet_v3_small_224_1.0_float.h5"):
        imagenet_weights_file("mobilenetv3_small", "imagenet-keras")
    _keras_applications_standin(mirror / "weights_mobilenet_v3_small_224_1.0_float.h5")
    with pytest.raises(KerasSignError, match="md5 .* not the published 8768d4c2e7de"):
        imagenet_weights_file("mobilenetv3_small", "imagenet-keras")
    assert not list((tmp_path / "home" / "models" / "keras_sign").iterdir())  # nothing left to trust later
    with pytest.raises(KerasSignError, match="No imagenet-keras weights are known for resnet18"):
        imagenet_weights_file("resnet18", "imagenet-keras")
    with pytest.raises(KerasSignError, match="fits only mobilenetv3_small"):
        load_starting_weights(build_model("resnet18", 3, 32), "resnet18", str(mirror / "weights_mobilenet_v3_small_224_1.0_float.h5"))

    start = starting_point(TrainConfig(weights="imagenet-keras"), "mobilenetv3_small")
    assert (start.padding, start.mean, start.std) == ("same", (127.5,) * 3, (127.5,) * 3)
    assert starting_point(TrainConfig(weights="imagenet"), "mobilenetv3_small").padding == "torch"
    with pytest.raises(KerasSignError, match="fit only mobilenetv3_small, not resnet18"):
        starting_point(TrainConfig(weights="imagenet-keras"), "resnet18")
    with pytest.raises(KerasSignError, match="supports only torchvision's padding"):
        build_model("resnet18", 3, 32, padding="same")
