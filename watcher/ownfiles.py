"""The files the daemon itself placed lately, so that none of them is taken for a new arrival.

The rules file is checked for outboxes that are inboxes under another path, but a loop can
still be made where no check can see it: a sync tool copying an outbox into an inbox, a share
mounted a second time after the daemon started. Each turn of such a loop is a paid
conversion, so the watcher asks this registry before handing a file on.

Its own module, not part of inbox.py: the code that files results registers them here, and it
should not have to import the watcher (and watchdog) to do so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("watcher.ownfiles")

KEEP_SECONDS = 3600.0  # a loop turns within seconds; an hour also covers a slow sync tool
MAX_FILES = 4096  # a very busy hour; the oldest are forgotten first

# (st_dev, st_ino, st_size, st_mtime_ns): the same file whatever its name or folder (a hard
# link, a move, another mount of the same folder), and only while its content is unchanged.
FileKey = tuple[int, int, int, int]


@dataclass(frozen=True)
class Placement:
    """Where and when the daemon placed one of its files (wall clock, to tell the user)."""

    folder: Path
    at: float  # time.time()

    def describe(self) -> str:
        """'/home/me/PDFOCR/outbox at 14:05', for the log."""
        return f"{self.folder} at {time.strftime('%H:%M', time.localtime(self.at))}"


def file_key(info: os.stat_result) -> FileKey | None:
    """The registry's key for a file, or None where the system gives no inode number (some
    network file systems say 0): a key without identity would match unrelated files."""
    if not info.st_ino:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class OwnFiles:
    """A bounded, thread-safe memory of the files the daemon placed in the last hour or so.

    Filing threads `remember` each file they place; the inbox watcher asks `placed` before
    handing a file on. A file is known by identity (device and inode) plus size and mtime, so
    a hard link or a move of it, or the same folder seen through a bind mount or a symlink,
    is recognised, while a file changed since (edited, rewritten in place) is a new one and
    converted as usual. Entries are forgotten after `keep_seconds`, and the oldest first once
    there are `max_files`: this is a safety net for loops, not a history.
    """

    def __init__(
        self,
        keep_seconds: float = KEEP_SECONDS,
        max_files: int = MAX_FILES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._keep = keep_seconds
        self._max = max_files
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (when it is forgotten, on `clock`; where it was placed). Every entry is kept
        # equally long, so insertion order is expiry order: the oldest are always first.
        self._files: OrderedDict[FileKey, tuple[float, Placement]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._files)

    def remember(self, path: Path, folder: Path | None = None) -> bool:
        """Register a file the daemon has just placed, as it is now; `folder` is where the
        user sees it (default: the file's folder). Call it before the file gets the name the
        watcher may see, e.g. on the staged file before linking it into the outbox: a hard
        link or a rename keeps the key. Never raises for a file that cannot be looked at (the
        filing must not fail for this): returns whether the file was registered."""
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError as exc:
            log.debug("cannot register %s as our own: %s", path, exc.strerror or exc)
            return False
        key = file_key(info)
        if key is None:
            return False
        placement = Placement(
            Path(folder) if folder is not None else Path(path).parent, time.time()
        )
        with self._lock:
            now = self._clock()
            self._files.pop(key, None)  # placed again: kept from now on
            self._files[key] = (now + self._keep, placement)
            self._prune(now)
        return True

    def placed(self, path: Path) -> Placement | None:
        """Where and when the daemon placed this file, if it is one of its recent files as
        they were then; None for any other file, or one that cannot be looked at."""
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        return self.placed_as(info)

    def placed_as(self, info: os.stat_result) -> Placement | None:
        """`placed` for a file already looked at (its lstat)."""
        key = file_key(info)
        if key is None:
            return None
        with self._lock:
            self._prune(self._clock())
            entry = self._files.get(key)
        return entry[1] if entry is not None else None

    def _prune(self, now: float) -> None:
        """Forget the expired entries, then the oldest beyond the limit (under the lock)."""
        while self._files:
            expires, _ = next(iter(self._files.values()))
            if expires > now and len(self._files) <= self._max:
                return
            self._files.popitem(last=False)
