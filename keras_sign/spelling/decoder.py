"""Per-frame class probabilities -> fingerspelled text. Pure Python and NumPy: no I/O, no model.

    decoder = SpellingDecoder(["A", "B", "del", "nothing", "space"])
    for seconds, probabilities in frames:           # any frame rate, even an uneven one
        for event in decoder.update(seconds, probabilities):
            print(event.action, event.symbol, decoder.text)

The rules, all in seconds so that a 15 fps camera and a 60 fps video spell the same text:

- A frame whose top probability is below `unsure_below` (the run's reject threshold, which
  `transcribe` and `demo` pass in) is one the model is unsure of: it counts as no sign.
- The probabilities are smoothed over time (an exponential moving average with time constant
  `smoothing`), which steadies the flicker between similar handshapes.
- A class is the *candidate* while it is the smoothed top class with probability >=
  `min_confidence` and a lead of >= `min_margin` over the second class; otherwise there is none.
- A candidate held for `hold` seconds is committed once. It is not committed again until the hand
  changes (another candidate, `nothing`, or too little confidence), unless `repeat_after` is set:
  then a hold that lasts that much longer commits it again (the LL of HELLO without moving).
- A committed symbol that drops out for less than `release` seconds (a frame or two the hand stage lost
  or the model doubted, a flicker to a neighbouring handshape) and comes back is the same hold: it is
  not typed again. A longer break (a signer's pause between the two holds of a double letter) types it
  again.
- A double letter as signers make it, the same handshape slid a little to one side and held again: given
  each frame's hand square (`hand`, from the hand stage), a committed symbol whose hand has moved
  `repeat_move` of the square's side from where it was committed is held afresh and typed again. J and Z
  are signed by moving, so moving them types nothing more. Without a hand stage there is no square and the
  rule does nothing.
- Classes named `space`, `del` and `nothing` act as space, backspace and idle (a space never
  doubles and never starts the text; backspace on empty text does nothing). Other class names of
  one character are symbols, letters upper-cased (Massey's `a` is A); longer names such as
  `unknown` are idle too. A model without these classes still spells letters.
- With `word_gap`, that many seconds of idle or low confidence after a symbol end the word with
  a space.
- With a `lexicon` (`keras_sign.spelling.lexicon`), a word that ends (a space, a word gap, or the stream's
  end: `finish`) is rescored against the word list with the probabilities each of its letters had when it
  was committed, and replaced when the list's word is clearly the likelier (a "correct" event, which keeps
  the word as spelled).
"""

import dataclasses
import math

import numpy as np

from keras_sign.errors import KerasSignError

SPACE, DELETE, IDLE = "space", "del", "nothing"
MOVING_LETTERS = frozenset("JZ")  # signed by a movement: a moving hand is the letter itself, not a double
SLIDE_SIZE_CHANGE = 0.2  # the most a sliding hand's square grows or shrinks (a share of its side)


WORD_GAP_WITHOUT_SPACE_CLASS = 0.5  # seconds; measured with the defaults below (docs/sign-to-text.md, "How well it spells")


