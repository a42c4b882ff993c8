"""`--lexicon`: a finished word rescored against a word list with the probabilities its letters were committed
with. Synthetic symbol streams through the real decoder: a one-letter confusion corrected, a confident name and
digits left alone, the events keeping the spelling; bad word lists and a missing espeak-ng get one line."""


import numpy as np
import pytest

from conftest import invoke, one_line_error
from keras_sign.errors import KerasSignError
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder
from keras_sign.spelling.lexicon import Lexicon

CLASSES = [*"abcdehiklnoprtuwy", "2", "0", "4", "nothing", "space"]


def spell(decoder, signs, fps=20):
    """Feed the decoder each sign (a {class: probability} dict, the rest spread evenly) for 0.5 s, with 0.2 s of
    `nothing` between them; `" "` is the space class. Return the events, the stream's end included."""
    events, time = [], 0.0

    def frames(probabilities, seconds):
        nonlocal time
        row = np.zeros(len(CLASSES))
        for name, probability in probabilities.items():
            row[CLASSES.index(name)] = probability
        row += (1 - row.sum()) / len(CLASSES)
        for _ in range(int(seconds * fps)):
            events.extend(decoder.update(time, row))
            time += 1 / fps

    for sign in signs:
        frames({"space": 0.95} if sign == " " else sign, 0.5)
        frames({"nothing": 0.95}, 0.2)
    events.extend(decoder.finish(time))
    return events


def sure(letter, probability=0.95):
    return {letter.lower(): probability}


def decoder_with(lexicon):
    return SpellingDecoder(CLASSES, DecoderSettings(min_confidence=0.5, min_margin=0.1), lexicon)


@pytest.fixture(scope="module")
def english():
    return Lexicon.read("english")


def test_a_one_letter_confusion_is_corrected_and_the_spelling_kept_in_the_events(english):
    yoi = [sure("y"), sure("o"), {"i": 0.55, "u": 0.4}]  # U read as I, U a close second
    events = spell(decoder_with(english), [*yoi, " ", sure("c"), sure("a"), sure("n")])
    corrections = [event for event in events if event.action == "correct"]
    assert [(event.spelled, event.symbol) for event in corrections] == [("YOI", "YOU")]
    assert events[-1].text == "YOU CAN"
    without = spell(decoder_with(None), [*yoi, " ", sure("c"), sure("a"), sure("n")])
    assert without[-1].text == "YOI CAN" and not any(event.action == "correct" for event in without)
    # A rarer word needs more evidence than one close second: HELLP stays (zipf 5 against 1 is not enough).
    hellp = [sure("h"), sure("e"), sure("l"), sure("l"), {"p": 0.55, "o": 0.4}]
    assert spell(decoder_with(english), hellp)[-1].text == "HELLP"


def test_a_confident_name_digits_and_real_words_stay_as_spelled(english):
    name = spell(decoder_with(english), [sure("k", 0.96), sure("a", 0.97), sure("i", 0.95)])
    assert name[-1].text == "KAI"  # every letter sure: a name, left alone
    digits = [{"2": 0.6, "u": 0.3}, {"0": 0.55, "o": 0.4}, {"2": 0.6, "u": 0.3}, {"4": 0.7}]
    assert spell(decoder_with(english), digits)[-1].text == "2024"  # digits are never touched
    word = [sure("w", 0.7), sure("o", 0.8), {"r": 0.6, "u": 0.3}, sure("l", 0.8), sure("d", 0.8)]
    assert spell(decoder_with(english), word)[-1].text == "WORLD"  # a word of the list, likely as spelled


def test_the_last_word_is_corrected_when_the_stream_ends(english):
    events = spell(decoder_with(english), [sure("t"), sure("h"), {"w": 0.55, "e": 0.4}])  # THW: E read as W
    assert events[-1].action == "correct" and events[-1].text == "THE" and events[-1].spelled == "THW"


def test_a_word_list_file_with_or_without_frequencies(tmp_path):
    (tmp_path / "words.txt").write_text("# a comment\nhello 5.2\nhelp\n")
    words = Lexicon.read(tmp_path / "words.txt")
    assert words.zipf == {"HELLO": 5.2, "HELP": 3.0}
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(KerasSignError, match="holds no words"):
        Lexicon.read(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_text("hello often\n")
    with pytest.raises(KerasSignError, match="line 1: 'often' is not a frequency"):
        Lexicon.read(tmp_path / "bad.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KerasSignError, match="cannot be read as UTF-8"):
        Lexicon.read(tmp_path / "binary.txt")


def test_transcribe_refuses_a_missing_word_list_and_says_when_it_cannot_speak(tmp_path, monkeypatch):
    one_line_error(*invoke("transcribe", tmp_path / "model", tmp_path / "clip", "--lexicon", tmp_path / "none.txt"),
                   "no such file", "english")
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on it
    code, output = invoke("transcribe", tmp_path / "model", tmp_path / "clip", "--say")
    assert "espeak-ng is not installed" in output and code == 1  # then the missing model is the error
