"""Frames per second of `keras-sign transcribe`, end to end, for each model given, in one run.

    python benchmarks/transcribe_speed.py CLIP.mp4 runs/massey exports/massey-tflite-none [--repeat 5] [--json out.json]

For every model: (1) a video file, read and classified in batches of 32 as `transcribe FILE` does
(decode, crop, resize, model, decoder: frames per second, best of --repeat passes); (2) a camera:
the same frames handed over one at a time, already decoded, as a camera delivers them, each
classified at once (`transcribe --camera`): the latency per frame (median and 95th percentile),
and whether that keeps up with a 30 frames/s camera (95th percentile under 33 ms).
"""

import argparse
import json
import sys
import time

import numpy as np

CAMERA_FPS = 30


def file_speed(classifier, clip, repeat):
    from keras_sign.spelling.decoder import SpellingDecoder
    from keras_sign.spelling.transcribe import transcribe
    from keras_sign.spelling.video import open_source

    best = None
    for _ in range(repeat):
        transcript, _ = transcribe(classifier, open_source(clip), SpellingDecoder(classifier.class_names))
        best = max(best or 0.0, transcript.frames_per_second)
    return best, transcript.frames


def camera_latency(classifier, clip):
    from keras_sign.spelling.decoder import SpellingDecoder
    from keras_sign.spelling.transcribe import transcribe
    from keras_sign.spelling.video import FrameSource, open_source

    frames = list(open_source(clip).frames)
    stamps = []

    def on_frame(seconds, top, state, events):
        stamps.append(time.perf_counter())

    source = FrameSource("frames in memory, one by one", CAMERA_FPS, iter(frames), live=True)
    start = time.perf_counter()
    transcribe(classifier, source, SpellingDecoder(classifier.class_names), on_frame=on_frame)
    # The first stamp includes the warm-up inside transcribe; the gaps between stamps are per-frame costs.
    gaps = np.diff(np.asarray([start] + stamps))[1:] * 1000
    return float(np.median(gaps)), float(np.percentile(gaps, 95))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()

    from keras_sign.backend import select_backend

    select_backend("auto")
    import os

    from keras_sign.inference.classifier import load_classifier

    rows = []
    for model in args.models:
        classifier = load_classifier(model)
        fps, frames = file_speed(classifier, args.clip, args.repeat)
        median, p95 = camera_latency(classifier, args.clip)
        rows.append({"model": model, "runtime": classifier.runtime, "input": classifier.image_size, "frames": frames,
                     "file_frames_per_second": fps, "camera_ms_median": median, "camera_ms_p95": p95,
                     "keeps_up_with_30_fps": p95 < 1000 / CAMERA_FPS})
    print(f"{args.clip}, {os.cpu_count()} CPU cores")
    print("| model | runtime | input | file: frames/s | camera: ms/frame median | p95 | keeps up with 30 fps |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['model']} | {row['runtime']} | {row['input']} | {row['file_frames_per_second']:.0f} | "
              f"{row['camera_ms_median']:.2f} | {row['camera_ms_p95']:.2f} | "
              f"{'yes' if row['keeps_up_with_30_fps'] else 'no'} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    sys.exit(main())
