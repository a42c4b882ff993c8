"""`keras_sign.spelling.clip`: a clip of real photos that holds each symbol of a text as planned, and the y4m
files the browser test's fake camera plays."""

import csv

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE
from keras_sign.errors import KerasSignError
from keras_sign.spelling.clip import build_clip, clip_photos, write_y4m
from keras_sign.spelling.video import open_source
from spelling_fixtures import TEXT, clip, trained  # noqa: F401  (fixtures)

# Its tests share the session's trained model and clip with the predict tests: one worker runs them all
# (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sign_to_text")


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


def test_a_repeated_symbol_can_slide_as_signers_double_a_letter(trained, tmp_path):
    paths, labels, orientations, class_names, _ = clip_photos(trained["run"], "train")
    summary = build_clip("11", paths, labels, orientations, class_names, tmp_path / "c", size=64, double="slide")
    rows = list(csv.DictReader((tmp_path / "c" / "timing.csv").open()))
    assert [row["symbol"] for row in rows] == ["(idle)", "1", "(slide)", "1", "(idle)"]  # no idle between
    assert len({row["photo"] for row in rows[1:4]}) == 1 and summary["double"] == "slide"
    frames = sorted((tmp_path / "c" / "frames").iterdir())

    def middle(row):
        index = round((float(row["start_seconds"]) + float(row["end_seconds"])) / 2 * 15)
        return np.asarray(Image.open(frames[index]).convert("L"), np.float32)

    first, second = middle(rows[1]), middle(rows[3])

    def mismatch(dx):  # of the two holds, the second moved dx pixels to the right
        return np.abs(first[:, max(0, -dx):64 - max(0, dx)] - second[:, max(0, dx):64 - max(0, -dx)]).mean()

    shift = min(range(-20, 21), key=mismatch)
    assert abs(shift) >= 0.15 * 64 - 4  # the slide's 15-25% of the frame, give or take the drift
    with pytest.raises(KerasSignError, match="--double must be one of pause, slide"):
        build_clip("11", paths, labels, orientations, class_names, tmp_path / "d", double="bounce")


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
