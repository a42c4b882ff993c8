"""`keras_sign.data.scan`: layouts of the real datasets, and every kind of bad input, built from real photos:
files Pillow cannot read, phone photos with EXIF orientations, BMPs TensorFlow decodes wrongly, cameras'
multi-picture JPEGs."""

import logging

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, copy_subset
from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import make_dataset
from keras_sign.data.scan import LAYOUT_CLASSES, LAYOUT_GROUPS, scan_folder
from keras_sign.data.validate import validate_report
from keras_sign.errors import KerasSignError
from users_fixtures import first_photo, messy_folder, users_folder  # noqa: F401  (fixtures)


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


def test_scan_reads_the_tag_and_reports_upright_sizes_and_rotations(users_folder):
    table = scan_folder(users_folder)
    portrait = next(r for r in table.records if r.path == "1/portrait.jpg")
    assert portrait.orientation == 6 and (portrait.width, portrait.height) == (100, 100)
    _, report = validate_report(users_folder)
    assert "stored rotated or mirrored (EXIF orientation, turned upright when read): 1 (orientation 6: 1)" in report


def _bmp_variants(tmp_path):
    photo = first_photo().resize((36, 28))
    variants = {mode: photo.convert(mode) for mode in ("1", "L", "P", "RGB", "RGBA")}
    variants["P-adaptive"] = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    folder = tmp_path / "bmps" / "a"
    folder.mkdir(parents=True)
    for name, image in variants.items():
        image.save(folder / f"{name}.bmp")
    copy_subset(SAMPLE, tmp_path / "bmps", ["1"], 2)
    return tmp_path / "bmps"


def test_scanner_keeps_exactly_the_bmps_tensorflow_decodes_correctly(tmp_path):
    """Defect 2: palette BMPs decoded as grey indices, 1-bit BMPs crashed training mid-epoch."""
    import tensorflow as tf

    root = _bmp_variants(tmp_path)
    table = scan_folder(root)
    kept = {r.path for r in table.records}
    skipped = dict(table.skipped)
    for path in sorted((root / "a").iterdir()):
        relative = f"a/{path.name}"
        truth = np.asarray(Image.open(path).convert("RGB")).astype(int)
        try:
            decoded = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False).numpy().astype(int)
            correct = decoded.shape == truth.shape and np.abs(decoded - truth).max() <= 1
        except tf.errors.InvalidArgumentError:
            correct = False
        assert (relative in kept) == correct, (relative, skipped.get(relative))
        if not correct:
            assert "BMP is not decoded correctly by TensorFlow; convert it to PNG" in skipped[relative]
    assert {"a/P.bmp", "a/1.bmp"} <= set(skipped) and {"a/RGB.bmp", "a/L.bmp"} <= kept


def test_multi_picture_jpegs_from_cameras_are_kept_and_decode(tmp_path):
    """Defect 3: Pillow's MPO was skipped as unsupported, though TensorFlow reads its first picture."""
    root = copy_subset(SAMPLE, tmp_path / "d", ["1"], 2)
    (root / "0").mkdir()
    photo = first_photo()
    photo.save(root / "0" / "camera.jpg", "MPO", save_all=True, append_images=[photo.rotate(90)])
    assert Image.open(root / "0" / "camera.jpg").format == "MPO"
    table = scan_folder(root)
    assert "0/camera.jpg" in {r.path for r in table.records} and not table.skipped
    image = next(make_dataset([root / "0" / "camera.jpg"], [0], 2, 100, 1).as_numpy_iterator())[0][0]
    assert np.abs(image - np.asarray(photo, np.float32)).mean() < 3
