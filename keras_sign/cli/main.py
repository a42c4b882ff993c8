"""The `keras-sign` command group: one-line errors instead of tracebacks, log lines on stderr.

Every command module of this package adds its commands to `cli`; `keras_sign.cli` imports them all.
"""

import errno
import logging
import sys

import click

from keras_sign import __version__
from keras_sign.errors import KerasSignError

# What the machine, not the program, can get wrong while writing: said in one line, not a traceback.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}



class _Group(click.Group):
    """Turn a `KerasSignError`, or a full or read-only disk, into click's one-line `Error: ...` and exit
    status 1, without a traceback. Every write is atomic, so what was written before stays intact."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KerasSignError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            if error.errno not in WRITE_ERRNOS:
                raise
            where = f" ({error.filename})" if error.filename else ""
            raise click.ClickException(
                f"{error.strerror}{where}; free space or choose another folder, then run the command again "
                "(files written before are intact; `keras-sign train --resume RUN` continues a run)."
            ) from None



class _StderrHandler(logging.StreamHandler):
    """Log lines to whatever `sys.stderr` is when they are written (click's test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass  # always the current sys.stderr



@click.group(cls=_Group)
@click.version_option(__version__, prog_name="keras-sign")
def cli():
    """Train, evaluate and ship sign-language image classifiers (Keras 3)."""
    # On the root logger, so that a library calling logging.info() finds a handler and does not add its
    # own (which would print every line twice); the root stays at WARNING, keras_sign says INFO.
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    logging.getLogger("keras_sign").setLevel(logging.INFO)



def main():
    # File names that are not UTF-8 are printed as their original bytes, as `ls` shows them.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    cli(prog_name="keras-sign")


def write_or_echo(text, out, count, what):
    """Rows a command produced: into the file `out` (atomically, saying so), else onto the terminal."""
    from keras_sign.runs.atomic import atomic_write_text

    if out:
        atomic_write_text(out, text)
        click.echo(f"wrote {count} {what} to {out}", err=True)
    else:
        click.echo(text, nl=False)
