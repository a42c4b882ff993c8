"""`train`, `crossval`, `sweep` and `reproduce`: the commands that train.

    keras-sign train --arch mobilenetv3 --dataset fingerspelling
    keras-sign crossval --config configs/massey.yaml --out crossval/massey
    keras-sign sweep --config configs/paper/sweep-numbers-shufflenetv2.yaml --out sweeps/numbers
    keras-sign reproduce configs/paper/*.yaml --out runs/reproduce
"""

import os
from pathlib import Path

import click

from keras_sign import __version__
from keras_sign.backend import select_backend
from keras_sign.cli.main import cli
from keras_sign.cli.options import FINITE_FLOAT, backend_option, config_options
from keras_sign.config import HOW_NOT_WHAT
from keras_sign.errors import KerasSignError
from keras_sign.training.adapt import LAYERS as ADAPT_LAYERS
from keras_sign.training.adapt import AdaptSettings

RESUMABLE = ("epochs", "patience", *HOW_NOT_WHAT)  # what may change when a run is resumed



@cli.command()
@click.option("--resume", type=click.Path(), help="Continue an interrupted run folder from its last finished epoch.")
@config_options
def train(config_path, resume, **flags):
    """Train a classifier and write a run folder (model, split, history, metrics, checkpoints)."""
    from keras_sign.config import load_config

    if resume:
        changed = sorted(name for name, value in flags.items() if value is not None and name not in RESUMABLE)
        if config_path or changed:
            raise KerasSignError(
                f"--resume continues {resume} with its own config; only "
                f"{', '.join('--' + n.replace('_', '-') for n in RESUMABLE)} may be given "
                f"(got {', '.join('--' + n.replace('_', '-') for n in changed) or '--config'})."
            )
        config_path = Path(resume) / "config.yaml"
        if not config_path.is_file():
            raise KerasSignError(f"{resume} has no config.yaml; pass a run folder written by `keras-sign train`.")
        flags["out"] = resume
    config = load_config(config_path, flags)
    if resume and config.smoke and flags.get("epochs") not in (None, config.epochs):
        raise KerasSignError(f"{resume} is a --smoke run, and smoke trains {config.epochs} epoch(s) whatever --epochs "
                             f"says; to train longer, start a new run without --smoke (--init-from {resume} keeps "
                             "its weights).")
    recorded = resume and flags.get("backend") is None and "KERAS_BACKEND" not in os.environ
    backend, reason = select_backend(config.backend, config.deterministic)
    if recorded:
        reason = "the backend the run was trained with (its config.yaml)"
    config.backend = backend
    from keras_sign.training.fit import train as run_training

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
@click.option("--folds", default="signer", show_default=True,
              help="signer: leave one signer out (one fold per signer folder); K: stratified K-fold.")
@config_options
def crossval(config_path, folds, **flags):
    """Cross-validate: one run folder per fold under --out (resumable), with per-fold and mean +- std scores."""
    from keras_sign.config import load_config
    from keras_sign.studies.crossval import crossval as run_crossval
    from keras_sign.studies.crossval import markdown

    config = load_config(config_path, flags)
    backend, reason = select_backend(config.backend, config.deterministic)
    config.backend = backend
    click.echo(f"keras-sign {__version__}: backend {backend} ({reason})", err=True)
    summary = run_crossval(config, folds, backend, reason)
    click.echo(markdown(summary), nl=False)
    click.echo(f"pooled accuracy {summary['pooled_accuracy']:.3f}; folder: {config.out}")



def _sweep_options(command):
    """train's options, with every numeric one taking text: a value, a list (1e-2,1e-3) or a range (1e-5:1e-2:log)."""
    command = config_options(command)
    for param in command.__click_params__:
        if isinstance(param.type, click.types.IntParamType) or param.type is FINITE_FLOAT:
            param.type = click.STRING
            param.help = f"{param.help or ''} Sweep: a list 1,2 or a range LOW:HIGH[:log].".strip()
        elif param.name == "out":
            param.help = "Sweep folder: its plan, storage, trials/ (one run folder each) and results."
    return command



@cli.command()
@click.option("--search", type=click.Choice(["grid", "tpe"]), default="grid", show_default=True,
              help="grid: every combination of the lists; tpe: Optuna's TPE over lists and ranges (needs --trials).")
@click.option("--trials", type=click.IntRange(min=1), help="Number of trials of a --search tpe.")
@click.option("--prune", is_flag=True, help="Stop trials whose validation accuracy falls below the median of "
              "earlier trials at the same epoch (off: the study ran its full grid).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine sharing the sweep.")
