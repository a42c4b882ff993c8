"""Writes that readers never see half-done.

Every file keras-sign writes goes to a hidden temporary name in the same folder and is renamed into
place, so an interrupted command never leaves a half-written file that a later one would trust.

File names that are not valid UTF-8 (Latin-1 names from a Windows zip) reach Python as strings with
surrogate escapes; text files here are written and read with the same escapes, so such a name
survives split.csv byte for byte.
"""

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path

from keras_sign.errors import KerasSignError

PROBE_PREFIX = ".keras-sign-probe-"  # the short-lived file `check_writable` writes
TEXT_ERRORS = "surrogateescape"  # file names that are not UTF-8 round-trip through our text files
UMASK = os.umask(0)
os.umask(UMASK)


@contextlib.contextmanager
def replaced_atomically(path):
    """Yield a temporary path beside `path`, renamed onto `path` when the block succeeds, removed otherwise.

    Readers see either the old file or the whole new one. The temporary name is hidden, unique, and
    ends in `path`'s own name, since Keras insists on `.keras` and `.weights.h5` suffixes.
    """
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=f".tmp.{path.name}")
    os.close(handle)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp creates 0600; give the file the usual permissions
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path, data):
    """Write `data` to `path` so readers see either the old file or the whole new one; return `path`."""
    with replaced_atomically(path) as tmp, open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return path


def atomic_write_text(path, text):
    return atomic_write_bytes(path, text.encode("utf-8", TEXT_ERRORS))


def atomic_write_json(path, value):
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def atomic_write_csv(path, header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def read_csv(path):
    with open(path, newline="", encoding="utf-8", errors=TEXT_ERRORS) as file:
        return list(csv.DictReader(file))


def check_writable(path, option="--out"):
    """Refuse, before any work starts, an output folder `path` that cannot be created or written.

    Walks up to the nearest folder that exists and creates (and removes) a file there: that finds a
    read-only disk or folder, and a file standing where a folder must be, in one place.
    """
    path = Path(path)
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == path.absolute() else f"would be inside {existing}, which is"
        raise KerasSignError(f"Cannot create the folder {path}: it {where} a file; choose another {option}.")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=PROBE_PREFIX)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise KerasSignError(
            f"Cannot write in {existing} ({error.strerror or error}); choose another {option} or fix its permissions."
        ) from None
    return path
