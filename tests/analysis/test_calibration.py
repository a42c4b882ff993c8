"""`keras_sign.analysis.calibration`: temperature scaling and the reject threshold, fitted when training
ends, refitted by `keras-sign calibrate`, and used by evaluate and predict."""

import json

import numpy as np
import pytest

from conftest import SAMPLE, copy_subset, run_cli
from keras_sign.analysis import calibration
from keras_sign.errors import KerasSignError


def _overconfident(seed=0, n=2000, classes=5):
    """Scores of a model that is right about 70% of the time but says so with near certainty."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 1.4
    probabilities = np.exp(logits * 6) / np.exp(logits * 6).sum(axis=1, keepdims=True)
    return probabilities, labels


def test_temperature_scaling_softens_an_overconfident_model_without_changing_its_answers():
    probabilities, labels = _overconfident()
    temperature = calibration.fit_temperature(probabilities, labels)
    scaled = calibration.apply_temperature(probabilities, temperature)
    assert temperature > 2  # the scores were sharpened 6 times
    assert calibration.negative_log_likelihood(scaled, labels) < calibration.negative_log_likelihood(probabilities,
                                                                                                      labels)
    assert calibration.reliability(scaled, labels)[0] < calibration.reliability(probabilities, labels)[0] / 2
    np.testing.assert_array_equal(scaled.argmax(1), probabilities.argmax(1))


def test_the_reject_threshold_meets_its_target_with_the_most_answers():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0, 1, 5000)
    correct = rng.uniform(0, 1, 5000) < confidence  # surer answers are more often right
    threshold, coverage, false_accept = calibration.choose_threshold(confidence, correct, 0.05)
    accepted = confidence >= threshold
    assert (~correct[accepted]).mean() <= 0.05 and false_accept == pytest.approx((~correct[accepted]).mean())
    assert coverage == pytest.approx(accepted.mean())
    lower = confidence[confidence < threshold].max()  # one more answer breaks the target
    assert (~correct[confidence >= lower]).mean() > 0.05
    assert calibration.choose_threshold([0.9, 0.8], [False, False], 0.05) == (1.0, 0.0, 0.0)
    with pytest.raises(KerasSignError, match="between 0 and 1"):
        calibration.choose_threshold(confidence, correct, 5)


def test_training_calibrates_and_evaluate_and_predict_use_it(tmp_path):
    data = copy_subset(SAMPLE, tmp_path / "digits", ["0", "1", "2"], 14)
    run = tmp_path / "run"
    (tmp_path / "config.yaml").write_text("val_fraction: 0.3\n")  # 12 validation images
    result = run_cli("train", "--config", tmp_path / "config.yaml", "--data-dir", data, "--epochs", "2",
                     "--image-size", "32", "--batch-size", "8", "--out", run)
    assert result.returncode == 0, result.stderr
    fitted = json.loads((run / "calibration.json").read_text())
    assert fitted["images"] >= 10 and fitted["temperature"] > 0 and 0 < fitted["reject"]["threshold"] <= 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == fitted["temperature"]
    assert (run / "reliability.png").stat().st_size > 1000 and (run / "risk_coverage.csv").is_file()

    again = run_cli("calibrate", run, "--max-false-accept", "0.5")
    assert again.returncode == 0 and "unsure below" in again.stdout, again.stderr
    assert json.loads((run / "calibration.json").read_text())["reject"]["max_false_accept"] == 0.5
    predicted = run_cli("predict", run, data / "1", "--format", "jsonl")
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(rows) == 14 and all(isinstance(row["unsure"], bool) for row in rows)
    bad = run_cli("calibrate", run, "--max-false-accept", "2")
    assert bad.returncode != 0 and "between 0 and 1" in bad.stderr
