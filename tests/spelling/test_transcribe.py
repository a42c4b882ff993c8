"""`keras_sign.spelling.transcribe` and `keras-sign transcribe`: a clip built from real photos, spelled by a
model trained here through every kind of model file; a stream that breaks, frames of mixed sizes, crop boxes,
the character error rate, and bad input."""

import csv
import json
import os
import shutil

import pytest
from PIL import Image

from conftest import SAMPLE
from conftest import invoke as _invoke
from keras_sign.errors import KerasSignError
from keras_sign.inference.classifier import load_classifier
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder
from keras_sign.spelling.transcribe import character_error_rate, transcribe
from keras_sign.spelling.video import open_source
from spelling_fixtures import CLASSES, TEXT, clip, trained  # noqa: F401  (fixtures)

# Its tests share the session's trained model and clip with the predict tests: one worker runs them all
# (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sign_to_text")


def test_transcribing_the_clip_spells_its_text(trained, clip, tmp_path):
    folder, _ = clip
    classifier = load_classifier(trained["bundle"])
    # First check that the model knows the held photos: its transcript can only be as good as that.
    source = open_source(folder / "frames", fps=15)
    holds = [row for row in csv.DictReader((folder / "timing.csv").open()) if row["symbol"] != "(idle)"]
    frames = dict(source.frames)
    from keras_sign.spelling.transcribe import prepare_frames

    for row in holds:
        middle = min(frames, key=lambda t: abs(t - (float(row["start_seconds"]) + float(row["end_seconds"])) / 2))
        image = prepare_frames([frames[middle]], [(0, 0, 96, 96)], 32, False)
        assert CLASSES[int(classifier.predict(image).argmax())] == row["symbol"], row

    out = tmp_path / "out"
    code, output = _invoke("transcribe", trained["bundle"], folder / "clip.mp4", "--reference", TEXT,
                           "--events", out / "events.jsonl", "--timeline", out / "timeline.csv",
                           "--overlay", out / "overlay.mp4")
    assert code == 0, output
    lines = output.splitlines()
    text = next(line for line in lines if line.startswith("1"))
    score = character_error_rate(TEXT, text)
    assert score["cer"] <= 0.17, (text, output)  # measured: "120 21", CER 0
    assert "frames/s (decode, crop, resize, model, decoder)" in output and "CER " in output
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events and events[-1]["text"].strip() == text.strip()
    assert {e["action"] for e in events} == {"symbol", "word_gap"}  # 0.5 s of idle ends "120"
    timeline = list(csv.DictReader((out / "timeline.csv").open()))
    overlay = open_source(out / "overlay.mp4")
    assert len(timeline) == overlay.expected_frames == json.loads((folder / "clip.json").read_text())["frames"]

    # The same clip as a folder of frames, through the run folder's Keras model: the same text.
    code, output = _invoke("transcribe", trained["run"], folder / "frames", "--fps", "15")
    assert code == 0 and text in output.splitlines()
    assert "count as no sign" not in output  # this run has too few validation photos for a reject threshold

    # A run with a reject threshold above most of the clip's frames types less; --unsure-below 0 ignores it.
    sure = sorted(float(row["p1"]) for row in timeline)
    run = tmp_path / "calibrated"
    shutil.copytree(trained["run"], run)
    (run / "calibration.json").write_text(json.dumps({"temperature": 1.0, "reject": {"threshold": sure[len(sure) // 2]}}))
    code, output = _invoke("transcribe", run, folder / "frames", "--fps", "15")
    assert code == 0 and "count as no sign (the model's reject threshold" in output, output
    assert len(output.splitlines()[-2].replace(" ", "")) < len(text.replace(" ", "")), output
    code, output = _invoke("transcribe", run, folder / "frames", "--fps", "15", "--unsure-below", "0")
    assert code == 0 and text in output.splitlines() and "count as no sign" not in output


def fake_espeak(folder, stderr=""):
    """An `espeak-ng` on PATH that writes what it was asked to say to `said.txt` (and `stderr` to its stderr)."""
    folder.mkdir()
    script = folder / "espeak-ng"
    script.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {folder / 'said.txt'}\nprintf '{stderr}' >&2\n")
    script.chmod(0o755)
    return folder


def test_say_speaks_the_text_and_says_when_it_could_not(trained, clip, tmp_path, monkeypatch):
    folder, _ = clip
    speaker = fake_espeak(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{speaker}{os.pathsep}{os.environ['PATH']}")
    code, output = _invoke("transcribe", trained["bundle"], folder / "frames", "--fps", "15", "--say")
    said = (speaker / "said.txt").read_text()
    assert code == 0 and said.strip() and said in [line.strip() for line in output.splitlines()]  # what it printed
    assert "could not play" not in output
    # a machine without a sound device: espeak-ng exits 0 and says so on stderr
    silent = fake_espeak(tmp_path / "silent", "ALSA lib pcm.c: Unknown PCM default\\nerror: No such file\\n")
    monkeypatch.setenv("PATH", f"{silent}{os.pathsep}{os.environ['PATH']}")
    code, output = _invoke("transcribe", trained["bundle"], folder / "frames", "--fps", "15", "--say")
    assert code == 0 and "--say: espeak-ng could not play the text (no sound device?): error: No such file" in output


def test_a_stream_that_breaks_midway_keeps_its_text(trained, clip, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = sorted((clip[0] / "frames").iterdir())
    for frame in frames:
        os.link(frame, folder / frame.name)
    source = open_source(folder, fps=15)
    (folder / frames[60].name).unlink()  # gone after the source listed it, as when a disk is unplugged
    classifier = load_classifier(trained["bundle"])
    transcript, timeline = transcribe(classifier, source, SpellingDecoder(CLASSES, DecoderSettings(word_gap=0.5)))
    assert transcript.broken and "NotFound" in transcript.broken
    assert 0 < transcript.frames <= 60 and len(timeline) == transcript.frames
    assert transcript.text and TEXT.startswith(transcript.text.strip()[:1])


def test_frames_of_mixed_sizes_are_each_resized(trained, tmp_path, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, size in enumerate([(100, 100), (64, 80), (100, 100)]):
        Image.open(sorted((SAMPLE / "1").iterdir())[0]).convert("RGB").resize(size).save(folder / f"f{index}.png")
    classifier = load_classifier(trained["bundle"])
    transcript, _ = transcribe(classifier, open_source(folder, fps=10), SpellingDecoder(CLASSES), crop="center")
    assert transcript.frames == 3 and "different sizes" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["{bundle}", "{tmp}/missing.mp4"], "does not exist; pass a video file"),
    (["{bundle}", "{tmp}/notes.mp4"], "cannot be opened as a video"),
    (["{bundle}", "{tmp}/empty.mp4"], "cannot be opened as a video"),
    (["{bundle}", "{tmp}/no-frames"], "holds no image frames"),
    (["{bundle}", "--camera", "7"], "Camera 7 cannot be opened"),
    (["{bundle}", "{tmp}/notes.mp4", "--camera", "0"], "not both"),
    (["{bundle}", "{tmp}/no-frames", "--hold", "0"], "--hold must be a positive number"),
    (["{bundle}", "{tmp}/no-frames", "--min-confidence", "2"], "--min-confidence must be between 0 and 1"),
    (["{bundle}", "{tmp}/no-frames", "--unsure-below", "-1"], "--unsure-below must be between 0 and 1"),
    (["{bundle}", "{tmp}/one-frame", "--fps", "nan"], "'nan' is not a finite number"),
    (["{bundle}", "{tmp}/one-frame", "--smoothing", "inf"], "'inf' is not a finite number"),
    (["{bundle}", "{tmp}/one-frame", "--hold", "inf"], "'inf' is not a finite number"),
    (["{bundle}", "{tmp}/one-frame", "--word-gap", "-inf"], "'-inf' is not a finite number"),
    (["{tmp}/no-frames", "{tmp}/one-frame"], "is not a model file to run"),
])
def test_transcribe_bad_input_is_one_line(trained, tmp_path, args, message):
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "no-frames").mkdir()
    (tmp_path / "no-frames" / "readme.txt").write_text("no frames here")
    (tmp_path / "one-frame").mkdir()
    (tmp_path / "one-frame" / "f1.jpg").write_bytes(next((SAMPLE / "1").iterdir()).read_bytes())
    code, output = _invoke("transcribe", *[a.format(bundle=trained["bundle"], tmp=tmp_path) for a in args])
    assert code in (1, 2) and message in output and "Traceback" not in output, output


def test_crop_box_of_a_frame(trained, clip):
    from keras_sign.spelling.transcribe import crop_box

    assert crop_box("center", 160, 120) == (20, 0, 120, 120) and crop_box("full", 5, 4) == (0, 0, 5, 4)
    assert crop_box("10,20,30,40", 100, 100) == (10, 20, 30, 40)
    with pytest.raises(KerasSignError, match="does not fit"):
        crop_box("90,0,20,20", 100, 100)
    with pytest.raises(KerasSignError, match="x,y,w,h in pixels"):
        crop_box("left", 100, 100)


def test_character_error_rate_and_its_alignment():
    score = character_error_rate("hello world", "HELL0  WORLDS")
    assert score["cer"] == pytest.approx(2 / 11)
    assert score["substitutions"] == [("O", "0")] and score["insertions"] == 1 and score["deletions"] == 0
    assert "REF: HELLO WORLD" in score["alignment"]
    assert character_error_rate("ABC", "")["cer"] == pytest.approx(1.0)
