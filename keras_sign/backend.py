"""Choose the Keras backend once, before Keras is imported.

`auto` picks JAX when JAX can see a GPU or TPU and TensorFlow otherwise: on
CPU these convolutional networks train 2-5x slower under XLA (JAX) than under
TensorFlow's own kernels. An explicit `KERAS_BACKEND` in the environment wins
over everything, so scripts and CI can pin a backend without touching flags.
"""

import importlib.util
import os
import sys

from keras_sign.errors import KerasSignError

BACKENDS = ("jax", "tensorflow", "torch")
CHOICES = ("auto",) + BACKENDS

# Plugins that give JAX an accelerator; without one, JAX can only see the CPU
# and we avoid importing it (and initialising XLA) just to find that out.
_JAX_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "libtpu")


def jax_sees_accelerator():
    """True when JAX is installed with an accelerator plugin and finds a device."""
    if importlib.util.find_spec("jax") is None:
        return False
    if not any(importlib.util.find_spec(name) for name in _JAX_ACCELERATOR_PLUGINS):
        return False
    import jax

    try:
        return any(device.platform in ("gpu", "tpu") for device in jax.devices())
    except RuntimeError:
        return False


def resolve_backend(requested="auto", environ=os.environ):
    """Decide the backend without touching anything; return `(backend, reason)`.

    Example:
        >>> resolve_backend("torch", environ={})
        ('torch', 'requested with --backend')
    """
    if requested not in CHOICES:
        raise KerasSignError(f"Unknown backend '{requested}'; choose one of {', '.join(CHOICES)}.")
    from_env = environ.get("KERAS_BACKEND")
    if from_env:
        if from_env not in BACKENDS:
            raise KerasSignError(
                f"KERAS_BACKEND={from_env} is not supported; set it to one of {', '.join(BACKENDS)} or unset it."
            )
        return from_env, "KERAS_BACKEND is set in the environment"
    if requested != "auto":
        return requested, "requested with --backend"
    if jax_sees_accelerator():
        return "jax", "auto: JAX sees a GPU/TPU"
    return "tensorflow", "auto: no GPU/TPU for JAX; TensorFlow trains these CNNs fastest on CPU"


def select_backend(requested="auto", deterministic=False):
    """Resolve the backend and set `KERAS_BACKEND` for this process; return `(backend, reason)`.

    `deterministic` asks XLA for deterministic GPU kernels, which must be set before JAX starts.
    """
    backend, reason = resolve_backend(requested)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise KerasSignError(
                f"Keras was already imported with the {keras.backend.backend()} backend; "
                f"start a new process to use {backend}."
            )
    if importlib.util.find_spec(backend) is None:
        raise KerasSignError(f"The {backend} backend is not installed; run `{_INSTALL_HINTS[backend]}`.")
    os.environ["KERAS_BACKEND"] = backend
    if deterministic and backend == "jax":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    # TensorFlow's C++ start-up chatter hides the messages that matter.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return backend, reason


_INSTALL_HINTS = {
    "jax": "pip install jax",
    "tensorflow": "pip install tensorflow-cpu",
    "torch": "pip install 'keras-sign[torch]'",
}
