"""What a run ships: a model.keras that plain Keras loads on every backend, and .tflite files that carry
their labels and input normalisation as TFLite metadata."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from keras_sign.models import build_model
from keras_sign.runs import RunFolder
from keras_sign.schedules import WarmupSchedule

ARCHS = ("mobilenetv3_small", "shufflenetv2_x0_5", "resnet18")

PLAIN_KERAS = """
import sys
sys.modules["keras_sign"] = None  # any import of keras_sign now fails: this process has plain Keras only
import json, numpy as np, keras
folder = sys.argv[1]
images = np.load(f"{folder}/images.npy")
for arch in json.loads(sys.argv[2]):
    model = keras.saving.load_model(f"{folder}/{arch}/model.keras")
    np.save(f"{folder}/{arch}/{keras.backend.backend()}.npy", keras.ops.convert_to_numpy(model(images)))
print("loaded without keras_sign:", "keras_sign" not in [m for m in sys.modules if sys.modules[m] is not None])
"""


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Each architecture compiled with the run's optimizer and schedule, saved as a run saves model.keras."""
    import keras

    folder = tmp_path_factory.mktemp("plain")
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.save(folder / "images.npy", images)
    expected = {}
    for arch in ARCHS:
        model = build_model(arch, 5, 64, mean=(120.0, 110.0, 100.0), std=(60.0, 55.0, 50.0))
        model.compile(optimizer=keras.optimizers.Adam(WarmupSchedule("cosine", 1e-3, 100, 10)),
                      loss="categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)  # its moments, as after a training step
        run = RunFolder(folder / arch)
        run.save_model(model, optimizer=False)
        run.save_model(model, "checkpoint.keras")  # what a checkpoint holds, for the size comparison
        expected[arch] = keras.ops.convert_to_numpy(model(images))
    return folder, expected


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_model_keras_loads_in_plain_keras_on_every_backend(saved_models, backend):
    folder, expected = saved_models
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", PLAIN_KERAS, str(folder), json.dumps(ARCHS)], cwd="/",
                            env={**env, "KERAS_BACKEND": backend}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded without keras_sign: True" in result.stdout
    for arch in ARCHS:
        np.testing.assert_allclose(np.load(folder / arch / f"{backend}.npy"), expected[arch], atol=2e-5)


def test_model_keras_holds_no_optimizer(saved_models):
    import zipfile

    folder, _ = saved_models
    for arch in ARCHS:
        with zipfile.ZipFile(folder / arch / "model.keras") as archive:
            config = json.loads(archive.read("config.json"))
        assert not config.get("compile_config")
        inference, checkpoint = ((folder / arch / name).stat().st_size for name in ("model.keras", "checkpoint.keras"))
        assert inference < 0.5 * checkpoint  # Adam keeps two moments per weight
