"""Is ShuffleNetV2's channel split and shuffle what makes it slow under TensorFlow on a CPU?

    python benchmarks/shufflenet_shuffle.py --size 64 --batch-size 32

Times the training step of ShuffleNetV2 x1.0 (TensorFlow, Adam, 36 classes, one batch of
seeded random pixels) as keras-sign builds it, and with the split and shuffle written other ways,
each variant in a fresh process, side by side: median images/s of `--steps` steps after
`--warmup`. The variants are swapped in for the builder's `channel_halves` / `channel_shuffle`:

    as-built    split: one `keras.ops.split`; shuffle: Reshape + Permute + Reshape
    crop3d      split as Reshape + Cropping3D + Reshape per half (as built before the split op)
    slice       split by slicing the channels (keras-sign's older ChannelHalf layer)
    crop2d      split as Reshape to (h * w, 2, C / 2) + Cropping2D + Reshape (4-D instead of 5-D)
    no-shuffle  no shuffle at all: other numbers, an upper bound on what the shuffle costs
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("as-built", "crop3d", "slice", "crop2d", "no-shuffle")


def _crop3d_half(x, half):
    from keras import layers

    height, width, channels = x.shape[1:]
    x = layers.Reshape((height, width, 2, channels // 2))(x)
    x = layers.Cropping3D(((0, 0), (0, 0), (half, 1 - half)))(x)
    return layers.Reshape((height, width, channels // 2))(x)


def _crop2d_half(x, half):
    from keras import layers

    height, width, channels = x.shape[1:]
    x = layers.Reshape((height * width, 2, channels // 2))(x)
    x = layers.Cropping2D(((0, 0), (half, 1 - half)))(x)
    return layers.Reshape((height, width, channels // 2))(x)


def measure(variant, size, batch_size, warmup, steps):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import numpy as np

    from keras_sign.models import shufflenetv2

    halves = {"crop3d": _crop3d_half, "crop2d": _crop2d_half,
              "slice": lambda x, half: shufflenetv2.ChannelHalf(half)(x)}.get(variant)
    if halves:
        shufflenetv2.channel_halves = lambda x: (halves(x, 0), halves(x, 1))
    elif variant == "no-shuffle":
        shufflenetv2.channel_shuffle = lambda x, groups, name: x
    from keras_sign.models.registry import build_model

    model = build_model("shufflenetv2_x1_0", 36, size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(batch_size) % 36, 36)
    for _ in range(warmup):
        model.train_on_batch(images, labels)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        times.append(time.perf_counter() - started)
    return batch_size / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args()
    if args.variant:
        print(measure(args.variant, args.size, args.batch_size, args.warmup, args.steps))
        return
    print("| variant | images/s | ratio |\n| --- | ---: | ---: |")
    baseline = None
    for variant in VARIANTS:
        output = subprocess.run([sys.executable, __file__, "--variant", variant, "--size", str(args.size),
                                 "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
                                 "--steps", str(args.steps)], capture_output=True, text=True, check=True).stdout
        speed = float(output.split()[-1])
        baseline = baseline or speed
        print(f"| {variant} | {speed:.0f} | {speed / baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
