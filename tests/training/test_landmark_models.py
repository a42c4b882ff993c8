"""`--arch landmarks`: a network on the hand's landmark features trains on real hands in seconds, and the run
goes through evaluate, calibrate, compare, predict and transcribe like a CNN's."""

import json

import keras
import numpy as np
import pytest

from conftest import (SHARED_DATA, assert_spells_a_clip_through_the_hand_stage, invoke, massey_subset, one_line_error,
                      run_cli)
from keras_sign.data.landmarks import epochs_of_landmark_batches
from keras_sign.hands.detector import HandDetector
from keras_sign.hands.features import FEATURES, landmark_features
from keras_sign.hands.images import read_upright
from keras_sign.models.registry import available_models, build_model, canonical_name

# Its tests share one trained run: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("landmarks")

MASSEY = SHARED_DATA / "massey_asl_hands"
SIGNS = ["a", "b", "c", "l", "v", "y"]


@pytest.fixture(scope="module")
def landmark_run(tmp_path_factory):
    """A landmark model of 6 of Massey's letters, 6 photos of each per signer, one signer held out."""
    root = tmp_path_factory.mktemp("landmarks")
    massey_subset(root / "data", SIGNS, 6)
    run = root / "run"
    result = run_cli("train", "--arch", "landmarks", "--data-dir", root / "data", "--split", "signer", "--epochs", "40",
                     "--batch-size", "16", "--seed", "3", "--out", run, "--hand-cache-dir", root / "hand-cache")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return run


def test_a_landmark_run_records_its_stage_and_learns_a_new_signer(landmark_run):
    info = json.loads((landmark_run / "run.json").read_text())
    assert (info["arch"], info["hands"]["stage"]) == ("landmark_mlp", "landmarks")
    assert info["hands"]["features"]["features"] == FEATURES and "test_vector" in info["hands"]["features"]
    config = (landmark_run / "config.yaml").read_text()
    assert "hands: landmarks" in config  # set for the landmark model
    metrics = json.loads((landmark_run / "metrics.json").read_text())
    held_out = sum(1 for _ in (landmark_run.parent / "data" / "hand3").rglob("*.*"))
    assert metrics["images"] == held_out and metrics["accuracy"] >= 0.6  # a signer it never saw; chance is 1/6
    for name in ("report.txt", "confusion_matrix.png", "tsne.png", "calibration.json", "curves.png"):
        assert (landmark_run / name).is_file(), name
    model = keras.models.load_model(landmark_run / "model.keras")  # plain Keras, no keras-sign layers
    assert model.input_shape == (None, FEATURES) and model.output_shape == (None, len(SIGNS))


def test_predict_of_a_landmark_run_is_the_model_on_the_hands_features(landmark_run):
    photo = sorted((MASSEY / "hand3" / "v").iterdir())[-1]  # a photo the model never saw
    code, output = invoke("predict", landmark_run, photo, "--format", "jsonl")
    assert code == 0, output
    answer = json.loads(output.strip().splitlines()[-1])
    image, scale = read_upright(photo)
    [hand] = HandDetector().find(image)
    features = landmark_features(hand.landmarks * scale, hand.handedness)
    model = keras.models.load_model(landmark_run / "model.keras")
    probabilities = model.predict(features[None], verbose=0)[0]
    calibration = json.loads((landmark_run / "calibration.json").read_text())
    scaled = np.exp(np.log(probabilities) / calibration["temperature"])
    scaled /= scaled.sum()
    best = int(np.argmax(scaled))
    assert answer["predictions"][0]["class"] == SIGNS[best]
    assert answer["predictions"][0]["probability"] == pytest.approx(float(scaled[best]), abs=1e-4)


def test_a_landmark_run_compares_and_transcribes(landmark_run, tmp_path):
    code, output = invoke("compare", landmark_run, "--out", tmp_path / "compare")
    assert code == 0, output
    assert "landmark_mlp" in (tmp_path / "compare" / "compare.md").read_text()
    assert_spells_a_clip_through_the_hand_stage(landmark_run, tmp_path / "clip")


