"""Where decoded training images are kept: in memory, or in a file on disk read batch by batch.

    keras-sign train --image-cache auto       # disk when a split's decoded images take over a quarter of the memory
    keras-sign train --image-cache disk --image-cache-dir /big/disk/cache

Either way a split is decoded once, at the training size. In memory (tf.data's cache) it costs its
decoded size in RAM for the whole run: the full ASL Alphabet at 224 px is 87,000 x 150 KB = 13 GB.
On disk it is one `.npy` file of uint8 rows, named by a hash of the image files (paths, sizes,
modification times), their orientations, the image size and the crop, so runs and resumes on the
same images share it. Training shuffles row *indices* with the same seeded shuffle the in-memory
path gives the images (so the batches come in the same order) and reads each batch's rows from
the file: the process holds a few batches, and the operating system's page cache keeps what fits.
Delete the folder's files to reclaim the space.
"""

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from keras_sign.data.decode import import_tensorflow
from keras_sign.data.pipeline import decoded_images, decoded_stream
from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import replaced_atomically

log = logging.getLogger("keras_sign")

MEMORY_SHARE = 0.25  # `auto` keeps a split in memory up to this share of the machine's memory
DEFAULT_FOLDER = "~/.cache/keras_sign/images"
WRITE_BATCH = 256


def physical_memory():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def decoded_bytes(count, image_size):
    return count * image_size * image_size * 3


def _size(count):
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


def cache_folder(option=None):
    """`--image-cache-dir`, else $KERAS_SIGN_IMAGE_CACHE, else ~/.cache/keras_sign/images."""
    return Path(option or os.environ.get("KERAS_SIGN_IMAGE_CACHE") or DEFAULT_FOLDER).expanduser()


def cached_split(files, image_size, center_crop, setting="auto", folder=None):
    """What `pipeline.batches` reads for one split (`files`: paths, labels, orientations, crops): a dataset
    cached in memory, or `DiskImages` (`setting` "disk", or "auto" when the split is large)."""
    size = decoded_bytes(len(files.paths), image_size)
    crops = getattr(files, "crops", None)  # the hands' squares of a run with a hand stage
    if setting == "memory" or (setting == "auto" and size <= MEMORY_SHARE * physical_memory()):
        return decoded_images(files.paths, files.labels, image_size, center_crop, files.orientations, crops)
    images = disk_images(files.paths, files.labels, image_size, center_crop, files.orientations, cache_folder(folder),
                         crops)
    log.info("%d images at %d px take %s decoded: read from %s (--image-cache).", len(files.paths), image_size,
             _size(size), images.path)
    return images


def cache_key(paths, orientations, image_size, center_crop, crops=None):
    """A name for one split's decoded images: it changes when a file, its orientation, its hand's crop or the
    size does."""
    stats = [os.stat(path) for path in paths]
    content = json.dumps([image_size, bool(center_crop), [os.fsdecode(path) for path in paths],
                          [int(o) for o in orientations], [[s.st_size, s.st_mtime_ns] for s in stats]]
                         + ([] if crops is None else [[[int(v) for v in crop] for crop in crops]]))
    return hashlib.sha256(content.encode()).hexdigest()[:24]


def disk_images(paths, labels, image_size, center_crop, orientations, folder, crops=None):
    """`DiskImages` of the files, decoding them into `folder` unless an earlier run already did."""
    from keras_sign.data.scan import read_orientations

    paths = list(paths)
    orientations = list(orientations) if orientations is not None else read_orientations(paths)
    folder = Path(folder)
    path = folder / f"{cache_key(paths, orientations, image_size, center_crop, crops)}.npy"
    if path.is_file() and not _intact(path, (len(paths), image_size, image_size, 3)):
        log.warning("%s is damaged (cut short or not a cache): decoding the images again.", path)
        path.unlink()
    if not path.is_file():
        _write(path, paths, labels, image_size, center_crop, orientations, crops)
    return DiskImages(path, labels)


def _header(path):
    """`(shape, fortran order, dtype)` of a `.npy` file written by `_write` (version 1.0), the offset of
    its first row and the file's length."""
    with open(path, "rb") as file:
        np.lib.format.read_magic(file)
        return np.lib.format.read_array_header_1_0(file), file.tell(), os.fstat(file.fileno()).st_size


def _intact(path, shape):
    """The file holds a uint8 array of `shape` and is as long as that needs."""
    try:
        header, offset, length = _header(path)
    except (OSError, ValueError):
        return False
    return header == (shape, False, np.dtype(np.uint8)) and length == offset + int(np.prod(shape))


def _write(path, paths, labels, image_size, center_crop, orientations, crops):
    needed = decoded_bytes(len(paths), image_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
    except OSError as error:
        raise KerasSignError(f"Cannot use {path.parent} for the image cache ({error.strerror}); pass another "
                             "--image-cache-dir, or --image-cache memory.") from None
    if free < needed * 1.05:
        raise KerasSignError(f"The image cache needs {_size(needed)} in {path.parent}, which has {_size(free)} free; "
                             "pass --image-cache-dir on a larger disk, or --image-cache memory.")
    log.info("Decoding %d images at %d px into %s (once; later runs on these files reuse it).", len(paths),
             image_size, path)
    shape = (len(paths), image_size, image_size, 3)
    stream = decoded_stream(paths, labels, image_size, center_crop, orientations, crops).batch(WRITE_BATCH)
    with replaced_atomically(path) as tmp, open(tmp, "wb") as file:  # a killed decode leaves no cache behind
        np.lib.format.write_array_header_1_0(file, {"descr": "|u1", "fortran_order": False, "shape": shape})
        for images, _ in stream.as_numpy_iterator():
            file.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
        file.flush()
        os.fsync(file.fileno())


class DiskImages:
    """A split's decoded images in a `.npy` file, read batch by batch.

    Rows are read with `pread`, not through a memory map: mapped pages would count in the process's
    resident memory, while read pages stay in the operating system's page cache, which gives them
    back under pressure.
    """

    def __init__(self, path, labels):
        self.path = Path(path)
        self.labels = np.asarray(labels, dtype=np.int32)
        (self.shape, _, _), self.offset, _ = _header(self.path)

    def rows(self, indices):
        """The uint8 images at `indices`, `(len(indices), size, size, 3)`."""
        row = int(np.prod(self.shape[1:]))
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = b"".join(os.pread(fd, row, self.offset + int(i) * row) for i in indices)
        finally:
            os.close(fd)
        return np.frombuffer(data, np.uint8).reshape(len(indices), *self.shape[1:])

    def batched(self, batch_size, shuffle_seed=None, drop_remainder=False):
        """`(uint8 images, class indices)` batches, in the order `batches` gives an in-memory split."""
        tf = import_tensorflow()
        ds = tf.data.Dataset.range(len(self.labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(self.labels), seed=shuffle_seed, reshuffle_each_iteration=False)

        def load(indices):
            images, classes = tf.numpy_function(lambda i: (self.rows(i), self.labels[i]), [indices],
                                                (tf.uint8, tf.int32), stateful=False)
            return tf.ensure_shape(images, (None, *self.shape[1:])), tf.ensure_shape(classes, (None,))

        return ds.batch(batch_size, drop_remainder=drop_remainder).map(load, num_parallel_calls=tf.data.AUTOTUNE)
