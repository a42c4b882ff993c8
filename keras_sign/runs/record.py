"""The typed record of a run folder and of an export bundle: the one module that reads and writes
`run.json`, `classes.json`, `calibration.json`, `model.json` and `labels.txt`.

    info = RunInfo.read("runs/digits")            # run.json: architecture, data, preprocessing, status
    info.preprocessing                             # Preprocessing(image_size=64, center_crop=False, hands=None)
    record = read_model_record("exports/digits-mobilenetv3_small-tflite-none")
    record.classes, record.calibration.temperature # what inference needs, from a run folder or a bundle

`run.json` and `model.json` carry a schema number (`SCHEMA`). Folders written before it existed
(keras-sign 0.2.0) still read: every field added since has a default that means what those
folders did (no hand stage, the whole photo resized).
"""

import dataclasses
import hashlib
import json
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import atomic_write_json, atomic_write_text

SCHEMA = 1  # of run.json and model.json; raise it when a field changes meaning
RUN_FILE = "run.json"
CLASSES_FILE = "classes.json"
CALIBRATION_FILE = "calibration.json"
BUNDLE_FILE = "model.json"
LABELS_FILE = "labels.txt"
HANDS_FILE = "hands.jsonl"  # the hands of every photo of the split (`keras_sign.training.preparation`)

_RESTORE = "restore it from a copy, or train (or export) the model again"


