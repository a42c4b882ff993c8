"""From signs to text: `predict` on photos and `transcribe` of clips built from real photos, with a
model trained here, through every kind of model file a user holds."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_reliability import save_as_phone_would

from conftest import SAMPLE, copy_subset, run_cli
from keras_sign.cli import SKIPPED_EXIT, cli
from keras_sign.errors import KerasSignError
from keras_sign.inference.classifier import load_classifier
from keras_sign.inference.predict import expand_inputs, predict_files
from keras_sign.spelling.clip import build_clip, clip_photos, write_y4m
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder
from keras_sign.spelling.transcribe import character_error_rate, transcribe
from keras_sign.spelling.video import open_source
from spelling_fixtures import CLASSES, TEXT, clip, trained  # noqa: F401  (fixtures)

# Its tests share module-scoped trained runs: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sign_to_text")


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def test_predict_gives_one_answer_from_a_run_its_keras_file_and_its_tflite_bundle(trained):
    files = sorted((trained["data"] / "1").iterdir())[:6] + sorted((SAMPLE / "2").iterdir())[-4:]
    files = files[:6] + [f for f in files[6:] if f.name not in {p.name for p in (trained["data"] / "2").iterdir()}]
    answers = {}
    for name, model in [("run", trained["run"]), ("keras", trained["run"] / "model.keras"),
                        ("tflite", trained["bundle"]), ("tflite file", os.path.join(trained["bundle"], "model.tflite"))]:
        classifier = load_classifier(model)
        assert classifier.class_names == CLASSES and classifier.image_size == 32
        rows, skipped = predict_files(classifier, files, top_k=2)
        assert not skipped and [row["path"] for row in rows] == [str(f) for f in files]
        answers[name] = np.array([[p["probability"] for p in row["predictions"]] for row in rows]), \
            [row["predictions"][0]["class"] for row in rows]
    top1 = answers["run"][1]
    assert all(answer[1] == top1 for answer in answers.values())
    np.testing.assert_allclose(answers["tflite"][0], answers["run"][0], atol=1e-4)
    assert top1[:6].count("1") >= 4 and "2" in top1[6:]  # a model that tells the classes apart


def test_predict_command_formats_skips_and_exit_status(trained, tmp_path):
    photos = copy_subset(SAMPLE, tmp_path / "photos", ["0", "2"], 2)
    (photos / "2" / "notes.txt").write_text("not a photo")
    code, output = _invoke("predict", trained["run"], photos, tmp_path / "missing.jpg", "--top-k", "2")
    assert code == SKIPPED_EXIT, output
    lines = output.splitlines()
    assert "notes.txt: not an image" in output and "missing.jpg: no such file or folder" in output
    header = next(line for line in lines if line.startswith("path"))
    assert header.split() == ["path", "top1", "p1", "top2", "p2"]
    for output_format in ("jsonl", "csv"):
        out = tmp_path / f"predictions.{output_format}"
        code, _ = _invoke("predict", trained["bundle"], photos / "0", "--format", output_format, "--out", out,
                          "--top-k", "9")
        assert code == 0
        text = out.read_text()
        if output_format == "jsonl":
            rows = [json.loads(line) for line in text.splitlines()]
            assert len(rows) == 2 and len(rows[0]["predictions"]) == 4  # every class
            assert sum(p["probability"] for p in rows[0]["predictions"]) == pytest.approx(1, abs=1e-4)
        else:
            rows = list(csv.DictReader(text.splitlines()))
            assert len(rows) == 2 and rows[0]["top1"] in CLASSES
    code, output = _invoke("predict", trained["run"], tmp_path / "nothing-here")
    assert code == 1 and "None of the 1 input(s)" in output


def test_predict_sees_phone_photos_upright(trained, tmp_path):
    picture = Image.open(sorted((SAMPLE / "1").iterdir())[3]).convert("RGB")
    picture.save(tmp_path / "upright.png")
    save_as_phone_would(picture, tmp_path / "phone.png", 6)
    rows, _ = predict_files(load_classifier(trained["bundle"]), [tmp_path / "upright.png", tmp_path / "phone.png"])
    assert rows[0]["predictions"] == rows[1]["predictions"]


def test_inputs_expand_files_folders_and_globs(tmp_path):
    folder = copy_subset(SAMPLE, tmp_path / "p", ["0", "1"], 2)
    (tmp_path / "empty").mkdir()
    files, problems = expand_inputs([folder, str(folder / "0" / "*.JPG"), folder / "1", "nope/*.png", tmp_path / "empty",
                                     tmp_path / "gone"])
    assert len(files) == 4 and len(set(files)) == 4  # repeats named once
    # An empty folder that exists was "no such file or folder".
    assert problems == [("nope/*.png", "the pattern matches no file"), (str(tmp_path / "empty"), "the folder holds no files"),
                        (str(tmp_path / "gone"), "no such file or folder")]


def test_a_100_megapixel_photo_is_skipped_by_name_without_pillows_warning(trained, tmp_path):
    Image.new("RGB", (10_000, 10_000), (90, 120, 150)).save(tmp_path / "huge.png")
    result = run_cli("predict", trained["bundle"], tmp_path / "huge.png", fresh=True)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "huge.png: 10000x10000 is 100 megapixels, over the 89-megapixel limit; downscale it" in result.stderr
    assert "DecompressionBombWarning" not in result.stderr and "Traceback" not in result.stderr


def test_a_photo_given_to_transcribe_is_pointed_to_predict(trained, tmp_path):
    """`transcribe RUN one.png` reported -9223372036854775808 frames (OpenCV's count for a still image)."""
    photo = tmp_path / "one.png"
    Image.open(next((SAMPLE / "1").iterdir())).save(photo)
    code, output = _invoke("transcribe", trained["bundle"], photo)
    assert code == 1 and "is a photo, not a video" in output and "keras-sign predict MODEL PHOTO" in output, output
    assert "-9223372036854775808" not in output and "Traceback" not in output


def test_the_clip_holds_each_symbol_as_planned(clip):
    folder, summary = clip
    rows = list(csv.DictReader((folder / "timing.csv").open()))
    spelled = [row["symbol"] for row in rows if row["symbol"] != "(idle)"]
    assert "".join(spelled) == "12021"
    for row in rows:
        held = float(row["end_seconds"]) - float(row["start_seconds"])
        assert 0.4 - 1 / 15 <= held <= 1.2 + 1 / 15 or row["symbol"] == "(idle)"
    assert all("/nothing/" in row["photo"] for row in rows if row["symbol"] == "(idle)")  # idle on `nothing` photos
    # the word gap: a longer idle stretch between "120" and "21"
    gaps = [float(r["end_seconds"]) - float(r["start_seconds"]) for r in rows[1:-1] if r["symbol"] == "(idle)"]
    assert len(gaps) == 1 and 0.6 - 1 / 15 <= gaps[0] <= 1.0 + 1 / 15
    frames = sorted((folder / "frames").iterdir())
    assert len(frames) == summary["frames"] and (folder / "reference.txt").read_text() == TEXT + "\n"
    first, second = (np.asarray(Image.open(frames[i]), np.float32) for i in (12, 13))
    assert 0 < np.abs(first - second).mean() < 40  # the picture drifts a little from frame to frame
    source = open_source(folder / "clip.mp4")
    assert source.fps == 15 and source.expected_frames == summary["frames"]


def test_a_repeated_symbol_is_separated_by_a_short_idle_moment(trained, tmp_path):
    paths, labels, orientations, class_names, _ = clip_photos(trained["run"], "train")
    build_clip("11", paths, labels, orientations, class_names, tmp_path / "c", size=48)
    symbols = [row["symbol"] for row in csv.DictReader((tmp_path / "c" / "timing.csv").open())]
    assert symbols == ["(idle)", "1", "(idle)", "1", "(idle)"]
    with pytest.raises(KerasSignError, match="No photos for 7; the photos spell 012"):
        build_clip("17", paths, labels, orientations, class_names, tmp_path / "d")


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


def test_a_y4m_clip_reads_back_as_its_frames(tmp_path):
    """The fake-camera format of the browser test: OpenCV (so `transcribe`) reads back what was written."""
    frames = [np.asarray(Image.open(path).convert("RGB").resize((96, 64))) for path in sorted(SAMPLE.glob("*/*"))[:6]]
    write_y4m(tmp_path / "clip.y4m", frames, 15)
    source = open_source(tmp_path / "clip.y4m")
    read = [frame for _, frame in source.frames]
    assert source.fps == 15 and len(read) == 6
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(read, frames)) < 3  # measured: about 1.1 of 255
    with pytest.raises(KerasSignError, match="even width and height"):
        write_y4m(tmp_path / "odd.y4m", [frames[0][:63]], 15)
