"""Figures of a run: confusion matrix, training curves and t-SNE maps, saved as PNG.

This is the only module that draws. It selects matplotlib's Agg backend so that
figures render on headless training machines, and it writes every PNG with the
same atomic writer as the rest of the run folder, so a viewer never opens half
an image. Every function returns the `Path` it wrote.
"""

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: training machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from keras_sign.runs.atomic import atomic_write_bytes  # noqa: E402

DPI = 150
ANNOTATE_MAX_CLASSES = 15  # beyond this, numbers in the cells are unreadable
ROTATE_LABELS_OVER = 10
LEGEND_ROWS = 18  # class legends wrap into a new column after this many entries
LEGEND_MAX_CLASSES = 4 * LEGEND_ROWS  # more classes than this get no legend: it would outgrow the map
MAX_MATRIX_INCHES = 24.0  # 1000 classes at 0.42 inch a cell made a 7-gigabyte image
TICK_LABELS_MAX = 60  # beyond this, every k-th class is labelled


def _save(fig, path):
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)  # pyplot keeps every open figure alive; a long evaluation would leak memory
    atomic_write_bytes(path, buffer.getvalue())
    return path


def confusion_matrix_png(counts, class_names, path, title="Confusion matrix", column_names=None):
    """Plot a confusion matrix with each row divided by the true class's support.

    Args:
        counts: int array, rows are true classes in `class_names` order, columns predicted ones in
            `column_names` order (default: the same classes, a square matrix).
    """
    counts = np.asarray(counts, dtype=float)
    column_names = class_names if column_names is None else column_names
    n, columns = len(class_names), len(column_names)
    if counts.shape != (n, columns):
        raise ValueError(f"counts has shape {counts.shape}, expected ({n}, {columns}) for the class names")
    support = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)

    def inches(cells):  # about 0.4 inch per cell keeps 36 classes legible
        return min(max(4.5, 0.42 * cells + 2.0), MAX_MATRIX_INCHES)

    # Not sklearn's ConfusionMatrixDisplay (1.9): it ticks and annotates only rows x rows cells, and its text colour
    # follows the data's midpoint, not the 0-1 scale, so a weak model got white numbers on pale cells.
    fig, ax = plt.subplots(figsize=(inches(columns) + 1.2, inches(n)))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="Fraction of true class")
    longest = max(map(len, column_names), default=0)
    rotation = 90 if columns > ROTATE_LABELS_OVER else 45 if longest > 3 else 0
    x_ticks, y_ticks = _tick_positions(columns), _tick_positions(n)
    ax.set_xticks(x_ticks, labels=[column_names[i] for i in x_ticks], rotation=rotation,
                  ha="right" if rotation == 45 else "center")
    ax.set_yticks(y_ticks, labels=[class_names[i] for i in y_ticks])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title)
    if max(n, columns) <= ANNOTATE_MAX_CLASSES:
        for (row, column), rate in np.ndenumerate(rates):
            ax.text(column, row, f"{rate:.2f}", ha="center", va="center", fontsize=9 if n > 8 else 11,
                    color="white" if rate > 0.5 else "black")
    return _save(fig, path)


def _tick_positions(count):
    """Every class up to `TICK_LABELS_MAX`, every k-th beyond, so that labels never overlap."""
    return list(range(0, count, math.ceil(count / TICK_LABELS_MAX)))


def _series(history, key):
    """Epochs and values of `key`, leaving out epochs where it is missing or NaN."""
    epochs, values = [], []
    for index, row in enumerate(history, start=1):
        value = row.get(key)
        if value is None or value == "" or math.isnan(float(value)):
            continue
        epoch = row.get("epoch")
        epochs.append(index if epoch in (None, "") else int(float(epoch)))
        values.append(float(value))
    return epochs, values


def _finish_panel(ax, ylabel):
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    # min_n_ticks=1: a one-epoch run would otherwise get fractional epoch ticks
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:
        # an empty panel with no explanation looks like a plotting bug
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")


def curves_png(history, path, title=None):
    """Plot training and validation accuracy and loss against epoch.

    Args:
        history: Rows of `history.csv` as dicts; values may be strings, and empty
            strings mark missing values (e.g. no validation set).

    Raises:
        ValueError: If `history` has no rows.
    """
    if not history:
        raise ValueError("history is empty: the run has no finished epoch to plot")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, ylabel in zip(axes, ("accuracy", "loss"), ("Accuracy", "Loss")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            epochs, values = _series(history, prefix + metric)
            if values:
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        _finish_panel(ax, ylabel)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def compare_curves_png(histories, path):
    """Plot validation accuracy and loss of several runs, one line per run.

    Args:
        histories: `(run_label, history)` pairs, history as for `curves_png`; a
            run without validation values is left out of the panel.
    """
    if not histories:
        raise ValueError("no runs to compare")
    colors = _palette(len(histories))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, ylabel in zip(axes, ("val_accuracy", "val_loss"), ("Validation accuracy", "Validation loss")):
        for index, (label, history) in enumerate(histories):
            epochs, values = _series(history, metric)
            if values:
                # colour follows the run, not the line count, so a run keeps its colour in both panels
                ax.plot(epochs, values, marker="o", markersize=3, color=colors[index], label=label)
        _finish_panel(ax, ylabel)
    return _save(fig, path)


def _palette(count):
    """`count` distinct colours, always the same ones for the same count."""
    tab20, tab20b = plt.get_cmap("tab20").colors, plt.get_cmap("tab20b").colors
    # strong hues first (tab10), then their light shades, then tab20b's families one shade at a
    # time, so neighbouring classes (often the confusable ones) never look alike
    palette = tab20[0::2] + tab20[1::2] + tab20b[0::4] + tab20b[2::4] + tab20b[1::4] + tab20b[3::4]
    if count <= len(palette):
        return list(palette[:count])
    return list(plt.get_cmap("gist_ncar")(np.linspace(0.02, 0.92, count)))  # its top end is near-white


def _check_points(points, labels, class_names):
    points, labels = np.asarray(points, dtype=float), np.asarray(labels, dtype=int)
    if points.ndim != 2 or points.shape[1] != 2 or labels.shape != (len(points),):
        raise ValueError(f"expected (n, 2) points and (n,) labels, got {points.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels must be class indices in [0, {len(class_names)})")
    return points, labels


def _scatter(ax, points, labels, colors, title):
    # dots sized for thousands of points vanish when a small test split gives a few dozen
    size = float(np.clip(3000 / max(len(points), 1), 7, 36))
    # one scatter call in sample order, so no class is always painted on top of the others
    ax.scatter(points[:, 0], points[:, 1], c=np.asarray(colors)[labels], s=size, alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])  # t-SNE coordinates have no meaning, only neighbourhoods do
    ax.set_title(title)


