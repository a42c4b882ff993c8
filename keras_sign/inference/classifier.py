"""One way to run every kind of trained model a user holds, with what inference needs to know.

    classifier = load_classifier("runs/digits-mobilenetv3_small-20261125-203937")    # a run folder
    classifier = load_classifier("exports/digits-...-tflite-none")                    # an export bundle
    classifier = load_classifier("model.tflite")       # with model.json or labels.txt beside it
    probabilities = classifier.predict(uint8_images)    # (n, size, size, 3) raw RGB -> (n, classes)
    classifier.top(probabilities, k=3)                  # [[("A", 0.91), ("S", 0.05), ...], ...]

A model comes with its record (`keras_sign.runs.record.ModelRecord`): class names, preprocessing
(input size, and whether training cut the central square), calibration and architecture, from a
run folder, an export bundle's `model.json`, a `labels.txt` beside a bare model file, or a `.tflite`
file's own metadata. The model runs in the runtime that ships it (`keras_sign.inference.runtimes`:
Keras, LiteRT with XNNPACK, onnxruntime, TensorFlow).

Evaluation, calibration, export verification, ensembles, predict, transcribe and the demo all run
models through a `Classifier`: one batching loop, one top-k, and the one place that applies the
calibrated temperature.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.inference.inputs import as_float32, count, from_parts, is_inputs, padded, rows
from keras_sign.inference.runtimes import KerasModel, load_model_file, model_file
from keras_sign.runs.record import (
    LABELS_FILE,
    ModelRecord,
    Preprocessing,
    check_same_classes,
    is_bundle,
    is_run_folder,
    read_labels,
    read_model_record,
    reads_landmarks,
    reads_pixels,
)

log = logging.getLogger("keras_sign")

BATCH_SIZE = 64


def apply_temperature(probabilities, temperature):
    """Softmax of log(p) / T, row by row: a calibrated model's probabilities (T > 1 softens them; the
    ranking of classes, and so accuracy, never changes)."""
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def _batches(inputs, batch_size):
    """Inputs (`keras_sign.inference.inputs`) as batches; anything else (a generator of batches) as it is."""
    if is_inputs(inputs):
        return (rows(inputs, start, start + batch_size) for start in range(0, count(inputs), batch_size))
    return inputs


def _run_batches(step, batches):
    """`step(batch)` (a list of output arrays) over batches of inputs, joined. A last, smaller batch is padded to
    the first one's size: a new shape would trace a Keras model again, or re-plan a LiteRT interpreter."""
    outputs, size = [], None
    for batch in batches:
        number, size = count(batch), size or count(batch)
        if number:
            outputs.append([np.asarray(output)[:number] for output in step(padded(batch, size))])
    return [np.concatenate(column) for column in zip(*outputs)] if outputs else None


def blank_input(runtime):
    """One all-zero input of a runtime's model (a tuple of two for a fusion model): a first call, made before a
    stream's time starts, or the probe of its output."""
    return from_parts(np.zeros((1, *shape), runtime.input_dtype if index == 0 else np.float32)
                      for index, shape in enumerate(runtime.input_shapes))


def predict_in_batches(predict, images, batch_size=BATCH_SIZE):
    """`predict` (a runtime's) over an array of images or an iterable of batches: the one batching loop."""
    outputs = _run_batches(lambda batch: [predict(batch)], _batches(images, batch_size))
    return outputs[0] if outputs else None


