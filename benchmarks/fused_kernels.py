"""The default job with and without keras-sign's fused kernels, seed by seed, in one sitting.

    python benchmarks/fused_kernels.py --variants keras-adam,fused --seeds 42,1,2,3 [-- extra train options]

Variants, each `keras-sign train --out DIR --seed S` in a fresh process:
- `fused`: keras-sign as it is (FusedAdam, and batch norm through TensorFlow's fused kernel);
- `keras-bn`: Keras' own batch normalization (the fused routing swapped for a no-op);
- `keras-adam`: Keras' own batch normalization and Keras' Adam with the same arguments.
Prints a Markdown table of first-epoch seconds, wall seconds and test accuracy per run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("keras-adam", "keras-bn", "fused")

# Run in the child process: the CLI, with Keras' own kernels where the variant asks.
CHILD = """
import sys
import keras
import keras_sign.training.fit as training
from keras_sign.cli import cli

if sys.argv[1] in ("keras-bn", "keras-adam"):
    training.fuse_batch_norms = lambda model: None
if sys.argv[1] == "keras-adam":
    fused = training.make_optimizer
    training.make_optimizer = lambda config, rate: keras.optimizers.Adam(
        rate, weight_decay=fused(config, rate).weight_decay)
cli(sys.argv[2:], standalone_mode=True)
"""


def run(variant, seed, extra, folder):
    out = Path(folder) / f"{variant}-{seed}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, variant, "train", "--out", str(out), "--seed", str(seed), *extra],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    history = (out / "history.csv").read_text().splitlines()
    first_epoch = float(dict(zip(history[0].split(","), history[1].split(",")))["epoch_seconds"])
    accuracy = json.loads((out / "metrics.json").read_text())["accuracy"]
    return {"variant": variant, "seed": seed, "first_epoch_s": first_epoch, "wall_s": wall, "accuracy": accuracy}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,1,2,3", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--variants", default="keras-bn,fused", type=lambda s: s.split(","),
                        help=f"comma-separated, run in this order for each seed: {', '.join(VARIANTS)}")
    parser.add_argument("extra", nargs="*", help="more `keras-sign train` options (after --)")
    args = parser.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}.")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for variant in args.variants:
                rows.append(run(variant, seed, args.extra, folder))
                print(rows[-1], file=sys.stderr, flush=True)
    print("| variant | seed | first epoch (s) | wall (s) | test accuracy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['variant']} | {row['seed']} | {row['first_epoch_s']:.1f} | {row['wall_s']:.1f} | "
              f"{row['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
