"""`evaluate`, `calibrate` and `compare`: what a trained run is worth.

    keras-sign evaluate RUN [--data-dir FOLDER]
    keras-sign calibrate RUN --max-false-accept 0.05
    keras-sign compare RUN RUN ... --out compare/
"""

import click

from keras_sign.backend import select_backend
from keras_sign.cli.main import cli
from keras_sign.cli.options import FINITE_FLOAT, backend_option


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--data-dir", help="Evaluate on this folder (class folders the model knows) instead of the test split.")
@click.option("--name", help="Suffix of the files a --data-dir evaluation writes (default: the folder's name).")
@click.option("--class-map", type=click.Path(), help="YAML 'folder: model class' lines for --data-dir folders whose "
              "names do not match the model's (names match exactly, else ignoring case; the rest are left out).")
@click.option("--tsne-points", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Most images in the t-SNE map (a seeded random subsample beyond this).")
@click.option("--tta", is_flag=True, help="Average each image's answer with its mirror image's (test-time "
              "augmentation, for models trained with --augment-policy strong); use with --name.")
@backend_option
def evaluate(run, data_dir, name, class_map, tsne_points, tta, backend):
    """Evaluate a run's model on its saved test split (or --data-dir): reports, confusion matrix, t-SNE, curves."""
    select_backend(backend or "auto")
    from keras_sign.analysis.evaluate import evaluate_run

    metrics, report, written = evaluate_run(run, data_dir, tsne_points, name=name, class_map=class_map, tta=tta)
    click.echo(report)
    click.echo(f"accuracy {metrics['accuracy']:.3f} on {metrics['images']} images ({metrics['evaluated_on']})")
    for path in written:
        click.echo(f"wrote {path}")



@cli.command()
@click.argument("run", type=click.Path())
@click.option("--max-false-accept", type=FINITE_FLOAT, default=0.05, show_default=True,
              help="Share of wrong answers allowed among those given, on validation; below the threshold: unsure.")
@backend_option
def calibrate(run, max_false_accept, backend):
    """Fit a temperature and a reject threshold on a run's validation split (calibration.json); evaluate,
    predict, transcribe and export then use them. Training does this with the default target."""
    select_backend(backend or "auto")
    from keras_sign.analysis.calibration import calibrate_run, choose_threshold

    choose_threshold([1.0], [True], max_false_accept)  # a bad target is one line, before the model loads
    calibration = calibrate_run(run, max_false_accept)
    reject = calibration["reject"]
    click.echo(f"temperature {calibration['temperature']:.3f}: NLL {calibration['nll']['before']:.3f} -> "
               f"{calibration['nll']['after']:.3f}, ECE {calibration['ece']['before']:.3f} -> "
               f"{calibration['ece']['after']:.3f} on {calibration['images']} validation images")
    click.echo(f"unsure below {reject['threshold']:.3f}: {100 * reject['coverage']:.0f}% of validation answered, "
               f"{100 * reject['false_accept']:.1f}% of those wrong (target {100 * max_false_accept:g}%)")



@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN...")
@click.option("--out", help="Folder for the table and figures (default runs/compare-<time>; must be new or empty).")
@backend_option
def compare(runs, out, backend):
    """Compare run folders: parameters, GMACs, test figures, speed; validation curves and t-SNE maps side by side."""
    select_backend(backend or "auto")
    from keras_sign.analysis.compare import compare_runs

    table, written = compare_runs(runs, out)
    click.echo(table)
    for path in written:
        click.echo(f"wrote {path}")
