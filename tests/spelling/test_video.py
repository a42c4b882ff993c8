"""`keras_sign.spelling.video`: what opens as a source of frames, and a photo pointed to `predict`."""

import pytest
from PIL import Image

from conftest import SAMPLE
from conftest import invoke as _invoke
from spelling_fixtures import trained  # noqa: F401  (fixture)

# Its tests share the session's trained model and clip with the predict tests: one worker runs them all
# (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sign_to_text")


def test_a_photo_given_to_transcribe_is_pointed_to_predict(trained, tmp_path):
    """`transcribe RUN one.png` reported -9223372036854775808 frames (OpenCV's count for a still image)."""
    photo = tmp_path / "one.png"
    Image.open(next((SAMPLE / "1").iterdir())).save(photo)
    code, output = _invoke("transcribe", trained["bundle"], photo)
    assert code == 1 and "is a photo, not a video" in output and "keras-sign predict MODEL PHOTO" in output, output
    assert "-9223372036854775808" not in output and "Traceback" not in output
