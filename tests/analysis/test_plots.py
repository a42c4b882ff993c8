"""Every figure renders to a real PNG of plausible size for realistic inputs, and draws what it says.

The `drawn` fixture keeps the saved figures open so their titles, labels, panels and cell values can be read back.
"""

import string

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from keras_sign.analysis import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIGITS_AND_LETTERS = list(string.digits) + list(string.ascii_uppercase)
ALPHABET = list(string.ascii_uppercase) + ["del", "nothing", "space"]


def assert_png(path, min_width=400, min_height=300):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5_000
    with Image.open(path) as image:
        image.verify()  # a truncated file would open but fail here
    with Image.open(path) as image:
        width, height = image.size
    assert width > min_width and height > min_height
    return width, height


@pytest.fixture
def drawn(monkeypatch):
    """The figures plots.py saves, in order: matplotlib's own `pyplot.close` is held back until the test ends."""
    close, figures = plt.close, []
    monkeypatch.setattr(plt, "close", figures.append)
    yield figures
    for figure in figures:
        close(figure)


def labels(texts):
    return [text.get_text() for text in texts]


def confusion_parts(figure):
    """The matrix axes and its colorbar's axes, after checking the labels every confusion matrix has."""
    ax, colorbar = figure.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), colorbar.get_ylabel()) == ("Predicted", "True", "Fraction of true class")
    return ax, colorbar


def row_rates(counts):
    counts = np.asarray(counts, dtype=float)
    support = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)


def confusion(n, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, size=(n, n))
    counts[np.diag_indices(n)] = rng.integers(20, 60, size=n)
    return counts


def history(epochs, validation=True):
    rows = []
    for epoch in range(1, epochs + 1):
        accuracy, loss = 1 - 0.9 * np.exp(-epoch / 3), 2.5 * np.exp(-epoch / 3) + 0.1
        rows.append({
            "epoch": str(epoch), "loss": f"{loss:.6f}", "accuracy": f"{accuracy:.6f}",
            "val_loss": f"{1.2 * loss:.6f}" if validation else "",
            "val_accuracy": f"{accuracy - 0.05:.6f}" if validation else "",
            "learning_rate": "0.001", "epoch_seconds": "12.5", "images_per_second": "480.2",
        })
    return rows


