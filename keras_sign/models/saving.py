"""Model files: saved atomically, loaded with every architecture's custom layers registered.

    model = load_model("runs/digits-mobilenetv3_small-20261125-203937")        # a run folder's model.keras
    save_model(model, Path(run) / "model.keras", optimizer=False)               # loadable by plain Keras
"""

from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import replaced_atomically
from keras_sign.runs.folder import DAMAGED_ADVICE, check_model_file
from keras_sign.runs.locks import check_not_being_written


def save_model(model, path, optimizer=True):
    """Save a `.keras` file atomically (Keras insists on the suffix, so the temporary name keeps it).

    With `optimizer=False` only the layers and weights are saved, through an uncompiled model over the
    same layers: no optimizer state and no custom schedule, so plain Keras loads the file on any
    backend. (`clone_model` would not do: it compiles the clone like the original.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not optimizer:
        import keras

        model = keras.Model(model.input, model.output, name=model.name)
    with replaced_atomically(path) as tmp:
        model.save(tmp)


def load_model(path, compile=False):
    """The model of a `.keras` file, or of a run folder (its model.keras), or a clear error.

    Not compiled by default: a model trained under JAX records jit_compile=True, which under the torch
    backend would mean torch.compile; prediction and weight copying need no compiled state. With
    `compile=True` the optimizer state comes back too (same backend only); the caller imports the
    modules that define its optimizer and schedule (`keras_sign.training.fit`). A run folder that another
    process is writing is refused.
    """
    import keras

    from keras_sign.models.registry import available_models

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    available_models()  # imports every architecture, registering its custom layers for loading
    check_model_file(path)
    check_not_being_written(path.parent)
    try:
        return keras.models.load_model(path, compile=compile)
    except (ValueError, KeyError, OSError) as error:  # an intact zip whose parts do not make a model
        raise KerasSignError(f"{path} does not load as a Keras model ({error}); {DAMAGED_ADVICE}") from None
