"""tf.data pipelines that feed every Keras backend.

Files are decoded and resized in parallel, cached as uint8 at the training
size, shuffled, batched, augmented (training only) and prefetched. Images
leave as float32 in 0-255 RGB: normalisation is a layer inside the model.
"""

import os

import numpy as np

AUGMENTATIONS = "rotation 5%, translation 10%, zoom 10%, contrast 20%; no flip: handedness is part of some signs"


def import_tensorflow():
    """Import TensorFlow for data work only: it must never claim GPU memory another backend needs."""
    import tensorflow as tf

    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices were already initialised by an earlier call
            pass
    return tf


def make_augmenter(seed):
    """The training augmentation: Keras core layers, run inside tf.data on every backend."""
    import keras

    return keras.layers.Pipeline(
        [
            keras.layers.RandomRotation(0.05, fill_mode="nearest", seed=seed),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 3),
        ],
        name="augment",
    )


def decode_and_resize(path, image_size):
    """Read one image file as uint8 RGB at `image_size` x `image_size` (any format the scanner accepts)."""
    tf = import_tensorflow()
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def make_dataset(paths, labels, num_classes, image_size, batch_size, training=False, augment=False, seed=0):
    """A batched `tf.data.Dataset` of `(float32 images 0-255, one-hot labels)`.

    Args:
        paths: image file paths.
        labels: integer class indices, one per path.
        num_classes: length of the one-hot vectors.
        image_size: side of the square images the model takes.
        batch_size: images per batch.
        training: shuffle every epoch (seeded) and apply `augment`.
        augment: apply the training augmentation (only with `training`).
        seed: seed of the shuffle and the augmentation.

    Example:
        >>> ds = make_dataset(["a.jpg", "b.png"], [0, 1], 2, 64, 2)
    """
    tf = import_tensorflow()
    autotune = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), np.asarray(labels, dtype=np.int32)))
    ds = ds.map(lambda p, y: (decode_and_resize(p, image_size), y), num_parallel_calls=autotune)
    ds = ds.cache()
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=autotune)
    if training and augment:
        augmenter = make_augmenter(seed)
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def channel_mean_std(paths, image_size):
    """Per-channel mean and standard deviation (0-255 scale) of images, for the model's normalisation."""
    tf = import_tensorflow()
    ds = tf.data.Dataset.from_tensor_slices(list(map(str, paths)))
    ds = ds.map(lambda p: decode_and_resize(p, image_size), num_parallel_calls=tf.data.AUTOTUNE).batch(256)
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for batch in ds.as_numpy_iterator():
        pixels = batch.reshape(-1, 3).astype(np.float64)
        total += pixels.sum(0)
        total_sq += (pixels**2).sum(0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-6))
    return mean.tolist(), std.tolist()
