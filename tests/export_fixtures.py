"""Tiny trained runs and their exports, shared by the export tests (bundle, formats, benchmark).

A run is trained, and each export made, once per test session, whichever pytest-xdist worker asks first
(`built_once`); the tests that use them are in xdist group "export", so one worker runs them all, as when
they shared one module.
"""

from pathlib import Path

import pytest

from conftest import SAMPLE, built_once, copy_subset, run_cli
from keras_sign.models.saving import save_model

CLASSES = ["0", "1", "2", "3"]
TINY = ["--epochs", "4", "--image-size", "32", "--batch-size", "8", "--seed", "1"]


class TrainedRuns(dict):
    """backend -> run folder: MobileNetV3-Small, 32 px, 4 classes x 20 photos, trained on first use (the fast
    tier needs only TensorFlow's; JAX's trains in a fresh process when a slow test asks for it)."""

    def __init__(self, tmp_path_factory, worker_id):
        super().__init__()
        self.tmp_path_factory, self.worker_id = tmp_path_factory, worker_id

    def __missing__(self, backend):
        def build(root):
            data = copy_subset(SAMPLE, root / "digits4", CLASSES, 20)
            run = root / f"run-{backend}"
            result = run_cli("train", "--data-dir", data, "--out", run, "--backend", backend, *TINY)
            assert result.returncode == 0, result.stdout + result.stderr
            return {"run": str(run)}

        self[backend] = Path(built_once(self.tmp_path_factory, self.worker_id, f"export_run_{backend}", build)["run"])
        return self[backend]


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, worker_id):
    return TrainedRuns(tmp_path_factory, worker_id)


@pytest.fixture(scope="session")
def export_once(trained_runs, tmp_path_factory, worker_id):
    """`export_once(backend, format, quantize, **options)`: the export of a trained run, made once per session."""
    from keras_sign.export.bundle import export_run

    records = {}

    def export(backend, export_format="tflite", quantize="none", **options):
        key = (backend, export_format, quantize, tuple(sorted(options.items())))
        if key not in records:
            run = trained_runs[backend]  # trained (or waited for) before this export's lock is taken
            name = "_".join(["export", backend, export_format, quantize, *(f"{k}-{v}" for k, v in key[3])])
            records[key] = built_once(tmp_path_factory, worker_id, name,
                                      lambda out: export_run(run, export_format, quantize, out, **options))
        return records[key]

    return export


def untrained_run(folder, model, data_root):
    """A run folder around a freshly built model, with every image of `data_root` as its test split:
    what the exporter reads, without the cost of training."""
    from keras_sign.models.registry import IMAGENET_MEAN, IMAGENET_STD
    from keras_sign.runs.atomic import atomic_write_csv
    from keras_sign.runs.folder import SPLIT_COLUMNS, RunFolder

    folder.mkdir()
    run = RunFolder(folder)
    save_model(model, run.file("model.keras"))
    run.write_json("classes.json", CLASSES)
    run.write_json("run.json", {
        "arch": model.name, "dataset": "digits", "data_root": str(data_root), "image_size": model.input_shape[1],
        "normalization": {"source": "imagenet", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "backend": "tensorflow",
    })
    rows = [(f"{label}/{image.name}", label, "", "test", "", 1)
            for label in CLASSES for image in sorted((data_root / label).iterdir())]
    atomic_write_csv(run.file("split.csv"), SPLIT_COLUMNS, rows)
    return folder


@pytest.fixture(scope="module")
def few_photos(tmp_path_factory):
    return copy_subset(SAMPLE, tmp_path_factory.mktemp("photos") / "digits", CLASSES, 2)
