"""ResNet-18 as torchvision's `resnet18` (BasicBlock [2, 2, 2, 2]), in Keras 3 layers only.

Layer names are torchvision's module paths with underscores (`layer2_0_downsample_0`),
batch norm eps 1e-5 and PyTorch momentum 0.1. 11,689,512 parameters with 1000 classes.
"""

from keras import layers

from keras_sign.models.blocks import pooled_linear_head, torch_padding
from keras_sign.models.registry import register, torchvision_weights

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch's 0.1


def _conv_bn(x, filters, kernel_size, stride, conv_name, bn_name, bn_momentum):
    x, padding = torch_padding(x, kernel_size, stride, conv_name)
    x = layers.Conv2D(filters, kernel_size, stride, padding=padding, use_bias=False, name=conv_name)(x)
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=bn_momentum, name=bn_name)(x)


def basic_block(x, filters, stride, name, bn_momentum):
    """torchvision's `BasicBlock`: two 3x3 conv-BN pairs, plus a 1x1 projection when the shape changes."""
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_conv1", f"{name}_bn1", bn_momentum)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_conv2", f"{name}_bn2", bn_momentum)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_downsample_0", f"{name}_downsample_1", bn_momentum)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(y)


@register(
    "resnet18", parameters=11_689_512, features=512,
    weights={"imagenet": torchvision_weights("resnet18-f37072fd.pth")},
)
def resnet18(x, num_classes, dropout=0.0, bn_momentum=None, include_top=True):
    """Backbone (and classifier) on a normalised NHWC tensor; returns logits or pooled features.

    ResNet-18 has no dropout in torchvision; a positive `dropout` adds one before `fc`.

    Example:
        >>> from keras_sign.models import build_model
        >>> build_model("resnet18", num_classes=1000, image_size=224).count_params() > 11_689_512
        True
    """
    bn_momentum = bn_momentum or BN_MOMENTUM
    # === Stem ===
    x = _conv_bn(x, 64, 7, 2, "conv1", "bn1", bn_momentum)
    x = layers.ReLU(name="relu")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU, so never negative.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, 2, name="maxpool")(x)
    # === Stages ===
    for stage, (filters, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        x = basic_block(x, filters, stride, f"layer{stage}_0", bn_momentum)
        x = basic_block(x, filters, 1, f"layer{stage}_1", bn_momentum)
    # === Head ===
    return pooled_linear_head(x, num_classes, dropout, include_top)
