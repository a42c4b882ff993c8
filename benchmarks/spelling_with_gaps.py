"""Character error rate of `transcribe` on clips whose pauses show an empty room, for several models in one run:
what the hand stage's "no hand, no letter" gate is worth.

    python benchmarks/spelling_with_gaps.py --text "HELLO WORLD" --empty ROOM.jpg --seeds 1,2,3 \
        --photos-of RUN MODEL [MODEL ...] [--json out.json]

The clips are built with `keras-sign data clip --run RUN --split test --empty ROOM.jpg --seed S` (the photos of
RUN's test split: with a crossval fold, a signer no model saw), the same clips for every model, and spelled with
`keras-sign transcribe` and the decoder's defaults. A model trained with `--hands crop` sees no hand in the empty
room and types nothing there; one that reads whole frames reads the room as some sign.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def keras_sign(*args):
    result = subprocess.run([sys.executable, "-m", "keras_sign.cli", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"keras-sign {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--photos-of", required=True, help="the run folder whose test photos make the clips")
    parser.add_argument("--text", default="HELLO WORLD")
    parser.add_argument("--empty", required=True, help="a photo of an empty room or backdrop for the pauses")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {model: [] for model in args.models}
    with tempfile.TemporaryDirectory() as folder:
        for seed in (int(s) for s in args.seeds.split(",")):
            clip = Path(folder) / f"clip-{seed}"
            keras_sign("data", "clip", "--text", args.text, "--run", args.photos_of, "--split", "test", "--out", clip,
                       "--empty", args.empty, "--seed", seed)
            for model in args.models:
                out = keras_sign("transcribe", model, clip / "frames", "--fps", "15", "--reference", args.text).stdout
                spelled = out.splitlines()[0]
                cer = float(next(line for line in out.splitlines() if line.startswith("CER ")).split()[1])
                results[model].append({"seed": seed, "spelled": spelled, "cer": cer})
                print(f"seed {seed} {model}: {spelled!r} CER {cer:.3f}", flush=True)
    summary = {model: {"mean_cer": round(float(np.mean([r["cer"] for r in rows])), 3), "clips": rows}
               for model, rows in results.items()}
    for model, figures in summary.items():
        print(f"{model}: mean CER {figures['mean_cer']:.3f} over {len(figures['clips'])} clips")
    if args.json:
        args.json.write_text(json.dumps({"text": args.text, "empty": args.empty, "photos_of": args.photos_of,
                                         "models": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
