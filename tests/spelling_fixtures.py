"""A model trained here that spells, and a clip it spells: shared by the predict, classifier, runtimes,
spelling and browser tests.

The model is trained, and the clip built, once per session, whichever pytest-xdist worker asks first
(`built_once`).
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, built_once, copy_subset, run_cli
from keras_sign.export.bundle import export_run
from keras_sign.inference.classifier import load_classifier
from keras_sign.inference.predict import predict_files
from keras_sign.spelling.clip import build_clip, clip_photos

CLASSES = ["0", "1", "2", "nothing"]
TEXT = "120 21"  # the model has no space class: the word ends at a pause (word gap)


def add_nothing_class(folder, count, seed=0):
    """Photos of the empty backdrop, as ASL Alphabet's `nothing` class has: the border colour of real
    photos, with sensor noise and a little shading. Without such a class a model has to call an
    empty frame some sign, and says one with confidence."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    photos = sorted(SAMPLE.glob("*/*.JPG"))
    for index in range(count):
        pixels = np.asarray(Image.open(photos[rng.integers(len(photos))]).convert("RGB"), np.float32)
        border = np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)
        shading = np.linspace(-12, 12, 100)[:, None, None] * rng.uniform(-1, 1)
        image = border + shading + rng.normal(0, 5, (100, 100, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"empty-{index}.jpg", quality=90)


def sure_photos(run, bundle):
    """`{index: label}` of the run's training photos that its bundle classifies right with > 0.9."""
    paths, labels, _, class_names, _ = clip_photos(run, "train")
    rows, _ = predict_files(load_classifier(bundle), paths, top_k=1)
    return {i: labels[i] for i, row in enumerate(rows)
            if row["predictions"][0]["class"] == class_names[labels[i]] and row["predictions"][0]["probability"] > 0.9}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, worker_id):
    """A model that knows most of its 3 digit classes' training photos surely, and its TFLite bundle.

    ResNet-18, because in 10 short epochs it was sure (> 0.9) of 31 of the 36 photos in inference mode;
    MobileNetV3-Small needed twice the time for 28, ShuffleNetV2 x0.5 got 6.
    """

    def build(root):
        data = copy_subset(SAMPLE, root / "digits", CLASSES[:3], 12)
        add_nothing_class(data / "nothing", 12)
        # So small a model is chaotic: the CPU's floating-point kernels alone change which photos a seed's
        # model knows (seed 2 knew every class on one machine and no `1` on another). The next seed is tried
        # until one knows each class surely, which the clip needs.
        for seed in (2, 3, 4, 5):
            run = root / f"run-seed{seed}"
            # In a fresh process: what a worker's earlier in-process tests leave behind in TensorFlow (op
            # determinism, for one) changes this tiny model's first steps, and then which photos it knows.
            result = run_cli("train", "--data-dir", data, "--arch", "resnet18", "--epochs", "10", "--image-size",
                             "32", "--batch-size", "8", "--seed", str(seed), "--no-augment", "--backend", "tensorflow",
                             "--out", run, fresh=True)
            assert result.returncode == 0, result.stderr[-3000:]
            bundle = export_run(run, out=root / f"exports-seed{seed}")["bundle"]
            if set(sure_photos(run, bundle).values()) == set(range(len(CLASSES))):
                return {"run": str(run), "bundle": str(bundle), "data": str(data), "root": str(root)}
        raise AssertionError("no seed's model learned enough to spell with")

    return {key: Path(value) for key, value in built_once(tmp_path_factory, worker_id, "spelling", build).items()}


@pytest.fixture
def bundle(trained, tmp_path):
    """A copy of the trained model's TFLite bundle, for a test to damage."""
    copy = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], copy)
    return copy


@pytest.fixture(scope="session")
def clip(trained, tmp_path_factory, worker_id):
    """TEXT spelled with the training photos that the model classifies right and surely, as frames and mp4:
    the transcription is tested, not the tiny model."""

    def build(root):
        paths, labels, orientations, class_names, description = clip_photos(trained["run"], "train")
        known = list(sure_photos(trained["run"], trained["bundle"]))
        folder = root / "clip"
        summary = build_clip(TEXT, [paths[i] for i in known], [labels[i] for i in known],
                             [orientations[i] for i in known], class_names, folder, fps=15, size=96, seed=4,
                             photos=description)
        return {"folder": str(folder), "summary": summary}

    built = built_once(tmp_path_factory, worker_id, "spelling_clip", build)
    return Path(built["folder"]), built["summary"]
