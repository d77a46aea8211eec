"""What the user sees of the daemon: snapshots for the tray and `status`, notices worth telling.

The journal keeps the facts of every job; this module keeps only what the journal does not: the
batch in progress, the failures the user has not looked at yet, the latest results, and the
listeners (the tray, the control channel) told after every change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from watcher.jobs import Job, JobState
from watcher.wording import count

__all__ = [
    "OFFLINE_NOTICE_SECONDS",
    "RECENT_LIMIT",
    "BoardView",
    "Notice",
    "NoticeKind",
    "RecentConversion",
    "Snapshot",
    "StatusBoard",
]

log = logging.getLogger(__name__)

RECENT_LIMIT = 10
OFFLINE_NOTICE_SECONDS = 300.0  # a short outage is not worth interrupting anyone for


@dataclass(frozen=True)
class RecentConversion:
    name: str
    output: Path
    finished_at: float

    @classmethod
    def of(cls, job: Job) -> RecentConversion | None:
        if job.state is not JobState.DONE or job.output is None:
            return None
        return cls(job.display_name, job.output, job.updated_at)


class NoticeKind(Enum):
    BATCH_DONE = "batch_done"
    FILE_FAILED = "file_failed"
    LOW_CREDIT = "low_credit"
    HELD = "held"
    OFFLINE = "offline"


# Failures and holds are logged where they happen (the runner, the set-aside, the hold), with
# more detail than their notice: logged again here, every failure would be in the log twice.
_LOGGED_WHERE_THEY_HAPPEN = frozenset({NoticeKind.FILE_FAILED, NoticeKind.HELD})


@dataclass(frozen=True)
class Notice:
    """Something worth telling the user once (a tray notification where the desktop has them)."""

    kind: NoticeKind
    title: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    """What the daemon is doing, for the tray; built on change, safe to share across threads."""

    sandbox: bool
    queued: int
    in_flight: int
    batch_done: int
    batch_total: int
    held: str | None
    service_problem: str | None
    paused_until: float | None  # None: not paused; math.inf: until resumed
    config_error: str | None
    unseen_failures: int
    last_failure: str | None
    failed: int
    available_pages: int | None
    low_credit: bool
    last_conversion_at: float | None
    recent: tuple[RecentConversion, ...]
    inboxes: tuple[Path, ...]
    outboxes: tuple[Path, ...]
    failed_folders: tuple[Path, ...]
    config_path: Path | None
    log_path: Path | None


@dataclass(frozen=True)
class BoardView:
    """The board's part of a snapshot, read in one go."""

    done: int
    total: int
    unseen_failures: int
    last_failure: str | None
    recent: tuple[RecentConversion, ...]
    service_problem: str | None
    config_error: str | None


@dataclass
class _Batch:
    """The files journaled (or waiting in a shared inbox) since the queue was last empty, and
    how they ended."""

    total: int = 0
    converted: int = 0
    failed: int = 0
    not_converted: int = 0  # dropped: removed or changed before sending, or taken by another PC

    @property
    def finished(self) -> int:
        return self.converted + self.failed + self.not_converted

    def summary_if_over(self) -> str | None:
        """What the batch-finished notice says, once every file is finished; None before,
        and for a batch in which nothing was converted (told by its failure notices alone)."""
        if self.converted == 0 or self.finished < self.total:
            return None
        return self.summary()

    def summary(self) -> str:
        words = [f"{count(self.converted, 'file')} converted"]
        if self.failed:
            words.append(f"{self.failed} failed")
        if self.not_converted:
            words.append(
                f"{self.not_converted} not converted here (removed, changed or taken by another PC)"
            )
        return ", ".join(words)


