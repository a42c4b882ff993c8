"""`keras_sign.data.validate` and `keras-sign data validate`: counts, problems, duplicates and odd file names,
as the user reads them."""

import os
import shutil
import subprocess
import sys

from conftest import REPO, run_cli
from conftest import assert_ok as _assert_ok
from keras_sign.data.validate import validate_report
from users_fixtures import messy_folder, users_folder  # noqa: F401  (fixtures)


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


def test_validate_prints_odd_names_and_broken_links(users_folder, tmp_path):
    """Defects 9 and 14 through the real command line, in a fresh process."""
    folder = tmp_path / "users"
    shutil.copytree(users_folder, folder, symlinks=True)
    (folder / "0" / os.fsdecode(b"da\xf1ado.jpg")).write_bytes(b"\xff\xd8 cut short")
    result = subprocess.run([sys.executable, "-m", "keras_sign.cli", "data", "validate", str(folder)],
                            capture_output=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert b"3 classes, 32 images" in result.stdout  # se\xf1a.png among them
    assert b"0/da\xf1ado.jpg: not an image" in result.stdout
    assert b"0/link.jpg: broken symbolic link" in result.stdout


def test_data_validate_and_list():
    result = run_cli("data", "validate", "digits")
    _assert_ok(result)
    assert "10 classes, 400 images" in result.stdout and "LICENSE.txt" in result.stdout
    result = run_cli("data", "list")
    _assert_ok(result)
    assert "fingerspelling" in result.stdout


def test_validate_counts_the_photos_with_a_hand_per_class(small_digits, tmp_path):
    from PIL import Image

    Image.new("RGB", (100, 100), (200, 200, 200)).save(small_digits / "1" / "wall.png")  # a photo of no hand
    _, text = validate_report(small_digits, hand_models="lite", hand_cache_dir=tmp_path / "hands")
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert rows["1"][1:3] == ["11", "10"] and rows["0"][1] == "10"
    assert "photos with a hand: " in text and " of 31 " in text
