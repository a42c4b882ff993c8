"""Choose the Keras backend once, before Keras is imported.

`auto` picks JAX when JAX can see a GPU or TPU and TensorFlow otherwise: on
CPU these convolutional networks train 2-5x slower under XLA (JAX) than under
TensorFlow's own kernels. An explicit `KERAS_BACKEND` in the environment wins
over everything, so scripts and CI can pin a backend without touching flags.

Once Keras is imported, `configure_runtime` sets up the process a training runs
in (seed, determinism, precision policy, devices) and `environment_record` says
what ran it.
"""

import importlib.util
import logging
import os
import platform
import sys

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

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


def resolve_backend(requested="auto", environ=os.environ, accelerator=None):
    """Decide the backend without touching anything; return `(backend, reason)`.

    `accelerator`: whether JAX sees a GPU/TPU (None: ask JAX, see `jax_sees_accelerator`).

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
    if jax_sees_accelerator() if accelerator is None else accelerator:
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


def environment_record(backend, reason):
    """What ran the job: backend and why, library versions, machine."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_sign import __version__

    return {
        "backend": backend,
        "backend_reason": reason,
        "versions": {
            "keras_sign": __version__,
            "keras": keras.__version__,
            backend: sys.modules[backend].__version__,
            "tensorflow_data": tf.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
    }


def configure_runtime(config, backend):
    """Seed, determinism, mixed precision and data parallelism, before any model exists; return the devices."""
    import keras

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # tf.data feeds every backend, and TF kernels
        if backend == "torch":
            import torch

            torch.use_deterministic_algorithms(True)
    keras.config.set_dtype_policy("mixed_bfloat16" if config.mixed_precision else "float32")
    if backend != "jax":
        if config.devices != "1":
            raise KerasSignError(f"--devices {config.devices} needs the JAX backend (keras.distribution); add --backend jax.")
        return [_default_device(backend)]
    available = keras.distribution.list_devices()
    count = len(available) if config.devices == "all" else int(config.devices)
    keras.distribution.set_distribution(None)
    if count > 1:
        if count > len(available):
            raise KerasSignError(f"--devices {count} asks for more devices than the {len(available)} JAX sees.")
        if config.batch_size % count:
            raise KerasSignError(f"--batch-size {config.batch_size} must be a multiple of the {count} devices.")
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:count]))
        log.info("Data parallel over %d devices, %d images each per step.", count, config.batch_size // count)
    return available[:count]


def _default_device(backend):
    """The device a single-device TensorFlow or PyTorch run trains on, for the run record."""
    if backend == "torch":
        import torch

        return f"cuda:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "cpu"
