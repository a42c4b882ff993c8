"""The run folder: the contract between training and every later command.

A run folder holds `config.yaml`, `run.json` (backend, versions, timing,
data root, normalisation), `classes.json`, `split.csv`, `history.csv`,
`model.keras` and `metrics.json`, and while training `checkpoint/` (see
`keras_sign.checkpoints`). Every file is written to a temporary name in
the same folder and renamed into place, so an interrupted run never leaves a
half-written file that a later command would trust. One process at a time
writes a run folder: it holds the folder's lock (`FolderLock`) while it does.

File names that are not valid UTF-8 (Latin-1 names from a Windows zip) reach
Python as strings with surrogate escapes; text files here are written and read
with the same escapes, so such a name survives split.csv byte for byte.
"""

import contextlib
import csv
import errno
import fcntl
import importlib
import io
import json
import os
import socket
import tempfile
import time
import typing
import zipfile
from pathlib import Path

from keras_sign.errors import KerasSignError

SPLIT_COLUMNS = ("path", "label", "group", "split", "sha1", "orientation")
LOCK_FILE = ".lock"
PROBE_PREFIX = ".keras-sign-probe-"  # the short-lived file `check_writable` writes
TEXT_ERRORS = "surrogateescape"  # file names that are not UTF-8 round-trip through our text files
_UMASK = os.umask(0)
os.umask(_UMASK)


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
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
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


class FolderLock:
    """An exclusive lock on a folder for the life of the process that writes it.

    `fcntl.flock` on `<folder>/.lock`: the operating system releases it when the process ends,
    however it ends (kill -9 included), so a lock is never stale. The holder writes its PID, host
    and start time into the file, so a second writer is told who holds the folder.

    Example:
        with FolderLock("runs/digits"):
                pass  # write the folder
    """

    def __init__(self, folder, what="Run folder"):
        self.folder = Path(folder)
        self.what = what
        self.handle = None

    def __enter__(self):
        path = self.folder / LOCK_FILE
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(handle, 1000, 0).decode("utf-8", "replace").strip()
            os.close(handle)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise _being_written(self.what, self.folder, holder) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"PID {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                  .encode(), 0)
        self.handle = handle
        _HELD_HERE.add(self.folder.resolve())
        return self

    def __exit__(self, *exc_info):
        _HELD_HERE.discard(self.folder.resolve())
        os.ftruncate(self.handle, 0)
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        os.close(self.handle)
        self.handle = None


_HELD_HERE = set()  # resolved folders whose FolderLock this process holds


def _being_written(what, folder, holder):
    return KerasSignError(f"{what} {folder} is being written by another process ({holder or 'starting'}); "
                          "wait for it to finish or stop it, then run this again.")


def check_not_being_written(folder, what="Run folder"):
    """Refuse to read `folder` while another process holds its `FolderLock`: a run being trained (or
    resumed) would hand its readers the model.keras it is about to replace.

    A shared flock, taken and given back at once, is refused exactly while a writer holds the
    exclusive one; this process's own locks (training evaluates its own run) do not count.
    """
    folder = Path(folder)
    if folder.resolve() in _HELD_HERE:
        return
    try:
        handle = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:  # never locked, or a folder this user may only read: nobody writes it now
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise _being_written(what, folder, os.pread(handle, 1000, 0).decode("utf-8", "replace").strip()) from None
    finally:
        os.close(handle)


def holds_files(folder):
    """Whether `folder` holds anything but its lock file (and another process's writability probe)."""
    return any(p.name != LOCK_FILE and not p.name.startswith(PROBE_PREFIX) for p in folder.iterdir())


def check_new_folder(path, what):
    """Refuse, before any work, an output folder that already holds files (they would mix with ours)
    or that cannot be created or written."""
    path = Path(path)
    if path.is_dir() and holds_files(path):
        raise KerasSignError(f"{what} {path} already exists and is not empty; choose another --out.")
    return check_writable(path)


def create_empty_folder(path, what, held=None):
    """Create the output folder `path`, refusing one that already holds files or cannot be written.

    With `held` (a `contextlib.ExitStack`), the folder is also locked for this process until the
    stack closes; the emptiness check comes after the lock, so of two processes racing for one
    folder exactly one gets it.
    """
    path = check_new_folder(path, what)
    path.mkdir(parents=True, exist_ok=True)
    if held is not None:
        held.enter_context(FolderLock(path, what))
        if holds_files(path):
            raise KerasSignError(f"{what} {path} already exists and is not empty; choose another --out.")
    return path


class SplitFiles(typing.NamedTuple):
    """The images of one split: absolute paths, class indices, and EXIF orientations (None for a
    split.csv written before orientations were recorded: the pipeline then reads them from the files)."""

    paths: list
    labels: list
    orientations: list | None


