"""The hand stage: find the hand in a photo or follow it through a video, with its 21 landmarks.

    detector = HandDetector()                      # MediaPipe's full models; HandDetector("lite") is faster
    hands = detector.find(rgb_image)               # a photo: palm detection, then landmarks
    for frame in frames:
        hands = detector.track(frame)              # a video: landmarks in last frame's region, else detect

A photo goes through palm detection (`keras_sign.hands.palm`), the region around the best palm
(`geometry.roi_from_palm`) through the landmark model (`keras_sign.hands.landmarks`), and a hand is kept
when the landmark model says one is present (its presence >= 0.5: the palm detector's false alarms on
an empty wall are rejected there). Photos cropped tight around the hand (Massey's, the digit photos) leave
the palm detector too little context: a photo with no hand is tried once more with a black border of a
quarter of its long side around it. In a video, the next frame's region comes from this frame's landmarks
(`geometry.roi_from_landmarks`) and only the landmark model runs; detection runs again when the hand is
lost, as MediaPipe's tracking graph does.

The models are MediaPipe's, carried as package data with their licence and provenance (assets/).
"""

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from keras_sign.errors import KerasSignError
from keras_sign.hands.geometry import crop_box, integer_box, roi_from_landmarks, roi_from_palm
from keras_sign.hands.landmarks import MIN_PRESENCE, LandmarkModel
from keras_sign.hands.palm import PalmDetector

ASSETS = Path(__file__).parent / "assets"
COMPLEXITIES = ("full", "lite")
RETRY_BORDER = 0.25  # of the long side: the black border a photo without a hand is tried again with
DEFAULT_MARGIN = 0.25  # of the landmarks' box, on each side of the classifier's crop
HANDEDNESS = ("left", "right")
NO_HAND_CLASS = "nothing"  # the class that answers a photo without a hand (ASL Alphabet's empty backdrop)


@dataclasses.dataclass(frozen=True)
class Hand:
    """One hand in an image, in its pixels (after its EXIF orientation): see `HandDetector`."""

    presence: float  # the landmark model's probability that a hand is there
    handedness: str  # "left" or "right": the person's own hand, for an unmirrored photo
    handedness_score: float
    palm_score: float | None  # None: found by tracking, without palm detection
    palm_box: tuple | None  # (x0, y0, x1, y1)
    roi: tuple  # (x, y, size, rotation): the region the landmark model read
    landmarks: np.ndarray  # (21, 3): x, y in pixels, z relative to the wrist in the same scale
    world_landmarks: np.ndarray  # (21, 3), metres
    image_size: tuple  # (width, height)

    def crop_box(self, margin=DEFAULT_MARGIN):
        """`(x0, y0, side)`: the square a classifier sees of this hand (`geometry.crop_box`)."""
        return crop_box(self.landmarks, margin)

    def crop(self, margin, mirror_left):
        """`(x0, y0, side, mirror)` in whole pixels: what `keras_sign.data.decode.crop_square` cuts for a model,
        the same in training and at inference; `mirror` is 1 for a left hand when left hands are mirrored."""
        return (*integer_box(self.crop_box(margin)), int(bool(mirror_left) and self.handedness == "left"))

    @property
    def normalized_landmarks(self):
        """`(21, 3)` landmarks as MediaPipe Tasks' HandLandmarker gives them: x and y divided by the image's
        width and height, z by its width."""
        width, height = self.image_size
        return self.landmarks / [width, height, width]

    def scaled(self, factor):
        """The same hand in an image `factor` times as large (found in a reduced copy of a large photo)."""
        x, y, size, rotation = self.roi
        width, height = self.image_size
        return dataclasses.replace(
            self, palm_box=None if self.palm_box is None else tuple(v * factor for v in self.palm_box),
            roi=(x * factor, y * factor, size * factor, rotation), landmarks=self.landmarks * factor,
            image_size=(round(width * factor), round(height * factor)))

    def to_json(self):
        return {
            "presence": round(self.presence, 4), "handedness": self.handedness,
            "handedness_score": round(self.handedness_score, 4),
            "palm_score": None if self.palm_score is None else round(self.palm_score, 4),
            "palm_box": None if self.palm_box is None else [round(v, 2) for v in self.palm_box],
            "roi": [round(v, 4) for v in self.roi], "landmarks": np.round(self.landmarks, 2).tolist(),
            "world_landmarks": np.round(self.world_landmarks, 5).tolist(), "image_size": list(self.image_size),
        }

    @classmethod
    def from_json(cls, value):
        return cls(value["presence"], value["handedness"], value["handedness_score"], value["palm_score"],
                   None if value["palm_box"] is None else tuple(value["palm_box"]), tuple(value["roi"]),
                   np.asarray(value["landmarks"], np.float64), np.asarray(value["world_landmarks"], np.float64),
                   tuple(value["image_size"]))


def provenance():
    """The models' provenance record (assets/PROVENANCE.json)."""
    return json.loads((ASSETS / "PROVENANCE.json").read_text(encoding="utf-8"))


@functools.cache
def checked_model_file(name, assets=ASSETS):
    """The path of one of the packaged model files, refused in one line when it is missing or not the file its
    provenance names (a damaged install)."""
    path = Path(assets) / name
    expected = provenance()["files"][name]["sha256"]
    if not path.is_file():
        raise KerasSignError(f"The hand model {path} is missing; reinstall keras-sign (pip install --force-reinstall "
                             "keras-sign).")
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise KerasSignError(f"The hand model {path} is damaged (its SHA-256 is not the one assets/PROVENANCE.json "
                             "names); reinstall keras-sign.")
    return path


