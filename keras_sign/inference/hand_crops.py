"""The hand stage at inference: what a model trained with `--hands crop` (or a landmark model) sees of a
photo or a video frame.

    stage = HandCrops(record.preprocessing.hands, image_size=64)
    crop, hand = stage.of_photo(path)          # (uint8 crop, Hand), or (None, None): no hand, no letter
    crops, hands = stage.of_frames(frames, tracker)   # a video: the hand followed from frame to frame

The settings come from the run's record (the models, the crop's margin, whether left hands are mirrored),
so a command never needs a flag to apply them. The crop is cut by `keras_sign.data.decode.crop_square`
and resized by `resize_image`, exactly as training cut and resized the photos. For a landmark model (stage
"landmarks") what the model sees of a hand is its landmark features (`keras_sign.hands.features`) instead,
for a fusion model (stage "fusion") both.
"""

import json
from pathlib import Path


import numpy as np

from keras_sign.data.decode import crop_square, decode_upright, import_tensorflow, resize_image
from keras_sign.hands.detector import Hand, HandDetector
from keras_sign.hands.features import FEATURES, landmark_features
from keras_sign.hands.images import read_upright
from keras_sign.runs.record import HANDS_FILE, reads_landmarks, reads_pixels


def hand_features(hand, settings):
    return landmark_features(hand.landmarks, hand.handedness, settings["mirror_left"])


class HandCrops:
    """A run's hand stage; see the module docstring."""

    def __init__(self, settings, image_size, threads=None):
        self.settings, self.image_size = settings, image_size
        self.detector = HandDetector(settings["models"], 1, threads, settings.get("retry_border", 0.25))

    def crop(self, image, hand):
        """The model's view of `hand` in an upright RGB image (numpy or tensor) of its own pixels: its square,
        for a landmark model its landmark features, for a fusion model the pair `(square, features)`."""
        if not reads_pixels(self.settings):
            return hand_features(hand, self.settings)
        crop = hand.crop(self.settings["margin"], self.settings["mirror_left"])
        square = resize_image(crop_square(image, crop), self.image_size).numpy()
        return (square, hand_features(hand, self.settings)) if reads_landmarks(self.settings) else square

    def of_photo(self, path, orientation=1):
        """`(crop, hand)` of a photo file, `(None, None)` when it holds no hand. The hand is looked for in the
        photo at most 1280 pixels wide (as training's scan looked) and cut from the full photo."""
        small, scale = read_upright(path)
        hands = self.detector.find(small)
        if not hands:
            return None, None
        hand = hands[0].scaled(scale)
        if not reads_pixels(self.settings):
            return hand_features(hand, self.settings), hand
        tf = import_tensorflow()
        image = decode_upright(tf.io.read_file(str(path)), orientation)
        return self.crop(image, hand), hand

    def of_frames(self, frames, tracker):
        """`(crops, hands)` of consecutive video frames (full-size RGB uint8), following the hand with
        `tracker` (a `HandDetector`'s `track`); a frame without a hand has None for both."""
        crops, hands = [], []
        for frame in frames:
            found = tracker(np.asarray(frame))
            hands.append(found[0] if found else None)
            crops.append(self.crop(frame, found[0]) if found else None)
        return crops, hands


def crops_of(hands, settings):
    """Each hand's crop `(x0, y0, side, mirror)` under a run's hand stage (`settings`), None for a photo without one."""
    return [None if hand is None else hand.crop(settings["margin"], settings["mirror_left"]) for hand in hands]


def hands_of_files(paths, sha1s, settings, cache_folder=None):
    """The first hand of each photo under a run's hand stage (`settings`), None where it holds none: from the
    hand cache, the hands found now where they never were (`keras_sign.hands.cache`)."""
    from keras_sign.hands.cache import HandCache

    detector = HandDetector(settings["models"], 1, None, settings.get("retry_border", 0.25))
    return [found[0] if found else None for found in HandCache(detector, cache_folder).hands_of(list(paths),
                                                                                                list(sha1s))]


def run_hands(run_path, paths, root):
    """The first hand of each photo of `paths` (absolute, under `root`) as the run's split used it (its
    hands.jsonl), None where it holds none."""
    hands = {}
    with open(Path(run_path) / HANDS_FILE, encoding="utf-8", errors="surrogateescape") as file:
        for line in file:
            entry = json.loads(line)
            hands[entry["path"]] = Hand.from_json(entry["hands"][0]) if entry["hands"] else None
    return [hands[str(Path(path).relative_to(root))] for path in paths]


def landmark_inputs(hands, settings):
    """`(n, 63)` float32 landmark features of `hands` (none of them None), as a landmark model reads them."""
    if not hands:
        return np.zeros((0, FEATURES), np.float32)
    return np.stack([hand_features(hand, settings) for hand in hands])


def photo_inputs(paths, preprocessing, orientations=None, crops=None, hands=None, batch_size=64):
    """Batches of what a model reads of photos (absolute paths), as training read them: the images (with a hand
    stage, the hands' squares `crops`); for a landmark model the features of `hands`; for a fusion model the
    pairs `(squares, features)`. Every photo must hold its hand where the model reads one."""
    from keras_sign.data.pipeline import image_batches

    if not preprocessing.reads_pixels:
        features = landmark_inputs(hands, preprocessing.hands)
        yield from (features[start:start + batch_size] for start in range(0, len(features), batch_size))
        return
    start = 0
    for squares in image_batches(paths, preprocessing.image_size, preprocessing.center_crop, orientations,
                                 batch_size, crops):
        if preprocessing.reads_landmarks:
            features = landmark_inputs(hands[start:start + len(squares)], preprocessing.hands)
            start += len(squares)
            squares = squares, features
        yield squares
