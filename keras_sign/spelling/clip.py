"""A fingerspelled test clip built from real photos, with the text it spells beside it.

    keras-sign data clip --text "HELLO WORLD" --run runs/massey-signer --split test --out clips/hello-world
    keras-sign data clip --text "CAB" --data-dir ../shared/data/asl_alphabet_subset --out clips/cab

Each symbol shows one photo of its class (a random one, seeded) for a random 0.4-1.2 s, moving a
little from frame to frame (shift, scale and brightness drift, as a hand and a camera do), with a
short cross-fade to the next symbol. A letter that repeats (the LL of HELLO) is made one of two
ways (`double`): `pause`, a brief idle moment between the two holds; or `slide`, as signers make it:
the hand holds the letter, slides the same handshape a little to one side and holds it again (the
photos are then drawn at `SLIDE_SCALE` of the frame, so that the hand stays in view). Between words
the clip holds the `space` sign when the photos have that class; otherwise it idles, on `--empty` (a photo of an empty
room: no hand at all) when given, else on `nothing` photos when there are any, else on blank background. Photos from a run's test split show a signer the model never saw.

Writes OUT/frames/frame-00000.jpg ..., OUT/clip.mp4 (with OpenCV), OUT/reference.txt (the text),
OUT/timing.csv (which photo shows which symbol, from when to when) and OUT/clip.json (text, frame
rate, size, seed and where the photos came from).
"""

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import atomic_write_csv, atomic_write_json, atomic_write_text
from keras_sign.runs.folder import check_new_folder
from keras_sign.runs.record import read_classes
from keras_sign.spelling.decoder import key_of

log = logging.getLogger("keras_sign")

HOLD_SECONDS = (0.4, 1.2)
WORD_GAP_SECONDS = (0.6, 1.0)
REPEAT_GAP_SECONDS = 0.25  # the idle moment between two holds of one letter
DOUBLES = ("pause", "slide")  # how a repeated letter is made
SLIDE_SECONDS = (0.2, 0.35)  # the slide between two holds of one letter
SLIDE_DISTANCE = (0.15, 0.25)  # how far it slides, as a share of the frame's width
SLIDE_SCALE = 0.75  # the photos' size in a clip with slides: room for the hand to move
LEAD_SECONDS = 0.5  # idle before the first and after the last symbol
TRANSITION_SECONDS = 0.15
JITTER = {"shift": 0.04, "scale": 0.04, "brightness": 0.08}  # the most each drifts, as a fraction


@dataclasses.dataclass
class Segment:
    """One stretch of the clip: a photo (None: blank background) held for `seconds`."""

    symbol: str  # what it spells: "A", " ", or "" for idle
    photo: Path | None
    orientation: int
    seconds: float
    offset: float = 0.0  # where the photo stands, as a share of the frame's width right of the centre
    slides_to: float | None = None  # where it has slid to by the segment's end (None: it stays)

    @property
    def end_offset(self):
        return self.offset if self.slides_to is None else self.slides_to


def photos_by_symbol(paths, labels, orientations, class_names):
    """`{symbol: [(path, orientation), ...]}` with " " for a space class and "" for `nothing`."""
    table = {}
    for path, label, orientation in zip(paths, labels, orientations):
        action, symbol = key_of(class_names[label])
        if action == "symbol":
            key = symbol
        elif action == "space":
            key = " "
        elif class_names[label].lower() == "nothing":
            key = ""
        else:
            continue  # del and other idle classes have no place in a spelled text
        table.setdefault(key, []).append((Path(path), orientation))
    return table


def plan_segments(text, photos, rng, empty=None, double="pause"):
    """The clip's segments for `text` (upper-cased), or a clear error for a symbol with no photo. `empty` is a
    photo without a hand (an empty room) that every idle stretch shows instead; `double` is how a repeated
    letter is made (`DOUBLES`)."""
    if double not in DOUBLES:
        raise KerasSignError(f"--double must be one of {', '.join(DOUBLES)} (got {double!r}).")
    text = " ".join(text.upper().split())
    missing = sorted({c for c in text if c != " " and c not in photos})
    if not text or missing:
        known = "".join(sorted(k for k in photos if k.strip()))
        raise KerasSignError(f"No photos for {', '.join(missing) or 'an empty text'}; the photos spell {known}.")

    def idle(seconds):
        if empty is not None:
            return Segment("", Path(empty), 1, seconds)
        choice = photos.get("")
        photo, orientation = choice[rng.integers(len(choice))] if choice else (None, 1)
        return Segment("", photo, orientation, seconds)

    segments, previous = [idle(LEAD_SECONDS)], None
    for symbol in text:
        if symbol == " " and " " not in photos:
            segments.append(idle(float(rng.uniform(*WORD_GAP_SECONDS))))
        else:
            hold = float(rng.uniform(*HOLD_SECONDS))
            if symbol == previous and double == "slide":
                segments += _slide(segments[-1], rng, hold)
                continue
            if symbol == previous:
                segments.append(idle(REPEAT_GAP_SECONDS))
            photo, orientation = photos[symbol][rng.integers(len(photos[symbol]))]
            segments.append(Segment(symbol, photo, orientation, hold))
        previous = symbol
    segments.append(idle(LEAD_SECONDS))
    return text, segments


