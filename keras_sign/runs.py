"""The run folder: the contract between training and every later command.

A run folder holds `config.yaml`, `run.json` (backend, versions, timing,
data root, normalisation), `classes.json`, `split.csv`, `history.csv`,
`model.keras` and `metrics.json`, and while training `checkpoint/` (see
`keras_sign.checkpoints`). Every file is written to a temporary name in
the same folder and renamed into place, so an interrupted run never leaves a
half-written file that a later command would trust.
"""

import csv
import importlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from keras_sign.errors import KerasSignError

SPLIT_COLUMNS = ("path", "label", "group", "split", "sha1")
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path, data):
    """Write `data` to `path` so readers see either the old file or the whole new one; return `path`."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text):
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, value):
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def atomic_write_csv(path, header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def create_empty_folder(path, what):
    """Create the output folder `path`, refusing one that already holds files (they would mix with ours)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise KerasSignError(f"{what} {path} already exists and is not empty; choose another --out.")
    path.mkdir(parents=True, exist_ok=True)
    return path


class RunFolder:
    """Paths and readers/writers of one run folder."""

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, out, dataset, arch):
        """A new, empty run folder: `out` if given, else `runs/<dataset>-<arch>-<time>`."""
        if out is None:
            out = Path("runs") / f"{dataset}-{arch}-{time.strftime('%Y%m%d-%H%M%S')}"
        return cls(create_empty_folder(out, "Run folder"))

    @classmethod
    def open(cls, path):
        """An existing run folder with a trained model, or a clear error."""
        run = cls(path)
        if not (run.path / "model.keras").is_file() or not (run.path / "run.json").is_file():
            raise KerasSignError(
                f"{path} is not a finished run folder (no model.keras or run.json); pass a folder written by "
                "`keras-sign train`."
            )
        return run

    def file(self, name):
        return self.path / name

    def write_json(self, name, value):
        atomic_write_json(self.file(name), value)

    def read_json(self, name):
        return json.loads(self.file(name).read_text())

    def write_split(self, records, assignment):
        rows = [(r.path, r.label, r.group or "", split, r.sha1) for r, split in zip(records, assignment)]
        atomic_write_csv(self.file("split.csv"), SPLIT_COLUMNS, rows)

    def read_split(self):
        return read_csv(self.file("split.csv"))

    def split_files(self, split):
        """`(image paths, class indices)` of one split, or a clear error when some of its images are gone."""
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
        return paths, [index[row["label"]] for row in rows]

    def read_history(self):
        """Rows of `history.csv`; none before the first epoch has finished."""
        path = self.file("history.csv")
        return read_csv(path) if path.is_file() else []

    def save_model(self, model, name="model.keras"):
        """Save a model file atomically (Keras insists on the `.keras` suffix, so the temp name keeps it)."""
        final = self.file(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}-{os.getpid()}.tmp.keras")
        try:
            model.save(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def load_model(self, name="model.keras", compile=False):
        """A model file of the run; `compile=True` also restores its optimizer state (same backend only)."""
        import keras

        importlib.import_module("keras_sign.schedules")  # registers the schedule a checkpoint's optimizer holds
        from keras_sign.models import available_models

        available_models()  # imports every architecture, registering its custom layers for loading
        # Not compiled by default: a model trained under JAX records jit_compile=True, which under the
        # torch backend would mean torch.compile; prediction and weight copying need no compiled state.
        return keras.models.load_model(self.file(name), compile=compile)
