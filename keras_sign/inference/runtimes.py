"""Run a model file in the runtime that ships it: LiteRT (.tflite), onnxruntime (.onnx),
TensorFlow (SavedModel folder) or Keras (.keras, a run folder), behind one `predict`.

    keras-sign benchmark runs/digits-mobilenetv3_small-20261125-203937 exports/*/

Every model takes a batch of raw RGB pixels `(n, h, w, 3)` on the 0-255 scale (a landmark model: landmark
features `(n, 63)`; a fusion model: the tuple of both) and returns float32 class probabilities `(n, classes)`;
quantized inputs and outputs are converted with the scale and zero point stored in the file, as an app would.
Each runtime names its inputs' shapes in `input_shapes` (in `keras_sign.models.fusion.INPUTS` order for a model
of two) and the first in `input_shape`.
"""

import contextlib
import dataclasses
import hashlib
import importlib
import json
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.inference.inputs import as_float32, parts
from keras_sign.models.saving import load_model

EXPORT_EXTRA = "pip install 'keras-sign[export]'"


def import_export_dependency(module):
    """Import a module of the `export` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise KerasSignError(f"{module.split('.')[0]} is not installed; run `{EXPORT_EXTRA}`.") from None


@contextlib.contextmanager
def _not_a_model(path, kind):
    """A runtime's refusal of a damaged or foreign file ("not a valid Flatbuffer buffer", an ONNX protobuf
    error) as one line naming the file."""
    try:
        yield
    except Exception as error:  # each runtime raises its own types (ValueError, onnxruntime's Fail, ...)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise KerasSignError(f"{path} is not a valid {kind} model ({reason}); export the model again or restore "
                             "the file.") from None


def check_recorded_digest(path):
    """Refuse a model file whose SHA-256 differs from the one its bundle's model.json records: it was
    damaged or replaced after the export verified it."""
    record_path = Path(path).with_name("model.json")
    if not (Path(path).is_file() and record_path.is_file()):
        return
    try:
        recorded = json.loads(record_path.read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError):
        return  # an unreadable model.json is named where it is read for the classes
    if recorded and hashlib.sha256(Path(path).read_bytes()).hexdigest() != recorded:
        raise KerasSignError(f"{path} is not the file {record_path} describes (its SHA-256 differs: damaged or "
                             "replaced since the export); export the model again or restore the bundle.")


def _to_tensor_type(images, details):
    """Pixels as the tensor's dtype, quantized with its (scale, zero point) when it is an integer tensor."""
    dtype = np.dtype(details["dtype"])
    scale, zero_point = details["quantization"]
    if dtype == np.float32 or scale == 0:
        return np.asarray(images, dtype=dtype)
    if np.asarray(images).dtype == dtype and (scale, zero_point) == (1.0, 0):
        return images  # raw uint8 pixels already are the quantized values
    limits = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(images, np.float32) / scale + zero_point), limits.min, limits.max).astype(dtype)


def _in_input_order(items, name_of):
    """A model's inputs in the order callers feed them: the landmark features after the pixels (converters
    may list a fusion model's two inputs either way)."""
    return sorted(items, key=lambda item: "landmarks" in name_of(item))


def _from_tensor_type(values, details):
    scale, zero_point = details["quantization"]
    if np.dtype(details["dtype"]) == np.float32 or scale == 0:
        return np.asarray(values, dtype=np.float32)
    return (values.astype(np.float32) - zero_point) * scale


class TFLiteModel:
    """A `.tflite` file in LiteRT's interpreter, with the builtin op resolver (XNNPACK on)."""

    runtime = "LiteRT"

    def __init__(self, path, threads=None):
        litert = import_export_dependency("ai_edge_litert.interpreter")
        with _not_a_model(path, "TFLite"):
            self.interpreter = litert.Interpreter(
                model_path=str(path), num_threads=threads,
                experimental_op_resolver_type=litert.OpResolverType.BUILTIN,  # applies the XNNPACK delegate
            )
        self.inputs_details = _in_input_order(self.interpreter.get_input_details(), lambda d: d["name"])
        self.input_details = self.inputs_details[0]
        self.output_details = self.interpreter.get_output_details()[0]
        self.input_names = [details["name"] for details in self.inputs_details]
        self.input_name = self.input_names[0]
        self.input_shapes = [tuple(int(n) for n in details["shape"][1:]) for details in self.inputs_details]
        self.input_shape = self.input_shapes[0]
        self.input_dtype = np.dtype(self.input_details["dtype"])
        self.batch = None

    def predict(self, inputs):
        arrays = parts(inputs)
        if len(arrays[0]) != self.batch:  # re-planning memory is costly: only when the batch size changes
            for details, shape in zip(self.inputs_details, self.input_shapes):
                self.interpreter.resize_tensor_input(details["index"], [len(arrays[0]), *shape])
            self.interpreter.allocate_tensors()
            self.batch = len(arrays[0])
        for details, part in zip(self.inputs_details, arrays):
            self.interpreter.set_tensor(details["index"], _to_tensor_type(part, details))
        self.interpreter.invoke()
        return _from_tensor_type(self.interpreter.get_tensor(self.output_details["index"]), self.output_details)


