"""Long-run training features through the real command line: resume after kill -9, early stopping,
schedules, mixed precision, smoke mode, and data parallel training on two forced host devices."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SAMPLE, copy_subset, run_cli
from keras_sign.config import TrainConfig, load_config
from keras_sign.errors import KerasSignError
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder
from keras_sign.training.fit import compile_model, make_optimizer
from keras_sign.training.preparation import open_for_resume

# ResNet-18 has no dropout, so a deterministic run depends on nothing but the seed.
DETERMINISTIC = ["--arch", "resnet18", "--image-size", "32", "--batch-size", "4", "--epochs", "2", "--seed", "5",
                 "--deterministic", "--backend", "tensorflow"]


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr


def _history(run):
    with open(run / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


def _weights(run):
    return load_model(run).get_weights()


@pytest.fixture(scope="module")
def digits60(tmp_path_factory):
    """3 classes x 20 real photos: about 12 steps of batch 4 per epoch, a few seconds on 2 cores."""
    return copy_subset(SAMPLE, tmp_path_factory.mktemp("resume") / "digits", ["0", "1", "2"], 20)


def test_resume_after_kill_9_mid_epoch_equals_an_uninterrupted_run(digits60, tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    _ok(run_cli("train", "--data-dir", digits60, "--out", uninterrupted, *DETERMINISTIC))

    interrupted = tmp_path / "interrupted"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_sign.cli", "train", "--data-dir", digits60, "--out", interrupted, *DETERMINISTIC,
         "--checkpoint-every", "1"],  # epoch 1 is checkpointed however quickly it trains
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (interrupted / "checkpoint" / "state.json").is_file():
        assert process.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2, whose steps take about a second
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads((interrupted / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and not (interrupted / "model.keras").exists()

    _ok(run_cli("train", "--resume", interrupted))
    resumed, reference = _history(interrupted), _history(uninterrupted)
    assert [row["epoch"] for row in resumed] == ["1", "2"]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert [row[column] for row in resumed] == [row[column] for row in reference], column
    for after_resume, straight in zip(_weights(interrupted), _weights(uninterrupted)):
        np.testing.assert_array_equal(after_resume, straight)
    info = json.loads((interrupted / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs_trained"] == 2
    assert sorted(p.name for p in (interrupted / "checkpoint").iterdir()) == ["best.npz", "epoch-0002.npz",
                                                                             "state.json"]
    best = load_model(Path(interrupted) / "best.keras")  # the best epoch's model, beside model.keras
    assert best.count_params() == load_model(interrupted).count_params()

    # Nothing left to do: a clear error; a larger --epochs trains on.
    result = run_cli("train", "--resume", interrupted)
    assert result.returncode != 0 and "already trained 2 epoch(s)" in result.stderr
    result = run_cli("train", "--resume", interrupted, "--lr", "0.1")
    assert result.returncode != 0 and "only --epochs, --patience, --checkpoint-every, --backend, --image-cache, --image-cache-dir may" in result.stderr


def test_early_stopping_stops_and_the_schedule_is_recorded(small_digits, tmp_path):
    run = tmp_path / "run"
    # With the backbone (and its batch norm) frozen and a learning rate this small, validation accuracy
    # cannot change, so patience 1 stops after epoch 2.
    _ok(run_cli("train", "--data-dir", small_digits, "--out", run, "--epochs", "6", "--patience", "1",
                "--freeze-backbone", "6", "--lr", "1e-9", "--schedule", "cosine", "--warmup-epochs", "1", "--image-size", "32",
                "--batch-size", "8", "--optimizer", "adamw", "--label-smoothing", "0.1",
                "--image-cache", "disk", "--image-cache-dir", tmp_path / "cache"))
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # training and validation images, on disk
    history = _history(run)
    assert [row["epoch"] for row in history] == ["1", "2"]
    info = json.loads((run / "run.json").read_text())
    assert info["stopped_early"] and info["epochs_trained"] == 2 and info["best_epoch"] == 1
    assert 0 < info["seconds_to_first_step"] < info["total_seconds"]
    assert 0 < info["checkpoint_seconds"] < info["total_seconds"]
    rates = [float(row["learning_rate"]) for row in history]
    assert rates[0] < rates[1]  # epoch 1 warms up (its first step at lr / 3), epoch 2 starts at the peak
    trained = load_model(run)
    compile_model(trained, load_config(run / "config.yaml"), 1e-9, 10)  # as a resume compiles it
    assert type(trained.optimizer).__name__ == "FusedAdamW" and trained.loss.label_smoothing == 0.1

    # A cosine schedule was laid out over 6 epochs: resuming with more would train at its final rate.
    result = run_cli("train", "--resume", run, "--epochs", "9")
    assert result.returncode != 0 and "cannot be stretched to 9" in result.stderr


def test_step_schedule_and_mixed_precision_on_the_sample_and_no_resume_under_another_backend(small_digits, tmp_path):
    run = tmp_path / "run"
    _ok(run_cli("train", "--data-dir", small_digits, "--out", run, "--epochs", "4", "--schedule", "step", "--lr", "1e-3",
                "--mixed-precision", "--image-size", "32", "--batch-size", "8"))
    # Each epoch's rate at its first step: divided by 10 at half and at three quarters of the steps.
    assert [float(row["learning_rate"]) for row in _history(run)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    assert json.loads((run / "run.json").read_text())["dtype_policy"] == "mixed_bfloat16"
    model = load_model(run)
    assert model.get_layer("features_0_0").compute_dtype == "bfloat16" and model.output.dtype == "float32"
    compile_model(model, load_config(run / "config.yaml"), 1e-3, 10)
    assert model.optimizer.weight_decay is None  # Adam decays no weights unless asked

    files = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    config = load_config(run / "config.yaml", {"out": str(run), "epochs": 6})
    with contextlib.ExitStack() as held, pytest.raises(KerasSignError, match="trained with the tensorflow backend; "
                                                                                "resume it with --backend tensorflow"):
        open_for_resume(config, "jax", held)
    assert files == {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}


def test_weight_decay_is_none_for_adam_and_pytorchs_default_for_adamw():
    assert make_optimizer(TrainConfig(), 1e-3).weight_decay is None
    assert make_optimizer(TrainConfig(weight_decay=1e-4), 1e-3).weight_decay == 1e-4
    assert make_optimizer(TrainConfig(optimizer="adamw"), 1e-3).weight_decay == 0.01
    assert make_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.0), 1e-3).weight_decay == 0.0


@pytest.mark.slow
def test_smoke_mode_and_mixed_precision_on_signer_data(massey, tmp_path):
    run = tmp_path / "run"
    _ok(run_cli("train", "--data-dir", massey, "--smoke", "--mixed-precision", "--out", run, "--epochs", "30"))
    info = json.loads((run / "run.json").read_text())
    assert info["dtype_policy"] == "mixed_bfloat16" and info["split_method"] == "signer"
    assert sum(info["split_counts"].values()) <= 10 * 36 * 3  # 10 images per class and signer
    assert len(_history(run)) == 1 and np.isfinite(float(_history(run)[0]["loss"]))
    model = load_model(run)
    assert model.get_layer("features_0_0").compute_dtype == "bfloat16" and model.output.dtype == "float32"


DATA_PARALLEL = """
import json, sys
from keras_sign.backend import select_backend
select_backend("jax")
import keras
from keras_sign.config import load_config
from keras_sign.training.fit import train
data, out = sys.argv[1], sys.argv[2]
for devices in ("1", "2"):
    config = load_config(overrides=dict(data_dir=data, arch="shufflenetv2_x0_5", image_size=64, batch_size=12,
                                        epochs=1, devices=devices, out=f"{out}/devices{devices}", seed=4))
    run, _ = train(config, "jax", "test")
    print(json.dumps(json.loads((run.path / "run.json").read_text())["devices"]))
