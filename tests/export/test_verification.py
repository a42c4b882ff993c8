"""`keras_sign.export.verification`: the rule an exported model's answers must meet against Keras'."""

import pytest


def test_verification_rule():
    import numpy as np

    from keras_sign.export.verification import compare_predictions

    reference = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    close = compare_predictions(reference, reference + 5e-5, labels, quantized=False)
    assert close["verified"] and close["agreement"] == 1.0 and close["keras_accuracy"] == pytest.approx(2 / 3)
    far = compare_predictions(reference, reference + 2e-4, labels, quantized=False)
    assert not far["verified"] and "max |diff|" in far["failures"][0]
    assert compare_predictions(reference, reference + 0.05, labels, quantized=True)["verified"]
    flipped = reference.copy()
    flipped[2] = [0.4, 0.6]
    result = compare_predictions(reference, flipped, labels, quantized=True, min_agreement=0.9)
    assert not result["verified"] and result["agreement"] == pytest.approx(2 / 3)
    assert result["export_accuracy"] == 1.0
    assert not compare_predictions(reference, np.full_like(reference, np.nan), labels, quantized=False)["verified"]
