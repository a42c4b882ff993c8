"""`keras_sign.analysis.evaluate`: reports, confusion matrix and t-SNE that equal scikit-learn on the same
predictions; other folders and datasets, a subset of the classes, phone photos, and two folders of one name.

A tiny run is trained once per session, in-process on the TensorFlow backend that conftest sets
(`analysis_fixtures`, `users_fixtures`).
"""

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import classification_report, confusion_matrix

from analysis_fixtures import digit_run, digits  # noqa: F401  (fixtures)
from conftest import SAMPLE, copy_subset, run_cli
from conftest import assert_ok as _assert_ok
from keras_sign.analysis.evaluate import evaluate_run, tsne_points
from keras_sign.data.pipeline import make_dataset
from keras_sign.errors import KerasSignError
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder
from users_fixtures import CLASSES, save_as_phone_would, users_folder, users_run  # noqa: F401  (fixtures)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


EVALUATION_FILES = ["report.txt", "report.json", "report.csv", "metrics.json", "confusion_matrix.csv",
                    "confusion_matrix.png", "tsne.csv", "tsne.png", "curves.png"]


def _recomputed_predictions(path):
    """True and predicted classes of the run's test split, straight from its model and split.csv."""
    run = RunFolder(path)
    info, class_names = run.read_json("run.json"), run.read_json("classes.json")
    rows = [row for row in csv.DictReader((path / "split.csv").open()) if row["split"] == "test"]
    labels = [class_names.index(row["label"]) for row in rows]
    dataset = make_dataset([f"{info['data_root']}/{row['path']}" for row in rows], labels, len(class_names),
                           info["image_size"], 4)
    probabilities = load_model(run.path).predict(dataset, verbose=0)
    return np.array(labels), probabilities.argmax(axis=-1), class_names


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, (path, len(data))


@pytest.mark.xdist_group("analysis")
def test_report_and_confusion_files_equal_scikit_learn_on_the_same_predictions(digit_run):
    path, written = digit_run
    assert [p.name for p in written] == EVALUATION_FILES
    y_true, y_pred, class_names = _recomputed_predictions(path)
    labels = list(range(len(class_names)))
    expected = classification_report(y_true, y_pred, labels=labels, target_names=class_names, output_dict=True,
                                      zero_division=0)
    report = json.loads((path / "report.json").read_text())
    assert report.keys() == expected.keys()
    for key, value in expected.items():
        assert report[key] == (pytest.approx(value) if key == "accuracy" else pytest.approx(dict(value)))

    rows = list(csv.reader((path / "report.csv").open()))
    assert rows[0] == ["class", "precision", "recall", "f1", "support"]
    assert [row[0] for row in rows[1:]] == [*class_names, "macro avg", "weighted avg"]
    for name, *figures in rows[1:]:
        entry = expected[name]
        assert [float(f) for f in figures] == pytest.approx(
            [entry["precision"], entry["recall"], entry["f1-score"], entry["support"]])

    counts = list(csv.reader((path / "confusion_matrix.csv").open()))
    assert counts[0][1:] == class_names and [row[0] for row in counts[1:]] == class_names
    np.testing.assert_array_equal([[int(c) for c in row[1:]] for row in counts[1:]],
                                  confusion_matrix(y_true, y_pred, labels=labels))

    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"]) and metrics["images"] == len(y_true) == 9
    assert metrics["macro"]["f1"] == pytest.approx(expected["macro avg"]["f1-score"])
    assert metrics["evaluated_on"] == "test split"


@pytest.mark.xdist_group("analysis")
def test_every_figure_is_a_real_png(digit_run):
    pngs = [p for p in digit_run[1] if p.suffix == ".png"]
    assert [p.name for p in pngs] == ["confusion_matrix.png", "tsne.png", "curves.png"]
    for png in pngs:
        _assert_png(png)


def test_tsne_is_seeded_and_keeps_perplexity_below_small_n():
    features = np.random.default_rng(0).normal(size=(50, 16))
    indices, points = tsne_points(features, max_points=20)
    assert len(indices) == 20 == len(set(indices)) and points.shape == (20, 2)
    again = tsne_points(features, max_points=20)
    np.testing.assert_array_equal(indices, again[0])
    np.testing.assert_allclose(points, again[1])
    assert tsne_points(features[:2])[1].shape == (2, 2)


