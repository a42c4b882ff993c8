"""tf.data pipelines that feed every Keras backend.

Files are decoded, turned upright (EXIF orientation, read once by the
scanner) and resized in parallel, cached as uint8 at the training size (in memory, or in a
file on disk for splits larger than memory: data/image_cache.py), shuffled, batched,
augmented (training only) and prefetched. Images
leave as float32 in 0-255 RGB: normalisation is a layer inside the model.
Training builds each epoch's batches from the same cache with a seed derived
from the run's seed and the epoch number, so a resumed run sees exactly the
order and augmentation an uninterrupted one would have.
"""

import functools
import math
import os

import numpy as np

from keras_sign.progress import progress_bar


def import_tensorflow():
    """Import TensorFlow for data work only: it must never claim GPU memory another backend needs."""
    import tensorflow as tf

    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices were already initialised by an earlier call
            pass
    return tf


AUGMENT_POLICIES = {
    # the most each draw moves: rotation (turns), translation and zoom (fractions), contrast, and for
    # "strong" also brightness (of 255), colour gain per channel, a mirror (a left-handed signer's
    # sign) and one erased rectangle (a hand partly hidden)
    "light": {"rotation": 0.05, "shift": 0.1, "zoom": 0.1, "contrast": 0.2},
    # light's geometry plus colour, mirror and erasing: a first setting with twice the geometry (rotation
    # 0.08, shift 0.15, zoom 0.2), brightness 40, gain 0.2 and erasing 0.3 left MobileNetV3-Small at 0.2-0.5
    # training accuracy after 30 epochs (README, "How well does it generalise?")
    "strong": {"rotation": 0.05, "shift": 0.1, "zoom": 0.15, "contrast": 0.3, "brightness": 25.0, "gain": 0.1,
               "mirror": True, "erase": 0.25},
    # light's geometry plus strong's colour alone: another signer's skin, light and camera white balance
    "colour": {"rotation": 0.05, "shift": 0.1, "zoom": 0.1, "contrast": 0.2, "brightness": 25.0, "gain": 0.1},
}
BACKDROP_DISTANCE = 40.0  # a pixel this close (in every channel) to the border's median colour is backdrop


def augment_batch(images, seed, policy="light", background=False):
    """Random affine (rotation, translation, zoom) and contrast per image, as Keras' RandomRotation /
    Translation / Zoom / Contrast do (nearest fill); the "strong" policy adds brightness, colour gains,
    mirroring and random erasing; `background` puts the plain backdrop behind the hand onto random backdrops.

    Everything is drawn statelessly from `seed` (two integers): the same batch of the same epoch is
    augmented the same way on every run, however tf.data schedules its parallel calls, which a resumed
    or data parallel run needs.
    """
    tf = import_tensorflow()
    limits = AUGMENT_POLICIES[policy]
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    draws = tf.random.stateless_uniform([shape[0], 5], seed=seed, minval=-1.0, maxval=1.0)  # the light policy's
    if len(limits) > len(AUGMENT_POLICIES["light"]) or background:  # more draws only where they are used
        more = tf.random.stateless_uniform([shape[0], 7], seed=seed + 5, minval=-1.0, maxval=1.0)
    if background:  # before the affine, so the new background moves with the hand
        images = _new_backgrounds(images, more[:, 4:6], seed)
    angle = draws[:, 0] * limits["rotation"] * 2 * math.pi
    scale = 1.0 + draws[:, 3] * limits["zoom"]  # > 1 samples a larger area: zoom out
    shift_x, shift_y = draws[:, 1] * limits["shift"] * width, draws[:, 2] * limits["shift"] * height
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    center_x, center_y = (width - 1) / 2, (height - 1) / 2
    # Each output pixel (x, y) reads the input at the rotated, scaled and shifted point around the centre;
    # a mirrored image first turns x into 2 * center_x - x (mirror = -1).
    mirror = tf.where(more[:, 0] > 0, -1.0, 1.0) if limits.get("mirror") else tf.ones_like(cos)
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([
        mirror * cos, -sin, center_x - cos * center_x + sin * center_y - shift_x + (1 - mirror) * cos * center_x,
        mirror * sin, cos, center_y - sin * center_x - cos * center_y - shift_y + (1 - mirror) * sin * center_x,
        zeros, zeros,
    ], axis=1)
    transformed = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )
    images = tf.ensure_shape(transformed, images.shape)  # the transform op forgets the static size
    contrast = 1.0 + draws[:, 4] * limits["contrast"]
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    images = (images - mean) * contrast[:, None, None, None] + mean
    if "brightness" in limits:
        gains = 1.0 + tf.random.stateless_uniform([shape[0], 1, 1, 3], seed=seed + 1, minval=-1.0,
                                                  maxval=1.0) * limits["gain"]
        images = images * gains + (more[:, 1] * limits["brightness"])[:, None, None, None]
    if "erase" in limits:
        images = _erase_rectangles(images, more[:, 2:4], limits["erase"], seed + 2)
    return tf.clip_by_value(images, 0.0, 255.0)


