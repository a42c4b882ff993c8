"""`keras-sign crossval`: leave-one-signer-out (or stratified k-fold) training and evaluation.

    keras-sign crossval --config configs/massey.yaml --out crossval/massey              # one fold per signer
    keras-sign crossval --data-dir ../shared/data/sign_language_digits --folds 5 --out crossval/digits

Each fold is a complete run folder, OUT/<fold>/, trained with `keras-sign train`'s machinery on a
split whose test part is one signer (or one stratified fold): every signer is tested exactly once,
by a model that never saw them. A killed crossval starts again where it stopped: finished folds are
kept, an interrupted one resumes from its checkpoint. OUT/crossval.json and crossval.md hold the
per-fold and mean +- std accuracy and macro F1; confusion_matrix.csv/.png pool every fold's test images.
"""

import collections
import contextlib
import dataclasses
import logging
from pathlib import Path

import numpy as np

from keras_sign.analysis.evaluate import CONFUSION_CORNER
from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import atomic_write_csv, atomic_write_json, atomic_write_text, read_csv
from keras_sign.runs.folder import RunFolder
from keras_sign.runs.locks import FolderLock
from keras_sign.runs.record import read_classes
from keras_sign.tables import markdown_table

log = logging.getLogger("keras_sign")

TOP_CONFUSIONS = 8  # wrong answers named in crossval.md


def fold_plan(config, folds):
    """`[(fold name, config changes)]`: one fold per signer (`folds="signer"`) or `folds` stratified folds."""
    from keras_sign.data.catalog import scan_dataset

    if str(folds) == "signer":
        table = scan_dataset(config.dataset, config.data_dir, config.classes, config.cache_dir)
        signers = sorted({record.group for record in table.records if record.group})
        if len(signers) < 2:
            raise KerasSignError(f"{table.root} has {len(signers)} signer folder(s); leave-one-signer-out needs 2 "
                                 "or more (ROOT/SIGNER/CLASS/image), or use --folds K for stratified folds.")
        return [(f"signer-{signer}", {"split": "signer", "test_signers": signer}) for signer in signers]
    if not str(folds).isdigit() or int(folds) < 2:
        raise KerasSignError(f"--folds must be 'signer' or a number of folds >= 2 (got '{folds}').")
    count = int(folds)
    check_every_fold_tests(config, count)
    return [(f"fold-{i}-of-{count}", {"split": "stratified", "fold": f"{i}/{count}"}) for i in range(1, count + 1)]


def check_every_fold_tests(config, count):
    """Refuse, before any training, a number of stratified folds that leaves a fold without test images."""
    from keras_sign.data.catalog import scan_dataset
    from keras_sign.data.split import split_stratified_fold

    table = scan_dataset(config.dataset, config.data_dir, config.classes, config.cache_dir)
    if config.limit_per_class:
        table = table.limited(config.limit_per_class)
    empty = [fold for fold in range(1, count + 1)
             if "test" not in split_stratified_fold(table.labels, fold, count, config.val_fraction, config.seed)]
    if empty:
        largest = max(collections.Counter(table.labels).values())
        limit = f" (at most {config.limit_per_class} per class with --limit-per-class)" if config.limit_per_class else ""
        advice = f"use --folds {largest} or fewer" if largest >= 2 else "each class needs 2 images or more"
        raise KerasSignError(f"--folds {count} leaves {len(empty)} fold(s) without test images: the largest class of "
                             f"{table.root} has {largest} images{limit}; {advice}.")


def pooled_confusion(runs):
    """Sum of the folds' test confusion matrices: `(row names, column names, counts)`."""
    totals = {}
    for run in runs:
        for row in read_csv(Path(run) / "confusion_matrix.csv"):
            true = row.pop(CONFUSION_CORNER)
            for column, count in row.items():
                totals[true, column] = totals.get((true, column), 0) + int(count)
    order = read_classes(runs[0])
    row_names = [name for name in order if any(r == name for r, _ in totals)]
    column_names = [name for name in order if any(c == name for _, c in totals)]
    counts = np.array([[totals.get((r, c), 0) for c in column_names] for r in row_names])
    return row_names, column_names, counts


def _scores(run):
    metrics = RunFolder(run).read_json("metrics.json")
    return metrics["accuracy"], metrics["images"]


