"""Export a run's model as a verified bundle: TFLite for Android, ONNX, or a TensorFlow SavedModel.

    keras-sign export runs/digits-mobilenetv3_small-20261125-203937                     # float32 TFLite
    keras-sign export RUN --quantize int8 --calibration-images 100 --io uint8           # full integer
    keras-sign export RUN --format onnx

writes `OUT/<run folder name>-<format>-<quantize>/` (OUT defaults to `exports/`):

    model.tflite | model.onnx | saved_model/   raw RGB pixels 0-255 in, class probabilities out; a
                                               .tflite carries its labels and input normalisation as
                                               TFLite metadata (keras_sign.inference.tflite_metadata)
    labels.txt                                 one class name per line, in output order
    model.json                                 input and output, classes, normalisation, preprocessing,
                                               source run, quantization, converter and versions, and
                                               the verification on the run's test split

Conversion needs the TensorFlow backend, and the backend is fixed once Keras is imported: when this
process runs another one (KERAS_BACKEND=jax, say), the export runs in a TensorFlow subprocess. The
`.keras` file is backend-portable, so the run may have been trained under any backend.
"""

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_sign import __version__
from keras_sign.backend import select_backend
from keras_sign.errors import KerasSignError
from keras_sign.export.formats import EXPORT_FORMATS, IO_TYPES, QUANTIZATIONS, Conversion
from keras_sign.export.verification import DEFAULT_MIN_AGREEMENT, pooled_verification
from keras_sign.inference.classifier import Classifier, load_classifier
from keras_sign.inference.runtimes import file_size
from keras_sign.runs.atomic import atomic_write_json, check_writable
from keras_sign.runs.folder import RunFolder
from keras_sign.runs.record import RunInfo, bundle_json, input_records, model_sha256, reads_landmarks, write_bundle

log = logging.getLogger("keras_sign")

DEFAULT_OUT = "exports"
DEFAULT_CALIBRATION_IMAGES = 100  # measured: all 320 training images of the sample calibrated no better
SELECTION_IMAGES = 500  # most images an int8 recipe is chosen on
EXTRA_VERIFICATION_BELOW = 200  # a test split smaller than this is joined by other held-back images
EXTRA_VERIFICATION_IMAGES = 500
FEW_VERIFICATION_IMAGES = 20  # fewer held-back images than this (one flip: 5 points): the int8 model's own join them
VERIFY_BATCH = 32
QUANTIZATION_MEANING = {
    "none": "float32 weights and activations",
    "float16": "float16 weights (the runtime computes in float32, or float16 on GPU)",
    "dynamic": "int8 weights, float32 activations (dynamic-range quantization)",
    "int8": "int8 weights; int8 activations wherever they keep the answers (the recipe below)",
    "int8-strict": "int8 weights and activations everywhere (full integer), calibrated on training images",
}


def check_options(export_format, quantize, io_type, calibration_images, min_agreement):
    """Refuse option values that cannot work, before anything is loaded."""
    if export_format not in EXPORT_FORMATS:
        raise KerasSignError(f"Unknown export format '{export_format}'; choose one of {', '.join(EXPORT_FORMATS)}.")
    if quantize not in QUANTIZATIONS:
        raise KerasSignError(f"Unknown quantization '{quantize}'; choose one of {', '.join(QUANTIZATIONS)}.")
    allowed = EXPORT_FORMATS[export_format].quantizations
    if quantize not in allowed:
        takers = " or ".join(entry.title for entry in EXPORT_FORMATS.values() if quantize in entry.quantizations)
        raise KerasSignError(
            f"--quantize {quantize} is for {takers}; export {export_format} with --quantize {' or '.join(allowed)}.")
    if io_type not in IO_TYPES:
        raise KerasSignError(f"Unknown input/output type '{io_type}'; choose one of {', '.join(IO_TYPES)}.")
    if calibration_images < 1:
        raise KerasSignError(f"--calibration-images must be at least 1 (got {calibration_images}).")
    if not 0.0 <= min_agreement <= 1.0:
        raise KerasSignError(f"--min-agreement is a fraction between 0 and 1 (got {min_agreement}).")


def bundle_name(run_path, export_format, quantize, io_type):
    """`<run folder name>-<format>-<quantize>`, with `-float32-io` for an int8 model asked to take floats."""
    suffix = "-float32-io" if quantize.startswith("int8") and io_type == "float32" else ""
    return f"{Path(run_path).name}-{export_format}-{quantize}{suffix}"


