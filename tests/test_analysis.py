"""The analysis station: evaluate_run's reports, confusion matrix, t-SNE and figures, and `compare`.

Tiny runs are trained once per module, in-process on the TensorFlow backend that conftest sets.
"""

import csv
import json
import math
import shutil

import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from conftest import SAMPLE, copy_subset, run_cli, shared_set
from keras_sign.analysis.compare import compare_runs, tsne_panels
from keras_sign.analysis.evaluate import evaluate_run, tsne_points
from keras_sign.config import TrainConfig
from keras_sign.data.pipeline import make_dataset
from keras_sign.errors import KerasSignError
from keras_sign.inference.features import penultimate_model
from keras_sign.models import build_model
from keras_sign.models.flops import count_multiply_adds
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder
from keras_sign.training.fit import train

# Its tests share module-scoped trained runs: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("analysis")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVALUATION_FILES = ["report.txt", "report.json", "report.csv", "metrics.json", "confusion_matrix.csv",
                    "confusion_matrix.png", "tsne.csv", "tsne.png", "curves.png"]


def _train(out, **settings):
    config = TrainConfig(out=str(out), **{"epochs": 2, "image_size": 32, "batch_size": 8, "seed": 1, **settings})
    run, _ = train(config, "tensorflow", "test")
    return run.path


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return copy_subset(SAMPLE, tmp_path_factory.mktemp("data") / "digits3", ["0", "1", "2"], 10)


@pytest.fixture(scope="module")
def digit_run(digits, tmp_path_factory):
    """MobileNetV3-Small on 3 digits, evaluated: `(run folder, files evaluate_run wrote)`."""
    # 9 test images, so the report and the t-SNE map have something to show
    path = _train(tmp_path_factory.mktemp("runs") / "digits_run", data_dir=str(digits), val_fraction=0.2,
                  test_fraction=0.3)
    return path, evaluate_run(path)[2]


@pytest.fixture(scope="module")
def massey_run(tmp_path_factory):
    """Four letters signed by the three Massey signers, 6 photos each, with a whole signer held out for test."""
    massey, root = shared_set("massey_asl_hands"), tmp_path_factory.mktemp("massey")
    for signer in ("hand1", "hand2", "hand3"):
        copy_subset(massey / signer, root / "hands" / signer, ["a", "b", "c", "d"], 6)
    return _train(root / "massey_run", data_dir=str(root / "hands"), split="signer", epochs=1)  # evaluated too


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


def test_every_figure_is_a_real_png(digit_run):
    pngs = [p for p in digit_run[1] if p.suffix == ".png"]
    assert [p.name for p in pngs] == ["confusion_matrix.png", "tsne.png", "curves.png"]
    for png in pngs:
        _assert_png(png)


@pytest.mark.parametrize("arch, width", [("resnet18", 512), ("shufflenetv2_x0_5", 1024)])
def test_features_of_pooled_architectures_are_the_pooled_output(arch, width):
    model = build_model(arch, 3, 32)
    features, probabilities = penultimate_model(model, arch).outputs
    assert features.shape == (None, width) and probabilities.shape == (None, 3)
    assert model.get_layer("avgpool").output.shape == (None, width)


def test_features_and_probabilities_come_from_one_model(digit_run):
    model = load_model(digit_run[0])
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    features, probabilities = penultimate_model(model, "mobilenetv3_small").predict_on_batch(images)
    assert features.shape == (2, 1024)  # MobileNetV3-Small's hidden classifier layer
    np.testing.assert_allclose(probabilities, model.predict_on_batch(images), atol=1e-6)
    # One two-output view per model, so calibration and evaluation after training share its traced step.
    assert penultimate_model(model, "mobilenetv3_small") is penultimate_model(model, "mobilenetv3_small")
    assert penultimate_model(load_model(digit_run[0]), "mobilenetv3_small") is not \
        penultimate_model(model, "mobilenetv3_small")


def test_tsne_is_seeded_and_keeps_perplexity_below_small_n():
    features = np.random.default_rng(0).normal(size=(50, 16))
    indices, points = tsne_points(features, max_points=20)
    assert len(indices) == 20 == len(set(indices)) and points.shape == (20, 2)
    again = tsne_points(features, max_points=20)
    np.testing.assert_array_equal(indices, again[0])
    np.testing.assert_allclose(points, again[1])
    assert tsne_points(features[:2])[1].shape == (2, 2)


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


