"""When a file in an inbox counts as complete: the settle policy, apart from the watching.

A file is handed on once its size and mtime have stood still for `settle_seconds`, it can be
read, and it looks whole (a PDF has its end marker). Scanners reopen a file between pages,
FTP and NAS uploads create it empty and fill it later: only a quiet settle clock tells that
the last chunk has come. This module holds that policy and nothing else: no file is opened,
no thread started and no clock read here. The watcher (watcher/inbox.py) looks at the files,
reads the clocks and holds the lock; it tells the tracker what it saw and when, and does what
the tracker decides. So every rule below is tested with a fake clock, in no time and without
a race, and the watcher is left with threads, events and I/O.

One look at a due file goes in two steps, so that a file is only opened when that can decide
anything (while it still changes, a look costs one lstat):

    looks = tracker.due(now)                      # the files whose look is due, popped
    decision = tracker.looked(look, state, now, wall)      # its size and mtime now
    if isinstance(decision, Inspect):             # stood still long enough: is it whole?
        decision = tracker.inspected(look, contents, now)  # Ready, GiveUp, Unreadable, Wait

Unreadable files. One failed read proves nothing: a virus scanner locks a file for a moment, a
sync client fetches a cloud-only file when it is first read, and on Windows a writer can keep
a file to itself in ways the watcher cannot tell from a missing permission. So a file is only
declared unreadable once reading it has failed `read_tries` times, the first at least
`give_up_after` ago (60 s, or 10 settle periods): the moment a file that still looks
unfinished is given up on, and about when the watcher used to hand an unopenable file on
anyway, only for the daemon to fail to read it at every rescan.
Failures count whoever met them: the watcher's own look inside, and the daemon reading the
file once it was handed on (`unread`), which happens once per offer, so at most once per
rescan. Meanwhile the watcher looks again with a growing pause (0.2, 0.4, 0.8 … s): a file
that could not be read for a few seconds is taken a few seconds after it can be, and a
file that never can is opened about ten times a minute, not five times a second. Once
declared unreadable, a file is left alone until its size or mtime changes.

Not thread-safe: the watcher calls every method under its one lock.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

__all__ = [
    "Contents",
    "Decision",
    "Dropped",
    "FileState",
    "GiveUp",
    "Inspect",
    "Look",
    "Ready",
    "SettleTracker",
    "Unreadable",
    "Wait",
]

T = TypeVar("T")

# Defaults; the watcher passes its own (see watcher/inbox.py).
GIVE_UP_SECONDS = 60.0
MIN_PAUSE = 0.2
READ_TRIES = 3


@dataclass(frozen=True)
class FileState:
    """What one lstat of the file showed: any change restarts the settle clock. The inode
    tells a file put in another's place with the same size and time (0: not known)."""

    size: int
    mtime_ns: int
    inode: int = 0


@dataclass(frozen=True)
class Contents:
    """What reading the file showed: whether it looks whole, or why it could not be read."""

    complete: bool  # the writer seems done: the file reads, and a PDF has its end marker
    unreadable: str | None = None  # why it could not be read ("Permission denied"), or None

    def __post_init__(self) -> None:
        if self.complete and self.unreadable is not None:
            raise ValueError("a file that could not be read cannot look complete")


@dataclass(frozen=True)
class Look(Generic[T]):
    """One due look at a candidate, from `due()`: hand it back with what was seen. It is
    stale (answered with `Dropped`) once the file was forgotten, or forgotten and seen anew."""

    path: Path
    tag: T  # what the watcher gave `seen()` with the file (the rules that took it)
    ticket: int


@dataclass(frozen=True)
class Wait:
    """Not yet: the file's next look is queued for `until`."""

    until: float


@dataclass(frozen=True)
class Inspect:
    """It has stood still long enough: read it, and tell `inspected()` what it showed."""


@dataclass(frozen=True)
class Ready:
    """It is complete: hand it on. It is counted as handed on until it changes."""


@dataclass(frozen=True)
class GiveUp:
    """It still looks unfinished after standing still for long: hand it on anyway, so that
    the daemon tells the user what is wrong with it instead of it waiting silently forever.
    `reason` follows the file's name in a sentence."""

    reason: str


@dataclass(frozen=True)
class Unreadable:
    """It could not be read, time and again: do not hand it on; tell the user `reason` (the
    last failure's, and how often and long it was tried: "Permission denied; tried 3 times
    over 61 s"). It is left alone until it changes."""

    reason: str


@dataclass(frozen=True)
class Dropped:
    """Nothing to do: the file went away, or the look was stale."""


Decision = Wait | Inspect | Ready | GiveUp | Unreadable | Dropped


@dataclass
class _Candidate(Generic[T]):
    """A file seen but not yet settled."""

    state: FileState  # at the last look
    since: float  # when that state was first seen (on the caller's monotonic clock)
    tag: T
    ticket: int
    due: float | None  # when its next look is queued; None while a look is under way
    settle_seconds: float | None = None  # its own (its inbox's), else the tracker's


