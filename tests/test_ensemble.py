"""`keras-sign ensemble`: runs of other architectures and sizes averaged into one plain Keras model."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np

from conftest import run_cli
from keras_sign.classifier import load_classifier
from keras_sign.data.pipeline import decode_and_resize
from spelling_fixtures import CLASSES, trained  # noqa: F401  (fixture)


def _photos(folder, per_class=2):
    return [path for name in CLASSES for path in sorted((folder / name).iterdir())[:per_class]]


def _images(paths, size):
    return np.stack([decode_and_resize(str(path), 1, size).numpy() for path in paths])


def test_an_ensemble_averages_its_members_and_loads_anywhere_a_model_does(trained, tmp_path):
    other = tmp_path / "mobilenet-40"
    result = run_cli("train", "--data-dir", trained["data"], "--arch", "mobilenetv3_small", "--epochs", "2",
                     "--image-size", "40", "--batch-size", "8", "--seed", "3", "--no-augment", "--out", other)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "ensembles" / "digits"
    result = run_cli("ensemble", trained["run"], other, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ensemble of 2 models (resnet18 32 px, mobilenetv3_small 40 px), input 40 px" in result.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["digits"]  # no staging folder left

    ensemble = load_classifier(out)
    assert ensemble.class_names == CLASSES and ensemble.image_size == 40 and ensemble.unsure_below is None
    photos = _photos(trained["data"])
    images = _images(photos, 40)
    # The 32 px member sees the 40 px input resized inside the model (antialiased bilinear, as Keras'
    # Resizing layer does); its own classifier resizes the full photo, which moves this tiny model's
    # probabilities by up to 0.08 (on Massey, a four-model ensemble scored 0.883 one way, 0.878 the other).
    resized = keras.layers.Resizing(32, 32, antialias=True)(images.astype(np.float32))
    mean = (load_classifier(trained["run"]).model.model.predict_on_batch(resized)
            + load_classifier(other).predict(images)) / 2
    averaged = ensemble.predict(images)
    np.testing.assert_allclose(averaged.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(averaged, mean, atol=1e-5)

    record = json.loads((out / "model.json").read_text())
    assert [m["arch"] for m in record["members"]] == ["resnet18", "mobilenetv3_small"]
    assert (out / "labels.txt").read_text().split() == CLASSES
    predicted = run_cli("predict", out, photos[0], "--format", "jsonl")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["predictions"][0]["class"] in CLASSES

    # Plain Keras loads it, in a process that never imported keras-sign.
    check = ("import keras, numpy as np, sys; m = keras.saving.load_model(sys.argv[1]); "
             "print(m.predict(np.load(sys.argv[2]), verbose=0).argmax(1).tolist())")
    np.save(tmp_path / "images.npy", images.astype(np.float32))
    plain = subprocess.run([sys.executable, "-c", check, out / "model.keras", tmp_path / "images.npy"],
                           capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == averaged.argmax(1).tolist()


def test_ensemble_bad_input_is_one_line(trained, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copytree(trained["run"], renamed)
    (renamed / "classes.json").write_text(json.dumps(["zero", "one", "two", "nothing"]))
    cases = [
        ([trained["run"]], "needs two run folders or more"),
        ([trained["run"], tmp_path / "missing"], "is not a finished run folder"),
        ([trained["run"], renamed], "has other classes than"),
    ]
    for runs, message in cases:
        result = run_cli("ensemble", *runs, "--out", tmp_path / "ensemble")
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "ensemble").exists()
    (tmp_path / "a-file").write_text("")
    result = run_cli("ensemble", trained["run"], trained["run"], "--out", tmp_path / "a-file" / "ensemble")
    assert result.returncode == 1 and "it would be inside" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "taken").mkdir()
    result = run_cli("ensemble", trained["run"], trained["run"], "--out", tmp_path / "taken")
    assert result.returncode == 1 and "already exists; choose a new --out" in result.stderr
