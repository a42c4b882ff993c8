"""`keras-sign predict MODEL INPUT...`: the top classes of photos, decoded exactly as training decodes them.

    keras-sign predict runs/digits-mobilenetv3_small-20261125-203937 my_photos/
    keras-sign predict exports/digits-...-tflite-none 'phone/**/*.jpg' --top-k 5 --format jsonl --out top5.jsonl

INPUT is an image file, a folder (searched recursively) or a glob. Every file is checked as the
training scan checks it (unreadable and unsupported files are named and skipped) and read
through the training pipeline's decode (EXIF orientation applied, the same resize), then the
model sees the images in batches.
"""

import concurrent.futures
import glob
import json
import logging
from pathlib import Path


from keras_sign.errors import KerasSignError
from keras_sign.tables import rows_text

log = logging.getLogger("keras_sign")

OUTPUT_FORMATS = ("table", "jsonl", "csv")
BATCH_SIZE = 64


def expand_inputs(inputs):
    """`(files, problems)`: the files that INPUT arguments name, in order and without repeats, and
    `(argument, reason)` for arguments that name nothing."""
    files, problems, seen = [], [], set()
    for argument in inputs:
        path = Path(argument).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif glob.has_magic(str(argument)):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        else:
            found = []
        if not found:
            problems.append((str(argument), "the folder holds no files" if path.is_dir()
                             else "the pattern matches no file" if glob.has_magic(str(argument))
                             else "no such file or folder"))
        for file in found:
            if file not in seen:
                seen.add(file)
                files.append(file)
    return files, problems


def predict_files(classifier, files, top_k=3, batch_size=BATCH_SIZE):
    """Top-k predictions of image files; return `(rows, skipped)`.

    Each row is `{"path", "predictions": [{"class", "probability"}, ...]}`, best first; `skipped`
    lists `(path, reason)` for files that cannot be read as images.
    """
    from keras_sign.data.pipeline import image_batches
    from keras_sign.data.scan import inspect_image, scan_workers
    from keras_sign.inference.inputs import stacked

    with concurrent.futures.ThreadPoolExecutor(scan_workers()) as pool:
        checks = list(pool.map(inspect_image, files))
    usable = [(file, check.orientation) for file, check in zip(files, checks) if check.problem is None]
    skipped = [(str(file), check.problem) for file, check in zip(files, checks) if check.problem is not None]
    rows = []
    if usable and classifier.hand_stage is not None:  # no hand, no letter: only hands reach the model
        found = [classifier.hand_stage.of_photo(path, orientation) for path, orientation in usable]
        seen = [(path, crop) for (path, _), (crop, _) in zip(usable, found) if crop is not None]
        tops = iter(classifier.top(classifier.predict(stacked([crop for _, crop in seen]), batch_size=batch_size),
                                   top_k) if seen else [])
        for (path, _), (crop, _) in zip(usable, found):
            rows.append(_row(classifier, path, next(tops)) if crop is not None else
                        {"path": str(path), "predictions": [{"class": classifier.no_hand_answer, "probability": 1.0}],
                         "no_hand": True})
    elif usable:
        paths, orientations = zip(*usable)
        probabilities = classifier.predict(image_batches(paths, classifier.image_size, classifier.center_crop,
                                                         orientations, batch_size))
        rows = [_row(classifier, path, top) for path, top in zip(paths, classifier.top(probabilities, top_k))]
    return rows, skipped


def _row(classifier, path, top):
    answer = {"path": str(path), "predictions": [{"class": name, "probability": p} for name, p in top]}
    if classifier.unsure_below is not None:  # the run's calibrated reject threshold
        answer["unsure"] = bool(top[0][1] < classifier.unsure_below)
    return answer


def format_rows(rows, output_format):
    """The rows as an aligned table, JSON lines or CSV text."""
    if output_format == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    k = max((len(row["predictions"]) for row in rows), default=0)
    unsure = any("unsure" in row for row in rows)
    no_hand = any(row.get("no_hand") for row in rows)  # a model with a hand stage: no hand, no letter
    header = (["path"] + [f"{part}{i}" for i in range(1, k + 1) for part in ("top", "p")] + ["unsure"] * unsure
              + ["hand"] * no_hand)
    cells = [[row["path"]] + [value for p in row["predictions"] for value in (p["class"], f"{p['probability']:.4f}")]
             + [""] * (2 * (k - len(row["predictions"])))
             + (["unsure" if row.get("unsure") else ""] if unsure else [])
             + (["no hand" if row.get("no_hand") else ""] if no_hand else []) for row in rows]
    if output_format not in ("table", "csv"):
        raise KerasSignError(f"Unknown format '{output_format}'; choose one of {', '.join(OUTPUT_FORMATS)}.")
    return rows_text(header, cells, output_format)
