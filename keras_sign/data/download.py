"""Fetch a named dataset into the cache folder, from Kaggle or from an archive the user has.

    keras-sign data download fingerspelling
    keras-sign data download alphabet --archive ~/Downloads/asl-alphabet.zip

Everything is unpacked into a hidden staging folder beside the target and
renamed into place only once the expected class folders are found in it, so
an interrupted download never looks like a usable dataset.
"""

import logging
import os
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path

from keras_sign.data.catalog import cache_root, find_class_root, get_spec
from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")


def _fetch_from_kaggle(spec, staging):
    try:
        import kagglehub
    except ImportError:
        raise KerasSignError(
            f"Downloading '{spec.name}' needs kagglehub: run `pip install kagglehub`, or download {spec.url} "
            f"yourself and run `keras-sign data download {spec.name} --archive FILE.zip`."
        ) from None
    try:
        kagglehub.dataset_download(spec.kaggle_handle, output_dir=str(staging))
    except Exception as error:  # kagglehub raises many types (HTTP, auth, config); all mean the same here
        raise KerasSignError(
            f"Could not download {spec.url} ({type(error).__name__}: {error}); set up Kaggle credentials "
            "(~/.kaggle/kaggle.json or KAGGLE_USERNAME and KAGGLE_KEY) or download it yourself and pass --archive FILE.zip."
        ) from None


def _unpack(archive, staging):
    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise KerasSignError(f"Archive {archive} does not exist; pass the .zip (or .tar.gz) you downloaded.")
    try:
        # The format is told from the content, not the suffix shutil would go by, so a download saved
        # without its ".zip" still unpacks; shutil refuses `filter` for zip files (cpython#112760).
        if zipfile.is_zipfile(archive):
            shutil.unpack_archive(archive, staging, format="zip")  # skips absolute and ".." members itself
        else:
            # tarfile detects gz/bz2/xz itself; "data" refuses links and paths leaving the folder.
            shutil.unpack_archive(archive, staging, format="tar", filter="data")
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error) as error:
        raise KerasSignError(f"Could not unpack {archive} ({error}); pass a .zip, .tar, .tar.gz or .tar.xz file.") from None


def download_dataset(name, cache_dir=None, archive=None, force=False):
    """Install dataset `name` under the cache folder and return the folder holding its classes.

    Args:
        name: a catalog name (`numbers`, `alphabet`, `fingerspelling`).
        cache_dir: cache folder; default `$KERAS_SIGN_DATA` or `~/.keras/datasets/keras_sign`.
        archive: a local .zip/.tar.* of the dataset instead of downloading from Kaggle.
        force: replace a dataset that is already installed.
    """
    spec = get_spec(name)
    if spec.embedded_dir is not None:
        raise KerasSignError(f"Dataset '{name}' ships with keras-sign; there is nothing to download.")
    target = cache_root(cache_dir) / name
    if target.is_dir() and not force:
        installed = find_class_root(target, spec)
        if installed is not None:
            log.info("Dataset '%s' is already in %s (use --force to replace it).", name, target)
            return installed
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if archive is not None:
            _unpack(archive, staging)
        else:
            _fetch_from_kaggle(spec, staging)
        if find_class_root(staging, spec) is None:
            raise KerasSignError(
                f"What was fetched for '{name}' has no folder of its class folders "
                f"({', '.join(spec.classes[:5])}, ...); check that it is {spec.url}."
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    root = find_class_root(target, spec)
    log.info("Dataset '%s' installed in %s.", name, root)
    return root
