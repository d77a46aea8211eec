"""One daemon per state folder: two would share a journal and could pay twice for a file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from watcher.errors import WatcherError

LOCK_FILE_NAME = "daemon.lock"


class AlreadyRunning(WatcherError):
    pass


class InstanceLock:
    """An OS-level lock on a file in the state folder, released by the OS if we die."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise WatcherError(
                f"the state folder {self.path.parent} cannot be written "
                f"({exc.strerror or exc}); make it writable or set another `[files] state_dir`"
            ) from None
        try:
            _lock(fd)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"pdfocr-watcher is already running on {self.path.parent} (process {holder}). "
                "Stop it first, or give this one another `[files] state_dir`."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def daemon_running(state_dir: Path) -> bool:
    """Whether a daemon holds this state folder's lock. A folder without a lock file never
    had a daemon and is left untouched: asking creates nothing."""
    if not (state_dir / LOCK_FILE_NAME).exists():
        return False
    lock = InstanceLock(state_dir)
    try:
        lock.acquire()
    except AlreadyRunning:
        return True
    lock.release()
    return False


if sys.platform == "win32":  # not os.name: mypy narrows platform modules (msvcrt) on this
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
