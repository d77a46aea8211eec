"""A job's life: its states, the moves allowed between them, and the record the journal keeps.

    QUEUED ──► UPLOADING ──► DOWNLOADING ──► DONE     (downloaded, then filed)
      │ ▲          │    ▲          ▲
      │ │          ▼    │          │
      │ └─── WAITING_FOR_RESULT ───┘
      ├────────► FILING ──► DONE                       (an identical earlier result is reused)
      └────────► DROPPED                               (the file left or changed before it was sent)
    UPLOADING, WAITING_FOR_RESULT ──► DROPPED          (another PC on a shared inbox took it over)
    HELD ◄── QUEUED (credit guard, daily limit, sending hours),
             UPLOADING (cut before it was sent, too often),
             WAITING_FOR_RESULT (the service no longer knows what it was sent)
    HELD, FAILED ──► QUEUED or WAITING_FOR_RESULT      (the user resumes or retries)

`TRANSITIONS` below is exactly this picture, and the journal refuses any other move.

**The spend invariant.** Every move to UPLOADING is a submission the user may pay for, and
the journal records it (table `submissions`) in the very statement that makes the move.
Once a submission *may* have reached the service, the job is never submitted again by
itself: the journal's own trigger refuses the next move to UPLOADING until the submission
is closed as one that provably never arrived (no connection, or cut before the whole body
was handed over, at most `MAX_CUT_BEFORE_SENT` times) or the user has approved sending it
again. So over any run, automatic paid submissions per job are at most one, whatever the
service, the network or the code above the journal does. A job that may be at the service
asks for its result by name (across restarts too); when the service keeps not knowing the
name, the job is HELD for the user to decide, never re-sent.

Every move is written to the journal before the side effect it guards, so a process killed
at any line resumes from a state that says exactly what may already have happened. Only the
steps that can be done again for free share a move: a DOWNLOADING job's result is fetched,
staged (an atomic rename, the mark of a whole download, under a name no other job has) and
filed, and filing recognises its own earlier work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from watcher.filing import DEFAULT_NAME, staging_path


class JobState(str, Enum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    WAITING_FOR_RESULT = "waiting_for_result"
    DOWNLOADING = "downloading"
    FILING = "filing"  # an identical earlier result is copied: nothing is sent
    DONE = "done"
    FAILED = "failed"
    HELD = "held"  # waits for the user (or the next day); Job.hold says why
    DROPPED = "dropped"  # removed or changed in the inbox before it was sent: nothing to do

    @property
    def is_finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.DROPPED)


ACTIVE_STATES = frozenset(
    {
        JobState.QUEUED,
        JobState.UPLOADING,
        JobState.WAITING_FOR_RESULT,
        JobState.DOWNLOADING,
        JobState.FILING,
    }
)

_S = JobState
# Exactly the moves the code makes (tests/test_jobs.py checks both ways).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    _S.QUEUED: frozenset({_S.UPLOADING, _S.FILING, _S.DROPPED, _S.HELD, _S.FAILED}),
    _S.UPLOADING: frozenset(
        {_S.WAITING_FOR_RESULT, _S.DOWNLOADING, _S.QUEUED, _S.HELD, _S.FAILED, _S.DROPPED}
    ),
    _S.WAITING_FOR_RESULT: frozenset({_S.DOWNLOADING, _S.QUEUED, _S.HELD, _S.FAILED, _S.DROPPED}),
    _S.DOWNLOADING: frozenset({_S.DONE, _S.FAILED}),
    _S.FILING: frozenset({_S.DONE, _S.FAILED}),
    _S.HELD: frozenset({_S.QUEUED, _S.WAITING_FOR_RESULT}),
    _S.FAILED: frozenset({_S.QUEUED, _S.WAITING_FOR_RESULT}),
    _S.DONE: frozenset(),
    _S.DROPPED: frozenset(),
}

# The moves whose record may reach the disk with the next synced commit instead of its own
# (the journal skips their fsync): the result's link. A power cut that loses it leaves the
# job UPLOADING or WAITING_FOR_RESULT, which asks the service for the result by name and
# never uploads again by itself. Every other move guards a payment or a file and is synced.
UNSYNCED_MOVES: frozenset[tuple[JobState, JobState]] = frozenset(
    {(_S.UPLOADING, _S.DOWNLOADING), (_S.WAITING_FOR_RESULT, _S.DOWNLOADING)}
)

# A submission whose connection broke before the whole file was handed over surely did not
# reach the service and is sent again by itself, but only this often: past it, a fault we
# do not understand is the user's to judge.
MAX_CUT_BEFORE_SENT = 5
# The longest pause the daemon sets before trying a job again (a server's Retry-After is
# capped to it): a `not_before` further away than this means the clock was set back.
MAX_DEFER_SECONDS = 3600.0


class SubmissionOutcome(str, Enum):
    """What became of one submission, as the journal's `submissions` table keeps it."""

    MAY_HAVE_REACHED = "may_have_reached"  # the service may have it, and may charge it
    NO_CONNECTION = "no_connection"  # no connection was made: nothing left this computer
    NOT_SENT = "not_sent"  # the service answered before taking it (429, key, credit)
    CUT_BEFORE_SENT = "cut_before_sent"  # connected, cut before the whole body was sent
    REFUSED = "refused"  # the service refused the file itself
    RESEND_APPROVED = "resend_approved"  # may have reached; the user chose to send again
    CUT_RETRY_APPROVED = "cut_retry_approved"  # cut before sent; the user chose to go on


