"""Decoded training images in a disk cache give the batches the in-memory cache gives."""

import collections
import os

import numpy as np
import pytest

from conftest import SAMPLE, copy_subset
from keras_sign.data import image_cache
from keras_sign.data.pipeline import batches
from keras_sign.errors import KerasSignError

Files = collections.namedtuple("Files", "paths labels orientations")


@pytest.fixture
def photos(tmp_path):
    """3 classes x 10 real photos as a split: `Files`."""
    root = copy_subset(SAMPLE, tmp_path / "digits", ["0", "1", "2"], 10)
    paths = sorted(str(path) for path in root.glob("*/*"))
    return Files(paths, [int(os.path.basename(os.path.dirname(path))) for path in paths], [1] * len(paths))


def _epoch(images, seed):
    return [(x.copy(), y.copy()) for x, y in batches(images, 3, 8, shuffle_seed=seed, augment_seed=seed)
            .as_numpy_iterator()]


def test_disk_cache_gives_the_same_batches_as_memory(photos, tmp_path):
    in_memory = image_cache.cached_split(photos, 32, False, "memory")
    on_disk = image_cache.cached_split(photos, 32, False, "disk", tmp_path / "cache")
    assert isinstance(on_disk, image_cache.DiskImages) and on_disk.path.parent == tmp_path / "cache"
    for seed in (None, 7):
        ours, theirs = _epoch(on_disk, seed), _epoch(in_memory, seed)
        assert len(ours) == len(theirs) == 4  # 30 images in batches of 8
        for (x, y), (x_ref, y_ref) in zip(ours, theirs):
            np.testing.assert_array_equal(x, x_ref)
            np.testing.assert_array_equal(y, y_ref)
    # the seeds shuffle: the comparison above covered shuffled orders, not just the files' order
    assert not np.array_equal(_epoch(on_disk, 7)[0][1], _epoch(on_disk, None)[0][1])


def test_the_cache_is_reused_and_named_by_the_files_and_the_size(photos, tmp_path):
    folder = tmp_path / "cache"
    first = image_cache.disk_images(photos.paths, photos.labels, 32, False, photos.orientations, folder)
    stamp = first.path.stat().st_mtime_ns
    again = image_cache.disk_images(photos.paths, photos.labels, 32, False, photos.orientations, folder)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # not decoded again
    assert np.load(first.path, mmap_mode="r").shape == (30, 32, 32, 3)
    bigger = image_cache.disk_images(photos.paths, photos.labels, 48, False, photos.orientations, folder)
    os.utime(photos.paths[0], ns=(1, 1))  # a file replaced by another of the same name
    changed = image_cache.disk_images(photos.paths, photos.labels, 32, False, photos.orientations, folder)
    assert len({first.path, bigger.path, changed.path}) == 3
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        path.name for path in (first.path, bigger.path, changed.path))  # no temporary file left

    with open(changed.path, "r+b") as file:  # cut short, as by a full disk or a copy that stopped
        file.truncate(changed.path.stat().st_size - 100)
    again = image_cache.disk_images(photos.paths, photos.labels, 32, False, photos.orientations, folder)
    assert again.path == changed.path and np.load(again.path).shape == (30, 32, 32, 3)  # decoded again


def test_auto_keeps_small_splits_in_memory_and_large_ones_on_disk(photos, tmp_path, monkeypatch):
    size = image_cache.decoded_bytes(len(photos.paths), 32)
    monkeypatch.setattr(image_cache, "physical_memory", lambda: 4 * size)
    assert not isinstance(image_cache.cached_split(photos, 32, False, "auto", tmp_path), image_cache.DiskImages)
    monkeypatch.setattr(image_cache, "physical_memory", lambda: 3 * size)
    assert isinstance(image_cache.cached_split(photos, 32, False, "auto", tmp_path), image_cache.DiskImages)


def test_a_full_disk_or_a_failed_decode_leaves_no_cache(photos, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    real_usage = image_cache.shutil.disk_usage
    monkeypatch.setattr(image_cache.shutil, "disk_usage", lambda path: real_usage(path)._replace(free=1000))
    with pytest.raises(KerasSignError, match=r"needs 0\.1 MB in .* which has 0\.0 MB free; pass --image-cache-dir"):
        image_cache.disk_images(photos.paths, photos.labels, 32, False, photos.orientations, folder)
    monkeypatch.undo()

    def broken_stream(*args):
        raise OSError("the disk went away")

    monkeypatch.setattr(image_cache, "decoded_stream", broken_stream)
    with pytest.raises(OSError, match="went away"):
        image_cache.disk_images(photos.paths, photos.labels, 32, False, photos.orientations, folder)
    assert list(folder.iterdir()) == []


def test_orientations_left_out_are_read_from_the_files(tmp_path):
    """A phone photo stored sideways with an EXIF orientation is cached upright, as in memory."""
    from PIL import Image

    from keras_sign.data.pipeline import decoded_images

    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)

    on_disk = image_cache.disk_images([str(path)], [0], 32, False, None, tmp_path / "cache")
    in_memory = next(decoded_images([str(path)], [0], 32).as_numpy_iterator())[0]
    np.testing.assert_array_equal(on_disk.rows([0])[0], in_memory)
    assert in_memory[:8].mean() > 200 and in_memory[-8:].mean() < 50  # upright: the band is now on top
