"""The default job with Keras' Adam and with keras-sign's FusedAdam, seed by seed, in one sitting.

    python benchmarks/fused_adam.py --seeds 42,1,2,3 [-- extra train options]

Each run is `keras-sign train --out DIR --seed S` in a fresh process; for Keras' Adam the process
swaps `make_optimizer` for one that returns `keras.optimizers.Adam` with the same arguments. Prints
a Markdown table of first-epoch seconds, wall seconds and test accuracy per run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run in the child process: the CLI, with Keras' own Adam when asked.
CHILD = """
import sys
import keras
import keras_sign.training as training
from keras_sign.cli import cli

if sys.argv[1] == "keras":
    fused = training.make_optimizer
    training.make_optimizer = lambda config, rate: keras.optimizers.Adam(
        rate, weight_decay=fused(config, rate).weight_decay)
cli(sys.argv[2:], standalone_mode=True)
"""


def run(optimizer, seed, extra, folder):
    out = Path(folder) / f"{optimizer}-{seed}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, optimizer, "train", "--out", str(out), "--seed", str(seed), *extra],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    history = (out / "history.csv").read_text().splitlines()
    first_epoch = float(dict(zip(history[0].split(","), history[1].split(",")))["epoch_seconds"])
    accuracy = json.loads((out / "metrics.json").read_text())["accuracy"]
    return {"optimizer": optimizer, "seed": seed, "first_epoch_s": first_epoch, "wall_s": wall, "accuracy": accuracy}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,1,2,3", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("extra", nargs="*", help="more `keras-sign train` options (after --)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for optimizer in ("keras", "fused"):
                rows.append(run(optimizer, seed, args.extra, folder))
                print(rows[-1], file=sys.stderr, flush=True)
    print("| optimizer | seed | first epoch (s) | wall (s) | test accuracy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        name = "Keras' Adam" if row["optimizer"] == "keras" else "FusedAdam"
        print(f"| {name} | {row['seed']} | {row['first_epoch_s']:.1f} | {row['wall_s']:.1f} | {row['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
