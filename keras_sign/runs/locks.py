"""One writer per folder, and readers that do not read a folder while it is being written.

`FolderLock` is an `fcntl.flock` on `<folder>/.lock`, not a lock file whose existence is the lock
(the `filelock` package's soft locks, or a PID file): the operating system releases an flock when
its process ends, however it ends (kill -9 included), so no lock is ever stale and nothing has to
guess whether a recorded PID still lives.
"""

import errno
import fcntl
import glob
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import UMASK

log = logging.getLogger("keras_sign")

LOCK_FILE = ".lock"


class FolderLock:
    """An exclusive lock on a folder for the life of the process that writes it.

    `fcntl.flock` on `<folder>/.lock`: the operating system releases it when the process ends,
    however it ends (kill -9 included), so a lock is never stale. The holder writes its PID, host
    and start time into the file, so a second writer is told who holds the folder.

    Example:
        with FolderLock("runs/digits"):
                pass  # write the folder
    """

    def __init__(self, folder, what="Run folder"):
        self.folder = Path(folder)
        self.what = what
        self.handle = None

    def __enter__(self):
        path = self.folder / LOCK_FILE
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(handle, 1000, 0).decode("utf-8", "replace").strip()
            os.close(handle)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise _being_written(self.what, self.folder, holder) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"PID {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                  .encode(), 0)
        self.handle = handle
        _HELD_HERE.add(self.folder.resolve())
        return self

    def __exit__(self, *exc_info):
        _HELD_HERE.discard(self.folder.resolve())
        os.ftruncate(self.handle, 0)
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        os.close(self.handle)
        self.handle = None


_HELD_HERE = set()  # resolved folders whose FolderLock this process holds


def _being_written(what, folder, holder):
    return KerasSignError(f"{what} {folder} is being written by another process ({holder or 'starting'}); "
                          "wait for it to finish or stop it, then run this again.")


def check_not_being_written(folder, what="Run folder"):
    """Refuse to read `folder` while another process holds its `FolderLock`: a run being trained (or
    resumed) would hand its readers the model.keras it is about to replace.

    A shared flock, taken and given back at once, is refused exactly while a writer holds the
    exclusive one; this process's own locks (training evaluates its own run) do not count.
    """
    folder = Path(folder)
    if folder.resolve() in _HELD_HERE:
        return
    try:
        handle = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:  # never locked, or a folder this user may only read: nobody writes it now
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise _being_written(what, folder, os.pread(handle, 1000, 0).decode("utf-8", "replace").strip()) from None
    finally:
        os.close(handle)


def remove_dead_staging(out, what="build"):
    """Remove the staging folders (`.<name>.partial-<pid>` beside `out`) of builds of `out` that were killed (kill -9
    leaves them): their lock is free. A build still running holds its staging folder's lock, and keeps it."""
    for stale in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):
        try:
            with FolderLock(stale, "Staging folder"):
                pass
        except KerasSignError:
            continue  # another build of the same --out, still at work
        except OSError:
            continue  # not a folder we can lock: leave it alone
        log.info("Removing %s, left by %s that was stopped.", stale, what)
        shutil.rmtree(stale, ignore_errors=True)
