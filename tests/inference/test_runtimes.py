"""`keras_sign.inference.runtimes`: a damaged model file is refused in one line naming it, by every command
that runs one."""

import shutil

import pytest

from conftest import SAMPLE
from conftest import invoke as _invoke
from conftest import one_line_error as _one_line
from spelling_fixtures import CLASSES, bundle, trained  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("sign_to_text")  # the trained model is shared with those tests


@pytest.mark.parametrize("command", ["predict", "transcribe", "benchmark", "demo"])
def test_a_damaged_tflite_is_one_line_naming_it(bundle, tmp_path, command):
    """A corrupted .tflite ended in `ValueError: The model is not a valid Flatbuffer buffer` and a traceback."""
    photo = next((SAMPLE / "1").iterdir())
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(photo, frames / "f1.jpg")
    extra = {"predict": [photo], "transcribe": [frames], "benchmark": [], "demo": ["--port", "8787"]}[command]
    data = (bundle / "model.tflite").read_bytes()
    (bundle / "model.tflite").write_bytes(data[: len(data) // 2])  # cut short, as a failed copy leaves it
    _one_line(*_invoke(command, bundle, *extra), str(bundle / "model.tflite"), "SHA-256 differs")
    bare = tmp_path / "bare.tflite"  # no model.json to compare with: the runtime's own refusal, in one line
    bare.write_bytes(b"\x00" * 64 + data[64: len(data) // 3])
    (tmp_path / "labels.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    _one_line(*_invoke(command, bare, *extra), f"{bare} is not a valid TFLite model")