def _read_json(path):
    """A JSON file of a record, or one line saying it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KerasSignError(f"{path} is missing; {_RESTORE}.") from None
    except (OSError, ValueError) as error:
        raise KerasSignError(f"{path} cannot be read ({error}); {_RESTORE}.") from None


def _check_schema(record, path):
    schema = record.get("schema", 0) if isinstance(record, dict) else None
    if not isinstance(schema, int):
        raise KerasSignError(f"{path} is not a keras-sign record (no JSON object with a schema number); {_RESTORE}.")
    if schema > SCHEMA:
        raise KerasSignError(f"{path} was written by a newer keras-sign (record schema {schema}, this one reads up to "
                             f"{SCHEMA}); upgrade keras-sign to read it.")


def reads_landmarks(hands):
    """Whether a hand stage's settings (`hands` of a record) feed the model the hand's landmark features: a
    landmark model, or a fusion model (which reads the hand's square too)."""
    return bool(hands) and hands.get("stage") in ("landmarks", "fusion")


def reads_pixels(hands):
    """Whether the model reads pixels (the photo, or the hand's square): every model but a landmark model."""
    return not (hands and hands.get("stage") == "landmarks")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What a photo goes through before the model: resized to `image_size` (whole, or with
    `center_crop` its central square), and with a hand stage (`hands`, the stage's settings) the
    square around the hand first. Pixels stay raw RGB 0-255: the normalisation is inside the model."""

    image_size: int
    center_crop: bool = False
    hands: dict | None = None

    @property
    def reads_landmarks(self):
        return reads_landmarks(self.hands)

    @property
    def reads_pixels(self):
        return reads_pixels(self.hands)

    def to_json(self):
        """`model.json`'s "preprocessing", in words an app can follow."""
        resize = ("shorter side to image_size / 0.875, then the central square" if self.center_crop
                  else "the whole image to image_size x image_size")
        if not self.reads_pixels:
            resize = "none: the model reads the hand's landmark features, not pixels (see hands)"
        elif self.hands:
            resize = f"the square around the hand (see hands), then {resize}"
            if self.reads_landmarks:
                resize += "; the model's second input is the hand's landmark features (see hands)"
        return {"image_size": self.image_size, "center_crop": self.center_crop, "resize": resize,
                "normalisation": "none outside the model: feed raw RGB pixels 0-255",
                **({"hands": self.hands} if self.hands else {})}

    @classmethod
    def from_json(cls, record):
        """From `model.json`'s "preprocessing"; a 0.2.0 bundle said the centre crop in words only."""
        center_crop = record.get("center_crop", "central square" in record.get("resize", ""))
        return cls(int(record["image_size"]), bool(center_crop), record.get("hands"))


def input_records(preprocessing, records=None):
    """model.json's `input` (a model of two: `inputs`, the pixels then the landmark features): what each input holds,
    each merged with its entry of `records` (a runtime's name, shape, dtype, quantization)."""
    meanings = ([{"layout": "NHWC", "channels": "RGB", "pixel_range": [0, 255]}] if preprocessing.reads_pixels
                else []) + ([{"meaning": "one hand's landmark features: preprocessing.hands.features says how to "
                                         "compute them and gives a test vector"}] if preprocessing.reads_landmarks
                            else [])
    described = [{**given, **meaning} for given, meaning in zip(records or [{}] * len(meanings), meanings)]
    return {"input": described[0]} if len(described) == 1 else {"inputs": described}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A run's calibration (`keras_sign.analysis.calibration`): the temperature its probabilities are
    divided by, and the confidence below which an answer is unsure; `fitted` is calibration.json."""

    temperature: float
    reject_threshold: float
    fitted: dict

    @classmethod
    def from_json(cls, record):
        return cls(float(record["temperature"]), float(record["reject"]["threshold"]), record)

    def to_json(self):
        return self.fitted


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """What inference needs to know of a model: its classes in output order, its preprocessing and
    calibration (None: none fitted), its architecture ("ensemble" for one; None when unknown), where it
    came from (`lineage`: the source run of a bundle, or an ensemble's members) and the file it was
    read from (`source`)."""

    classes: list | None
    preprocessing: Preprocessing | None
    calibration: Calibration | None = None
    arch: str | None = None
    lineage: dict | list | None = None
    source: str | None = None


@dataclasses.dataclass
class RunInfo:
    """`run.json`: what a run is (architecture, data, preprocessing, split) and where its training
    stands (`status`: "training" or "finished"). `members`: an ensemble's runs. `extra`: what training
    records of itself (versions, devices, timings, counts); written beside the typed fields."""

    arch: str
    dataset: str
    data_root: str
    image_size: int
    center_crop: bool = False
    status: str = "training"
    split_method: str | None = None
    hands: dict | None = None
    normalization: dict = dataclasses.field(default_factory=dict)
    backend: str | None = None
    members: list | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def preprocessing(self):
        return Preprocessing(self.image_size, self.center_crop, self.hands)

    @property
    def is_ensemble(self):
        return self.arch == "ensemble"

    @classmethod
    def read(cls, folder):
        path = Path(folder) / RUN_FILE
        record = _read_json(path)
        _check_schema(record, path)
        typed = {field.name for field in dataclasses.fields(cls)} - {"extra"}
        missing = [name for name in ("arch", "dataset", "data_root", "image_size") if name not in record]
        if missing:
            raise KerasSignError(f"{path} lacks {', '.join(missing)}; {_RESTORE}.")
        values = {name: record[name] for name in typed if name in record}
        values["center_crop"] = bool(values.get("center_crop", False))
        extra = {key: value for key, value in record.items() if key not in typed and key != "schema"}
        return cls(**values, extra=extra)

    def to_json(self):
        record = {"schema": SCHEMA}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "extra":
                record.update(value)
            elif value is not None or field.name not in ("hands", "members", "backend"):
                record[field.name] = value
        return record

    def write(self, folder):
        atomic_write_json(Path(folder) / RUN_FILE, self.to_json())


def read_classes(folder):
    """The class names of a run folder (`classes.json`), in the model's output order."""
    path = Path(folder) / CLASSES_FILE
    classes = _read_json(path)
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise KerasSignError(f"{path} is not a list of class names; {_RESTORE}.")
    return classes


def write_classes(folder, class_names):
    atomic_write_json(Path(folder) / CLASSES_FILE, list(class_names))


def read_labels(path):
    """The class names of a `labels.txt` (one per line, in output order), or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_same_classes(first, first_source, second, second_source):
    """Refuse two lists of class names for one model that disagree: which one is right cannot be known."""
    if second is None or list(first) == list(second):
        return
    if len(first) != len(second):
        difference = f"{first_source} names {len(first)} classes, {second_source} {len(second)}"
    else:
        line = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
        difference = f"class {line + 1} is '{first[line]}' in {first_source} but '{second[line]}' in {second_source}"
    raise KerasSignError(f"The class names beside the model disagree ({difference}); restore the files that came "
                         "with the model, or export it again.")


def is_bundle(folder):
    """An export bundle or an ensemble: a folder with `model.json`."""
    return (Path(folder) / BUNDLE_FILE).is_file()


def is_run_folder(folder):
    return (Path(folder) / RUN_FILE).is_file() and (Path(folder) / CLASSES_FILE).is_file()


def read_calibration(folder):
    """A run folder's calibration, or None when it was never calibrated."""
    path = Path(folder) / CALIBRATION_FILE
    return Calibration.from_json(_read_json(path)) if path.is_file() else None


def write_calibration(folder, calibration):
    """Write `calibration.json` (a dict, from `keras_sign.analysis.calibration.fit`); a folder with a
    `model.json` (an ensemble) gets the copy that predict and apps read there too."""
    folder = Path(folder)
    atomic_write_json(folder / CALIBRATION_FILE, calibration)
    if is_bundle(folder):
        atomic_write_json(folder / BUNDLE_FILE, {**_read_json(folder / BUNDLE_FILE), "calibration": calibration})


def read_model_record(folder):
    """The `ModelRecord` of a bundle (or ensemble) from its `model.json`, whose classes must agree with
    its `labels.txt`, or of a run folder from `run.json`, `classes.json` and `calibration.json`."""
    folder = Path(folder)
    if is_bundle(folder):
        path = folder / BUNDLE_FILE
        record = _read_json(path)
        _check_schema(record, path)
        if "classes" not in record or "preprocessing" not in record:
            raise KerasSignError(f"{path} lacks its classes or preprocessing; {_RESTORE}.")
        check_same_classes(record["classes"], path, read_labels(folder / LABELS_FILE), folder / LABELS_FILE)
        calibration = Calibration.from_json(record["calibration"]) if record.get("calibration") else None
        return ModelRecord(list(record["classes"]), Preprocessing.from_json(record["preprocessing"]), calibration,
                           record.get("arch"), record.get("members") or record.get("source_run"), str(path))
    info = RunInfo.read(folder)
    return ModelRecord(read_classes(folder), info.preprocessing, read_calibration(folder), info.arch,
                       info.members, str(folder / RUN_FILE))


def bundle_json(classes, preprocessing, calibration, **fields):
    """`model.json` of a bundle or an ensemble: the schema, the classes and where their names are, the
    preprocessing and the calibration (a `Calibration`, its dict, or None), then `fields` as given."""
    if isinstance(calibration, Calibration):
        calibration = calibration.to_json()
    return {"schema": SCHEMA, **{key: fields.pop(key) for key in ("format", "file") if key in fields},
            "classes": list(classes), "labels_file": LABELS_FILE, "preprocessing": preprocessing.to_json(),
            **({"calibration": calibration} if calibration else {}), **fields}


def write_bundle(folder, record):
    """`labels.txt` and `model.json` of a bundle record (`bundle_json`)."""
    atomic_write_text(Path(folder) / LABELS_FILE, "".join(f"{name}\n" for name in record["classes"]))
    atomic_write_json(Path(folder) / BUNDLE_FILE, record)


def model_sha256(folder):
    """The SHA-256 of a run folder's `model.keras`: which weights an export or an ensemble was made of."""
    digest = hashlib.sha256()
    with open(Path(folder) / "model.keras", "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hand_stage_settings(models, margin, mirror_left, retry_border, description, stage="crop", features=None):
    """The hand stage as a run records it (`run.json`'s and `model.json`'s `hands`): the settings every
    later command applies, the models' files (`description`: `HandDetector.description`) and the steps
    in words for an app to follow. `stage`: "crop" (the model sees the hand's square), "landmarks" (it
    reads the landmark features `features` specifies: `keras_sign.hands.features.SPEC`) or "fusion" (both)."""
    mirror = "; if it is a left hand, mirror it left-right (every hand then looks like a right hand)" if mirror_left \
        else ""
    found = f"find the hand with MediaPipe's palm detector and hand landmark model ({models})"
    if stage == "landmarks":
        what = (f"{found}; turn its 21 landmarks into the model's input as `features.steps` says (check it on "
                "`features.test_vector`). A photo without a hand is no sign.")
    else:
        what = (f"{found}; take the box around its 21 landmarks, square it on its longer side, grow it by {margin:g} "
                f"of that side on each side, and cut that square from the photo (black where it reaches past the "
                f"edge){mirror}; then resize it as `resize` says. A photo without a hand is no sign.")
        if stage == "fusion":
            what += (" The model's second input: the 21 landmarks turned into features as `features.steps` says "
                     "(check it on `features.test_vector`).")
    return {"stage": stage, "models": models, "margin": margin, "mirror_left": mirror_left,
            "retry_border": retry_border, **{key: value for key, value in description.items() if key != "models"},
            **({"features": features} if features else {}), "what": what}
