"""Names -> architecture specs, in the spirit of timm's `create_model` and `_cfg`.

An architecture file registers its builder with `@register(name, ...)`, giving
the facts the rest of keras-sign needs (published weights, parameter count,
feature width, layer names); every module in this package is imported on first
use. Adding an architecture is its file, its spec and a parity fixture
(CONTRIBUTING.md shows the steps); nothing else names architectures.
"""

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from keras_sign.errors import KerasSignError

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
TORCHVISION_BASE_URL = "https://download.pytorch.org/models/"
KERAS_APPLICATIONS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class PublishedWeights:
    """An ImageNet weights file someone publishes, and the input convention it was trained with."""

    url: str
    hash: str  # hex digest, or its prefix where only that is published (torchvision's file names end in one)
    algorithm: str = "sha256"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    padding: str = "torch"  # see build_model

    @property
    def file_name(self):
        return self.url.rsplit("/", 1)[-1]


def torchvision_weights(file_name):
    """torchvision's ImageNet-1k file `file_name`; its name ends in the first hex digits of its SHA-256."""
    return PublishedWeights(TORCHVISION_BASE_URL + file_name, hash=file_name.rsplit(".", 1)[0].rsplit("-", 1)[-1])


@dataclass(frozen=True)
class ArchSpec:
    """Everything keras-sign knows about one registered architecture.

    Attributes:
        name: the registered name.
        builder: `builder(x, num_classes, dropout=, bn_momentum=, include_top=) -> logits or features`
            on a normalised NHWC tensor.
        parameters: the trainable parameter count with 1000 classes: torchvision's for its architectures (the tests
            hold us to both).
        features: width of the pooled features (`include_top=False`).
        embedding_layer: the layer whose output the classifier's last Dense layer separates (t-SNE's points).
        pool_layer: the global pooling; every layer after it is the classifier head (frozen-backbone phase).
        weights: `--weights` source name (`imagenet`, `imagenet-keras`) -> PublishedWeights.
        aliases: other names accepted for it.
        inputs: what the model reads: "image" (raw RGB pixels, normalised inside the model),
            "landmarks" (a hand's landmark features, `keras_sign.hands.features`) or "fusion" (both: the hand's
            square and its landmark features, `keras_sign.models.fusion`).
    """

    name: str
    builder: Callable
    parameters: int
    features: int
    embedding_layer: str = "avgpool"
    pool_layer: str = "avgpool"
    weights: dict = field(default_factory=dict)
    aliases: tuple = ()
    inputs: str = "image"


_SPECS = {}
_ALIASES = {}


def register(name, **facts):
    """Decorator: registers `builder` under `name` with the ArchSpec `facts`; `build_model(name)` then builds it."""

    def decorate(builder):
        spec = ArchSpec(name=name, builder=builder, **facts)
        _SPECS[name] = spec
        for alias in spec.aliases:
            _ALIASES[alias] = name
        return builder

    return decorate


