"""`predict`, `transcribe` and `demo`: from signs to text.

    keras-sign predict MODEL photo.jpg my_photos/
    keras-sign transcribe MODEL clip.mp4 --reference "HELLO"
    keras-sign demo MODEL
"""

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from keras_sign.backend import select_backend
from keras_sign.cli.main import cli, write_or_echo
from keras_sign.cli.options import FINITE_FLOAT, backend_option
from keras_sign.errors import KerasSignError
from keras_sign.inference.predict import OUTPUT_FORMATS
from keras_sign.progress import status_line
from keras_sign.spelling.decoder import DecoderSettings

SKIPPED_EXIT = 3  # `predict`: some inputs could not be read (the rest were predicted)



@cli.command()
@click.argument("model", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes shown per image.")
@click.option("--format", "output_format", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the predictions to this file instead of the terminal.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT and onnxruntime.")
@backend_option
@click.pass_context
def predict(ctx, model, inputs, top_k, output_format, out, batch_size, threads, backend):
    """Top classes of photos (files, folders, globs) from a run folder, .keras, .tflite/.onnx or export bundle.

    Exit status 3 when some inputs could not be read (they are named; the rest are predicted).
    """
    select_backend(backend or "auto")
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.inference.predict import expand_inputs, format_rows, predict_files
    from keras_sign.runs.atomic import check_writable

    if out:
        check_writable(Path(out).parent)
    files, problems = expand_inputs(inputs)
    classifier = load_classifier(model, threads)
    rows, skipped = predict_files(classifier, files, top_k, batch_size)
    for path, reason in problems + skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if not rows:
        raise KerasSignError(f"None of the {len(files) + len(problems)} input(s) is an image the model can read.")
    write_or_echo(format_rows(rows, output_format), out, len(rows), "prediction(s)")
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
@click.option("--repeat-move", type=FINITE_FLOAT, default=DecoderSettings.repeat_move, show_default=True,
              help="A double letter: the hand sliding this share of its size while holding a sign types it again "
              "(models with a hand stage; 0 turns it off).")
@click.option("--release", type=FINITE_FLOAT, default=DecoderSettings.release, show_default=True,
              help="Seconds a typed sign must be gone (no hand, unsure, another sign) before it types again when it "
              "comes back: shorter drop-outs are the same hold.")
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
@click.option("--lexicon", help="Correct each finished word against a word list: `english` (shipped), or a file "
              "of one word a line (optionally with its zipf frequency). Digits and confidently spelled words stay.")
@click.option("--say", is_flag=True, help="Speak the text when it is done, through espeak-ng.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT and onnxruntime.")
@backend_option
def transcribe(model, source, camera, fps, crop, hold, min_confidence, min_margin, repeat_after, repeat_move, release,
               word_gap, smoothing, unsure_below, reference, events_path, timeline_path, overlay_path, lexicon, say,
               batch_size, threads, backend):
    """Spell out a video file, a folder of frames (--fps) or a camera (--camera N) into text."""

    from keras_sign.spelling.decoder import SpellingDecoder, default_word_gap

    command_started = time.perf_counter()
    if (source is None) == (camera is None):
        raise KerasSignError("Pass a SOURCE (video file or folder of frames) or --camera N, not both.")
    requested = DecoderSettings(hold, min_confidence, min_margin, repeat_after, word_gap or None, smoothing,
                                unsure_below or 0.0, repeat_move or None, release).validate()
    words = None
    if lexicon:
        from keras_sign.spelling.lexicon import Lexicon

        words = Lexicon.read(lexicon)
    speaker = speech_command() if say else None
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
    settings = dataclasses.replace(requested, word_gap=word_gap or None, unsure_below=unsure_below)
    decoder = SpellingDecoder(classifier.class_names, settings, words)
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
    stage = "" if transcript.hand_seconds is None else (
        f"; the hand stage {100 * transcript.hand_seconds / max(transcript.wall_seconds, 1e-9):.0f}% of it")
    steps = ("decode, crop, resize" if classifier.reads_pixels else "decode") + (
        ", the hand's landmarks" if classifier.reads_landmarks else "")
    click.echo(f"{transcript.frames} frames ({transcript.seconds:.1f} s) in {transcript.wall_seconds:.2f} s: "
               f"{transcript.frames_per_second:.0f} frames/s ({steps}, model, decoder{stage}), after "
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
    if speaker and transcript.text.strip():
        said = subprocess.run([*speaker, transcript.text.strip()], check=False, capture_output=True, text=True)
        # espeak-ng exits 0 even when it finds no sound device; it says so on stderr, in many lines
        if said.returncode != 0 or "error" in said.stderr.lower():
            last = (said.stderr.strip().splitlines() or [f"exit status {said.returncode}"])[-1]
            click.echo(f"--say: espeak-ng could not play the text (no sound device?): {last}", err=True)


def speech_command():
    """espeak-ng's command line, or None (with one line saying how to install it)."""
    found = shutil.which("espeak-ng")
    if found is None:
        click.echo("--say: espeak-ng is not installed (e.g. `apt-get install espeak-ng`); the text is printed only.",
                   err=True)
        return None
    return [found]



class _LiveLine:
    """The growing text on one terminal line (stderr, via tqdm), with the current candidate and its hold; when
    stderr is not a terminal, one log line per typed symbol instead."""

    REFRESH_SECONDS = 0.05  # a video file runs at hundreds of frames/s: redrawing each would cost more than the model

    def __init__(self, terminal):
        self.line = status_line() if terminal else None
        self.shown_at = 0.0

    def show(self, seconds, top, state, events):
        if self.line is not None:
            candidate = f"{state['symbol']} {state['confidence']:.2f} {'#' * round(10 * state['progress']):<10}" \
                if state["candidate"] else "-"
            now = time.monotonic()
            refresh = bool(events) or now - self.shown_at >= self.REFRESH_SECONDS
            self.line.set_description_str(f"{seconds:7.1f} s  {candidate:18}  {state['text'][-50:]}", refresh=refresh)
            self.shown_at = now if refresh else self.shown_at
        else:
            for event in events:
                click.echo(f"{event.time:7.2f} s  {event.action:8} {event.symbol!r:5} ({event.confidence:.2f})  "
                           f"{event.text}", err=True)

    def end(self):
        if self.line is not None:
            self.line.close()


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every network).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--crop", type=click.Choice(["center", "full"]), default="center", show_default=True,
              help="What the model sees of each camera frame.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS (phones on the LAN).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for LiteRT and onnxruntime.")
@click.option("--shots", type=click.Path(file_okay=False), help="Turn on the page's teach mode: shots of a new signer "
              "are saved in this folder, and the page adapts the run on them (MODEL must be a run folder).")
@click.option("--lexicon", help="A word list the page may correct finished words against: `english` (shipped) or a "
              "file of one word a line.")
@backend_option
def demo(model, host, port, crop, ssl_certfile, ssl_keyfile, threads, shots, lexicon, backend):
    """Serve a web page that spells what the webcam sees (and reads dropped photos and videos)."""
    from keras_sign.demo.server import check_port_free, check_ssl_pair, import_fastapi, serve

    import_fastapi()  # a missing extra, a wrong option or a busy port is one line, before the model loads
    check_ssl_pair(ssl_certfile, ssl_keyfile)
    check_port_free(host, port)
    words = None
    if lexicon:
        from keras_sign.spelling.lexicon import Lexicon

        words = Lexicon.read(lexicon)
    select_backend(backend or "auto")
    from keras_sign.inference.classifier import load_classifier

    serve(load_classifier(model, threads), host, port, crop, ssl_certfile, ssl_keyfile, echo=click.echo, shots=shots,
          lexicon=words)
