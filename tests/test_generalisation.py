"""Protocols for models that must work on new people: leave-one-signer-out and stratified folds,
`keras-sign crossval`, and the class mapping of cross-dataset evaluation."""

import collections
import csv
import json
import shutil

import numpy as np
import pytest

from conftest import SAMPLE, copy_subset, run_cli
from keras_sign.analysis import calibration
from keras_sign.data.class_map import map_classes, read_class_map
from keras_sign.data.decode import decode_and_resize
from keras_sign.data.split import split_by_group, split_stratified_fold
from keras_sign.errors import KerasSignError
from keras_sign.runs.locks import FolderLock
from keras_sign.studies.crossval import markdown, top_confusions


def _signers(count, per_signer=30, classes=3):
    groups = [f"s{g}" for g in range(count) for _ in range(per_signer)]
    labels = [i % classes for _ in range(count) for i in range(per_signer)]
    return groups, labels


@pytest.mark.parametrize("count", [3, 5])
def test_each_signer_is_tested_once_by_a_model_that_never_saw_them(count):
    groups, labels = _signers(count)
    tested = []
    for signer in sorted(set(groups)):
        assignment = split_by_group(groups, labels, 0.1, 0.1, seed=0, test_groups=[signer])
        by_split = collections.defaultdict(set)
        for group, split in zip(groups, assignment):
            by_split[split].add(group)
        assert by_split["test"] == {signer} and signer not in by_split["train"] | by_split["val"]
        if count >= 4:  # enough signers left to hold one out for validation too
            assert len(by_split["val"]) == 1 and not by_split["val"] & by_split["train"]
        else:
            assert by_split["val"] <= by_split["train"]  # val drawn from the training signers' images
        tested.append(signer)
    assert sorted(tested) == sorted(set(groups))


def test_test_signers_must_exist_and_leave_someone_to_learn_from():
    groups, labels = _signers(3)
    with pytest.raises(KerasSignError, match="unknown"):
        split_by_group(groups, labels, 0.1, 0.1, 0, test_groups=["nobody"])
    with pytest.raises(KerasSignError, match="some, not all"):
        split_by_group(groups, labels, 0.1, 0.1, 0, test_groups=["s0", "s1", "s2"])


def test_stratified_folds_partition_the_images():
    labels = [i % 4 for i in range(103)]
    tests = []
    for fold in range(1, 6):
        assignment = split_stratified_fold(labels, fold, 5, 0.1, seed=3)
        tests.append({i for i, split in enumerate(assignment) if split == "test"})
        assert {split for split in assignment} == {"train", "val", "test"}
        counts = collections.Counter(labels[i] for i in tests[-1])
        assert max(counts.values()) - min(counts.values()) <= 1  # stratified
    assert sum(len(t) for t in tests) == 103 and set().union(*tests) == set(range(103))


def test_class_names_match_exactly_then_ignoring_case_then_by_the_map(tmp_path):
    model = ["0", "1", "a", "b", "space", "nothing"]
    mapped, left = map_classes(["A", "b", "0", "del", "SPACE"], model)
    assert mapped == {"A": "a", "b": "b", "0": "0", "SPACE": "space"} and left == ["del"]
    (tmp_path / "map.yaml").write_text("blank: nothing\nA: null\n'0': a\n")
    explicit = read_class_map(tmp_path / "map.yaml")
    mapped, left = map_classes(["A", "blank", "0"], model, explicit)
    assert mapped == {"blank": "nothing", "0": "a"} and left == ["A"]
    with pytest.raises(KerasSignError, match="None of the class folders"):
        map_classes(["x", "y"], model)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(KerasSignError, match="must hold a mapping"):
        read_class_map(tmp_path / "list.yaml")


