"""Where a model's weights start: ImageNet files (downloaded, converted once, cached), a file, another run.

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

Which files exist for an architecture, and the input convention of each, is in
its spec (`keras_sign.models.registry.ArchSpec.weights`).
"""

import dataclasses
import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from keras_sign.errors import KerasSignError
from keras_sign.models.registry import IMAGENET_MEAN, IMAGENET_STD, available_models, build_model, get_spec
from keras_sign.models.saving import load_model
from keras_sign.runs.atomic import replaced_atomically

log = logging.getLogger("keras_sign")

MIRROR_ENV = "KERAS_SIGN_WEIGHTS_URL"  # another base URL (a mirror, or file:///folder/) for the same files
KERAS_APPLICATIONS_SOURCE = "imagenet-keras"


def weights_cache():
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models" / "keras_sign"


def is_keras_applications_source(weights):
    """Whether `--weights` names keras.applications' weights (which need Keras padding and [-1, 1] inputs)."""
    return weights == KERAS_APPLICATIONS_SOURCE or (weights.endswith(".h5") and not weights.endswith(".weights.h5"))


def _keras_applications_archs():
    return ", ".join(name for name in available_models() if KERAS_APPLICATIONS_SOURCE in get_spec(name).weights)


def download_checked(url, target, expected, algorithm="sha256"):
    """Download `url` to `target`, refusing it unless its hash starts with `expected`."""
    # Not keras.utils.get_file: torchvision publishes only a SHA-256 prefix, and get_file (Keras 3.15) keeps a
    # mismatched download at the cache path and writes to /tmp/.keras while the cache folder does not exist yet.
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(algorithm)
    try:
        with replaced_atomically(target) as tmp, open(tmp, "wb") as out, \
                urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            if not digest.hexdigest().startswith(expected):
                raise KerasSignError(
                    f"{url} has {algorithm} {digest.hexdigest()[:12]}..., not the published {expected[:12]}...; "
                    "the download is corrupt or not the published file, try again."
                )
    except (urllib.error.URLError, OSError) as error:
        raise KerasSignError(
            f"Could not download {url} ({error}); when offline, fetch that file on another machine and put it at "
            f"{target}, or pass --weights PATH."
        ) from None
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
            f"{get_spec('mobilenetv3_small').weights[KERAS_APPLICATIONS_SOURCE].file_name}."
        ) from None


def imagenet_weights_file(arch, source="imagenet"):
    """The cached, converted ImageNet weights of `arch`: converted (and downloaded) on first use.

    `source` is a key of the architecture's `ArchSpec.weights`: `imagenet` (torchvision's files) or
    `imagenet-keras` (keras.applications').
    """
    from keras_sign.models.weight_mapping import load_keras_applications_weights, load_torchvision_state_dict

    converted = weights_cache() / f"{arch}_{source}.weights.h5"
    if converted.is_file():
        return converted
    published = get_spec(arch).weights.get(source)
    if published is None:
        raise KerasSignError(f"No {source} weights are known for {arch}; use --weights none, imagenet or a file.")
    original = weights_cache() / published.file_name
    if not original.is_file():
        mirror = os.environ.get(MIRROR_ENV)
        url = mirror.rstrip("/") + "/" + published.file_name if mirror else published.url
        log.info("Downloading %s weights for %s from %s", source, arch, url)
        download_checked(url, original, published.hash, published.algorithm)
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
    with replaced_atomically(path) as tmp:
        model.save_weights(tmp)


def load_starting_weights(model, arch, weights):
    """Fill `model` from `weights` (`imagenet`, `imagenet-keras` or a file); return the layers left as they were.
    A fusion model's CNN is filled as the CNN alone would be; its landmark branch and classifier are new."""
    from keras_sign.models.fusion import cnn_of
    from keras_sign.models.weight_mapping import load_keras_applications_weights, load_torchvision_state_dict

    if cnn_of(arch) is not None:
        donor = build_model(cnn_of(arch), 1000, model.input_shape[0][1])
        load_starting_weights(donor, cnn_of(arch), weights)
        return copy_matching_weights(donor, model)

    if weights in ("imagenet", KERAS_APPLICATIONS_SOURCE):
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
        if KERAS_APPLICATIONS_SOURCE not in get_spec(arch).weights:
            raise KerasSignError(f"A keras.applications .h5 file fits only {_keras_applications_archs()}, not {arch}.")
        return load_keras_applications_weights(model, keras_applications_model(path))
    raise KerasSignError(f"Unknown weights file type {path.name}; use .pth, .safetensors, .h5 or .weights.h5.")


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    """Where a new run's weights come from, and the input normalisation that goes with them.

    `mean`/`std` None: computed on the training split (random initialisation). `padding` is the
    model's (see `build_model`). `fill(model)` loads the weights and returns the layers it left.
    """

    description: str
    normalization: str
    mean: tuple | None
    std: tuple | None
    padding: str
    fill: Callable


def starting_point(config, arch):
    """The StartingPoint of `config` (its `weights` and `init_from`) for the registered `arch`."""
    from keras_sign.runs.folder import RunFolder
    from keras_sign.runs.record import RunInfo

    if config.weights != "none":
        spec = get_spec(arch)
        keras_applications = is_keras_applications_source(config.weights)
        if keras_applications and KERAS_APPLICATIONS_SOURCE not in spec.weights:
            raise KerasSignError(f"keras.applications weights (--weights {config.weights}) fit only "
                                 f"{_keras_applications_archs()}, not {arch}; use --weights imagenet.")
        # A file's convention is its family's: torchvision's (ImageNet statistics) unless keras.applications'.
        convention = spec.weights.get(KERAS_APPLICATIONS_SOURCE if keras_applications else "imagenet")
        return StartingPoint(
            description=f"{config.weights} weights" + (" (keras.applications)" if keras_applications else ""),
            normalization=("[-1, 1] (keras.applications' weights expect it)" if keras_applications
                           else "ImageNet (the pretrained weights expect it)"),
            mean=convention.mean if convention else IMAGENET_MEAN,
            std=convention.std if convention else IMAGENET_STD,
            padding=convention.padding if convention else "torch",
            fill=lambda model: load_starting_weights(model, arch, config.weights),
        )
    if config.init_from:
        source = RunFolder.open(config.init_from)
        info = RunInfo.read(source.path)
        if info.arch != arch:
            raise KerasSignError(
                f"--init-from {config.init_from} holds a {info.arch} model, not {arch}; pass --arch {info.arch}."
            )
        return StartingPoint(
            description=f"the model of run {config.init_from}",
            normalization=f"copied from run {config.init_from}",
            mean=info.normalization["mean"],
            std=info.normalization["std"],
            padding=info.extra.get("padding", "torch"),
            fill=lambda model: copy_matching_weights(load_model(source.path), model),
        )
    return StartingPoint("random initialisation", "training split", None, None, "torch", lambda model: [])
