"""The `keras-sign` command line. Each command is thin and calls one function.

    keras-sign train                       # MobileNetV3-Small on the embedded digits sample
    keras-sign train --data-dir ../shared/data/massey_asl_hands --split signer --epochs 1
    keras-sign evaluate runs/digits-mobilenetv3_small-20261125-120000
    keras-sign compare runs/digits-resnet18-20261125-120000 runs/digits-mobilenetv3_small-20261125-120000
    keras-sign data validate PATH
    keras-sign predict RUN photo.jpg my_photos/
    keras-sign transcribe RUN clip.mp4 --reference "HELLO"
    keras-sign crossval --config configs/massey.yaml --out crossval/massey
    keras-sign calibrate RUN
    keras-sign demo exports/massey-tflite-none
"""

import errno
import logging
import math
import os
import sys
from pathlib import Path

import click

from keras_sign import __version__
from keras_sign.backend import CHOICES as BACKEND_CHOICES
from keras_sign.backend import select_backend
from keras_sign.config import (
    AUGMENT_POLICIES,
    HOW_NOT_WHAT,
    IMAGE_CACHES,
    MIX_METHODS,
    OPTIMIZERS,
    SCHEDULES,
    SPLIT_METHODS,
)
from keras_sign.errors import KerasSignError
from keras_sign.export.benchmark import RUNS, WARMUP
from keras_sign.export.bundle import DEFAULT_CALIBRATION_IMAGES, DEFAULT_OUT
from keras_sign.export.formats import EXPORT_FORMATS, IO_TYPES, QUANTIZATIONS
from keras_sign.export.verification import DEFAULT_MIN_AGREEMENT
from keras_sign.inference.predict import OUTPUT_FORMATS
from keras_sign.spelling.decoder import DecoderSettings

SKIPPED_EXIT = 3  # `predict`: some inputs could not be read (the rest were predicted)


class _FiniteFloat(click.ParamType):
    """A float option that refuses nan and inf: `--fps nan` would otherwise pass every `>` check unnoticed."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a number such as 0.5.", param, ctx)
        return number


FINITE_FLOAT = _FiniteFloat()


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


class _StderrHandler(logging.StreamHandler):
    """Log lines to whatever `sys.stderr` is when they are written (click's test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass  # always the current sys.stderr


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="keras-sign")
def cli():
    """Train, evaluate and ship sign-language image classifiers (Keras 3)."""
    # On the root logger, so that a library calling logging.info() finds a handler and does not add its
    # own (which would print every line twice); the root stays at WARNING, keras_sign says INFO.
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    logging.getLogger("keras_sign").setLevel(logging.INFO)


RESUMABLE = ("epochs", "patience", *HOW_NOT_WHAT)  # what may change when a run is resumed


def _backend_option(command):
    return click.option(
        "--backend",
        type=click.Choice(BACKEND_CHOICES),
        default=None,
        help="Keras backend; auto (default) picks JAX on GPU/TPU, TensorFlow on CPU. KERAS_BACKEND wins.",
    )(command)