@pytest.mark.xdist_group("analysis")
def test_tsne_csv_covers_the_evaluated_images_or_a_subsample(digit_run, digits):
    path, _ = digit_run
    rows = list(csv.DictReader((path / "tsne.csv").open()))
    assert len(rows) == 9 and {row["label"] for row in rows} <= {"0", "1", "2"}
    assert all(math.isfinite(float(row["x"])) and math.isfinite(float(row["y"])) for row in rows)

    metrics, _, written = evaluate_run(path, data_dir=digits, max_tsne_points=12)
    assert metrics["images"] == 30 and metrics["evaluated_on"] == str(digits.resolve())
    # every file of this evaluation carries the folder's name; the run's training curves do not
    assert [p.name for p in written] == [
        name if name == "curves.png" else name.replace(".", "-digits3.", 1) for name in EVALUATION_FILES
    ]
    subsample = list(csv.DictReader((path / "tsne-digits3.csv").open()))
    assert len(subsample) == 12 and len({row["path"] for row in subsample}) == 12
    assert json.loads((path / "metrics.json").read_text())["images"] == 9  # the test split's files are untouched


@pytest.mark.xdist_group("analysis")
def test_the_tsne_points_flag_caps_the_map(digit_run, digits):
    result = run_cli("evaluate", digit_run[0], "--data-dir", digits, "--name", "capped", "--tsne-points", "5")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((digit_run[0] / "tsne-capped.csv").open()))
    assert len(rows) == 5 and len({row["path"] for row in rows}) == 5
    assert json.loads((digit_run[0] / "metrics-capped.json").read_text())["images"] == 30  # all are still scored


@pytest.mark.xdist_group("analysis")
def test_another_dataset_is_evaluated_on_the_classes_it_shares(digit_run, tmp_path):
    """Cross-dataset: folders matched to the model's classes by name, a YAML map for the rest, unknown
    folders left out and listed; scores over all the model's classes and restricted to those evaluated."""
    path, _ = digit_run
    other = copy_subset(SAMPLE, tmp_path / "other", ["1", "2", "5"], 4)
    (other / "2").rename(other / "two")
    (tmp_path / "map.yaml").write_text("two: '2'\n")
    metrics, text, _ = evaluate_run(path, data_dir=other, name="other", class_map=tmp_path / "map.yaml")
    assert metrics["images"] == 8 and metrics["classes_evaluated"] == 2 and metrics["left_out_folders"] == ["5"]
    assert metrics["accuracy_within_evaluated_classes"] >= metrics["accuracy"]
    assert "restricted to the 2 evaluated" in text
    rows = list(csv.DictReader((path / "report-other.csv").open()))
    assert {row["class"] for row in rows if row["class"] in "012"} == {"1", "2"}

    (tmp_path / "bad.yaml").write_text("two: seven\n")
    with pytest.raises(KerasSignError, match="names classes the model does not have"):
        evaluate_run(path, data_dir=other, name="bad", class_map=tmp_path / "bad.yaml")


@pytest.mark.xdist_group("analysis")
def test_test_time_augmentation_writes_its_own_files(digit_run):
    path, _ = digit_run
    before = (path / "metrics.json").read_text()
    metrics, _, written = evaluate_run(path, tta=True)
    assert metrics["test_time_augmentation"] and 0 <= metrics["accuracy"] <= 1 and metrics["images"] == 9
    assert (path / "metrics-tta.json").is_file() and (path / "metrics.json").read_text() == before
    with pytest.raises(KerasSignError, match="--name names the files"):
        evaluate_run(path, name="x")


@pytest.mark.xdist_group("users_run")
def test_phone_photos_are_evaluated_upright(users_run, tmp_path):
    """The same photos, saved upright and saved as a phone saves them, get the same predictions."""
    upright, phone = tmp_path / "upright", tmp_path / "phone"
    for label in CLASSES:
        (upright / label).mkdir(parents=True)
        (phone / label).mkdir(parents=True)
        for index, source in enumerate(sorted((SAMPLE / label).iterdir())[-4:]):
            picture = Image.open(source).convert("RGB")
            picture.save(upright / label / f"{index}.png")
            save_as_phone_would(picture, phone / label / f"{index}.png", 6 if index % 2 else 8)
    straight = evaluate_run(users_run, upright)[0]
    turned = evaluate_run(users_run, phone)[0]
    assert turned["per_class"] == straight["per_class"] and turned["accuracy"] == straight["accuracy"]


