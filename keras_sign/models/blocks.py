"""Building blocks shared by the architectures, written to match torchvision.

Layer names are torchvision's module paths with dots written as underscores
(`features_0_0` is torchvision's `features.0.0`, the conv of the first
`Conv2dNormActivation`; `features_0_1` its batch norm), so ImageNet weights
convert name to name. Dots are not allowed: the PyTorch backend turns layer
names into parameter names, and PyTorch forbids dots there.
"""

from keras import layers


def torch_padding(x, kernel_size, stride, name, padding="torch"):
    """Pad like PyTorch's `padding=(k-1)//2` before a "valid" convolution.

    Keras "same" padding with stride 2 pads only bottom/right; PyTorch pads
    both sides. With stride 1 and an odd kernel both agree, so no layer is added.
    `padding="same"` keeps Keras' own padding instead, for weights trained with it
    (keras.applications).
    """
    pad = (kernel_size - 1) // 2
    if padding == "same":
        return x, "same"
    if stride == 1 or pad == 0:
        return x, "same" if pad else "valid"
    return layers.ZeroPadding2D(pad, name=f"{name}_pad")(x), "valid"


def conv_norm_act(
    x, filters, kernel_size, name, stride=1, depthwise=False, activation=None, bn_epsilon=1e-5, bn_momentum=0.9,
    padding="torch",
):
    """torchvision's `Conv2dNormActivation`: conv (no bias) -> batch norm -> optional activation.

    Args:
        x: input tensor (NHWC).
        filters: output channels (ignored for depthwise convolutions).
        kernel_size: square kernel side.
        name: the torchvision module path in underscores, e.g. `features_1_block_0`.
        stride: convolution stride.
        depthwise: a depthwise convolution (`groups == channels` in PyTorch).
        activation: a Keras activation name, or None.
        bn_epsilon: batch-norm epsilon (torchvision's value for the family).
        bn_momentum: Keras batch-norm momentum, i.e. 1 - PyTorch momentum.
        padding: "torch" (symmetric, as torchvision) or "same" (Keras', as keras.applications).
    """
    x, padding = torch_padding(x, kernel_size, stride, name, padding)
    if depthwise:
        x = layers.DepthwiseConv2D(kernel_size, stride, padding=padding, use_bias=False, name=f"{name}_0")(x)
    else:
        x = layers.Conv2D(filters, kernel_size, stride, padding=padding, use_bias=False, name=f"{name}_0")(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum, name=f"{name}_1")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_2")(x)
    return x


def make_divisible(value, divisor=8):
    """torchvision's `_make_divisible`: round channels to a multiple of `divisor`, losing at most 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def pooled_linear_head(x, num_classes, dropout, include_top):
    """Global average pooling, then (unless `include_top` is False) optional dropout and the `fc` layer."""
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    if not include_top:
        return x
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, name="fc")(x)


def normalize_inputs(inputs, mean, std):
    """Raw 0-255 RGB in, `(x - mean) / std` out, stored in the model so deployment cannot drift."""
    variance = [s**2 for s in std]
    return layers.Normalization(mean=list(mean), variance=variance, name="normalize")(inputs)


def classifier_output(logits):
    """Softmax as its own layer, so the logits stay reachable for parity checks and features."""
    return layers.Activation("softmax", dtype="float32", name="predictions")(logits)