@dataclasses.dataclass(frozen=True)
class DecoderSettings:
    """The decoder's thresholds. The defaults won a grid search (benchmarks/tune_decoder.py) on clips
    built from the validation photos of a Massey and an ASL Alphabet model (docs/sign-to-text.md)."""

    hold: float = 0.2  # seconds a candidate must last before it is committed
    min_confidence: float = 0.6  # smoothed probability of the top class
    min_margin: float = 0.2  # smoothed lead of the top class over the second
    repeat_after: float | None = None  # seconds of further holding that commit the symbol again
    word_gap: float | None = None  # seconds of idle or low confidence that end a word with a space
    smoothing: float = 0.0  # seconds: time constant of the moving average (0: none; 0.1 and 0.2 did not help)
    unsure_below: float = 0.0  # a frame's own top probability below this: unsure, no sign (0: every frame counts)
    # The double-letter rules: chosen on validation clips of doubled letters (benchmarks/double_letters.py,
    # docs/sign-to-text.md "Double letters").
    repeat_move: float | None = 0.15  # sides of the hand's square it slides, holding a sign, to type it again
    release: float = 0.15  # seconds a committed sign must be gone before it is typed again when it comes back

    def validate(self):
        """Raise `KerasSignError` naming the first value that cannot work."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and not math.isfinite(value):  # inf passes `> 0` and never commits
                raise KerasSignError(f"--{field.name.replace('_', '-')} must be a finite number (got {value}).")
        checks = [
            (self.hold > 0, f"--hold must be a positive number of seconds such as 0.3 (got {self.hold})."),
            (0 <= self.min_confidence <= 1, f"--min-confidence must be between 0 and 1 (got {self.min_confidence})."),
            (0 <= self.min_margin <= 1, f"--min-margin must be between 0 and 1 (got {self.min_margin})."),
            (self.repeat_after is None or self.repeat_after > 0,
             f"--repeat-after must be a positive number of seconds (got {self.repeat_after})."),
            (self.word_gap is None or self.word_gap > 0,
             f"--word-gap must be a positive number of seconds (got {self.word_gap})."),
            (self.smoothing >= 0, f"--smoothing must be 0 or more seconds (got {self.smoothing})."),
            (0 <= self.unsure_below <= 1, f"--unsure-below must be between 0 and 1 (got {self.unsure_below})."),
            (self.release >= 0, f"--release must be 0 or more seconds (got {self.release})."),
            (self.repeat_move is None or self.repeat_move > 0,
             f"--repeat-move must be a positive share of the hand's size such as 0.15 (got {self.repeat_move})."),
        ]
        for ok, message in checks:
            if not ok:
                raise KerasSignError(message)
        return self


@dataclasses.dataclass(frozen=True)
class Event:
    """One change of the text: a symbol added, a space, a backspace."""

    time: float  # seconds into the stream
    action: str  # "symbol", "space", "delete", "word_gap" (a space after a pause) or "correct" (a word replaced)
    symbol: str  # what was typed: "A", "7", " ", "" for a backspace, the word put in for a correction
    confidence: float  # smoothed probability of the committed class (1.0 for a word gap and a correction)
    text: str  # the whole text after the event
    spelled: str | None = None  # a correction's word as it was spelled


def key_of(class_name):
    """What a class types: ("symbol", "A"), ("space", " "), ("delete", "") or ("idle", "")."""
    name = str(class_name)
    if name.lower() == SPACE:
        return "space", " "
    if name.lower() in (DELETE, "delete"):
        return "delete", ""
    if len(name) == 1 and name.strip():
        return "symbol", name.upper()
    return "idle", ""  # nothing, unknown, ...


def default_word_gap(class_names):
    """A model that cannot type a space ends words at pauses: `WORD_GAP_WITHOUT_SPACE_CLASS`; else None."""
    return None if has_control_classes(class_names)["space"] else WORD_GAP_WITHOUT_SPACE_CLASS


def has_control_classes(class_names):
    """Which of space / del / nothing a model has, by the decoder's reading of its class names."""
    actions = {key_of(name)[0] for name in class_names}
    return {"space": "space" in actions, "delete": "delete" in actions,
            "nothing": any(str(name).lower() == IDLE for name in class_names)}


