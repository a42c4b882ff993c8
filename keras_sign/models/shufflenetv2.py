"""ShuffleNetV2 (x0.5, x1.0, x1.5, x2.0) as torchvision's `shufflenet_v2_*`, in Keras 3 layers only.

Channel split and shuffle keep torchvision's channel order under NHWC, so
ImageNet weights map name to name (`stage2_0_branch1_0` is `stage2.0.branch1.0`).
Batch norm eps 1e-5, PyTorch momentum 0.1. The split is Keras' own split op and
the shuffle Keras' Reshape and Permute layers, so a saved model loads in plain
Keras without keras-sign installed.
"""

import keras
from keras import layers

from keras_sign.models.blocks import pooled_linear_head
from keras_sign.models.registry import register, torchvision_weights

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch's 0.1
STAGE_REPEATS = (4, 8, 4)
STAGE_CHANNELS = {  # torchvision's stages_out_channels: stem, stage2-4, conv5
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


def channel_shuffle(x, groups, name):
    """torchvision's `channel_shuffle` for NHWC: channel `g * (C / groups) + j` moves to `j * groups + g`."""
    height, width, channels = x.shape[1:]
    x = layers.Reshape((height, width, groups, channels // groups), name=f"{name}_groups")(x)
    x = layers.Permute((1, 2, 4, 3), name=f"{name}_permute")(x)
    return layers.Reshape((height, width, channels), name=name)(x)


def channel_halves(x):
    """The two halves of the channels, as `x.chunk(2, dim=1)` gives in PyTorch: one split op, which a
    functional model saves and plain Keras loads. Its gradient is one concatenation, where the crop per half
    that earlier runs saved (Reshape + Cropping3D + Reshape; they still load) writes a zero-padded
    full-size gradient for each half."""
    return keras.ops.split(x, 2, axis=-1)


@keras.saving.register_keras_serializable(package="keras_sign")
class ChannelShuffle(layers.Layer):
    """The shuffle as one layer, as run folders before keras-sign 0.2 saved it: kept so that they load."""

    def __init__(self, groups=2, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def call(self, x):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        x = keras.ops.reshape(x, (-1, height, width, self.groups, channels // self.groups))
        x = keras.ops.transpose(x, (0, 1, 2, 4, 3))
        return keras.ops.reshape(x, (-1, height, width, channels))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package="keras_sign")
class ChannelHalf(layers.Layer):
    """The split as one layer, as run folders before keras-sign 0.2 saved it: kept so that they load."""

    def __init__(self, half, **kwargs):
        super().__init__(**kwargs)
        self.half = half

    def call(self, x):
        middle = x.shape[-1] // 2
        return x[..., middle:] if self.half else x[..., :middle]

    def get_config(self):
        return {**super().get_config(), "half": self.half}


def _bn(x, name, bn_momentum):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=bn_momentum, name=name)(x)


def _conv1x1_bn_relu(x, filters, name, index, bn_momentum):
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_{index}")(x)
    x = _bn(x, f"{name}_{index + 1}", bn_momentum)
    return layers.ReLU(name=f"{name}_{index + 2}")(x)


def _depthwise_bn(x, stride, name, index, bn_momentum):
    if stride > 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_{index}_pad")(x)
    x = layers.DepthwiseConv2D(3, stride, padding="valid" if stride > 1 else "same", use_bias=False,
                               name=f"{name}_{index}")(x)
    return _bn(x, f"{name}_{index + 1}", bn_momentum)


def shuffle_unit(x, out_channels, stride, name, bn_momentum):
    """torchvision's ShuffleNetV2 `InvertedResidual`: split (or downsample both ways), concat, shuffle."""
    branch_channels = out_channels // 2
    if stride == 1:
        kept, x = channel_halves(x)
    else:
        # branch1: depthwise 3x3 (0) + BN (1), 1x1 conv (2) + BN (3) + ReLU (4)
        kept = _depthwise_bn(x, stride, f"{name}_branch1", 0, bn_momentum)
        kept = _conv1x1_bn_relu(kept, branch_channels, f"{name}_branch1", 2, bn_momentum)
    # branch2: 1x1 conv (0) + BN (1) + ReLU (2), depthwise (3) + BN (4), 1x1 conv (5) + BN (6) + ReLU (7)
    y = _conv1x1_bn_relu(x, branch_channels, f"{name}_branch2", 0, bn_momentum)
    y = _depthwise_bn(y, stride, f"{name}_branch2", 3, bn_momentum)
    y = _conv1x1_bn_relu(y, branch_channels, f"{name}_branch2", 5, bn_momentum)
    x = layers.Concatenate(name=f"{name}_concat")([kept, y])
    return channel_shuffle(x, 2, f"{name}_shuffle")


def shufflenet_v2(x, num_classes, width, dropout=0.0, bn_momentum=None, include_top=True):
    """Backbone (and classifier) on a normalised NHWC tensor; returns logits or pooled features."""
    bn_momentum = bn_momentum or BN_MOMENTUM
    channels = STAGE_CHANNELS[width]
    # === Stem ===
    x = layers.ZeroPadding2D(1, name="conv1_0_pad")(x)
    x = layers.Conv2D(channels[0], 3, 2, use_bias=False, name="conv1_0")(x)
    x = layers.ReLU(name="conv1_2")(_bn(x, "conv1_1", bn_momentum))
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU, so never negative.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, 2, name="maxpool")(x)
    # === Stages ===
    for stage, (repeats, out_channels) in enumerate(zip(STAGE_REPEATS, channels[1:4]), start=2):
        for index in range(repeats):
            x = shuffle_unit(x, out_channels, 2 if index == 0 else 1, f"stage{stage}_{index}", bn_momentum)
    x = _conv1x1_bn_relu(x, channels[4], "conv5", 0, bn_momentum)
    # === Head ===
    return pooled_linear_head(x, num_classes, dropout, include_top)


# Width -> (torchvision's parameter count with 1000 classes, its ImageNet file).
WIDTHS = {
    "x0_5": (1_366_792, "shufflenetv2_x0.5-f707e7126e.pth"),
    "x1_0": (2_278_604, "shufflenetv2_x1-5666bf0f80.pth"),
    "x1_5": (3_503_624, "shufflenetv2_x1_5-3c479a10.pth"),
    "x2_0": (7_393_996, "shufflenetv2_x2_0-8be3c8ee.pth"),
}


def _register_width(width):
    parameters, weights_file = WIDTHS[width]

    @register(
        f"shufflenetv2_{width}", aliases=("shufflenetv2",) if width == "x1_0" else (), parameters=parameters,
        features=STAGE_CHANNELS[width][-1], weights={"imagenet": torchvision_weights(weights_file)},
    )
    def build(x, num_classes, dropout=0.0, bn_momentum=None, include_top=True):
        return shufflenet_v2(x, num_classes, width, dropout, bn_momentum, include_top)

    build.__name__ = f"shufflenet_v2_{width}"
    return build


for _width in WIDTHS:
    _register_width(_width)
