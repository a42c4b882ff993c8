"""Multiply-adds of a built Keras model, counted layer by layer from its graph.

Convolutions, depthwise convolutions and dense layers are counted (one
multiply-add each), as torchvision's published "GFLOPS" figures count them;
batch norm, activations, pooling and additions are left out. A model nested as a layer (an ensemble's
members) is counted layer by layer too.
"""

import math

from keras import Model, layers


def count_multiply_adds(model):
    """Total multiply-adds of one forward pass of one image through `model`."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            height, width, channels = layer.output.shape[1:]
            total += height * width * channels * math.prod(layer.kernel_size)
        elif isinstance(layer, layers.Conv2D):
            height, width, out_channels = layer.output.shape[1:]
            in_channels = layer.input.shape[-1] // layer.groups
            total += height * width * out_channels * in_channels * math.prod(layer.kernel_size)
        elif isinstance(layer, layers.Dense):  # applied at every position of its input but the last axis
            total += math.prod(layer.input.shape[1:]) * layer.units
        elif isinstance(layer, Model):
            total += count_multiply_adds(layer)
    return total
