"""ImageNet and other starting weights: torchvision's files, converted once and cached.

    keras-sign train --arch resnet18 --weights imagenet
    keras-sign train --arch resnet18 --weights ~/Downloads/resnet18-f37072fd.pth
    keras-sign train --arch mobilenetv3 --weights imagenet-keras

`imagenet` reads torchvision's ImageNet-1k file from the weights cache
(`$KERAS_HOME/models/keras_sign`, default `~/.keras/models/keras_sign`),
downloading it first when online (its SHA-256 must start with the hash in the
published file name, as torch.hub checks), converts it name to name and saves
`<arch>_imagenet.weights.h5` there, so conversion happens once. A path may be
a torchvision `.pth` (needs torch), a `.safetensors` file with torchvision's
names, or a keras-sign `.weights.h5`.

`imagenet-keras` (MobileNetV3-Small only) takes keras.applications'
MobileNetV3Small file instead (MD5-checked as Keras checks it), or pass that
`.h5` file as the path. Those weights were trained with Keras' stride-2 padding
and [-1, 1] inputs, so a model started from them keeps both (`padding="same"`,
mean = std = 127.5) and computes exactly keras.applications' function.
"""

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

TORCHVISION_BASE_URL = "https://download.pytorch.org/models/"
MIRROR_ENV = "KERAS_SIGN_WEIGHTS_URL"  # another base URL (a mirror, or file:///folder/) for the same files
TORCHVISION_FILES = {
    "mobilenetv3_small": "mobilenet_v3_small-047dcff4.pth",
    "resnet18": "resnet18-f37072fd.pth",
    "shufflenetv2_x0_5": "shufflenetv2_x0.5-f707e7126e.pth",
    "shufflenetv2_x1_0": "shufflenetv2_x1-5666bf0f80.pth",
    "shufflenetv2_x1_5": "shufflenetv2_x1_5-3c479a10.pth",
    "shufflenetv2_x2_0": "shufflenetv2_x2_0-8be3c8ee.pth",
}


def weights_cache():
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models" / "keras_sign"


KERAS_APPLICATIONS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
KERAS_APPLICATIONS_FILES = {  # name -> (file, its published MD5)
    "mobilenetv3_small": ("weights_mobilenet_v3_small_224_1.0_float.h5", "8768d4c2e7dee89b9d02b2d03d65d862"),
}
KERAS_APPLICATIONS_MEAN = KERAS_APPLICATIONS_STD = (127.5, 127.5, 127.5)  # x / 127.5 - 1


def is_keras_applications_source(weights):
    """Whether `--weights` names keras.applications' weights (which need Keras padding and [-1, 1] inputs)."""
    return weights == "imagenet-keras" or (weights.endswith(".h5") and not weights.endswith(".weights.h5"))


def published_hash_prefix(file_name):
    """torchvision's file names end in the first hex digits of the file's SHA-256."""
    return Path(file_name).stem.rsplit("-", 1)[-1]


