"""`data list|download|validate|clip` and `models`: what there is to train on, and with.

    keras-sign data validate ../shared/data/massey_asl_hands
    keras-sign data clip --text "HELLO" --run RUN --out clips/hello
    keras-sign models
"""

from pathlib import Path

import click

from keras_sign.backend import select_backend
from keras_sign.cli.main import cli
from keras_sign.cli.options import FINITE_FLOAT, backend_option
from keras_sign.errors import KerasSignError


@cli.command()
@click.option("--image-size", type=int, default=224, show_default=True, help="Input side for the FLOPs count.")
@click.option("--num-classes", type=int, default=1000, show_default=True)
@backend_option
def models(image_size, num_classes, backend):
    """List the architectures: parameters, multiply-adds, ImageNet weights."""
    select_backend(backend or "auto")
    from keras_sign.models.summary import models_table

    click.echo(models_table(image_size, num_classes))



@cli.group()
def data():
    """Datasets: list, download, validate; build a fingerspelled test clip."""



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
@click.option("--hands", "hand_models", type=click.Choice(["full", "lite"]), help="Also count, per class, the photos "
              "in which the hand stage (these models) finds a hand.")
@click.option("--hand-cache-dir", help="Where the hands found in each photo are kept.")
def data_validate(path, cache_dir, hand_models, hand_cache_dir):
    """Report classes, signers, sizes, unreadable files and duplicates of a folder (or named dataset)."""
    from keras_sign.data.catalog import CATALOG, dataset_location
    from keras_sign.data.validate import validate_report

    pattern = "*"
    if not Path(path).exists() and path in CATALOG:
        pattern = CATALOG[path].file_pattern
        path = dataset_location(path, cache_dir)
    click.echo(validate_report(path, pattern, hand_models, hand_cache_dir)[1])



@data.command("clip")
@click.option("--text", required=True, help="What the clip spells, e.g. 'HELLO WORLD'.")
@click.option("--run", help="Take the photos from this run folder's split (default: its test split).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--data-dir", help="Take the photos from this folder of class folders instead.")
@click.option("--out", required=True, help="New folder for the frames, clip.mp4, reference.txt and timing.csv.")
@click.option("--fps", type=FINITE_FLOAT, default=15.0, show_default=True)
@click.option("--size", type=int, default=160, show_default=True, help="Side of the square frames in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the photos, hold times and drift.")
@click.option("--empty", type=click.Path(dir_okay=False), help="A photo of an empty room or backdrop for the idle "
              "stretches (the lead and the pauses between words): no hand in view.")
@click.option("--double", type=click.Choice(["pause", "slide"]), default="pause", show_default=True,
              help="How a repeated letter (the LL of HELLO) is made: a brief pause between two holds, or the same "
              "handshape slid a little to one side and held again, as signers do.")
def data_clip(text, run, split, data_dir, out, fps, size, seed, empty, double):
    """Build a fingerspelled test clip from real photos (each symbol held 0.4-1.2 s, drifting)."""
    from keras_sign.spelling.clip import build_clip, clip_photos

    paths, labels, orientations, class_names, description = clip_photos(run, split, data_dir)
    summary = build_clip(text, paths, labels, orientations, class_names, out, fps, size, seed, description, empty,
                         double)
    click.echo(f"'{summary['text']}' from {description}: {summary['frames']} frames, {summary['seconds']:.1f} s at "
               f"{fps:g} frames/s in {out}/frames" + (f" and {out}/clip.mp4" if summary["video"] else ""))