def _class_legend(owner, class_names, colors, **placement):
    if len(class_names) > LEGEND_MAX_CLASSES:
        return  # a legend of hundreds of classes would be wider than any screen; colours still separate them
    handles = [Line2D([], [], linestyle="", marker="o", markersize=6, color=color) for color in colors]
    owner.legend(handles, class_names, ncol=math.ceil(len(class_names) / LEGEND_ROWS), fontsize="small",
                 title="Class", frameon=False, handletextpad=0.2, columnspacing=0.8, **placement)


def tsne_png(points, labels, class_names, path, title="t-SNE of penultimate features"):
    """Scatter 2-D t-SNE points coloured by class, with the class legend on the right.

    Args:
        points: `(n, 2)` float array.
        labels: `(n,)` int array of indices into `class_names`.
    """
    points, labels = _check_points(points, labels, class_names)
    colors = _palette(len(class_names))
    fig, ax = plt.subplots(figsize=(7, 6.5))
    _scatter(ax, points, labels, colors, title)
    _class_legend(ax, class_names, colors, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def tsne_grid_png(panels, class_names, path, title=None):
    """Draw several t-SNE maps in a grid (up to 3 columns) sharing class colours and one legend.

    Args:
        panels: `(panel_title, points, labels)` triples, points and labels as for `tsne_png`.
    """
    if not panels:
        raise ValueError("no t-SNE panels to draw")
    # check every panel before creating a figure that an error would leave open
    panels = [(panel_title, *_check_points(points, labels, class_names)) for panel_title, points, labels in panels]
    colors = _palette(len(class_names))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.4 * rows), squeeze=False)
    for ax, (panel_title, points, labels) in zip(axes.flat, panels):
        _scatter(ax, points, labels, colors, panel_title)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    _class_legend(fig, class_names, colors, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title, y=1.02)
    return _save(fig, path)


def reliability_png(before, after, risk, path, title):
    """Reliability diagram (accuracy against confidence per bin, before and after temperature scaling)
    beside the risk-coverage curve (accuracy of the answers kept against the share kept).

    `before` / `after`: rows of `calibration.reliability`; `risk`: rows of `calibration.risk_coverage`.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for rows, label, marker in ((before, "as trained", "o"), (after, "temperature-scaled", "s")):
        if rows:
            left.plot([r[4] for r in rows], [r[3] for r in rows], marker=marker, label=label)
    left.set(xlabel="confidence (mean per bin)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
             title="reliability")
    left.legend(loc="upper left", fontsize=8)
    kept = [(r[1], r[2]) for r in risk if r[2] is not None]
    right.plot([c for c, _ in kept], [a for _, a in kept], marker=".")
    right.set(xlabel="share of images answered (coverage)", ylabel="accuracy of the answers",
              xlim=(0, 1.02), ylim=(0, 1.02), title="risk-coverage (threshold 0 to 1)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def heatmap_png(matrix, row_values, column_values, row_name, column_name, path, title):
    """A grid of numbers (None: not run yet) as coloured cells with the value written in each."""
    values = np.array([[np.nan if v is None else float(v) for v in row] for row in matrix], dtype=float).reshape(
        len(row_values), len(column_values))
    fig, ax = plt.subplots(figsize=(1.2 * len(column_values) + 2.5, 0.9 * len(row_values) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(column_values)), [f"{v:g}" for v in column_values])
    ax.set_yticks(range(len(row_values)), [f"{v:g}" for v in row_values])
    ax.set_xlabel(column_name)
    ax.set_ylabel(row_name)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), value in np.ndenumerate(values):
        text = "-" if np.isnan(value) else f"{value:.3g}"
        ax.text(j, i, text, ha="center", va="center", color="black" if value > middle else "white")
    ax.set_title(title)
    return _save(fig, path)


def lines_by_group_png(x_values, group_values, matrix, x_name, group_name, y_name, path, title):
    """One line per group (a column of `matrix`) of y against x (its rows), x on a log scale when it
    spans more than a factor of 20 (learning rates)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    drawn = False
    for j, (group, color) in enumerate(zip(group_values, _palette(len(group_values)))):
        points = [(x, row[j]) for x, row in zip(x_values, matrix) if row[j] is not None]
        if points:
            ax.plot(*zip(*points), marker="o", color=color, label=f"{group_name} {group:g}")
            drawn = True
    positive = [x for x in x_values if x > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
    ax.set_title(title)
    return _save(fig, path)
