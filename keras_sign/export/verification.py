"""Does an exported model answer as the Keras model does? The rule every export must pass.

    keras-sign export runs/digits-mobilenetv3_small-20261125-203937 --quantize int8 --min-agreement 0.99

Both models see the same decoded test images (joined by held-back training images when the test
split is small: `pooled_verification`). A float32 export must agree on every top-1
class and stay within `FLOAT32_MAX_DIFF` of the Keras probabilities; a quantized one (float16,
dynamic, int8) changes the numbers by design, so only its top-1 agreement is held to a threshold
and its largest difference is reported.
"""

import numpy as np

from keras_sign.tables import markdown_table

FLOAT32_MAX_DIFF = 1e-4
DEFAULT_MIN_AGREEMENT = 0.99


def compare_predictions(reference, exported, labels, quantized, min_agreement=DEFAULT_MIN_AGREEMENT):
    """Accuracy of both, top-1 agreement and max |diff| of the probabilities, and whether they pass.

    Args:
        reference: Keras probabilities `(n, classes)`.
        exported: the export's probabilities on the same images.
        labels: true class indices `(n,)`.
        quantized: the export is quantized (the max-diff limit does not apply).
        min_agreement: the lowest top-1 agreement a quantized export may have.

    Returns:
        A JSON-ready dict: `images`, `keras_accuracy`, `export_accuracy`, `agreement`,
        `max_abs_diff`, `rule`, `verified` and `failures` (sentences, empty when verified).
    """
    reference, exported, labels = np.asarray(reference), np.asarray(exported), np.asarray(labels)
    agreement = float(np.mean(reference.argmax(-1) == exported.argmax(-1)))
    max_diff = float(np.max(np.abs(reference - exported)))
    failures = []
    if quantized:
        rule = f"top-1 agreement >= {min_agreement:g}"
        if agreement < min_agreement:
            failures.append(f"top-1 agreement {agreement:.4f} is below {min_agreement:g}")
    else:
        rule = f"top-1 agreement 100% and max |diff| <= {FLOAT32_MAX_DIFF:g}"
        if agreement < 1.0:
            failures.append(f"top-1 agreement {agreement:.4f} is below 1")
        if not max_diff <= FLOAT32_MAX_DIFF:  # `not <=` also catches NaN
            failures.append(f"max |diff| {max_diff:.3g} is above {FLOAT32_MAX_DIFF:g}")
    return {
        "images": int(len(labels)),
        "keras_accuracy": float(np.mean(reference.argmax(-1) == labels)),
        "export_accuracy": float(np.mean(exported.argmax(-1) == labels)),
        "agreement": agreement,
        "max_abs_diff": max_diff,
        "rule": rule,
        "verified": not failures,
        "failures": failures,
    }


def verification_table(result, export_name, keras_name="Keras"):
    """A Markdown table of a verification (a row pair per image set, then the pooled one), then the verdict."""
    verdict = "verified" if result["verified"] else "NOT verified: " + "; ".join(result["failures"])
    sets = result.get("sets") or {result.get("split", "test"): result}
    shown = list(sets.items()) + ([("pooled", result)] if len(sets) > 1 else [])
    rows = []
    for name, figures in shown:
        rows += [
            [f"{figures['images']} {name}", keras_name, f"{figures['keras_accuracy']:.3f}", "", ""],
            ["", export_name, f"{figures['export_accuracy']:.3f}", f"{figures['agreement']:.3f}",
             f"{figures['max_abs_diff']:.2g}"],
        ]
    table = markdown_table(["images", "model", "top-1 accuracy", "top-1 agreement", "max abs diff"], rows, "llrrr")
    return f"{table}\n{verdict} (rule: {result['rule']}, on {result['images']} images)"


def pooled_verification(results, quantized, min_agreement=DEFAULT_MIN_AGREEMENT):
    """`compare_predictions` over several image sets pooled, with each set's own figures under `sets`.

    `results` maps a set's name ("test", and for a small test split the held-back training images
    that join it, so that one flipped photo is not 2.5 points) to `(reference, exported, labels)`.
    The verdict is the pooled one.
    """
    sets = {name: compare_predictions(*arrays, quantized, min_agreement) for name, arrays in results.items()}
    pooled = compare_predictions(*(np.concatenate(column) for column in zip(*results.values())), quantized,
                                 min_agreement)
    return {**pooled, "split": " + ".join(results), "sets": sets}