def _slide(held, rng, hold):
    """The slide from the hold `held` (moved to one side first) to the same photo held again on the other."""
    if held.offset == 0:
        held.offset = float(rng.choice([-1, 1]) * rng.uniform(*SLIDE_DISTANCE) / 2)
    return [Segment(held.symbol, held.photo, held.orientation, float(rng.uniform(*SLIDE_SECONDS)), held.offset,
                    -held.offset),
            Segment(held.symbol, held.photo, held.orientation, hold, -held.offset)]


# What turns a picture upright for each EXIF orientation (as PIL.ImageOps.exif_transpose does).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def _upright(path, orientation, size):
    with Image.open(path) as image:
        image = image.convert("RGB")
    if orientation in UPRIGHT:
        image = image.transpose(UPRIGHT[orientation])
    return image.resize((size, size), Image.Resampling.BICUBIC)


def _background(segments, size):
    """Blank frames take the colour of the photos' borders (black for Massey's cut-out hands)."""
    borders = []
    for segment in segments:
        if segment.photo is not None and len(borders) < 8:
            pixels = np.asarray(_upright(segment.photo, segment.orientation, size))
            borders.append(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]))
    if not borders:
        return (0, 0, 0)
    return tuple(int(v) for v in np.median(np.concatenate(borders), axis=0))


class _Drift:
    """Shift, scale and brightness that wander smoothly within `JITTER`, seeded."""

    def __init__(self, rng):
        self.rng = rng
        self.value = np.zeros(4)

    def step(self):
        self.value = np.clip(0.85 * self.value + 0.15 * self.rng.uniform(-1, 1, 4), -1, 1)
        return self.value


def _jittered(image, drift, background, offset=0.0, scale=1.0):
    size = image.size[0]
    dx, dy = drift[:2] * JITTER["shift"] * size
    dx += offset * size
    scale *= 1 + drift[2] * JITTER["scale"]
    centre = (size - 1) / 2
    # PIL maps each output pixel back into the input: zoom about the centre, then shift.
    coefficients = (1 / scale, 0, centre - (centre + dx) / scale, 0, 1 / scale, centre - (centre + dy) / scale)
    moved = image.transform(image.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR,
                            fillcolor=background)
    pixels = np.asarray(moved, np.float32) * (1 + drift[3] * JITTER["brightness"])
    return np.clip(pixels, 0, 255).astype(np.uint8)


def render(segments, fps, size, rng, scale=1.0):
    """The clip's frames (uint8 RGB `(size, size, 3)` each) and each segment's first and last frame; `scale` is
    the photos' size in the frame."""
    background = _background(segments, size)
    blank = Image.new("RGB", (size, size), background)
    drift = _Drift(rng)
    frames, spans = [], []
    for index, segment in enumerate(segments):
        picture = blank if segment.photo is None else _upright(segment.photo, segment.orientation, size)
        start, count = len(frames), max(1, round(segment.seconds * fps))
        for frame in range(count):
            offset = segment.offset + (segment.end_offset - segment.offset) * (frame + 1) / count
            frames.append(_jittered(picture, drift.step(), background, offset, scale))
        spans.append((start, len(frames) - 1))
        if index + 1 < len(segments):  # cross-fade into the next segment, moving to where it stands
            following = segments[index + 1]
            target = blank if following.photo is None else _upright(following.photo, following.orientation, size)
            steps = round(TRANSITION_SECONDS * fps)
            for step in range(1, steps + 1):
                weight = step / (steps + 1)
                mixed = Image.blend(picture, target, weight)
                offset = segment.end_offset + (following.offset - segment.end_offset) * weight
                frames.append(_jittered(mixed, drift.step(), background, offset, scale))
    return frames, spans


