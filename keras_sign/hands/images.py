"""Photos for the hand stage: read upright (EXIF orientation applied, as training reads them) and, when
large, decoded at a reduced size: the palm detector sees 192 pixels and the landmark model 224 of the hand,
so a 12-megapixel phone photo needs no more than `MAX_SIDE` pixels to find the hand in; the landmarks
are scaled back to the photo's own pixels."""

import numpy as np
from PIL import Image, ImageOps

from keras_sign.errors import KerasSignError

MAX_SIDE = 1280


def read_upright(path, max_side=MAX_SIDE):
    """`(RGB uint8 image, scale)`: the photo turned upright, at most `max_side` pixels on its long side (JPEGs
    are decoded at a reduced size directly), and the factor from its pixels to the full photo's."""
    try:
        with Image.open(path) as image:
            full = image.size
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 when that is enough
            upright = ImageOps.exif_transpose(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise KerasSignError(f"{path} cannot be read as an image ({error}).") from None
    if max(upright.size) > max_side:
        upright.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    scale = max(full) / max(upright.size)
    return np.asarray(upright), scale
