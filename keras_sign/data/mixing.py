"""Mixup and CutMix: training batches whose images and labels are blends of two photos.

Mixup (Zhang et al., 2018) blends whole images: `lam * a + (1 - lam) * b`. CutMix (Yun et al.,
2019) pastes a rectangle of `b` into `a`, covering `1 - lam` of its area. The one-hot labels are
blended by the same share, so the model is asked for "70% A, 30% B" rather than a single class:
a regulariser meant against memorising the few signers it sees (on leave-one-signer-out Massey
neither paid: README, "How well does it generalise?").

Each image is paired with the one before it in its (already shuffled) batch, and `lam` is drawn
per image from Beta(alpha, alpha). Every draw is stateless from the batch's seed, like the rest of
the augmentation, so a resumed run mixes exactly as an uninterrupted one.
"""

from keras_sign.data.pipeline import import_tensorflow

DEFAULT_ALPHA = {"mixup": 0.2, "cutmix": 1.0}  # the papers' settings for ImageNet


def mix_batch(images, labels, seed, method, alpha=None):
    """`(images, labels)` of a batch, mixed by `method` ("mixup" or "cutmix") with Beta(alpha, alpha)
    shares drawn statelessly from `seed` (two integers); "none" returns them as they are."""
    if method == "none":
        return images, labels
    tf = import_tensorflow()
    alpha = DEFAULT_ALPHA[method] if alpha is None else alpha
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
