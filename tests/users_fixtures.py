"""A realistic user's folders, shared by the data, runs, analysis, models and training tests: phone photos,
a Windows file name, a broken link, every kind of bad file, and a run trained on such a folder.

`users_folder` and `users_run` are built once per test session, whichever pytest-xdist worker asks first
(`built_once`). The tests that use `users_run` write reports into it, so they are all in xdist group
"users_run": one worker runs them one after another, as when they shared one module.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, built_once, copy_subset

CLASSES = ["0", "1", "2"]
# The transpose that stores an upright picture the way a camera does for each EXIF orientation:
# the inverse of what PIL.ImageOps.exif_transpose applies when reading it.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
LATIN1_NAME = os.fsdecode(b"se\xf1a.png")  # "seña" from a Windows zip: not valid UTF-8


def save_as_phone_would(upright, path, orientation, **options):
    """Write `upright` with its pixels turned and the EXIF tag that turns them back, as phones do."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(STORED_AS[orientation]).save(path, exif=exif.tobytes(), **options)


def first_photo(label="0"):
    return Image.open(sorted((SAMPLE / label).iterdir())[0]).convert("RGB")


@pytest.fixture(scope="session")
def users_folder(tmp_path_factory, worker_id):
    """3 digit classes of real photos, with what users' folders really hold mixed in."""

    def build(folder):
        root = copy_subset(SAMPLE, folder / "digits", CLASSES, 10)
        save_as_phone_would(first_photo("1"), root / "1" / "portrait.jpg", 6, quality=95)
        shutil.copy(sorted((SAMPLE / "2").iterdir())[-1], root / "2" / LATIN1_NAME)
        os.symlink(root / "gone.jpg", root / "0" / "link.jpg")
        return {"root": str(root)}

    return Path(built_once(tmp_path_factory, worker_id, "users_folder", build)["root"])


@pytest.fixture(scope="session")
def users_run(users_folder, tmp_path_factory, worker_id):
    """MobileNetV3-Small trained 2 epochs on `users_folder`, evaluated on its test split."""

    def build(folder):
        from keras_sign.config import load_config
        from keras_sign.training.fit import train

        config = load_config(overrides=dict(data_dir=str(users_folder), epochs=2, image_size=32, batch_size=8, seed=3,
                                            val_fraction=0.2, test_fraction=0.3, out=str(folder / "run")))
        run, _ = train(config, "tensorflow", "test")
        return {"run": str(run.path)}

    return Path(built_once(tmp_path_factory, worker_id, "users_run", build)["run"])


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
