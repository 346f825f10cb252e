"""What a long run owns, and for how long: a folder it alone writes, and its worker processes.

* :func:`hold_folder` takes an exclusive ``flock`` on a lock file inside a folder (a checkpoint
  folder) for as long as the run lives: a second writer fails at once with one line naming the
  holder's pid, and the kernel drops the lock when the holder dies, however it dies.
* :func:`hold_dir` does the same on a folder itself (a stage's staging folder).
* :func:`die_with_parent` makes a worker process receive SIGKILL when its parent dies (Linux
  ``prctl(PR_SET_PDEATHSIG)``), so ``kill -9`` of a launcher leaves no orphan still training.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

#: The lock file a run holds in the folder it owns.
LOCK_FILE = ".lock"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class FolderBusyError(ValueError):
    """Another live process holds the folder (a usage error: two runs on one folder)."""


@contextlib.contextmanager
def hold_folder(folder: str | Path, what: str) -> Iterator[int]:
    """Holds an exclusive lock on ``folder`` (created if missing) while the block runs.

    Args:
        folder: The folder to own (its ``.lock`` file carries the lock and the holder's pid).
        what: The kind of run, for the error message (e.g. ``"pretrain"``).

    Yields:
        The lock file's descriptor: a child process given it (``pass_fds``) shares the lock,
        which then lasts until the last holder exits.

    Raises:
        FolderBusyError: Another process holds the lock.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise FolderBusyError(
                f"{root}: in use by another {what} run (pid {holder}); wait for it to end "
                "or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)  # releases the lock unless a child still shares it


@contextlib.contextmanager
def hold_dir(folder: str | Path, what: str) -> Iterator[None]:
    """Holds an exclusive ``flock`` on the folder itself while the block runs (no lock file:
    the lock goes with the folder's inode, through a rename, and leaves nothing behind).

    A file system without ``flock`` on folders is not locked (nothing else changes).

    Raises:
        FolderBusyError: Another process holds it.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"{folder}: another {what} run is writing this output now; wait for it to end "
                "or give another output folder"
            ) from None
        except OSError:  # no flock on this file system
            pass
        yield
    finally:
        os.close(fd)


def die_with_parent(expected_parent: int | None = None) -> None:
    """Asks the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op).

    Args:
        expected_parent: The parent's pid, when known: if the parent died before the request
            was made (this process already re-parented), exit now instead.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # orphaned before the request took effect: nobody waits for this process
