"""How often the hand stage finds a hand: per shared dataset and class, at the first try and with the retry on
the photo padded by a black border, with the time per photo.

    python benchmarks/hands_found.py ../shared/data --out benchmarks/results/hands-found [--models full]

A dataset is a folder of class folders (or signer folders of class folders, as Massey's). Every photo is
read upright, as training reads it; the first try is `HandDetector(retry_border=0)`, and a photo it finds
nothing in is tried again as the stage does by default (a black border of a quarter of its long side).
Writes OUT.json (counts per dataset and class) and OUT.md (the tables).
"""

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keras_sign.data.scan import scan_folder  # noqa: E402
from keras_sign.hands.detector import HandDetector  # noqa: E402
from keras_sign.hands.images import read_upright  # noqa: E402
from keras_sign.tables import markdown_table  # noqa: E402

DATASETS = ("massey_asl_hands", "sign_language_digits", "asl_alphabet_subset", "asl_hg_letters")


def measure(root, models):
    first_try, with_retry = HandDetector(models, retry_border=0), HandDetector(models)
    table = scan_folder(root)
    counts = collections.defaultdict(lambda: [0, 0, 0])  # class -> photos, found at first, found with the retry
    seconds = []
    for record in table.records:
        image, _ = read_upright(table.root / record.path)
        started = time.perf_counter()
        found = bool(first_try.find(image))
        retried = found or bool(with_retry.find(image))
        seconds.append(time.perf_counter() - started)
        counts[record.label][0] += 1
        counts[record.label][1] += found
        counts[record.label][2] += retried
    totals = np.sum(list(counts.values()), axis=0).tolist()
    return {"photos": totals[0], "first_try": totals[1], "with_retry": totals[2],
            "median_ms": round(1000 * float(np.median(seconds)), 1), "per_class": dict(counts)}


def markdown(results, models):
    rows = [[name, r["photos"], f"{r['first_try']} ({r['first_try'] / r['photos']:.1%})",
             f"{r['with_retry']} ({r['with_retry'] / r['photos']:.1%})", r["median_ms"]] for name, r in results.items()]
    text = f"Hands found, {models} models\n\n" + markdown_table(
        ["dataset", "photos", "first try", "with the retry", "median ms per photo"], rows, "lrrrr") + "\n"
    for name, result in results.items():
        worst = sorted(result["per_class"].items(), key=lambda item: item[1][2] / item[1][0])[:6]
        text += f"\n{name}, the classes with the fewest hands found (photos, first try, with the retry): " + ", ".join(
            f"{label} {n}/{a}/{b}" for label, (n, a, b) in worst) + "\n"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the folder holding the shared datasets")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    parser.add_argument("--models", choices=("full", "lite"), default="full")
    parser.add_argument("--datasets", nargs="*", default=DATASETS)
    args = parser.parse_args()
    results = {name: measure(args.data / name, args.models) for name in args.datasets if (args.data / name).is_dir()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"models": args.models, "datasets": results}, indent=1))
    text = markdown(results, args.models)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
