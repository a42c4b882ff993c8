"""int8 TFLite chosen by measurement: the most-integer recipe whose answers agree with Keras.

    keras-sign export RUN --quantize int8           # the most-integer recipe that verifies
    keras-sign export RUN --quantize int8-strict    # every op int8 (for NPUs), as it comes out

Recipes, most integer first; all store int8 weights, so each file stays well under a float16 one:

    full-integer      every op int8, calibrated on training images (`--io` sets the input and output type)
    float-layers-K    the K layers the quantization debugger finds worst (error in quantization steps
                      on the calibration images) run in float32, the rest int8; float32 input and output
    int8-weights      int8 weights, float32 activations (dynamic-range quantization)

A recipe is taken when its top-1 agreement with Keras on the *selection* images (the validation
split and training images outside the calibration sample, never the test split) leaves at most half
the disagreements `--min-agreement` allows (0.995 for 0.99): on a hundred or two images the estimate
is a few flips either way, and the export is then verified on other images, as every export is.

What no recipe can beat is the Keras model's own steadiness: `noise_stability` measures how many
answers survive Gaussian noise of one grey level on the input, which is smaller than what int8
rounding does inside the network. A model that changes 2% of its answers under such noise cannot
be quantized to 99% agreement; train it longer (measured in the README).
"""

import csv
import io
import logging
import tempfile

import numpy as np

from keras_sign.export_formats import quiet_native_output, to_tflite

log = logging.getLogger("keras_sign")

FLOAT_LAYER_STEPS = (1, 2, 4, 8)
NOISE_GREY_LEVELS = 1.0
DEBUG_IMAGES = 50  # calibration images the debugger measures each layer's error on


def tflite_predict(model_bytes, images, batch=32):
    """Probabilities of a TFLite model (bytes) on uint8 images, in LiteRT as an app runs it."""
    from keras_sign.runtimes import TFLiteModel, predict_in_batches

    with tempfile.NamedTemporaryFile(suffix=".tflite") as file:
        file.write(model_bytes)
        file.flush()
        return predict_in_batches(TFLiteModel(file.name).predict, images, batch)


def noise_stability(keras_model, images, reference, seed=0):
    """Top-1 agreement of the Keras model with itself when one grey level of Gaussian noise is added."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE_GREY_LEVELS, images.shape)
    noisy = np.clip(images.astype(np.float32) + noise, 0, 255).astype(np.float32)
    return float(np.mean(keras_model.predict(noisy, verbose=0).argmax(-1) == reference.argmax(-1)))


def _debugger(model, calibration):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.asarray(x, np.float32)[None]] for x in calibration)
    debug_images = calibration[:DEBUG_IMAGES]
    with quiet_native_output():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([np.asarray(x, np.float32)[None]] for x in debug_images))
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


def choose_int8(model, calibration, selection, min_agreement, io_type="uint8", strict=False):
    """The most-integer recipe whose agreement with Keras on `selection` (uint8 images) reaches
    `min_agreement`; with `strict`, full integer whatever it scores.

    Returns `(model bytes, record)`: the record names the recipe, the float layers, every recipe
    tried with its agreement and size, the worst layers' errors and the model's noise stability.
    """
    reference = model.predict(selection.astype(np.float32), verbose=0)
    target = 1.0 - (1.0 - min_agreement) / 2  # room for the verification's own sample of flips

    def measured(name, model_bytes, **extra):
        agreement = float(np.mean(tflite_predict(model_bytes, selection).argmax(-1) == reference.argmax(-1)))
        log.info("int8 recipe %s: agreement %.4f on %d selection images, %.2f MB", name, agreement, len(selection),
                 len(model_bytes) / 1e6)
        return {"recipe": name, "agreement": agreement, "bytes": len(model_bytes), **extra}

    full = to_tflite(model, "int8", calibration, io_type)
    tried = [measured("full-integer", full)]
    record = {"selection_images": len(selection), "selection_target": target, "tried": tried,
              "keras_noise_stability": noise_stability(model, selection, reference)}
    if strict or tried[0]["agreement"] >= target:
        return full, {**record, "recipe": "full-integer", "float_layers": []}

    debugger = _debugger(model, calibration)
    errors = layer_errors(debugger)
    record["worst_layers"] = [{**row, "error_steps": round(row["error_steps"], 3)} for row in errors[:10]]
    best = (tried[0], full)
    for count in FLOAT_LAYER_STEPS:
        tensors = [row["tensor"] for row in errors[:count]]
        candidate = _float_layers(debugger, tensors)
        tried.append(measured(f"float-layers-{count}", candidate, float_layers=tensors))
        if tried[-1]["agreement"] >= target:
            return candidate, {**record, "recipe": tried[-1]["recipe"], "float_layers": tensors}
        best = max(best, (tried[-1], candidate), key=lambda pair: pair[0]["agreement"])
    weights_only = to_tflite(model, "dynamic")
    tried.append(measured("int8-weights", weights_only, float_layers="every activation"))
    if tried[-1]["agreement"] >= target:
        return weights_only, {**record, "recipe": "int8-weights", "float_layers": "every activation"}
    best = max(best, (tried[-1], weights_only), key=lambda pair: pair[0]["agreement"])
    log.warning("No int8 recipe reached %.4g agreement (best: %s, %.4f); the Keras model itself keeps %.4f of its "
                "answers under one grey level of noise.", target, best[0]["recipe"], best[0]["agreement"],
                record["keras_noise_stability"])
    return best[1], {**record, "recipe": best[0]["recipe"], "float_layers": best[0].get("float_layers", [])}