def clusters(classes, per_class=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = rng.normal(0, 30, size=(classes, 2))
    return centres[labels] + rng.normal(0, 3, size=(len(labels), 2)), labels


def test_confusion_matrix_of_36_classes_is_large_enough_to_read(tmp_path, drawn):
    counts = confusion(36)
    written = plots.confusion_matrix_png(counts, DIGITS_AND_LETTERS, tmp_path / "cm.png", title="resnet18 on massey")
    assert written == tmp_path / "cm.png"
    width, height = assert_png(written)
    assert width > 1500 and height > 1500  # 36 rows of labels need room
    ax, _ = confusion_parts(drawn[-1])
    assert ax.get_title() == "resnet18 on massey"
    assert labels(ax.get_xticklabels()) == labels(ax.get_yticklabels()) == DIGITS_AND_LETTERS
    np.testing.assert_allclose(ax.images[0].get_array(), row_rates(counts))
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert not ax.texts  # too many cells to write a number in each


def test_confusion_matrix_of_3_classes_with_an_empty_row(tmp_path, drawn):
    counts = confusion(3)
    counts[1] = 0  # a class with no test images must not divide by zero
    width, _ = assert_png(plots.confusion_matrix_png(counts, ["del", "nothing", "space"], tmp_path / "cm.png"))
    assert width < 1500  # small matrices stay small
    ax, _ = confusion_parts(drawn[-1])
    assert ax.get_title() == "Confusion matrix"
    rates = row_rates(counts)
    assert labels(ax.texts) == [f"{rate:.2f}" for rate in rates.flat]
    assert labels(ax.texts)[3:6] == ["0.00"] * 3
    np.testing.assert_allclose(rates.sum(axis=1), [1, 0, 1])


def test_numbers_stay_dark_on_pale_cells_of_a_weak_model(tmp_path, drawn):
    counts = [[4, 3, 3], [3, 4, 3], [3, 3, 4]]  # no rate above 0.4: every cell is pale on the 0-1 scale
    plots.confusion_matrix_png(counts, ["a", "b", "c"], tmp_path / "cm.png")
    ax, _ = confusion_parts(drawn[-1])
    assert {text.get_color() for text in ax.texts} == {"black"}


def test_a_thousand_classes_give_a_bounded_figure(tmp_path, drawn):
    """1000 classes once made a 60,000-pixel-wide image and 24 GB of memory."""
    names = [f"c{i:04d}" for i in range(1000)]
    width, height = assert_png(plots.confusion_matrix_png(confusion(1000), names, tmp_path / "cm.png"))
    assert width < 5000 and height < 5000
    ax, _ = confusion_parts(drawn[-1])
    shown = labels(ax.get_xticklabels())
    assert shown[:2] == ["c0000", "c0017"] and len(shown) <= plots.TICK_LABELS_MAX  # every 17th class
    assert labels(ax.get_yticklabels()) == shown and not ax.texts
    points, classes = clusters(1000, per_class=2)
    width, height = assert_png(plots.tsne_png(points, classes, names, tmp_path / "tsne.png"))
    assert width < 2000 and height < 2000  # no legend of 1000 entries beside the map
    assert drawn[-1].axes[0].get_legend() is None


def test_confusion_matrix_of_present_rows_and_answered_columns(tmp_path, drawn):
    counts = np.array([[5, 0, 1], [0, 4, 2]])  # classes a and b evaluated; the model also answered c
    width, height = assert_png(plots.confusion_matrix_png(counts, ["a", "b"], tmp_path / "cm.png",
                                                          column_names=["a", "b", "c"]))
    assert width > height
    ax, _ = confusion_parts(drawn[-1])
    assert labels(ax.get_xticklabels()) == ["a", "b", "c"] and labels(ax.get_yticklabels()) == ["a", "b"]
    np.testing.assert_allclose(ax.images[0].get_array(), row_rates(counts))
    assert labels(ax.texts) == ["0.83", "0.00", "0.17", "0.00", "0.67", "0.33"]


def test_confusion_matrix_rejects_counts_that_do_not_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        plots.confusion_matrix_png(confusion(4), ["a", "b", "c"], tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()


@pytest.mark.parametrize("validation", [True, False])
def test_curves(tmp_path, drawn, validation):
    assert_png(plots.curves_png(history(5, validation), tmp_path / "curves.png", title="resnet on massey"))
    figure = drawn[-1]
    assert figure.get_suptitle() == "resnet on massey"
    accuracy, loss = figure.axes
    assert [ax.get_xlabel() for ax in figure.axes] == ["Epoch", "Epoch"]
    assert (accuracy.get_ylabel(), loss.get_ylabel()) == ("Accuracy", "Loss")
    lines = ["train", "validation"] if validation else ["train"]
    assert [ax.get_legend_handles_labels()[1] for ax in figure.axes] == [lines, lines]
    assert list(accuracy.lines[0].get_xdata()) == [1, 2, 3, 4, 5]


def test_curves_accept_numbers_as_well_as_csv_strings(tmp_path):
    rows = [{key: float(value) if value else None for key, value in row.items()} for row in history(3)]
    assert_png(plots.curves_png(rows, tmp_path / "curves.png"))


def test_curves_of_an_empty_history_raise(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        plots.curves_png([], tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_saving_closes_the_figure(tmp_path):
    open_before = plt.get_fignums()
    plots.curves_png(history(2), tmp_path / "curves.png")
    plots.confusion_matrix_png(confusion(3), ["a", "b", "c"], tmp_path / "cm.png")
    assert plt.get_fignums() == open_before  # pyplot would otherwise keep every figure of a long evaluation


@pytest.mark.parametrize("classes, names", [(10, list(string.digits)), (29, ALPHABET)])
def test_tsne(tmp_path, drawn, classes, names):
    points, classes = clusters(classes)
    assert_png(plots.tsne_png(points, classes, names, tmp_path / "tsne.png"))
    (ax,) = drawn[-1].axes
    assert ax.get_title() == "t-SNE of penultimate features"
    assert labels(ax.get_legend().get_texts()) == names
    assert len(ax.collections[0].get_offsets()) == len(points)


def test_tsne_rejects_labels_outside_the_classes(tmp_path):
    points, classes = clusters(3)
    with pytest.raises(ValueError, match="class indices"):
        plots.tsne_png(points, classes, ["a", "b"], tmp_path / "tsne.png")


def test_compare_curves_of_three_runs_one_without_validation(tmp_path, drawn):
    runs = [("mobilenetv3", history(8)), ("resnet-small", history(5)), ("no-val", history(4, validation=False))]
    assert_png(plots.compare_curves_png(runs, tmp_path / "compare.png"))
    accuracy, loss = drawn[-1].axes
    assert (accuracy.get_ylabel(), loss.get_ylabel()) == ("Validation accuracy", "Validation loss")
    for ax in (accuracy, loss):
        assert ax.get_legend_handles_labels()[1] == ["mobilenetv3", "resnet-small"]
    assert [line.get_color() for line in accuracy.lines] == [line.get_color() for line in loss.lines]


def test_tsne_grid_lays_out_four_panels_in_two_rows(tmp_path, drawn):
    panels = [(f"epoch {epoch}", *clusters(29, per_class=20, seed=epoch)) for epoch in (1, 5, 10, 20)]
    width, height = assert_png(plots.tsne_grid_png(panels, ALPHABET, tmp_path / "grid.png", title="Over training"))
    assert width > height > 1000  # three columns by two rows
    figure = drawn[-1]
    assert figure.get_suptitle() == "Over training"
    assert len(figure.axes) == 6
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["epoch 1", "epoch 5", "epoch 10", "epoch 20"]
    (legend,) = figure.legends  # one legend shared by every panel
    assert labels(legend.get_texts()) == ALPHABET


def test_reliability_draws_both_calibrations_beside_risk_coverage(tmp_path, drawn):
    before = [[0.5, 0.75, 10, 0.6, 0.62], [0.75, 1.0, 30, 0.8, 0.9]]
    after = [[0.5, 0.75, 12, 0.65, 0.63], [0.75, 1.0, 28, 0.85, 0.86]]
    risk = [[0.0, 1.0, 0.75], [0.5, 0.8, 0.85], [0.9, 0.0, None]]
    assert_png(plots.reliability_png(before, after, risk, tmp_path / "reliability.png", "mobilenetv3 on digits"))
    reliability, coverage = drawn[-1].axes
    assert drawn[-1].get_suptitle() == "mobilenetv3 on digits"
    assert reliability.get_legend_handles_labels()[1] == ["perfectly calibrated", "as trained", "temperature-scaled"]
    assert (coverage.get_xlabel(), coverage.get_ylabel()) == ("share of images answered (coverage)",
                                                              "accuracy of the answers")
    assert list(coverage.lines[0].get_xdata()) == [1.0, 0.8]  # a threshold that answers nothing has no accuracy


def test_sweep_heatmap_writes_each_value_and_marks_missing_ones(tmp_path, drawn):
    matrix = [[0.91, 0.88], [0.95, None]]
    assert_png(plots.heatmap_png(matrix, [1e-3, 1e-2], [32, 64], "learning rate", "batch size",
                                 tmp_path / "heatmap.png", "val accuracy"), min_width=200, min_height=150)
    ax = drawn[-1].axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("val accuracy", "batch size", "learning rate")
    assert labels(ax.texts) == ["0.91", "0.88", "0.95", "-"]
    assert labels(ax.get_xticklabels()) == ["32", "64"] and labels(ax.get_yticklabels()) == ["0.001", "0.01"]


def test_sweep_lines_use_a_log_axis_for_learning_rates(tmp_path, drawn):
    matrix = [[0.80, 0.78], [0.90, None], [0.85, 0.88]]
    assert_png(plots.lines_by_group_png([1e-4, 1e-3, 1e-2], [32, 64], matrix, "learning rate", "batch size",
                                        "val accuracy", tmp_path / "lines.png", "sweep"),
               min_width=200, min_height=150)
    ax = drawn[-1].axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "sweep"
    assert ax.get_legend_handles_labels()[1] == ["batch size 32", "batch size 64"]
    assert [len(line.get_xdata()) for line in ax.lines] == [3, 2]  # the missing value is left out


def test_palette_is_distinct_and_shared(tmp_path):
    for count in (2, 10, 29, 36, 60):
        colors = [tuple(np.round(color, 4)) for color in plots._palette(count)]
        assert len(colors) == count and len(set(colors)) == count
    assert plots._palette(29)[:10] == plots._palette(10)
