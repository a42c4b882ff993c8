"""Keras model -> TFLite flatbuffer of builtin ops only, and the converters' console noise kept quiet.

    tflite_bytes = to_tflite(model, quantize="dynamic")

TensorFlow backend only. `tf.lite.TFLiteConverter.from_keras_model`, restricted to TFLite's builtin ops
(the standalone LiteRT runtime on Android has no TensorFlow kernels). Keras' own
`model.export(format="litert")` is not used: it silently allows select TF (Flex) ops.
"""

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.inference.inputs import one_by_one
from keras_sign.inference.runtimes import import_export_dependency

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


def _raw_pixel_input(tflite_model):
    """Give an integer model input scale 1 and zero point 0, so that its bytes are the raw pixels.

    Calibration sets the input's scale from the brightest calibration pixel (251/255 when none
    reaches 255). The input feeds only a QUANTIZE op into the int8 graph, which then rescales from
    raw pixels to the calibrated int8 range itself; the calibrated ranges stay as they were.
    """
    flatbuffer_utils = import_export_dependency("ai_edge_litert.tools.flatbuffer_utils")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_model))
    graph = model.subgraphs[0]
    images = [index for index in graph.inputs if len(graph.tensors[index].shape) == 4]  # not landmark features
    if not images:
        return tflite_model
    consumers = [op for op in graph.operators if images[0] in op.inputs]
    if not all(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "QUANTIZE" for op in consumers):
        return tflite_model  # not the converter's usual layout: keep (and record) its own scale
    graph.tensors[images[0]].quantization.scale = np.array([1.0], dtype=np.float32)
    graph.tensors[images[0]].quantization.zeroPoint = np.array([0], dtype=np.int64)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def graph_input_order(tflite_model, names):
    """The Keras input `names` in the order of a converted model's graph inputs, which is the order that
    position-based readers (TFLite metadata, the quantization debugger) follow: the converter may list a fusion
    model's two inputs either way."""
    litert = import_export_dependency("ai_edge_litert.interpreter")
    details = litert.Interpreter(model_content=tflite_model).get_input_details()
    return [next(name for name in names if name in detail["name"]) for detail in details]


def to_tflite(model, quantize="none", calibration_images=None, io_type="uint8"):
    """Convert a Keras model (TensorFlow backend) to a TFLite flatbuffer of builtin ops only.

    Args:
        model: a Keras model taking raw 0-255 RGB (normalisation inside).
        quantize: "none" (float32), "float16" (weights), "dynamic" (int8 weights, float
            activations) or "int8" (weights and activations, calibrated on `calibration_images`).
        calibration_images: uint8 images `(n, h, w, 3)` (a landmark model's features, a fusion model's tuple of
            both: `keras_sign.inference.inputs`), for "int8" only.
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
        names = [tensor.name for tensor in model.inputs]
        converter.representative_dataset = lambda: one_by_one(calibration_images, names)
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
