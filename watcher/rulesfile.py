"""Notices edits of the rules file, and says when it has been quiet long enough to read.

Editors save in steps (truncate then write; or write a copy, then rename over): reading at the
first event would often read half a file, so a read is due only once the file has been quiet
for RULES_QUIET_SECONDS. The owner (the daemon's housekeeper) asks `take_due` when it wakes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

__all__ = ["RULES_QUIET_SECONDS", "RulesFileWatcher"]

RULES_QUIET_SECONDS = 0.5
_NOT_EDITS = ("opened", "closed_no_write")


class RulesFileWatcher(FileSystemEventHandler):
    """Watches one file's folder (a rename over the file is an event of the folder)."""

    def __init__(self, path: Path, wake: Callable[[], None]):
        self._path = str(path)
        self._wake = wake
        self._lock = threading.Lock()
        self._due_at: float | None = None  # monotonic
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        folder = Path(self._path).parent
        if not folder.is_dir():
            return
        observer = Observer()
        observer.schedule(self, str(folder), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)

    def on_any_event(self, event: FileSystemEvent) -> None:
        touched = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if self._path in touched and event.event_type not in _NOT_EDITS:
            self.touched()

    def touched(self) -> None:
        with self._lock:
            self._due_at = time.monotonic() + RULES_QUIET_SECONDS
        self._wake()

    def take_due(self) -> bool:
        """True (once) when an edit has been quiet long enough to be read."""
        with self._lock:
            due = self._due_at is not None and self._due_at <= time.monotonic()
            if due:
                self._due_at = None
        return due

    def seconds_until_due(self) -> float | None:
        with self._lock:
            return None if self._due_at is None else max(0.0, self._due_at - time.monotonic())
