"""The hand stage at inference: what a model trained with `--hands crop` sees of a photo or a video frame.

    stage = HandCrops(record.preprocessing.hands, image_size=64)
    crop, hand = stage.of_photo(path)          # (uint8 crop, Hand), or (None, None): no hand, no letter
    crops, hands = stage.of_frames(frames, tracker)   # a video: the hand followed from frame to frame

The settings come from the run's record (the models, the crop's margin, whether left hands are mirrored),
so a command never needs a flag to apply them. The crop is cut by `keras_sign.data.decode.crop_square`
and resized by `resize_image`, exactly as training cut and resized the photos.
"""

import numpy as np

from keras_sign.data.decode import crop_square, decode_upright, import_tensorflow, resize_image
from keras_sign.hands.detector import HandDetector
from keras_sign.hands.images import read_upright


class HandCrops:
    """A run's hand stage; see the module docstring."""

    def __init__(self, settings, image_size, threads=None):
        self.settings, self.image_size = settings, image_size
        self.detector = HandDetector(settings["models"], 1, threads, settings.get("retry_border", 0.25))

    def crop(self, image, hand):
        """The model's view of `hand` in an upright RGB image (numpy or tensor) of its own pixels."""
        crop = hand.crop(self.settings["margin"], self.settings["mirror_left"])
        return resize_image(crop_square(image, crop), self.image_size).numpy()

    def of_photo(self, path, orientation=1):
        """`(crop, hand)` of a photo file, `(None, None)` when it holds no hand. The hand is looked for in the
        photo at most 1280 pixels wide (as training's scan looked) and cut from the full photo."""
        small, scale = read_upright(path)
        hands = self.detector.find(small)
        if not hands:
            return None, None
        hand = hands[0].scaled(scale)
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


def crops_of_files(paths, sha1s, settings, cache_folder=None):
    """Each photo's hand crop under a run's hand stage (`settings`), or None where it holds no hand: from the
    hand cache, the hands found now where they never were (`keras_sign.hands.cache`)."""
    from keras_sign.hands.cache import HandCache

    detector = HandDetector(settings["models"], 1, None, settings.get("retry_border", 0.25))
    hands = HandCache(detector, cache_folder).hands_of(list(paths), list(sha1s))
    return [found[0].crop(settings["margin"], settings["mirror_left"]) if found else None for found in hands]
