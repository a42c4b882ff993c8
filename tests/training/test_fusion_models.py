"""`--arch fusion:<cnn>`: a CNN on the hand's square and the landmark branch, joined before one classifier. It
trains on real hands in seconds and goes through evaluate, predict, transcribe and export like any run."""

import json

import keras
import numpy as np
import pytest

from conftest import (SHARED_DATA, assert_spells_a_clip_through_the_hand_stage, invoke, massey_subset, one_line_error,
                      run_cli)
from keras_sign.data.fusion import epochs_of_fusion_batches
from keras_sign.hands.features import FEATURES
from keras_sign.models.registry import build_model, canonical_name, get_spec

# Its tests share one trained run: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("fusion")

MASSEY = SHARED_DATA / "massey_asl_hands"
SIGNS = ["a", "b", "c", "l", "v", "y"]
SIZE = 48


@pytest.fixture(scope="module")
def fusion_run(tmp_path_factory):
    """A fusion model (MobileNetV3-Small + landmarks) of 6 of Massey's letters, 6 photos of each per signer, one
    signer held out."""
    root = tmp_path_factory.mktemp("fusion")
    massey_subset(root / "data", SIGNS, 6)
    run = root / "run"
    result = run_cli("train", "--arch", "fusion:mobilenetv3", "--data-dir", root / "data", "--split", "signer",
                     "--epochs", "25", "--batch-size", "16", "--image-size", str(SIZE), "--seed", "3", "--out", run,
                     "--hand-cache-dir", root / "hand-cache")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return run


def test_a_fusion_run_records_both_inputs_and_learns_a_new_signer(fusion_run):
    info = json.loads((fusion_run / "run.json").read_text())
    assert (info["arch"], info["hands"]["stage"]) == ("fusion:mobilenetv3_small", "fusion")
    assert info["hands"]["features"]["features"] == FEATURES and "test_vector" in info["hands"]["features"]
    assert "hands: fusion" in (fusion_run / "config.yaml").read_text()  # set for the fusion model
    metrics = json.loads((fusion_run / "metrics.json").read_text())
    held_out = sum(1 for _ in (fusion_run.parent / "data" / "hand3").rglob("*.*"))
    assert metrics["images"] == held_out and metrics["accuracy"] >= 0.6  # a signer it never saw; chance is 1/6
    for name in ("report.txt", "confusion_matrix.png", "tsne.png", "calibration.json", "curves.png"):
        assert (fusion_run / name).is_file(), name
    model = keras.models.load_model(fusion_run / "model.keras")  # plain Keras, no keras-sign layers
    assert [tuple(tensor.shape) for tensor in model.inputs] == [(None, SIZE, SIZE, 3), (None, FEATURES)]
    assert model.output_shape == (None, len(SIGNS))


def test_predict_and_transcribe_of_a_fusion_run_read_the_square_and_the_landmarks(fusion_run, tmp_path):
    from keras_sign.inference.classifier import load_classifier

    photo = sorted((MASSEY / "hand3" / "v").iterdir())[-1]  # a photo the model never saw
    code, output = invoke("predict", fusion_run, photo, "--format", "jsonl")
    assert code == 0, output
    answer = json.loads(output.strip().splitlines()[-1])
    classifier = load_classifier(fusion_run)
    (square, features), hand = classifier.hand_stage.of_photo(photo)
    assert square.shape == (SIZE, SIZE, 3) and features.shape == (FEATURES,) and hand is not None
    probabilities = classifier.predict((square[None], features[None]))[0]
    assert answer["predictions"][0]["class"] == SIGNS[int(np.argmax(probabilities))]
    assert answer["predictions"][0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-4)
    # Both inputs matter: the same square with another hand's features is another answer.
    other = classifier.predict((square[None], np.zeros((1, FEATURES), np.float32)))[0]
    assert not np.allclose(other, probabilities, atol=1e-3)
    assert_spells_a_clip_through_the_hand_stage(fusion_run, tmp_path / "clip")


def test_an_ensemble_mixes_a_fusion_and_a_landmark_model(fusion_run, tmp_path):
    from keras_sign.inference.classifier import load_classifier

    landmarks = tmp_path / "landmarks"
    result = run_cli("train", "--arch", "landmarks", "--data-dir", fusion_run.parent / "data", "--split", "signer",
                     "--epochs", "20", "--batch-size", "16", "--seed", "3", "--out", landmarks,
                     "--hand-cache-dir", fusion_run.parent / "hand-cache")
    assert result.returncode == 0, result.stderr[-3000:]
    code, output = invoke("ensemble", fusion_run, landmarks, "--out", tmp_path / "both")
    assert code == 0, output
    info = json.loads((tmp_path / "both" / "run.json").read_text())
    assert info["hands"]["stage"] == "fusion" and "features" in info["hands"]
    code, output = invoke("evaluate", tmp_path / "both")
    assert code == 0, output
    metrics = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert metrics["images"] == json.loads((fusion_run / "metrics.json").read_text())["images"]
    photo = sorted((MASSEY / "hand3" / "c").iterdir())[-1]
    ensemble, fusion, landmark = (load_classifier(path) for path in (tmp_path / "both", fusion_run, landmarks))
    (square, features), _ = fusion.hand_stage.of_photo(photo)
    mean = (fusion.predict((square[None], features[None]), calibrated=False)
            + landmark.predict(features[None], calibrated=False)) / 2
    np.testing.assert_allclose(ensemble.predict((square[None], features[None]), calibrated=False), mean, atol=1e-5)


