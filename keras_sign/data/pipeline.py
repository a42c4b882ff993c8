"""tf.data pipelines that feed every Keras backend.

Files are decoded, turned upright (EXIF orientation, read once by the
scanner) and resized in parallel (`keras_sign.data.decode`), cached as uint8 at the training size (in
memory, or in a file on disk for splits larger than memory: data/image_cache.py), shuffled, batched,
augmented (training only: `keras_sign.data.augment`) and prefetched. Images
leave as float32 in 0-255 RGB: normalisation is a layer inside the model.
Training builds each epoch's batches from the same cache with a seed derived
from the run's seed and the epoch number, so a resumed run sees exactly the
order and augmentation an uninterrupted one would have.
"""

import functools
import os

import numpy as np

from keras_sign.data.augment import augment_batch, mix_batch
from keras_sign.data.decode import decode_and_resize, import_tensorflow
from keras_sign.progress import progress_bar


def _file_tensors(paths, orientations):
    """Paths as bytes (`os.fsencode`: any file name survives) and their orientations, read from the
    files when the caller has not got them from a scan or split.csv."""
    from keras_sign.data.scan import read_orientations

    paths = list(paths)
    if orientations is None:
        orientations = read_orientations(paths)
    return [os.fsencode(path) for path in paths], np.asarray(orientations, dtype=np.int32).reshape(len(paths))


def crop_array(crops, count):
    """Hand crops as an `(n, 4)` int32 array of `(x0, y0, side, mirror)`, or None for whole images."""
    return None if crops is None else np.asarray(crops, dtype=np.int32).reshape(count, 4)


