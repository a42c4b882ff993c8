import pytest

from keras_sign.backend import resolve_backend
from keras_sign.errors import KerasSignError


def test_auto_picks_tensorflow_on_a_cpu_only_machine():
    backend, reason = resolve_backend("auto", environ={})
    assert backend == "tensorflow"
    assert "no GPU" in reason


def test_explicit_flag_and_environment_precedence():
    assert resolve_backend("torch", environ={}) == ("torch", "requested with --backend")
    backend, reason = resolve_backend("torch", environ={"KERAS_BACKEND": "jax"})
    assert backend == "jax" and "KERAS_BACKEND" in reason


@pytest.mark.parametrize("requested, environ", [("mxnet", {}), ("auto", {"KERAS_BACKEND": "numpy"})])
def test_unsupported_backends_are_refused(requested, environ):
    with pytest.raises(KerasSignError):
        resolve_backend(requested, environ=environ)
