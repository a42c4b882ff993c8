"""Several run folders side by side: size, cost, test figures and speed in one table, plus shared figures.

    keras-sign compare runs/digits-resnet18-20261125-120000 runs/digits-mobilenetv3_small-20261125-121500

Writes into `--out` (default `runs/compare-<time>`): `compare.csv` (full precision),
`compare.md` (the printed table), `val_curves.png` (validation accuracy and loss of
every run) and `tsne_grid.png` (each run's t-SNE map, colours shared by class name).
A run without `metrics.json` or `tsne.csv` is evaluated on its test split first.
"""

import json
import logging
import time
from pathlib import Path

from keras_sign import tables
from keras_sign.errors import KerasSignError
from keras_sign.models.saving import load_model
from keras_sign.runs.atomic import atomic_write_csv, atomic_write_text, read_csv
from keras_sign.runs.folder import RunFolder, create_empty_folder
from keras_sign.runs.record import RunInfo, read_classes

log = logging.getLogger("keras_sign")


def _figure(spec):
    return lambda value: format(value, spec)


# (compare.csv column, Markdown header, Markdown format); text columns have no format
COLUMNS = (
    ("run", "run", None),
    ("arch", "arch", None),
    ("dataset", "dataset", None),
    ("split", "split", None),
    ("backend", "backend", None),
    ("parameters", "parameters", _figure(",")),
    ("gmacs", "GMACs", _figure(".4f")),  # at the run's image size; 32 px models are well under 0.01
    ("test_images", "test images", _figure("d")),
    ("test_accuracy", "test accuracy", _figure(".3f")),
    ("macro_precision", "macro precision", _figure(".3f")),
    ("macro_recall", "macro recall", _figure(".3f")),
    ("macro_f1", "macro F1", _figure(".3f")),
    ("mean_epoch_seconds", "s/epoch", _figure(".2f")),
    ("images_per_second", "images/s", _figure(".1f")),  # training images per second
    ("crossval", "crossval accuracy", None),  # the mean +- std of the crossval the run is a fold of
    ("other_data", "other data: accuracy (within its classes)", None),  # evaluate --data-dir results
)


def _generalisation(run):
    """`(crossval cell, other-data cell)`: how the run does on other signers and on other datasets."""
    crossval = None
    summary_file = run.path.parent / "crossval.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        accuracy = summary["accuracy"]
        crossval = f"{accuracy['mean']:.3f} +- {accuracy['std']:.3f} ({len(summary['folds'])} folds)"
    others = []
    for path in sorted(run.path.glob("metrics-*.json")):
        metrics = json.loads(path.read_text(encoding="utf-8"))
        within = metrics.get("accuracy_within_evaluated_classes")
        others.append(f"{path.stem[len('metrics-'):]} {metrics['accuracy']:.3f}"
                      + (f" ({within:.3f})" if within is not None else ""))
    return crossval, "; ".join(others) or None


def steady_mean(history, column):
    """Mean of `column` over the epochs after the first: the first includes graph tracing and compiling
    (15 of the 16 s of a tiny CPU run here), which would turn the speed columns into start-up time."""
    values = [float(row[column]) for row in history if row.get(column) not in (None, "")]
    steady = values[1:] or values
    return sum(steady) / len(steady) if steady else None


def _ensure_evaluated(run):
    """Evaluate `run` on its test split when its metrics or t-SNE points are missing (e.g. an older run)."""
    from keras_sign.analysis.evaluate import evaluate_run

    missing = [name for name in ("metrics.json", "tsne.csv") if not run.file(name).is_file()]
    if not missing:
        return
    log.info("%s has no %s: evaluating it on its test split first.", run.path, " or ".join(missing))
    try:
        evaluate_run(run.path)
    except KerasSignError as error:
        # One run whose data moved should not block comparing the rest; its cells stay empty.
        log.warning("%s could not be evaluated (%s); its test columns and t-SNE panel stay empty.", run.path, error)


