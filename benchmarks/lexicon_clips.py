"""CER and WER of `transcribe` with and without `--lexicon`, on clips of a run's held-out photos: texts of dictionary
words, and names and numbers, which the word list must leave alone.

    python benchmarks/lexicon_clips.py RUN --split test --seeds 1,2,3 --lexicon english --json out.json

Each text is made into clips (`keras-sign data clip --run RUN --split SPLIT --seed S`, with an empty room in the
pauses when --empty is given), spelled once with the decoder's defaults and once with the lexicon, in this process
(the model is loaded once). Prints a table per group of texts, and the events' corrections.

`--channel confusion` scores the spelled letters with the model's confusions on the run's validation photos
(P(typed | signed), from the mean predicted probabilities of each class's photos) instead of the probabilities the
model gave each letter as it was committed, which is what `transcribe --lexicon` does.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_sign.inference.classifier import load_classifier  # noqa: E402
from keras_sign.inference.predict import predict_files  # noqa: E402
from keras_sign.spelling.clip import build_clip, clip_photos  # noqa: E402
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder, default_word_gap, key_of  # noqa: E402
from keras_sign.spelling.lexicon import Lexicon  # noqa: E402
from keras_sign.spelling.transcribe import character_error_rate, transcribe  # noqa: E402
from keras_sign.spelling.video import open_source  # noqa: E402

WORDS = ["HELLO WORLD", "THANK YOU", "GOOD MORNING", "WHERE IS THE TRAIN", "I NEED HELP", "PLEASE CALL MY FAMILY",
         "THE WATER IS COLD", "SEE YOU AT SCHOOL"]
NAMES_AND_NUMBERS = ["KAI", "ZOE 42", "ROOM 204", "QUINN 7", "JAX", "OLGA 31", "CALL 911", "BEX 8"]


class ConfusionLexicon(Lexicon):
    """The word list with a noisy channel from a confusion matrix: `confusion[signed][typed]`."""

    def __init__(self, lexicon, confusion):
        super().__init__(lexicon.zipf, lexicon.source)
        self.confusion = confusion

    def typed_as(self, letter, j, spelled, letters):
        return self.confusion.get(letter, {}).get(spelled[j], 0.0)


def validation_confusion(classifier, run, smoothing=0.01):
    """`{signed symbol: {typed symbol: probability}}`: the mean predicted probabilities of each class's validation
    photos, smoothed so that no confusion is impossible."""
    paths, labels, _, class_names, _ = clip_photos(run, "val")
    rows, _ = predict_files(classifier, paths, top_k=len(class_names))
    symbols = [key_of(name)[1] for name in class_names]
    totals = {}
    for row, label in zip(rows, labels):
        signed = totals.setdefault(symbols[label], {})
        for prediction in row["predictions"]:
            typed = key_of(prediction["class"])[1]
            signed[typed] = signed.get(typed, 0.0) + prediction["probability"]
    confusion = {}
    for signed, typed in totals.items():
        total = sum(typed.values()) + smoothing * len(symbols)
        confusion[signed] = {symbol: (typed.get(symbol, 0.0) + smoothing) / total for symbol in set(symbols)}
    return confusion


def word_error_rate(reference, spelled):
    import jiwer

    return float(jiwer.wer(" ".join(reference.split()), " ".join(spelled.split()) or " "))


def spell(classifier, frames_folder, fps, lexicon):
    """`(text, corrections, the decoder)` of a clip."""
    settings = DecoderSettings(word_gap=default_word_gap(classifier.class_names),
                               unsure_below=classifier.unsure_below or 0.0)
    decoder = SpellingDecoder(classifier.class_names, settings, lexicon)
    transcript, _ = transcribe(classifier, open_source(frames_folder, fps=fps), decoder)
    return (transcript.text.strip(), [(e.spelled, e.symbol) for e in transcript.events if e.action == "correct"],
            decoder)


def rescored(text, letters, lexicon, **constants):
    """The plain spelling `text` (with the decoder's per-character `letters`) corrected word by word under other
    lexicon constants: what the decoder would have typed with them (a correction changes nothing after it)."""
    from keras_sign.spelling import lexicon as module

    saved = {name: getattr(module, name) for name in constants}
    try:
        for name, value in constants.items():
            setattr(module, name, value)
        words, start = [], 0
        for word in text.split(" "):
            words.append(lexicon.correct(word, letters[start:start + len(word)]) or word if word else word)
            start += len(word) + 1
        return " ".join(words)
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


GRID = [{"MARGIN": margin, "CONFIDENT": confident, "MAX_EDITS": edits, "MISSED_LETTER": missed}
        for margin in (20.0, 1e3, 1e5) for confident in (0.9, 0.7) for edits in (1, 2) for missed in (0.05, 0.3)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--lexicon", default="english")
    parser.add_argument("--empty", help="a photo of an empty room for the pauses")
    parser.add_argument("--groups", default="words,names", help="words, names (numbers are left out without digits)")
    parser.add_argument("--grid", action="store_true", help="also score other lexicon constants (GRID) on the same "
                        "spellings: for choosing them, on validation clips")
    parser.add_argument("--channel", choices=["probabilities", "confusion"], default="probabilities")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    classifier = load_classifier(args.run)
    lexicon = Lexicon.read(args.lexicon)
    if args.channel == "confusion":
        lexicon = ConfusionLexicon(lexicon, validation_confusion(classifier, args.run))
    paths, labels, orientations, class_names, description = clip_photos(args.run, args.split)
    symbols = {name.upper() for name in class_names if len(name) == 1}
    groups = {"words": WORDS, "names": NAMES_AND_NUMBERS}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for group in args.groups.split(","):
            for text in groups[group]:
                if set(text.replace(" ", "")) - symbols:
                    continue  # a symbol these photos do not have (digits of an alphabet model)
                for seed in map(int, args.seeds.split(",")):
                    out = Path(scratch) / f"{group}-{text.replace(' ', '_')}-{seed}"
                    summary = build_clip(text, paths, labels, orientations, class_names, out, seed=seed,
                                         photos=description, empty=args.empty)
                    row = {"group": group, "text": text, "seed": seed}
                    for name, words in (("plain", None), ("lexicon", lexicon)):
                        spelled, corrections, decoder = spell(classifier, out / "frames", summary["fps"], words)
                        row[name] = {"spelled": spelled, "cer": character_error_rate(text, spelled)["cer"],
                                     "wer": word_error_rate(text, spelled), "corrections": corrections}
                        if words is None and args.grid:
                            row["grid"] = [character_error_rate(text, rescored(
                                decoder.text.rstrip(), decoder.letters, lexicon, **constants))["cer"]
                                for constants in GRID]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\n{args.run}, {args.split} split, seeds {args.seeds}, lexicon {args.lexicon}, channel {args.channel}\n")
    print("| texts | clips | CER without | CER with the lexicon | WER without | WER with |\n| --- | ---: | ---: | ---: "
          "| ---: | ---: |")
    for group in args.groups.split(","):
        chosen = [row for row in rows if row["group"] == group]
        if chosen:
            mean = {f"{name} {metric}": np.mean([row[name][metric] for row in chosen])
                    for name in ("plain", "lexicon") for metric in ("cer", "wer")}
            print(f"| {group} | {len(chosen)} | {mean['plain cer']:.3f} | {mean['lexicon cer']:.3f} | "
                  f"{mean['plain wer']:.3f} | {mean['lexicon wer']:.3f} |")
    if args.grid:
        print("\n| constants | " + " | ".join(f"CER {group}" for group in args.groups.split(",")) + " |\n| --- |"
              + " ---: |" * len(args.groups.split(",")))
        for index, constants in enumerate(GRID):
            cells = [np.mean([row["grid"][index] for row in rows if row["group"] == group])
                     for group in args.groups.split(",")]
            print(f"| {constants} | " + " | ".join(f"{cell:.3f}" for cell in cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"run": args.run, "split": args.split, "lexicon": args.lexicon,
                                         "channel": args.channel, "grid": GRID if args.grid else None,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