def export_run(run_path, export_format="tflite", quantize="none", out=DEFAULT_OUT, io_type="uint8",
               calibration_images=DEFAULT_CALIBRATION_IMAGES, min_agreement=DEFAULT_MIN_AGREEMENT, seed=0):
    """Convert a run's model, verify it on the run's test split and write the bundle.

    Args:
        run_path: a finished run folder.
        export_format: a name in `EXPORT_FORMATS`: "tflite", "onnx" or "saved_model".
        quantize: one of the format's quantizations: "none", or for TFLite "float16", "dynamic", "int8" or
            "int8-strict".
        out: the folder that receives the bundle folder.
        io_type: input/output type of an int8 model, "uint8" or "float32".
        calibration_images: training images an int8 model is calibrated on (a seeded sample).
        min_agreement: the lowest top-1 agreement with Keras a quantized model may have.
        seed: seeds the calibration sample.

    Returns:
        The bundle's `model.json` as a dict, with `bundle` (the folder) added. A model that fails
        verification is kept, with `verified: false`.

    Example:
        record = export_run("runs/digits-mobilenetv3_small-20261125-203937", quantize="int8")
        record["verified"], record["verification"]["agreement"]
        (True, 1.0)
    """
    options = dict(run_path=str(run_path), export_format=export_format, quantize=quantize, out=str(out),
                   io_type=io_type, calibration_images=calibration_images, min_agreement=min_agreement, seed=seed)
    check_options(export_format, quantize, io_type, calibration_images, min_agreement)
    check_writable(out)
    try:
        backend, _ = select_backend("tensorflow")
    except KerasSignError:  # this process already imported Keras with another backend
        backend = None
    if backend != "tensorflow":
        return _export_in_tensorflow_process(options)
    return _export(**options)


def _export_in_tensorflow_process(options):
    log.info("Keras runs another backend in this process; exporting in a TensorFlow subprocess.")
    with tempfile.TemporaryDirectory() as folder:
        result_path = Path(folder) / "result.json"
        completed = subprocess.run(
            [sys.executable, "-m", "keras_sign.export.bundle", json.dumps(options), str(result_path)],
            env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        )
        if not result_path.is_file():
            raise RuntimeError(f"The TensorFlow export process failed with exit status {completed.returncode}.")
        result = json.loads(result_path.read_text())
    if "error" in result:
        raise KerasSignError(result["error"])
    return result["record"]


