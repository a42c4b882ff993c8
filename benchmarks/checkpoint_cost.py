"""What checkpoints cost each architecture: the default job's checkpoint writes against its training time.

    python benchmarks/checkpoint_cost.py --archs mobilenetv3,resnet18,shufflenetv2 [--image-size 64] [--epochs 30]

For each architecture (a fresh process): the model compiled as `keras-sign train` compiles it
trains one epoch (to trace) on seeded random pixels the size of the embedded sample (320 training
and 40 validation images, 10 classes), then a second, timed epoch. keras-sign's own `Checkpointer`
(spacing policy, epoch and best files, real writes into a temporary run folder) then sees `--epochs`
epochs of that length, with the validation accuracy of the default job (docs/training.md), epoch by epoch,
and every write it makes is timed. The table gives the epoch time, the checkpoints written, the
seconds they took and their share of the training time; the seconds `best.keras` takes when
training ends (an inference model like `model.keras`, once per run); and, side by side, what one
checkpoint of the model costs as keras-sign writes it (the variables' values as `.npz`) and as a
`.keras` file with the optimizer (Keras' `model.save`, what keras-sign wrote before), each the best
of three.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_speed import report, worker_records  # noqa: E402

TRAIN_IMAGES, VAL_IMAGES, CLASSES = 320, 40, 10  # the embedded sample's

# The default job's validation accuracy per epoch (`keras-sign train`, seed 42, docs/training.md): when
# the best epoch moves, the Checkpointer keeps its values and writes best.npz as well.
VAL_ACCURACY = [0.1, 0.1, 0.1, 0.1, 0.15, 0.375, 0.525, 0.55, 0.6, 0.625, 0.575, 0.625, 0.725, 0.75, 0.75,
                0.75, 0.825, 0.75, 0.825, 0.85, 0.9, 0.9, 0.9, 0.875, 0.975, 0.85, 0.825, 0.925, 0.975, 0.9]


def measure(arch, image_size, epochs):
    import keras
    import numpy as np

    from keras_sign.config import TrainConfig
    from keras_sign.models import build_model
    from keras_sign.models.saving import save_model
    from keras_sign.runs.folder import RunFolder
    from keras_sign.training.checkpoints import (
        Checkpointer,
        checkpoint_values,
        fresh_state,
        write_best_model,
        write_values,
    )
    from keras_sign.training.fit import compile_model, create_step_variables
    from keras_sign.training.fused_batch_norm import fuse_batch_norms

    config = TrainConfig(arch=arch, image_size=image_size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (TRAIN_IMAGES + VAL_IMAGES, image_size, image_size, 3)).astype("float32")
    labels = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, len(images))]
    train, val = (images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES]), (images[TRAIN_IMAGES:], labels[TRAIN_IMAGES:])
    model = build_model(arch, CLASSES, image_size)
    fuse_batch_norms(model)
    compile_model(model, config, config.lr, epochs * TRAIN_IMAGES // config.batch_size)
    create_step_variables(model)
    model.fit(*train, batch_size=config.batch_size, validation_data=val, verbose=0)  # traces
    started = time.perf_counter()
    model.fit(*train, batch_size=config.batch_size, validation_data=val, verbose=0)
    epoch_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        run = RunFolder(folder)
        checkpoints = Checkpointer(run, fresh_state())
        writes, write_seconds = 0, 0.0
        for epoch in range(epochs):
            accuracy = VAL_ACCURACY[epoch % len(VAL_ACCURACY)]
            before = checkpoints.state.get("model")
            started = time.perf_counter()
            checkpoints.after_epoch(model, {"val_accuracy": accuracy}, epoch_seconds, last=epoch + 1 == epochs)
            spent = time.perf_counter() - started
            if checkpoints.state.get("model") != before:  # a checkpoint was written
                writes += 1
            write_seconds += spent  # the in-memory copy of a new best epoch counts too
        save_model(model, run.file("model.keras"), optimizer=False)  # model.keras: written by every run, checkpoints or not
        started = time.perf_counter()
        write_best_model(run, checkpoints.state, model)
        best_model_seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(folder, "checkpoint").glob("*.npz"))
        one_write = {"npz": lambda: write_values(run, "one.npz", checkpoint_values(model)),
                     "keras": lambda: save_model(model, run.file("one.keras"))}
        single = {name: min(_timed(write) for _ in range(3)) for name, write in one_write.items()}
    keras.backend.clear_session()
    return {"arch": arch, "epoch_s": epoch_seconds, "epochs": epochs, "writes": writes, "write_s": write_seconds,
            "best_model_s": best_model_seconds, "share": write_seconds / (epochs * epoch_seconds),
            "checkpoint_mb": size / 1e6, "one_npz_s": single["npz"], "one_keras_s": single["keras"]}


def _timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="mobilenetv3,resnet18,shufflenetv2", type=lambda s: s.split(","))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return report(measure(args.worker, args.image_size, args.epochs))
    print("| arch | epoch (s) | checkpoints written | writing (s) | share of training | epoch + best files (MB) "
          "| best.keras at the end (s) | one checkpoint as .npz (s) | as .keras (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch in args.archs:
        found, code = worker_records(sys.executable, __file__, arch,
                                     ["--image-size", str(args.image_size), "--epochs", str(args.epochs)])
        if not found:
            print(f"| {arch} | failed (exit code {code}) | | | | | | | |")
            continue
        r = found[0]
        print(f"| {r['arch']} | {r['epoch_s']:.2f} | {r['writes']} of {r['epochs']} | {r['write_s']:.2f} | "
              f"{100 * r['share']:.1f}% | {r['checkpoint_mb']:.0f} | {r['best_model_s']:.2f} | {r['one_npz_s']:.3f} | "
              f"{r['one_keras_s']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
