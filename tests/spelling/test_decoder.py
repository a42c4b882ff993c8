"""The spelling decoder's rules on synthetic probability streams (no model, no I/O)."""

import numpy as np
import pytest

from keras_sign.errors import KerasSignError
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder, has_control_classes, key_of

CLASSES = ["a", "b", "c", "l", "del", "nothing", "space"]
NO_SMOOTHING = dict(smoothing=0.0)


def confident(name, classes=CLASSES, level=0.9):
    """Probabilities with `level` on class `name` and the rest spread evenly."""
    probabilities = np.full(len(classes), (1 - level) / (len(classes) - 1))
    probabilities[classes.index(name)] = level
    return probabilities


def stream(segments, fps, classes=CLASSES):
    """`(seconds, probabilities)` frames of `segments`: (class name or None for a flat, unsure frame, seconds)."""
    frames, start = [], 0.0
    for name, seconds in segments:
        count = round(seconds * fps)
        for i in range(count):
            probabilities = np.full(len(classes), 1 / len(classes)) if name is None else confident(name, classes)
            frames.append((start + i / fps, probabilities))
        start += count / fps
    return frames


def spell(segments, fps=30, classes=CLASSES, **settings):
    decoder = SpellingDecoder(classes, DecoderSettings(**{"hold": 0.3, **settings}))
    events = [event for time, p in stream(segments, fps, classes) for event in decoder.update(time, p)]
    return decoder.text, events


def test_a_flicker_shorter_than_the_hold_commits_nothing():
    text, events = spell([("nothing", 0.5), ("b", 0.2), ("nothing", 0.5), ("c", 0.1), ("a", 0.25)], **NO_SMOOTHING)
    assert text == "" and events == []


def test_a_held_letter_commits_once_however_long_it_is_held():
    text, events = spell([("a", 3.0)])
    assert text == "A" and len(events) == 1
    assert events[0].action == "symbol" and events[0].confidence == pytest.approx(0.9)
    assert events[0].time == pytest.approx(0.3 - 1 / 30)  # its 9th frame: 9 frames of 1/30 s shown


def test_a_long_hold_repeats_only_with_repeat_after():
    assert spell([("l", 2.0)])[0] == "L"
    assert spell([("l", 2.0)], repeat_after=0.8)[0] == "LLL"  # at 0.3, 1.1 and 1.9 s
    # the LL of HELLO the way a signer makes it: a short movement between two holds
    assert spell([("l", 0.5), (None, 0.2), ("l", 0.5)])[0] == "LL"


def slid(segments, fps=30, classes=CLASSES + ["j"], **settings):
    """Spell `segments` of (class name, seconds, the hand's centre x at the start, at the end) with the hand's
    square (side 100 px) moving linearly from one to the other."""
    decoder = SpellingDecoder(classes, DecoderSettings(**{"hold": 0.3, **settings}))
    start = 0.0
    for name, seconds, x0, x1 in segments:
        count = round(seconds * fps)
        for i in range(count):
            x = x0 + (x1 - x0) * (i + 1) / count
            decoder.update(start + i / fps, confident(name, classes), (x - 50, 200.0, 100.0))
        start += count / fps
    return decoder.text


