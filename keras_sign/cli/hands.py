"""`keras-sign hands`: the hand stage on photos, folders, globs or a video.

    keras-sign hands photo.jpg my_photos/ --draw drawn/
    keras-sign hands clip.mp4 --format jsonl --out hands.jsonl
"""

from pathlib import Path

import click

from keras_sign.cli.main import cli, write_or_echo
from keras_sign.cli.options import FINITE_FLOAT
from keras_sign.errors import KerasSignError
from keras_sign.hands.detector import COMPLEXITIES, DEFAULT_MARGIN
from keras_sign.hands.report import FORMATS

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".y4m"}


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--draw", "draw_dir", type=click.Path(file_okay=False), help="Write each input with its hands drawn "
              "(skeleton, region, crop) into this folder.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the rows to this file instead of the terminal.")
@click.option("--hand-models", type=click.Choice(COMPLEXITIES), default="full", show_default=True,
              help="MediaPipe's full models, or the faster lite ones.")
@click.option("--max-hands", type=click.IntRange(min=1), default=1, show_default=True,
              help="Hands to report per input, most confident first.")
@click.option("--margin", type=FINITE_FLOAT, default=DEFAULT_MARGIN, show_default=True,
              help="The crop's margin around the landmarks' box, as a share of its side.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT.")
@click.pass_context
def hands(ctx, inputs, draw_dir, output_format, out, hand_models, max_hands, margin, threads):
    """Find the hands in photos (files, folders, globs) or a video: presence, handedness, crop, 21 landmarks.

    Exit status 3 when some inputs could not be read (they are named; the rest are reported).
    """
    from keras_sign.cli.spell import SKIPPED_EXIT
    from keras_sign.data.scan import inspect_image
    from keras_sign.hands.detector import HandDetector
    from keras_sign.hands.draw import draw_hands
    from keras_sign.hands.images import read_upright
    from keras_sign.hands.report import format_hand_rows, hand_row, summary, too_small
    from keras_sign.inference.predict import expand_inputs
    from keras_sign.runs.atomic import atomic_write_bytes, check_writable

    if not 0 <= margin <= 2:
        raise KerasSignError(f"--margin is a share of the hand's box, between 0 and 2 (got {margin}).")
    for folder in (draw_dir, Path(out).parent if out else None):
        if folder:
            check_writable(folder, "--draw" if folder == draw_dir else "--out")
    videos = [Path(i) for i in inputs if Path(i).is_file() and Path(i).suffix.lower() in VIDEO_SUFFIXES]
    files, problems = expand_inputs([i for i in inputs if Path(i) not in videos])
    detector = HandDetector(hand_models, max_hands, threads)
    rows = []
    if draw_dir:
        Path(draw_dir).mkdir(parents=True, exist_ok=True)

    def drawn(name, image, found):
        import cv2

        ok, encoded = cv2.imencode(".png", cv2.cvtColor(draw_hands(image, found, margin), cv2.COLOR_RGB2BGR))
        atomic_write_bytes(Path(draw_dir) / name, encoded.tobytes())

    for file in files:
        check = inspect_image(file)
        problem = check.problem or too_small(check.width, check.height)
        if problem:
            problems.append((str(file), problem))
            continue
        image, scale = read_upright(file)
        found = [hand.scaled(scale) for hand in detector.find(image)]
        rows.append(hand_row(str(file), found, margin))
        if draw_dir:
            drawn(f"{file.stem}.png", image, [hand.scaled(1 / scale) for hand in found])
    for video in videos:
        rows += _video_rows(video, detector, margin, draw_dir, drawn, hand_row)
    for path, reason in problems:
        click.echo(f"skipped {path}: {reason}", err=True)
    if not rows:
        raise KerasSignError(f"None of the {len(inputs)} input(s) is a photo or video the hand stage can read.")
    write_or_echo(format_hand_rows(rows, output_format), out, len(rows), "row(s)")
    click.echo(summary(rows), err=True)
    if problems:
        ctx.exit(SKIPPED_EXIT)


def _video_rows(path, detector, margin, draw_dir, drawn, hand_row):
    """One row per frame of a video, the hand followed from frame to frame."""
    from keras_sign.spelling.video import open_source

    source = open_source(str(path))
    detector.reset()
    rows = []
    for index, (seconds, frame) in enumerate(source.frames):
        found = detector.track(frame)
        rows.append(hand_row(f"{path}@{seconds:.3f}s", found, margin))
        if draw_dir:
            drawn(f"{path.stem}-{index:05d}.png", frame, found)
    return rows
