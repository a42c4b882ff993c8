"""`keras_sign.data.decode`: photos decoded upright whatever their EXIF orientation, and the centre crop."""

import numpy as np
from PIL import Image, ImageOps

from keras_sign.data.decode import decode_and_resize
from keras_sign.data.scan import read_orientation
from users_fixtures import STORED_AS, first_photo, save_as_phone_would


def test_exif_orientation_is_applied_for_every_tag_as_pil_does(tmp_path):
    """Defect 1: tf.io.decode_image ignores the tag, so phone photos were trained on sideways."""
    upright = first_photo().resize((40, 56))  # not square: a wrong axis shows
    upright.save(tmp_path / "upright.png")
    reference = decode_and_resize(str(tmp_path / "upright.png"), 1, 48).numpy()
    for orientation in STORED_AS:
        path = tmp_path / f"stored-{orientation}.png"
        save_as_phone_would(upright, path, orientation)
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(path))), np.asarray(upright))
        assert read_orientation(path) == orientation
        decoded = decode_and_resize(str(path), orientation, 48).numpy()
        np.testing.assert_array_equal(decoded, reference, err_msg=f"orientation {orientation}")


def test_center_crop_keeps_the_aspect_ratio_and_cuts_the_middle(tmp_path):
    from PIL import Image

    from keras_sign.data.decode import decode_and_resize

    # 160 x 80: left quarter red, middle half green, right quarter blue.
    pixels = np.zeros((80, 160, 3), np.uint8)
    pixels[:, :40, 0], pixels[:, 40:120, 1], pixels[:, 120:, 2] = 255, 255, 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    cropped = decode_and_resize(str(tmp_path / "wide.png"), 1, 56, center_crop=True).numpy()
    squashed = decode_and_resize(str(tmp_path / "wide.png"), 1, 56).numpy()
    assert cropped.shape == squashed.shape == (56, 56, 3)
    # shorter side 80 -> 64 (56 / 0.875), width 128; the central 56 columns are all green
    assert cropped[..., 1].min() == 255 and cropped[..., 0].max() == 0 and cropped[..., 2].max() == 0
    assert squashed[:, 0, 0].min() == 255 and squashed[:, -1, 2].min() == 255
