"""The real command line in fresh processes: train + evaluate on every backend, and user errors."""

import csv
import json

import pytest

from conftest import SAMPLE, copy_subset, run_cli

TINY = ["--epochs", "2", "--image-size", "32", "--batch-size", "8", "--seed", "1"]


def _assert_ok(result):
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_every_backend_trains_comparably_and_its_model_evaluates_under_another(tmp_path, monkeypatch):
    """The same command, seed and data on jax, tensorflow and torch: each learns, about equally."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)  # JAX compiled as users run it (conftest turns LLVM's passes off)
    data = copy_subset(SAMPLE, tmp_path / "digits3", ["0", "1", "2"], 20)
    late_accuracy = {}
    for backend in ("tensorflow", "jax", "torch"):
        run = tmp_path / backend
        _assert_ok(run_cli("train", "--data-dir", data, "--out", run, "--backend", backend, *TINY, "--epochs", "8"))
        for name in ["config.yaml", "model.keras", "classes.json", "split.csv", "history.csv", "metrics.json",
                     "run.json", "confusion_matrix.png", "tsne.png", "curves.png"]:
            assert (run / name).is_file(), name
        info = json.loads((run / "run.json").read_text())
        assert info["backend"] == backend and info["status"] == "finished"
        assert json.loads((run / "classes.json").read_text()) == ["0", "1", "2"]
        history = list(csv.DictReader((run / "history.csv").open()))
        assert [row["epoch"] for row in history] == [str(e) for e in range(1, 9)]
        assert float(history[-1]["images_per_second"]) > 0
        late_accuracy[backend] = sum(float(row["accuracy"]) for row in history[-3:]) / 3
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["images"] == 6 and set(metrics["per_class"]) == {"0", "1", "2"}

        # The saved model loads and scores the same split identically under another backend.
        other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[backend]
        result = run_cli("evaluate", run, backend=other)
        _assert_ok(result)
        assert "accuracy" in result.stdout and "(test split)" in result.stdout
        assert json.loads((run / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    # Training accuracy over the last 3 of 8 epochs (3 classes, chance 0.33): measured 0.45 / 0.44 / 0.47.
    assert min(late_accuracy.values()) > 0.38, late_accuracy
    assert max(late_accuracy.values()) - min(late_accuracy.values()) < 0.2, late_accuracy


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


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data-dir", "/no/such/folder"], "does not exist"),
        (["train", "--dataset", "letters"], "Unknown dataset 'letters'"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "--arch", "vgg16", "--epochs", "1"], "Unknown architecture 'vgg16'"),
        (["train", "--dataset", "fingerspelling", "--cache-dir", "/no/cache"], "keras-sign data download"),
        (["evaluate", str(SAMPLE)], "is not a finished run folder"),
    ],
)
def test_user_errors_print_one_line_and_exit_non_zero(args, message):
    result = run_cli(*args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_data_validate_and_list():
    result = run_cli("data", "validate", "digits")
    _assert_ok(result)
    assert "10 classes, 400 images" in result.stdout and "LICENSE.txt" in result.stdout
    result = run_cli("data", "list")
    _assert_ok(result)
    assert "fingerspelling" in result.stdout


@pytest.mark.parametrize("arch", ["resnet18", "shufflenetv2"])
@pytest.mark.slow
def test_other_architectures_train_and_reload(arch, small_digits, tmp_path):
    run = tmp_path / arch
    _assert_ok(run_cli("train", "--data-dir", small_digits, "--arch", arch, "--out", run, *TINY))
    assert json.loads((run / "run.json").read_text())["arch"] == {"resnet18": "resnet18",
                                                                   "shufflenetv2": "shufflenetv2_x1_0"}[arch]
    _assert_ok(run_cli("evaluate", run, backend="torch"))  # custom layers load under another backend


def test_models_table_counts_parameters_and_flops_from_the_graph():
    result = run_cli("models")
    _assert_ok(result)
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    # torchvision publishes 11,689,512 parameters and 1.814 GFLOPS (multiply-adds) for resnet18 at 224.
    assert "11,689,512" in rows["resnet18"] and "| 1.814 |" in rows["resnet18"]
    assert "| 0.057 |" in rows["mobilenetv3_small"] and "mobilenetv3" in rows["mobilenetv3_small"]
    assert len([name for name in rows if name.startswith("shufflenetv2_x")]) == 4
