"""The `keras-sign` command line. Each command is thin and calls one function.

    keras-sign train                       # MobileNetV3-Small on the embedded digits sample
    keras-sign train --data-dir ../shared/data/massey_asl_hands --split signer --epochs 1
    keras-sign evaluate runs/digits-mobilenetv3_small-20261125-120000
    keras-sign compare runs/digits-resnet18-20261125-120000 runs/digits-mobilenetv3_small-20261125-120000
    keras-sign data validate PATH
"""

import errno
import logging
import sys
from pathlib import Path

import click

from keras_sign import __version__
from keras_sign.backend import CHOICES as BACKEND_CHOICES
from keras_sign.backend import select_backend
from keras_sign.benchmark import RUNS, WARMUP
from keras_sign.converters import IO_TYPES, QUANTIZATIONS
from keras_sign.errors import KerasSignError
from keras_sign.export import DEFAULT_CALIBRATION_IMAGES, DEFAULT_OUT, FORMATS
from keras_sign.verification import DEFAULT_MIN_AGREEMENT


# What the machine, not the program, can get wrong while writing: said in one line, not a traceback.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class _Group(click.Group):
    """Turn a `KerasSignError`, or a full or read-only disk, into click's one-line `Error: ...` and exit
    status 1, without a traceback. Every write is atomic, so what was written before stays intact."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KerasSignError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            if error.errno not in WRITE_ERRNOS:
                raise
            where = f" ({error.filename})" if error.filename else ""
            raise click.ClickException(
                f"{error.strerror}{where}; free space or choose another folder, then run the command again "
                "(files written before are intact; `keras-sign train --resume RUN` continues a run)."
            ) from None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="keras-sign")
def cli():
    """Train, evaluate and ship sign-language image classifiers (Keras 3)."""
    logging.basicConfig(format="%(message)s", level=logging.INFO, stream=sys.stderr)
    logging.getLogger("keras_sign").setLevel(logging.INFO)


RESUMABLE = ("epochs", "patience", "backend")  # what may change when a run is resumed


def _backend_option(command):
    return click.option(
        "--backend",
        type=click.Choice(BACKEND_CHOICES),
        default=None,
        help="Keras backend; auto (default) picks JAX on GPU/TPU, TensorFlow on CPU. KERAS_BACKEND wins.",
    )(command)


@cli.command()
@click.option("--config", "config_path", type=click.Path(), help="YAML file of settings; flags override it.")
@click.option("--arch", help="Architecture name (default mobilenetv3_small).")
@click.option("--dataset", help="Named dataset: digits (embedded, default), numbers, alphabet, fingerspelling.")
@click.option("--data-dir", help="Your own folder: ROOT/CLASS/image or ROOT/SIGNER/CLASS/image.")
@click.option("--classes", help="Classes to use: 'all' or a comma-separated list (default: the dataset's own).")
@click.option("--split", type=click.Choice(["auto", "stratified", "signer"]), help="How to split train/val/test.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Adam learning rate.")
@click.option("--image-size", type=int, help="Side of the square model input in pixels (>= 32).")
@click.option("--center-crop/--no-center-crop", default=None,
              help="Resize the shorter side to size/0.875 and cut the centre (default: resize the whole image).")
@click.option("--seed", type=int)
@click.option("--augment/--no-augment", default=None, help="Training augmentation (on by default).")
@click.option("--weights", help="Starting weights: none (default), imagenet (torchvision's), imagenet-keras (keras.applications' "
              "MobileNetV3Small), or a .pth/.safetensors/.h5/.weights.h5 file.")
@click.option("--init-from", help="Start from the model of another run folder (same architecture).")
@click.option("--freeze-backbone", type=int, help="Train only the head for N epochs, then unfreeze everything.")
@click.option("--finetune-lr", type=float, help="Learning rate after unfreezing (default: --lr / 10).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw"]), help="adam (default, as the study) or adamw.")
@click.option("--weight-decay", type=float, help="Decoupled weight decay (default 0 for adam, 0.01 for adamw).")
@click.option("--label-smoothing", type=float, help="Label smoothing of the cross-entropy (default 0).")
@click.option("--schedule", type=click.Choice(["constant", "cosine", "step"]), help="Learning-rate schedule.")
@click.option("--warmup-epochs", type=int, help="Linear learning-rate warm-up before the schedule (default 0).")
@click.option("--patience", type=int, help="Stop after N epochs without a better validation accuracy.")
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="bfloat16 compute, float32 weights.")
@click.option("--deterministic/--no-deterministic", default=None, help="Deterministic kernels: same seed, same weights.")
@click.option("--devices", help="Data parallel over N devices or 'all' (JAX backend).")
@click.option("--limit-per-class", type=int, help="Use at most N images per class (and signer).")
@click.option("--smoke", is_flag=True, default=None, help="Shrink the job to a seconds-long check (1 epoch, 32 px, 10 images per class).")
@click.option("--out", help="Run folder to write (default runs/<dataset>-<arch>-<time>).")
@click.option("--resume", type=click.Path(), help="Continue an interrupted run folder from its last finished epoch.")
@click.option("--cache-dir", help="Where named datasets live (default $KERAS_SIGN_DATA or ~/.keras/datasets/keras_sign).")
@_backend_option
def train(config_path, resume, **flags):
    """Train a classifier and write a run folder (model, split, history, metrics, checkpoints)."""
    from keras_sign.config import load_config

    if resume:
        changed = sorted(name for name, value in flags.items() if value is not None and name not in RESUMABLE)
        if config_path or changed:
            raise KerasSignError(
                f"--resume continues {resume} with its own config; only --epochs, --patience and --backend may be given "
                f"(got {', '.join('--' + n.replace('_', '-') for n in changed) or '--config'})."
            )
        config_path = Path(resume) / "config.yaml"
        if not config_path.is_file():
            raise KerasSignError(f"{resume} has no config.yaml; pass a run folder written by `keras-sign train`.")
        flags["out"] = resume
    config = load_config(config_path, flags)
    backend, reason = select_backend(config.backend, config.deterministic)
    config.backend = backend
    from keras_sign.training import train as run_training

    click.echo(f"keras-sign {__version__}: backend {backend} ({reason})", err=True)
    run, metrics = run_training(config, backend, reason, resume=bool(resume))
    if metrics:
        macro = metrics["macro"]
        click.echo(
            f"test accuracy {metrics['accuracy']:.3f}, macro precision {macro['precision']:.3f}, "
            f"recall {macro['recall']:.3f}, F1 {macro['f1']:.3f} on {metrics['images']} images"
        )
    click.echo(f"run folder: {run.path}")


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--data-dir", help="Evaluate on this folder (class folders the model knows) instead of the test split.")
@click.option("--name", help="Suffix of the files a --data-dir evaluation writes (default: the folder's name).")
@click.option("--tsne-points", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Most images in the t-SNE map (a seeded random subsample beyond this).")
@_backend_option
def evaluate(run, data_dir, name, tsne_points, backend):
    """Evaluate a run's model on its saved test split (or --data-dir): reports, confusion matrix, t-SNE, curves."""
    select_backend(backend or "auto")
    from keras_sign.evaluation import evaluate_run

    metrics, report, written = evaluate_run(run, data_dir, tsne_points, name=name)
    click.echo(report)
    click.echo(f"accuracy {metrics['accuracy']:.3f} on {metrics['images']} images ({metrics['evaluated_on']})")
    for path in written:
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--image-size", type=int, default=224, show_default=True, help="Input side for the FLOPs count.")
@click.option("--num-classes", type=int, default=1000, show_default=True)
@_backend_option
def models(image_size, num_classes, backend):
    """List the architectures: parameters, multiply-adds, ImageNet weights."""
    select_backend(backend or "auto")
    from keras_sign.models.summary import models_table

    click.echo(models_table(image_size, num_classes))


