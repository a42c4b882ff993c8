"""`keras_sign.export.benchmark` and `keras-sign benchmark`: Keras, LiteRT and onnxruntime side by side."""

import pytest

from export_fixtures import export_once, trained_runs  # noqa: F401  (fixtures)

# It shares the session's trained runs and exports with the other export tests: one worker runs them all
# (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("export")


@pytest.mark.slow  # moved from the fast tier, which stays under 5 minutes on 2 cores
def test_benchmark_command_compares_keras_tflite_and_onnx_side_by_side(trained_runs, export_once):
    from click.testing import CliRunner

    from keras_sign.cli import cli

    run = trained_runs["tensorflow"]
    tflite, onnx = export_once("tensorflow")["bundle"], export_once("tensorflow", "onnx")["bundle"]
    result = CliRunner().invoke(cli, ["benchmark", str(run / "model.keras"), tflite, f"{onnx}/model.onnx",
                                      "--runs", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    rows = [line.split("|")[1:-1] for line in result.output.splitlines() if line.startswith("| run-")]
    assert [(row[0].strip(), row[1].strip()) for row in rows] == [
        ("run-tensorflow/model.keras", "Keras (tensorflow)"),
        ("run-tensorflow-tflite-none", "LiteRT"),
        ("run-tensorflow-onnx-none/model.onnx", "onnxruntime"),
    ]
    assert all(float(value) > 0 for row in rows for value in row[3:])  # sizes, latencies, throughput
    assert "1 thread(s)" in result.output
