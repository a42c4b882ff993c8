"""`keras_sign.inference.predict` and `keras-sign predict`: one answer from every kind of model file a user
holds, the inputs it expands, the formats it writes and what it skips."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, copy_subset, run_cli
from conftest import invoke as _invoke
from keras_sign.cli import SKIPPED_EXIT
from keras_sign.inference.classifier import load_classifier
from keras_sign.inference.predict import expand_inputs, predict_files
from spelling_fixtures import CLASSES, trained  # noqa: F401  (fixtures)
from users_fixtures import save_as_phone_would

# Its tests share the session's trained model with the spelling tests: one worker runs them all
# (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sign_to_text")


def test_predict_gives_one_answer_from_a_run_its_keras_file_and_its_tflite_bundle(trained):
    files = sorted((trained["data"] / "1").iterdir())[:6] + sorted((SAMPLE / "2").iterdir())[-4:]
    files = files[:6] + [f for f in files[6:] if f.name not in {p.name for p in (trained["data"] / "2").iterdir()}]
    answers = {}
    for name, model in [("run", trained["run"]), ("keras", trained["run"] / "model.keras"),
                        ("tflite", trained["bundle"]), ("tflite file", os.path.join(trained["bundle"], "model.tflite"))]:
        classifier = load_classifier(model)
        assert classifier.class_names == CLASSES and classifier.image_size == 32
        rows, skipped = predict_files(classifier, files, top_k=2)
        assert not skipped and [row["path"] for row in rows] == [str(f) for f in files]
        answers[name] = np.array([[p["probability"] for p in row["predictions"]] for row in rows]), \
            [row["predictions"][0]["class"] for row in rows]
    top1 = answers["run"][1]
    assert all(answer[1] == top1 for answer in answers.values())
    np.testing.assert_allclose(answers["tflite"][0], answers["run"][0], atol=1e-4)
    assert top1[:6].count("1") >= 4 and "2" in top1[6:]  # a model that tells the classes apart


def test_predict_command_formats_skips_and_exit_status(trained, tmp_path):
    photos = copy_subset(SAMPLE, tmp_path / "photos", ["0", "2"], 2)
    (photos / "2" / "notes.txt").write_text("not a photo")
    code, output = _invoke("predict", trained["run"], photos, tmp_path / "missing.jpg", "--top-k", "2")
    assert code == SKIPPED_EXIT, output
    lines = output.splitlines()
    assert "notes.txt: not an image" in output and "missing.jpg: no such file or folder" in output
    header = next(line for line in lines if line.startswith("path"))
    assert header.split() == ["path", "top1", "p1", "top2", "p2"]
    for output_format in ("jsonl", "csv"):
        out = tmp_path / f"predictions.{output_format}"
        code, _ = _invoke("predict", trained["bundle"], photos / "0", "--format", output_format, "--out", out,
                          "--top-k", "9")
        assert code == 0
        text = out.read_text()
        if output_format == "jsonl":
            rows = [json.loads(line) for line in text.splitlines()]
            assert len(rows) == 2 and len(rows[0]["predictions"]) == 4  # every class
            assert sum(p["probability"] for p in rows[0]["predictions"]) == pytest.approx(1, abs=1e-4)
        else:
            rows = list(csv.DictReader(text.splitlines()))
            assert len(rows) == 2 and rows[0]["top1"] in CLASSES
    code, output = _invoke("predict", trained["run"], tmp_path / "nothing-here")
    assert code == 1 and "None of the 1 input(s)" in output


def test_predict_sees_phone_photos_upright(trained, tmp_path):
    picture = Image.open(sorted((SAMPLE / "1").iterdir())[3]).convert("RGB")
    picture.save(tmp_path / "upright.png")
    save_as_phone_would(picture, tmp_path / "phone.png", 6)
    rows, _ = predict_files(load_classifier(trained["bundle"]), [tmp_path / "upright.png", tmp_path / "phone.png"])
    assert rows[0]["predictions"] == rows[1]["predictions"]


def test_inputs_expand_files_folders_and_globs(tmp_path):
    folder = copy_subset(SAMPLE, tmp_path / "p", ["0", "1"], 2)
    (tmp_path / "empty").mkdir()
    files, problems = expand_inputs([folder, str(folder / "0" / "*.JPG"), folder / "1", "nope/*.png", tmp_path / "empty",
                                     tmp_path / "gone"])
    assert len(files) == 4 and len(set(files)) == 4  # repeats named once
    # An empty folder that exists was "no such file or folder".
    assert problems == [("nope/*.png", "the pattern matches no file"), (str(tmp_path / "empty"), "the folder holds no files"),
                        (str(tmp_path / "gone"), "no such file or folder")]


def test_a_100_megapixel_photo_is_skipped_by_name_without_pillows_warning(trained, tmp_path):
    Image.new("RGB", (10_000, 10_000), (90, 120, 150)).save(tmp_path / "huge.png")
    result = run_cli("predict", trained["bundle"], tmp_path / "huge.png", fresh=True)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "huge.png: 10000x10000 is 100 megapixels, over the 89-megapixel limit; downscale it" in result.stderr
    assert "DecompressionBombWarning" not in result.stderr and "Traceback" not in result.stderr