@cli.group()
def data():
    """Named datasets: list, download, validate."""


@data.command("list")
@click.option("--cache-dir", help="Where named datasets live.")
def data_list(cache_dir):
    """Show the named datasets and whether each is installed."""
    from keras_sign.data.catalog import CATALOG, dataset_location

    for name, spec in CATALOG.items():
        try:
            where = f"ready at {dataset_location(name, cache_dir)}"
        except KerasSignError:
            where = f"not installed (keras-sign data download {name})"
        click.echo(f"{name:15} {spec.description}\n{'':15} {where}")


@data.command("download")
@click.argument("name")
@click.option("--archive", type=click.Path(), help="Install from a .zip/.tar.gz you downloaded instead of Kaggle.")
@click.option("--cache-dir", help="Where named datasets live.")
@click.option("--force", is_flag=True, help="Replace the dataset if it is already installed.")
def data_download(name, archive, cache_dir, force):
    """Fetch a named dataset (needs kagglehub and Kaggle credentials, or --archive)."""
    from keras_sign.data.download import download_dataset

    click.echo(f"{name} ready at {download_dataset(name, cache_dir, archive, force)}")


@data.command("validate")
@click.argument("path")
@click.option("--cache-dir", help="Where named datasets live (when PATH is a dataset name).")
def data_validate(path, cache_dir):
    """Report classes, signers, sizes, unreadable files and duplicates of a folder (or named dataset)."""
    from keras_sign.data.catalog import CATALOG, dataset_location
    from keras_sign.data.validate import validate_report

    pattern = "*"
    if not Path(path).exists() and path in CATALOG:
        pattern = CATALOG[path].file_pattern
        path = dataset_location(path, cache_dir)
    click.echo(validate_report(path, pattern)[1])


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN...")
@click.option("--out", help="Folder for the table and figures (default runs/compare-<time>; must be new or empty).")
@_backend_option
def compare(runs, out, backend):
    """Compare run folders: parameters, GMACs, test figures, speed; validation curves and t-SNE maps side by side."""
    select_backend(backend or "auto")
    from keras_sign.compare import compare_runs

    table, written = compare_runs(runs, out)
    click.echo(table)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("configs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False), metavar="CONFIG...")
@click.option("--out", default="runs/reproduce", show_default=True, help="Folder of the runs (one per config) and the comparison.")
@click.option("--smoke", is_flag=True, help="Shrink every config to a seconds-long check.")
@_backend_option
def reproduce(configs, out, smoke, backend):
    """Train a set of configs (e.g. configs/paper/*.yaml), resuming any interrupted run, then compare them."""
    backend, reason = select_backend(backend or "auto")
    from keras_sign.reproduce import reproduce as reproduce_runs

    click.echo(f"keras-sign {__version__}: backend {backend} ({reason})", err=True)
    table, written = reproduce_runs(configs, out, backend, reason, smoke)
    click.echo(table)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--format", "export_format", type=click.Choice(FORMATS), default="tflite", show_default=True,
              help="tflite (LiteRT, for Android), onnx, or a TensorFlow SavedModel.")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
              help="TFLite only: float16 weights, dynamic-range int8 weights, or full int8 (calibrated).")