class SpellingDecoder:
    """Turns a stream of `(seconds, class probabilities)` into text; see the module docstring.

    Example:
        >>> decoder = SpellingDecoder(["a", "b", "nothing"], DecoderSettings(hold=0.2, smoothing=0))
        >>> for i in range(10):  # 0.5 s of a confident "a" at 20 fps
        ...     _ = decoder.update(i / 20, [0.9, 0.05, 0.05])
        >>> decoder.text
        'A'
    """

    def __init__(self, class_names, settings=None, lexicon=None):
        self.class_names = list(class_names)
        self.settings = (settings or DecoderSettings()).validate()
        self.keys = [key_of(name) for name in self.class_names]
        self.lexicon = lexicon
        self.reset()

    def reset(self):
        """Forget the text and everything seen so far."""
        self.text = ""
        self.letters = []  # per character of the text: each symbol's probability when it was typed (None: a space)
        self.smoothed = None
        self.last_time = None
        self.interval = 0.0  # seconds between the last two frames: how long one frame shows the hand
        self.candidate = None  # class index, or None when no class is confident enough
        self.confidence = 0.0
        self.candidate_since = None
        self.committed_at = None  # when the current candidate was last committed; None: not yet
        self.idle_since = None
        self.committed_where = None  # the hand's square `(x, y, side)` when the candidate was last committed
        # `(when, candidate, candidate_since, committed_at, committed_where)` of the committed candidate last left,
        # which may still come back as the same hold (`release`)
        self.left = None

    def update(self, time, probabilities, hand=None):
        """Feed one frame's class probabilities at `time` seconds, with the hand's square `(x, y, side)` in the
        frame when the hand stage found one; return the events it caused."""
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if len(probabilities) != len(self.class_names):
            raise ValueError(f"{len(probabilities)} probabilities for {len(self.class_names)} classes")
        if probabilities.max() < self.settings.unsure_below:
            probabilities = np.zeros_like(probabilities)  # no evidence for any class
        self._smooth(float(time), probabilities)
        candidate, confidence = self._candidate()
        if candidate != self.candidate:  # the hand changed: the new candidate's hold starts now
            self._change(time, candidate)
        self.confidence = confidence
        action = "idle" if candidate is None else self.keys[candidate][0]
        if action == "idle":
            self.idle_since = time if self.idle_since is None else self.idle_since
            return self._word_gap(time)
        self.idle_since = None
        if self._moved_on(hand):  # the same handshape slid to a new place: a double letter, held afresh
            self.candidate_since, self.committed_at = time, None
        held = time - self.candidate_since + self.interval  # a frame stands for the time until the next one
        if self.committed_at is None:
            due = held >= self.settings.hold - 1e-9
        else:
            due = self.settings.repeat_after is not None and time - self.committed_at >= self.settings.repeat_after - 1e-9
        if not due:
            return []
        self.committed_at, self.committed_where, self.left = time, hand, None
        return self._type(time, *self.keys[candidate], confidence)

    @property
    def state(self):
        """What a live view shows: the candidate, its confidence, how long it is held, the text."""
        held = 0.0 if self.candidate is None else self.last_time - self.candidate_since + self.interval
        name = None if self.candidate is None else self.class_names[self.candidate]
        return {
            "candidate": name,
            "symbol": None if self.candidate is None else self.keys[self.candidate][1] or name,
            "confidence": self.confidence,
            "held": held,
            "progress": 1.0 if self.committed_at is not None else min(held / self.settings.hold, 1.0),
            "committed": self.committed_at is not None,
            "text": self.text,
        }

    def _smooth(self, time, probabilities):
        if self.last_time is not None:
            self.interval = max(time - self.last_time, 0.0)
        if self.smoothed is None or self.settings.smoothing == 0:
            self.smoothed = probabilities
        else:
            weight = 1.0 - math.exp(-self.interval / self.settings.smoothing)
            self.smoothed = self.smoothed + weight * (probabilities - self.smoothed)
        self.last_time = time

    def _change(self, time, candidate):
        """A new candidate; the one it replaces, if committed, may still come back within `release`."""
        if self.committed_at is not None:
            self.left = (time, self.candidate, self.candidate_since, self.committed_at, self.committed_where)
        if self.left is not None and self.left[1] == candidate and time - self.left[0] < self.settings.release - 1e-9:
            # it came back: the same hold goes on
            _, self.candidate, self.candidate_since, self.committed_at, self.committed_where = self.left
            self.left = None
            return
        self.candidate, self.candidate_since, self.committed_at = candidate, time, None

    def _moved_on(self, hand):
        """Whether the hand has slid `repeat_move` sides of its square from where its sign was committed."""
        where, limit = self.committed_where, self.settings.repeat_move
        if limit is None or hand is None or where is None or self.committed_at is None:
            return False
        if self.keys[self.candidate][1] in MOVING_LETTERS:
            return False
        (x, y, side), (x0, y0, side0) = hand, where
        if abs(side / side0 - 1) > SLIDE_SIZE_CHANGE:
            return False  # not a slide: the hand came nearer or went away, or the tracker's square ran off
        distance = math.hypot(x + side / 2 - x0 - side0 / 2, y + side / 2 - y0 - side0 / 2)
        return distance >= limit * side0

    def _candidate(self):
        order = np.argsort(self.smoothed)[::-1]
        top = float(self.smoothed[order[0]])
        second = float(self.smoothed[order[1]]) if len(order) > 1 else 0.0
        if top >= self.settings.min_confidence and top - second >= self.settings.min_margin:
            return int(order[0]), top
        return None, top

    def finish(self, time):
        """The stream ended: the last word ends too (a lexicon may correct it). The events it caused."""
        return self._corrected(time)

    def _type(self, time, action, symbol, confidence):
        if action == "space":
            if not self.text or self.text.endswith(" "):
                return []  # no leading or double space
            return [*self._corrected(time), self._add(time, action, " ", confidence)]
        if action == "delete":
            if not self.text:
                return []
            self.text, self.letters = self.text[:-1], self.letters[:-1]
            return [Event(time, action, symbol, confidence, self.text)]
        return [self._add(time, action, symbol, confidence)]

    def _add(self, time, action, symbol, confidence):
        self.text += symbol
        self.letters.append(None if symbol == " " else self._symbol_probabilities())
        return Event(time, action, symbol, confidence, self.text)

    def _symbol_probabilities(self):
        """What each symbol had of the smoothed probabilities at this moment (the lexicon's evidence)."""
        probabilities = {}
        for (action, symbol), probability in zip(self.keys, self.smoothed):
            if action == "symbol":
                probabilities[symbol] = max(probabilities.get(symbol, 0.0), float(probability))
        return probabilities

    def _corrected(self, time):
        """The last word of the text, replaced by the lexicon's word where that is clearly the likelier."""
        word = self.text.rsplit(" ", 1)[-1]
        if self.lexicon is None or not word:
            return []
        replacement = self.lexicon.correct(word, self.letters[-len(word):])
        if replacement is None:
            return []
        self.text = self.text[:-len(word)] + replacement
        self.letters = self.letters[:-len(word)] + [{letter: 1.0} for letter in replacement]
        return [Event(time, "correct", replacement, 1.0, self.text, spelled=word)]

    def _word_gap(self, time):
        gap = self.settings.word_gap
        if gap is None or not self.text or self.text.endswith(" ") or time - self.idle_since < gap - 1e-9:
            return []
        return [*self._corrected(time), self._add(time, "word_gap", " ", 1.0)]