def summarize(names, runs):
    """Per-fold and mean +- std (sample) accuracy and macro F1 of the folds' test splits."""
    folds = []
    for name, run in zip(names, runs):
        metrics = RunFolder(run).read_json("metrics.json")
        folds.append({"fold": name, "run": str(run), "test_images": metrics["images"],
                      "accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"]})
    summary = {"folds": folds}
    for key in ("accuracy", "macro_f1"):
        values = np.array([fold[key] for fold in folds])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    pooled = sum(fold["accuracy"] * fold["test_images"] for fold in folds) / sum(f["test_images"] for f in folds)
    summary["pooled_accuracy"] = float(pooled)
    return summary


def top_confusions(row_names, column_names, counts, limit=TOP_CONFUSIONS):
    """The most frequent wrong answers of a confusion matrix, most first: `[{"true", "predicted", "count"}]`."""
    wrong = [(int(counts[i, j]), true, predicted) for i, true in enumerate(row_names)
             for j, predicted in enumerate(column_names) if true != predicted and counts[i, j] > 0]
    wrong.sort(key=lambda entry: -entry[0])  # stable: ties keep the classes' order
    return [{"true": true, "predicted": predicted, "count": count} for count, true, predicted in wrong[:limit]]


def markdown(summary):
    rows = [[f["fold"], f["test_images"], f"{f['accuracy']:.3f}", f"{f['macro_f1']:.3f}"] for f in summary["folds"]]
    accuracy, f1 = summary["accuracy"], summary["macro_f1"]
    rows.append(["mean +- std", sum(f["test_images"] for f in summary["folds"]),
                 f"{accuracy['mean']:.3f} +- {accuracy['std']:.3f}", f"{f1['mean']:.3f} +- {f1['std']:.3f}"])
    text = markdown_table(["fold", "test images", "accuracy", "macro F1"], rows, "lrrr") + "\n"
    if summary.get("top_confusions"):
        text += "\nmost frequent confusions (true as predicted, all folds): " + ", ".join(
            f"{entry['true']} as {entry['predicted']} {entry['count']}" for entry in summary["top_confusions"]) + "\n"
    return text


def write_report(out, head, names, runs):
    """Write crossval.json / .md and the pooled confusion matrix of the evaluated fold runs into `out`;
    return the summary: `head` (how the folds were made, what was trained) and `summarize`'s figures."""
    from keras_sign.analysis import plots

    summary = {**head, **summarize(names, runs)}
    rows, columns, counts = pooled_confusion(runs)
    summary["top_confusions"] = top_confusions(rows, columns, counts)
    atomic_write_json(out / "crossval.json", summary)
    atomic_write_text(out / "crossval.md", markdown(summary))
    atomic_write_csv(out / "confusion_matrix.csv", (CONFUSION_CORNER, *columns),
                     [[name, *row] for name, row in zip(rows, counts.tolist())])
    plots.confusion_matrix_png(counts, rows, out / "confusion_matrix.png", column_names=columns,
                               title=f"{out.name}: {len(runs)} folds pooled, {int(counts.sum())} test images, "
                                     f"accuracy {summary['pooled_accuracy']:.3f}")
    return summary


def crossval(config, folds, backend, reason):
    """Train and evaluate every fold into `config.out`; return the summary dict (also in crossval.json)."""
    from keras_sign.analysis.evaluate import evaluate_run
    from keras_sign.runs.atomic import check_writable
    from keras_sign.training.fit import train_or_resume

    if not config.out:
        raise KerasSignError("Pass --out FOLDER: crossval writes one run folder per fold there.")
    if config.test_signers or config.fold:
        raise KerasSignError("crossval chooses each fold's test split itself; leave out --test-signers and --fold.")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out, "crossval folder")
    plan = fold_plan(config, folds)
    with contextlib.ExitStack() as held:
        held.enter_context(FolderLock(out, "crossval folder"))
        runs = []
        for number, (name, changes) in enumerate(plan, 1):
            log.info("crossval fold %d of %d: %s", number, len(plan), name)
            fold_config = dataclasses.replace(config, out=str(out / name), **changes).validate()
            runs.append(train_or_resume(fold_config, backend, reason))
            if not (runs[-1] / "metrics.json").is_file():  # a fold finished by an older version, never evaluated
                evaluate_run(runs[-1], batch_size=fold_config.batch_size)
            log.info("fold %s: test accuracy %.3f on %d images", name, *_scores(runs[-1]))
        summary = write_report(out, {"folds_by": "signer" if str(folds) == "signer" else f"stratified {folds}-fold",
                                     "arch": config.arch}, [name for name, _ in plan], runs)
    return summary
