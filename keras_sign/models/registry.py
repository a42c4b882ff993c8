"""Names -> model builders, in the spirit of timm's `create_model`.

An architecture file registers its builder with `@register(name)`; every
module in this package is imported on first use, so adding an architecture
is a one-file change.
"""

import importlib
import inspect
import pkgutil

from keras_sign.errors import KerasSignError

_BUILDERS = {}
_ALIASES = {}
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def register(name, aliases=()):
    """Decorator: `builder(x, num_classes, dropout=, bn_momentum=, include_top=) -> logits or features`
    becomes `build_model(name, ...)`."""

    def decorate(builder):
        _BUILDERS[name] = builder
        for alias in aliases:
            _ALIASES[alias] = name
        return builder

    return decorate


def _import_architectures():
    package = importlib.import_module("keras_sign.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"keras_sign.models.{module.name}")


def available_models():
    """Registered architecture names, sorted."""
    _import_architectures()
    return sorted(_BUILDERS)


def aliases_of(name):
    """The aliases that point at registered name `name`."""
    return sorted(alias for alias, target in _ALIASES.items() if target == name)


def canonical_name(name):
    """The registered name for `name` or one of its aliases."""
    _import_architectures()
    name = _ALIASES.get(name, name)
    if name not in _BUILDERS:
        choices = ", ".join(sorted(_BUILDERS) + sorted(_ALIASES))
        raise KerasSignError(f"Unknown architecture '{name}'; choose one of {choices}.")
    return name


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

    builder = _BUILDERS[canonical_name(name)]
    if image_size < 32:
        raise KerasSignError(f"image_size must be at least 32 (got {image_size}).")
    options = {}
    if padding != "torch":
        if "padding" not in inspect.signature(builder).parameters:
            raise KerasSignError(f"{canonical_name(name)} supports only torchvision's padding; drop padding={padding!r}.")
        options["padding"] = padding
    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = builder(
        normalize_inputs(inputs, mean, std), num_classes, dropout=dropout, bn_momentum=bn_momentum,
        include_top=include_top, **options,
    )
    if include_top:
        outputs = classifier_output(outputs)
    return keras.Model(inputs, outputs, name=canonical_name(name))