def test_the_tsne_points_flag_caps_the_map(digit_run, digits):
    result = run_cli("evaluate", digit_run[0], "--data-dir", digits, "--name", "capped", "--tsne-points", "5")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((digit_run[0] / "tsne-capped.csv").open()))
    assert len(rows) == 5 and len({row["path"] for row in rows}) == 5
    assert json.loads((digit_run[0] / "metrics-capped.json").read_text())["images"] == 30  # all are still scored


def test_compare_writes_table_and_figures_and_evaluates_runs_that_lack_them(digit_run, tmp_path):
    path = digit_run[0]
    older = tmp_path / "older_run"  # as written before evaluation made tsne.csv
    shutil.copytree(path, older)
    for name in ["tsne.csv", "metrics.json"]:
        (older / name).unlink()
    table, written = compare_runs([path, older], out=tmp_path / "cmp")
    assert [p.name for p in written] == ["compare.csv", "compare.md", "val_curves.png", "tsne_grid.png"]
    assert (older / "tsne.csv").is_file() and (older / "metrics.json").is_file()
    for png in written[2:]:
        _assert_png(png)

    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [row["run"] for row in rows] == ["digits_run", "older_run"]
    model = load_model(path)
    history = list(csv.DictReader((path / "history.csv").open()))
    for row, run in zip(rows, [path, older]):
        assert (row["arch"], row["dataset"], row["split"], row["backend"]) == (
            "mobilenetv3_small", "digits3", "stratified", "tensorflow")
        # parameters as `keras-sign models` counts them: trainable weights, no batch-norm statistics
        assert int(row["parameters"]) == sum(math.prod(w.shape) for w in model.trainable_weights)
        assert int(row["parameters"]) < model.count_params()
        assert float(row["gmacs"]) == pytest.approx(count_multiply_adds(model) / 1e9)
        metrics = json.loads((run / "metrics.json").read_text())
        assert float(row["test_accuracy"]) == pytest.approx(metrics["accuracy"])
        assert float(row["macro_f1"]) == pytest.approx(metrics["macro"]["f1"])
        # speed after the first epoch, whose time is mostly graph tracing
        assert float(row["images_per_second"]) == pytest.approx(float(history[1]["images_per_second"]))
        assert float(row["mean_epoch_seconds"]) == pytest.approx(float(history[1]["epoch_seconds"]))
    lines = table.splitlines()
    assert lines[0].startswith("| run | arch |") and len(lines) == 4
    assert table in (tmp_path / "cmp" / "compare.md").read_text()

    with pytest.raises(KerasSignError, match="not empty"):
        compare_runs([path], out=tmp_path / "cmp")


@pytest.mark.slow
def test_signer_split_run_joins_a_digits_run_in_the_tsne_grid(digit_run, massey_run):
    rows = [row for row in csv.DictReader((massey_run / "split.csv").open()) if row["split"] == "test"]
    assert len({row["group"] for row in rows}) == 1  # one whole signer held out
    assert len(list(csv.DictReader((massey_run / "tsne.csv").open()))) == len(rows)
    panels, class_names = tsne_panels([RunFolder(digit_run[0]), RunFolder(massey_run)], ["digits", "massey"])
    assert class_names == ["0", "1", "2", "a", "b", "c", "d"]  # one colour per class name across panels
    assert [len(points) for _, points, _ in panels] == [9, len(rows)]
    assert set(panels[1][2]) <= {3, 4, 5, 6}


def test_compare_command_errors():
    result = run_cli("compare", SAMPLE)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(SAMPLE) in errors[0] and "not a finished run folder" in errors[0]
    result = run_cli("compare")
    assert result.returncode == 2 and "Missing argument 'RUN...'" in result.stderr


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


def test_test_time_augmentation_writes_its_own_files(digit_run):
    path, _ = digit_run
    before = (path / "metrics.json").read_text()
    metrics, _, written = evaluate_run(path, tta=True)
    assert metrics["test_time_augmentation"] and 0 <= metrics["accuracy"] <= 1 and metrics["images"] == 9
    assert (path / "metrics-tta.json").is_file() and (path / "metrics.json").read_text() == before
    with pytest.raises(KerasSignError, match="--name names the files"):
        evaluate_run(path, name="x")
