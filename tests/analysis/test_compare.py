"""`keras_sign.analysis.compare` and `keras-sign compare`: the table and figures of several runs, runs that
lack their evaluation, and the t-SNE grid across datasets."""

import csv
import json
import math
import shutil

import pytest

from analysis_fixtures import digit_run, digits, train_run  # noqa: F401  (fixtures)
from conftest import SAMPLE, copy_subset, run_cli, shared_set
from keras_sign.analysis.compare import compare_runs, tsne_panels
from keras_sign.errors import KerasSignError
from keras_sign.models.flops import count_multiply_adds
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def massey_run(tmp_path_factory):
    """Four letters signed by the three Massey signers, 6 photos each, with a whole signer held out for test."""
    massey, root = shared_set("massey_asl_hands"), tmp_path_factory.mktemp("massey")
    for signer in ("hand1", "hand2", "hand3"):
        copy_subset(massey / signer, root / "hands" / signer, ["a", "b", "c", "d"], 6)
    return train_run(root / "massey_run", data_dir=str(root / "hands"), split="signer", epochs=1)  # evaluated too


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, (path, len(data))


@pytest.mark.xdist_group("analysis")
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
@pytest.mark.xdist_group("analysis")
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
