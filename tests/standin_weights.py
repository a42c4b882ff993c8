"""Deterministic stand-in weights, shared by the parity fixture script and the tests.

Kept free of Keras and PyTorch imports so that `tests/parity/make_fixtures.py`
(torch + torchvision) and the Keras tests draw exactly the same numbers.
"""

import numpy as np


def seeded_tensor(kind, shape, seed, gains):
    """One tensor of a seeded stand-in state dict, drawn with `np.random.default_rng(seed)`.

    Kinds: `conv` and `linear` weights (normal with variance gains[kind] / fan-in,
    fan-in = prod(shape[1:])); `bias`, `bn_bias`, `bn_mean` (normal, sd 0.1);
    `bn_weight`, `bn_var` (uniform 0.5-1.5).
    """
    rng = np.random.default_rng(seed)
    if kind in ("conv", "linear"):
        return (rng.standard_normal(shape) * np.sqrt(gains[kind] / np.prod(shape[1:]))).astype(np.float32)
    if kind in ("bias", "bn_bias", "bn_mean"):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if kind in ("bn_weight", "bn_var"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    raise ValueError(f"unknown tensor kind {kind}")


def tensor_kind(key, shape, keys):
    """The stand-in kind of state-dict entry `key`, given all keys (batch norm has running stats)."""
    module, part = key.rsplit(".", 1)
    if f"{module}.running_mean" in keys:
        return {"weight": "bn_weight", "bias": "bn_bias", "running_mean": "bn_mean", "running_var": "bn_var"}[part]
    if part == "weight":
        return "conv" if len(shape) == 4 else "linear"
    return "bias"


def seeded_state_dict(tensors, base_seed, gains):
    """Rebuild a stand-in state dict from `[(key, shape), ...]`: tensor i is drawn with seed `base_seed + i`.

    Args:
        tensors: state-dict names and shapes, in state-dict order.
        base_seed: seed of the first tensor.
        gains: `{"conv": g, "linear": g}`, the weight variances times fan-in.
    """
    keys = {key for key, _ in tensors}
    return {
        key: seeded_tensor(tensor_kind(key, shape, keys), tuple(shape), base_seed + index, gains)
        for index, (key, shape) in enumerate(tensors)
    }


def standin_images(seed, batch, image_size):
    """A seeded batch of raw RGB images (0-255, NHWC) with structure that survives global pooling.

    Each image is a seeded 8 x 8 grid of colours blown up to `image_size` plus fine noise:
    pure noise would average out in pooling and give every image the same logits.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (batch, 8, 8, 3))
    cell = -(-image_size // 8)
    blocks = np.repeat(np.repeat(coarse, cell, axis=1), cell, axis=2)[:, :image_size, :image_size]
    noise = rng.uniform(-20, 20, blocks.shape)
    return np.clip(blocks + noise, 0, 255).astype(np.float32)
