"""The int8 recipe search: weight-only int8 with chosen ops kept float, and the ladder's order and end.

The exports of trained runs (tests/export/test_bundle.py) check that a chosen recipe verifies; here a small
untrained model shows the mechanics that those runs may not reach.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.xdist_group("quantization")


@pytest.fixture(scope="module")
def small_model():
    """Two convolutions and two dense layers: enough weights that int8 files are well under float16."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, strides=2, activation="relu")(x)
    x = keras.layers.Dense(256, activation="relu")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x), name="small")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def float_tflite(small_model):
    from keras_sign.export.tflite import to_tflite

    return to_tflite(small_model, "none")


def weight_types(model_bytes):
    """dtype each weighted op's weights are stored in, in graph order (looking through a DEQUANTIZE)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    dequantized = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
    weights = [op["inputs"][1] for op in ops if op["op_name"] in {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}]
    return [tensors[dequantized.get(index, index)]["dtype"].__name__ for index in weights]


def test_weights_only_keeps_the_named_ops_float(float_tflite, small_model, images):
    from keras_sign.export.quantization import tflite_predict, weighted_ops, weights_only

    ops = weighted_ops(float_tflite)
    assert len(ops) == 4 and all(op.endswith(";") for op in ops)
    assert weight_types(float_tflite) == ["float32"] * 4

    every = weights_only(float_tflite)
    assert weight_types(every) == ["int8"] * 4
    assert len(every) < len(float_tflite) / 2

    kept = weights_only(float_tflite, float_ops=[ops[1], ops[2]])
    assert weight_types(kept) == ["int8", "float32", "float32", "int8"]
    assert len(every) < len(kept) < len(float_tflite)

    only = weights_only(float_tflite, quantized_ops=[ops[0]])
    assert weight_types(only) == ["int8", "float32", "float32", "float32"]

    # The weights are turned back into float32 in the graph: the answers are close to Keras'.
    reference = small_model.predict(images.astype(np.float32), verbose=0)
    assert np.abs(tflite_predict(every, images) - reference).max() < 0.02


def test_weight_sensitivity_ranks_every_weighted_op(float_tflite, small_model, images):
    from keras_sign.export.quantization import weight_sensitivity, weighted_ops

    reference = small_model.predict(images.astype(np.float32), verbose=0)
    ranked = weight_sensitivity(float_tflite, images, reference)
    assert sorted(row["op"] for row in ranked) == sorted(weighted_ops(float_tflite))
    changes = [row["probability_change"] for row in ranked]
    assert changes == sorted(changes, reverse=True) and changes[0] > 0


def test_the_ladder_ends_where_a_file_would_reach_float16_size(small_model, images):
    from keras_sign.export.quantization import choose_int8

    # No recipe can agree on more than every image, so the whole ladder is walked and the best kept.
    model_bytes, record = choose_int8(small_model, images[:30], images[30:], min_agreement=1.01, io_type="float32")
    layers = len(record["worst_layers"])  # fewer than the ten listed: this model has few layers
    assert 2 < layers < 8
    names = [tried["recipe"] for tried in record["tried"]]
    assert names == ["full-integer", *(f"float-layers-{count}" for count in (1, 2, 4) if count < layers),
                     "int8-weights", "weights-only-0"]  # weights-only-4 keeps all four ops float: not smaller
    assert record["selection_images"] == 30 and record["selection_noise_grey_levels"] == [2.0, 4.0, 8.0]
    best = max(record["tried"], key=lambda tried: tried["agreement"])
    assert record["recipe"] == best["recipe"] and len(model_bytes) == best["bytes"]
    assert len(record["weight_sensitivity"]) == 4 and len(record["worst_layers"]) > 0
    assert record["tried"][-1]["float_weight_ops"] == []


def test_strict_int8_takes_full_integer_whatever_it_scores(small_model, images):
    from keras_sign.export.quantization import choose_int8

    _, record = choose_int8(small_model, images[:30], images[30:], min_agreement=1.01, strict=True)
    assert record["recipe"] == "full-integer" and len(record["tried"]) == 1 and "weight_sensitivity" not in record
