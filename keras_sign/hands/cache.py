"""Each photo's hands, found once: a cache keyed by the photo's content and by the hand stage's settings.

    cache = HandCache(detector)
    hands = cache.hands_of(paths, sha1s)     # [[Hand], ...]: [] for a photo without a hand

The scan already hashes every file (`ImageRecord.sha1`), so training, cross-validation, evaluation and
export never run the detector twice on one photo, however often and wherever it is copied. The cache
is a folder (`--hand-cache-dir`, `$KERAS_SIGN_HAND_CACHE`, else `~/.cache/keras_sign/hands`) with one small
JSON file per photo under a sub-folder named by the stage's settings and model files, each written
atomically: two processes filling it at once lose nothing.
"""

import hashlib
import json
import logging
import os
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.hands.detector import Hand
from keras_sign.hands.images import read_upright
from keras_sign.progress import progress_bar
from keras_sign.runs.atomic import atomic_write_text

log = logging.getLogger("keras_sign")

CACHE_ENV = "KERAS_SIGN_HAND_CACHE"
DEFAULT_FOLDER = "~/.cache/keras_sign/hands"


def cache_folder(option=None):
    return Path(option or os.environ.get(CACHE_ENV) or DEFAULT_FOLDER).expanduser()


class HandCache:
    """The hands of photos for one `HandDetector`'s settings; see the module docstring."""

    def __init__(self, detector, folder=None):
        self.detector = detector
        settings = {**detector.description, "max_hands": detector.max_hands, "retry_border": detector.retry_border}
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = cache_folder(folder) / key
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise KerasSignError(f"Cannot create the hand cache {self.folder} ({error.strerror}); pass "
                                 "--hand-cache-dir with a writable folder.") from None

    def _file(self, sha1):
        return self.folder / sha1[:2] / f"{sha1}.json"

    def get(self, sha1):
        """The cached hands of a photo, or None when it was never looked at."""
        try:
            return [Hand.from_json(value) for value in json.loads(self._file(sha1).read_text())]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or a file some other version wrote: looked at again

    def put(self, sha1, hands):
        path = self._file(sha1)
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, json.dumps([hand.to_json() for hand in hands]))

    def hands_of(self, paths, sha1s, description="finding the hands"):
        """The hands of each photo, from the cache or found now (and cached)."""
        found = [self.get(sha1) for sha1 in sha1s]
        missing = [i for i, hands in enumerate(found) if hands is None]
        if missing:
            log.info("Finding the hands in %d photo(s) (%d already known).", len(missing), len(paths) - len(missing))
        with progress_bar(len(missing), description) as bar:
            for index in missing:
                image, scale = read_upright(paths[index])
                found[index] = [hand.scaled(scale) for hand in self.detector.find(image)]
                self.put(sha1s[index], found[index])
                bar.update(1)
        return found
