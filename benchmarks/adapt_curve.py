"""How much `keras-sign adapt` gains with k shots per sign of a new signer, on leave-one-signer-out folds.

    python benchmarks/adapt_curve.py crossval/massey-landmarks --shots 1,3,5,10 --seeds 1,2,3 --json out.json

For each fold of a `crossval` folder (its held-out signer is the new user), each k and each seed: k photos of each
class are drawn from the fold's test split (seeded), the fold's model is adapted on them (`keras_sign.training.adapt`,
its defaults unless flags say otherwise), and the parent and the adapted model are scored on the same photos: the
rest of the held-out signer's (a photo without a hand counts as wrong), and the training signers' validation photos
(neither model trained on them: what adapting costs the signers the model knew). A fold whose signer has fewer than
k + 1 photos of a class is left out at that k. Prints a table, and with --json writes every figure.

    python benchmarks/adapt_curve.py --figure docs/images/adapt-curve.png landmarks.json crop.json fusion.json

draws the accuracy on the new signer against k, one line per fold, a panel per model, from such files.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_sign.inference.classifier import load_classifier  # noqa: E402
from keras_sign.inference.hand_crops import photo_inputs, run_hands  # noqa: E402
from keras_sign.runs.folder import RunFolder  # noqa: E402
from keras_sign.runs.record import RunInfo, read_classes  # noqa: E402
from keras_sign.training.adapt import AdaptSettings, adapt  # noqa: E402


def accuracy(run_path, photos_of, split):
    """Top-1 accuracy of the model of `run_path` on the `split` photos of run folder `photos_of` (whose hands and
    crops are the ones both models' hand stage finds); a photo without a hand counts as wrong."""
    classifier = load_classifier(run_path)
    run, info = RunFolder(photos_of), RunInfo.read(photos_of)
    files = run.split_files(split)
    seen = [i for i, crop in enumerate(files.crops or [()] * len(files.paths)) if crop is not None]
    hands = run_hands(run.path, [files.paths[i] for i in seen], info.data_root) if info.preprocessing.reads_landmarks \
        else None
    inputs = photo_inputs([files.paths[i] for i in seen], info.preprocessing,
                          None if files.orientations is None else [files.orientations[i] for i in seen],
                          None if files.crops is None else [files.crops[i] for i in seen], hands)
    predicted = classifier.predict(inputs).argmax(-1)
    return float(np.sum(predicted == np.asarray(files.labels)[seen]) / max(len(files.paths), 1))


def draw_shots(fold, k, seed, folder):
    """Copy k photos of each class of the fold's test split (seeded) into `folder`/CLASS; None if a class has fewer
    than k + 1 (nothing would be left to test on)."""
    files = RunFolder(fold).split_files("test")
    names = read_classes(fold)
    rng = np.random.default_rng(seed)
    by_class = {}
    for path, label in zip(files.paths, files.labels):
        by_class.setdefault(label, []).append(path)
    if min(len(paths) for paths in by_class.values()) < k + 1:
        return None
    for label, paths in by_class.items():
        (folder / names[label]).mkdir(parents=True)
        for path in rng.choice(sorted(paths), k, replace=False):
            shutil.copy(path, folder / names[label] / Path(path).name)
    return folder


def figure(path, results):
    """Accuracy on the new signer against k (k = 0: before adapting), per fold, one panel per results file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4), sharey=True, squeeze=False)
    for axis, result in zip(axes[0], results):
        rows = json.loads(Path(result).read_text())["rows"]
        for fold in sorted({row["fold"] for row in rows}):
            ks = sorted({row["k"] for row in rows if row["fold"] == fold})
            before = np.mean([row["before"] for row in rows if row["fold"] == fold])
            after = [np.mean([row["after"] for row in rows if (row["fold"], row["k"]) == (fold, k)]) for k in ks]
            axis.plot([0, *ks], [before, *after], marker="o", label=fold.replace("signer-", ""))
        axis.set_title(Path(result).stem.replace("adapt-", ""))
        axis.set_xlabel("shots of each sign (k)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy on the new signer")
    axes[0][0].legend()
    panels.tight_layout()
    panels.savefig(path, dpi=110)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--figure":
        return figure(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("crossval", type=Path)
    parser.add_argument("--shots", default="1,3,5,10")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--layers", default=AdaptSettings.layers)
    parser.add_argument("--epochs", type=int, default=AdaptSettings.epochs)
    parser.add_argument("--lr", type=float, default=AdaptSettings.lr)
    parser.add_argument("--replay", type=int, default=AdaptSettings.replay)
    parser.add_argument("--folds", help="comma-separated fold folder names (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = AdaptSettings(args.layers, args.epochs, args.lr, args.replay)
    folds = sorted(p for p in args.crossval.iterdir() if (p / "model.keras").is_file())
    if args.folds:
        folds = [p for p in folds if p.name in args.folds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for fold in folds:
            for k in map(int, args.shots.split(",")):
                for seed in map(int, args.seeds.split(",")):
                    shots = draw_shots(fold, k, seed, Path(scratch) / f"{fold.name}-{k}-{seed}-shots")
                    if shots is None:
                        continue
                    out = Path(scratch) / f"{fold.name}-{k}-{seed}"
                    started = time.perf_counter()
                    adapt(fold, shots, out, AdaptSettings(**{**settings.__dict__, "seed": seed}), evaluate=False)
                    seconds = time.perf_counter() - started
                    row = {"fold": fold.name, "k": k, "seed": seed, "seconds": round(seconds, 1),
                           "before": accuracy(fold, out, "test"), "after": accuracy(out, out, "test"),
                           "val_before": accuracy(fold, out, "val"), "val_after": accuracy(out, out, "val")}
                    row["closed"] = (row["after"] - row["before"]) / max(1 - row["before"], 1e-9)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    shutil.rmtree(out)
    print("\n| fold | k | new signer before | after | share of the error closed | training signers' val before "
          "| after | seconds |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted({(row["fold"], row["k"]) for row in rows}):
        group = [row for row in rows if (row["fold"], row["k"]) == key]
        mean = {name: np.mean([row[name] for row in group]) for name in group[0] if name not in ("fold", "k", "seed")}
        print(f"| {key[0]} | {key[1]} | {mean['before']:.3f} | {mean['after']:.3f} | {mean['closed']:.2f} | "
              f"{mean['val_before']:.3f} | {mean['val_after']:.3f} | {mean['seconds']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.__dict__, "crossval": str(args.crossval),
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
