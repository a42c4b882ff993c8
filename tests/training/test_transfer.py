"""Transfer learning through the CLI: --init-from, --freeze-backbone, --weights FILE."""

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import SAMPLE, copy_subset, run_cli
from conftest import assert_ok as _ok
from keras_sign.models.registry import IMAGENET_MEAN
from keras_sign.models.saving import load_model
from keras_sign.training.fit import head_layer_names

# Its tests share module-scoped trained runs: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("transfer")

TINY = ["--image-size", "32", "--batch-size", "8", "--seed", "3"]


def _backbone_changes(source, target):
    """Names of the non-head layers whose weights (batch-norm statistics included) differ."""
    head = head_layer_names(target, target.name)
    donor = {layer.name: layer for layer in source.layers}
    return [
        layer.name for layer in target.layers
        if layer.weights and layer.name not in head
        and any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), donor[layer.name].get_weights()))
    ]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    data = copy_subset(SAMPLE, root / "digits012", ["0", "1", "2"], 10)
    run = root / "source"
    _ok(run_cli("train", "--data-dir", data, "--epochs", "1", "--out", run, *TINY))
    return run


@pytest.mark.slow  # moved from the fast tier, which stays under 5 minutes on 2 cores
def test_frozen_backbone_does_not_change_and_the_new_head_trains(source_run, tmp_path):
    other_classes = copy_subset(SAMPLE, tmp_path / "digits34", ["3", "4"], 10)
    run = tmp_path / "frozen"
    _ok(run_cli("train", "--data-dir", other_classes, "--init-from", source_run, "--freeze-backbone", "1",
                "--epochs", "1", "--out", run, *TINY))
    source, tuned = load_model(source_run), load_model(run)
    assert _backbone_changes(source, tuned) == []
    assert tuned.output_shape == (None, 2)
    assert not np.array_equal(source.get_layer("classifier_0").get_weights()[0],
                              tuned.get_layer("classifier_0").get_weights()[0])
    info = json.loads((run / "run.json").read_text())
    source_info = json.loads((source_run / "run.json").read_text())
    assert info["normalization"]["mean"] == source_info["normalization"]["mean"]
    assert "copied from run" in info["normalization"]["source"]

    # Training on resumes from the run's own checkpoint: the --init-from run is no longer needed.
    away = tmp_path / "source-moved"
    shutil.move(source_run, away)
    try:
        _ok(run_cli("train", "--resume", run, "--epochs", "2"))
    finally:
        shutil.move(away, source_run)
    assert json.loads((run / "run.json").read_text())["epochs_trained"] == 2


@pytest.mark.slow
def test_after_the_frozen_epochs_everything_trains(source_run, tmp_path):
    run = tmp_path / "unfrozen"
    _ok(run_cli("train", "--data-dir", json.loads((source_run / "run.json").read_text())["data_root"],
                "--init-from", source_run, "--freeze-backbone", "1", "--epochs", "2", "--finetune-lr", "0.01",
                "--out", run, *TINY))
    assert len(_backbone_changes(load_model(source_run), load_model(run))) > 10
    history = (run / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]
    assert [float(line.split(",")[5]) for line in history[1:]] == pytest.approx([0.002, 0.01])


@pytest.mark.slow
def test_weights_file_starts_training_with_imagenet_normalisation(tmp_path):
    from standin_weights import seeded_state_dict

    spec = json.loads((SAMPLE.parents[3] / "tests" / "parity" / "fixtures" / "shufflenetv2_x0_5.json").read_text())
    state = seeded_state_dict(spec["tensors"], spec["base_seed"], spec["gains"])
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "standin.pth")
    data = copy_subset(SAMPLE, tmp_path / "d", ["5", "6"], 8)
    run = tmp_path / "pretrained"
    _ok(run_cli("train", "--data-dir", data, "--arch", "shufflenetv2_x0_5", "--weights", tmp_path / "standin.pth",
                "--epochs", "1", "--out", run, *TINY))
    info = json.loads((run / "run.json").read_text())
    assert info["normalization"]["mean"] == pytest.approx(list(IMAGENET_MEAN))
    assert info["start"].endswith("standin.pth weights")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--arch", "resnet18"], "holds a mobilenetv3_small model, not resnet18"),
        (["--weights", "imagenet"], "Use either --weights or --init-from"),
        (["--freeze-backbone", "5", "--epochs", "2"], "freeze_backbone must be between 0 and epochs"),
    ],
)
def test_transfer_errors(source_run, extra, message):
    result = run_cli("train", "--init-from", source_run, *extra)
    assert result.returncode == 1 and message in result.stderr
