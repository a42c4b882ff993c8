"""`keras-sign ensemble` (`keras_sign.studies.ensembles`): runs of other architectures and sizes averaged into
one plain Keras model, and one ensemble per fold of crossvals."""

import csv
import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import SAMPLE, copy_subset, locked_by_another_process, run_cli
from keras_sign.data.decode import decode_and_resize
from keras_sign.inference.classifier import load_classifier
from keras_sign.models.flops import count_multiply_adds
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder

CLASSES = ["0", "1", "2"]

# The tests share the module's two trained runs: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("ensemble")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """ResNet-18 at 32 px and MobileNetV3-Small at 40 px, trained on one split (same data, split and seed)
    with 15 validation photos: enough to calibrate on."""
    root = tmp_path_factory.mktemp("ensemble")
    data = copy_subset(SAMPLE, root / "digits", CLASSES, 16)
    (root / "config.yaml").write_text("val_fraction: 0.3\n")
    # Models this small are chaotic: the CPU's floating-point kernels alone decide whether a seed's model tells
    # the photos apart or answers every photo alike (MobileNetV3-Small after 8 epochs did on one machine, not on
    # another). The next seed is tried until both members tell them apart.
    for seed in (3, 4, 5, 6):
        runs = []
        for arch, size in (("resnet18", 32), ("mobilenetv3_small", 40)):
            run = root / f"{arch}-{size}-seed{seed}"
            result = run_cli("train", "--config", root / "config.yaml", "--data-dir", data, "--arch", arch, "--epochs",
                             "16", "--image-size", size, "--batch-size", "8", "--seed", seed, "--no-augment", "--out", run)
            assert result.returncode == 0, result.stderr[-2000:]
            runs.append(run)
        if all(np.ptp(load_classifier(run).predict(_images(data, size)[1]), axis=0).max() > 0.05
               for run, size in zip(runs, (32, 40))):
            return data, runs
    raise AssertionError("no seed gave two members that tell the photos apart")


def _images(data, size, per_class=2):
    paths = [path for name in CLASSES for path in sorted((data / name).iterdir())[:per_class]]
    return paths, np.stack([decode_and_resize(str(path), 1, size).numpy() for path in paths])


def test_an_ensemble_averages_its_members_and_loads_anywhere_a_model_does(two_runs, tmp_path):
    data, (small, large) = two_runs
    out = tmp_path / "ensembles" / "digits"
    result = run_cli("ensemble", small, large, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ensemble of 2 models (resnet18 32 px, mobilenetv3_small 40 px), input 40 px" in result.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["digits"]  # no staging folder left

    ensemble = load_classifier(out)
    assert ensemble.class_names == CLASSES and ensemble.image_size == 40
    photos, images = _images(data, 40)
    # The 32 px member sees the 40 px input resized inside the model (antialiased bilinear, Keras'
    # Resizing layer), not the photo resized from its full size as its own classifier does.
    resized = keras.layers.Resizing(32, 32, antialias=True)(images.astype(np.float32))
    mean = (load_classifier(small).model.predict(resized) + load_classifier(large).model.predict(images)) / 2
    assert np.ptp(mean, axis=0).max() > 0.05  # members that tell the photos apart
    np.testing.assert_allclose(ensemble.model.predict(images), mean, atol=1e-5)  # as trained: no temperature

    # Calibrated on the members' shared validation split: a temperature and a reject threshold, used by predict.
    record = json.loads((out / "model.json").read_text())
    assert record["calibration"]["images"] == 15 and record["calibration"]["fitted_on"] == "validation split"
    assert ensemble.unsure_below == record["calibration"]["reject"]["threshold"]
    assert ensemble.temperature == record["calibration"]["temperature"]
    assert [m["arch"] for m in record["members"]] == ["resnet18", "mobilenetv3_small"]
    assert (out / "labels.txt").read_text().split() == CLASSES
    predicted = run_cli("predict", out, photos[0], "--format", "jsonl")
    answer = json.loads(predicted.stdout)
    assert predicted.returncode == 0 and answer["predictions"][0]["class"] in CLASSES and "unsure" in answer

    # Plain Keras loads it, in a process that never imported keras-sign.
    check = ("import keras, numpy as np, sys; m = keras.saving.load_model(sys.argv[1]); "
             "print(m.predict(np.load(sys.argv[2]), verbose=0).argmax(1).tolist())")
    np.save(tmp_path / "images.npy", images.astype(np.float32))
    plain = subprocess.run([sys.executable, "-c", check, out / "model.keras", tmp_path / "images.npy"],
                           capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == mean.argmax(1).tolist()


@pytest.mark.slow  # moved from the fast tier, which stays under 5 minutes on 2 cores
def test_an_ensemble_folder_is_evaluated_calibrated_exported_and_compared_as_a_run(two_runs, tmp_path):
    data, (small, large) = two_runs
    out = tmp_path / "ensemble"
    assert run_cli("ensemble", small, large, "--out", out).returncode == 0
    assert (out / "split.csv").read_text() == (small / "split.csv").read_text()  # the members' shared split

    # evaluate scores the members' test split with the mean of their probabilities.
    result = run_cli("evaluate", out)
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunFolder(out)
    test = run.split_files("test")
    images = np.stack([decode_and_resize(str(p), o, 40).numpy() for p, o in zip(test.paths, test.orientations)])
    members = [load_classifier(small).model, load_classifier(large).model]
    mean = (members[0].predict(keras.layers.Resizing(32, 32, antialias=True)(images.astype(np.float32)))
            + members[1].predict(images)) / 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == len(test.paths) > 0
    assert metrics["accuracy"] == pytest.approx(np.mean(mean.argmax(1) == np.array(test.labels)))
    assert (out / "tsne.csv").is_file() and "calibration" in metrics  # the members' features; its calibration

    # Refitting the calibration updates the copy in model.json that predict reads.
    assert run_cli("calibrate", out, "--max-false-accept", "0.5").returncode == 0
    calibration = json.loads((out / "calibration.json").read_text())
    assert json.loads((out / "model.json").read_text())["calibration"] == calibration
    assert load_classifier(out).unsure_below == calibration["reject"]["threshold"]

    # A TFLite of builtin ops (the in-model resize included), verified against the ensemble.
    result = run_cli("export", out, "--out", tmp_path / "exports")
    assert result.returncode == 0, result.stderr[-2000:]
    bundle = json.loads((tmp_path / "exports" / "ensemble-tflite-none" / "model.json").read_text())
    assert bundle["verified"] and bundle["arch"] == "ensemble" and bundle["calibration"] == calibration

    # compare counts the members' multiply-adds and more (the resize).
    ensemble = load_model(run.path)
    parts = [count_multiply_adds(load_model(member)) for member in (small, large)]
    assert count_multiply_adds(ensemble) > sum(parts) > 0
    result = run_cli("compare", out, small, "--out", tmp_path / "compare")
    assert result.returncode == 0 and "| ensemble |" in result.stdout, result.stderr[-2000:]


def test_an_ensemble_keeps_the_photos_its_members_agree_on(two_runs, tmp_path):
    _, (small, large) = two_runs
    moved = tmp_path / "moved"
    shutil.copytree(large, moved)
    rows = list(csv.DictReader((moved / "split.csv").open()))
    trained = next(row for row in rows if row["split"] == "val")
    trained["split"] = "train"  # one validation photo of the other member trained on
    with (moved / "split.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = run_cli("ensemble", small, moved, "--out", tmp_path / "ensemble")
    assert result.returncode == 0 and "trained on different splits" in result.stderr, result.stderr[-2000:]
    kept = list(csv.DictReader((tmp_path / "ensemble" / "split.csv").open()))
    assert len(kept) == len(rows) - 1 and trained["path"] not in {row["path"] for row in kept}
    assert json.loads((tmp_path / "ensemble" / "model.json").read_text())["calibration"]["images"] == 14


@pytest.mark.slow
def test_members_of_other_data_make_an_ensemble_with_no_split(two_runs, tmp_path):
    data, (small, large) = two_runs
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(large, elsewhere)
    shutil.copytree(data, tmp_path / "data-copy")
    info = json.loads((elsewhere / "run.json").read_text())
    (elsewhere / "run.json").write_text(json.dumps({**info, "data_root": str(tmp_path / "data-copy")}))
    result = run_cli("ensemble", small, elsewhere, "--out", tmp_path / "ensemble")
    assert result.returncode == 0 and "different data folders" in result.stderr, result.stderr[-2000:]
    assert "calibration" not in json.loads((tmp_path / "ensemble" / "model.json").read_text())
    assert load_classifier(tmp_path / "ensemble").unsure_below is None
    # No split of its own: evaluated on a folder of photos only.
    result = run_cli("evaluate", tmp_path / "ensemble")
    assert result.returncode == 1 and "has no split.csv" in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("evaluate", tmp_path / "ensemble", "--data-dir", data)
    assert result.returncode == 0 and f"on {3 * 16} images" in result.stdout, result.stderr[-2000:]
    result = run_cli("ensemble", tmp_path / "ensemble", small, "--out", tmp_path / "nested")
    assert result.returncode == 1 and "is an ensemble; pass its members' run folders" in result.stderr


def test_ensemble_bad_input_is_one_line(two_runs, tmp_path):
    _, (small, large) = two_runs
    renamed = tmp_path / "renamed"
    shutil.copytree(large, renamed)
    (renamed / "classes.json").write_text(json.dumps(["zero", "one", "two"]))
    (tmp_path / "a-file").write_text("")
    cases = [
        ([small], "ensemble", "needs two run folders or more"),
        ([small, tmp_path / "missing"], "ensemble", "is not a finished run folder"),
        ([small, renamed], "ensemble", "has other classes than"),
        ([small, large], "a-file/ensemble", "it would be inside"),
    ]
    for runs, out, message in cases:
        result = run_cli("ensemble", *runs, "--out", tmp_path / out)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "ensemble").exists()
    (tmp_path / "taken").mkdir()
    result = run_cli("ensemble", small, large, "--out", tmp_path / "taken")
    assert result.returncode == 1 and "already exists; choose a new --out" in result.stderr


def test_the_same_model_twice_is_refused(two_runs, tmp_path):
    """`ensemble runA runA` averaged a model with itself and said "ensemble of 2 models"."""
    _, (small, large) = two_runs
    copy = tmp_path / "copy"
    shutil.copytree(small, copy)
    for runs, kind in (([small, large, small], "folder"), ([small, copy], "weights")):
        result = run_cli("ensemble", *runs, "--out", tmp_path / "ensemble")
        assert result.returncode == 1 and f"are the same model ({kind})" in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and not (tmp_path / "ensemble").exists()


def test_a_member_being_trained_is_not_read(two_runs, tmp_path):
    """`ensemble runA runT` while `train --resume runT` ran took runT's old model.keras without a word; so did
    export, evaluate, compare and predict of that run folder."""
    data, (small, large) = two_runs
    photo = sorted((data / "1").iterdir())[0]
    with locked_by_another_process(large) as pid:
        for args in (["ensemble", small, large, "--out", tmp_path / "ensemble"],
                     ["export", large, "--out", tmp_path / "exports"], ["evaluate", large],
                     ["compare", small, large, "--out", tmp_path / "compare"], ["predict", large, photo],
                     ["calibrate", large]):
            result = run_cli(*args)
            assert result.returncode == 1, (args, result.stderr[-2000:])
            assert f"is being written by another process (PID {pid} on " in result.stderr, (args, result.stderr)
            assert "Traceback" not in result.stderr
    assert not (tmp_path / "ensemble").exists() and not (tmp_path / "exports").exists()
    assert run_cli("predict", large, photo).returncode == 0  # readable again once the writer is gone


def test_a_killed_build_leaves_nothing_a_rerun_keeps(two_runs, tmp_path):
    """A `kill -9` of `keras-sign ensemble` left `.OUT.partial-PID/` (a partial model) that no rerun removed."""
    _, (small, large) = two_runs
    dead = tmp_path / ".ensemble.partial-999999"
    dead.mkdir()
    (dead / "model.keras").write_bytes(b"half a model")
    busy = tmp_path / ".ensemble.partial-1"  # another build of the same --out, still running
    busy.mkdir()
    with locked_by_another_process(busy, "Ensemble folder"):
        result = run_cli("ensemble", small, large, "--out", tmp_path / "ensemble")
        assert result.returncode == 0, result.stderr[-2000:]
        assert sorted(p.name for p in tmp_path.iterdir()) == [".ensemble.partial-1", "ensemble"]


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
