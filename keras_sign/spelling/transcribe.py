"""`keras-sign transcribe MODEL SOURCE`: fingerspelling in a video, a folder of frames or a camera -> text.

    keras-sign transcribe exports/massey-...-tflite-none clip.mp4 --reference "HELLO WORLD"
    keras-sign transcribe runs/alphabet-... frames/ --fps 15 --events events.jsonl --timeline timeline.csv
    keras-sign transcribe exports/alphabet-...-tflite-none --camera 0 --crop center

Each frame is cropped (`--crop`), resized exactly as training resizes (`keras_sign.data.pipeline.
resize_image`), classified (in batches when reading a file) and fed to the spelling decoder
(`keras_sign.spelling.decoder`), which turns the stream of class probabilities into text.
"""

import dataclasses
import itertools
import json
import logging
import time

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.inference.inputs import stacked
from keras_sign.runs.atomic import atomic_write_csv, atomic_write_text
from keras_sign.spelling.decoder import has_control_classes

log = logging.getLogger("keras_sign")

BATCH_SIZE = 32
TOP = 3  # classes per frame in the timeline and on the overlay
NO_HAND = "no hand"  # a frame without a hand, in the timeline and on the overlay
TIMELINE_COLUMNS = ("seconds", "top1", "p1", "top2", "p2", "top3", "p3", "candidate", "held", "text")


@dataclasses.dataclass
class Transcript:
    """What came out of a stream: the text, the events that typed it, and how fast it went."""

    text: str
    events: list
    frames: int
    seconds: float  # of the stream
    wall_seconds: float  # decode + crop + resize + model + decoder, after a warm-up call
    source: str
    broken: str | None = None  # why the stream ended early, when it did
    hand_seconds: float | None = None  # of `wall_seconds`, the hand stage's (None: the model has none)

    @property
    def frames_per_second(self):
        return self.frames / self.wall_seconds if self.wall_seconds else 0.0


def crop_box(spec, width, height):
    """`(x, y, w, h)` of `--crop`: "full" (the whole frame), "center" (the centred square) or "x,y,w,h"."""
    if spec in (None, "full"):
        return 0, 0, width, height
    if spec == "center":
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    try:
        x, y, w, h = (int(part) for part in spec.split(","))
    except ValueError:
        raise KerasSignError(f"--crop must be 'full', 'center' or x,y,w,h in pixels (got '{spec}').") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise KerasSignError(f"--crop {spec} does not fit in the {width}x{height} frames; choose a box inside them.")
    return x, y, w, h


def prepare_frames(frames, boxes, image_size, center_crop):
    """Cropped frames resized to the model's input exactly as training resizes: uint8 `(n, s, s, 3)`."""
    from keras_sign.data.decode import resize_image

    crops = [frame[y:y + h, x:x + w] for frame, (x, y, w, h) in zip(frames, boxes)]
    if len({crop.shape for crop in crops}) == 1:
        return resize_image(np.stack(crops), image_size, center_crop).numpy()
    return np.stack([resize_image(crop, image_size, center_crop).numpy() for crop in crops])  # mixed sizes


def warn_about_missing_controls(class_names, settings):
    """Say once what a model without space / del / nothing classes cannot do."""
    controls = has_control_classes(class_names)
    missing = [name for name, present in controls.items() if not present]
    if missing:
        gap = f"; words end after {settings.word_gap:g} s of idle hand (--word-gap)" if settings.word_gap else ""
        log.warning("The model has no %s class: it cannot %s%s.", "/".join(missing),
                    " or ".join({"space": "type spaces", "delete": "delete", "nothing": "tell an idle hand"}[m]
                                for m in missing), gap)


