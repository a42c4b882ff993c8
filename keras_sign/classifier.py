"""One loader for every kind of trained model a user holds, with what inference needs to know.

    classifier = load_classifier("runs/digits-mobilenetv3_small-20261125-203937")    # a run folder
    classifier = load_classifier("exports/digits-...-tflite-none")                    # an export bundle
    classifier = load_classifier("model.tflite")       # with model.json or labels.txt beside it
    probabilities = classifier.predict(uint8_images)    # (n, size, size, 3) raw RGB -> (n, classes)

A model comes with its class names and its preprocessing (input size, and whether training cut the
central square): from a run folder's `run.json` and `classes.json`, an export bundle's
`model.json`, a `labels.txt` beside a bare model file, or a `.tflite` file's own metadata. The model runs in the runtime that ships
it (`keras_sign.runtimes`: Keras, LiteRT with XNNPACK, onnxruntime, TensorFlow).
"""

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from keras_sign.calibration import CALIBRATION_FILE
from keras_sign.errors import KerasSignError
from keras_sign.runtimes import load_model_file, model_file

log = logging.getLogger("keras_sign")


@dataclasses.dataclass
class Classifier:
    """A runnable model with its classes and preprocessing; see the module docstring."""

    model: object  # a `keras_sign.runtimes` model: `.predict(images)` and `.runtime`
    class_names: list
    image_size: int
    center_crop: bool
    source: str  # what was loaded, for messages and records
    temperature: float = 1.0  # from the run's calibration (keras_sign.calibration); 1: as trained
    unsure_below: float | None = None  # the calibrated reject threshold, when there is one

    @property
    def runtime(self):
        return self.model.runtime

    def predict(self, images):
        """Class probabilities `(n, classes)` of raw uint8 RGB images `(n, size, size, 3)`, calibrated."""
        probabilities = np.asarray(self.model.predict(np.asarray(images)), dtype=np.float32)
        if self.temperature == 1.0:
            return probabilities
        from keras_sign.calibration import apply_temperature

        return apply_temperature(probabilities, self.temperature).astype(np.float32)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise KerasSignError(f"{path} cannot be read ({error}); restore it or export the model again.") from None


def _labels_beside(path):
    labels = Path(path).with_name("labels.txt")
    if not labels.is_file():
        return None
    return [line.strip() for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]


def _check_same_classes(first, first_source, second, second_source):
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


def _description(path):
    """Class names, input size, centre crop and calibration (or None) for a model file, from whatever lies
    beside it. Two sources of class names (model.json and labels.txt, a .tflite's metadata and labels.txt)
    must agree."""
    path = Path(path)
    folder = path.parent  # a bundle's model.json, a run's run.json, or a labels.txt sits beside the model
    labels = _labels_beside(path)
    if (folder / "model.json").is_file():  # an export bundle
        record = _read_json(folder / "model.json")
        _check_same_classes(record["classes"], folder / "model.json", labels, folder / "labels.txt")
        preprocessing = record.get("preprocessing", {})
        center_crop = preprocessing.get("center_crop", "central square" in preprocessing.get("resize", ""))
        return record["classes"], preprocessing.get("image_size"), bool(center_crop), record.get("calibration")
    if (folder / "run.json").is_file() and (folder / "classes.json").is_file():  # a run folder's model
        info = _read_json(folder / "run.json")
        calibration = _read_json(folder / CALIBRATION_FILE) if (folder / CALIBRATION_FILE).is_file() else None
        return (_read_json(folder / "classes.json"), info.get("image_size"), bool(info.get("center_crop", False)),
                calibration)
    if path.suffix == ".tflite":  # a .tflite that carries its labels as metadata
        from keras_sign.tflite_metadata import read_metadata

        embedded = (read_metadata(path.read_bytes()) or {}).get("labels")
        if embedded is not None:
            _check_same_classes(embedded, f"{path.name}'s metadata", labels, folder / "labels.txt")
            labels = embedded
    return labels, None, False, None


def load_classifier(path, threads=None):
    """A `Classifier` for a run folder, a `.keras` file, an export bundle, or a `.tflite` / `.onnx` file.

    A bare model file needs its class names beside it (`model.json` or `labels.txt`, one name per
    line in output order); a `.keras` file without them is named by class index, with a warning.
    """
    path = Path(path)
    if not path.exists():
        raise KerasSignError(f"{path} does not exist; pass a run folder, a .keras/.tflite/.onnx file or an export bundle.")
    if path.is_dir() and (path / "run.json").is_file() and not (path / "model.keras").is_file():
        raise KerasSignError(f"{path} has not finished training (no model.keras); resume it with `keras-sign train --resume`.")
    file = model_file(path)
    model = load_model_file(file, threads)  # first: a damaged file is named before its metadata is read
    class_names, image_size, center_crop, calibration = _description(file)
    height, width = model.input_shape[:2]
    if image_size is None:
        image_size = height
    if (height, width) != (image_size, image_size):
        raise KerasSignError(f"{file} takes {height}x{width} images, but its description says {image_size}; "
                             "export the model again.")
    classes = model.predict(np.zeros((1, image_size, image_size, 3), model.input_dtype)).shape[-1]
    if class_names is None:
        if file.suffix != ".keras":
            raise KerasSignError(f"{file} has no model.json or labels.txt beside it; put its labels.txt (one class "
                                 "per line, in output order) in the same folder.")
        log.warning("%s has no class names beside it (run.json or labels.txt): classes are shown by index.", file)
        class_names = [str(i) for i in range(classes)]
    if len(class_names) != classes:
        raise KerasSignError(f"{file} has {classes} outputs but {len(class_names)} class names beside it; "
                             "use the labels that came with this model.")
    classifier = Classifier(model, list(class_names), int(image_size), center_crop, str(path))
    if calibration:
        classifier.temperature = float(calibration["temperature"])
        classifier.unsure_below = float(calibration["reject"]["threshold"])
    return classifier