def download_checked(url, target, expected=None, algorithm="sha256"):
    """Download `url` to `target`, refusing it unless its hash starts with `expected`.

    `expected` defaults to the SHA-256 prefix in a torchvision file name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = expected or published_hash_prefix(target.name)
    digest = hashlib.new(algorithm)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if not digest.hexdigest().startswith(expected):
            raise KerasSignError(
                f"{url} has {algorithm} {digest.hexdigest()[:12]}..., not the published {expected[:12]}...; "
                "the download is corrupt or not the published file, try again."
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as error:
        raise KerasSignError(
            f"Could not download {url} ({error}); when offline, fetch that file on another machine and put it at "
            f"{target}, or pass --weights PATH."
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def read_state_dict(path):
    """A torchvision state dict (name -> NumPy array) from a `.pth` or `.safetensors` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    try:
        import torch
    except ImportError:
        raise KerasSignError(
            f"Reading {path.name} needs PyTorch: run `pip install 'keras-sign[torch]'`, or pass a .safetensors file."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise KerasSignError(f"Could not read {path} as a PyTorch state dict ({error}).") from None
    return {key: value.numpy() for key, value in state.items()}


def copy_matching_weights(source, target):
    """Copy every layer's weights from `source` to the same-named layer of `target` when shapes agree.

    Returns the names of the weighted layers left as they were (a head for another
    number of classes, or layers the source lacks).
    """
    by_name = {layer.name: layer for layer in source.layers}
    kept = []
    for layer in target.layers:
        if not layer.weights:
            continue
        donor = by_name.get(layer.name)
        if donor is None or [w.shape for w in donor.weights] != [w.shape for w in layer.weights]:
            kept.append(layer.name)
            continue
        layer.set_weights(donor.get_weights())
    return kept


def keras_applications_model(path):
    """keras.applications' MobileNetV3Small (1000 classes, logits out) holding the weights file `path`."""
    import keras

    try:
        return keras.applications.MobileNetV3Small(
            input_shape=(224, 224, 3), weights=str(path), classifier_activation=None
        )
    except (ValueError, OSError, KeyError) as error:
        raise KerasSignError(
            f"{path} is not keras.applications' MobileNetV3Small file with its top ({error}); pass "
            f"{KERAS_APPLICATIONS_FILES['mobilenetv3_small'][0]}."
        ) from None


def imagenet_weights_file(arch, source="imagenet"):
    """The cached, converted ImageNet weights of `arch`: converted (and downloaded) on first use.

    `source` is `imagenet` (torchvision's files) or `imagenet-keras` (keras.applications').
    """
    from keras_sign.models.registry import build_model
    from keras_sign.models.weights import load_keras_applications_weights, load_torchvision_state_dict

    converted = weights_cache() / f"{arch}_{source}.weights.h5"
    if converted.is_file():
        return converted
    if source == "imagenet" and arch in TORCHVISION_FILES:
        name, expected, algorithm, base = TORCHVISION_FILES[arch], None, "sha256", TORCHVISION_BASE_URL
    elif source == "imagenet-keras" and arch in KERAS_APPLICATIONS_FILES:
        (name, expected), algorithm, base = KERAS_APPLICATIONS_FILES[arch], "md5", KERAS_APPLICATIONS_BASE_URL
    else:
        raise KerasSignError(f"No {source} weights are known for {arch}; use --weights none, imagenet or a file.")
    original = weights_cache() / name
    if not original.is_file():
        base = os.environ.get(MIRROR_ENV, base)
        log.info("Downloading %s weights for %s from %s", source, arch, base)
        download_checked(base.rstrip("/") + "/" + name, original, expected, algorithm)
    model = build_model(arch, num_classes=1000, image_size=224)
    if source == "imagenet":
        load_torchvision_state_dict(model, read_state_dict(original), skip_mismatched_head=False)
    else:
        load_keras_applications_weights(model, keras_applications_model(original))
    save_weights_atomically(model, converted)
    log.info("Converted %s to %s", original.name, converted)
    return converted


def save_weights_atomically(model, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}.{path.name}")  # Keras insists on the .weights.h5 suffix
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_starting_weights(model, arch, weights):
    """Fill `model` from `weights` (`imagenet`, `imagenet-keras` or a file); return the layers left as they were."""
    from keras_sign.models.registry import build_model
    from keras_sign.models.weights import load_keras_applications_weights, load_torchvision_state_dict

    if weights in ("imagenet", "imagenet-keras"):
        path = imagenet_weights_file(arch, weights)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise KerasSignError(f"Weights file {path} does not exist; pass imagenet, none or an existing file.")
    if path.name.endswith(".weights.h5"):
        # Our own files hold a whole model of some class count: read them into a 1000-class twin.
        for classes in (1000, model.output_shape[-1]):
            donor = build_model(arch, classes, model.input_shape[1])
            try:
                donor.load_weights(path)
            except ValueError:
                continue
            return copy_matching_weights(donor, model)
        raise KerasSignError(f"{path} does not hold {arch} weights; pass a file saved for that architecture.")
    if path.suffix in (".pth", ".pt", ".safetensors"):
        return load_torchvision_state_dict(model, read_state_dict(path), skip_mismatched_head=True)
    if path.suffix == ".h5":
        if arch not in KERAS_APPLICATIONS_FILES:
            raise KerasSignError(f"A keras.applications .h5 file fits only mobilenetv3_small, not {arch}.")
        return load_keras_applications_weights(model, keras_applications_model(path))
    raise KerasSignError(f"Unknown weights file type {path.name}; use .pth, .safetensors, .h5 or .weights.h5.")