TRAIN_OPTIONS = [
    click.option("--config", "config_path", type=click.Path(), help="YAML file of settings; flags override it."),
    click.option("--arch", help="Architecture name (default mobilenetv3_small)."),
    click.option("--dataset", help="Named dataset: digits (embedded, default), numbers, alphabet, fingerspelling."),
    click.option("--data-dir", help="Your own folder: ROOT/CLASS/image or ROOT/SIGNER/CLASS/image."),
    click.option("--classes", help="Classes to use: 'all' or a comma-separated list (default: the dataset's own)."),
    click.option("--split", type=click.Choice(SPLIT_METHODS), help="How to split train/val/test."),
    click.option("--test-signers", help="Signers whose images are the test split (--split signer), e.g. hand3."),
    click.option("--fold", help="Test on fold i of a stratified k-fold, as i/k (--split stratified), e.g. 2/5."),
    click.option("--epochs", type=int),
    click.option("--batch-size", type=int),
    click.option("--lr", type=FINITE_FLOAT, help="Adam learning rate."),
    click.option("--image-size", type=int, help="Side of the square model input in pixels (>= 32)."),
    click.option("--center-crop/--no-center-crop", default=None,
                  help="Resize the shorter side to size/0.875 and cut the centre (default: resize the whole image)."),
    click.option("--seed", type=int),
    click.option("--augment/--no-augment", default=None, help="Training augmentation (on by default)."),
    click.option("--augment-policy", type=click.Choice(list(AUGMENT_POLICIES)),
                 help="light (default): small affine and contrast; strong: larger, plus colour, mirror, erasing; "
                      "colour: light plus brightness and colour cast."),
    click.option("--background-augment/--no-background-augment", default=None,
                 help="Replace the plain backdrop behind the hand (black, a wall) by random ones while training."),
    click.option("--mix", type=click.Choice(MIX_METHODS),
                 help="Blend pairs of training images and their labels: mixup (whole images) or cutmix (a pasted "
                      "rectangle); none by default."),
    click.option("--mix-alpha", type=FINITE_FLOAT, help="Beta(alpha, alpha) of the blend's share (default 0.2 for mixup, "
                 "1.0 for cutmix)."),
    click.option("--weights", help="Starting weights: none (default), imagenet (torchvision's), imagenet-keras (keras.applications' "
                  "MobileNetV3Small), or a .pth/.safetensors/.h5/.weights.h5 file."),
    click.option("--init-from", help="Start from the model of another run folder (same architecture)."),
    click.option("--freeze-backbone", type=int, help="Train only the head for N epochs, then unfreeze everything."),
    click.option("--finetune-lr", type=FINITE_FLOAT, help="Learning rate after unfreezing (default: --lr / 10)."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="adam (default, as the study) or adamw."),
    click.option("--weight-decay", type=FINITE_FLOAT, help="Decoupled weight decay (default 0 for adam, 0.01 for adamw)."),
    click.option("--label-smoothing", type=FINITE_FLOAT, help="Label smoothing of the cross-entropy (default 0)."),
    click.option("--schedule", type=click.Choice(SCHEDULES), help="Learning-rate schedule."),
    click.option("--warmup-epochs", type=int, help="Linear learning-rate warm-up before the schedule (default 0)."),
    click.option("--patience", type=int, help="Stop after N epochs without a better validation accuracy."),
    click.option("--checkpoint-every", type=int,
                 help="Checkpoint every N epochs (default: spaced to cost about 3% of the training time)."),
    click.option("--image-cache", type=click.Choice(IMAGE_CACHES),
                 help="Keep decoded images in memory or in a file on disk, read batch by batch (default auto: disk "
                      "when they would take over a quarter of the memory)."),
    click.option("--image-cache-dir",
                 help="Where disk image caches live (default $KERAS_SIGN_IMAGE_CACHE or ~/.cache/keras_sign/images)."),
    click.option("--mixed-precision/--no-mixed-precision", default=None, help="bfloat16 compute, float32 weights."),
    click.option("--deterministic/--no-deterministic", default=None, help="Deterministic kernels: same seed, same weights."),
    click.option("--devices", help="Data parallel over N devices or 'all' (JAX backend)."),
    click.option("--limit-per-class", type=int, help="Use at most N images per class (and signer)."),
    click.option("--smoke", is_flag=True, default=None, help="Shrink the job to a seconds-long check (1 epoch, 32 px, 10 images per class)."),
    click.option("--out", help="Run folder to write (default runs/<dataset>-<arch>-<time>)."),
    click.option("--cache-dir", help="Where named datasets live (default $KERAS_SIGN_DATA or ~/.keras/datasets/keras_sign)."),
]


def _train_options(command):
    """The options of `train`, for every command that trains (train, crossval)."""
    for option in reversed(TRAIN_OPTIONS):
        command = option(command)
    return _backend_option(command)


