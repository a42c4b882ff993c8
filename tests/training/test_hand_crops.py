"""`train --hands crop`: the hand stage in the run folder, and every later command applying it from the record
with no flag (evaluate, predict, export, transcribe). No hand, no letter."""

import json

import numpy as np
import pytest
from hand_fixtures import CLASSES, hand_run  # noqa: F401  (fixture)
from PIL import Image

from conftest import run_cli
from keras_sign.hands.detector import HandDetector
from keras_sign.hands.images import read_upright
from keras_sign.inference.classifier import load_classifier
from keras_sign.inference.predict import predict_files
from keras_sign.runs.folder import RunFolder
from keras_sign.runs.record import RunInfo, read_model_record

pytestmark = pytest.mark.xdist_group("hand_crops")


def test_the_run_records_each_photos_hand_and_learns_from_hands_only(hand_run):
    run = RunFolder(hand_run["run"])
    info = RunInfo.read(run.path)
    assert info.hands["stage"] == "crop" and info.hands["models"] == "full" and info.hands["mirror_left"] is True
    assert len(info.hands["sha256"]["hand_landmark"]) == 64
    rows = run.read_split()
    assert "crop" in rows[0]
    no_hand = {row["path"] for row in rows if not row["crop"]}
    assert "1/no-hand-here.jpg" in no_hand and all(path.startswith(("nothing/", "1/no-hand")) or path in no_hand
                                                    for path in no_hand)
    # The sign photo without a hand is named and counted, and left out of what the model learns from.
    assert "No hand in 1 photo(s) of signs" in hand_run["stderr"] and "1/no-hand-here.jpg" in hand_run["stderr"]
    for split in ("train", "val"):
        assert all(crop is not None for crop in run.split_files(split).with_hands().crops)
    hands = [json.loads(line) for line in run.file("hands.jsonl").read_text().splitlines()]
    assert [entry["path"] for entry in hands] == [row["path"] for row in rows]
    found = next(entry for entry in hands if entry["hands"])
    assert len(found["hands"][0]["landmarks"]) == 21


def test_a_crop_is_the_square_around_the_hand_the_stage_finds(hand_run):
    run = RunFolder(hand_run["run"])
    files = run.split_files("train")
    index = next(i for i, crop in enumerate(files.crops) if crop is not None)
    image, scale = read_upright(files.paths[index])
    [hand] = HandDetector().find(image)
    assert files.crops[index] == hand.scaled(scale).crop(0.25, True)


def test_evaluate_counts_photos_without_a_hand_as_nothing(hand_run):
    result = run_cli("evaluate", hand_run["run"])
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((hand_run["run"] / "metrics.json").read_text())
    test = [row for row in RunFolder(hand_run["run"]).read_split() if row["split"] == "test"]
    assert metrics["images"] == len(test)  # every photo is scored, not the found hands alone
    assert metrics["without_hand"] == sum(not row["crop"] for row in test) >= 1
    assert "photos hold no hand the hand stage finds: they answer 'nothing'" in result.stdout
    # The `nothing` photos have no hand: answered `nothing`, and right.
    assert metrics["per_class"]["nothing"]["recall"] == 1.0


def test_predict_answers_no_hand_for_an_empty_wall_from_the_run_and_its_bundle(hand_run, tmp_path):
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(wall)
    photos = [wall, *sorted((hand_run["data"] / "2").iterdir())[:3]]
    answers = []
    for model in (hand_run["run"], hand_run["bundle"]):
        classifier = load_classifier(model)
        assert classifier.hand_stage is not None  # from the record alone: no flag
        rows, _ = predict_files(classifier, photos)
        answers.append(rows)
        assert rows[0]["no_hand"] and rows[0]["predictions"][0]["class"] == "nothing"
        assert not any(row.get("no_hand") for row in rows[1:])
    for from_run, from_bundle in zip(*answers):  # the run folder and its TFLite answer alike
        assert from_run["predictions"][0]["class"] == from_bundle["predictions"][0]["class"]
        assert from_run["predictions"][0]["probability"] == pytest.approx(from_bundle["predictions"][0]["probability"],
                                                                         abs=1e-4)
    table = run_cli("predict", hand_run["bundle"], wall)
    assert table.returncode == 0 and "no hand" in table.stdout.splitlines()[-1]


def test_the_bundle_says_how_to_find_and_cut_the_hand(hand_run):
    record = json.loads((hand_run["bundle"] / "model.json").read_text())
    hands = record["preprocessing"]["hands"]
    assert hands["stage"] == "crop" and hands["margin"] == 0.25 and "mirror it left-right" in hands["what"]
    assert read_model_record(hand_run["bundle"]).preprocessing.hands["models"] == "full"
    assert record["verified"] is True


def test_blank_frames_type_nothing_in_transcribe(hand_run, tmp_path):
    """No hand, no letter: a clip whose gaps show an empty room (`data clip --empty`)."""
    room = tmp_path / "room.jpg"
    Image.fromarray(np.full((160, 160, 3), 128, np.uint8)).save(room)
    clip = tmp_path / "clip"
    made = run_cli("data", "clip", "--text", "1 2", "--run", hand_run["run"], "--split", "train", "--out", clip,
                   "--empty", room)
    assert made.returncode == 0, made.stderr[-2000:]
    events = tmp_path / "events.jsonl"
    result = run_cli("transcribe", hand_run["run"], clip / "frames", "--fps", "15", "--timeline", tmp_path / "t.csv",
                     "--events", events)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the hand stage" in result.stderr
    import csv

    idle = [(float(row["start_seconds"]), float(row["end_seconds"]))
            for row in csv.DictReader((clip / "timing.csv").open()) if row["symbol"] == "(idle)"]
    timeline = list(csv.DictReader((tmp_path / "t.csv").open()))
    inside = [row for row in timeline if any(start + 0.2 < float(row["seconds"]) < end - 0.1 for start, end in idle)]
    assert len(inside) >= 10 and all(row["top1"] == "no hand" for row in inside)  # the empty room: no hand
    typed = [json.loads(line) for line in events.read_text().splitlines()]
    assert not [event for event in typed if any(start + 0.2 < event["time"] < end - 0.1 for start, end in idle)
                and event["action"] == "symbol"]
