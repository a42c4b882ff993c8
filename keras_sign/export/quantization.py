"""int8 TFLite chosen by measurement: the most-integer recipe whose answers agree with Keras.

    keras-sign export RUN --quantize int8           # the most-integer recipe that verifies
    keras-sign export RUN --quantize int8-strict    # every op int8 (for NPUs), as it comes out

Recipes, most integer first; all store int8 weights, and each stays under a float16 file:

    full-integer      every op int8, calibrated on training images (`--io` sets the input and output type)
    float-layers-K    the K layers the quantization debugger finds worst (error in quantization steps
                      on the calibration images) run in float32, the rest int8; float32 input and output
    int8-weights      int8 weights, float32 activations (dynamic range: LiteRT's hybrid kernels)
    weights-only-K    int8 weights turned back into float32 inside the graph, float32 compute
                      (ai-edge-quantizer's weight-only recipe); the K ops whose weight rounding moves
                      the answers most keep float32 weights. K grows until the file would reach the
                      size of a float16 one.

A recipe is taken when its top-1 agreement with Keras on the *selection* images (the validation
split and training images outside the calibration sample, never the test split) and on noisy copies
of them (2, 4 and 8 grey levels of Gaussian noise) leaves at most half the disagreements
`--min-agreement` allows (0.995 for 0.99). The noisy copies put images near the model's decision
boundaries, where a recipe's flips show up: on a hundred-odd clean training images a recipe that
later flips 5% of the test photos can score 100%. The export is then verified on other images, as
every export is.

What int8 activations cannot beat is the Keras model's own steadiness: `noise_stability` measures
how many answers survive Gaussian noise of one grey level on the input, which is smaller than what
int8 rounding does inside the network. Models that change 2% of their answers under such noise end
up on a weights-only recipe (measured in docs/export.md, "int8 that keeps the model's answers").
"""

import csv
import io
import logging
import re
import tempfile

import numpy as np

from keras_sign.export.tflite import graph_input_order, quiet_native_output, to_tflite
from keras_sign.inference.classifier import predict_in_batches
from keras_sign.inference.inputs import count, from_parts, joined, one_by_one, parts, rows
from keras_sign.inference.runtimes import KerasModel, TFLiteModel

log = logging.getLogger("keras_sign")

FLOAT_LAYER_STEPS = (1, 2, 4, 8)
FLOAT_WEIGHT_OPS_STEPS = (0, 4, 8, 16, 24, 32, 48, 64)
NOISE_GREY_LEVELS = 1.0
SELECTION_NOISE_GREY_LEVELS = (2.0, 4.0, 8.0)  # the noisy copies a recipe is also chosen on
# A landmark feature is in units of the hand's wrist-to-knuckle length; a grey level is 1/255 of the pixels' range,
# and the features span about -2 to 2: the same share of their range.
FEATURE_NOISE_PER_GREY_LEVEL = 4 / 255
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
DEBUG_IMAGES = 50  # calibration images the debugger measures each layer's error on


def tflite_predict(model_bytes, images, batch=32):
    """Probabilities of a TFLite model (bytes) on uint8 images, in LiteRT as an app runs it."""
    with tempfile.NamedTemporaryFile(suffix=".tflite") as file:
        file.write(model_bytes)
        file.flush()
        return predict_in_batches(TFLiteModel(file.name).predict, images, batch)


def keras_predict(keras_model, images, batch=32):
    """Probabilities of the Keras model on images, through the runtime every command uses."""
    return predict_in_batches(KerasModel(model=keras_model).predict, images, batch)


def noisy(inputs, level, rng):
    """`inputs` (`keras_sign.inference.inputs`) with Gaussian noise: `level` grey levels on pixels (kept uint8),
    `level * FEATURE_NOISE_PER_GREY_LEVEL` on landmark features."""
    return from_parts(
        np.clip(np.rint(part + rng.normal(0.0, level, part.shape)), 0, 255).astype(np.uint8) if part.ndim == 4
        else (part + rng.normal(0.0, level * FEATURE_NOISE_PER_GREY_LEVEL, part.shape)).astype(np.float32)
        for part in parts(inputs))


