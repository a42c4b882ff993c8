"""Keras model -> TFLite flatbuffer, ONNX file or SavedModel folder. TensorFlow backend only.
`EXPORT_FORMATS`, at the end, is the table of formats that the exporter and the command line read.

    keras-sign export runs/digits-mobilenetv3_small-20261125-203937 --quantize int8

Routes, measured on MobileNetV3-Small, ResNet-18 and ShuffleNetV2 (Keras 3.15, TF 2.21):

- TFLite: `tf.lite.TFLiteConverter.from_keras_model`, restricted to TFLite's builtin ops (the
  standalone LiteRT runtime on Android has no TensorFlow kernels). Keras' own
  `model.export(format="litert")` is not used: it silently allows select TF (Flex) ops.
- ONNX: the model's inference function frozen into a TensorFlow graph, converted by tf2onnx.
  Keras' `model.export(format="onnx")` under TensorFlow hands tf2onnx an unfrozen function and the
  normalisation layer's constants become extra model inputs; under JAX (jax2onnx) ResNet's and
  ShuffleNet's max pooling comes out as a node onnxruntime rejects.
- SavedModel: Keras' `model.export(format="tf_saved_model")`, an inference-only `serve` endpoint.
"""

import contextlib
import dataclasses
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.runs import atomic_write_bytes
from keras_sign.runtimes import OnnxModel, SavedModel, TFLiteModel, import_export_dependency

QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int8-strict")  # int8: see keras_sign.quantization
IO_TYPES = ("uint8", "float32")
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
# The converter names each TensorFlow op it cannot express with TFLite builtins in this phrase.
_NO_BUILTIN_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


@contextlib.contextmanager
def quiet_native_output():
    """Silence what the converters print, C++ included (MLIR diagnostics, captured-variable dumps).

    Their failures are turned into exceptions with the useful part; on success the output is noise.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    # Python-level prints too: sys.stdout need not be file descriptor 1 (pytest, notebooks).
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


def _input_spec(model):
    import tensorflow as tf

    return tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=INPUT_NAME)


def _calibration_batches(images):
    """The representative dataset: one image per step, float32 0-255 as the model takes them."""
    for image in images:
        yield [np.asarray(image, dtype=np.float32)[None]]


def _raw_pixel_input(tflite_model):
    """Give an integer model input scale 1 and zero point 0, so that its bytes are the raw pixels.

    Calibration sets the input's scale from the brightest calibration pixel (251/255 when none
    reaches 255). The input feeds only a QUANTIZE op into the int8 graph, which then rescales from
    raw pixels to the calibrated int8 range itself; the calibrated ranges stay as they were.
    """
    flatbuffer_utils = import_export_dependency("ai_edge_litert.tools.flatbuffer_utils")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_model))
    graph = model.subgraphs[0]
    index = graph.inputs[0]
    consumers = [op for op in graph.operators if index in op.inputs]
    if not all(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "QUANTIZE" for op in consumers):
        return tflite_model  # not the converter's usual layout: keep (and record) its own scale
    graph.tensors[index].quantization.scale = np.array([1.0], dtype=np.float32)
    graph.tensors[index].quantization.zeroPoint = np.array([0], dtype=np.int64)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_tflite(model, quantize="none", calibration_images=None, io_type="uint8"):
    """Convert a Keras model (TensorFlow backend) to a TFLite flatbuffer of builtin ops only.

    Args:
        model: a Keras model taking raw 0-255 RGB (normalisation inside).
        quantize: "none" (float32), "float16" (weights), "dynamic" (int8 weights, float
            activations) or "int8" (weights and activations, calibrated on `calibration_images`).
        calibration_images: uint8 images `(n, h, w, 3)`, for "int8" only.
        io_type: input/output type of an "int8" model: "uint8" (integer only) or "float32".

    Returns:
        The `.tflite` file's bytes.

    Raises:
        KerasSignError: the model needs TensorFlow ops that TFLite has no builtin kernel for.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: _calibration_batches(calibration_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.as_dtype(io_type)
    try:
        with quiet_native_output():
            tflite_model = converter.convert()
    except Exception as error:  # the converter raises its own ConverterError type
        ops = sorted(set(_NO_BUILTIN_OP.findall(str(error))))
        if not ops:
            raise
        raise KerasSignError(
            f"The model uses TensorFlow op(s) {', '.join(ops)} with no TFLite builtin kernel (Android's LiteRT "
            "runtime cannot run Flex/select TF ops); replace them with keras.ops/keras.layers that LiteRT supports."
        ) from None
    return _raw_pixel_input(tflite_model) if quantize == "int8" and io_type == "uint8" else tflite_model


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What an export asks of a format's `convert` besides the model and the path; each format takes what
    applies to it."""

    quantize: str
    io_type: str
    class_names: list
    model_card: dict  # name, description, version, author, image_size: for a format that describes itself
    min_agreement: float
    calibration: np.ndarray | None = None  # uint8 training images an int8 model is calibrated on
    selection: np.ndarray | None = None  # uint8 images an int8 recipe is chosen on


def converter_record(route, **versions):
    """How a file was produced, with the versions that matter (beyond Keras and TensorFlow: `versions`),
    for `model.json`."""
    import keras
    import tensorflow as tf

    return {"route": route, "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, **versions}}


def write_tflite(model, path, conversion):
    """Write a `.tflite` file of builtin ops, with the labels and the model card as TFLite metadata."""
    from keras_sign.tflite_metadata import add_metadata, image_metadata

    record = converter_record("tf.lite.TFLiteConverter.from_keras_model, TFLite builtin ops only")
    if conversion.quantize.startswith("int8"):
        from keras_sign.quantization import choose_int8  # it imports this module

        tflite, record["int8"] = choose_int8(model, conversion.calibration, conversion.selection,
                                             conversion.min_agreement, conversion.io_type,
                                             strict=conversion.quantize == "int8-strict")
    else:
        tflite = to_tflite(model, conversion.quantize)
    labels = "".join(f"{name}\n" for name in conversion.class_names).encode("utf-8")
    atomic_write_bytes(path, add_metadata(tflite, image_metadata(**conversion.model_card, license_text=None),
                                          {"labels.txt": labels}))
    return record


def tflite_metadata_record(path):
    """What a .tflite's metadata holds, read back from the file."""
    from keras_sign.tflite_metadata import read_metadata

    metadata = read_metadata(Path(path).read_bytes())
    return {key: metadata[key] for key in ("name", "min_parser_version", "mean", "std", "label_files")}


def write_onnx(model, path, conversion):
    """Write a Keras model (TensorFlow backend) as an ONNX file, recording the opset it uses."""
    import tensorflow as tf

    tf2onnx = import_export_dependency("tf2onnx")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    record = converter_record("frozen TensorFlow graph converted by tf2onnx", tf2onnx=tf2onnx.__version__)
    function = tf.function(lambda image: model(image, training=False))
    concrete = function.get_concrete_function(_input_spec(model))
    inputs, outputs = [concrete.inputs[0].name], [concrete.outputs[0].name]
    with quiet_native_output():
        # Freezing turns variables and captured constants (the normalisation) into graph constants.
        graph_def = tf2onnx.tf_loader.from_function(concrete, inputs, outputs)
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, output_path=str(path),
            tensors_to_rename={inputs[0]: INPUT_NAME, outputs[0]: OUTPUT_NAME},
        )
    record["opset"] = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    return record