@pytest.mark.slow
def test_a_fusion_run_exports_two_inputs_and_answers_as_the_run_does(fusion_run, tmp_path):
    from keras_sign.inference.tflite_metadata import read_metadata

    for export_format in ("tflite", "onnx"):
        result = run_cli("export", fusion_run, "--format", export_format, "--out", tmp_path / "exports")
        assert result.returncode == 0, result.stderr[-3000:]
        record = json.loads((tmp_path / "exports" / f"{fusion_run.name}-{export_format}-none" / "model.json")
                            .read_text())
        assert record["verified"] is True
        assert [entry["shape"] for entry in record["inputs"]] == [[1, SIZE, SIZE, 3], [1, FEATURES]]
    bundle = tmp_path / "exports" / f"{fusion_run.name}-tflite-none"
    metadata = read_metadata((bundle / "model.tflite").read_bytes())
    assert metadata["labels"] == SIGNS and sorted(metadata["inputs"]) == ["image", "landmarks"]
    photos = sorted((MASSEY / "hand3" / "y").iterdir())[-2:]
    answers = [invoke("predict", source, *photos, "--format", "jsonl") for source in (fusion_run, bundle)]
    assert all(code == 0 for code, _ in answers), answers
    from_run, from_bundle = ([json.loads(line) for line in output.strip().splitlines()[-2:]] for _, output in answers)
    for one, other in zip(from_run, from_bundle):
        assert one["predictions"][0]["class"] == other["predictions"][0]["class"]
        assert one["predictions"][0]["probability"] == pytest.approx(other["predictions"][0]["probability"], abs=1e-4)
    result = run_cli("data", "clip", "--text", "BAY", "--run", fusion_run, "--split", "test", "--out",
                     tmp_path / "clip", "--seed", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    spelled = [run_cli("transcribe", source, tmp_path / "clip" / "frames", "--fps", "15", "--events",
                       tmp_path / f"{index}.jsonl") for index, source in enumerate((fusion_run, bundle))]
    assert all(result.returncode == 0 for result in spelled), [result.stderr[-2000:] for result in spelled]
    events = [[json.loads(line)["symbol"] for line in (tmp_path / f"{index}.jsonl").read_text().splitlines()]
              for index in range(2)]
    assert events[0] and events[0] == events[1] and spelled[0].stdout == spelled[1].stdout


def test_fusion_batches_are_seeded_by_the_epoch_alone():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3)).astype(np.uint8)
    features, labels = rng.normal(size=(40, FEATURES)).astype(np.float32), rng.integers(0, 4, 40)
    import tensorflow as tf

    squares = tf.data.Dataset.from_tensor_slices((images, np.arange(40, dtype=np.int32))).cache()

    def epochs(first, stop):
        dataset = epochs_of_fusion_batches(squares, features, labels, 7, range(first, stop), num_classes=4,
                                           batch_size=16)
        return [(x, f, y) for (x, f), y in dataset.as_numpy_iterator()]

    whole, resumed = epochs(0, 3), epochs(2, 3)  # epoch 2 alone, as after a resume
    for one, other in zip(whole[-3:], resumed):
        for a, b in zip(one, other):
            np.testing.assert_array_equal(a, b)
    # The rows stay together: each batch's labels are those of the features it carries (augmentation aside).
    nearest = [int(np.argmin(np.abs(features - row).sum(-1))) for row in whole[0][1]]
    np.testing.assert_array_equal(whole[0][2].argmax(-1), labels[nearest])
    assert not np.allclose(whole[0][0], whole[3][0])  # each epoch shuffled and augmented anew


def test_a_fusion_model_starts_from_the_cnns_weights(tmp_path):
    from keras_sign.models.starting_weights import load_starting_weights
    from keras_sign.training.fit import head_layer_names

    cnn = build_model("mobilenetv3_small", 1000, 64)
    cnn.save_weights(tmp_path / "cnn.weights.h5")
    fusion = build_model("fusion:mobilenetv3", 5, 64)
    left = load_starting_weights(fusion, "fusion:mobilenetv3_small", str(tmp_path / "cnn.weights.h5"))
    assert set(left) == head_layer_names(fusion, "fusion:mobilenetv3_small") - {
        layer.name for layer in fusion.layers if not layer.weights}  # the landmark branch and the classifier are new
    for name in ("features_0_0", "features_12_1"):
        for mine, theirs in zip(fusion.get_layer(name).get_weights(), cnn.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert canonical_name("fusion:resnet18") == "fusion:resnet18" and get_spec("fusion:resnet18").inputs == "fusion"


def test_a_fusion_model_refuses_what_it_cannot_read(small_digits, tmp_path):
    one_line_error(*invoke("train", "--arch", "fusion:mobilenetv3", "--hands", "crop", "--data-dir", small_digits,
                           "--out", tmp_path / "a"), "reads a hand, not --hands crop", "drop --hands")
    one_line_error(*invoke("train", "--arch", "fusion:mobilenetv3", "--mix", "mixup", "--data-dir", small_digits,
                           "--out", tmp_path / "b"), "--mix mixup", "drop --mix")
    one_line_error(*invoke("train", "--arch", "fusion:landmarks", "--data-dir", small_digits, "--out", tmp_path / "c"),
                   "name a CNN after `fusion:`")
    one_line_error(*invoke("train", "--arch", "fusion:vgg", "--data-dir", small_digits, "--out", tmp_path / "d"),
                   "Unknown architecture 'vgg'")
    one_line_error(*invoke("train", "--arch", "mobilenetv3", "--hands", "fusion", "--data-dir", small_digits,
                           "--out", tmp_path / "e"), "--hands fusion is for --arch fusion:<cnn>")
