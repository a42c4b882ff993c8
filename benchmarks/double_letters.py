"""How `transcribe` spells double letters (the LL of HELLO), with each decoder rule: clips of a run's held-out photos
in which a repeated letter is made as signers make it (`data clip --double slide`: held, the same handshape slid a
little to one side, held again) or with a brief pause between the holds (`--double pause`).

    python benchmarks/double_letters.py RUN --split val --seeds 1,2,3 --double slide --json out.json

Each text is made into a clip per seed and transcribed once; each frame's probabilities and hand square are kept and
replayed through a decoder per rule (`RULES`: none; `--release` and `--repeat-move` at several values, alone and
together; `--repeat-after` at several times), so every rule reads the very same frames. Prints, per rule: the
doubled-letter rate (the reference's double letters spelled as two), the false doubles (two equal letters in a row
where the reference has one letter, per 100 reference letters) and the CER.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_sign.inference.classifier import load_classifier  # noqa: E402
from keras_sign.spelling.clip import build_clip, clip_photos  # noqa: E402
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder, default_word_gap  # noqa: E402
from keras_sign.spelling.transcribe import character_error_rate, transcribe  # noqa: E402
from keras_sign.spelling.video import open_source  # noqa: E402

# 15 double letters and 50 single ones per seed, in words, none with J or Z (Massey has neither).
TEXTS = ["HELLO WORLD", "GOOD BOOK", "COFFEE TRAIN", "APPLE LETTER", "HAPPY SUMMER", "GRASS DOOR", "SEE YOU SOON",
         "BALLOON FOX"]
RULES = {" ".join(f"--{k.replace('_', '-')} {v}" for k, v in rule.items()) or "none": rule for rule in [
    *({name: value for name, value in (("release", r), ("repeat_move", d)) if value}
      for r in (0, 0.1, 0.15, 0.2, 0.3) for d in (0, 0.1, 0.15, 0.2, 0.3)),
    *({"repeat_after": t} for t in (0.6, 0.9, 1.2))]}


class RecordingDecoder(SpellingDecoder):
    """A decoder that keeps what it was fed, for the other rules to replay."""

    def reset(self):
        super().reset()
        self.fed = []

    def update(self, time, probabilities, hand=None):
        self.fed.append((time, np.array(probabilities), hand))
        return super().update(time, probabilities, hand)


def replay(class_names, settings, fed):
    """The text a decoder with `settings` spells from the recorded frames."""
    decoder = SpellingDecoder(class_names, settings)
    for time, probabilities, hand in fed:
        decoder.update(time, probabilities, hand)
    return decoder.text.strip()


def doubles(reference, spelled):
    """`(double letters of the reference, of them spelled as two equal letters, false doubles)` by the characters'
    alignment (rapidfuzz's Levenshtein opcodes)."""
    from rapidfuzz.distance import Levenshtein

    source = {}  # spelled position -> reference position, for letters aligned one to one
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(reference, spelled):
        if tag in ("equal", "replace"):
            source.update(zip(range(j1, j2), range(i1, i2)))
    wanted = {i for i in range(len(reference) - 1) if reference[i] == reference[i + 1] != " "}
    made, false = 0, 0
    for j in range(len(spelled) - 1):
        if spelled[j] != spelled[j + 1] or spelled[j] == " ":
            continue
        i = source.get(j)
        if i in wanted and source.get(j + 1) == i + 1:
            made += 1
        else:
            false += 1
    return len(wanted), made, false


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--split", default="val")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--double", default="slide", choices=["slide", "pause"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    classifier = load_classifier(args.run)
    paths, labels, orientations, class_names, description = clip_photos(args.run, args.split)
    # the decoder's defaults without its double-letter rules, which each rule then sets
    base = DecoderSettings(word_gap=default_word_gap(classifier.class_names),
                           unsure_below=classifier.unsure_below or 0.0, repeat_move=None, release=0.0)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for text in TEXTS:
            for seed in map(int, args.seeds.split(",")):
                out = Path(scratch) / f"{text.replace(' ', '_')}-{seed}"
                summary = build_clip(text, paths, labels, orientations, class_names, out, seed=seed,
                                     photos=description, double=args.double)
                recorder = RecordingDecoder(classifier.class_names, base)
                transcribe(classifier, open_source(out / "frames", fps=summary["fps"]), recorder)
                row = {"text": text, "seed": seed, "rules": {}}
                for name, values in RULES.items():
                    spelled = replay(classifier.class_names, dataclasses.replace(base, **values), recorder.fed)
                    wanted, made, false = doubles(text, spelled)
                    row["rules"][name] = {"spelled": spelled, "cer": character_error_rate(text, spelled)["cer"],
                                          "doubles": wanted, "doubled": made, "false_doubles": false}
                rows.append(row)
                print(json.dumps({"text": text, "seed": seed, **{k: v["spelled"] for k, v in row["rules"].items()}}),
                      flush=True)
    letters = sum(len(row["text"].replace(" ", "")) for row in rows)
    print(f"\n{args.run}, {args.split} split, --double {args.double}, seeds {args.seeds}: {len(rows)} clips, "
          f"{sum(row['rules']['none']['doubles'] for row in rows)} double letters, {letters} letters\n")
    print("| rule | doubled-letter rate | false doubles per 100 letters | CER |\n| --- | ---: | ---: | ---: |")
    summary = {}
    for name in RULES:
        results = [row["rules"][name] for row in rows]
        rate = sum(r["doubled"] for r in results) / max(sum(r["doubles"] for r in results), 1)
        false = 100 * sum(r["false_doubles"] for r in results) / letters
        cer = float(np.mean([r["cer"] for r in results]))
        summary[name] = {"doubled_rate": rate, "false_doubles_per_100": false, "cer": cer}
        print(f"| {name} | {rate:.3f} | {false:.2f} | {cer:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"run": args.run, "split": args.split, "double": args.double,
                                         "seeds": args.seeds, "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