def decoded_stream(paths, labels, image_size, center_crop=False, orientations=None, crops=None):
    """`(uint8 image, class index)` pairs in file order, decoded as they are read.

    `orientations` are the files' EXIF orientations (from the scan or split.csv); None reads them.
    `crops` are the hands' squares to cut out first (`decode.crop_square`), one per file, or None.
    """
    tf = import_tensorflow()
    encoded, orientations = _file_tensors(paths, orientations)
    labels = np.asarray(labels, dtype=np.int32)
    crops = crop_array(crops, len(encoded))
    if crops is None:
        ds = tf.data.Dataset.from_tensor_slices((encoded, orientations, labels))
        return ds.map(lambda p, o, y: (decode_and_resize(p, o, image_size, center_crop), y),
                      num_parallel_calls=tf.data.AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices((encoded, orientations, crops, labels))
    return ds.map(lambda p, o, c, y: (decode_and_resize(p, o, image_size, center_crop, c), y),
                  num_parallel_calls=tf.data.AUTOTUNE)


def decoded_images(paths, labels, image_size, center_crop=False, orientations=None, crops=None):
    """`decoded_stream`, decoded once and cached in memory for every later epoch."""
    return decoded_stream(paths, labels, image_size, center_crop, orientations, crops).cache()


def image_batches(paths, image_size, center_crop=False, orientations=None, batch_size=64, crops=None):
    """uint8 batches `(n, size, size, 3)` of image files in their order, decoded as training decodes them:
    what a `keras_sign.inference.classifier.Classifier` takes."""
    stream = decoded_stream(paths, np.zeros(len(paths), np.int32), image_size, center_crop, orientations, crops)
    for images, _ in stream.batch(batch_size).prefetch(2).as_numpy_iterator():
        yield images


def batches(images, num_classes, batch_size, shuffle_seed=None, augment_seed=None, drop_remainder=False,
            augment_policy="light", background=False, mix="none", mix_alpha=None):
    """Batches of `(float32 images 0-255, one-hot labels)` from `decoded_images` or a disk cache.

    Args:
        images: a dataset from `decoded_images`, or `image_cache.DiskImages` (same batches, same order).
        num_classes: length of the one-hot vectors.
        batch_size: images per batch.
        shuffle_seed: shuffle all images with this seed (None: keep the order).
        augment_seed: apply the training augmentation seeded with this (None: no augmentation).
        drop_remainder: leave out a last, smaller batch (data parallel training needs equal shards).
        augment_policy, background: see `augment_batch`.
        mix, mix_alpha: blend pairs of augmented training images and their labels (`mixing.mix_batch`).
    """
    tf = import_tensorflow()
    autotune = tf.data.AUTOTUNE
    ds = shuffled_batches(images, batch_size, shuffle_seed, drop_remainder)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=autotune)
    if augment_seed is not None:
        augment = augmenter(augment_policy, background, mix, mix_alpha)
        ds = ds.enumerate().map(lambda index, batch: augment(tf.stack([tf.constant(augment_seed, tf.int64), index]),
                                                             *batch), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def shuffled_batches(images, batch_size, shuffle_seed=None, drop_remainder=False):
    """`(uint8 images, labels)` batches of `decoded_images` or a disk cache, shuffled by `shuffle_seed` (None: in
    order)."""
    if hasattr(images, "batched"):  # a disk cache shuffles indices and reads each batch's rows
        return images.batched(batch_size, shuffle_seed, drop_remainder)
    if shuffle_seed is not None:
        images = images.shuffle(int(images.cardinality()), seed=shuffle_seed, reshuffle_each_iteration=False)
    return images.batch(batch_size, drop_remainder=drop_remainder)


@functools.cache
def augmenter(policy, background, mix, mix_alpha):
    """`(seed, images, labels) -> (images, labels)`, augmented and mixed, as one `tf.function`: tf.data
    then traces it once, not once per epoch (0.04 s each for the default job)."""
    tf = import_tensorflow()

    @tf.function
    def augment(seed, images, labels):
        return mix_batch(augment_batch(images, seed, policy, background), labels, seed + 10, mix, mix_alpha)

    return augment


def epoch_seed(seed, epoch):
    """The shuffle and augmentation seed of one epoch: a function of the run's seed and the epoch alone."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % 2**31)


def epochs_of_batches(images, seed, epochs, augment=True, **options):
    """The training batches of `epochs` (a range), one epoch after another, each shuffled and augmented
    as `batches` does with `epoch_seed(seed, epoch)`; `options` are `batches`' other arguments."""
    seeds = [epoch_seed(seed, epoch) for epoch in epochs]
    each = [batches(images, shuffle_seed=s, augment_seed=s if augment else None, **options) for s in seeds]
    return functools.reduce(lambda ds, more: ds.concatenate(more), each)


def make_dataset(paths, labels, num_classes, image_size, batch_size, center_crop=False, orientations=None):
    """Batches of `(float32 images 0-255, one-hot labels)` in file order, for evaluation.

    Example:
        >>> ds = make_dataset(["a.jpg", "b.png"], [0, 1], 2, 64, 2)
    """
    return batches(decoded_images(paths, labels, image_size, center_crop, orientations), num_classes, batch_size)


def channel_mean_std(paths, image_size, center_crop=False, orientations=None, crops=None):
    """Per-channel mean and standard deviation (0-255 scale) of images, for the model's normalisation.

    Not Keras' `Normalization.adapt`: it agrees (to 2e-4 on the sample, float32 sums) but consumes the
    dataset itself, and this pass over every training photo is the one a large dataset needs a progress bar for.
    """
    paths = list(paths)
    ds = decoded_stream(paths, np.zeros(len(paths), np.int32), image_size, center_crop, orientations, crops)
    ds = ds.map(lambda image, label: image).batch(256)
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    with progress_bar(len(paths), "measuring the training images' mean and std") as bar:
        for batch in ds.as_numpy_iterator():
            pixels = batch.reshape(-1, 3).astype(np.float64)
            total += pixels.sum(0)
            total_sq += (pixels**2).sum(0)
            count += len(pixels)
            bar.update(len(batch))
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-6))
    return mean.tolist(), std.tolist()
