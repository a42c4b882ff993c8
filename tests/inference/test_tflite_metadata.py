"""`keras_sign.inference.tflite_metadata`: .tflite files that carry their labels and input normalisation as
TFLite metadata, read back by keras-sign and by MediaPipe Tasks."""

import json
import os
import subprocess

import numpy as np
import pytest

from keras_sign.models import build_model

# Its tests share a module-scoped .tflite file: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("tflite_metadata")


MEDIAPIPE_CLASSIFY = """
import json, sys
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision

options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=sys.argv[1]), max_results=3)
with vision.ImageClassifier.create_from_options(options) as classifier:
    result = classifier.classify(mp.Image.create_from_file(sys.argv[2]))
print(json.dumps([[c.category_name, c.score] for c in result.classifications[0].categories]))
"""


@pytest.fixture(scope="module")
def tflite_with_metadata(tmp_path_factory):
    """A small classifier converted to TFLite and given keras-sign's metadata and labels."""
    from keras_sign.export.tflite import to_tflite
    from keras_sign.inference.tflite_metadata import add_metadata, image_metadata

    folder = tmp_path_factory.mktemp("metadata")
    model = build_model("mobilenetv3_small", 3, 48, mean=(127.0,) * 3, std=(64.0,) * 3)
    labels = ["space", "Ñ", "del"]
    plain = to_tflite(model)
    metadata = image_metadata("digits sign classifier", "Three classes.", "run-1", "keras-sign", None, 48)
    path = folder / "model.tflite"
    path.write_bytes(add_metadata(plain, metadata, {"labels.txt": "".join(f"{n}\n" for n in labels).encode()}))
    return path, model, labels, plain


def test_metadata_round_trip_and_the_model_still_runs(tflite_with_metadata):
    from keras_sign.inference.runtimes import TFLiteModel
    from keras_sign.inference.tflite_metadata import associated_files, read_metadata

    path, model, labels, plain = tflite_with_metadata
    data = path.read_bytes()
    metadata = read_metadata(data)
    assert metadata == {"name": "digits sign classifier", "description": "Three classes.", "version": "run-1",
                        "author": "keras-sign", "min_parser_version": "1.0.0", "inputs": ["image"], "mean": [0.0, 0.0, 0.0],
                        "std": [1.0, 1.0, 1.0], "label_files": ["labels.txt"], "labels": labels}
    assert associated_files(data) == {"labels.txt": "space\nÑ\ndel\n".encode()}
    assert read_metadata(plain) is None and associated_files(plain) == {}
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(TFLiteModel(path).predict(images), model.predict(images, verbose=0), atol=1e-5)


def test_a_bare_tflite_file_brings_its_own_labels(tflite_with_metadata):
    from keras_sign.inference.classifier import load_classifier

    path, _, labels, _ = tflite_with_metadata
    assert not (path.parent / "labels.txt").exists()
    assert load_classifier(path).class_names == labels


def test_mediapipe_tasks_classifies_with_the_bundle_alone(tflite_with_metadata, tmp_path):
    """MediaPipe's ImageClassifier needs the metadata (labels, normalisation) and nothing else. It cannot
    share an environment with TensorFlow 2.21 here, so .ci/run installs it in a second one."""
    from PIL import Image

    from conftest import SAMPLE

    python = os.environ.get("KERAS_SIGN_MEDIAPIPE_PYTHON")
    if not python:
        pytest.skip("KERAS_SIGN_MEDIAPIPE_PYTHON is not set (.ci/run sets it to a Python with mediapipe)")
    path, model, labels, _ = tflite_with_metadata
    photo = tmp_path / "photo.png"
    Image.open(next((SAMPLE / "1").iterdir())).convert("RGB").resize((48, 48)).save(photo)
    result = subprocess.run([python, "-c", MEDIAPIPE_CLASSIFY, str(path), str(photo)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    categories = json.loads(result.stdout.splitlines()[-1])
    expected = model.predict(np.asarray(Image.open(photo), np.float32)[None], verbose=0)[0]
    # MediaPipe decodes and resizes the file itself; the photo is already 48 x 48, so its scores are the model's
    assert len(categories) == 3
    for name, score in categories:
        assert score == pytest.approx(float(expected[labels.index(name)]), abs=1e-3), (name, categories, expected)
