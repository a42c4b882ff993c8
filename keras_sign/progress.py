"""Progress bars for a person at a terminal: the steps of an epoch, long scans and decodes.

An epoch of ResNet-18 at 224 px on a full dataset lasts many minutes on a CPU, and so
does scanning 87,000 photos; a bar says it is moving and when it will end. Bars go
to stderr and only when stderr is a terminal (tqdm's `disable=None`), so logs, pipes
and CI keep just the one-line summaries.
"""

from tqdm import tqdm


def progress_bar(total, description, unit="image"):
    """A tqdm bar that vanishes when done, or does nothing where stderr is not a terminal."""
    return tqdm(total=total, desc=description, unit=unit, disable=None, leave=False, dynamic_ncols=True)


def status_line():
    """One terminal line that a caller rewrites in place (`set_description_str`), cut to the terminal's width;
    disabled where stderr is not a terminal."""
    return tqdm(bar_format="{desc}", disable=None, leave=True, dynamic_ncols=True)
