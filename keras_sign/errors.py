"""The one exception a user can cause.

Every mistake a user can make (missing folder, unknown class, bad flag value)
raises `KerasSignError` with a sentence that says what to do. The CLI prints
that sentence on one line and exits non-zero, without a traceback.
"""


class KerasSignError(Exception):
    """A problem with the user's input, explained in one actionable sentence."""