def write_mp4(path, frames, fps):
    """The frames as an mp4 (OpenCV's MPEG-4 part 2 writer); False when OpenCV is not installed."""
    try:
        from keras_sign.spelling.video import import_cv2

        cv2 = import_cv2()
    except KerasSignError:
        return False
    height, width = frames[0].shape[:2]
    partial = path.with_name(f".{path.stem}.partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    partial.replace(path)
    return True


def write_y4m(path, frames, fps):
    """The frames as an uncompressed YUV4MPEG2 file (4:2:0, BT.601 studio range), the format Chromium
    plays as a fake camera (`--use-file-for-fake-video-capture`). Width and height must be even."""
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise KerasSignError(f"A y4m clip needs an even width and height (got {width}x{height}).")
    to_yuv = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F{round(fps * 1000)}:1000 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            yuv = frame.astype(np.float32) @ to_yuv.T.astype(np.float32) + np.float32([16, 128, 128])
            # 4:2:0: one chroma sample per 2x2 block of pixels, their mean
            chroma = yuv[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
            file.write(b"FRAME\n")
            for plane in (yuv[..., 0], chroma[..., 0], chroma[..., 1]):
                file.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    partial.replace(path)


def build_clip(text, paths, labels, orientations, class_names, out, fps=15.0, size=160, seed=0, photos="photos",
               empty=None, double="pause"):
    """Write the clip of `text` made from the photos into the new folder `out`; return `clip.json`'s dict.

    `photos` says where the photos came from, for `clip.json`; `empty` is a photo of an empty room or backdrop
    that the idle stretches (the lead, the pauses between words) show, as a camera sees when the hand is away;
    `double` is how a repeated letter is made: `pause` or `slide` (`DOUBLES`).
    """
    if fps <= 0 or size < 32:
        raise KerasSignError(f"--fps must be positive and --size at least 32 (got {fps} and {size}).")
    if empty is not None and not Path(empty).is_file():
        raise KerasSignError(f"--empty {empty} does not exist; pass a photo of an empty room or backdrop.")
    out = check_new_folder(out, "Clip folder")
    rng = np.random.default_rng(seed)
    text, segments = plan_segments(text, photos_by_symbol(paths, labels, orientations, class_names), rng, empty,
                                   double)
    frames, spans = render(segments, fps, size, rng, SLIDE_SCALE if double == "slide" else 1.0)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "frames").mkdir(parents=True)
    try:
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(staging / "frames" / f"frame-{index:05d}.jpg", quality=95)
        has_video = write_mp4(staging / "clip.mp4", frames, fps)
        atomic_write_text(staging / "reference.txt", text + "\n")
        summary = {"text": text, "frames": len(frames), "seconds": round(len(frames) / fps, 3), "fps": fps,
                   "size": size, "seed": seed, "photos": photos, "video": "clip.mp4" if has_video else None,
                   "empty": None if empty is None else str(empty), "double": double}
        atomic_write_json(staging / "clip.json", summary)
        atomic_write_csv(staging / "timing.csv", ("symbol", "start_seconds", "end_seconds", "photo"), [
            [_label(segment), round(first / fps, 3), round((last + 1) / fps, 3), segment.photo or "(blank)"]
            for segment, (first, last) in zip(segments, spans)
        ])
        if out.exists():
            out.rmdir()  # empty: check_new_folder refused one with files
        staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not has_video:
        log.warning("OpenCV is not installed: wrote the frames but no clip.mp4 (pip install 'keras-sign[video]').")
    return summary


def _label(segment):
    """What timing.csv says a segment spells: its symbol, `(idle)`, or `(slide)` between two holds of a letter."""
    if segment.slides_to is not None:
        return "(slide)"
    return segment.symbol or "(idle)"


def clip_photos(run=None, split="test", data_dir=None):
    """`(paths, labels, orientations, class names, description)` of the photos a clip is made from."""
    from keras_sign.data.scan import scan_folder
    from keras_sign.runs.folder import RunFolder

    if (run is None) == (data_dir is None):
        raise KerasSignError("Pass either --run RUN (its split's photos) or --data-dir FOLDER.")
    if run is not None:
        folder = RunFolder(run)
        if not folder.file("split.csv").is_file():
            raise KerasSignError(f"{run} is not a run folder (no split.csv); pass the folder `keras-sign train` wrote.")
        files = folder.split_files(split)
        if not files.paths:
            raise KerasSignError(f"The {split} split of {run} is empty; choose another --split.")
        orientations = files.orientations or [1] * len(files.paths)
        return files.paths, files.labels, orientations, read_classes(folder.path), f"the {split} split of {run}"
    table = scan_folder(data_dir, min_classes=1)
    return ([table.root / r.path for r in table.records], table.labels, [r.orientation for r in table.records],
            table.class_names, str(data_dir))