@click.option("--io", "io_type", type=click.Choice(IO_TYPES), default="uint8", show_default=True,
              help="Input and output type of an int8 model.")
@click.option("--calibration-images", type=int, default=DEFAULT_CALIBRATION_IMAGES, show_default=True,
              help="Training images (a seeded sample) that calibrate an int8 model.")
@click.option("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT, show_default=True,
              help="Lowest top-1 agreement with Keras that a quantized model needs to pass verification.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the calibration sample.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, help="Folder that receives the bundle folder.")
def export(run, export_format, quantize, io_type, calibration_images, min_agreement, seed, out):
    """Export a run's model with labels.txt and model.json, verified against Keras on the test split."""
    from keras_sign.export import export_run
    from keras_sign.verification import verification_table

    record = export_run(run, export_format, quantize, out, io_type, calibration_images, min_agreement, seed)
    name = f"{export_format} {quantize}" + (f" ({io_type} in/out)" if quantize == "int8" else "")
    click.echo(verification_table(record["verification"], name))
    click.echo(f"bundle: {record['bundle']} ({record['bytes'] / 1e6:.2f} MB model)")
    if not record["verified"]:
        raise KerasSignError(
            f"The export failed verification ({'; '.join(record['verification']['failures'])}); it is kept in "
            f"{record['bundle']}, marked \"verified\": false in model.json."
        )


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True), metavar="MODEL...")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT, onnxruntime and TensorFlow (default: all cores).")
@click.option("--runs", type=click.IntRange(min=1), default=RUNS, show_default=True,
              help=f"Timed batch-1 calls per model, after {WARMUP} warm-up calls.")
@_backend_option
def benchmark(models, threads, runs, backend):
    """Latency (batch 1) and throughput (batch 32) of .keras/.tflite/.onnx files, run folders or export bundles."""
    import os

    select_backend(backend or "auto")
    from keras_sign.benchmark import benchmark_models, benchmark_table

    threads = threads or os.cpu_count()
    click.echo(benchmark_table(benchmark_models(models, threads, runs), threads, runs))


def main():
    # File names that are not UTF-8 are printed as their original bytes, as `ls` shows them.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    cli(prog_name="keras-sign")


if __name__ == "__main__":
    main()
