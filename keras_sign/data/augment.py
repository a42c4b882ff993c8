"""Training augmentation, drawn statelessly from each batch's seed: affine, contrast and colour per image
(`augment_batch`), new backdrops behind the hand, random erasing, and Mixup / CutMix (`mix_batch`).

The recipes are `keras_sign.config.AUGMENT_POLICIES`, the blends `keras_sign.config.MIX_METHODS`: the
command line, configs and this module read the same tables. Every draw is stateless from the batch's
seed (two integers): the same batch of the same epoch is augmented the same way on every run, however
tf.data schedules its parallel calls, which a resumed or data parallel run needs.

Mixup (Zhang et al., 2018) blends whole images: `lam * a + (1 - lam) * b`. CutMix (Yun et al.,
2019) pastes a rectangle of `b` into `a`, covering `1 - lam` of its area. The one-hot labels are
blended by the same share, so the model is asked for "70% A, 30% B" rather than a single class:
a regulariser meant against memorising the few signers it sees (on leave-one-signer-out Massey
neither paid: docs/results.md, "How well does it generalise?"). Each image is paired with the one before it
in its (already shuffled) batch, and `lam` is drawn per image from Beta(alpha, alpha).
"""

import math

from keras_sign.config import AUGMENT_POLICIES, MIX_DEFAULT_ALPHA
from keras_sign.data.decode import import_tensorflow

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


def mix_batch(images, labels, seed, method, alpha=None):
    """`(images, labels)` of a batch, mixed by `method` ("mixup" or "cutmix") with Beta(alpha, alpha)
    shares drawn statelessly from `seed` (two integers); "none" returns them as they are."""
    if method == "none":
        return images, labels
    tf = import_tensorflow()
    alpha = MIX_DEFAULT_ALPHA[method] if alpha is None else alpha
    count = tf.shape(images)[0]
    # Beta(a, a) as g1 / (g1 + g2) of two Gamma(a) draws
    gammas = tf.random.stateless_gamma([2, count], seed=seed, alpha=alpha)
    lam = gammas[0] / tf.maximum(gammas[0] + gammas[1], 1e-12)
    partners_images, partners_labels = tf.roll(images, 1, axis=0), tf.roll(labels, 1, axis=0)
    if method == "mixup":
        mixed = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * partners_images
    else:
        inside, lam = _cut_boxes(tf.shape(images), lam, seed + 1)
        mixed = tf.where(inside[..., None], partners_images, images)
    return mixed, lam[:, None] * labels + (1 - lam[:, None]) * partners_labels


def _cut_boxes(shape, lam, seed):
    """Per image, a mask of a rectangle covering about `1 - lam` of the image (centred anywhere, clipped
    at the edges), and `lam` corrected to the share the clipped rectangle leaves uncovered."""
    tf = import_tensorflow()
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    side = tf.sqrt(1.0 - lam)
    centre = tf.random.stateless_uniform([shape[0], 2], seed=seed, minval=0.0, maxval=1.0)
    top = tf.clip_by_value(tf.round(centre[:, 0] * height - side * height / 2), 0.0, height)
    bottom = tf.clip_by_value(tf.round(centre[:, 0] * height + side * height / 2), 0.0, height)
    left = tf.clip_by_value(tf.round(centre[:, 1] * width - side * width / 2), 0.0, width)
    right = tf.clip_by_value(tf.round(centre[:, 1] * width + side * width / 2), 0.0, width)
    rows = tf.range(height)[None, :, None]
    columns = tf.range(width)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < bottom[:, None, None])
              & (columns >= left[:, None, None]) & (columns < right[:, None, None]))
    covered = (bottom - top) * (right - left) / (height * width)
    return inside, 1.0 - covered
