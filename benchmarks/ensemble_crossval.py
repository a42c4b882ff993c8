"""Ensembles of cross-validated recipes: each fold's held-out images scored by every recipe's model for that
fold, and by the mean of their class probabilities.

    python benchmarks/ensemble_crossval.py crossval/massey-cosine crossval/massey-resnet18 [...]

Each argument is a `keras-sign crossval --out` folder; all must hold the same folds (the same held-out
images, checked). Prints a Markdown table of per-fold top-1 for each recipe and for the ensemble, with
the mean +- std over the folds as `crossval` reports it.
"""

import argparse
import sys
from pathlib import Path

import numpy as np


def fold_scores(run_path):
    """`(test image paths, true classes, class probabilities)` of one fold's run on its held-out images."""
    from keras_sign.data.pipeline import make_dataset
    from keras_sign.evaluation import predict
    from keras_sign.runs import RunFolder

    run = RunFolder.open(run_path)
    info, files = run.read_json("run.json"), run.split_files("test")
    dataset = make_dataset(files.paths, files.labels, len(run.read_json("classes.json")), info["image_size"], 64,
                           info.get("center_crop", False), files.orientations)
    labels, outputs = predict(run.load_model(), dataset)
    return [str(path) for path in files.paths], labels, outputs[-1]


def main():
    from keras_sign.tables import markdown_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("crossvals", nargs="+", type=Path)
    args = parser.parse_args()
    folds = sorted(path.name for path in args.crossvals[0].iterdir() if (path / "run.json").is_file())
    names = [path.name for path in args.crossvals] + ["ensemble (mean probabilities)"]
    accuracy = {name: [] for name in names}
    for fold in folds:
        scored = [fold_scores(crossval / fold) for crossval in args.crossvals]
        paths, labels, _ = scored[0]
        if any(other_paths != paths for other_paths, _, _ in scored[1:]):
            sys.exit(f"The {fold} folds hold different test images: ensemble crossvals of one data folder and split.")
        for name, (_, _, probabilities) in zip(names, scored):
            accuracy[name].append(float(np.mean(probabilities.argmax(-1) == labels)))
        ensemble = np.mean([probabilities for _, _, probabilities in scored], axis=0)
        accuracy[names[-1]].append(float(np.mean(ensemble.argmax(-1) == labels)))
        print(fold, {name: round(values[-1], 3) for name, values in accuracy.items()}, file=sys.stderr, flush=True)
    rows = [[name, *(f"{value:.3f}" for value in values), f"{np.mean(values):.3f} +- {np.std(values, ddof=1):.3f}"]
            for name, values in accuracy.items()]
    print(markdown_table(["recipe", *folds, "mean +- std"], rows, align="l" + "r" * (len(folds) + 1)))


if __name__ == "__main__":
    main()