@dataclass
class _Failures:
    """Failed reads of one file while it is in one state."""

    state: FileState
    count: int
    first: float  # when the first of them failed
    last_reason: str


class SettleTracker(Generic[T]):
    """Decides, for each file the watcher sees, when it is complete; see the module's text.

    `now` arguments are one monotonic clock (time.monotonic()), `wall` the wall clock
    (time.time()) at the same moment: an mtime is only comparable with the latter.
    """

    def __init__(
        self,
        settle_seconds: float,
        give_up_seconds: float = GIVE_UP_SECONDS,
        *,
        min_pause: float = MIN_PAUSE,
        read_tries: int = READ_TRIES,
    ) -> None:
        self.settle_seconds = settle_seconds  # may be changed at any time (new rules)
        self.give_up_seconds = give_up_seconds
        self.min_pause = min_pause  # between looks at a changing file, even if settle is 0
        self.read_tries = read_tries
        self._pending: dict[Path, _Candidate[T]] = {}
        self._queue: list[tuple[float, int, Path, int]] = []  # (due, order, path, ticket)
        self._order = itertools.count()
        self._tickets = itertools.count()
        self._settled: dict[Path, FileState] = {}  # handed on (or given up) in this state
        self._failures: dict[Path, _Failures] = {}

    @property
    def give_up_after(self) -> float:
        """How long a file stands still, or keeps failing to read, before it is given up on."""
        return self._give_up_after(self.settle_seconds)

    def _give_up_after(self, settle_seconds: float) -> float:
        return max(self.give_up_seconds, 10 * settle_seconds)

    def _settle_of(self, candidate: _Candidate[T]) -> float:
        own = candidate.settle_seconds
        return self.settle_seconds if own is None else own

    @property
    def pending_count(self) -> int:
        """Files seen but not yet settled (with a look under way or not)."""
        return len(self._pending)

    def is_pending(self, path: Path) -> bool:
        return path in self._pending

    def settled_paths(self) -> list[Path]:
        """The files handed on or given up, and not seen to change or go since."""
        return list(self._settled)

    # --- Arrivals ------------------------------------------------------------------------

    def seen(
        self,
        path: Path,
        state: FileState,
        now: float,
        wall: float,
        tag: T,
        settle_seconds: float | None = None,
    ) -> Wait | None:
        """A file may have arrived (an event, a rescan): start its settle clock, unless it is
        pending already (its next look will notice any change) or was settled in this very
        state. Returns when its first look is due, or None when nothing was started.
        `settle_seconds` is this file's own (its inbox's), else the tracker's is used."""
        if path in self._pending or self._settled.get(path) == state:
            return None
        settle = self.settle_seconds if settle_seconds is None else settle_seconds
        since = self._still_since(state, now, wall, settle)
        candidate = _Candidate(state, since, tag, next(self._tickets), None, settle_seconds)
        self._pending[path] = candidate
        return self._queue_look(path, candidate, since + settle)

    def forget(self, path: Path) -> None:
        """The file was deleted or moved away: everything about it is forgotten; a look
        under way is answered with `Dropped`."""
        self._pending.pop(path, None)
        self._settled.pop(path, None)
        self._failures.pop(path, None)

    def prune(self, paths: list[Path]) -> None:
        """A rescan found these settled files gone: forget them, but not a candidate that
        has arrived under the same name meanwhile."""
        for path in paths:
            self._settled.pop(path, None)
            self._failures.pop(path, None)

    # --- Looks ---------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When the earliest queued look is due, or None when none is queued."""
        while self._queue and not self._is_live(self._queue[0]):
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def due(self, now: float) -> list[Look[T]]:
        """Take every look due by `now`, earliest first; each must be answered with
        `looked()` (else the file stays pending, unlooked at, until forgotten)."""
        looks = []
        while self._queue and self._queue[0][0] <= now:
            entry = heapq.heappop(self._queue)
            if self._is_live(entry):
                _, _, path, ticket = entry
                candidate = self._pending[path]
                candidate.due = None
                looks.append(Look(path, candidate.tag, ticket))
        return looks

    def looked(self, look: Look[T], state: FileState | None, now: float, wall: float) -> Decision:
        """What one lstat showed at a due look (None: the file is gone or no longer a
        regular file). Any change restarts the settle clock; `Inspect` when it has stood
        still for `settle_seconds`."""
        candidate = self._in_flight(look)
        if candidate is None:
            return Dropped()
        if state is None:  # gone: what was settled about it is pruned at the next rescan
            del self._pending[look.path]
            self._failures.pop(look.path, None)
            return Dropped()
        if state != candidate.state:
            candidate.state = state
            settle = self._settle_of(candidate)
            candidate.since = self._still_since(state, now, wall, settle)
            # Changed since it was last seen (seen as it was created, empty, and written just
            # after): due when its mtime says it will have stood still for the settle time,
            # as a file first seen in this state would be, at once if that is past. Only a
            # file written a moment ago waits for min_pause: no tight loop on a busy file.
            if wall - state.mtime_ns / 1e9 < self.min_pause:
                return self._queue_look(look.path, candidate, self._settle_time(candidate, now))
            if now < candidate.since + settle:
                return self._queue_look(look.path, candidate, candidate.since + settle)
        if now >= candidate.since + self._settle_of(candidate):
            return Inspect()
        return self._queue_look(look.path, candidate, self._settle_time(candidate, now))

    def inspected(self, look: Look[T], contents: Contents, now: float) -> Decision:
        """What reading the file showed, after `Inspect` (with the same `now`)."""
        candidate = self._in_flight(look)
        if candidate is None:
            return Dropped()
        if contents.complete:
            self._settle(look.path, candidate)
            return Ready()
        if contents.unreadable is None:
            if now >= candidate.since + self._give_up_after(self._settle_of(candidate)):
                self._settle(look.path, candidate)
                still_for = now - candidate.since
                return GiveUp(f"has not changed for {still_for:.0f} s but still looks unfinished")
            return self._queue_look(look.path, candidate, self._settle_time(candidate, now))
        failures = self._failed(look.path, candidate.state, now, contents.unreadable)
        give_up_after = self._give_up_after(self._settle_of(candidate))
        if self._given_up(failures, now, give_up_after):
            self._settle(look.path, candidate)
            return Unreadable(self._unreadable_reason(failures, now))
        # Twice as long since the first failure, but not past the moment it can be given up.
        deadline = failures.first + give_up_after
        again = min(now + (now - failures.first), deadline)
        return self._queue_look(look.path, candidate, max(again, now + self.min_pause))

    def abandon(self, look: Look[T]) -> None:
        """The look could not be made (an unexpected error): the candidate is dropped, so
        that the next sighting of the file (an event, a rescan) starts afresh."""
        if self._in_flight(look) is not None:
            del self._pending[look.path]

    # --- After the hand-on ---------------------------------------------------------------

    def taken(self, path: Path) -> None:
        """The daemon took the file handed on: its failed reads are forgotten."""
        self._failures.pop(path, None)

    def release(self, path: Path) -> None:
        """Forget that the file was handed on (it was not taken, or is no longer wanted): the
        next time it is seen, it is offered again. Its failed reads still count."""
        self._settled.pop(path, None)

    def unread(self, path: Path, now: float, reason: str) -> Unreadable | None:
        """The daemon could not read a file handed on: one more failed read. `Unreadable`
        once that is too many (it stays settled, left alone until it changes); else None,
        and it is offered again the next time it is seen (at the next rescan)."""
        state = self._settled.get(path)
        if state is None:
            return None  # deleted or moved meanwhile, or seen to change
        failures = self._failed(path, state, now, reason)
        if self._given_up(failures, now, self.give_up_after):
            return Unreadable(self._unreadable_reason(failures, now))
        del self._settled[path]
        return None

    # --- Inside --------------------------------------------------------------------------

    def _still_since(self, state: FileState, now: float, wall: float, settle: float) -> float:
        """When the file last changed, on the monotonic clock: its mtime tells, so a file that
        was written a moment before it was seen is not made to wait a whole settle period
        more. Credited at most one settle period (a clock step or a preserved mtime proves
        nothing beyond that), and never into the future."""
        age = wall - state.mtime_ns / 1e9
        return now - min(settle, max(0.0, age))

    def _settle_time(self, candidate: _Candidate[T], now: float) -> float:
        return max(candidate.since + self._settle_of(candidate), now + self.min_pause)

    def _queue_look(self, path: Path, candidate: _Candidate[T], due: float) -> Wait:
        candidate.due = due
        heapq.heappush(self._queue, (due, next(self._order), path, candidate.ticket))
        return Wait(due)

    def _is_live(self, entry: tuple[float, int, Path, int]) -> bool:
        due, _, path, ticket = entry
        candidate = self._pending.get(path)
        return candidate is not None and candidate.ticket == ticket and candidate.due == due

    def _in_flight(self, look: Look[T]) -> _Candidate[T] | None:
        candidate = self._pending.get(look.path)
        if candidate is None or candidate.ticket != look.ticket or candidate.due is not None:
            return None
        return candidate

    def _settle(self, path: Path, candidate: _Candidate[T]) -> None:
        del self._pending[path]
        self._settled[path] = candidate.state

    def _failed(self, path: Path, state: FileState, now: float, reason: str) -> _Failures:
        failures = self._failures.get(path)
        if failures is None or failures.state != state:  # changed since: a fresh start
            failures = self._failures[path] = _Failures(state, 0, now, reason)
        failures.count += 1
        failures.last_reason = reason
        return failures

    def _given_up(self, failures: _Failures, now: float, give_up_after: float) -> bool:
        deadline = failures.first + give_up_after
        return failures.count >= self.read_tries and now >= deadline

    @staticmethod
    def _unreadable_reason(failures: _Failures, now: float) -> str:
        elapsed = now - failures.first
        return f"{failures.last_reason}; tried {failures.count} times over {elapsed:.0f} s"