def _erase_rectangles(images, draws, largest, seed):
    """Random erasing: half the images get one rectangle (up to `largest` of each side) of noise."""
    tf = import_tensorflow()
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    box = tf.random.stateless_uniform([shape[0], 4], seed=seed, minval=0.0, maxval=1.0)
    box_h, box_w = box[:, 0] * largest * height, box[:, 1] * largest * width
    top, left = box[:, 2] * (height - box_h), box[:, 3] * (width - box_w)
    rows = tf.range(height)[None, :, None]
    columns = tf.range(width)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
              & (columns >= left[:, None, None]) & (columns < (left + box_w)[:, None, None]))
    inside = inside & (draws[:, 0] > 0)[:, None, None]
    noise = tf.random.stateless_uniform(tf.shape(images), seed=seed + 1, minval=0.0, maxval=255.0)
    return tf.where(inside[..., None], noise, images)


def _new_backgrounds(images, draws, seed):
    """Backdrop pixels replaced by a random backdrop (a colour gradient with noise), for hands photographed
    on a plain backdrop (Massey's black, the digit photos' white wall). The backdrop is what lies close
    to the median colour of the image's border; the mask is softened so the hand's edge blends."""
    tf = import_tensorflow()
    shape = tf.shape(images)
    border = tf.concat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    backdrop_colour = _median(border)[:, None, None, :]
    distance = tf.reduce_max(tf.abs(images - backdrop_colour), axis=-1, keepdims=True)
    plain = tf.nn.avg_pool2d(tf.cast(distance < BACKDROP_DISTANCE, tf.float32), 3, 1, "SAME")
    # corner colours half way to a grey of random lightness: walls and rooms more than posters
    corners = tf.random.stateless_uniform([shape[0], 2, 2, 4], seed=seed + 3, minval=0.0, maxval=255.0)
    corners = (corners[..., :3] + corners[..., 3:]) / 2
    backdrop = tf.image.resize(corners, shape[1:3], method="bilinear")
    noise = 8.0 + 8.0 * draws[:, 0]
    backdrop += tf.random.stateless_normal(tf.shape(images), seed=seed + 4) * noise[:, None, None, None]
    keep = tf.cast(draws[:, 1] > -0.6, tf.float32)[:, None, None, None]  # 20% keep their own backdrop
    return images * (1 - plain * keep) + tf.clip_by_value(backdrop, 0.0, 255.0) * plain * keep


def _median(pixels):
    """Per-image, per-channel median of `(n, k, 3)` pixels."""
    tf = import_tensorflow()
    ordered = tf.sort(pixels, axis=1)
    return ordered[:, tf.shape(pixels)[1] // 2]


CENTER_CROP_FRACTION = 0.875  # torchvision's evaluation transform: Resize(256) + CenterCrop(224)


def apply_orientation(image, orientation):
    """Turn a decoded image upright from its EXIF orientation (1-8), as `PIL.ImageOps.exif_transpose` does.

    2-8 are a mirror and/or a rotation: 5-8 swap the axes first (transpose), then 2, 3, 6, 7 mirror
    left-right and 3, 4, 7, 8 top-bottom. `orientation` may be a tensor, so this runs inside tf.data.
    """
    tf = import_tensorflow()
    orientation = tf.convert_to_tensor(orientation, tf.int32)
    image = tf.cond(orientation >= 5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    mirror = tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))
    image = tf.cond(mirror, lambda: tf.reverse(image, [1]), lambda: image)
    flip = tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8]))
    return tf.cond(flip, lambda: tf.reverse(image, [0]), lambda: image)