def image_pools(run, calibration_count, seed, quantize):
    """Training and validation images for one export, each used for one thing only.

    Returns `{"calibration", "selection", "extra"}` of `(paths, labels, orientations)`: the int8
    calibration sample (training images, seeded), the images an int8 recipe is chosen on (the
    validation split, then training images outside the calibration sample) and the images that
    join a small test split in the verification (the training images left).
    """
    train, val = run.split_files("train").with_hands(), run.split_files("val").with_hands()
    if quantize.startswith("int8") and not train.paths:
        raise KerasSignError(
            f"{run.path} has no training split to calibrate int8 on; export with --quantize dynamic or float16."
        )

    def rows(files, indices):
        return [file_rows(files)[i] for i in indices]

    order = np.random.default_rng(seed).permutation(len(train.paths))
    used = calibration_count if quantize.startswith("int8") else 0
    calibration, rest = rows(train, order[:used]), rows(train, order[used:])
    if not quantize.startswith("int8"):
        return {"calibration": [], "selection": [], "extra": (rows(val, range(len(val.paths))) + rest)}
    selection = (rows(val, range(len(val.paths))) + rest[:len(rest) // 2])[:SELECTION_IMAGES]
    taken = len(selection) - len(val.paths)
    return {"calibration": calibration, "selection": selection, "extra": rest[max(taken, 0):]}


def file_rows(files):
    """`(path, label, orientation, hand crop)` of each photo of a `SplitFiles` (crop None without a hand stage)."""
    orientations = files.orientations or [1] * len(files.paths)
    crops = files.crops or [None] * len(files.paths)
    return list(zip(files.paths, files.labels, orientations, crops))


def decode_rows(rows, info, run_path):
    """uint8 images (as training decodes them: with a hand stage, the hands' crops), or a landmark model's
    landmark features of the hands the run's split used, and class indices of `file_rows` rows."""
    from keras_sign.inference.hand_crops import photo_inputs, run_hands
    from keras_sign.inference.inputs import from_parts, joined

    if not rows:  # no photos: empty arrays of the model's inputs
        empty = [np.zeros((0, info.image_size, info.image_size, 3), np.uint8)] if info.preprocessing.reads_pixels else []
        if info.preprocessing.reads_landmarks:
            empty.append(np.zeros((0, info.hands["features"]["features"]), np.float32))
        return from_parts(empty), np.zeros(0, np.int64)
    paths, labels, orientations, crops = (list(column) for column in zip(*rows))
    hands = run_hands(run_path, paths, info.data_root) if reads_landmarks(info.hands) else None
    batches = photo_inputs(paths, info.preprocessing, orientations, None if crops[0] is None else crops, hands)
    return joined(list(batches)), np.array(labels, np.int64)


def _model_card(info, run_path, class_names):
    """What a format that describes itself (TFLite metadata) says of the model."""
    shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
    card = {"name": f"{info.arch} sign classifier ({info.dataset})", "version": Path(run_path).name,
            "author": f"keras-sign {__version__}"}
    pixels = (f"RGB {info.image_size}x{info.image_size}, pixels 0-255 (normalisation is inside the model)"
              if info.preprocessing.reads_pixels else None)
    features = info.hands["features"]["features"] if reads_landmarks(info.hands) else None
    landmarks = features and (f"{features} float32 landmark features of one hand, computed as the bundle's model.json "
                              "says (preprocessing.hands.features)")
    if pixels and landmarks:
        return {**card, "image_size": info.image_size, "features": features, "description": (
            f"Classifies a hand sign into {len(class_names)} classes ({shown}) from the square around the hand and "
            f"its landmarks. Inputs: the square, {pixels}; {landmarks}.")}
    if landmarks:
        return {**card, "features": features, "description": (
            f"Classifies a hand sign into {len(class_names)} classes ({shown}) from the hand's landmarks. Input: "
            f"{landmarks}.")}
    return {**card, "image_size": info.image_size, "description": (
        f"Classifies a photo of a hand sign into {len(class_names)} classes ({shown}). Input: {pixels}.")}


def _conversion(quantize, io_type, min_agreement, pools, info, run_path, class_names):
    """What the format's `convert` gets: the options, the model card and, for int8, the decoded images."""
    calibration = decode_rows(pools["calibration"], info, run_path)[0] if pools["calibration"] else None
    # A run too small to hold images back chooses on its calibration images (said in the record).
    selection = decode_rows(pools["selection"], info, run_path)[0] if pools["selection"] else calibration
    return Conversion(quantize=quantize, io_type=io_type, class_names=class_names,
                      model_card=_model_card(info, run_path, class_names), min_agreement=min_agreement,
                      calibration=calibration, selection=selection)


def _input_records(runtime, info):
    """model.json's `input` (or `inputs`): each of the exported file's inputs, its name, shape, dtype and what it
    holds."""
    details = getattr(runtime, "inputs_details", [None] * len(runtime.input_names))  # LiteRT's tensors are typed
    return input_records(info.preprocessing, [
        {"name": name, **_tensor_record(detail, shape), "batch": "the batch dimension can be resized"}
        for name, shape, detail in zip(runtime.input_names, runtime.input_shapes, details)])


def _tensor_record(details, shape):
    """Shape, dtype and (for integer TFLite tensors) the quantization an app must apply; `details` are a LiteRT
    tensor's (None for a runtime without typed tensors)."""
    dtype = np.dtype(details["dtype"]) if details else np.dtype(np.float32)
    record = {"shape": [1, *shape], "dtype": dtype.name}
    if dtype != np.float32:
        scale, zero_point = details["quantization"]
        record["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return record


def _file_record(path):
    if path.is_dir():
        return {"bytes": file_size(path)}
    return {"bytes": file_size(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _replace_folder(staging, target):
    """Put the finished bundle in place of any earlier one with the same name."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def _export(run_path, export_format, quantize, out, io_type, calibration_images, min_agreement, seed):
    import keras

    run = RunFolder.open(run_path)
    info = RunInfo.read(run.path)
    test = run.split_files("test").with_hands()
    if not test.paths:
        raise KerasSignError(f"{run.path} has no test split to verify the export on; train with a test split.")
    pools = image_pools(run, calibration_images, seed, quantize)
    reference = load_classifier(run.path)  # the Keras model, as every command runs it
    model, class_names = reference.model.model, reference.class_names
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / bundle_name(run.path, export_format, quantize, io_type)
    staging = out / f".{bundle.name}.tmp-{os.getpid()}"  # beside the bundle, so that it can be renamed into place
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    file_format = EXPORT_FORMATS[export_format]
    try:
        model_path = staging / file_format.file_name
        log.info("Converting %s to %s (%s) under TensorFlow.", run.path, export_format, quantize)
        started = time.time()
        converter = file_format.convert(model, model_path, _conversion(quantize, io_type, min_agreement, pools, info,
                                                                       run.path, class_names))
        converter["seconds"] = round(time.time() - started, 1)
        exported = Classifier(file_format.runtime(model_path), reference.record, str(model_path))
        sets = {"test": decode_rows(file_rows(test), info, run.path)}
        if len(test.paths) < EXTRA_VERIFICATION_BELOW and pools["extra"]:
            sets["held-back train/val"] = decode_rows(pools["extra"][:EXTRA_VERIFICATION_IMAGES], info, run.path)
        held_back = sum(len(labels) for _, labels in sets.values())
        if held_back < FEW_VERIFICATION_IMAGES and pools["calibration"]:
            # A run this small gave every other image to the int8 calibration and recipe choice: checking on those
            # too says more than a handful of photos would, though less than unseen ones.
            log.warning("Only %d held-back image(s) to verify on; the %d calibration and selection images join them "
                        "(the int8 model was made on those: agreement there is an optimistic figure).", held_back,
                        len(pools["calibration"]) + len(pools["selection"]))
            sets["int8 calibration + selection"] = decode_rows(pools["calibration"] + pools["selection"], info,
                                                               run.path)
        log.info("Verifying against Keras on %s.", " and ".join(f"{len(labels)} {name} images"
                                                                 for name, (_, labels) in sets.items()))
        results = {name: (reference.predict(images, calibrated=False, batch_size=VERIFY_BATCH),
                          exported.predict(images, calibrated=False, batch_size=VERIFY_BATCH), labels)
                   for name, (images, labels) in sets.items()}
        verification = pooled_verification(results, quantize != "none", min_agreement)
        package = file_format.package
        verification.update(
            reference=f"Keras {keras.__version__} (tensorflow backend) on the same decoded images",
            runtime=f"{exported.runtime} ({package} {importlib.metadata.version(package)})",
        )
        runtime = exported.model
        record = bundle_json(
            class_names, info.preprocessing, reference.record.calibration,
            format=export_format,
            file=file_format.file_name,
            **_file_record(model_path),
            **_input_records(runtime, info),
            output={**_tensor_record(getattr(runtime, "output_details", None), [len(class_names)]),
                    "meaning": "softmax class probabilities, in labels.txt order"},
            labels_embedded=file_format.read_metadata is not None,
            **({f"{export_format}_metadata": file_format.read_metadata(model_path)} if file_format.read_metadata
               else {}),
            normalisation={"inside_model": True, **info.normalization},
            arch=info.arch,
            dataset=info.dataset,
            source_run={
                "path": str(run.path.resolve()),
                "trained_with_backend": info.backend,
                "model_keras_sha256": model_sha256(run.path),
            },
            quantization={
                "mode": quantize,
                "meaning": QUANTIZATION_MEANING[quantize],
                **({"io": io_type if converter["int8"]["recipe"] == "full-integer" else "float32",
                    "calibration": {"split": "train", "images": len(pools["calibration"]), "seed": seed},
                    **converter.pop("int8")} if quantize.startswith("int8") else {}),
            },
            converter=converter,
            verification=verification,
            verified=verification["verified"],
            keras_sign=__version__,
            created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        write_bundle(staging, record)
        del exported  # let the runtime release the file before the folder moves
        _replace_folder(staging, bundle)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {**record, "bundle": str(bundle)}


def main(argv=None):
    """The TensorFlow subprocess: `python -m keras_sign.export.bundle OPTIONS_JSON RESULT_JSON`."""
    options, result_path = argv or sys.argv[1:]
    logging.basicConfig(format="%(message)s", level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("keras_sign").setLevel(logging.INFO)
    try:
        result = {"record": export_run(**json.loads(options))}
    except KerasSignError as error:
        result = {"error": str(error)}
    atomic_write_json(result_path, result)


if __name__ == "__main__":
    main()
