"""The one decode and resize of training and inference: file bytes -> upright uint8 RGB at the model's size.

Every path that shows a model an image goes through here (the training pipeline, evaluation, predict,
transcribe, the demo, export verification), so nothing can drift between them. TensorFlow does the
work, also under the JAX and PyTorch backends: tf.data feeds every backend.
"""

import os


def import_tensorflow():
    """Import TensorFlow for data work only: it must never claim GPU memory another backend needs."""
    import tensorflow as tf

    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices were already initialised by an earlier call
            pass
    return tf


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


def crop_square(image, crop):
    """The square `crop` = `(x0, y0, side, mirror)` (whole pixels; it may reach past the image, which is black
    there) cut out of an upright RGB image, mirrored left-right when `mirror` is 1: a hand's crop
    (`keras_sign.hands`), the same pixels in training and at inference. Tensors or numbers, so it runs in
    tf.data too."""
    tf = import_tensorflow()
    crop = tf.cast(tf.convert_to_tensor(crop), tf.int32)
    x0, y0, side, mirror = crop[0], crop[1], crop[2], crop[3]
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    left, top = tf.maximum(-x0, 0), tf.maximum(-y0, 0)
    right, bottom = tf.maximum(x0 + side - width, 0), tf.maximum(y0 + side - height, 0)
    padded = tf.pad(image, [[top, bottom], [left, right], [0, 0]])
    square = padded[y0 + top:y0 + top + side, x0 + left:x0 + left + side]
    return tf.cond(mirror > 0, lambda: tf.reverse(square, [1]), lambda: square)


def decode_and_resize(path, orientation, image_size, center_crop=False, crop=None):
    """Read one image file as upright uint8 RGB at `image_size` x `image_size` (see `resize_image`).

    `path` is a file path (bytes keep names that are not valid UTF-8 intact) and `orientation` its
    EXIF orientation (`keras_sign.data.scan.read_orientation`); `crop` a hand's square (`crop_square`) to
    cut out before resizing, or None for the whole image.
    """
    tf = import_tensorflow()
    image = decode_upright(tf.io.read_file(path), orientation)
    if crop is not None:
        image = crop_square(image, crop)
    return resize_image(image, image_size, center_crop)
