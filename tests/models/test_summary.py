"""`keras-sign models` (`keras_sign.models.summary`, `keras_sign.models.flops`): parameters and multiply-adds
counted from the built graphs."""

from conftest import assert_ok as _assert_ok
from conftest import run_cli


def test_models_table_counts_parameters_and_flops_from_the_graph():
    result = run_cli("models")
    _assert_ok(result)
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    # torchvision publishes 11,689,512 parameters and 1.814 GFLOPS (multiply-adds) for resnet18 at 224.
    assert "11,689,512" in rows["resnet18"] and "| 1.814 |" in rows["resnet18"]
    assert "| 0.057 |" in rows["mobilenetv3_small"] and "mobilenetv3" in rows["mobilenetv3_small"]
    assert len([name for name in rows if name.startswith("shufflenetv2_x")]) == 4
    # The fusion model: MobileNetV3-Small's backbone (its classifier left out) beside the landmark branch.
    assert "| 0.056 |" in rows["fusion:mobilenetv3_small"] and "fusion:<any CNN above>" in rows["fusion:mobilenetv3_small"]