def _import_architectures():
    package = importlib.import_module("keras_sign.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"keras_sign.models.{module.name}")


def available_models(inputs="image"):
    """Registered architecture names that read `inputs` ("image", "landmarks"; None: all), sorted."""
    _import_architectures()
    return sorted(name for name, spec in _SPECS.items() if inputs is None or spec.inputs == inputs)


def canonical_name(name):
    """The registered name for `name` or one of its aliases; `fusion:<cnn>` names a fusion model of a CNN."""
    from keras_sign.models.fusion import PREFIX, cnn_of

    _import_architectures()
    if cnn_of(name) is not None:
        return PREFIX + get_spec(cnn_of(name)).name
    name = _ALIASES.get(name, name)
    if name not in _SPECS:
        choices = ", ".join(sorted(_SPECS) + sorted(_ALIASES))
        raise KerasSignError(f"Unknown architecture '{name}'; choose one of {choices}, or fusion:<cnn>.")
    return name


def get_spec(name):
    """The ArchSpec of a registered name or alias, or of `fusion:<cnn>`."""
    from keras_sign.models.fusion import cnn_of

    if cnn_of(name) is not None:
        return _fusion_spec(get_spec(cnn_of(name)))
    return _SPECS[canonical_name(name)]


def _fusion_spec(cnn):
    """The ArchSpec of `fusion:<cnn>` (`keras_sign.models.fusion`): the CNN's weights, both branches' features."""
    from keras_sign.models.fusion import EMBEDDING_LAYER, PREFIX

    if cnn.inputs != "image":
        raise KerasSignError(f"{PREFIX}{cnn.name}: a fusion model joins a CNN to the landmark branch; name a CNN "
                             f"after `{PREFIX}` (`keras-sign models` lists them).")
    landmarks = _SPECS["landmark_mlp"]
    return ArchSpec(name=PREFIX + cnn.name, builder=cnn.builder, parameters=0, features=cnn.features + landmarks.features,
                    embedding_layer=EMBEDDING_LAYER, pool_layer=cnn.pool_layer, weights=cnn.weights, inputs="fusion")


def build_model(
    name,
    num_classes=1000,
    image_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    dropout=None,
    bn_momentum=None,
    include_top=True,
    padding="torch",
):
    """A functional Keras model taking raw 0-255 RGB and returning class probabilities.

    Args:
        name: a registered architecture name or alias.
        num_classes: number of output classes.
        image_size: side of the square input (at least 32).
        mean: per-channel mean on the 0-255 scale used by the built-in normalisation.
        std: per-channel standard deviation on the 0-255 scale.
        dropout: dropout rate before the last layer; None keeps torchvision's (0.2 for
            MobileNetV3, none for ResNet and ShuffleNetV2).
        bn_momentum: batch-norm momentum in Keras' convention (1 - PyTorch's); None keeps the
            architecture's torchvision value. It changes training only, never the function computed.
        include_top: False returns the pooled backbone features (for t-SNE or a new head).
        padding: "torch" pads stride-2 convolutions on both sides, as torchvision; "same" uses
            Keras' padding, which keras.applications' MobileNetV3Small weights were trained with.

    Example:
        >>> model = build_model("mobilenetv3", num_classes=10, image_size=64)
        >>> model.output_shape
        (None, 10)
    """
    import keras

    from keras_sign.models.blocks import classifier_output, normalize_inputs

    spec = get_spec(name)
    if spec.inputs == "landmarks":
        return _landmark_model(spec, num_classes, dropout, bn_momentum, include_top)
    builder = spec.builder
    if image_size < 32:
        raise KerasSignError(f"image_size must be at least 32 (got {image_size}).")
    options = {}
    if padding != "torch":
        if "padding" not in inspect.signature(builder).parameters:
            raise KerasSignError(f"{canonical_name(name)} supports only torchvision's padding; drop padding={padding!r}.")
        options["padding"] = padding
    if spec.inputs == "fusion":
        from keras_sign.models.fusion import build_fusion

        return build_fusion(spec, _SPECS["landmark_mlp"], num_classes, image_size, mean, std, dropout, bn_momentum,
                            include_top, options)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = builder(
        normalize_inputs(inputs, mean, std), num_classes, dropout=dropout, bn_momentum=bn_momentum,
        include_top=include_top, **options,
    )
    if include_top:
        outputs = classifier_output(outputs)
    return keras.Model(inputs, outputs, name=canonical_name(name))


def _landmark_model(spec, num_classes, dropout, bn_momentum, include_top):
    """A model of a hand's landmark features (`keras_sign.hands.features`) to class probabilities."""
    import keras

    from keras_sign.hands.features import FEATURES
    from keras_sign.models.blocks import classifier_output

    inputs = keras.Input((FEATURES,), name="landmarks")
    outputs = spec.builder(inputs, num_classes, dropout=dropout, bn_momentum=bn_momentum, include_top=include_top)
    if include_top:
        outputs = classifier_output(outputs)
    return keras.Model(inputs, outputs, name=spec.name)