def test_a_letter_held_slid_and_held_again_is_typed_twice_with_repeat_move():
    hello_ll = [("l", 0.6, 300, 300), ("l", 0.3, 300, 330), ("l", 0.6, 330, 330)]  # a slide of 0.3 of the hand
    assert slid(hello_ll, repeat_move=None) == "L"  # off: one long hold
    assert slid(hello_ll) == "LL"  # the default, 0.15
    assert slid(hello_ll, repeat_move=0.2) == "LL"
    assert slid(hello_ll, repeat_move=0.4) == "L"  # not far enough
    assert slid([("l", 0.6, 300, 300), ("l", 0.1, 300, 330)], repeat_move=0.2) == "L"  # moved, not held again
    # a hand drifting a little while it holds one letter, and the moving letter J, type one letter
    assert slid([("l", 1.2, 300, 310)], repeat_move=0.2) == "L"
    assert slid([("j", 0.6, 300, 300), ("j", 0.3, 300, 360), ("j", 0.6, 360, 360)], repeat_move=0.2) == "J"
    # a triple: two slides
    assert slid([*hello_ll, ("l", 0.3, 330, 300), ("l", 0.6, 300, 300)], repeat_move=0.2) == "LLL"
    # without the hand's square (a model without a hand stage) the rule has nothing to go on
    assert spell([("l", 2.0)], repeat_move=0.2)[0] == "L"
    # a square that grows as it moves is the hand coming nearer (or the tracker running off), not a slide
    decoder = SpellingDecoder(CLASSES, DecoderSettings(hold=0.3))
    for i in range(45):
        side = 100 + 4 * max(0, i - 18)
        decoder.update(i / 30, confident("l"), (250, 150, side))  # its centre moves as it grows
    assert decoder.text == "L"


def test_a_sign_lost_for_a_moment_is_still_the_same_hold():
    dropout = [("l", 0.6), (None, 0.1), ("l", 0.6)]  # three frames the hand stage or the model lost
    assert spell(dropout)[0] == "L"  # the default --release 0.15
    assert spell(dropout, release=0)[0] == "LL"
    flicker = [("l", 0.6), ("c", 0.07), ("l", 0.6)]  # two frames of a neighbouring handshape
    assert spell(flicker)[0] == "L" and spell(flicker, release=0)[0] == "LL"
    assert spell([("l", 0.6), (None, 0.25), ("l", 0.6)])[0] == "LL"  # a pause between two holds: a double
    assert spell([("l", 0.6), ("c", 0.5), ("l", 0.6)])[0] == "LCL"  # another letter in between


def test_delete_and_space_edit_the_text_and_are_harmless_at_the_edges():
    text, events = spell([("del", 0.5), ("space", 0.5), ("a", 0.5), ("b", 0.5), ("del", 0.5), ("space", 0.5),
                          ("nothing", 0.2), ("space", 0.5), ("c", 0.5)])
    assert text == "A C"  # del on empty text, a leading space and a second space in a row do nothing
    assert [e.action for e in events] == ["symbol", "symbol", "delete", "space", "symbol"]
    assert [e.text for e in events] == ["A", "AB", "A", "A ", "A C"]


def test_the_same_stream_at_15_and_60_fps_spells_the_same_text():
    word = [("nothing", 0.4), ("b", 0.6), ("a", 0.5), (None, 0.15), ("c", 0.7), ("space", 0.5), ("a", 0.55),
            ("l", 0.5), ("nothing", 0.3), ("l", 0.5)]
    texts = {fps: spell(word, fps)[0] for fps in (15, 24, 30, 60)}
    assert set(texts.values()) == {"BAC ALL"}, texts


def test_unsure_frames_end_a_word_only_with_a_word_gap():
    word = [("a", 0.5), ("nothing", 1.2), ("b", 0.5), (None, 1.2), ("c", 0.5)]
    assert spell(word)[0] == "ABC"
    text, events = spell(word, word_gap=1.0)
    assert text == "A B C" and [e.action for e in events].count("word_gap") == 2


def test_smoothing_rides_over_single_frame_flicker():
    # 1 frame in 6 jumps to "b": without smoothing each jump restarts the hold of "a", so it never commits
    frames = [("a", 5 / 30), ("b", 1 / 30)] * 6
    assert spell(frames, fps=30, hold=0.3, **NO_SMOOTHING)[0] == ""
    assert spell(frames, fps=30, hold=0.3, smoothing=0.1)[0] == "A"


def test_confidence_and_margin_thresholds():
    classes = ["a", "b", "nothing"]
    decoder = SpellingDecoder(classes, DecoderSettings(hold=0.2, smoothing=0, min_confidence=0.6, min_margin=0.3))
    for i in range(20):
        decoder.update(i / 20, [0.55, 0.40, 0.05])  # top class below 0.6
    assert decoder.text == "" and decoder.state["candidate"] is None
    for i in range(20, 40):
        decoder.update(i / 20, [0.62, 0.36, 0.02])  # confident, but a lead of only 0.26
    assert decoder.text == ""
    for i in range(40, 60):
        decoder.update(i / 20, [0.7, 0.2, 0.1])
    assert decoder.text == "A" and decoder.state["committed"] and decoder.state["progress"] == 1.0


