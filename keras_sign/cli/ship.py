"""`export`, `ensemble` and `benchmark`: models that leave the run folder.

    keras-sign export RUN --quantize int8
    keras-sign ensemble RUN RUN ... --out ensembles/massey
    keras-sign benchmark RUN exports/*/
"""

import os

import click

from keras_sign.backend import select_backend
from keras_sign.cli.main import cli
from keras_sign.cli.options import FINITE_FLOAT, backend_option
from keras_sign.errors import KerasSignError
from keras_sign.export.benchmark import RUNS, WARMUP
from keras_sign.export.bundle import DEFAULT_CALIBRATION_IMAGES, DEFAULT_OUT
from keras_sign.export.formats import EXPORT_FORMATS, IO_TYPES, QUANTIZATIONS
from keras_sign.export.verification import DEFAULT_MIN_AGREEMENT


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--format", "export_format", type=click.Choice(list(EXPORT_FORMATS)), default="tflite",
              show_default=True, help=", ".join(entry.help for entry in EXPORT_FORMATS.values()) + ".")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
              help="TFLite only: float16 weights; dynamic-range int8 weights; int8 (the most-integer recipe that "
                   "verifies); int8-strict (every op int8, for NPUs).")
@click.option("--io", "io_type", type=click.Choice(IO_TYPES), default="uint8", show_default=True,
              help="Input and output type of a full-integer model.")
@click.option("--calibration-images", type=int, default=DEFAULT_CALIBRATION_IMAGES, show_default=True,
              help="Training images (a seeded sample) that calibrate an int8 model.")
@click.option("--min-agreement", type=FINITE_FLOAT, default=DEFAULT_MIN_AGREEMENT, show_default=True,
              help="Lowest top-1 agreement with Keras that a quantized model needs to pass verification.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the calibration sample.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, help="Folder that receives the bundle folder.")
def export(run, export_format, quantize, io_type, calibration_images, min_agreement, seed, out):
    """Export a run's model with labels.txt and model.json, verified against Keras on the test split."""
    from keras_sign.export.bundle import export_run
    from keras_sign.export.verification import verification_table

    record = export_run(run, export_format, quantize, out, io_type, calibration_images, min_agreement, seed)
    quantization = record["quantization"]
    name = f"{export_format} {quantize}"
    if "recipe" in quantization:
        name += f" ({quantization['recipe']}, {quantization['io']} in/out)"
    click.echo(verification_table(record["verification"], name))
    click.echo(f"bundle: {record['bundle']} ({record['bytes'] / 1e6:.2f} MB model)")
    if not record["verified"]:
        raise KerasSignError(
            f"The export failed verification ({'; '.join(record['verification']['failures'])}); it is kept in "
            f"{record['bundle']}, marked \"verified\": false in model.json."
        )



@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN...")
@click.option("--out", required=True, help="New folder for the ensemble (model.keras, model.json, labels.txt and "
              "run.json), or for one ensemble per fold when the RUNs are crossval folders.")
@backend_option
def ensemble(runs, out, backend):
    """One model that averages the class probabilities of several runs (any architectures and sizes). Given
    `crossval` folders, one per fold, each evaluated on its held-out signer, with mean +- std as crossval gives."""
    select_backend(backend or "auto")
    from keras_sign.studies.crossval import markdown
    from keras_sign.studies.ensembles import is_crossval, write_ensemble, write_fold_ensembles

    crossvals = [is_crossval(run) for run in runs]
    if all(crossvals):
        summary = write_fold_ensembles(runs, out)
        click.echo(markdown(summary), nl=False)
        click.echo(f"pooled accuracy {summary['pooled_accuracy']:.3f}; folder: {out}")
        return
    if any(crossvals):
        raise KerasSignError("Pass run folders or crossval folders to `keras-sign ensemble`, not both.")
    record = write_ensemble(runs, out)
    members = ", ".join(f"{m['arch']} {m['image_size']} px" for m in record["members"])
    click.echo(f"ensemble of {len(record['members'])} models ({members}), input {record['preprocessing']['image_size']} "
               f"px: {out} (predict, transcribe, demo, evaluate and export take it)")



@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True), metavar="MODEL...")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT, onnxruntime and TensorFlow (default: all cores).")
@click.option("--runs", type=click.IntRange(min=1), default=RUNS, show_default=True,
              help=f"Timed batch-1 calls per model, after {WARMUP} warm-up calls.")
@backend_option
def benchmark(models, threads, runs, backend):
    """Latency (batch 1) and throughput (batch 32) of .keras/.tflite/.onnx files, run folders or export bundles."""
    select_backend(backend or "auto")
    from keras_sign.export.benchmark import benchmark_models, benchmark_table

    threads = threads or os.cpu_count()
    click.echo(benchmark_table(benchmark_models(models, threads, runs), threads, runs))