def _interpreter(name, assets=ASSETS):
    """A function of `threads` giving a LiteRT interpreter of the packaged model `name`."""
    path = checked_model_file(name, assets)  # now: a damaged install is named before any work

    def make(threads):
        try:
            from ai_edge_litert import interpreter as litert
        except ImportError:
            raise KerasSignError("The hand stage runs in LiteRT, which is not installed; run "
                                 "`pip install ai-edge-litert`.") from None
        interpreter = litert.Interpreter(model_path=str(path), num_threads=threads,
                                         experimental_op_resolver_type=litert.OpResolverType.BUILTIN)
        interpreter.allocate_tensors()
        return interpreter

    return make


class HandDetector:
    """MediaPipe's palm detection and hand landmark models with their decoding; see the module docstring.

    Args:
        complexity: "full" (more accurate) or "lite" (faster) models.
        max_hands: hands to report, most confident first (one: the signing hand).
        threads: CPU threads for LiteRT.
        retry_border: the black border, as a share of the long side, a photo without a hand is tried again
            with (0: no retry).
        assets: the folder of the model files (the package's own).
    """

    def __init__(self, complexity="full", max_hands=1, threads=None, retry_border=RETRY_BORDER, assets=ASSETS):
        if complexity not in COMPLEXITIES:
            raise KerasSignError(f"Unknown hand model '{complexity}'; choose one of {', '.join(COMPLEXITIES)}.")
        if max_hands < 1:
            raise KerasSignError(f"--max-hands must be 1 or more (got {max_hands}).")
        self.complexity, self.max_hands, self.retry_border = complexity, max_hands, retry_border
        self.palms = PalmDetector(_interpreter(f"palm_detection_{complexity}.tflite", assets), threads)
        self.landmark_model = LandmarkModel(_interpreter(f"hand_landmark_{complexity}.tflite", assets), threads)
        self.tracked = []  # the regions to read in the next video frame

    @property
    def description(self):
        """What the run record says of this stage's models."""
        files = provenance()["files"]
        return {"models": self.complexity, "source": provenance()["wheel"],
                "sha256": {kind: files[f"{kind}_{self.complexity}.tflite"]["sha256"]
                           for kind in ("palm_detection", "hand_landmark")}}

    def find(self, image):
        """The hands in a photo (RGB uint8 `(h, w, 3)`), most confident first: none when there is none."""
        image = _rgb(image)
        hands = self._detect(image)
        if not hands and self.retry_border:
            border = int(round(max(image.shape[:2]) * self.retry_border))
            padded = np.pad(image, ((border, border), (border, border), (0, 0)))
            hands = [_shifted(hand, -border, image.shape) for hand in self._detect(padded)]
        return hands

    def track(self, frame):
        """The hands in the next frame of a video: read in the regions the last frame's landmarks give; where
        the hand is lost (or none was followed), detected afresh. `reset()` forgets the last frame."""
        hands, self.tracked = self.follow(frame, self.tracked)
        return hands

    def follow(self, frame, regions):
        """`(hands, next regions)`: `track` for a caller that keeps its own regions (one per browser tab)."""
        frame = _rgb(frame)
        hands = [hand for hand in (self._read(frame, roi, None, None) for roi in regions) if hand is not None]
        if len(hands) < self.max_hands:
            hands = (hands + [hand for hand in self._detect(frame) if not _same_hand(hand, hands)])[:self.max_hands]
        return hands, [roi_from_landmarks(hand.landmarks) for hand in hands]

    def reset(self):
        self.tracked = []

    def _detect(self, image):
        hands = []
        for palm in self.palms.detect(image):
            hand = self._read(image, roi_from_palm(palm.box, palm.keypoints), palm.score, palm.box)
            if hand is not None and not _same_hand(hand, hands):
                hands.append(hand)
            if len(hands) == self.max_hands:
                break
        return hands

    def _read(self, image, roi, palm_score, palm_box):
        reading = self.landmark_model.read(image, roi)
        if reading.presence < MIN_PRESENCE:
            return None
        right = reading.right_hand >= 0.5
        return Hand(reading.presence, HANDEDNESS[right], max(reading.right_hand, 1 - reading.right_hand), palm_score,
                    palm_box, (roi.x, roi.y, roi.size, roi.rotation), reading.landmarks, reading.world_landmarks,
                    (image.shape[1], image.shape[0]))


def _rgb(image):
    """An image as RGB uint8 `(h, w, 3)`: a greyscale one gets three equal channels."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise KerasSignError(f"An image for the hand stage must be RGB uint8 (h, w, 3); got {image.shape} {image.dtype}.")
    return np.ascontiguousarray(image[:, :, :3])


def _shifted(hand, offset, shape):
    """A hand found in an image padded by `-offset` pixels on each side, in the unpadded image's pixels."""
    delta = np.array([offset, offset, 0.0])
    box = None if hand.palm_box is None else tuple(v + offset for v in hand.palm_box)
    x, y, size, rotation = hand.roi
    return dataclasses.replace(hand, palm_box=box, roi=(x + offset, y + offset, size, rotation),
                               landmarks=hand.landmarks + delta, image_size=(shape[1], shape[0]))


def _same_hand(hand, others, overlap=0.5):
    """Whether `hand` is one of `others` seen again: their landmarks' boxes overlap by more than `overlap`
    (intersection over union), as MediaPipe's association of tracked and detected hands decides."""
    def box(landmarks):
        return (*landmarks[:, :2].min(axis=0), *landmarks[:, :2].max(axis=0))

    a = box(hand.landmarks)
    for other in others:
        b = box(other.landmarks)
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
        if union > 0 and width * height / union > overlap:
            return True
    return False
