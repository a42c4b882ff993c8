"""Milliseconds per video frame of the hand stage, beside the same classifier on the whole frame, in one run.

    python benchmarks/hand_stage_speed.py MODEL CLIP [--json out.json]

MODEL is a run folder or bundle trained with `--hands crop`; CLIP a video or a folder of frames showing a
hand. For the full and the lite hand models, one frame at a time as a camera delivers them:

- tracked: the landmark model in the region the last frame's landmarks give, the crop, the classifier (a
  frame where the hand was lost runs palm detection too: counted, and in the figures);
- detection: palm detection, then the landmarks (what a lost hand costs);
- whole frame: the classifier alone on the frame resized (the baseline, no hand stage).

Medians and 90th percentiles after 5 warm-up frames; then `transcribe` of the clip from a file (frames per
second and the stage's share), as the command prints it.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WARMUP = 5


def timed(function, items):
    seconds = []
    for index, item in enumerate(items):
        started = time.perf_counter()
        function(item)
        if index >= WARMUP:
            seconds.append(time.perf_counter() - started)
    return {"median_ms": round(1000 * float(np.median(seconds)), 2),
            "p90_ms": round(1000 * float(np.percentile(seconds, 90)), 2), "frames": len(seconds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("clip")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from keras_sign.backend import select_backend

    select_backend("auto")
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.inference.hand_crops import HandCrops
    from keras_sign.spelling.decoder import SpellingDecoder
    from keras_sign.spelling.transcribe import prepare_frames, transcribe
    from keras_sign.spelling.video import open_source

    classifier = load_classifier(args.model)
    if classifier.hand_stage is None:
        raise SystemExit(f"{args.model} has no hand stage: train it with --hands crop")
    frames = [frame for _, frame in open_source(args.clip).frames]
    size = classifier.image_size
    results = {"frames": len(frames), "frame_size": list(frames[0].shape[:2]), "model": str(args.model),
               "runtime": classifier.runtime}
    whole = timed(lambda frame: classifier.predict(prepare_frames([frame], [(0, 0, frame.shape[1], frame.shape[0])],
                                                                  size, False)), frames)
    results["whole frame (classifier only)"] = whole
    for models in ("full", "lite"):
        stage = HandCrops({**classifier.record.preprocessing.hands, "models": models}, size)
        detector = stage.detector
        detected = []

        def tracked(frame):
            hands = detector.track(frame)
            if hands:
                detected.append(hands[0].palm_score is not None)
                classifier.predict(stage.crop(frame, hands[0])[None])

        detector.reset()
        results[f"{models}: tracked + crop + classifier"] = {**timed(tracked, frames),
                                                             "frames_that_detected": int(sum(detected))}
        results[f"{models}: detection + landmarks"] = timed(detector.find, frames)
    started = time.perf_counter()
    transcript, _ = transcribe(classifier, open_source(args.clip), SpellingDecoder(classifier.class_names))
    results["transcribe from a file"] = {"frames_per_second": round(transcript.frames_per_second, 1),
                                         "hand_stage_share": round(transcript.hand_seconds / transcript.wall_seconds, 3),
                                         "wall_seconds": round(time.perf_counter() - started, 2)}
    for name, figures in results.items():
        print(f"{name}: {figures}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