def run_row(run, label, history):
    """One table row of `run` as a dict keyed by the `COLUMNS` names (None where a figure is unknown)."""
    from keras_sign.models.flops import count_multiply_adds
    from keras_sign.models.summary import count_parameters

    info = RunInfo.read(run.path)
    metrics = run.read_json("metrics.json") if run.file("metrics.json").is_file() else {}
    model = load_model(run.path)
    model.trainable = True  # a run saved with its backbone still frozen has all of it; count it all
    macro = metrics.get("macro", {})
    crossval, other_data = _generalisation(run)
    return {
        "run": label,
        "arch": info.arch,
        "dataset": info.dataset,
        "split": info.split_method,
        "backend": info.backend,
        "parameters": count_parameters(model),
        "gmacs": count_multiply_adds(model) / 1e9,
        "test_images": metrics.get("images"),
        "test_accuracy": metrics.get("accuracy"),
        "macro_precision": macro.get("precision"),
        "macro_recall": macro.get("recall"),
        "macro_f1": macro.get("f1"),
        "mean_epoch_seconds": steady_mean(history, "epoch_seconds"),
        "images_per_second": steady_mean(history, "images_per_second"),
        "crossval": crossval,
        "other_data": other_data,
    }


def compare_table(rows):
    """The rows as a Markdown table, numbers right-aligned, unknown figures as `-`."""
    cells = [[row[key] if row[key] is None or fmt is None else fmt(row[key]) for key, _, fmt in COLUMNS]
             for row in rows]
    return tables.markdown_table([header for _, header, _ in COLUMNS], cells,
                                 "".join("l" if fmt is None else "r" for _, _, fmt in COLUMNS))


def tsne_panels(runs, labels):
    """`(panels, class names)` for `tsne_grid_png`: each run's saved t-SNE points, classes united in
    first-seen order so that one class keeps one colour across panels."""
    class_names, panels = [], []
    for run, label in zip(runs, labels):
        for name in read_classes(run.path):
            if name not in class_names:
                class_names.append(name)
        if not run.file("tsne.csv").is_file():
            log.info("%s has no tsne.csv: left out of the t-SNE grid.", run.path)
            continue
        rows = read_csv(run.file("tsne.csv"))
        points = [(float(row["x"]), float(row["y"])) for row in rows]
        panels.append((label, points, [class_names.index(row["label"]) for row in rows]))
    return panels, class_names


def compare_runs(run_paths, out=None):
    """Compare run folders; write the table and figures into `out`. Returns `(Markdown table, written paths)`.

    Example:
        table, written = compare_runs(["runs/a", "runs/b"], out="runs/compare-ab")
    """
    from keras_sign.analysis import plots

    if not run_paths:
        raise KerasSignError("Name at least one run folder to compare.")
    runs = [RunFolder.open(path) for path in run_paths]  # every path checked before anything is written
    out = create_empty_folder(out or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}", "Comparison folder")
    names = [run.path.resolve().name for run in runs]
    # folder names label the runs; two runs with one name (a/run, b/run) keep their paths apart instead
    labels = names if len(set(names)) == len(names) else [str(path) for path in run_paths]
    for run in runs:
        _ensure_evaluated(run)
    histories = [run.read_history() for run in runs]
    rows = [run_row(run, label, history) for run, label, history in zip(runs, labels, histories)]
    table = compare_table(rows)

    written = [
        atomic_write_csv(out / "compare.csv", [key for key, _, _ in COLUMNS],
                         [["" if row[key] is None else row[key] for key, _, _ in COLUMNS] for row in rows]),
        atomic_write_text(out / "compare.md", "\n".join([
            f"# {len(runs)} runs compared", "", table, "",
            "GMACs: multiply-adds of one image at the run's image size. s/epoch and training images/s: means "
            "over the epochs after the first, which includes graph tracing (over the only one of a one-epoch run). "
            "Test figures from each run's metrics.json.", "",
            *[f"- {label}: `{run.path.resolve()}`" for run, label in zip(runs, labels)], "",
        ])),
        plots.compare_curves_png(list(zip(labels, histories)), out / "val_curves.png"),
    ]
    panels, class_names = tsne_panels(runs, labels)
    if panels:
        written.append(plots.tsne_grid_png(panels, class_names, out / "tsne_grid.png",
                                           title="t-SNE of penultimate features (test split)"))
    else:
        log.info("No run has t-SNE points: no tsne_grid.png.")
    return table, written
