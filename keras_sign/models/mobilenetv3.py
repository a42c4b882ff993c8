"""MobileNetV3-Small as torchvision's `mobilenet_v3_small`, in Keras 3 layers only.

Structure, layer names, hard-swish / hard-sigmoid, squeeze-excite sizes and
batch norm (eps 1e-3, PyTorch momentum 0.01) follow torchvision, so ImageNet
weights map name to name. 2,542,856 parameters with 1000 classes.
"""

from keras import layers

from keras_sign.models.blocks import conv_norm_act, make_divisible
from keras_sign.models.registry import KERAS_APPLICATIONS_BASE_URL, PublishedWeights, register, torchvision_weights

# (kernel, expanded channels, output channels, squeeze-excite, activation, stride): torchvision's table.
SMALL_BLOCKS = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 120, 48, True, "hard_swish", 1),
    (5, 144, 48, True, "hard_swish", 1),
    (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1),
    (5, 576, 96, True, "hard_swish", 1),
]
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # PyTorch's 0.01


def squeeze_excite(x, channels, name):
    """torchvision's `SqueezeExcitation`: pool -> 1x1 conv -> ReLU -> 1x1 conv -> hard-sigmoid -> scale."""
    squeezed = make_divisible(channels // 4)
    scale = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avgpool")(x)
    scale = layers.Conv2D(squeezed, 1, activation="relu", name=f"{name}_fc1")(scale)
    scale = layers.Conv2D(channels, 1, activation="hard_sigmoid", name=f"{name}_fc2")(scale)
    return layers.Multiply(name=f"{name}_scale")([x, scale])


def inverted_residual(x, kernel, expanded, out_channels, use_se, activation, stride, name, conv_options):
    """torchvision's `InvertedResidual`: expand (if wider) -> depthwise -> [SE] -> project [+ input]."""
    in_channels = x.shape[-1]
    shortcut = x
    index = 0
    if expanded != in_channels:
        x = conv_norm_act(x, expanded, 1, f"{name}_block_{index}", activation=activation, **conv_options)
        index += 1
    x = conv_norm_act(x, expanded, kernel, f"{name}_block_{index}", stride, True, activation, **conv_options)
    index += 1
    if use_se:
        x = squeeze_excite(x, expanded, f"{name}_block_{index}")
        index += 1
    x = conv_norm_act(x, out_channels, 1, f"{name}_block_{index}", **conv_options)
    if stride == 1 and in_channels == out_channels:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


# keras.applications' MobileNetV3Small weights were trained with Keras' stride-2 padding and x / 127.5 - 1.
KERAS_APPLICATIONS_WEIGHTS = PublishedWeights(
    KERAS_APPLICATIONS_BASE_URL + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float.h5",
    hash="8768d4c2e7dee89b9d02b2d03d65d862", algorithm="md5", mean=(127.5,) * 3, std=(127.5,) * 3, padding="same",
)


@register(
    "mobilenetv3_small", aliases=("mobilenetv3",), parameters=2_542_856, features=576,
    embedding_layer="classifier_0",  # the 1024-d hidden layer the last Dense layer separates
    weights={
        "imagenet": torchvision_weights("mobilenet_v3_small-047dcff4.pth"),
        "imagenet-keras": KERAS_APPLICATIONS_WEIGHTS,
    },
)
def mobilenet_v3_small(x, num_classes, dropout=None, bn_momentum=None, include_top=True, padding="torch"):
    """Backbone (and classifier) on a normalised NHWC tensor; returns logits or pooled features.

    `bn_momentum` (Keras convention) defaults to torchvision's; it only affects training.
    `padding="same"` pads stride-2 convolutions as keras.applications' MobileNetV3Small does
    (bottom/right only), which its ImageNet weights need to compute exactly that model.

    Example:
        >>> from keras_sign.models import build_model
        >>> from keras_sign.models.summary import count_parameters
        >>> count_parameters(build_model("mobilenetv3_small", num_classes=1000, image_size=224))
        2542856
    """
    conv_options = {"bn_epsilon": BN_EPSILON, "bn_momentum": bn_momentum or BN_MOMENTUM, "padding": padding}
    # === Features ===
    x = conv_norm_act(x, 16, 3, "features_0", stride=2, activation="hard_swish", **conv_options)
    for position, block in enumerate(SMALL_BLOCKS, start=1):
        x = inverted_residual(x, *block, name=f"features_{position}", conv_options=conv_options)
    x = conv_norm_act(x, 576, 1, f"features_{len(SMALL_BLOCKS) + 1}", activation="hard_swish", **conv_options)
    # === Classifier ===
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    if not include_top:
        return x
    x = layers.Dense(1024, activation="hard_swish", name="classifier_0")(x)
    x = layers.Dropout(0.2 if dropout is None else dropout, name="classifier_2")(x)
    return layers.Dense(num_classes, name="classifier_3")(x)