@pytest.fixture
def three_signers(tmp_path):
    """The embedded sample's photos of 3 digits, dealt out to 3 signer folders."""
    root = tmp_path / "signers"
    for number, signer in enumerate(["ann", "bob", "cy"]):
        copy_subset(SAMPLE, tmp_path / "all" / signer, ["0", "1", "2"], 12)
        for folder in (tmp_path / "all" / signer).iterdir():
            (root / signer / folder.name).mkdir(parents=True)
            for photo in sorted(folder.iterdir())[number * 4:(number + 1) * 4]:
                photo.rename(root / signer / folder.name / photo.name)
    return root


@pytest.mark.slow
def test_crossval_trains_a_run_per_signer_pools_them_and_keeps_finished_folds(three_signers, tmp_path):
    out = tmp_path / "cv"
    args = ["crossval", "--data-dir", three_signers, "--epochs", "1", "--image-size", "32", "--batch-size", "8",
            "--out", out]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "crossval.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["signer-ann", "signer-bob", "signer-cy"]
    assert all(f["test_images"] == 12 for f in summary["folds"])
    for signer in ("ann", "bob", "cy"):
        with (out / f"signer-{signer}" / "split.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        assert {row["group"] for row in rows if row["split"] == "test"} == {signer}
        assert signer not in {row["group"] for row in rows if row["split"] != "test"}
    with (out / "confusion_matrix.csv").open(newline="") as file:
        pooled = list(csv.reader(file))[1:]
    assert sum(int(count) for row in pooled for count in row[1:]) == 36
    assert "mean +- std" in first.stdout and (out / "confusion_matrix.png").stat().st_size > 1000

    model = (out / "signer-bob" / "model.keras").stat().st_mtime_ns
    again = run_cli(*args)
    assert again.returncode == 0 and (out / "signer-bob" / "model.keras").stat().st_mtime_ns == model
    assert json.loads((out / "crossval.json").read_text())["accuracy"] == summary["accuracy"]

    changed = run_cli(*args[:-2], "--lr", "0.01", "--out", out)
    assert changed.returncode != 0 and "was trained with other settings (lr)" in changed.stderr

    with FolderLock(out, "crossval folder"):
        held = run_cli(*args)
    assert held.returncode != 0 and "another process" in held.stderr

    from keras_sign.analysis.compare import compare_runs

    evaluated = run_cli("evaluate", out / "signer-ann", "--data-dir", three_signers / "bob", "--name", "bob")
    assert evaluated.returncode == 0, evaluated.stderr
    table, _ = compare_runs([out / "signer-ann", out / "signer-cy"], out=tmp_path / "cmp")
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert all(row["crossval"].endswith("(3 folds)") for row in rows)
    assert rows[0]["other_data"].startswith("bob ") and rows[1]["other_data"] == ""


@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds must be 'signer' or a number of folds >= 2"),
    (["--test-signers", "ann"], "crossval chooses each fold's test split itself"),
    ([], "has 0 signer folder(s)"),
    # Folds 1-3 trained, then fold 4 had no test image and ended in FileNotFoundError (metrics.json).
    (["--folds", "5"], "--folds 5 leaves 2 fold(s) without test images: the largest class of "),
    (["--folds", "50", "--limit-per-class", "2"], "has 2 images (at most 2 per class with --limit-per-class); use "
                                                  "--folds 2 or fewer"),
])
def test_crossval_bad_input_is_one_line(args, message, tmp_path):
    data = copy_subset(SAMPLE, tmp_path / "flat", ["0", "1"], 3)
    result = run_cli("crossval", "--data-dir", data, "--out", tmp_path / "cv", *args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list((tmp_path / "cv").glob("fold-*"))  # refused before any fold trained


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


@pytest.mark.parametrize("overrides, message", [
    ({"fold": "7/5"}, "fold must be 'i/k'"),
    ({"fold": "1/1"}, "fold must be 'i/k'"),
    ({"fold": "1/5", "test_signers": "a"}, "either --test-signers or --fold"),
    ({"augment_policy": "wild"}, "augment_policy must be one of light, strong"),
    ({"mix": "blend"}, "mix must be one of none, mixup, cutmix"),
    ({"mix": "mixup", "mix_alpha": 0}, "mix_alpha must be positive"),
])
def test_fold_and_augmentation_settings_are_checked(overrides, message):
    from keras_sign.config import load_config

    with pytest.raises(KerasSignError, match=message):
        load_config(overrides=overrides)


def test_the_most_frequent_confusions_come_first():
    counts = np.array([[5, 2, 0], [3, 4, 3], [0, 0, 9]])
    top = top_confusions(["0", "o", "v"], ["0", "o", "v"], counts, limit=2)
    assert top == [{"true": "o", "predicted": "0", "count": 3}, {"true": "o", "predicted": "v", "count": 3}]
    fold = {"fold": "signer-a", "test_images": 4, "accuracy": 0.5, "macro_f1": 0.5}
    summary = {"folds": [fold], "accuracy": {"mean": 0.5, "std": 0.0}, "macro_f1": {"mean": 0.5, "std": 0.0}}
    assert "o as 0 3, o as v 3" in markdown({**summary, "top_confusions": top})


@pytest.mark.slow
def test_crossvals_make_one_ensemble_per_fold_scored_on_its_held_out_signer(three_signers, tmp_path):
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.runs.folder import RunFolder

    common = ["--data-dir", three_signers, "--epochs", "2", "--image-size", "32", "--batch-size", "8"]
    crossvals = [tmp_path / "mobilenet", tmp_path / "resnet"]
    for out, extra in zip(crossvals, (["--arch", "mobilenetv3_small"], ["--arch", "resnet18", "--seed", "5"])):
        result = run_cli("crossval", *common, *extra, "--out", out)
        assert result.returncode == 0, result.stderr[-2000:]
    ensembles = tmp_path / "ensembles"
    result = run_cli("ensemble", *crossvals, "--out", ensembles)
    assert result.returncode == 0 and "mean +- std" in result.stdout, result.stderr[-2000:]
    summary = json.loads((ensembles / "crossval.json").read_text())
    assert summary["arch"] == "ensemble" and [f["fold"] for f in summary["folds"]] == ["signer-ann", "signer-bob",
                                                                                         "signer-cy"]
    for fold in summary["folds"]:  # each scored on its held-out signer by the mean of its members' answers
        run = RunFolder(ensembles / fold["fold"])
        test = run.split_files("test")
        assert {path.parent.parent.name for path in test.paths} == {fold["fold"].removeprefix("signer-")}
        images = np.stack([decode_and_resize(str(p), o, 32).numpy() for p, o in zip(test.paths, test.orientations)])
        mean = np.mean([load_classifier(c / fold["fold"]).model.predict(images) for c in crossvals], axis=0)
        assert fold["accuracy"] == pytest.approx(np.mean(mean.argmax(1) == np.array(test.labels)))
    built = (ensembles / "signer-bob" / "model.keras").stat().st_mtime_ns
    assert run_cli("ensemble", *crossvals, "--out", ensembles).returncode == 0  # finished folds are kept
    assert (ensembles / "signer-bob" / "model.keras").stat().st_mtime_ns == built
    shutil.rmtree(ensembles / "signer-cy")  # as a build killed mid-way leaves it: a staging folder, no fold
    (ensembles / ".signer-cy.partial-1").mkdir()
    assert run_cli("ensemble", *crossvals, "--out", ensembles).returncode == 0
    assert (ensembles / "signer-cy" / "metrics.json").is_file() and not list(ensembles.glob(".*partial*"))

    other = run_cli("crossval", *common, "--folds", "2", "--out", tmp_path / "stratified")
    assert other.returncode == 0, other.stderr[-2000:]
    shutil.copytree(ensembles, tmp_path / "swapped")
    for args, out, message in [
        ([crossvals[0], tmp_path / "stratified"], tmp_path / "e2", "has other folds than"),
        ([crossvals[0], crossvals[1] / "signer-ann"], tmp_path / "e2", "run folders or crossval folders"),
        ([crossvals[1], crossvals[0]], tmp_path / "swapped", "holds ensembles of other runs"),
    ]:
        result = run_cli("ensemble", *args, "--out", out)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