def decode_upright(data, orientation):
    """Encoded image bytes (any format the scanner accepts) -> uint8 RGB `(h, w, 3)`, turned upright."""
    tf = import_tensorflow()
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return apply_orientation(image, orientation)


def resize_image(image, image_size, center_crop=False):
    """An RGB image `(h, w, 3)`, or a batch `(n, h, w, 3)` of one size, as uint8 `image_size` x `image_size`.

    The one resize of training and inference: the whole image is squashed to the square by default;
    with `center_crop` its shorter side goes to `image_size / 0.875` and the central square is cut
    out, keeping the aspect ratio (torchvision's evaluation transform).
    """
    tf = import_tensorflow()
    if center_crop:
        shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
        scale = round(image_size / CENTER_CROP_FRACTION) / tf.reduce_min(shape)
        image = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32), antialias=True)
        image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
    else:
        image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def decode_and_resize(path, orientation, image_size, center_crop=False):
    """Read one image file as upright uint8 RGB at `image_size` x `image_size` (see `resize_image`).

    `path` is a file path (bytes keep names that are not valid UTF-8 intact) and `orientation` its
    EXIF orientation (`keras_sign.data.scan.read_orientation`).
    """
    tf = import_tensorflow()
    return resize_image(decode_upright(tf.io.read_file(path), orientation), image_size, center_crop)


def _file_tensors(paths, orientations):
    """Paths as bytes (`os.fsencode`: any file name survives) and their orientations, read from the
    files when the caller has not got them from a scan or split.csv."""
    from keras_sign.data.scan import read_orientations

    paths = list(paths)
    if orientations is None:
        orientations = read_orientations(paths)
    return [os.fsencode(path) for path in paths], np.asarray(orientations, dtype=np.int32).reshape(len(paths))


def decoded_stream(paths, labels, image_size, center_crop=False, orientations=None):
    """`(uint8 image, class index)` pairs in file order, decoded as they are read.

    `orientations` are the files' EXIF orientations (from the scan or split.csv); None reads them.
    """
    tf = import_tensorflow()
    encoded, orientations = _file_tensors(paths, orientations)
    ds = tf.data.Dataset.from_tensor_slices((encoded, orientations, np.asarray(labels, dtype=np.int32)))
    return ds.map(lambda p, o, y: (decode_and_resize(p, o, image_size, center_crop), y),
                  num_parallel_calls=tf.data.AUTOTUNE)


def decoded_images(paths, labels, image_size, center_crop=False, orientations=None):
    """`decoded_stream`, decoded once and cached in memory for every later epoch."""
    return decoded_stream(paths, labels, image_size, center_crop, orientations).cache()


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
    if hasattr(images, "batched"):  # a disk cache shuffles indices and reads each batch's rows
        ds = images.batched(batch_size, shuffle_seed, drop_remainder)
    else:
        ds = images
        if shuffle_seed is not None:
            ds = ds.shuffle(int(ds.cardinality()), seed=shuffle_seed, reshuffle_each_iteration=False)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=autotune)
    if augment_seed is not None:
        augment = _augmenter(augment_policy, background, mix, mix_alpha)
        ds = ds.enumerate().map(lambda index, batch: augment(tf.stack([tf.constant(augment_seed, tf.int64), index]),
                                                             *batch), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


@functools.cache
def _augmenter(policy, background, mix, mix_alpha):
    """`(seed, images, labels) -> (images, labels)`, augmented and mixed, as one `tf.function`: tf.data
    then traces it once, not once per epoch (0.04 s each for the default job)."""
    from keras_sign.data.mixing import mix_batch  # here: mixing imports this module

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


def channel_mean_std(paths, image_size, center_crop=False, orientations=None):
    """Per-channel mean and standard deviation (0-255 scale) of images, for the model's normalisation.

    Not Keras' `Normalization.adapt`: it agrees (to 2e-4 on the sample, float32 sums) but consumes the
    dataset itself, and this pass over every training photo is the one a large dataset needs a progress bar for.
    """
    tf = import_tensorflow()
    ds = tf.data.Dataset.from_tensor_slices(_file_tensors(paths, orientations))
    ds = ds.map(lambda p, o: decode_and_resize(p, o, image_size, center_crop),
                num_parallel_calls=tf.data.AUTOTUNE).batch(256)
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