def test_frames_below_the_reject_threshold_are_no_sign_even_through_smoothing():
    classes = ["a", "b", "nothing"]
    frames = [(i / 20, [0.7, 0.2, 0.1]) for i in range(20)]  # 1 s of an "a" the model is 0.7 sure of
    for floor, text in ((0.0, "A"), (0.69, "A"), (0.75, "")):
        for smoothing in (0.0, 0.2):
            decoder = SpellingDecoder(classes, DecoderSettings(hold=0.2, smoothing=smoothing, unsure_below=floor))
            for time, probabilities in frames:
                decoder.update(time, probabilities)
            assert decoder.text == text, (floor, smoothing)
    # unsure frames between sure ones break the hold: they are no sign, not more of the same sign
    decoder = SpellingDecoder(classes, DecoderSettings(hold=0.2, smoothing=0, unsure_below=0.65))
    for i in range(20):
        decoder.update(i / 20, [0.7, 0.2, 0.1] if i % 3 else [0.6, 0.3, 0.1])
    assert decoder.text == ""


def test_state_shows_the_hold_progress():
    decoder = SpellingDecoder(CLASSES, DecoderSettings(hold=0.4, smoothing=0))
    decoder.update(0.0, confident("b"))
    decoder.update(0.1, confident("b"))
    state = decoder.state
    assert (state["candidate"], state["symbol"], state["committed"]) == ("b", "B", False)
    assert state["held"] == pytest.approx(0.2) and state["progress"] == pytest.approx(0.5)  # 2 frames, 0.1 s each
    decoder.update(0.2, confident("c"))
    assert decoder.state["held"] == pytest.approx(0.1) and decoder.state["progress"] == pytest.approx(0.25)
    for time in (0.3, 0.4, 0.5):
        decoder.update(time, confident("c"))
    assert decoder.state["committed"] and decoder.text == "C"


def test_models_without_control_classes_spell_letters_and_digits():
    digits = [str(d) for d in range(10)]
    text, _ = spell([("4", 0.5), ("2", 0.5)], classes=digits)
    assert text == "42"
    assert has_control_classes(digits) == {"space": False, "delete": False, "nothing": False}
    assert has_control_classes(CLASSES) == {"space": True, "delete": True, "nothing": True}
    assert [key_of(name) for name in ("a", "7", "space", "del", "nothing", "unknown")] == [
        ("symbol", "A"), ("symbol", "7"), ("space", " "), ("delete", ""), ("idle", ""), ("idle", "")]


@pytest.mark.parametrize("settings, message", [
    ({"hold": 0}, "--hold must be a positive number"),
    ({"hold": -1}, "--hold must be a positive number"),
    ({"min_confidence": 1.5}, "--min-confidence must be between 0 and 1"),
    ({"repeat_after": 0}, "--repeat-after must be a positive"),
    ({"word_gap": -2}, "--word-gap must be a positive"),
    ({"smoothing": -0.1}, "--smoothing must be 0 or more"),
    ({"unsure_below": 1.2}, "--unsure-below must be between 0 and 1"),
    ({"repeat_move": -0.1}, "--repeat-move must be a positive share"),
    ({"release": -1}, "--release must be 0 or more"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(KerasSignError, match=message):
        SpellingDecoder(CLASSES, DecoderSettings(**settings))


@pytest.mark.parametrize("field", ["hold", "smoothing", "repeat_after", "word_gap", "min_confidence", "repeat_move",
                                   "release"])
def test_decoder_settings_refuse_what_is_not_finite(field):
    """The demo page's settings arrive as JSON, where Python reads `Infinity` and `NaN`."""
    with pytest.raises(KerasSignError, match="must be a finite number"):
        DecoderSettings(**{field: float("inf")}).validate()