def write_saved_model(model, path, conversion):
    """Write a Keras model (TensorFlow backend) as a SavedModel folder with an inference `serve` endpoint."""
    record = converter_record("keras Model.export(format='tf_saved_model')")
    with quiet_native_output():
        model.export(str(path), format="tf_saved_model", verbose=False)
    return record


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format: all that the exporter, the command line and `keras_sign.runtimes` know of it."""

    name: str  # the --format value, part of the bundle's name
    title: str  # the format's name in sentences
    help: str  # its part of --format's help
    file_name: str  # the model file (or folder) in a bundle; its suffix marks a bare model file
    convert: Callable  # (Keras model, path, Conversion) -> model.json's converter record
    runtime: type  # the keras_sign.runtimes class that loads and runs the file
    package: str  # the runtime's pip package, whose version model.json records
    quantizations: tuple = ("none",)
    folder_marker: str | None = None  # a folder format: the file that makes a folder one of its models
    # What the file carries about itself (labels, normalisation), read back for model.json as
    # `<name>_metadata`; None: the labels travel in labels.txt only.
    read_metadata: Callable | None = None

    @property
    def suffix(self):
        return Path(self.file_name).suffix

    def holds(self, path):
        """Whether `path` is a model of this format: a folder with the marker in it, or a file with the suffix."""
        path = Path(path)
        if self.folder_marker:
            return (path / self.folder_marker).is_file()
        return path.is_file() and path.suffix == self.suffix


# A new format is one entry here (plus its tests): the command line's choices, the option checks, the
# bundle's file, loading a model file in its runtime and model.json's runtime version all read this table.
EXPORT_FORMATS = {entry.name: entry for entry in (
    ExportFormat(name="tflite", title="TFLite", help="tflite (LiteRT, for Android)", file_name="model.tflite",
                 convert=write_tflite, runtime=TFLiteModel, package="ai-edge-litert", quantizations=QUANTIZATIONS,
                 read_metadata=tflite_metadata_record),
    ExportFormat(name="onnx", title="ONNX", help="onnx (onnxruntime)", file_name="model.onnx", convert=write_onnx,
                 runtime=OnnxModel, package="onnxruntime"),
    ExportFormat(name="saved_model", title="SavedModel", help="saved_model (a TensorFlow SavedModel)",
                 file_name="saved_model", convert=write_saved_model, runtime=SavedModel, package="tensorflow-cpu",
                 folder_marker="saved_model.pb"),
)}