def _frames_of(source, on_broken):
    """The source's frames; an error while reading ends the stream and is passed to `on_broken`."""
    iterator = iter(source.frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except KerasSignError:
            raise
        except Exception as error:  # a frame file removed or damaged mid-way, a camera unplugged
            on_broken(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            return


def transcribe(classifier, source, decoder, crop=None, batch_size=BATCH_SIZE, overlay=None, on_frame=None):
    """Spell out `source` (a `keras_sign.video.FrameSource`) with `classifier` and `decoder`.

    Args:
        classifier: a `keras_sign.classifier.Classifier`.
        source: frames with their times.
        decoder: a `SpellingDecoder` over the classifier's classes.
        crop: `--crop` ("full", "center" or "x,y,w,h").
        batch_size: frames per model call when reading a file (a camera's frames go one by one).
        overlay: an `OverlayWriter`, or None.
        on_frame: called with `(seconds, top predictions, decoder state, event list)` after each frame.

    Returns:
        A `Transcript` and the per-frame timeline rows. Ctrl-C ends a camera (or any) stream and
        keeps what was spelled so far.
    """
    events, timeline, broken = [], [], []
    frames_done, last_time, boxes_by_shape, hand_seconds = 0, 0.0, {}, 0.0
    stage = classifier.hand_stage  # a model trained on hands: each frame's hand, followed from frame to frame
    if stage is not None:
        stage.detector.reset()
        tracker = stage.detector.track
    # One-time costs (TensorFlow's first resize, the model's first call) stay out of the stream's time.
    if classifier.reads_pixels:
        blank = np.zeros((1, classifier.image_size, classifier.image_size, 3), np.uint8)
        prepare_frames(blank, [(0, 0, classifier.image_size, classifier.image_size)], classifier.image_size,
                       classifier.center_crop)
    classifier.predict(classifier.blank_input())
    started = time.perf_counter()
    frames = _frames_of(source, broken.append)
    try:
        while chunk := list(itertools.islice(frames, 1 if source.live else batch_size)):
            times, pictures = zip(*chunk)
            for picture in pictures:  # frames of a folder may differ in size; a video's never do
                if picture.shape[:2] not in boxes_by_shape:
                    boxes_by_shape[picture.shape[:2]] = crop_box(crop, picture.shape[1], picture.shape[0])
            if stage is None:
                boxes = [boxes_by_shape[picture.shape[:2]] for picture in pictures]
                probabilities = classifier.predict(prepare_frames(pictures, boxes, classifier.image_size,
                                                                  classifier.center_crop))
                tops = classifier.top(probabilities, TOP)
            else:
                stage_started = time.perf_counter()
                crops, hands = stage.of_frames(pictures, tracker)
                hand_seconds += time.perf_counter() - stage_started
                probabilities, tops, boxes = _hand_frames(classifier, crops, hands)
            for seconds, picture, frame_box, row, top in zip(times, pictures, boxes, probabilities, tops):
                # the hand's square lets the decoder see a double letter's slide; a fixed crop tells it nothing
                new = decoder.update(seconds, row, frame_box[:3] if stage is not None and frame_box else None)
                events += new
                state = decoder.state
                timeline.append([round(seconds, 4)] + [v for name, p in top for v in (name, round(p, 4))]
                                + [""] * (2 * (TOP - len(top))) + [state["candidate"] or "", round(state["held"], 3),
                                                                   state["text"]])
                if overlay is not None:
                    overlay.write(picture, frame_box, top, state)
                if on_frame is not None:
                    on_frame(seconds, top, state, new)
                last_time = seconds
            frames_done += len(chunk)
    except KeyboardInterrupt:
        broken.append("stopped with Ctrl-C")
    events += decoder.finish(last_time)  # the last word ends with the stream (a lexicon may correct it)
    wall = time.perf_counter() - started
    if frames_done == 0 and not broken:
        raise KerasSignError(f"{source.description} gave no frames to transcribe.")
    if source.expected_frames and frames_done < source.expected_frames and not broken:
        broken.append(f"the video ended after {frames_done} of its {source.expected_frames} frames (damaged?)")
    interval = 1.0 / source.fps if source.fps else 0.0
    transcript = Transcript(decoder.text, events, frames_done, last_time + interval if frames_done else 0.0, wall,
                            source.description, "; ".join(broken) or None, hand_seconds if stage else None)
    return transcript, timeline


def _hand_frames(classifier, crops, hands):
    """`(probabilities, tops, boxes)` of frames seen through the hand stage. A frame without a hand is an
    explicit no-sign frame: all-zero probabilities, which the decoder reads as an idle hand."""
    seen = [crop for crop in crops if crop is not None]
    predicted = iter(classifier.predict(stacked(seen)) if seen else [])
    probabilities, tops, boxes = [], [], []
    for crop, hand in zip(crops, hands):
        if crop is None:
            probabilities.append(np.zeros(len(classifier.class_names), np.float32))
            tops.append([(NO_HAND, 1.0)])
            boxes.append(None)
        else:
            probabilities.append(next(predicted))
            tops.append(classifier.top([probabilities[-1]], TOP)[0])
            x0, y0, side = hand.crop_box(classifier.record.preprocessing.hands["margin"])
            boxes.append((int(x0), int(y0), int(side), int(side)))
    return probabilities, tops, boxes


def write_events(path, events):
    """One JSON line per committed symbol: time, action, symbol, confidence and the text after it."""
    return atomic_write_text(path, "".join(json.dumps(dataclasses.asdict(event)) + "\n" for event in events))


def write_timeline(path, timeline):
    """One CSV row per frame: the top classes with their probabilities, the candidate, the text."""
    return atomic_write_csv(path, TIMELINE_COLUMNS, timeline)


def character_error_rate(reference, hypothesis):
    """CER (edit distance / reference length, jiwer) of two texts compared upper-case with single
    spaces, with the character alignment and the substitutions that caused errors.

    Returns a dict: `cer`, `alignment` (jiwer's text), `substitutions` ((reference char, spelled
    char) pairs), `deletions` and `insertions` (counts).
    """
    import jiwer

    def normal(text):
        return " ".join(text.upper().split())

    reference, hypothesis = normal(reference), normal(hypothesis)
    if not reference:
        raise KerasSignError("--reference is empty; pass the text that is spelled, e.g. --reference 'HELLO'.")
    result = jiwer.process_characters(reference, hypothesis or " ")
    substitutions = []
    for chunk in result.alignments[0]:
        if chunk.type == "substitute":
            ref = reference[chunk.ref_start_idx:chunk.ref_end_idx]
            hyp = (hypothesis or " ")[chunk.hyp_start_idx:chunk.hyp_end_idx]
            substitutions += list(zip(ref, hyp))
    return {
        "cer": float(result.cer),
        "alignment": jiwer.visualize_alignment(result, show_measures=False).strip(),
        "substitutions": substitutions,
        "deletions": int(result.deletions),
        "insertions": int(result.insertions),
    }
