"""Analysis of a trained model on labelled images: metrics, classification report, confusion matrix, t-SNE.

    keras-sign evaluate runs/digits-mobilenetv3_small-20261125-203937

`evaluate_run` writes into the run folder (each name gets `-<name>` before its
extension when it evaluates `--data-dir <folder>` instead of the test split; the
name is the folder's own unless `--name` gives another):

    report.txt  report.json  report.csv   scikit-learn's classification report as text, JSON
                                          (its `output_dict`) and one CSV row per class + averages
    metrics.json                          accuracy, macro/weighted P/R/F1, per-class figures
    confusion_matrix.csv / .png           counts (rows true, columns predicted) / row-normalised
    tsne.csv / tsne.png                   t-SNE of the penultimate features, coloured by true class
    curves.png                            training curves from history.csv (the run's, never suffixed)

Averages (macro, weighted) and per-class rows cover the classes present in the
evaluated images: a folder holding a few of the model's classes is not marked
down for the classes it does not hold.
"""

import logging
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from keras_sign.analysis.calibration import evaluate_calibration
from keras_sign.errors import KerasSignError
from keras_sign.runs.record import RunInfo

log = logging.getLogger("keras_sign")

TSNE_POINTS = 2000  # Barnes-Hut t-SNE of 2000 x 1024 features takes ~6 s on 2 CPU cores
TSNE_SEED = 0
TSNE_THREADED_FROM = 500  # points; below this, t-SNE runs on one thread (see tsne_points)
TSNE_PERPLEXITY = 30.0  # scikit-learn's default, lowered for small sets (it must stay below n)
REPORT_COLUMNS = ("class", "precision", "recall", "f1", "support")
AVERAGES = ("macro avg", "weighted avg")
CONFUSION_CORNER = "true\\predicted"
NO_HAND = "no hand"  # the answer to a photo without a hand, for a model that has no `nothing` class


def report_dict(y_true, y_pred, class_names, labels):
    """scikit-learn's classification report as plain JSON types: one entry per class index in `labels`
    (precision, recall, f1-score, support), then `accuracy`, `macro avg`, `weighted avg` over them."""
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=[class_names[i] for i in labels], output_dict=True,
        zero_division=0,
    )
    report.setdefault("accuracy", float(np.mean(np.asarray(y_true) == np.asarray(y_pred))))
    return {
        key: {k: int(v) if k == "support" else float(v) for k, v in value.items()} if isinstance(value, dict)
        else float(value)
        for key, value in report.items()
        if key != "micro avg"  # reported instead of accuracy when `labels` leave out a predicted class
    }


def report_text(y_true, y_pred, class_names, labels):
    """scikit-learn's classification report over the class indices `labels`, for the terminal and `report.txt`."""
    return classification_report(
        y_true, y_pred, labels=labels, target_names=[class_names[i] for i in labels], digits=3, zero_division=0
    )


def classification_metrics(report, class_names, labels):
    """The `metrics.json` summary of a `report_dict`: accuracy, images, macro and weighted P/R/F1, per class."""

    def figures(entry):
        return {"precision": entry["precision"], "recall": entry["recall"], "f1": entry["f1-score"]}

    present = [class_names[i] for i in labels]
    return {
        "accuracy": report["accuracy"],
        "images": report["macro avg"]["support"],
        "classes_evaluated": len(present),
        "averages_over": f"the {len(present)} of the model's {len(class_names)} classes present in the images",
        "macro": figures(report["macro avg"]),
        "weighted": figures(report["weighted avg"]),
        "per_class": {name: {**figures(report[name]), "support": report[name]["support"]} for name in present},
    }


def report_rows(report, present):
    """Rows of `report.csv`: one per class present, then the macro and weighted averages."""
    return [
        [name, report[name]["precision"], report[name]["recall"], report[name]["f1-score"], report[name]["support"]]
        for name in (*present, *AVERAGES)
    ]