def test_the_stage_and_the_architecture_must_agree(small_digits, tmp_path):
    one_line_error(*invoke("train", "--arch", "landmarks", "--hands", "crop", "--data-dir", small_digits,
                           "--out", tmp_path / "a"), "reads a hand, not --hands crop", "drop --hands")
    one_line_error(*invoke("train", "--arch", "resnet18", "--hands", "landmarks", "--data-dir", small_digits,
                           "--out", tmp_path / "b"), "--hands landmarks is for --arch landmarks")


@pytest.mark.slow
def test_a_landmark_run_exports_to_tflite_with_its_spec_and_answers_as_the_run_does(landmark_run, tmp_path):
    from keras_sign.hands.features import SPEC
    from keras_sign.inference.tflite_metadata import read_metadata

    result = run_cli("export", landmark_run, "--out", tmp_path / "exports")
    assert result.returncode == 0, result.stderr[-3000:]
    bundle = tmp_path / "exports" / f"{landmark_run.name}-tflite-none"
    record = json.loads((bundle / "model.json").read_text())
    assert record["verified"] is True and record["input"]["shape"] == [1, FEATURES]
    features = record["preprocessing"]["hands"]["features"]
    assert features == json.loads(json.dumps(SPEC))  # the steps and the test vector an app checks itself with
    assert read_metadata((bundle / "model.tflite").read_bytes())["labels"] == SIGNS
    photos = sorted((MASSEY / "hand3" / "y").iterdir())[-2:]
    answers = [invoke("predict", source, *photos, "--format", "jsonl") for source in (landmark_run, bundle)]
    assert all(code == 0 for code, _ in answers), answers
    from_run, from_bundle = ([json.loads(line) for line in output.strip().splitlines()[-2:]] for _, output in answers)
    for one, other in zip(from_run, from_bundle):
        assert one["predictions"][0]["class"] == other["predictions"][0]["class"]
        assert one["predictions"][0]["probability"] == pytest.approx(other["predictions"][0]["probability"], abs=1e-4)


def test_landmark_batches_are_seeded_by_the_epoch_alone():
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(40, FEATURES)).astype(np.float32), rng.integers(0, 4, 40)

    def epochs(first, stop):
        dataset = epochs_of_landmark_batches(features, labels, 7, range(first, stop), num_classes=4, batch_size=16)
        return [x for x, _ in dataset.as_numpy_iterator()]

    whole, resumed = epochs(0, 3), epochs(2, 3)  # epoch 2 alone, as after a resume
    np.testing.assert_array_equal(np.concatenate(whole[-3:]), np.concatenate(resumed))
    assert not np.allclose(whole[0], whole[3][:16])  # each epoch augmented anew
    assert not np.allclose(np.sort(whole[0].ravel()), np.sort(features[:16].ravel()))


def test_the_registry_keeps_landmark_models_apart_from_the_cnns():
    assert canonical_name("landmarks") == "landmark_mlp" and available_models("landmarks") == ["landmark_mlp"]
    assert "landmark_mlp" not in available_models()
    assert build_model("landmarks", num_classes=5).output_shape == (None, 5)


def test_the_demo_serves_a_landmark_run(landmark_run):
    import io

    from PIL import Image

    pytest.importorskip("fastapi", reason="the demo extra is not installed")
    from fastapi.testclient import TestClient

    from keras_sign.demo.server import create_app
    from keras_sign.inference.classifier import load_classifier

    def jpeg(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    photo = Image.open(sorted((MASSEY / "hand3" / "l").iterdir())[-1]).convert("RGB")
    with TestClient(create_app(load_classifier(landmark_run))) as client, client.websocket_connect("/ws") as socket:
        socket.send_bytes(jpeg(photo))
        seen = socket.receive_json()
        socket.send_bytes(jpeg(Image.new("RGB", (160, 120), (120, 120, 120))))
        blank = socket.receive_json()
    assert seen["hand"] is not None and len(seen["hand"]["landmarks"]) == 21
    assert {name for name, _ in seen["top"]} <= set(SIGNS)
    assert blank["hand"] is None and blank["state"]["candidate"] in (None, "")