class OnnxModel:
    """A `.onnx` file in an onnxruntime CPU session."""

    runtime = "onnxruntime"

    def __init__(self, path, threads=None):
        ort = import_export_dependency("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per core
        options.inter_op_num_threads = 1
        with _not_a_model(path, "ONNX"):
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [item.name for item in _in_input_order(self.session.get_inputs(), lambda i: i.name)]
        self.input_name = self.input_names[0]
        shapes = {item.name: tuple(item.shape[1:]) for item in self.session.get_inputs()}
        self.input_shapes = [shapes[name] for name in self.input_names]
        self.input_shape = self.input_shapes[0]
        self.input_dtype = np.dtype(np.float32)

    def predict(self, inputs):
        return self.session.run(None, {name: np.asarray(part, dtype=np.float32)
                                       for name, part in zip(self.input_names, parts(inputs))})[0]


class SavedModel:
    """A SavedModel folder's `serve` endpoint in TensorFlow."""

    runtime = "TensorFlow"

    def __init__(self, path, threads=None):
        import tensorflow as tf

        self.tf = tf
        with _not_a_model(path, "SavedModel"):
            self.saved_model = tf.saved_model.load(str(path))  # the endpoint needs its object alive
        self.serve = self.saved_model.serve
        specs = _in_input_order(self.serve.input_signature, lambda spec: spec.name)
        self.input_names = [spec.name for spec in specs]
        self.input_name = self.input_names[0]
        self.input_shapes = [tuple(spec.shape[1:]) for spec in specs]
        self.input_shape = self.input_shapes[0]
        self.input_dtype = np.dtype(np.float32)

    def predict(self, inputs):
        return np.asarray(self.serve(*(self.tf.constant(part, dtype=self.tf.float32) for part in parts(inputs))))


class KerasModel:
    """A `.keras` file under the current Keras backend (custom layers registered, not compiled), or a Keras
    model already in memory (`model`: training hands over the model it has just trained)."""

    def __init__(self, path=None, threads=None, model=None):
        import keras

        self.model = model if model is not None else load_model(path)
        self.runtime = f"Keras ({keras.backend.backend()})"
        self.input_names = [tensor.name for tensor in self.model.inputs]
        self.input_name = self.input_names[0]
        self.input_shapes = [tuple(tensor.shape[1:]) for tensor in self.model.inputs]
        self.input_shape = self.input_shapes[0]
        self.input_dtype = np.dtype(np.float32)

    def predict(self, inputs):
        return np.asarray(self.model.predict_on_batch(as_float32(inputs)))


@dataclasses.dataclass(frozen=True)
class ModelFileKind:
    """A kind of model file and the runtime class that runs it: a file with `suffix`, or a folder holding
    `folder_marker`."""

    title: str
    runtime: type
    suffix: str | None = None
    folder_marker: str | None = None

    def holds(self, path):
        path = Path(path)
        if self.folder_marker:
            return (path / self.folder_marker).is_file()
        return path.is_file() and path.suffix == self.suffix


# Every kind of model file keras-sign runs; an export format (keras_sign.export.formats) names its kind's runtime.
MODEL_FILES = (
    ModelFileKind("Keras", KerasModel, suffix=".keras"),
    ModelFileKind("TFLite", TFLiteModel, suffix=".tflite"),
    ModelFileKind("ONNX", OnnxModel, suffix=".onnx"),
    ModelFileKind("SavedModel", SavedModel, folder_marker="saved_model.pb"),
)


def runtime_class(path):
    """The class that runs a model file or folder, or None."""
    return next((kind.runtime for kind in MODEL_FILES if kind.holds(path)), None)


def model_file(path):
    """The model file a path stands for: itself, a run folder's `model.keras`, or an export bundle's model."""
    path = Path(path)
    if (path / "model.json").is_file():  # an export bundle (or an ensemble)
        path = path / json.loads((path / "model.json").read_text())["file"]
    if runtime_class(path) is not None:
        return path
    if (path / "model.keras").is_file():  # a run folder
        return path / "model.keras"
    suffixes = [kind.suffix for kind in MODEL_FILES if kind.suffix]
    folders = "".join(f", a {kind.title} folder" for kind in MODEL_FILES if kind.folder_marker)
    raise KerasSignError(
        f"{path} is not a model file to run; pass a {', '.join(suffixes[:-1])} or {suffixes[-1]} file{folders}, "
        "a run folder or an export bundle."
    )


def file_size(path):
    """Bytes of a model file, or of every file in a SavedModel folder."""
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def load_model_file(path, threads=None):
    """A runnable model (see the module docstring) for any path `model_file` accepts."""
    path = model_file(path)
    check_recorded_digest(path)
    return runtime_class(path)(path, threads)
