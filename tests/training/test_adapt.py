"""`keras-sign adapt RUN SHOTS --out NEW`: a copy of a run fine-tuned on a few photos of a new signer, written as a
complete run folder that names its parent and its shots; RUN is never changed; bad shots get one line."""

import hashlib
import json

import keras
import numpy as np
import pytest
from PIL import Image

from adapt_fixtures import MASSEY, SIGNS, landmark_parent, shots_of  # noqa: F401  (fixture)
from conftest import invoke, one_line_error


@pytest.fixture
def parent(landmark_parent):  # noqa: F811
    return landmark_parent


def _digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())
            if path.is_file()}


def test_adapt_writes_a_run_that_names_its_parent_and_shots_and_leaves_the_parent_alone(parent, tmp_path):
    before = _digest(parent)
    shots = shots_of(tmp_path / "shots", SIGNS, 2)
    Image.new("RGB", (160, 120), (90, 90, 90)).save(shots / "a" / "empty-wall.jpg")  # no hand in it
    out = tmp_path / "me"
    code, output = invoke("adapt", parent, shots, "--out", out, "--epochs", "5", "--hand-cache-dir",
                          parent.parent / "hand-cache")
    assert code == 0, output
    assert _digest(parent) == before  # RUN is only read
    info = json.loads((out / "run.json").read_text())
    assert info["adapted_from"]["run"] == str(parent.resolve()) and info["status"] == "finished"
    assert info["shots"]["used"] == 10 and info["shots"]["skipped"] == 1
    shot_sha1s = {hashlib.sha1(path.read_bytes()).hexdigest() for path in shots.rglob("*.jpeg")}
    assert set(info["shots"]["sha1"]) == shot_sha1s
    shots_csv = (out / "shots.csv").read_text()
    assert "empty-wall.jpg" in shots_csv and "no hand found" in shots_csv
    split = (out / "split.csv").read_text().splitlines()
    moved = [line for line in split if ",shots," in line]
    assert len(moved) == 10  # the shots are the held-out signer's photos: out of the test split
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == json.loads((parent / "metrics.json").read_text())["images"] - 10
    for name in ("model.keras", "classes.json", "calibration.json", "config.yaml", "hands.jsonl", "report.txt"):
        assert (out / name).is_file(), name
    model = keras.models.load_model(out / "model.keras")
    assert model.output_shape == (None, len(SIGNS))
    code, output = invoke("predict", out, sorted((MASSEY / "hand3" / "v").iterdir())[-1], "--format", "jsonl")
    assert code == 0 and json.loads(output.strip().splitlines()[-1])["predictions"][0]["class"] in SIGNS, output
    one_line_error(*invoke("adapt", parent, shots, "--out", out), "already exists")  # a second adapt into it


def test_adapt_to_a_new_sign_grows_a_landmark_models_classifier(parent, tmp_path):
    shots = shots_of(tmp_path / "shots", ["c"], 3)  # a sign the model never learned
    one_line_error(*invoke("adapt", parent, shots, "--out", tmp_path / "refused"), "does not know: c",
                   "--add-classes")
    assert not (tmp_path / "refused").exists()
    shots_of(shots, ["a"], 2)
    out = tmp_path / "grown"
    code, output = invoke("adapt", parent, shots, "--out", out, "--add-classes", "--epochs", "30", "--hand-cache-dir",
                          parent.parent / "hand-cache")
    assert code == 0, output
    assert json.loads((out / "classes.json").read_text())[-1] == "c"
    model = keras.models.load_model(out / "model.keras")
    parent_model = keras.models.load_model(parent / "model.keras")
    assert model.output_shape == (None, len(SIGNS) + 1)
    old_kernel = parent_model.get_layer("logits").get_weights()[0]
    assert old_kernel.shape[1] == len(SIGNS) and not np.array_equal(model.get_layer("logits").get_weights()[0][:, :5],
                                                                     np.zeros_like(old_kernel))
    code, output = invoke("predict", out, *sorted((MASSEY / "hand3" / "c").iterdir())[3:6], "--format", "jsonl")
    assert code == 0, output
    answers = [json.loads(line)["predictions"][0]["class"] for line in output.strip().splitlines()[-3:]]
    assert answers.count("c") >= 2  # the new sign, on photos that were not among its shots


def test_bad_shots_get_one_line_and_nothing_is_written(parent, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(*invoke("adapt", parent, tmp_path / "empty", "--out", tmp_path / "a"))
    one_line_error(*invoke("adapt", parent, tmp_path / "nowhere", "--out", tmp_path / "b"), "does not exist")
    one_line_error(*invoke("adapt", parent, shots_of(tmp_path / "one", ["a"], 1), "--out", tmp_path / "c"),
                   "1 usable shot(s)", "two or more")
    blank = tmp_path / "blank" / "a"
    blank.mkdir(parents=True)
    for index in range(3):
        Image.new("RGB", (160, 120), (40 * index, 90, 90)).save(blank / f"wall{index}.jpg")
    one_line_error(*invoke("adapt", parent, tmp_path / "blank", "--out", tmp_path / "d"), "0 usable shot(s)")
    shots = shots_of(tmp_path / "shots", ["a", "b"], 2)
    one_line_error(*invoke("adapt", tmp_path / "not-a-run", shots, "--out", tmp_path / "e"))
    one_line_error(*invoke("adapt", parent, shots, "--out", tmp_path / "f", "--lr", "-1"), "--lr must be positive")
    assert not any((tmp_path / name).exists() for name in "abcdef")
    assert not list(tmp_path.glob(".*partial*"))