@pytest.mark.xdist_group("users_run")
def test_evaluating_a_subset_of_classes_averages_over_the_classes_present(users_run, tmp_path):
    """Defect 4: absent classes counted as zeros (macro F1 0.29 beside accuracy 0.96)."""
    subset = copy_subset(SAMPLE, tmp_path / "two", ["0", "1"], 5)
    metrics = evaluate_run(users_run, subset)[0]
    assert set(metrics["per_class"]) == {"0", "1"} and metrics["classes_evaluated"] == 2
    recalls = [metrics["per_class"][name]["recall"] for name in ("0", "1")]
    assert metrics["macro"]["recall"] == pytest.approx(np.mean(recalls))
    assert metrics["accuracy"] == pytest.approx(np.mean(recalls))  # 5 images each
    rows = (RunFolder(users_run).file("report-two.csv")).read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "macro avg", "weighted avg"]
    assert "averages over the 2 of the model's 3 classes" in RunFolder(users_run).file("report-two.txt").read_text()


@pytest.mark.xdist_group("users_run")
def test_a_single_class_folder_can_be_evaluated(users_run, tmp_path):
    """Defect 13: 'a classifier needs at least two class folders' is a rule for training only."""
    single = copy_subset(SAMPLE, tmp_path / "only-ones", ["1"], 4)
    metrics = evaluate_run(users_run, single)[0]
    assert metrics["images"] == 4 and list(metrics["per_class"]) == ["1"]


@pytest.mark.xdist_group("users_run")
@pytest.mark.slow
def test_two_folders_with_one_name_do_not_overwrite_each_others_reports(users_run, tmp_path):
    """Defect 7: evalA/test then evalB/test silently replaced the first one's metrics-test.json."""
    first = copy_subset(SAMPLE, tmp_path / "evalA" / "test", CLASSES, 2)
    second = copy_subset(SAMPLE, tmp_path / "evalB" / "test", ["0"], 3)
    evaluate_run(users_run, first)
    kept = RunFolder(users_run).file("metrics-test.json").read_bytes()
    with pytest.raises(KerasSignError, match=r"metrics-test.json already holds the evaluation of .*evalA/test; pass "
                                             r"--name to keep both \(e.g. --name evalB-test\)"):
        evaluate_run(users_run, second)
    assert RunFolder(users_run).file("metrics-test.json").read_bytes() == kept
    evaluate_run(users_run, first)  # the same folder again simply refreshes its files
    metrics = evaluate_run(users_run, second, name="evalB-test")[0]
    assert metrics["images"] == 3 and RunFolder(users_run).file("report-evalB-test.txt").is_file()
    assert json.loads(kept)["images"] == 6


@pytest.mark.slow
def test_signer_split_on_massey_and_evaluation_on_another_folder(massey, tmp_path):
    run = tmp_path / "massey"
    result = run_cli("train", "--data-dir", massey, "--split", "signer", "--epochs", "1", "--image-size", "32",
                     "--out", run)
    _assert_ok(result)
    rows = list(csv.DictReader((run / "split.csv").open()))
    test_signers = {r["group"] for r in rows if r["split"] == "test"}
    assert test_signers and not test_signers & {r["group"] for r in rows if r["split"] != "test"}

    subset = copy_subset(massey / "hand1", tmp_path / "hand1_subset", ["a", "b"], 3)
    result = run_cli("evaluate", run, "--data-dir", subset)
    _assert_ok(result)
    assert json.loads((run / "metrics-hand1_subset.json").read_text())["images"] == 6

    (subset / "unknown_sign").mkdir()
    (subset / "unknown_sign" / "x.jpeg").write_bytes((subset / "a" / next((subset / "a").iterdir()).name).read_bytes())
    result = run_cli("evaluate", run, "--data-dir", subset)  # a class the model does not know is left out, named
    _assert_ok(result)
    assert "Left out 1 class folder(s)" in result.stderr and "unknown_sign" in result.stderr
    metrics = json.loads((run / "metrics-hand1_subset.json").read_text())
    assert metrics["images"] == 6 and metrics["left_out_folders"] == ["unknown_sign"]