class HoldKind(str, Enum):
    """Why a job is HELD: the two holds are released by different decisions."""

    BUDGET = "budget"  # credit guard or daily limit, before anything was sent: re-judged
    UNCERTAIN = "uncertain"  # sending again may pay twice: only the user releases it
    SCHEDULED = "scheduled"  # outside its inbox's sending hours: released when they begin


ORIGINAL_DELETED = "(deleted)"


def readable(name: str) -> str:
    """A name Python read from the disk, with any undecodable bytes (held as surrogate
    escapes) replaced, so that it can be logged, shown and used for a result's name."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class IllegalTransition(RuntimeError):
    """A bug, not a user error: the code tried a move the state machine does not have."""


def check_transition(current: JobState, target: JobState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a job cannot go from {current.value} to {target.value}")


class SourceKind(str, Enum):
    FILE = "file"  # uploaded with a multipart POST
    URL = "url"  # an internet shortcut: the service fetches the address itself (GET)


@dataclass(frozen=True)
class Rule:
    """What to do with a file, copied into the job so later rule edits do not change it.
    The folders are this file's own: with subfolders kept, they already end in the
    subfolder the file came from. `name` is the result's name template (watcher.filing)."""

    outformat: str
    lang: str
    ocr: bool
    outbox: Path
    archive: Path
    failed: Path
    after_success: str
    name: str = DEFAULT_NAME


@dataclass(frozen=True)
class NewJob:
    """What intake knows of a job before the journal gives it an id (a Job's first fields)."""

    source: Path
    inbox: Path | None
    kind: SourceKind
    url: str | None
    content_hash: str
    size: int
    mtime_ns: int
    rule: Rule
    remote_name: str
    inode: int = 0  # 0: not known (a file system without inode numbers)


# What a job is created with and keeps: every other field of Job may change with a move.
FIXED_AT_CREATION = frozenset(
    {"id", "inbox", "kind", "content_hash", "size", "mtime_ns", "rule", "state", "created_at"}
)


@dataclass(frozen=True)
class Job:
    """One file's conversion as the journal knows it; the defaults are a new job's."""

    id: int
    source: Path
    inbox: Path | None
    kind: SourceKind
    url: str | None
    content_hash: str
    size: int
    mtime_ns: int
    rule: Rule
    state: JobState
    remote_name: str
    created_at: float
    updated_at: float
    pages: int | None = None
    sent_at: float | None = None  # set while a submission may be at the service
    link: str | None = None
    output: Path | None = None
    attempts: int = 0
    not_before: float = 0.0
    error: str | None = None
    available_pages: int | None = None
    original_at: str | None = None  # where the original went; None while it is in the inbox
    charged_on: str | None = None  # the local day its pages count against, once possibly sent
    held_until: float | None = None  # a HELD job's automatic release (the next day), if any
    approved: bool = False  # released from a hold by the user: spend its pages, guard or not
    hold: HoldKind | None = None  # why it is HELD
    output_hash: str | None = None  # SHA-256 of the result placed
    inode: int = 0  # the original's, when it was queued (0: not known)

    def evolve(self, **changes: object) -> Job:
        """A copy with `changes`: `dataclasses.replace` without running `__init__` over all
        28 fields again (a frozen dataclass sets each one through `object.__setattr__`).
        A job is copied four or five times per file on the workers' path, where that was
        4-5 % of the daemon's interpreter time (py-spy --gil)."""
        unknown = changes.keys() - _JOB_FIELDS
        if unknown:
            raise TypeError(f"Job has no fields {sorted(unknown)}")
        copy = object.__new__(Job)
        vars(copy).update(vars(self), **changes)
        return copy

    @property
    def display_name(self) -> str:
        """The file's name as people read it: bytes that are no UTF-8 shown as "�"."""
        return readable(self.source.name)

    def is_due(self, now: float) -> bool:
        """Its pause is over, or ends further away than any pause the daemon sets (the
        clock was set back since): a wall-clock jump never leaves a job idle."""
        return self.not_before <= now or self.not_before > now + MAX_DEFER_SECONDS

    def is_original(self, stat: os.stat_result) -> bool:
        """`stat` is of this job's original as it was queued, not a new or changed file
        under its name (same size and time, and the same inode where it is known)."""
        same_inode = not self.inode or not stat.st_ino or stat.st_ino == self.inode
        return same_inode and stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns

    @property
    def staged(self) -> Path:
        """Where its result waits, whole, under a hidden name, until it is filed."""
        return staging_path(self.rule.outbox, self.id, self.remote_name, self.rule.outformat)

    @property
    def may_be_at_service(self) -> bool:
        """A submission may have reached the service: poll, never send again by itself.
        Mirrors the journal's open submission (the trigger there is what enforces it)."""
        return self.sent_at is not None


_JOB_FIELDS = frozenset(item.name for item in fields(Job))