@dataclasses.dataclass
class Classifier:
    """A runnable model with its record; see the module docstring."""

    model: object  # a `keras_sign.inference.runtimes` model: `.predict(images)`, `.runtime`, `.input_shape`
    record: ModelRecord
    source: str  # what was loaded, for messages and records
    _hand_stage: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def class_names(self):
        return self.record.classes

    @property
    def image_size(self):
        return self.record.preprocessing.image_size

    @property
    def center_crop(self):
        return self.record.preprocessing.center_crop

    @property
    def temperature(self):
        return self.record.calibration.temperature if self.record.calibration else 1.0

    @property
    def unsure_below(self):
        """The calibrated reject threshold, or None when the model has no calibration."""
        return self.record.calibration.reject_threshold if self.record.calibration else None

    @property
    def runtime(self):
        return self.model.runtime

    @property
    def hand_stage(self):
        """The run's hand stage (`keras_sign.inference.hand_crops.HandCrops`), loaded on first use; None for a
        model that sees whole photos."""
        if self.record.preprocessing.hands is None:
            return None
        if self._hand_stage is None:
            from keras_sign.inference.hand_crops import HandCrops

            self._hand_stage = HandCrops(self.record.preprocessing.hands, self.image_size)
        return self._hand_stage

    @property
    def reads_landmarks(self):
        """Whether the model reads a hand's landmark features (a landmark model; a fusion model beside pixels)."""
        return self.record.preprocessing.reads_landmarks

    @property
    def reads_pixels(self):
        """Whether the model reads pixels: every model but a landmark model."""
        return self.record.preprocessing.reads_pixels

    @property
    def no_hand_answer(self):
        """What a photo or frame without a hand answers: the model's `nothing` class, or "no hand"."""
        from keras_sign.hands.detector import NO_HAND_CLASS

        names = [str(name).lower() for name in self.class_names]
        return self.class_names[names.index(NO_HAND_CLASS)] if NO_HAND_CLASS in names else "no hand"

    def blank_input(self):
        return blank_input(self.model)

    def predict(self, images, calibrated=True, batch_size=BATCH_SIZE):
        """Class probabilities `(n, classes)` of raw uint8 RGB images `(n, size, size, 3)` (an array, or an
        iterable of such batches; a landmark model's features `(n, 63)`, a fusion model's tuple of both), with
        the calibrated temperature applied unless `calibrated=False`."""
        probabilities = predict_in_batches(self.model.predict, images, batch_size)
        if probabilities is None:
            probabilities = np.zeros((0, len(self.class_names)), np.float32)
        probabilities = np.asarray(probabilities, np.float32)
        if calibrated and self.temperature != 1.0:
            return apply_temperature(probabilities, self.temperature).astype(np.float32)
        return probabilities

    def features_and_probabilities(self, images, batch_size=BATCH_SIZE):
        """`(features, probabilities)` in one pass: the features the model's classifier separates (t-SNE's
        points; `keras_sign.inference.features`) and the probabilities as trained (no temperature). Keras
        models of a registered architecture or an ensemble only."""
        from keras_sign.inference.features import penultimate_model

        if not isinstance(self.model, KerasModel) or self.record.arch is None:
            raise KerasSignError(f"{self.source} is not a Keras model of a known architecture: its features cannot "
                                 "be read; pass the run folder.")
        import keras

        view = penultimate_model(self.model.model, self.record.arch)
        step = lambda batch: keras.tree.flatten(view.predict_on_batch(as_float32(batch)))  # noqa: E731
        outputs = _run_batches(step, _batches(images, batch_size))
        if outputs is None:
            raise KerasSignError("No images to evaluate.")
        features, probabilities = (keras.ops.convert_to_numpy(output) for output in outputs)
        return features.reshape(len(features), -1), probabilities.astype(np.float32)

    def top(self, probabilities, k=3):
        """The `k` most likely `(class, probability)` of each row, best first."""
        probabilities = np.asarray(probabilities)
        k = min(k, len(self.class_names))
        best = np.argsort(-probabilities, axis=-1, kind="stable")[..., :k]
        return [[(self.class_names[i], float(row[i])) for i in order] for row, order in zip(probabilities, best)]


def _bare_file_classes(file):
    """The class names of a model file with no run folder or bundle around it: its labels.txt, or the labels
    a .tflite carries as metadata (the two must agree)."""
    labels = read_labels(file.with_name(LABELS_FILE))
    if file.suffix == ".tflite":
        from keras_sign.inference.tflite_metadata import read_metadata

        embedded = (read_metadata(file.read_bytes()) or {}).get("labels")
        if embedded is not None:
            check_same_classes(embedded, f"{file.name}'s metadata", labels, file.with_name(LABELS_FILE))
            return embedded
    return labels


def load_classifier(path, threads=None, model=None):
    """A `Classifier` for a run folder, a `.keras` file, an export bundle, or a `.tflite` / `.onnx` file.

    A bare model file needs its class names beside it (`model.json` or `labels.txt`, one name per
    line in output order); a `.keras` file without them is named by class index, with a warning.
    `model`: the run folder's Keras model when the caller holds it already (training does).
    """
    path = Path(path)
    if not path.exists():
        raise KerasSignError(f"{path} does not exist; pass a run folder, a .keras/.tflite/.onnx file or an export bundle.")
    if path.is_dir() and (path / "run.json").is_file() and not (path / "model.keras").is_file():
        raise KerasSignError(f"{path} has not finished training (no model.keras); resume it with `keras-sign train --resume`.")
    file = model_file(path)
    if model is not None:
        runtime = KerasModel(model=model)
    else:
        runtime = load_model_file(file, threads)  # first: a damaged file is named before its metadata is read
    folder = file.parent  # a bundle's model.json or a run's run.json sits beside the model
    if is_bundle(folder) or is_run_folder(folder):
        record = read_model_record(folder)
    else:
        record = ModelRecord(_bare_file_classes(file), None, source=str(file))
    shapes = [tuple(shape) for shape in runtime.input_shapes]
    if record.preprocessing is None:
        record = dataclasses.replace(record, preprocessing=Preprocessing(int(shapes[0][0]) if len(shapes[0]) == 3
                                                                         else 0))
    hands = record.preprocessing.hands
    expected = [(record.preprocessing.image_size,) * 2 + (3,)] if reads_pixels(hands) else []
    if reads_landmarks(hands):  # a landmark model (features in, not pixels), or a fusion model (both)
        expected.append((hands["features"]["features"],))
    if shapes != expected:
        raise KerasSignError(f"{file} takes inputs of shape {' and '.join(map(str, shapes))}, but its description "
                             f"says {' and '.join(map(str, expected))}; export the model again.")
    classes = runtime.predict(blank_input(runtime)).shape[-1]
    if record.classes is None:
        if file.suffix != ".keras":
            raise KerasSignError(f"{file} has no model.json or labels.txt beside it; put its labels.txt (one class "
                                 "per line, in output order) in the same folder.")
        log.warning("%s has no class names beside it (run.json or labels.txt): classes are shown by index.", file)
        record = dataclasses.replace(record, classes=[str(i) for i in range(classes)])
    if len(record.classes) != classes:
        raise KerasSignError(f"{file} has {classes} outputs but {len(record.classes)} class names beside it; "
                             "use the labels that came with this model.")
    return Classifier(runtime, record, str(path))
