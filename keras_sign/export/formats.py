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

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_sign.export.tflite import graph_input_order, quiet_native_output, to_tflite
from keras_sign.inference.runtimes import OnnxModel, SavedModel, TFLiteModel, import_export_dependency
from keras_sign.runs.atomic import atomic_write_bytes

QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int8-strict")  # int8: see keras_sign.export.quantization
IO_TYPES = ("uint8", "float32")
OUTPUT_NAME = "probabilities"


def _input_specs(model):
    """A spec per model input, named as the Keras model names it (`image`, `landmarks`; a fusion model both)."""
    import tensorflow as tf

    return [tf.TensorSpec([None, *tensor.shape[1:]], tf.float32, name=tensor.name) for tensor in model.inputs]


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What an export asks of a format's `convert` besides the model and the path; each format takes what
    applies to it."""

    quantize: str
    io_type: str
    class_names: list
    model_card: dict  # name, description, version, author, image_size (or features): for a format that describes itself
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
    from keras_sign.inference.tflite_metadata import add_metadata, classifier_metadata, feature_input, image_input

    record = converter_record("tf.lite.TFLiteConverter.from_keras_model, TFLite builtin ops only")
    if conversion.quantize.startswith("int8"):
        from keras_sign.export.quantization import choose_int8  # it imports this module

        tflite, record["int8"] = choose_int8(model, conversion.calibration, conversion.selection,
                                             conversion.min_agreement, conversion.io_type,
                                             strict=conversion.quantize == "int8-strict")
    else:
        tflite = to_tflite(model, conversion.quantize)
    labels = "".join(f"{name}\n" for name in conversion.class_names).encode("utf-8")
    card = dict(conversion.model_card)
    inputs = {"image": image_input(card.pop("image_size")) if "image_size" in card else None,
              "landmarks": feature_input(card.pop("features")) if "features" in card else None}
    order = graph_input_order(tflite, [tensor.name for tensor in model.inputs])  # metadata follows the graph's order
    metadata = classifier_metadata(**card, license_text=None, inputs=[inputs[name] for name in order])
    atomic_write_bytes(path, add_metadata(tflite, metadata, {"labels.txt": labels}))
    return record


def tflite_metadata_record(path):
    """What a .tflite's metadata holds, read back from the file."""
    from keras_sign.inference.tflite_metadata import read_metadata

    metadata = read_metadata(Path(path).read_bytes())
    return {key: metadata[key] for key in ("name", "min_parser_version", "inputs", "mean", "std", "label_files")}


def write_onnx(model, path, conversion):
    """Write a Keras model (TensorFlow backend) as an ONNX file, recording the opset it uses."""
    import tensorflow as tf

    tf2onnx = import_export_dependency("tf2onnx")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    record = converter_record("frozen TensorFlow graph converted by tf2onnx", tf2onnx=tf2onnx.__version__)
    specs = _input_specs(model)
    function = tf.function(lambda *tensors: model(list(tensors) if len(tensors) > 1 else tensors[0], training=False))
    concrete = function.get_concrete_function(*specs)
    inputs, outputs = [tensor.name for tensor in concrete.inputs[:len(specs)]], [concrete.outputs[0].name]
    with quiet_native_output():
        # Freezing turns variables and captured constants (the normalisation) into graph constants.
        graph_def = tf2onnx.tf_loader.from_function(concrete, inputs, outputs)
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, output_path=str(path),
            tensors_to_rename={**{name: spec.name for name, spec in zip(inputs, specs)}, outputs[0]: OUTPUT_NAME},
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
    """One export format: all that the exporter, the command line and `keras_sign.inference.runtimes` know of it."""

    name: str  # the --format value, part of the bundle's name
    title: str  # the format's name in sentences
    help: str  # its part of --format's help
    file_name: str  # the model file (or folder) in a bundle; its suffix marks a bare model file
    convert: Callable  # (Keras model, path, Conversion) -> model.json's converter record
    runtime: type  # the keras_sign.inference.runtimes class that loads and runs the file
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