def noise_stability(keras_model, images, reference, seed=0):
    """Top-1 agreement of the Keras model with itself when one grey level of Gaussian noise is added."""
    perturbed = noisy(images, NOISE_GREY_LEVELS, np.random.default_rng(seed))
    return float(np.mean(keras_predict(keras_model, perturbed).argmax(-1) == reference.argmax(-1)))


def with_noisy_copies(images, seed=0):
    """Inputs followed by copies with `SELECTION_NOISE_GREY_LEVELS` of Gaussian noise each."""
    rng = np.random.default_rng(seed)
    return joined([images, *(noisy(images, level, rng) for level in SELECTION_NOISE_GREY_LEVELS)])


def _debugger(model, calibration):
    import tensorflow as tf

    names = [tensor.name for tensor in model.inputs]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: one_by_one(calibration, names)
    debug_images = rows(calibration, DEBUG_IMAGES)
    order = graph_input_order(to_tflite(model, "none"), names) if len(names) > 1 else names
    with quiet_native_output():
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=lambda: (
            [sample[name] for name in order] if isinstance(sample, dict) else sample
            for sample in one_by_one(debug_images, names)))
        debugger.run()
    return debugger


def layer_errors(debugger):
    """Each quantized layer's output error, root mean square in quantization steps, worst first:
    `[{"tensor", "op", "error_steps"}]`. Rounding alone gives about 0.29 steps."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    rows = [{"tensor": row["tensor_name"], "op": row["op_name"],
             "error_steps": float(np.sqrt(float(row["mean_squared_error"])) / float(row["scale"]))}
            for row in csv.DictReader(dump) if float(row["scale"] or 0) > 0]
    return sorted(rows, key=lambda row: -row["error_steps"])


def _float_layers(debugger, tensors):
    import tensorflow as tf

    with quiet_native_output():
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=tensors)
        return debugger.get_nondebug_quantized_model()


def weighted_ops(float_tflite):
    """Names (ai-edge-quantizer's op scopes: output tensor names, each followed by ';') of the ops of a
    float TFLite model that carry weights, in graph order."""
    from keras_sign.inference.runtimes import import_export_dependency

    interpreter = import_export_dependency("ai_edge_litert.interpreter").Interpreter(model_content=float_tflite)
    names = {tensor["index"]: tensor["name"] for tensor in interpreter.get_tensor_details()}
    # The interpreter lists ops only through this private call; the op scopes are the names the
    # quantizer's recipes match, so reading them here keeps the two in step.
    return ["".join(f"{names[index]};" for index in op["outputs"])
            for op in interpreter._get_ops_details() if op["op_name"] in WEIGHTED_OPS]


def weights_only(float_tflite, quantized_ops=None, float_ops=()):
    """ai-edge-quantizer's weight-only int8 (per channel, turned back into float32 in the graph):
    every weighted op, or only `quantized_ops`; the ops in `float_ops` keep their float32 weights."""
    from keras_sign.inference.runtimes import import_export_dependency

    aeq = import_export_dependency("ai_edge_quantizer.quantizer")
    every_op = import_export_dependency("ai_edge_quantizer.qtyping").TFLOperationName.ALL_SUPPORTED
    quantizer = aeq.Quantizer(float_tflite)
    for scope in ([".*"] if quantized_ops is None else [f"^{re.escape(op)}$" for op in quantized_ops]):
        quantizer.add_weight_only_config(regex=scope, operation_name=every_op, num_bits=8)
    for op in float_ops:  # the recipe's last matching entry wins
        quantizer.update_quantization_recipe(regex=f"^{re.escape(op)}$", operation_name=every_op,
                                             algorithm_key="no_quantize")
    with quiet_native_output():  # it prints sizes and progress bars
        return bytes(quantizer.quantize().quantized_model)


def weight_sensitivity(float_tflite, images, reference):
    """Each weighted op's effect on the answers when it alone has int8 weights: mean |change| of the
    probabilities on `images`, largest first, as `[{"op", "probability_change"}]`."""
    rows = [{"op": op, "probability_change": float(np.mean(np.abs(
        tflite_predict(weights_only(float_tflite, quantized_ops=[op]), images) - reference)))}
            for op in weighted_ops(float_tflite)]
    return sorted(rows, key=lambda row: -row["probability_change"])


def _recipes(model, calibration, io_type, selection, reference, findings):
    """`(name, model bytes, what stays float)` of each int8 recipe, most integer first, built only when
    asked for; what the search measured on the way goes into `findings`."""
    yield "full-integer", to_tflite(model, "int8", calibration, io_type), {}
    debugger = _debugger(model, calibration)
    errors = layer_errors(debugger)
    findings["worst_layers"] = [{**row, "error_steps": round(row["error_steps"], 3)} for row in errors[:10]]
    for number in FLOAT_LAYER_STEPS:
        if number >= len(errors):  # every layer float is no int8 recipe (and the debugger refuses it)
            break
        tensors = [row["tensor"] for row in errors[:number]]
        yield f"float-layers-{number}", _float_layers(debugger, tensors), {"float_layers": tensors}
    yield "int8-weights", to_tflite(model, "dynamic"), {"float_layers": "every activation"}

    float_tflite = to_tflite(model, "none")
    sensitivity = weight_sensitivity(float_tflite, selection, reference)
    findings["weight_sensitivity"] = [{**row, "probability_change": round(row["probability_change"], 6)}
                                      for row in sensitivity[:10]]
    for number in FLOAT_WEIGHT_OPS_STEPS:
        if number > len(sensitivity):
            return
        ops = [row["op"] for row in sensitivity[:number]]
        candidate = weights_only(float_tflite, float_ops=ops)
        if len(candidate) >= len(float_tflite) / 2:  # no smaller than float16 any more
            return
        yield f"weights-only-{number}", candidate, {"float_layers": "every activation", "float_weight_ops": ops}


def choose_int8(model, calibration, selection, min_agreement, io_type="uint8", strict=False):
    """The most-integer recipe whose agreement with Keras on `selection` (uint8 images) and its noisy
    copies reaches `min_agreement` with room to spare; with `strict`, full integer whatever it scores.

    Returns `(model bytes, record)`: the record names the recipe and what stays float, every recipe
    tried with its agreement and size, the worst layers' errors, the weights' sensitivity and the
    model's noise stability.
    """
    images = with_noisy_copies(selection)
    reference = keras_predict(model, images)
    target = 1.0 - (1.0 - min_agreement) / 2  # room for the verification's own sample of flips
    clean = reference[:count(selection)]
    record = {"selection_images": count(selection), "selection_noise_grey_levels": list(SELECTION_NOISE_GREY_LEVELS),
              "selection_target": target, "tried": [],
              "keras_noise_stability": noise_stability(model, selection, clean)}
    best = None
    for name, model_bytes, floats in _recipes(model, calibration, io_type, selection, clean, record):
        agreement = float(np.mean(tflite_predict(model_bytes, images).argmax(-1) == reference.argmax(-1)))
        log.info("int8 recipe %s: agreement %.4f on %d selection images and their noisy copies, %.2f MB", name,
                 agreement, count(selection), len(model_bytes) / 1e6)
        record["tried"].append({"recipe": name, "agreement": agreement, "bytes": len(model_bytes), **floats})
        if strict or agreement >= target:
            return model_bytes, {**record, "recipe": name, "float_layers": [], **floats}
        if best is None or agreement > best[0]:
            best = (agreement, name, model_bytes, floats)
    agreement, name, model_bytes, floats = best
    log.warning("No int8 recipe reached %.4g agreement (best: %s, %.4f); the Keras model itself keeps %.4f of its "
                "answers under one grey level of noise.", target, name, agreement, record["keras_noise_stability"])
    return model_bytes, {**record, "recipe": name, "float_layers": [], **floats}
