"""The run folder: the contract between training and every later command.

A run folder holds `config.yaml`, `run.json` (backend, versions, timing,
data root, normalisation), `classes.json`, `split.csv`, `history.csv`,
`model.keras` and `metrics.json`, and while training `checkpoint/` (see
`keras_sign.training.checkpoints`). Every file is written atomically
(`keras_sign.runs.atomic`), and one process at a time writes a run folder: it
holds the folder's lock (`keras_sign.runs.locks.FolderLock`) while it does.
"""

import json
import time
import typing
import zipfile
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import PROBE_PREFIX, atomic_write_csv, atomic_write_json, check_writable, read_csv
from keras_sign.runs.locks import LOCK_FILE, FolderLock, check_not_being_written
from keras_sign.runs.record import RunInfo, read_classes

SPLIT_COLUMNS = ("path", "label", "group", "split", "sha1", "orientation")



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
    split.csv written before orientations were recorded: the pipeline then reads them from the files);
    with a hand stage, each photo's hand crop `(x0, y0, side, mirror)`, or None where it holds no hand
    (`crops` is None for a run without the stage)."""

    paths: list
    labels: list
    orientations: list | None
    crops: list | None = None

    def with_hands(self):
        """The photos a model sees: all of them, or with a hand stage those in which a hand was found."""
        if self.crops is None:
            return self
        keep = [i for i, crop in enumerate(self.crops) if crop is not None]
        return SplitFiles([self.paths[i] for i in keep], [self.labels[i] for i in keep],
                          None if self.orientations is None else [self.orientations[i] for i in keep],
                          [self.crops[i] for i in keep])


def default_run_path(dataset, arch):
    """`runs/<dataset>-<arch>-<time>`, with `-2`, `-3`... when a run started in the same second."""
    base = Path("runs") / f"{dataset}-{arch.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"  # fusion:<cnn>
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
        raise KerasSignError(f"{path} is damaged or cut short ({error}); {DAMAGED_ADVICE}") from None
    if damaged is not None:
        raise KerasSignError(f"{path} is damaged ({damaged} fails its checksum); {DAMAGED_ADVICE}")


DAMAGED_ADVICE = "restore it from a copy, or train the run again (`keras-sign train --resume` uses its checkpoints)"


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

    def write_split(self, records, assignment, crops=None):
        """split.csv: each photo's split; with a hand stage also its hand's crop (`crop`: "x0 y0 side mirror",
        empty where no hand was found)."""
        rows = [[r.path, r.label, r.group or "", split, r.sha1, r.orientation] for r, split in zip(records, assignment)]
        columns = SPLIT_COLUMNS
        if crops is not None:
            columns = (*SPLIT_COLUMNS, "crop")
            rows = [[*row, "" if crop is None else " ".join(map(str, crop))] for row, crop in zip(rows, crops)]
        atomic_write_csv(self.file("split.csv"), columns, rows)

    def read_split(self):
        if not self.file("split.csv").is_file():  # an ensemble of runs trained on different splits has none
            raise KerasSignError(f"{self.path} has no split.csv, so no training, validation or test split; "
                                 "evaluate it with --data-dir PATH.")
        return read_csv(self.file("split.csv"))

    def split_files(self, split):
        """The `SplitFiles` of one split, or a clear error when some of its images are gone."""
        root = Path(RunInfo.read(self.path).data_root)
        index = {name: i for i, name in enumerate(read_classes(self.path))}
        rows = [row for row in self.read_split() if row["split"] == split]
        paths = [root / row["path"] for row in rows]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise KerasSignError(
                f"{len(missing)} {split} image(s) of {self.path} are gone from {root} (e.g. {missing[0]}); "
                "restore the data."
            )
        orientations = [int(row["orientation"]) for row in rows] if rows and "orientation" in rows[0] else None
        crops = None
        if rows and "crop" in rows[0]:
            crops = [tuple(int(v) for v in row["crop"].split()) if row["crop"] else None for row in rows]
        return SplitFiles(paths, [index[row["label"]] for row in rows], orientations, crops)

    def read_history(self):
        """Rows of `history.csv`; none before the first epoch has finished."""
        path = self.file("history.csv")
        return read_csv(path) if path.is_file() else []
