"""Choose the spelling decoder's settings on clips: the CER of every setting of a grid, best first.

    python benchmarks/tune_decoder.py exports/massey-tflite-none clips/val-* --word-gap 0,0.5 --out tuning.json

Each CLIP is a folder written by `keras-sign data clip` (frames/, reference.txt, clip.json). The
model classifies every frame once, exactly as `keras-sign transcribe` does; the decoder then replays
those probabilities under each setting. Tune on clips made from a validation split; report the
chosen setting on clips of the test split, which the tuning never saw.
"""

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

GRID = {
    "hold": (0.2, 0.3, 0.4),
    "min_confidence": (0.5, 0.6, 0.7, 0.8),
    "min_margin": (0.1, 0.2, 0.3),
    "smoothing": (0.0, 0.1, 0.2),
}


def clip_probabilities(classifier, clip):
    """`(times, probabilities, reference)` of one clip's frames."""
    from keras_sign.spelling.transcribe import prepare_frames
    from keras_sign.spelling.video import open_source

    info = json.loads((clip / "clip.json").read_text())
    source = open_source(clip / "frames", fps=info["fps"])
    times, frames = zip(*source.frames)
    boxes = [(0, 0, frame.shape[1], frame.shape[0]) for frame in frames]
    inputs = prepare_frames(frames, boxes, classifier.image_size, classifier.center_crop)
    return np.asarray(times), classifier.predict(inputs), info["text"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--word-gap", default="0", help="comma-separated word gaps in seconds; 0 means none")
    parser.add_argument("--unsure-below", default="0,run",
                        help="comma-separated frame thresholds; 'run' is the model's reject threshold (calibration.json)")
    parser.add_argument("--out", type=Path, help="write every setting's CER as JSON")
    args = parser.parse_args()

    from keras_sign.backend import select_backend

    select_backend("auto")
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder
    from keras_sign.spelling.transcribe import character_error_rate

    classifier = load_classifier(args.model)
    streams = [clip_probabilities(classifier, clip) for clip in args.clips]
    gaps = [float(g) or None for g in args.word_gap.split(",")]
    run_threshold = classifier.unsure_below or 0.0
    floors = sorted({run_threshold if f == "run" else float(f) for f in args.unsure_below.split(",")})
    results = []
    for values in itertools.product(*GRID.values(), gaps, floors):
        settings = DecoderSettings(**dict(zip([*GRID, "word_gap", "unsure_below"], values)))
        errors = []
        for times, probabilities, reference in streams:
            decoder = SpellingDecoder(classifier.class_names, settings)
            for time, row in zip(times, probabilities):
                decoder.update(time, row)
            errors.append(character_error_rate(reference, decoder.text)["cer"])
        results.append({"settings": settings.__dict__, "mean_cer": float(np.mean(errors)), "cer": errors})
    results.sort(key=lambda r: r["mean_cer"])
    default = DecoderSettings()
    print(f"{len(results)} settings on {len(streams)} clips ({', '.join(c.name for c in args.clips)}); best first; "
          f"the run's reject threshold: {run_threshold:.3f}")
    print("| hold | min confidence | min margin | smoothing | word gap | unsure below | mean CER |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results[:10] + [r for r in results if {**r["settings"], "word_gap": None, "unsure_below": 0} == {
            **default.__dict__, "word_gap": None, "unsure_below": 0}]:
        s = result["settings"]
        print(f"| {s['hold']} | {s['min_confidence']} | {s['min_margin']} | {s['smoothing']} | "
              f"{s['word_gap'] or '-'} | {s['unsure_below']:.3f} | {result['mean_cer']:.3f} |")
    print("(the last rows: the current defaults, with each threshold)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
