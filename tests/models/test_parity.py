"""Each rebuild computes torchvision's function: eval-mode logits agree to 1e-4 on every backend.

The reference logits in tests/parity/fixtures/ come from torchvision itself, with
every weight drawn from seeds stored beside them. Regenerate them (needs torch and
torchvision, see the script's docstring) with:

    PYTHONPATH=. python tests/parity/make_fixtures.py

Here the same weights are rebuilt from the seeds and go through the converter
that loads real ImageNet weights, so the test covers conversion and architecture.
"""

import json
import os

import keras
import numpy as np
import pytest

from conftest import REPO
from keras_sign.models import available_models, build_model
from keras_sign.models.weight_mapping import load_torchvision_state_dict
from standin_weights import seeded_state_dict, standin_images

FIXTURES = sorted((REPO / "tests" / "parity" / "fixtures").glob("*.json"))


def test_every_registered_architecture_has_a_fixture():
    assert sorted(f.stem for f in FIXTURES) == available_models()


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.stem)
def test_rebuild_matches_torchvision_logits(fixture):
    spec = json.loads(fixture.read_text())
    expected = np.array(spec["logits"], dtype=np.float32)
    model = build_model(spec["arch"], spec["num_classes"], spec["image_size"])  # ImageNet normalisation
    weights = seeded_state_dict(spec["tensors"], spec["base_seed"], spec["gains"])
    assert load_torchvision_state_dict(model, weights, skip_mismatched_head=False) == []
    logits = keras.Model(model.input, model.get_layer("predictions").input)
    images = standin_images(spec["input_seed"], len(expected), spec["image_size"])
    got = keras.ops.convert_to_numpy(logits(images, training=False))
    assert np.abs(got - expected).max() <= 1e-4, f"{keras.backend.backend()}: {np.abs(got - expected).max()}"


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=pytest.mark.slow), pytest.param("torch", marks=pytest.mark.slow)])
def test_parity_holds_on_the_other_backends(backend):
    """The in-process tests run on TensorFlow; the same tests in a fresh process on each other backend."""
    import subprocess
    import sys

    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", __file__, "-k", "rebuild_matches"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{len(FIXTURES)} passed" in result.stdout
