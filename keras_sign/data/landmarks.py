"""A hand's landmark features (`keras_sign.hands.features`) as training batches, each epoch shuffled and
augmented with the seed `epoch_seed(seed, epoch)` alone, as the image batches are: an epoch trained after a
resume sees the same batches as it would have without the interruption.

The augmentation is what changes between two people signing the same letter at two cameras, in the
features' own units (the wrist at the origin, the wrist-to-knuckle length 1): the hand turned in the image
plane by up to `ROTATION` radians, stretched along x or y by up to `STRETCH` (a camera's aspect, a hand
seen a little from the side), and each point moved by Gaussian noise of `JITTER` in x and y and `Z_JITTER`
in depth (the landmark model's own scatter).
"""

import functools

import numpy as np

from keras_sign.data.decode import import_tensorflow
from keras_sign.data.pipeline import epoch_seed
from keras_sign.hands.features import POINTS

ROTATION = 0.26  # radians, about 15 degrees
STRETCH = 0.1
JITTER = 0.03
Z_JITTER = 0.05


def augment_features(features, rng):
    """`features` (n, 63) of n hands, each turned, stretched and jittered by `rng` (a NumPy Generator)."""
    points = np.asarray(features, np.float64).reshape(len(features), POINTS, 3).copy()
    angle = rng.uniform(-ROTATION, ROTATION, len(points))
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = points[..., 0], points[..., 1]
    points[..., 0], points[..., 1] = cos * x - sin * y, sin * x + cos * y
    points[..., :2] *= rng.uniform(1 - STRETCH, 1 + STRETCH, (len(points), 1, 2))
    points[..., :2] += rng.normal(0, JITTER, points[..., :2].shape)
    points[..., 2] += rng.normal(0, Z_JITTER, points[..., 2].shape)
    return points.reshape(len(points), -1).astype(np.float32)


def landmark_batches(features, labels, num_classes, batch_size, seed=None, augment=False, drop_remainder=False):
    """Batches of `(float32 features, one-hot labels)`: in order (`seed` None), or shuffled (and with `augment`,
    augmented) by `seed`."""
    tf = import_tensorflow()
    features, labels = np.asarray(features, np.float32), np.asarray(labels, np.int64)
    if seed is not None:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(features))
        features, labels = features[order], labels[order]
        if augment:
            features = augment_features(features, rng)
    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    return tf.data.Dataset.from_tensor_slices((features, one_hot)).batch(batch_size, drop_remainder=drop_remainder)


def epochs_of_landmark_batches(features, labels, seed, epochs, augment=True, **options):
    """The training batches of `epochs` (a range), one epoch after another (`landmark_batches`' `options`)."""
    each = [landmark_batches(features, labels, seed=epoch_seed(seed, epoch), augment=augment, **options)
            for epoch in epochs]
    return functools.reduce(lambda dataset, more: dataset.concatenate(more), each)