class StatusBoard:
    """The counters the user sees that the journal does not keep, and who is told of changes.

    Thread-safe: workers, the watcher's thread and the housekeeper all report here."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._notice_listeners: list[Callable[[Notice], None]] = []
        self._batch = _Batch()
        self._unseen_failures = 0
        self._last_failure: str | None = None
        # Newest first, so that showing the latest results never sorts a long history.
        self._recent: deque[RecentConversion] = deque(maxlen=RECENT_LIMIT)
        self._service_problem: str | None = None
        self._service_problem_since: float | None = None  # monotonic
        self._outage_told = False
        self._config_error: str | None = None
        self._low_credit_told = False

    def add_listener(self, listener: Callable[[Snapshot], None]) -> None:
        self._listeners.append(listener)

    def add_notice_listener(self, listener: Callable[[Notice], None]) -> None:
        self._notice_listeners.append(listener)

    def publish(self, snapshot: Callable[[], Snapshot]) -> None:
        """Tells every listener the current state; the snapshot is built only if one listens."""
        if not self._listeners:
            return
        current = snapshot()
        for listener in self._listeners:
            try:
                listener(current)
            except Exception:
                log.exception("a status listener failed")

    def tell(self, kind: NoticeKind, title: str, message: str) -> None:
        if kind not in _LOGGED_WHERE_THEY_HAPPEN:
            log.info("%s: %s", title, message)
        notice = Notice(kind, title, message)
        for listener in self._notice_listeners:
            try:
                listener(notice)
            except Exception:
                log.exception("a notice listener failed")

    def view(self) -> BoardView:
        with self._lock:
            return BoardView(
                done=self._batch.finished,
                total=self._batch.total,
                unseen_failures=self._unseen_failures,
                last_failure=self._last_failure,
                recent=tuple(self._recent),
                service_problem=self._service_problem,
                config_error=self._config_error,
            )

    def restore(self, still_active: int, done: list[Job]) -> None:
        """At start: the unfinished jobs of the last run are this batch; its results are the
        latest ones (newest first)."""
        with self._lock:
            self._batch = _Batch(total=still_active)
            self._recent.extend(r for r in map(RecentConversion.of, done) if r is not None)

    def arrived(self, count: int) -> None:
        """Newly journaled jobs, or files waiting in a shared inbox for this station to claim
        (not counted again once journaled): a new batch if the last one is over."""
        with self._lock:
            if self._batch.finished >= self._batch.total:
                self._batch = _Batch()
            self._batch.total += count

    def finished(self, job: Job, *, queue_empty: Callable[[], bool]) -> None:
        """A job reached DONE, FAILED or DROPPED: counted, and told when it failed or when it
        ended the batch (`queue_empty` is asked only then)."""
        with self._lock:
            recent = RecentConversion.of(job)
            if recent is not None:
                self._recent.appendleft(recent)
            if job.state is JobState.DONE:
                self._batch.converted += 1
            elif job.state is JobState.FAILED:
                self._batch.failed += 1
                self._count_failure(f"{job.display_name}: {job.error}")
            else:
                self._batch.not_converted += 1
            summary = self._batch.summary_if_over()
        if job.state is JobState.FAILED:
            self.tell(
                NoticeKind.FILE_FAILED, "Conversion failed", f"{job.display_name}: {job.error}"
            )
        self._tell_if_over(summary, queue_empty)

    def passed_over(self, count: int, *, queue_empty: Callable[[], bool]) -> None:
        """Files counted in `arrived` while they waited in a shared inbox, which another
        station took (or which went away) before this one claimed them."""
        with self._lock:
            self._batch.not_converted += count
            summary = self._batch.summary_if_over()
        self._tell_if_over(summary, queue_empty)

    def _tell_if_over(self, summary: str | None, queue_empty: Callable[[], bool]) -> None:
        """`queue_empty` is asked only once the batch counts every file as finished."""
        if summary and queue_empty():
            self.tell(NoticeKind.BATCH_DONE, "Batch finished", summary)

    def failed_before_journal(self, text: str) -> None:
        """A file set aside without a job (it could not be read)."""
        with self._lock:
            self._count_failure(text)

    def _count_failure(self, text: str) -> None:
        self._unseen_failures += 1
        self._last_failure = text

    def acknowledge_failures(self) -> None:
        with self._lock:
            self._unseen_failures = 0

    def service_state(self, problem: str | None) -> bool:
        """Records whether the service can be reached; True if that changed."""
        with self._lock:
            if problem == self._service_problem:
                return False
            self._service_problem = problem
            self._service_problem_since = self._clock() if problem else None
            self._outage_told = False
        return True

    def tell_long_outage(self) -> None:
        """Tells once when the service has been out of reach for OFFLINE_NOTICE_SECONDS."""
        with self._lock:
            since, problem = self._service_problem_since, self._service_problem
            due = (
                since is not None
                and not self._outage_told
                and self._clock() - since > OFFLINE_NOTICE_SECONDS
            )
            if due:
                self._outage_told = True
        if due:
            minutes = OFFLINE_NOTICE_SECONDS / 60
            self.tell(
                NoticeKind.OFFLINE,
                "Service unreachable",
                f"for more than {minutes:.0f} minutes ({problem}); files wait and retry",
            )

    def config_state(self, error: str | None) -> bool:
        """Records whether the edited rules file is broken; True if that is news."""
        with self._lock:
            news = error != self._config_error
            self._config_error = error
        return news

    def credit_state(self, low: bool) -> bool:
        """Records whether credit is low; True the first time it is (told once per fall)."""
        with self._lock:
            first = low and not self._low_credit_told
            self._low_credit_told = low
        return first
