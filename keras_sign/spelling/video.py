"""Frames in and out: a video file, a folder of frames or a camera in; an annotated video out.

    source = open_source("clip.mp4")                  # or a folder of frames, or camera=0
    for seconds, frame in source.frames:              # upright uint8 RGB, full size
        ...

Video files and cameras go through OpenCV (`pip install 'keras-sign[video]'`); a folder of frames
needs only TensorFlow and is read through the training pipeline's decode (EXIF orientation
applied), its files in natural name order (frame2 before frame10) at `fps` frames per second.
"""

import dataclasses
import logging
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

VIDEO_EXTRA = "pip install 'keras-sign[video]'"
DEFAULT_FOLDER_FPS = 30.0


def import_cv2():
    """OpenCV, quiet, or a one-line error saying how to install it."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # it prints a warning for every file it cannot open
    try:
        import cv2
    except ImportError:
        raise KerasSignError(f"Reading and writing video needs OpenCV; run `{VIDEO_EXTRA}`.") from None
    return cv2


@dataclasses.dataclass
class FrameSource:
    """Frames with their time: `frames` yields `(seconds, uint8 RGB (h, w, 3))`."""

    description: str
    fps: float  # frames per second, for an overlay video; a camera's is nominal
    frames: object
    live: bool = False  # a camera: process each frame as it comes, never batch
    expected_frames: int | None = None  # what the file claims, to notice a video that breaks off


def natural_key(path):
    """Sort key that orders frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", Path(path).name)]


def open_source(source=None, camera=None, fps=None):
    """A `FrameSource` for a video file, a folder of frames, or camera index `camera`."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise KerasSignError(f"--fps must be a positive number (got {fps}).")
    if camera is not None:
        return _camera(camera)
    path = Path(source)
    if path.is_dir():
        return _folder(path, fps or DEFAULT_FOLDER_FPS)
    if not path.is_file():
        raise KerasSignError(f"{path} does not exist; pass a video file, a folder of frames, or --camera N.")
    if _is_photo(path):
        raise KerasSignError(f"{path} is a photo, not a video: spelling needs a sign held over time. Use "
                             "`keras-sign predict MODEL PHOTO` for a photo, or pass a video or a folder of frames.")
    return _video(path, fps)


def _is_photo(path):
    """Whether a file is a still image (OpenCV opens one as a one-frame 'video' whose frame count is
    -2**63)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) == 1
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


def _video(path, fps):
    cv2 = import_cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise KerasSignError(f"{path} cannot be opened as a video (not a video, or a codec OpenCV lacks); "
                             "convert it to H.264 mp4, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`.")
    count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)  # some containers report -1 or less
    stated = capture.get(cv2.CAP_PROP_FPS)
    rate = fps or (stated if stated and np.isfinite(stated) and stated > 0 else None)
    if rate is None:
        log.warning("%s does not state its frame rate; assuming %g frames/s (set --fps).", path, DEFAULT_FOLDER_FPS)
        rate = DEFAULT_FOLDER_FPS

    def frames():
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield index / rate, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise KerasSignError(f"{path} holds no frame that OpenCV can decode; check that the video plays.")

    return FrameSource(f"{path} ({count} frames at {rate:g} frames/s)", rate, frames(), expected_frames=count or None)


def _folder(path, fps):
    from keras_sign.data.decode import decode_upright, import_tensorflow
    from keras_sign.data.scan import inspect_image

    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_key)
    checks = [inspect_image(file) for file in files]
    usable = [(file, check.orientation) for file, check in zip(files, checks) if check.problem is None]
    skipped = [f"{file.name} ({check.problem})" for file, check in zip(files, checks) if check.problem]
    if skipped:
        log.warning("Left out %d file(s) of %s that are not frames: %s", len(skipped), path, "; ".join(skipped[:5]))
    if not usable:
        raise KerasSignError(f"{path} holds no image frames; pass a folder of .jpg/.png frames or a video file.")
    sizes = {(check.width, check.height) for check in checks if check.problem is None}
    if len(sizes) > 1:
        log.warning("The frames of %s have %d different sizes; each is resized on its own.", path, len(sizes))
    tf = import_tensorflow()
    names, orientations = zip(*usable)
    dataset = tf.data.Dataset.from_tensor_slices(([os.fsencode(f) for f in names], np.asarray(orientations, np.int32)))
    dataset = dataset.map(lambda p, o: decode_upright(tf.io.read_file(p), o), num_parallel_calls=tf.data.AUTOTUNE)

    def frames():
        for index, frame in enumerate(dataset.prefetch(8).as_numpy_iterator()):
            yield index / fps, frame

    return FrameSource(f"{path} ({len(names)} frames at {fps:g} frames/s)", fps, frames(), expected_frames=len(names))


def _camera(index):
    cv2 = import_cv2()
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        raise KerasSignError(f"Camera {index} cannot be opened (no such camera, or another program uses it); "
                             "try --camera 0, or pass a video file.")
    rate = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FOLDER_FPS

    def frames():
        started = time.monotonic()
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    log.warning("Camera %s stopped sending frames.", index)
                    break
                yield time.monotonic() - started, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return FrameSource(f"camera {index}", rate, frames(), live=True)


class OverlayWriter:
    """An mp4 of the frames with what the model sees and spells drawn on them; renamed into place
    only once it is complete, so a broken run never leaves a half-written video under its name."""

    def __init__(self, path, fps):
        self.cv2 = import_cv2()
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mov"):
            raise KerasSignError(f"--overlay {path} must end in .mp4 (or .avi / .mov).")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps
        self.writer = None

    def write(self, frame, crop, predictions, state):
        """One frame: `crop` (x, y, w, h) outlined (None: none), the top classes, the candidate's hold, the text."""
        cv2 = self.cv2
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        height, width = image.shape[:2]
        if self.writer is None:
            self.size = (width, height)
            self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise KerasSignError(f"OpenCV cannot write {self.path}; choose an .mp4 path in a writable folder.")
        if (width, height) != self.size:
            image = cv2.resize(image, self.size)
        if crop is not None:  # None: the hand stage found no hand in this frame
            x, y, w, h = crop
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (0, 200, 255), 2)
        scale = max(height / 480, 0.4)
        line = int(22 * scale)
        for row, (name, probability) in enumerate(predictions):
            cv2.putText(image, f"{name} {probability:.2f}", (8, line * (row + 1)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6 * scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        if state["candidate"] is not None:
            bar = int((width - 16) * state["progress"])
            cv2.rectangle(image, (8, height - 2 * line - 10), (8 + bar, height - 2 * line - 4), (0, 220, 0), -1)
        cv2.putText(image, state["text"][-40:] or "_", (8, height - line), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale,
                    (0, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        self.writer.write(image)

    def close(self):
        """Finish the file and put it in place; return its path (None when no frame was written)."""
        if self.writer is None:
            return None
        self.writer.release()
        os.replace(self.partial, self.path)
        return self.path

    def discard(self):
        if self.writer is not None:
            self.writer.release()
        self.partial.unlink(missing_ok=True)
