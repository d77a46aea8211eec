"""From a complete file to a job record: what the daemon and one-shot `convert` both know of
a file before anything is sent (its bytes' digest, size, time, kind and a safe remote name).

Hashing reads the whole file. For a scan of a few MB that takes milliseconds and is done
where the file was found; a 3 GB file takes a minute, and the watcher's settle thread must
not stall every other arrival for it, so big files are hashed by `BackgroundIntake`, one at
a time, on a thread of its own.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from watcher.api import new_token, remote_name
from watcher.jobs import NewJob, Rule, SourceKind, readable
from watcher.journal import JournalError
from watcher.shortcuts import is_shortcut

__all__ = ["BIG_FILE_BYTES", "BackgroundIntake", "file_hash", "new_job"]

log = logging.getLogger(__name__)

HASH_CHUNK = 1024 * 1024
BIG_FILE_BYTES = 64 * 1024 * 1024  # about half a second of hashing on a slow disk
JOURNAL_RETRY_SECONDS = 5.0


def file_hash(path: Path) -> str:
    """SHA-256 of the content: identical bytes with identical settings are paid for once."""
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as handle:  # big reads, no buffer (see preflight)
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def new_job(path: Path, rule: Rule, inbox: Path | None) -> NewJob:
    """The record of a new job for `path`; OSError when the file cannot be read."""
    stat = path.stat()
    content_hash = file_hash(path)
    shortcut = is_shortcut(path)
    sent_name = f"{path.stem}.pdf" if shortcut else path.name
    return NewJob(
        source=path,
        inbox=inbox,
        kind=SourceKind.URL if shortcut else SourceKind.FILE,
        url=None,
        content_hash=content_hash,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        rule=rule,
        remote_name=remote_name(readable(sent_name), new_token()),
        inode=stat.st_ino,
    )


# What the intake thread hands back: the jobs recorded, or (path, reason) for a file that
# could not be read.
Recorded = Callable[[list[NewJob]], None]
Unreadable = Callable[[Path, Rule, str], None]


class BackgroundIntake:
    """Hashes big files on a thread of its own, then records them with `record` (which
    journals them). A journal that cannot be written is tried again, the job kept in memory:
    the file is still in its inbox, and the next start finds it there if we die first."""

    def __init__(self, record: Recorded, on_unreadable: Unreadable, stop: threading.Event) -> None:
        self._record = record
        self._on_unreadable = on_unreadable
        self._stop = stop
        self._queue: queue.Queue[tuple[Path, Rule, Path | None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, path: Path, rule: Rule, inbox: Path | None) -> None:
        self._queue.put((path, rule, inbox))

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            path, rule, inbox = item
            try:
                new = new_job(path, rule, inbox)
            except FileNotFoundError:
                log.debug("%s went away before it was journaled", readable(path.name))
                continue
            except OSError as exc:
                self._on_unreadable(path, rule, exc.strerror or str(exc))
                continue
            while not self._stop.is_set():
                try:
                    self._record([new])
                    break
                except JournalError as exc:
                    log.error("%s: %s", readable(path.name), exc)
                    self._stop.wait(JOURNAL_RETRY_SECONDS)
