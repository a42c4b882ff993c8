"""`keras_sign.models.saving`: a model.keras that plain Keras loads on every backend, without keras-sign and
without an optimizer, and that every command refuses in one line when it is damaged."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import invoke as _invoke
from conftest import one_line_error as _one_line_error
from keras_sign.errors import KerasSignError
from keras_sign.models import build_model
from keras_sign.models.saving import load_model, save_model
from keras_sign.runs.folder import RunFolder
from keras_sign.training.schedules import WarmupSchedule
from users_fixtures import users_folder, users_run  # noqa: F401  (fixtures)

ARCHS = ("mobilenetv3_small", "shufflenetv2_x0_5", "resnet18")


PLAIN_KERAS = """
import sys
sys.modules["keras_sign"] = None  # any import of keras_sign now fails: this process has plain Keras only
import json, numpy as np, keras
folder = sys.argv[1]
images = np.load(f"{folder}/images.npy")
for arch in json.loads(sys.argv[2]):
    model = keras.saving.load_model(f"{folder}/{arch}/model.keras")
    np.save(f"{folder}/{arch}/{keras.backend.backend()}.npy", keras.ops.convert_to_numpy(model.predict_on_batch(images)))
print("loaded without keras_sign:", "keras_sign" not in [m for m in sys.modules if sys.modules[m] is not None])
"""


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Each architecture compiled with the run's optimizer and schedule, saved as a run saves model.keras."""
    import keras

    from keras_sign.training.optimizers import FusedAdam

    folder = tmp_path_factory.mktemp("plain")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.save(folder / "images.npy", images)
    expected = {}
    for arch in ARCHS:
        model = build_model(arch, 5, 32, mean=(120.0, 110.0, 100.0), std=(60.0, 55.0, 50.0))
        model.compile(optimizer=FusedAdam(WarmupSchedule("cosine", 1e-3, 100, 10)),
                      loss="categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)  # its moments, as after a training step
        run = RunFolder(folder / arch)
        save_model(model, run.file("model.keras"), optimizer=False)
        save_model(model, run.file("checkpoint.keras"))  # what a checkpoint holds, for the size comparison
        expected[arch] = keras.ops.convert_to_numpy(model(images))
    return folder, expected


# The other backends in the slow tier: the fast tier stays under 5 minutes on 2 cores.
@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.slow),
                                     pytest.param("torch", marks=pytest.mark.slow)])
@pytest.mark.xdist_group("saved_models")
def test_model_keras_loads_in_plain_keras_on_every_backend(saved_models, backend):
    folder, expected = saved_models
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", PLAIN_KERAS, str(folder), json.dumps(ARCHS)], cwd="/",
                            env={**env, "KERAS_BACKEND": backend}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded without keras_sign: True" in result.stdout
    for arch in ARCHS:
        np.testing.assert_allclose(np.load(folder / arch / f"{backend}.npy"), expected[arch], atol=2e-5)


@pytest.mark.xdist_group("saved_models")
def test_model_keras_holds_no_optimizer(saved_models):
    import zipfile

    folder, _ = saved_models
    for arch in ARCHS:
        with zipfile.ZipFile(folder / arch / "model.keras") as archive:
            config = json.loads(archive.read("config.json"))
        assert not config.get("compile_config")
        inference, checkpoint = ((folder / arch / name).stat().st_size for name in ("model.keras", "checkpoint.keras"))
        assert inference < 0.5 * checkpoint  # Adam keeps two moments per weight


@pytest.mark.xdist_group("users_run")
def test_damaged_model_file_is_named_in_one_line_by_every_command(users_run, tmp_path):
    """Defect 8: a truncated model.keras gave `ValueError: File not found` with a traceback."""
    damaged = tmp_path / "damaged"
    shutil.copytree(users_run, damaged)
    model = damaged / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    for args in (["evaluate", damaged], ["export", damaged, "--out", tmp_path / "exports"], ["benchmark", damaged]):
        _one_line_error(*_invoke(*args), "model.keras is damaged or cut short")
    flipped = bytearray((users_run / "model.keras").read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # one bad byte inside the zip: its checksum catches it
    model.write_bytes(bytes(flipped))
    with pytest.raises(KerasSignError, match="fails its checksum"):
        load_model(damaged)
