"""`keras_sign.backend`: which backend runs, and why; what needs JAX."""

import pytest

from conftest import run_cli
from keras_sign.backend import jax_sees_accelerator, resolve_backend
from keras_sign.errors import KerasSignError


def test_auto_picks_jax_with_an_accelerator_and_tensorflow_without():
    assert resolve_backend("auto", environ={}, accelerator=True) == ("jax", "auto: JAX sees a GPU/TPU")
    backend, reason = resolve_backend("auto", environ={}, accelerator=False)
    assert backend == "tensorflow" and "no GPU" in reason
    # And on this machine, whatever it has:
    assert resolve_backend("auto", environ={})[0] == ("jax" if jax_sees_accelerator() else "tensorflow")


def test_explicit_flag_and_environment_precedence():
    assert resolve_backend("torch", environ={}) == ("torch", "requested with --backend")
    backend, reason = resolve_backend("torch", environ={"KERAS_BACKEND": "jax"})
    assert backend == "jax" and "KERAS_BACKEND" in reason


@pytest.mark.parametrize("requested, environ, message", [
    ("mxnet", {}, "Unknown backend 'mxnet'; choose one of auto, jax, tensorflow, torch"),
    ("auto", {"KERAS_BACKEND": "numpy"}, "KERAS_BACKEND=numpy is not supported; set it to one of jax, tensorflow"),
])
def test_unsupported_backends_are_refused(requested, environ, message):
    with pytest.raises(KerasSignError, match=message):
        resolve_backend(requested, environ=environ)


def test_data_parallel_needs_jax_and_a_divisible_batch(small_digits, tmp_path):
    result = run_cli("train", "--data-dir", small_digits, "--devices", "2", "--backend", "tensorflow",
                     "--out", tmp_path / "r")
    assert result.returncode != 0 and "needs the JAX backend" in result.stderr
