"""Every figure renders to a real PNG of plausible size for realistic inputs."""

import string

import numpy as np
import pytest
from PIL import Image

from keras_sign import plots

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


def test_confusion_matrix_of_36_classes_is_large_enough_to_read(tmp_path):
    written = plots.confusion_matrix_png(confusion(36), DIGITS_AND_LETTERS, tmp_path / "cm.png")
    assert written == tmp_path / "cm.png"
    width, height = assert_png(written)
    assert width > 1500 and height > 1500  # 36 rows of labels need room


def test_confusion_matrix_of_3_classes_with_an_empty_row(tmp_path):
    counts = confusion(3)
    counts[1] = 0  # a class with no test images must not divide by zero
    width, _ = assert_png(plots.confusion_matrix_png(counts, ["del", "nothing", "space"], tmp_path / "cm.png"))
    assert width < 1500  # small matrices stay small


def test_a_thousand_classes_give_a_bounded_figure(tmp_path):
    """1000 classes once made a 60,000-pixel-wide image and 24 GB of memory."""
    names = [f"c{i:04d}" for i in range(1000)]
    width, height = assert_png(plots.confusion_matrix_png(confusion(1000), names, tmp_path / "cm.png"))
    assert width < 5000 and height < 5000
    points, labels = clusters(1000, per_class=2)
    width, height = assert_png(plots.tsne_png(points, labels, names, tmp_path / "tsne.png"))
    assert width < 2000 and height < 2000  # no legend of 1000 entries beside the map


def test_confusion_matrix_of_present_rows_and_answered_columns(tmp_path):
    counts = np.array([[5, 0, 1], [0, 4, 2]])  # classes a and b evaluated; the model also answered c
    width, height = assert_png(plots.confusion_matrix_png(counts, ["a", "b"], tmp_path / "cm.png",
                                                          column_names=["a", "b", "c"]))
    assert width > height


def test_confusion_matrix_rejects_counts_that_do_not_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        plots.confusion_matrix_png(confusion(4), ["a", "b", "c"], tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()


@pytest.mark.parametrize("validation", [True, False])
def test_curves(tmp_path, validation):
    assert_png(plots.curves_png(history(5, validation), tmp_path / "curves.png", title="resnet on massey"))


def test_curves_accept_numbers_as_well_as_csv_strings(tmp_path):
    rows = [{key: float(value) if value else None for key, value in row.items()} for row in history(3)]
    assert_png(plots.curves_png(rows, tmp_path / "curves.png"))


def test_curves_of_an_empty_history_raise(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        plots.curves_png([], tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("classes, names", [(10, list(string.digits)), (29, ALPHABET)])
def test_tsne(tmp_path, classes, names):
    points, labels = clusters(classes)
    assert_png(plots.tsne_png(points, labels, names, tmp_path / "tsne.png"))


def test_tsne_rejects_labels_outside_the_classes(tmp_path):
    points, labels = clusters(3)
    with pytest.raises(ValueError, match="class indices"):
        plots.tsne_png(points, labels, ["a", "b"], tmp_path / "tsne.png")


def test_compare_curves_of_three_runs_one_without_validation(tmp_path):
    runs = [("mobilenetv3", history(8)), ("resnet-small", history(5)), ("no-val", history(4, validation=False))]
    assert_png(plots.compare_curves_png(runs, tmp_path / "compare.png"))


def test_tsne_grid_lays_out_four_panels_in_two_rows(tmp_path):
    panels = [(f"epoch {epoch}", *clusters(29, per_class=20, seed=epoch)) for epoch in (1, 5, 10, 20)]
    width, height = assert_png(plots.tsne_grid_png(panels, ALPHABET, tmp_path / "grid.png", title="Over training"))
    assert width > height > 1000  # three columns by two rows


def test_palette_is_distinct_and_shared(tmp_path):
    for count in (2, 10, 29, 36, 60):
        colors = [tuple(np.round(color, 4)) for color in plots._palette(count)]
        assert len(colors) == count and len(set(colors)) == count
    assert plots._palette(29)[:10] == plots._palette(10)
