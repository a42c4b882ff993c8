"""Layouts of the real datasets, and every kind of bad input, built from real photos."""

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, copy_subset
from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import make_dataset
from keras_sign.data.scan import LAYOUT_CLASSES, LAYOUT_GROUPS, scan_folder
from keras_sign.data.validate import validate_report
from keras_sign.errors import KerasSignError


def test_embedded_sample_is_balanced_digits():
    table = scan_dataset("digits")
    assert table.class_names == [str(d) for d in range(10)]
    assert len(table.records) == 400
    assert set(np.bincount(table.labels)) == {40}
    assert table.stray_files == ["LICENSE.txt"] and not table.skipped


@pytest.mark.parametrize(
    "name, layout, classes, images, groups",
    [
        ("sign_language_digits", LAYOUT_CLASSES, 10, 1663, []),
        ("asl_alphabet_subset", LAYOUT_CLASSES, 29, 1160, []),
        ("massey_asl_hands", LAYOUT_GROUPS, 36, 1257, ["hand1", "hand2", "hand3"]),
    ],
)
def test_shared_datasets_are_detected_and_counted(name, layout, classes, images, groups):
    from conftest import shared_set

    table = scan_folder(shared_set(name))
    assert (table.layout, len(table.class_names), len(table.records), table.groups) == (
        layout, classes, images, groups
    )
    assert not table.skipped


@pytest.fixture
def messy_folder(tmp_path):
    """Real photos turned into every kind of input a user's folder may hold."""
    root = copy_subset(SAMPLE, tmp_path / "messy", ["0", "1"], 3)
    photo = Image.open(next((SAMPLE / "2").iterdir())).convert("RGB")
    good = root / "2"
    good.mkdir()
    photo.save(good / "lower.jpg")
    photo.save(good / "long.jpeg")
    photo.convert("L").save(good / "grey.png")
    photo.convert("RGBA").save(good / "alpha.png")
    photo.convert("P").save(good / "palette.png")
    photo.convert("CMYK").save(good / "cmyk.jpg")
    photo.resize((3000, 3000)).save(good / "huge.JPG", quality=80)
    data = (good / "lower.jpg").read_bytes()
    (good / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (good / "random.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (good / "notes.txt").write_text("not a picture")
    photo.save(good / "scan.tiff")
    (root / "empty_class").mkdir()
    (root / "LICENSE").write_text("licence text")
    (root / "labels.csv").write_text("a,b\n")
    return root


def test_bad_inputs_are_skipped_or_converted_with_a_warning(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="keras_sign"):
        table = scan_folder(messy_folder)
    reasons = dict(table.skipped)
    assert set(reasons) == {"2/truncated.jpg", "2/random.jpg", "2/notes.txt", "2/scan.tiff"}
    assert "unreadable" in reasons["2/truncated.jpg"]
    assert reasons["2/notes.txt"] == "not an image"
    assert "TIFF is not supported" in reasons["2/scan.tiff"]
    kept = {r.path: r for r in table.records if r.label == "2"}
    assert set(kept) == {f"2/{n}" for n in ["lower.jpg", "long.jpeg", "grey.png", "alpha.png", "palette.png",
                                            "cmyk.jpg", "huge.JPG"]}
    assert {kept["2/cmyk.jpg"].mode, kept["2/palette.png"].mode, kept["2/huge.JPG"].width} == {"CMYK", "P", 3000}
    assert table.class_names == ["0", "1", "2"] and table.empty_classes == ["empty_class"]
    assert sorted(table.stray_files) == ["LICENSE", "labels.csv"]
    assert "Skipped 4 of 17 files" in caplog.text and "empty_class" in caplog.text

    # Everything kept decodes to RGB at the training size: no surprise mid-epoch.
    paths = [messy_folder / r.path for r in table.records]
    images, one_hot = next(make_dataset(paths, table.labels, 3, 48, len(paths)).as_numpy_iterator())
    assert images.shape == (13, 48, 48, 3) and images.dtype == np.float32
    assert one_hot.shape == (13, 3)
    assert 0 <= images.min() and images.max() <= 255 and images.std() > 10


def test_validate_reports_counts_problems_and_duplicates(messy_folder):
    shutil.copy(messy_folder / "0" / sorted(p.name for p in (messy_folder / "0").iterdir())[0],
                messy_folder / "1" / "copy_of_a_zero.JPG")
    shutil.copy(messy_folder / "2" / "lower.jpg", messy_folder / "2" / "again.jpg")
    _, report = validate_report(messy_folder)
    assert "layout class, 3 classes, 15 images" in report
    assert "unreadable or unsupported: 4" in report
    assert "exact duplicates: 1 set(s) within a class, 1 set(s) across classes" in report
    assert "copy_of_a_zero.JPG" in report and "2/again.jpg" in report
    assert "colour modes:" in report and "CMYK 1" in report
    assert "3000-3000" not in report and "100-3000" in report


def test_one_class_or_no_images_is_a_clear_error(tmp_path):
    copy_subset(SAMPLE, tmp_path / "one", ["0"], 3)
    with pytest.raises(KerasSignError, match="only class '0'.*at least two class folders"):
        scan_folder(tmp_path / "one")
    with pytest.raises(KerasSignError, match="does not exist"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"x")
    with pytest.raises(KerasSignError, match="no sub-folders"):
        scan_folder(tmp_path / "flat")


def test_class_selection(tmp_path):
    root = copy_subset(SAMPLE, tmp_path / "d", ["0", "1", "2"], 2)
    assert scan_folder(root, classes=["0", "2"]).class_names == ["0", "2"]
    with pytest.raises(KerasSignError, match="No folder for class"):
        scan_folder(root, classes=["0", "7"])


def test_ten_thousand_empty_class_folders_are_summarised_in_one_short_line(tmp_path, caplog):
    """10,000 empty class folders gave one ~110 KB line listing every name."""
    copy_subset(SAMPLE, tmp_path, ["0", "1"], 2)
    for number in range(10_000):
        (tmp_path / f"empty-{number:05d}").mkdir()
    with caplog.at_level("WARNING", logger="keras_sign"):
        table = scan_folder(tmp_path)
    assert len(table.empty_classes) == 10_000
    [line] = [record.getMessage() for record in caplog.records if "no usable image" in record.getMessage()]
    assert len(line) < 300, line
    assert line.startswith("Left out 10000 class folder(s) with no usable image: empty-00000, ")
    assert "and 9995 more (`keras-sign data validate " in line
