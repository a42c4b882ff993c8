"""`keras_sign.export.formats`: ONNX and SavedModel exports of a trained run, verified in onnxruntime and in
TensorFlow."""

from pathlib import Path

import pytest

from export_fixtures import CLASSES, export_once, trained_runs  # noqa: F401  (fixtures)

# Its tests share the session's trained runs and exports with the other export tests: one worker runs them all
# (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("export")


@pytest.mark.slow
def test_onnx_export_is_verified_in_onnxruntime(export_once):
    record = export_once("tensorflow", "onnx")
    bundle = Path(record["bundle"])
    assert (bundle / "model.onnx").is_file() and (bundle / "labels.txt").read_text().splitlines() == CLASSES
    assert record["verified"] and record["verification"]["agreement"] == 1.0
    assert record["verification"]["max_abs_diff"] <= 1e-4
    assert record["input"] == {"name": "image", "shape": [1, 32, 32, 3], "dtype": "float32", "layout": "NHWC",
                               "channels": "RGB", "pixel_range": [0, 255], "batch": "the batch dimension can be resized"}
    assert record["converter"]["opset"] >= 13 and "onnxruntime" in record["verification"]["runtime"]


@pytest.mark.slow
def test_saved_model_export_is_verified_in_tensorflow(export_once):
    record = export_once("tensorflow", "saved_model")
    assert (Path(record["bundle"]) / "saved_model" / "saved_model.pb").is_file()
    assert record["verified"] and record["verification"]["max_abs_diff"] <= 1e-4
