"""Knowing when the model does not know: temperature scaling and a reject threshold, both fitted on the
validation split and stored in the run folder as calibration.json.

- Temperature scaling (Guo et al., 2017): the model's probabilities stay as trained; evaluation,
  predict and transcribe divide its log-probabilities by T before the softmax. T > 1 softens an
  over-confident model; the ranking of classes never changes, so neither does accuracy.
- A reject threshold: the lowest confidence (after temperature) at which, on the validation split,
  at most `max_false_accept` of the answers given are wrong. Below it an answer is "unsure".

    keras-sign calibrate runs/massey --max-false-accept 0.05

Everything here is NumPy on arrays of probabilities; the run folder I/O is in `calibrate_run`.
"""

import logging

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.inference.classifier import apply_temperature
from keras_sign.runs.record import RunInfo, write_calibration

log = logging.getLogger("keras_sign")

ECE_BINS = 15
DEFAULT_MAX_FALSE_ACCEPT = 0.05
MIN_CALIBRATION_IMAGES = 10  # fewer validation images say nothing about a temperature


def negative_log_likelihood(probabilities, labels):
    picked = np.asarray(probabilities)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(probabilities, labels):
    """The T in [0.05, 20] that minimises the negative log-likelihood of `labels`."""
    from scipy.optimize import minimize_scalar

    def loss(log_temperature):
        return negative_log_likelihood(apply_temperature(probabilities, np.exp(log_temperature)), labels)

    best = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


