"""torchvision state dicts -> Keras models, name to name.

A torchvision key such as `features.1.block.0.0.weight` names module
`features.1.block.0.0`, which is Keras layer `features_1_block_0_0`. Each
tensor is transposed into Keras' layout (convolutions HWIO, depthwise HWC1,
dense IO); batch norm takes weight, bias, running mean and running variance.
Every module must find its layer and every weighted layer its module, or the
conversion fails and names what is missing.
"""

import collections
import logging

import numpy as np
from keras import layers

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

_BN_PARTS = ("weight", "bias", "running_mean", "running_var")


def _keras_weights(layer, parts):
    """The tensors of one torch module, ordered and transposed as `layer.set_weights` wants them."""
    if isinstance(layer, layers.BatchNormalization):
        return [parts[name] for name in _BN_PARTS]
    if isinstance(layer, layers.DepthwiseConv2D):
        kernels = [parts["weight"].transpose(2, 3, 0, 1)]
    elif isinstance(layer, layers.Conv2D):
        kernels = [parts["weight"].transpose(2, 3, 1, 0)]
    elif isinstance(layer, layers.Dense):
        kernels = [parts["weight"].T]
    else:
        raise KerasSignError(f"Layer {layer.name} ({type(layer).__name__}) cannot take torchvision weights.")
    return kernels + ([parts["bias"]] if "bias" in parts else [])


def load_torchvision_state_dict(model, state_dict, skip_mismatched_head=True):
    """Copy a torchvision state dict (name -> array) into `model`; return the names of layers skipped.

    Args:
        model: a model from `build_model` of the same architecture.
        state_dict: tensor name -> NumPy array (or anything `np.asarray` takes).
        skip_mismatched_head: leave layers whose shapes differ (a classifier for another number
            of classes) at their initial values instead of failing.
    """
    modules = collections.defaultdict(dict)
    for key, value in state_dict.items():
        module, part = key.rsplit(".", 1)
        if part != "num_batches_tracked":
            modules[module][part] = np.asarray(value, dtype=np.float32)
    by_name = {layer.name: layer for layer in model.layers}
    unknown = [m for m in modules if m.replace(".", "_") not in by_name]
    weighted = {layer.name for layer in model.layers if layer.weights and layer.name != "normalize"}
    unfilled = sorted(weighted - {m.replace(".", "_") for m in modules})
    if unknown or unfilled:
        raise KerasSignError(
            f"These weights do not fit {model.name}: modules without a layer {unknown[:5]}, "
            f"layers without weights {unfilled[:5]}; use a file for the same architecture."
        )
    skipped = []
    for module, parts in modules.items():
        layer = by_name[module.replace(".", "_")]
        values = _keras_weights(layer, parts)
        if [tuple(v.shape) for v in values] != [tuple(w.shape) for w in layer.weights]:
            if skip_mismatched_head:
                skipped.append(layer.name)
                continue
            raise KerasSignError(f"Layer {layer.name} has other shapes than the file's {module}.")
        layer.set_weights(values)
    if skipped:
        log.info("Kept new initial weights for %s (shapes differ: another number of classes).", ", ".join(skipped))
    return skipped


def load_keras_applications_weights(model, source):
    """Copy keras.applications' MobileNetV3Small weights into a `mobilenetv3_small` model; return layers skipped.

    The two hold the same weighted layers in the same order (their `conv`, `expanded_conv_*`, `conv_1`,
    `conv_2`, `logits` are our `features_0_0` ... `features_12_1`, `classifier_0`, `classifier_3`); their
    1x1 convolutions on pooled features are our dense layers. A head for another number of classes is
    left as it was.
    """
    targets = [layer for layer in model.layers if layer.weights and layer.name != "normalize"]
    donors = [layer for layer in source.layers if layer.weights]
    if len(targets) != len(donors):
        raise KerasSignError(
            f"{source.name} has {len(donors)} weighted layers, {model.name} {len(targets)}; "
            "keras.applications weights fit only mobilenetv3_small."
        )
    skipped = []
    for position, (target, donor) in enumerate(zip(targets, donors)):
        shapes = [tuple(w.shape) for w in target.weights]
        values = [v.reshape(v.shape[2:]) if v.shape[:2] == (1, 1) and v.ndim - 2 == len(shape) else v
                  for v, shape in zip(donor.get_weights(), shapes)]
        if [v.shape for v in values] != shapes:
            if position == len(targets) - 1:  # the classifier, for another number of classes
                skipped.append(target.name)
                continue
            raise KerasSignError(f"keras.applications layer {donor.name} does not fit {target.name}.")
        target.set_weights(values)
    return skipped
