"""What the demo accepts as a camera frame (or a teach-mode shot) before it decodes one."""

from keras_sign.errors import KerasSignError


def check_frame_size(data):
    """Refuse a frame whose header claims more pixels than `scan.MAX_PIXELS` before it is decoded: a small
    PNG of one colour can unpack to gigabytes."""
    import io

    from PIL import Image, UnidentifiedImageError

    from keras_sign.data.scan import size_problem

    try:
        with Image.open(io.BytesIO(data)) as image:
            problem = size_problem(*image.size)
    except (UnidentifiedImageError, OSError, ValueError):
        return  # not an image Pillow knows: the decoder says so
    except Image.DecompressionBombError:
        problem = "over twice the megapixel limit"
    if problem:
        raise KerasSignError(f"The frame is refused: {problem}.")