@cli.command()
@click.option("--resume", type=click.Path(), help="Continue an interrupted run folder from its last finished epoch.")
@_train_options
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
@_train_options
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
    command = _train_options(command)
    for param in command.__click_params__:
        if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType, _FiniteFloat)):
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
@click.argument("run", type=click.Path())
@click.option("--data-dir", help="Evaluate on this folder (class folders the model knows) instead of the test split.")
@click.option("--name", help="Suffix of the files a --data-dir evaluation writes (default: the folder's name).")
@click.option("--class-map", type=click.Path(), help="YAML 'folder: model class' lines for --data-dir folders whose "
              "names do not match the model's (names match exactly, else ignoring case; the rest are left out).")
@click.option("--tsne-points", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Most images in the t-SNE map (a seeded random subsample beyond this).")
@click.option("--tta", is_flag=True, help="Average each image's answer with its mirror image's (test-time "
              "augmentation, for models trained with --augment-policy strong); use with --name.")
@_backend_option
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
@_backend_option
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
@click.argument("model", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes shown per image.")
@click.option("--format", "output_format", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the predictions to this file instead of the terminal.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT and onnxruntime.")
@_backend_option
@click.pass_context
def predict(ctx, model, inputs, top_k, output_format, out, batch_size, threads, backend):
    """Top classes of photos (files, folders, globs) from a run folder, .keras, .tflite/.onnx or export bundle.

    Exit status 3 when some inputs could not be read (they are named; the rest are predicted).
    """
    select_backend(backend or "auto")
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.inference.predict import expand_inputs, format_rows, predict_files
    from keras_sign.runs.atomic import atomic_write_text, check_writable

    if out:
        check_writable(Path(out).parent)
    files, problems = expand_inputs(inputs)
    classifier = load_classifier(model, threads)
    rows, skipped = predict_files(classifier, files, top_k, batch_size)
    for path, reason in problems + skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if not rows:
        raise KerasSignError(f"None of the {len(files) + len(problems)} input(s) is an image the model can read.")
    text = format_rows(rows, output_format)
    if out:
        atomic_write_text(out, text)
        click.echo(f"wrote {len(rows)} prediction(s) to {out}", err=True)
    else:
        click.echo(text, nl=False)
    if problems or skipped:
        ctx.exit(SKIPPED_EXIT)


@cli.command()
@click.argument("model", type=click.Path())
@click.argument("source", required=False)
@click.option("--camera", type=click.IntRange(min=0), help="Read camera N live instead of SOURCE (Ctrl-C stops).")
@click.option("--fps", type=FINITE_FLOAT, help="Frame rate of a folder of frames (default 30), or to override a video's.")
@click.option("--crop", default="full", show_default=True,
              help="What the model sees: full, center (the centred square) or x,y,w,h in pixels.")
@click.option("--hold", type=FINITE_FLOAT, default=DecoderSettings.hold, show_default=True,
              help="Seconds a sign must be held to be typed.")
@click.option("--min-confidence", type=FINITE_FLOAT, default=DecoderSettings.min_confidence, show_default=True)
@click.option("--min-margin", type=FINITE_FLOAT, default=DecoderSettings.min_margin, show_default=True,
              help="Lead of the top class over the second.")
@click.option("--repeat-after", type=FINITE_FLOAT, help="Seconds of further holding that type the sign again.")
@click.option("--word-gap", type=FINITE_FLOAT, help="Seconds of idle hand that end a word with a space (default: 0.5 for a "
              "model without a space class, else off; 0 turns it off).")
@click.option("--smoothing", type=FINITE_FLOAT, default=DecoderSettings.smoothing, show_default=True,
              help="Time constant (s) of the probability smoothing; 0 turns it off.")
@click.option("--unsure-below", type=FINITE_FLOAT, help="A frame less sure than this is no sign (default: the run's reject "
              "threshold from calibration.json or model.json, else 0; 0 turns it off).")
@click.option("--reference", help="The text that is spelled: print the character error rate and the alignment.")
@click.option("--events", "events_path", type=click.Path(dir_okay=False), help="Write one JSON line per typed symbol.")
@click.option("--timeline", "timeline_path", type=click.Path(dir_okay=False), help="Write per-frame top classes (CSV).")
@click.option("--overlay", "overlay_path", type=click.Path(dir_okay=False), help="Write the video with predictions drawn.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT and onnxruntime.")
@_backend_option
def transcribe(model, source, camera, fps, crop, hold, min_confidence, min_margin, repeat_after, word_gap, smoothing,
               unsure_below, reference, events_path, timeline_path, overlay_path, batch_size, threads, backend):
    """Spell out a video file, a folder of frames (--fps) or a camera (--camera N) into text."""
    import time

    from keras_sign.spelling.decoder import SpellingDecoder, default_word_gap

    command_started = time.perf_counter()
    if (source is None) == (camera is None):
        raise KerasSignError("Pass a SOURCE (video file or folder of frames) or --camera N, not both.")
    DecoderSettings(hold, min_confidence, min_margin, repeat_after, word_gap or None, smoothing,
                    unsure_below or 0.0).validate()
    select_backend(backend or "auto")
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.runs.atomic import check_writable
    from keras_sign.spelling.transcribe import (
        character_error_rate,
        warn_about_missing_controls,
        write_events,
        write_timeline,
    )
    from keras_sign.spelling.transcribe import transcribe as run_transcription
    from keras_sign.spelling.video import OverlayWriter, open_source

    for path in (events_path, timeline_path, overlay_path):
        if path:
            check_writable(Path(path).parent)
    frames = open_source(source, camera, fps)
    classifier = load_classifier(model, threads)
    if word_gap is None:
        word_gap = default_word_gap(classifier.class_names)
    if unsure_below is None:
        unsure_below = classifier.unsure_below or 0.0
        if unsure_below:
            click.echo(f"frames below {unsure_below:.2f} confidence count as no sign (the model's reject threshold; "
                       "--unsure-below 0 turns this off)", err=True)
    settings = DecoderSettings(hold, min_confidence, min_margin, repeat_after, word_gap or None, smoothing, unsure_below)
    decoder = SpellingDecoder(classifier.class_names, settings)
    warn_about_missing_controls(classifier.class_names, settings)
    overlay = OverlayWriter(overlay_path, frames.fps) if overlay_path else None
    click.echo(f"transcribing {frames.description} with {classifier.source} ({classifier.runtime})", err=True)
    live = _LiveLine(sys.stderr.isatty())
    try:
        transcript, timeline = run_transcription(classifier, frames, decoder, crop, batch_size, overlay, live.show)
    except BaseException:
        if overlay is not None:
            overlay.discard()
        raise
    live.end()
    startup = time.perf_counter() - command_started - transcript.wall_seconds
    written = []
    if events_path:
        written.append(write_events(events_path, transcript.events))
    if timeline_path:
        written.append(write_timeline(timeline_path, timeline))
    if overlay is not None and (video := overlay.close()):
        written.append(video)
    if transcript.broken:
        click.echo(f"warning: the stream ended early ({transcript.broken}); the text so far:", err=True)
    click.echo(transcript.text)
    click.echo(f"{transcript.frames} frames ({transcript.seconds:.1f} s) in {transcript.wall_seconds:.2f} s: "
               f"{transcript.frames_per_second:.0f} frames/s (decode, crop, resize, model, decoder), after "
               f"{startup:.1f} s of start-up (loading the model and TensorFlow)", err=True)
    if reference is not None:
        score = character_error_rate(reference, transcript.text)
        click.echo(f"CER {score['cer']:.3f} ({len(score['substitutions'])} substituted, {score['deletions']} missing, "
                   f"{score['insertions']} extra)")
        click.echo(score["alignment"])
        if score["substitutions"]:
            click.echo("substitutions (spelled -> typed): " + ", ".join(f"{r}->{h}" for r, h in score["substitutions"]))
    for path in written:
        click.echo(f"wrote {path}", err=True)


class _LiveLine:
    """The growing text on one terminal line (stderr), with the current candidate and its hold; when
    stderr is not a terminal, one log line per typed symbol instead."""

    def __init__(self, terminal):
        self.terminal = terminal
        self.shown = False

    def show(self, seconds, top, state, events):
        if self.terminal:
            candidate = f"{state['symbol']} {state['confidence']:.2f} {'#' * round(10 * state['progress']):<10}" \
                if state["candidate"] else "-"
            sys.stderr.write(f"\r{seconds:7.1f} s  {candidate:18}  {state['text'][-50:]}\x1b[K")
            sys.stderr.flush()
            self.shown = True
        else:
            for event in events:
                click.echo(f"{event.time:7.2f} s  {event.action:8} {event.symbol!r:5} ({event.confidence:.2f})  "
                           f"{event.text}", err=True)

    def end(self):
        if self.shown:
            sys.stderr.write("\n")


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
@click.argument("model", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every network).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--crop", type=click.Choice(["center", "full"]), default="center", show_default=True,
              help="What the model sees of each camera frame.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS (phones on the LAN).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT and onnxruntime.")
@_backend_option
def demo(model, host, port, crop, ssl_certfile, ssl_keyfile, threads, backend):
    """Serve a web page that spells what the webcam sees (and reads dropped photos and videos)."""
    from keras_sign.demo.server import check_port_free, check_ssl_pair, import_fastapi, serve

    import_fastapi()  # a missing extra, a wrong option or a busy port is one line, before the model loads
    check_ssl_pair(ssl_certfile, ssl_keyfile)
    check_port_free(host, port)
    select_backend(backend or "auto")
    from keras_sign.inference.classifier import load_classifier

    serve(load_classifier(model, threads), host, port, crop, ssl_certfile, ssl_keyfile, echo=click.echo)


@data.command("clip")
@click.option("--text", required=True, help="What the clip spells, e.g. 'HELLO WORLD'.")
@click.option("--run", help="Take the photos from this run folder's split (default: its test split).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--data-dir", help="Take the photos from this folder of class folders instead.")
@click.option("--out", required=True, help="New folder for the frames, clip.mp4, reference.txt and timing.csv.")
@click.option("--fps", type=FINITE_FLOAT, default=15.0, show_default=True)
@click.option("--size", type=int, default=160, show_default=True, help="Side of the square frames in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the photos, hold times and drift.")
def data_clip(text, run, split, data_dir, out, fps, size, seed):
    """Build a fingerspelled test clip from real photos (each symbol held 0.4-1.2 s, drifting)."""
    from keras_sign.spelling.clip import build_clip, clip_photos

    paths, labels, orientations, class_names, description = clip_photos(run, split, data_dir)
    summary = build_clip(text, paths, labels, orientations, class_names, out, fps, size, seed, description)
    click.echo(f"'{summary['text']}' from {description}: {summary['frames']} frames, {summary['seconds']:.1f} s at "
               f"{fps:g} frames/s in {out}/frames" + (f" and {out}/clip.mp4" if summary["video"] else ""))


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN...")
@click.option("--out", help="Folder for the table and figures (default runs/compare-<time>; must be new or empty).")
@_backend_option
def compare(runs, out, backend):
    """Compare run folders: parameters, GMACs, test figures, speed; validation curves and t-SNE maps side by side."""
    select_backend(backend or "auto")
    from keras_sign.analysis.compare import compare_runs

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
    from keras_sign.studies.reproduce import reproduce as reproduce_runs

    click.echo(f"keras-sign {__version__}: backend {backend} ({reason})", err=True)
    table, written = reproduce_runs(configs, out, backend, reason, smoke)
    click.echo(table)
    for path in written:
        click.echo(f"wrote {path}")


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
@_backend_option
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
@_backend_option
def benchmark(models, threads, runs, backend):
    """Latency (batch 1) and throughput (batch 32) of .keras/.tflite/.onnx files, run folders or export bundles."""
    select_backend(backend or "auto")
    from keras_sign.export.benchmark import benchmark_models, benchmark_table

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
