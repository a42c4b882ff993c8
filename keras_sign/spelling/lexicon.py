"""`transcribe --lexicon FILE`: a spelled word rescored against a word list when it ends.

    lexicon = Lexicon.read("english")                     # the shipped list, or a file: one word a line
    lexicon.correct("YOI", [{"Y": 0.97}, {"O": 0.9}, {"I": 0.55, "U": 0.4}])  # "YOU"

Each letter the decoder committed keeps the model's probabilities of every symbol at that moment. A word of the
list is scored as the log of its frequency (a zipf value in the file; words without one count as common as
`DEFAULT_ZIPF`) plus the log-probability that it was the one spelled: its letters aligned with the committed ones
(rapidfuzz's Levenshtein opcodes), each aligned pair scoring the probability the model gave that letter there,
each letter typed too many `EXTRA_LETTER`, each letter never typed `MISSED_LETTER`. The spelled letters are scored
the same way (as `UNKNOWN_ZIPF` when they are not a word of the list). The spelling is replaced only when a word
of the list scores `MARGIN` times more likely; digits, and words whose every letter was committed with at least
`CONFIDENT` probability, are left as spelled (names, addresses, codes). Candidates are the list's words within
`MAX_EDITS` edits of the spelling (rapidfuzz `process.extract`).
"""

import math
from importlib import resources
from pathlib import Path

from keras_sign.errors import KerasSignError

SHIPPED = {"english": "english.txt"}  # keras_sign/spelling/words/, with its source and licence
DEFAULT_ZIPF = 3.0  # a word listed without a frequency
UNKNOWN_ZIPF = 1.0  # a spelling that is no word of the list (a name, a new word)
EXTRA_LETTER = 0.02
MISSED_LETTER = 0.05
FLOOR = 1e-4  # the least probability a letter the model gave nothing to counts as
MARGIN = 1e5  # chosen on validation clips (docs/sign-to-text.md, "Words"): smaller ones changed names
CONFIDENT = 0.9
MAX_EDITS = 2
CANDIDATES = 50


class Lexicon:
    """A word list with log priors; see the module docstring."""

    def __init__(self, zipf, source="words"):
        self.zipf = zipf  # upper-case word -> zipf frequency
        self.words = list(zipf)
        self.source = source

    @classmethod
    def read(cls, name_or_path):
        """The shipped list by name (`english`), or a file of one word a line, optionally followed by its zipf
        frequency; one line that says what is wrong otherwise."""
        if name_or_path in SHIPPED:
            text = resources.files("keras_sign.spelling").joinpath("words", SHIPPED[name_or_path]).read_text("utf-8")
        else:
            try:
                text = Path(name_or_path).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise KerasSignError(f"--lexicon {name_or_path}: no such file; pass a word list (one word a line) or "
                                     f"{', '.join(SHIPPED)}.") from None
            except (OSError, UnicodeDecodeError) as error:
                raise KerasSignError(f"--lexicon {name_or_path} cannot be read as UTF-8 text ({error}).") from None
        zipf = {}
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            try:
                value = float(parts[1]) if len(parts) > 1 else DEFAULT_ZIPF
            except ValueError:
                raise KerasSignError(f"--lexicon {name_or_path}, line {number}: {parts[1]!r} is not a frequency; "
                                     "write `word` or `word zipf-frequency`.") from None
            zipf.setdefault(parts[0].upper(), value)
        if not zipf:
            raise KerasSignError(f"--lexicon {name_or_path} holds no words; write one word a line.")
        return cls(zipf, str(name_or_path))

    def correct(self, spelled, letters):
        """The word of the list that `spelled` most likely was, or None to keep the spelling. `letters` holds, for
        each spelled letter, the model's probabilities of the symbols at the moment it was committed."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        if not spelled.isalpha() or len(letters) != len(spelled):  # digits, codes: left as spelled
            return None
        if min(probabilities.get(letter, 0.0) for letter, probabilities in zip(spelled, letters)) >= CONFIDENT:
            return None
        kept = self.score(spelled, spelled, letters)
        found = process.extract(spelled, self.words, scorer=Levenshtein.distance, score_cutoff=MAX_EDITS,
                                limit=CANDIDATES)
        best = max(((self.score(word, spelled, letters), word) for word, _, _ in found if word != spelled),
                   default=None)
        if best is not None and best[0] - kept >= math.log(MARGIN):
            return best[1]
        return None

    def score(self, word, spelled, letters):
        """log P(word) + log P(the committed letters | word)."""
        from rapidfuzz.distance import Levenshtein

        prior = self.zipf.get(word, UNKNOWN_ZIPF) * math.log(10)
        channel = 0.0
        for tag, i1, i2, j1, j2 in Levenshtein.opcodes(word, spelled):
            if tag in ("equal", "replace"):  # letters aligned one to one
                channel += sum(math.log(max(self.typed_as(word[i], j, spelled, letters), FLOOR))
                               for i, j in zip(range(i1, i2), range(j1, j2)))
            elif tag == "insert":  # typed, but not in the word
                channel += (j2 - j1) * math.log(EXTRA_LETTER)
            elif tag == "delete":  # in the word, never typed
                channel += (i2 - i1) * math.log(MISSED_LETTER)
        return prior + channel

    def typed_as(self, letter, j, spelled, letters):
        """The channel's probability that the word's `letter` came out as the `j`th spelled letter: what the model
        gave `letter` at that moment."""
        return letters[j].get(letter, 0.0)
