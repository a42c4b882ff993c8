"""Metrics of a trained model on a labelled dataset: accuracy, per-class and macro figures."""

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, precision_recall_fscore_support

from keras_sign.errors import KerasSignError


def predict_classes(model, dataset):
    """True and predicted class indices over a batched dataset of `(images, one-hot labels)`."""
    y_true, y_pred = [], []
    for images, one_hot in dataset.as_numpy_iterator():
        probabilities = model.predict_on_batch(images)
        y_true.append(np.argmax(one_hot, axis=-1))
        y_pred.append(np.argmax(np.asarray(probabilities), axis=-1))
    return np.concatenate(y_true), np.concatenate(y_pred)


def classification_metrics(y_true, y_pred, class_names):
    """A JSON-ready dict: accuracy, macro and weighted P/R/F1, and per-class figures with support."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "images": int(len(y_true)),
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
    }


def report_text(y_true, y_pred, class_names):
    """scikit-learn's classification report, for the terminal and `report.txt`."""
    labels = list(range(len(class_names)))
    return classification_report(
        y_true, y_pred, labels=labels, target_names=class_names, digits=3, zero_division=0
    )


def evaluate_model(model, paths, labels, class_names, image_size, batch_size=64):
    """Predict a labelled list of image files; return `(metrics dict, report text)`."""
    from keras_sign.data.pipeline import make_dataset

    dataset = make_dataset(paths, labels, len(class_names), image_size, batch_size)
    y_true, y_pred = predict_classes(model, dataset)
    return classification_metrics(y_true, y_pred, class_names), report_text(y_true, y_pred, class_names)


def evaluate_run(run_path, data_dir=None):
    """Evaluate a run's model on its saved test split, or on another folder with the same class names.

    Writes `metrics.json` + `report.txt` (test split) or `metrics-<folder>.json` +
    `report-<folder>.txt` (another folder) into the run folder.
    Returns `(metrics, report, written metrics path)`.
    """
    from keras_sign.data.scan import scan_folder
    from keras_sign.runs import RunFolder, atomic_write_text

    run = RunFolder.open(run_path)
    info = run.read_json("run.json")
    class_names = run.read_json("classes.json")
    index = {name: i for i, name in enumerate(class_names)}
    if data_dir is None:
        rows = [row for row in run.read_split() if row["split"] == "test"]
        if not rows:
            raise KerasSignError(f"{run.path} has no test split to evaluate; pass --data-dir PATH with labelled images.")
        root = Path(info["data_root"])
        paths = [root / row["path"] for row in rows]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise KerasSignError(
                f"{len(missing)} test image(s) are gone from {root} (e.g. {missing[0]}); "
                "restore the data or pass --data-dir PATH."
            )
        labels = [index[row["label"]] for row in rows]
        source, suffix = "test split", ""
    else:
        table = scan_folder(data_dir)
        unknown = sorted(set(table.class_names) - set(class_names))
        if unknown:
            raise KerasSignError(
                f"Class folder(s) {', '.join(unknown)} in {data_dir} are not classes of this model "
                f"({', '.join(class_names)}); remove them or evaluate a model trained on them."
            )
        paths = [table.root / r.path for r in table.records]
        labels = [index[r.label] for r in table.records]
        source, suffix = str(Path(data_dir).resolve()), f"-{Path(data_dir).resolve().name}"
    model = run.load_model()
    metrics, report = evaluate_model(model, paths, labels, class_names, info["image_size"])
    metrics["evaluated_on"] = source
    written = run.file(f"metrics{suffix}.json")
    run.write_json(written.name, metrics)
    atomic_write_text(run.file(f"report{suffix}.txt"), report)
    return metrics, report, written