def tsne_points(features, max_points=TSNE_POINTS, seed=TSNE_SEED):
    """2-D t-SNE of the rows of `features`, at most `max_points` of them (a seeded random subsample).

    Returns `(indices, points)`: the rows used, in their original order, and their `(k, 2)` map.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    indices = np.arange(len(features))
    if len(indices) > max_points:
        indices = np.sort(np.random.default_rng(seed).choice(len(indices), max_points, replace=False))
    if len(indices) < 2:
        raise ValueError("t-SNE needs at least 2 points")
    # perplexity ~ the neighbours each point weighs; it must stay below n, and n/3 keeps tiny sets spread out
    perplexity = min(TSNE_PERPLEXITY, (len(indices) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    # Each of the ~1000 gradient steps is an OpenMP region; for a small test split the threads' hand-offs
    # cost more than the work (50 points took 3 s instead of 0.05 s beside another busy process).
    with threadpool_limits(limits=1 if len(indices) < TSNE_THREADED_FROM else None, user_api="openmp"):
        return indices, tsne.fit_transform(np.asarray(features, dtype=np.float64)[indices])


def _images_to_evaluate(run, info, class_names, data_dir, class_map=None):
    """`(root, relative paths, class indices, orientations, crops, hands, description, left-out folders)` of the
    images to score: the test split, or the class folders of `data_dir` mapped onto the model's classes
    (`keras_sign.data.class_map`; `class_map` is a YAML file for what names alone do not match). `crops` are
    the hands' squares under the run's hand stage (None per photo without a hand), or None without a stage;
    `hands` the hands themselves where a landmark model needs them (else None)."""
    from keras_sign.data.class_map import map_classes, read_class_map
    from keras_sign.data.scan import scan_folder, summarised
    from keras_sign.inference.hand_crops import crops_of, hands_of_files, run_hands

    index = {name: i for i, name in enumerate(class_names)}
    if data_dir is None:
        if class_map:
            raise KerasSignError("--class-map maps the classes of a --data-dir folder; add --data-dir PATH.")
        files = run.split_files("test")
        if not files.paths:
            raise KerasSignError(f"{run.path} has no test split to evaluate; pass --data-dir PATH with labelled images.")
        root = Path(info.data_root)
        paths = [str(path.relative_to(root)) for path in files.paths]
        hands = run_hands(run.path, files.paths, root) if info.preprocessing.reads_landmarks else None
        return root, paths, files.labels, files.orientations, files.crops, hands, "test split", []
    table = scan_folder(data_dir, min_classes=1)  # one known class is a fine thing to evaluate
    mapped, left_out = map_classes(table.class_names, class_names, read_class_map(class_map) if class_map else None)
    if left_out:
        log.warning("Left out %d class folder(s) of %s that are not classes of the model: %s.", len(left_out),
                    data_dir, summarised(left_out, "metrics.json lists them all"))
    records = [r for r in table.records if r.label in mapped]
    crops = hands = None
    if info.hands:
        hands = hands_of_files([table.root / r.path for r in records], [r.sha1 for r in records], info.hands)
        crops = crops_of(hands, info.hands)
    return (table.root, [str(r.path) for r in records], [index[mapped[r.label]] for r in records],
            [r.orientation for r in records], crops, hands if info.preprocessing.reads_landmarks else None,
            str(Path(data_dir).resolve()), left_out)


def no_hand_answer(class_names):
    """`(class index, names)`: what a photo without a hand answers. The model's `nothing` class where it has one;
    else a "no hand" column added to the names (wrong for every sign)."""
    from keras_sign.hands.detector import NO_HAND_CLASS

    lower = [str(name).lower() for name in class_names]
    if NO_HAND_CLASS in lower:
        return lower.index(NO_HAND_CLASS), list(class_names)
    return len(class_names), [*class_names, NO_HAND]


def output_suffix(run, data_dir, name, source, tta=False):
    """`-<name>` for the files of a `--data-dir` or `tta` evaluation ("" for the test split), refusing a name whose
    files hold the evaluation of another folder (evalA/test and evalB/test would share `-test`)."""
    if data_dir is None and not tta:
        if name:
            raise KerasSignError("--name names the files of a --data-dir or --tta evaluation; add --data-dir PATH.")
        return ""
    name = name or (Path(source).name if data_dir is not None else "") + ("-tta" if tta else "")
    name = name.lstrip("-")
    if not name or "/" in name or name.startswith("."):
        raise KerasSignError(f"--name '{name}' must be a plain file-name part such as 'phone-photos'.")
    earlier = run.file(f"metrics-{name}.json")
    if earlier.is_file():
        evaluated = run.read_json(earlier.name).get("evaluated_on")
        if evaluated != source or bool(run.read_json(earlier.name).get("test_time_augmentation")) != tta:
            raise KerasSignError(
                f"{earlier} already holds the evaluation of {evaluated}; pass --name to keep both "
                f"(e.g. --name {Path(source).parent.name}-{Path(source).name})."
            )
    return f"-{name}"


def evaluate_run(run_path, data_dir=None, max_tsne_points=TSNE_POINTS, batch_size=64, name=None, class_map=None,
                 tta=False, model=None):
    """Evaluate a run's model on its saved test split, or on another folder whose classes the model
    knows, and write the reports, confusion matrix, t-SNE map and training curves into the run folder.

    Decodes each image once: one model gives both the class probabilities and the penultimate
    features. `name` sets the files' suffix for a `data_dir` (default: the folder's name); `class_map`
    is a YAML file mapping its class folders onto the model's classes where names do not match.
    With fewer classes than the model's, the metrics also hold the accuracy with the prediction
    restricted to the classes evaluated (`accuracy_within_evaluated_classes`). `tta` averages each
    image's probabilities with its mirror image's (for models trained with mirroring). A calibrated run
    (calibration.json) also gets its calibration's effect on these images. `model` is the run's model
    when the caller holds it (training does); by default model.keras is loaded. Returns
    `(metrics, report text, written paths)`.

    Example:
        metrics, report, written = evaluate_run("runs/digits-mobilenetv3_small-20261125-203937")
    """
    from keras_sign.analysis import plots
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.inference.hand_crops import photo_inputs
    from keras_sign.runs.atomic import atomic_write_csv, atomic_write_json, atomic_write_text, check_writable
    from keras_sign.runs.folder import RunFolder

    run = RunFolder.open(run_path)
    check_writable(run.path, "run folder (evaluate writes its reports there)")
    info = RunInfo.read(run.path)
    classifier = load_classifier(run.path, model=model)
    class_names = classifier.class_names
    root, paths, labels, orientations, crops, hands, source, left_out = _images_to_evaluate(run, info, class_names,
                                                                                             data_dir, class_map)
    suffix = output_suffix(run, data_dir, name, source, tta)
    # With a hand stage, the model sees the photos that hold a hand; the others answer `nothing`.
    seen = list(range(len(paths))) if crops is None else [i for i, crop in enumerate(crops) if crop is not None]
    if not seen:
        raise KerasSignError(f"None of the {len(paths)} photos to evaluate holds a hand the hand stage finds.")

    def images(transform=lambda batch: batch):
        return (transform(batch) for batch in photo_inputs(
            [root / paths[i] for i in seen], info.preprocessing,
            None if orientations is None else [orientations[i] for i in seen],
            None if crops is None else [crops[i] for i in seen], None if hands is None else [hands[i] for i in seen],
            batch_size))

    if tta and info.preprocessing.reads_landmarks:
        raise KerasSignError(f"{run.path} reads the hand's landmarks: a left hand is mirrored already; drop --tta.")

    features, seen_probabilities = classifier.features_and_probabilities(images())
    if tta:  # the mean of the image's and its mirror image's probabilities (a left-handed signer's sign)
        mirrored = classifier.predict(images(lambda batch: batch[:, :, ::-1]), calibrated=False)
        seen_probabilities = (seen_probabilities + mirrored) / 2
    y_true = np.asarray(labels)
    probabilities = np.zeros((len(paths), len(class_names)), np.float32)
    probabilities[seen] = seen_probabilities
    y_pred = probabilities.argmax(axis=-1)
    unseen = np.setdiff1d(np.arange(len(paths)), seen)
    if len(unseen):
        answer, class_names = no_hand_answer(class_names)
        y_pred[unseen] = answer
    present = sorted(set(y_true.tolist()))
    # Rows: the classes present; columns: those and any other class the model answered.
    shown = sorted(set(present) | set(y_pred.tolist()))
    with warnings.catch_warnings():  # one class evaluated is fine here; scikit-learn warns about it
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        report = report_dict(y_true, y_pred, class_names, present)
        text = report_text(y_true, y_pred, class_names, present)
        counts = confusion_matrix(y_true, y_pred, labels=shown)
    metrics = {**classification_metrics(report, class_names, present), "evaluated_on": source,
               **({"test_time_augmentation": "mean with the mirror image"} if tta else {})}
    model_classes = len(classifier.class_names)
    if crops is not None:
        metrics["without_hand"] = int(len(unseen))
        text += (f"\n{len(unseen)} of the {len(paths)} photos hold no hand the hand stage finds: they answer "
                 f"'{class_names[answer]}' (counted in every figure above)\n" if len(unseen) else
                 f"\nthe hand stage found a hand in each of the {len(paths)} photos\n")
    if len(present) < model_classes:
        text += f"\n(averages over the {len(present)} of the model's {model_classes} classes present in the images)\n"
        # A model of 36 signs tested on 10 digits: also score it as if it knew only those 10.
        within = np.asarray(present)[probabilities[:, present].argmax(axis=-1)]
        if len(unseen):
            within[unseen] = answer if answer in present else -1
        metrics["accuracy_within_evaluated_classes"] = float(np.mean(within == y_true))
        text += (f"accuracy {metrics['accuracy']:.3f} over all {model_classes} classes; "
                 f"{metrics['accuracy_within_evaluated_classes']:.3f} with the answer restricted to the "
                 f"{len(present)} evaluated\n")
    if left_out:
        metrics["left_out_folders"] = left_out
    calibration = classifier.record.calibration
    if calibration:
        metrics["calibration"], rows_before, rows_after, risk = evaluate_calibration(  # the model's own answers
            seen_probabilities, y_true[seen], calibration.to_json())
        ece, reject = metrics["calibration"]["ece"], metrics["calibration"]["reject"]
        text += (f"calibration (temperature {calibration.temperature:.2f}): ECE {ece['before']:.3f} -> "
                 f"{ece['after']:.3f}; below {reject['threshold']:.2f} confidence the "
                 f"answer is unsure: {100 * reject['answered']:.0f}% answered, {reject['wrong_withheld']} of "
                 f"{reject['wrong']} wrong answers withheld ({reject['right_withheld']} right ones too)\n")
    row_names, column_names = [class_names[i] for i in present], [class_names[i] for i in shown]
    counts = counts[[shown.index(i) for i in present]]
    name, where = run.path.name, "test split" if data_dir is None else Path(source).name

    def path(stem, extension):
        return run.file(f"{stem}{suffix}.{extension}")

    written = [
        atomic_write_text(path("report", "txt"), text),
        atomic_write_json(path("report", "json"), report),
        atomic_write_csv(path("report", "csv"), REPORT_COLUMNS, report_rows(report, row_names)),
        atomic_write_json(path("metrics", "json"), metrics),
        atomic_write_csv(path("confusion_matrix", "csv"), (CONFUSION_CORNER, *column_names),
                         [[class_name, *row] for class_name, row in zip(row_names, counts.tolist())]),
        plots.confusion_matrix_png(counts, row_names, path("confusion_matrix", "png"),
                                   title=f"{name}\n{where}: {len(y_true)} images, accuracy {metrics['accuracy']:.3f}",
                                   column_names=column_names),
    ]

    if calibration:
        written += [
            atomic_write_csv(path("risk_coverage", "csv"), ("threshold", "coverage", "accuracy_of_answers"), risk),
            plots.reliability_png(rows_before, rows_after, risk, path("reliability", "png"),
                                  title=f"{name}, {where}: temperature {calibration.temperature:.2f}"),
        ]
    if len(seen) < 2:
        log.info("Only %d image evaluated: no t-SNE map.", len(seen))
    else:
        chosen, points = tsne_points(features, max_tsne_points)
        rows = np.asarray(seen)[chosen]  # the t-SNE map holds the photos the model saw
        shown = f"{len(chosen)} of {len(y_true)}" if len(chosen) < len(y_true) else f"{len(y_true)}"
        written += [
            atomic_write_csv(path("tsne", "csv"), ("x", "y", "label", "predicted", "path"), [
                [x, y, class_names[labels[i]], class_names[y_pred[i]], paths[i]]
                for i, (x, y) in zip(rows, points.tolist())
            ]),
            plots.tsne_png(points, y_true[rows], class_names, path("tsne", "png"),
                           title=f"t-SNE of penultimate features\n{name}, {where}: {shown} images"),
        ]

    # The training curves belong to the run, not to the evaluated images: one unsuffixed file.
    history = run.read_history()
    if history:
        written.append(plots.curves_png(history, run.file("curves.png"), title=f"{name}: training curves"))
    elif not info.is_ensemble:  # an ensemble was never trained
        log.info("%s has no finished epoch in history.csv: no curves.png.", run.path)
    return metrics, text, written