def reliability(probabilities, labels, bins=ECE_BINS):
    """`(expected calibration error, rows)`: per confidence bin, its range, images, accuracy and mean confidence."""
    confidence = np.asarray(probabilities).max(axis=-1)
    correct = np.asarray(probabilities).argmax(axis=-1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, error = [], 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            accuracy, mean_confidence = float(correct[inside].mean()), float(confidence[inside].mean())
            error += inside.mean() * abs(accuracy - mean_confidence)
            rows.append([round(float(low), 4), round(float(high), 4), int(inside.sum()), accuracy, mean_confidence])
    return float(error), rows


def choose_threshold(confidence, correct, max_false_accept):
    """`(threshold, coverage, false-accept rate)`: the lowest confidence threshold at which at most
    `max_false_accept` of the accepted answers are wrong (the most answers kept). 1.0 when none is."""
    if not 0 < max_false_accept < 1:
        raise KerasSignError(f"--max-false-accept must be between 0 and 1, e.g. 0.05 (got {max_false_accept}).")
    order = np.argsort(-np.asarray(confidence), kind="stable")
    confidence, correct = np.asarray(confidence)[order], np.asarray(correct, bool)[order]
    wrong_so_far = np.cumsum(~correct)
    accepted = np.arange(1, len(correct) + 1)
    rate = wrong_so_far / accepted
    # Accepting the top k means the threshold is the k-th confidence; ties must be accepted together.
    last_of_tie = np.append(confidence[1:] != confidence[:-1], True)
    good = np.flatnonzero((rate <= max_false_accept) & last_of_tie)
    if not len(good):
        return 1.0, 0.0, 0.0
    k = good[-1]
    return float(confidence[k]), float(accepted[k] / len(correct)), float(rate[k])


def risk_coverage(confidence, correct, points=21):
    """Rows of (threshold, coverage, accuracy of the accepted answers) for thresholds 0, 0.05, ... 1."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    rows = []
    for threshold in np.linspace(0.0, 1.0, points):
        accepted = confidence >= threshold
        coverage = float(accepted.mean())
        rows.append([round(float(threshold), 3), coverage, float(correct[accepted].mean()) if accepted.any() else None])
    return rows


def fit(probabilities, labels, max_false_accept=DEFAULT_MAX_FALSE_ACCEPT):
    """The calibration.json dict for validation probabilities and labels."""
    labels = np.asarray(labels)
    temperature = fit_temperature(probabilities, labels)
    scaled = apply_temperature(probabilities, temperature)
    threshold, coverage, false_accept = choose_threshold(scaled.max(axis=-1), scaled.argmax(axis=-1) == labels,
                                                         max_false_accept)
    return {
        "fitted_on": "validation split", "images": int(len(labels)), "temperature": temperature,
        "accuracy": float(np.mean(scaled.argmax(axis=-1) == labels)),
        "nll": {"before": negative_log_likelihood(probabilities, labels),
                "after": negative_log_likelihood(scaled, labels)},
        "ece": {"before": reliability(probabilities, labels)[0], "after": reliability(scaled, labels)[0]},
        "reject": {"threshold": threshold, "max_false_accept": max_false_accept, "coverage": coverage,
                   "false_accept": false_accept},
    }


def evaluate_calibration(probabilities, labels, calibration):
    """What the run's calibration does on evaluated images: ECE as trained and scaled, the reliability
    and risk-coverage rows, and what the reject threshold keeps and withholds."""
    labels = np.asarray(labels)
    scaled = apply_temperature(probabilities, calibration["temperature"])
    confidence, correct = scaled.max(axis=-1), scaled.argmax(axis=-1) == labels
    (ece_before, rows_before), (ece_after, rows_after) = reliability(probabilities, labels), reliability(scaled, labels)
    threshold = calibration["reject"]["threshold"]
    accepted = confidence >= threshold
    summary = {
        "temperature": calibration["temperature"], "ece": {"before": ece_before, "after": ece_after},
        "reject": {"threshold": threshold, "answered": float(accepted.mean()),
                   "accuracy_of_answers": float(correct[accepted].mean()) if accepted.any() else None,
                   "wrong_withheld": int((~correct & ~accepted).sum()), "wrong": int((~correct).sum()),
                   "right_withheld": int((correct & ~accepted).sum())},
    }
    return summary, rows_before, rows_after, risk_coverage(confidence, correct)


def calibrate_run(run_path, max_false_accept=DEFAULT_MAX_FALSE_ACCEPT, batch_size=64, model=None, shown_as=None):
    """Fit temperature and threshold on a run's validation split; write and return calibration.json.
    `model`: the run's model when the caller holds it (training does), else model.keras is loaded.
    `shown_as`: the folder's name in warnings, when it is being written under another."""
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.inference.hand_crops import photo_inputs, run_hands
    from keras_sign.runs.atomic import check_writable
    from keras_sign.runs.folder import RunFolder

    run = RunFolder.open(run_path)
    check_writable(run.path, "run folder (calibrate writes calibration.json there)")
    info = RunInfo.read(run.path)
    files = run.split_files("val").with_hands()  # with a hand stage, photos without a hand never reach the model
    if len(files.paths) < MIN_CALIBRATION_IMAGES:
        raise KerasSignError(f"{run.path} has {len(files.paths)} validation images; calibration needs at least "
                             f"{MIN_CALIBRATION_IMAGES} (train with a larger val_fraction).")
    classifier = load_classifier(run.path, model=model)
    hands = run_hands(run.path, files.paths, info.data_root) if info.preprocessing.reads_landmarks else None
    inputs = photo_inputs(files.paths, info.preprocessing, files.orientations, files.crops, hands, batch_size)
    probabilities = classifier.predict(inputs, calibrated=False)
    calibration = note_shared_signers(fit(probabilities, files.labels, max_false_accept), run, info, shown_as)
    write_calibration(run.path, calibration)
    log.info("Calibrated on %d validation images: temperature %.3f (NLL %.3f -> %.3f, ECE %.3f -> %.3f); "
             "answers below %.3f confidence are unsure (%.0f%% of validation answered, %.1f%% of those wrong)",
             calibration["images"], calibration["temperature"], calibration["nll"]["before"],
             calibration["nll"]["after"], calibration["ece"]["before"], calibration["ece"]["after"],
             calibration["reject"]["threshold"], 100 * calibration["reject"]["coverage"],
             100 * calibration["reject"]["false_accept"])
    return calibration


def note_shared_signers(calibration, run, info, shown_as=None):
    """`calibration` with a note (and a warning) when the run's validation photos are its training signers'."""
    if info.split_method == "signer" and _validation_shares_signers(run):
        calibration["note"] = "validation images are the training signers' own: fitted to them, not to new signers"
        log.warning("%s's validation images come from its training signers (too few signers to hold one out): the "
                    "temperature and threshold fit those signers, and a new signer's answers are less sure than "
                    "they say.", shown_as or run.path)
    return calibration


def _validation_shares_signers(run):
    from keras_sign.runs.atomic import read_csv

    groups = {}
    for row in read_csv(run.file("split.csv")):
        groups.setdefault(row["split"], set()).add(row["group"])
    return bool(groups.get("val", set()) & groups.get("train", set()))
