"""`keras_sign.runs.record`: the typed record round-trips, refuses what it cannot trust in one line, and reads
the folders keras-sign 0.2.0 wrote before the record had a schema (`written-by-0.2.0/`)."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import invoke
from keras_sign.errors import KerasSignError
from keras_sign.runs.record import (
    SCHEMA,
    Calibration,
    Preprocessing,
    RunInfo,
    bundle_json,
    hand_stage_settings,
    read_classes,
    read_model_record,
    write_bundle,
    write_calibration,
    write_classes,
)
from users_fixtures import users_folder, users_run  # noqa: F401  (fixtures)

OLD = Path(__file__).parent / "written-by-0.2.0"
FITTED = json.loads((OLD / "run" / "calibration.json").read_text())


def test_run_info_round_trips_with_its_schema_and_everything_training_adds(tmp_path):
    hands = hand_stage_settings("lite", 0.3, True, 0.25, {"models": "lite", "source": "mediapipe 0.10.14",
                                                          "sha256": {"palm_detection": "a" * 64}})
    info = RunInfo(arch="resnet18", dataset="massey", data_root="/data/massey", image_size=64, center_crop=True,
                   split_method="signer", hands=hands, normalization={"mean": [0.5] * 3, "std": [0.2] * 3},
                   backend="jax", extra={"padding": "torch", "total_seconds": 3.5})
    info.write(tmp_path)
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["schema"] == SCHEMA and written["padding"] == "torch" and "extra" not in written
    again = RunInfo.read(tmp_path)
    assert again == info
    assert again.preprocessing == Preprocessing(64, True, hands) and not again.is_ensemble
    assert hands["margin"] == 0.3 and "mirror it left-right" in hands["what"] and "lite" in hands["what"]
    assert "mirror" not in hand_stage_settings("full", 0.25, False, 0.25, {"models": "full"})["what"]


def test_a_bundle_record_round_trips_and_its_labels_must_agree(tmp_path):
    record = bundle_json(["A", "B"], Preprocessing(48, hands={"stage": "crop", "margin": 0.25}),
                         Calibration.from_json(FITTED), format="tflite", file="model.tflite", arch="resnet18",
                         source_run={"path": "/runs/x"})
    assert list(record)[:3] == ["schema", "format", "file"] and record["calibration"] == FITTED
    assert "the square around the hand" in record["preprocessing"]["resize"]
    write_bundle(tmp_path, record)
    assert (tmp_path / "labels.txt").read_text() == "A\nB\n"
    model = read_model_record(tmp_path)
    assert model.classes == ["A", "B"] and model.preprocessing.image_size == 48
    assert model.preprocessing.hands["margin"] == 0.25 and model.calibration.temperature == pytest.approx(1.37)
    assert model.calibration.reject_threshold == pytest.approx(0.41) and model.lineage == {"path": "/runs/x"}
    (tmp_path / "labels.txt").write_text("A\nC\n")
    with pytest.raises(KerasSignError, match="class 2 is 'B' in .*model.json but 'C' in .*labels.txt"):
        read_model_record(tmp_path)


def test_calibrating_an_ensemble_folder_updates_its_model_json_too(tmp_path):
    write_bundle(tmp_path, bundle_json(["A", "B"], Preprocessing(32), None, arch="ensemble"))
    write_calibration(tmp_path, FITTED)
    assert json.loads((tmp_path / "calibration.json").read_text()) == FITTED
    assert read_model_record(tmp_path).calibration.temperature == pytest.approx(1.37)


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "run.json").unlink(), "run.json is missing"),
    (lambda folder: (folder / "run.json").write_text('{"arch": "resnet18", '), "run.json cannot be read"),
    (lambda folder: (folder / "run.json").write_text("[1, 2]"), "is not a keras-sign record"),
    (lambda folder: (folder / "run.json").write_text('{"schema": 1, "arch": "resnet18"}'),
     "lacks dataset, data_root, image_size"),
    (lambda folder: (folder / "run.json").write_text(json.dumps({**json.loads((OLD / "run/run.json").read_text()),
                                                                 "schema": SCHEMA + 1})),
     rf"newer keras-sign \(record schema {SCHEMA + 1}"),
    (lambda folder: (folder / "classes.json").write_text('{"0": 1}'), "classes.json is not a list of class names"),
])
def test_a_damaged_record_is_one_line_that_names_the_file(tmp_path, damage, message):
    folder = tmp_path / "run"
    shutil.copytree(OLD / "run", folder)
    damage(folder)
    with pytest.raises(KerasSignError, match=message):
        read_model_record(folder)


def test_the_records_0_2_0_wrote_still_read():
    info = RunInfo.read(OLD / "run")
    assert (info.arch, info.image_size, info.center_crop, info.hands, info.backend) == \
        ("mobilenetv3_small", 32, False, None, "tensorflow")
    assert info.extra["padding"] == "torch" and info.extra["epochs_trained"] == 2 and info.status == "finished"
    run = read_model_record(OLD / "run")
    assert run.classes == ["0", "1", "2"] and run.calibration.temperature == pytest.approx(1.37)
    bundle = read_model_record(OLD / "bundle")  # its centre crop said in words only
    assert bundle.preprocessing == Preprocessing(32, True, None) and bundle.arch == "mobilenetv3_small"
    assert bundle.lineage["trained_with_backend"] == "tensorflow"
    ensemble = read_model_record(OLD / "ensemble")
    assert ensemble.arch == "ensemble" and [m["arch"] for m in ensemble.lineage] == ["mobilenetv3_small",
                                                                                    "shufflenetv2"]
    assert RunInfo.read(OLD / "ensemble").is_ensemble and ensemble.calibration is None


@pytest.mark.xdist_group("users_run")
def test_a_run_folder_written_by_0_2_0_evaluates_and_predicts(users_run, users_folder, tmp_path):
    """A trained run whose record is put back in 0.2.0's format: every later command still reads it."""
    run = tmp_path / "old-run"
    shutil.copytree(users_run, run, ignore=shutil.ignore_patterns(".lock"))
    current = RunInfo.read(users_run)
    old = json.loads((OLD / "run" / "run.json").read_text())
    old.update(data_root=current.data_root, normalization=current.normalization, split_method=current.split_method)
    (run / "run.json").write_text(json.dumps(old))
    shutil.copy(OLD / "run" / "calibration.json", run / "calibration.json")
    write_classes(run, read_classes(users_run))
    code, output = invoke("evaluate", run)
    assert code == 0, output
    assert "calibration (temperature 1.37)" in (run / "report.txt").read_text()
    code, output = invoke("predict", run, users_folder / "1" / "portrait.jpg", "--format", "jsonl")
    assert code == 0, output
    answer = json.loads(output.strip().splitlines()[-1])
    assert answer["predictions"][0]["class"] in ["0", "1", "2"]