@click.option("--storage", help="Database URL shared by machines, e.g. postgresql://user@host/db "
              "(default: a journal file in the sweep folder).")
@click.option("--study", help="Study name in the storage (default: the sweep folder's name).")
@click.option("--join", "join_url", help="Add this machine's workers to the sweep --study in this database.")
@click.option("--report", "report_dir", type=click.Path(), help="Redraw the table and figures of a sweep folder.")
@click.option("--worker-of", type=click.Path(), hidden=True)
@_sweep_options
def sweep(config_path, search, trials, prune, workers, storage, study, join_url, report_dir, worker_of, **flags):
    """Train a grid (or TPE search) of runs on Optuna: resumable, shared by worker processes and machines."""
    import keras_sign.studies.sweep as sweeps
    from keras_sign.config import read_yaml_mapping
    from keras_sign.studies.sweep.plan import make_plan

    if worker_of:
        return sweeps.work_in_folder(worker_of)
    if report_dir:
        click.echo(sweeps.redraw(report_dir), nl=False)
        return
    backend = flags.pop("backend") or "auto"
    out = flags.pop("out")
    if join_url:
        if not study:
            raise KerasSignError("--join needs --study NAME: the name of the sweep in that database.")
        text = sweeps.join(join_url, study, out or str(Path("sweeps") / study), workers, backend)
    else:
        if not out:
            raise KerasSignError("Pass --out FOLDER: the sweep keeps its plan, trials and results there.")
        values = read_yaml_mapping(config_path, "Config file", "--config", "keys to values") if config_path else {}
        values.update({key: value for key, value in flags.items() if value is not None})
        plan = make_plan(values, search, trials, prune)
        text = sweeps.start(plan, out, workers, backend, storage, study)
    click.echo(text, nl=False)



@cli.command()
@click.argument("configs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False), metavar="CONFIG...")
@click.option("--out", default="runs/reproduce", show_default=True, help="Folder of the runs (one per config) and the comparison.")
@click.option("--smoke", is_flag=True, help="Shrink every config to a seconds-long check.")
@backend_option
def reproduce(configs, out, smoke, backend):
    """Train a set of configs (e.g. configs/paper/*.yaml), resuming any interrupted run, then compare them."""
    backend, reason = select_backend(backend or "auto")
    from keras_sign.studies.reproduce import reproduce as reproduce_runs

    click.echo(f"keras-sign {__version__}: backend {backend} ({reason})", err=True)
    table, written = reproduce_runs(configs, out, backend, reason, smoke)
    click.echo(table)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("run", type=click.Path())
@click.argument("shots", type=click.Path())
@click.option("--out", required=True, help="New run folder for the adapted model (RUN is never changed).")
@click.option("--layers", type=click.Choice(ADAPT_LAYERS), default=AdaptSettings.layers, show_default=True,
              help="What trains: the classifier alone (head; a fusion model's landmark branch too), or every layer.")
@click.option("--epochs", type=click.IntRange(min=1), default=AdaptSettings.epochs, show_default=True)
@click.option("--lr", type=FINITE_FLOAT, default=AdaptSettings.lr, show_default=True, help="Adam learning rate.")
@click.option("--replay", type=click.IntRange(min=0), default=AdaptSettings.replay, show_default=True,
              help="Training photos of each class rehearsed beside the shots, so that the model keeps what it knew.")
@click.option("--batch-size", type=click.IntRange(min=1), default=AdaptSettings.batch_size, show_default=True)
@click.option("--seed", type=int, default=AdaptSettings.seed, show_default=True)
@click.option("--add-classes", is_flag=True,
              help="Grow a landmark model's classifier for shots of signs it does not know.")
@click.option("--hand-cache-dir", type=click.Path(), help="Where the hands found in each shot are kept.")
@backend_option
def adapt(run, shots, out, layers, epochs, lr, replay, batch_size, seed, add_classes, hand_cache_dir, backend):
    """Fine-tune a copy of RUN on SHOTS, a folder of class folders holding a few photos of each sign by a new signer,
    into a new run folder that predict, transcribe, export, compare and evaluate take like any run."""
    select_backend(backend or "auto")
    from keras_sign.training.adapt import adapt as adapt_run

    if lr <= 0:
        raise KerasSignError(f"--lr must be positive, e.g. 5e-4 (got {lr}).")
    settings = AdaptSettings(layers, epochs, lr, replay, batch_size, seed, add_classes)
    folder = adapt_run(run, shots, out, settings, hand_cache=hand_cache_dir)
    click.echo(f"adapted run folder: {folder}")