def default_run_path(dataset, arch):
    """`runs/<dataset>-<arch>-<time>`, with `-2`, `-3`... when a run started in the same second."""
    base = Path("runs") / f"{dataset}-{arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, number = base, 1
    while path.exists():
        number += 1
        path = base.with_name(f"{base.name}-{number}")
    return path


def check_model_file(path):
    """Refuse a `.keras` file that is missing, cut short or damaged (a `.keras` file is a zip with CRCs)."""
    if not Path(path).is_file():
        raise KerasSignError(f"{path} does not exist; pass a run folder whose training finished.")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise KerasSignError(f"{path} is damaged or cut short ({error}); {_DAMAGED_ADVICE}") from None
    if damaged is not None:
        raise KerasSignError(f"{path} is damaged ({damaged} fails its checksum); {_DAMAGED_ADVICE}")


_DAMAGED_ADVICE = "restore it from a copy, or train the run again (`keras-sign train --resume` uses its checkpoints)"


class RunFolder:
    """Paths and readers/writers of one run folder."""

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, out, dataset, arch, held):
        """A new, empty run folder, locked for this process until `held` (an ExitStack) closes:
        `out` if given, else `runs/<dataset>-<arch>-<time>`."""
        return cls(create_empty_folder(out or default_run_path(dataset, arch), "Run folder", held))

    @classmethod
    def open(cls, path):
        """An existing run folder with a trained model, or a clear error; refused while another process
        writes it (`check_not_being_written`)."""
        run = cls(path)
        if not (run.path / "model.keras").is_file() or not (run.path / "run.json").is_file():
            raise KerasSignError(
                f"{path} is not a finished run folder (no model.keras or run.json); pass a folder written by "
                "`keras-sign train`."
            )
        check_not_being_written(run.path)
        return run

    def file(self, name):
        return self.path / name

    def write_json(self, name, value):
        atomic_write_json(self.file(name), value)

    def read_json(self, name):
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def write_split(self, records, assignment):
        rows = [(r.path, r.label, r.group or "", split, r.sha1, r.orientation) for r, split in zip(records, assignment)]
        atomic_write_csv(self.file("split.csv"), SPLIT_COLUMNS, rows)

    def read_split(self):
        if not self.file("split.csv").is_file():  # an ensemble of runs trained on different splits has none
            raise KerasSignError(f"{self.path} has no split.csv, so no training, validation or test split; "
                                 "evaluate it with --data-dir PATH.")
        return read_csv(self.file("split.csv"))

    def split_files(self, split):
        """The `SplitFiles` of one split, or a clear error when some of its images are gone."""
        root = Path(self.read_json("run.json")["data_root"])
        index = {name: i for i, name in enumerate(self.read_json("classes.json"))}
        rows = [row for row in self.read_split() if row["split"] == split]
        paths = [root / row["path"] for row in rows]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise KerasSignError(
                f"{len(missing)} {split} image(s) of {self.path} are gone from {root} (e.g. {missing[0]}); "
                "restore the data."
            )
        orientations = [int(row["orientation"]) for row in rows] if rows and "orientation" in rows[0] else None
        return SplitFiles(paths, [index[row["label"]] for row in rows], orientations)

    def read_history(self):
        """Rows of `history.csv`; none before the first epoch has finished."""
        path = self.file("history.csv")
        return read_csv(path) if path.is_file() else []

    def save_model(self, model, name="model.keras", optimizer=True):
        """Save a model file atomically (Keras insists on the `.keras` suffix, so the temp name keeps it).

        With `optimizer=False` only the layers and weights are saved, through an uncompiled model over
        the same layers: no optimizer state and no custom schedule, so plain Keras loads the file on
        any backend. (`clone_model` would not do: it compiles the clone like the original.)
        """
        final = self.file(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        if not optimizer:
            import keras

            model = keras.Model(model.input, model.output, name=model.name)
        with replaced_atomically(final) as tmp:
            model.save(tmp)

    def load_model(self, name="model.keras", compile=False):
        """A model file of the run; `compile=True` also restores its optimizer state (same backend only)."""
        import keras

        for module in ("keras_sign.schedules", "keras_sign.optimizers"):  # what a checkpoint's optimizer names
            importlib.import_module(module)
        from keras_sign.models import available_models

        available_models()  # imports every architecture, registering its custom layers for loading
        path = self.file(name)
        check_model_file(path)
        check_not_being_written(self.path)
        # Not compiled by default: a model trained under JAX records jit_compile=True, which under the
        # torch backend would mean torch.compile; prediction and weight copying need no compiled state.
        try:
            return keras.models.load_model(path, compile=compile)
        except (ValueError, KeyError, OSError) as error:  # an intact zip whose parts do not make a model
            raise KerasSignError(f"{path} does not load as a Keras model ({error}); {_DAMAGED_ADVICE}") from None