"""


@pytest.mark.slow
def test_data_parallel_on_two_host_devices_matches_one_device(small_digits, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS=os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", DATA_PARALLEL, str(small_digits), str(tmp_path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()[-2:]] == [["cpu:0"], ["cpu:0", "cpu:1"]]
    # Same global batch, same seed: the same training up to floating-point summation order. Adam's
    # first steps move each weight by about +-lr whatever the gradient's size, so a gradient near 0
    # can flip sign between the two; compare what the models compute rather than single weights.
    # (At 32 px ShuffleNet's last batch norms see 1x1 maps of 8 images, so rounding differences grow
    # chaotically there; 64 px and batch 12 keep the comparison well conditioned.)
    import keras

    runs = [tmp_path / f"devices{n}" for n in (1, 2)]
    losses = [float(_history(run)[0]["loss"]) for run in runs]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)
    models = [load_model(run) for run in runs]
    images = np.random.default_rng(0).uniform(0, 255, (6, 64, 64, 3)).astype("float32")
    one, two = (keras.ops.convert_to_numpy(model(images)) for model in models)
    assert np.abs(one - two).max() < 1e-3
    variances = [[keras.ops.convert_to_numpy(w) for w in m.non_trainable_weights if "moving_variance" in w.path]
                 for m in models]
    for a, b in zip(*variances):  # batch statistics over the global batch, not per device
        np.testing.assert_allclose(a, b, rtol=1e-2)


def test_data_parallel_needs_jax_and_a_divisible_batch(small_digits, tmp_path):
    result = run_cli("train", "--data-dir", small_digits, "--devices", "2", "--backend", "tensorflow",
                     "--out", tmp_path / "r")
    assert result.returncode != 0 and "needs the JAX backend" in result.stderr


def test_paper_configs_are_the_study_setting():
    from keras_sign.config import load_config

    configs = sorted(path for path in (REPO / "configs" / "paper").glob("*.yaml") if not path.name.startswith("sweep-"))
    assert len(configs) == 9
    loaded = [load_config(path) for path in configs]
    assert {(c.arch, c.dataset) for c in loaded} == {
        (arch, dataset) for arch in ("resnet18", "mobilenetv3_small", "shufflenetv2_x1_0")
        for dataset in ("alphabet", "numbers", "fingerspelling")
    }
    assert {(c.batch_size, c.lr, c.epochs, c.optimizer, c.image_size, c.center_crop, c.augment) for c in loaded} == {
        (64, 1e-3, 10, "adam", 224, True, False)
    }


def test_reproduce_trains_each_config_then_compares_and_keeps_finished_runs(small_digits, tmp_path):
    configs = []
    # ResNet-18 twice: of the three architectures it traces its first step fastest
    for name, lr in (("a", 1e-3), ("b", 2e-3)):
        path = tmp_path / f"digits-{name}.yaml"
        path.write_text(f"arch: resnet18\ndata_dir: {small_digits}\nepochs: 5\nlr: {lr}\n")
        configs.append(path)
    sweep = tmp_path / "sweep-digits.yaml"
    sweep.write_text(f"data_dir: {small_digits}\nlr: [1.0e-2, 1.0e-3]\n")
    out = tmp_path / "out"
    result = run_cli("reproduce", *configs, sweep, "--out", out, "--smoke", "--backend", "tensorflow")
    _ok(result)
    assert "is a sweep (lists of values): left out" in result.stderr and not (out / "sweep-digits").exists()
    for name in ("a", "b"):
        run = out / f"digits-{name}"
        assert "smoke: true" in (run / "config.yaml").read_text()
        assert len(_history(run)) == 1  # --smoke: one epoch
        for name in ("confusion_matrix.png", "tsne.png", "curves.png", "report.csv"):
            assert (run / name).is_file(), name
    compares = list(out.glob("compare-*"))
    assert len(compares) == 1 and (compares[0] / "compare.md").read_text().count("| digits-") == 2
    stamp = (out / "digits-b" / "model.keras").stat().st_mtime_ns

    # Again, after one run was killed while it evaluated (its last epoch checkpointed, no model.keras yet): the
    # finished run is kept, the other resumed and finished without training again, and both are compared anew.
    interrupted = RunFolder(out / "digits-a")
    history = interrupted.file("history.csv").read_bytes()
    interrupted.file("model.keras").unlink()
    interrupted.write_json("run.json", {**interrupted.read_json("run.json"), "status": "training"})
    time.sleep(1)  # the next comparison folder gets another time stamp
    result = run_cli("reproduce", *configs, "--out", out, "--smoke", "--backend", "tensorflow")
    _ok(result)
    assert f"{out / 'digits-b'} is finished: kept" in result.stderr
    assert (out / "digits-b" / "model.keras").stat().st_mtime_ns == stamp
    assert f"{out / 'digits-a'} was interrupted: resuming it" in result.stderr
    assert interrupted.read_json("run.json")["status"] == "finished" and interrupted.file("model.keras").is_file()
    assert interrupted.file("history.csv").read_bytes() == history  # not one more epoch
    assert len(list(out.glob("compare-*"))) == 2


class _Terminal(io.StringIO):
    """stderr as a terminal shows it: progress bars draw only where `isatty()` is true."""

    def isatty(self):
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bars_follow_each_epochs_steps_and_a_scan_on_a_terminal_only(terminal, monkeypatch):
    import keras

    from keras_sign.data.scan import scan_folder
    from keras_sign.training.fit import EpochProgress

    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    images, labels = np.ones((12, 4), "float32"), np.eye(3)[[0, 1, 2] * 4]
    model.fit(images, labels, batch_size=4, epochs=2, verbose=0, callbacks=[EpochProgress(2, 3)])
    scan_folder(SAMPLE)
    shown = stderr.getvalue()
    if terminal:
        assert "epoch 1/2" in shown and "epoch 2/2" in shown and "/3 [" in shown and "scanning digits" in shown
    else:  # (log lines may reach stderr; bars may not)
        assert "epoch 1/2" not in shown and "scanning" not in shown


def test_resuming_a_smoke_run_gives_the_real_reason(small_digits, tmp_path):
    """`train --resume SMOKE_RUN --epochs 6` answered "already trained 1 epoch(s); pass a larger --epochs"."""
    run = tmp_path / "smoke"
    _ok(run_cli("train", "--data-dir", small_digits, "--smoke", "--out", run, fresh=True))
    result = run_cli("train", "--resume", run, "--epochs", "6", fresh=True)
    assert result.returncode == 1 and "is a --smoke run, and smoke trains 1 epoch(s) whatever --epochs says" in \
        result.stderr and f"--init-from {run}" in result.stderr, result.stderr[-2000:]
    # Without --backend, a resume runs the backend the run recorded, and says so (not "requested with --backend").
    result = run_cli("train", "--resume", run, fresh=True)
    assert "backend tensorflow (the backend the run was trained with" in result.stderr, result.stderr[-2000:]
    assert "already trained 1 epoch(s)" in result.stderr
