"""A job's life: its states, the moves allowed between them, and the record the journal keeps.

    QUEUED ──► UPLOADING ──► DOWNLOADING ──► DONE     (downloaded, then filed)
      ▲  │         │    ▲          ▲
      │  │         ▼    │          │
      │  │   WAITING_FOR_RESULT ───┘        (any active state) ──► FAILED / HELD
      │  └──────────────► FILING ──► DONE   (an identical earlier result is reused)
      └── HELD, FAILED (the user resumes or retries)
    QUEUED ──► DROPPED   (the file left or changed before it was sent; its new version,
                          if any, is a new job)

Every move is written to the journal before the side effect it guards (the journal refuses
any move not listed here), so a process killed at any line resumes from a state that says
exactly what may already have happened: a job found in UPLOADING may have reached the
service and is polled by name before it is ever sent again. Only the steps that can be done
again for free share a move: a DOWNLOADING job's result is fetched, staged (an atomic rename,
the mark of a whole download, under a name no other job has) and filed, and filing
recognises its own earlier work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from watcher.filing import staging_path


class JobState(str, Enum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    WAITING_FOR_RESULT = "waiting_for_result"
    DOWNLOADING = "downloading"
    FILING = "filing"
    DONE = "done"
    FAILED = "failed"
    HELD = "held"
    DROPPED = "dropped"  # removed or changed in the inbox before it was sent: nothing to do

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES

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

_ALWAYS_POSSIBLE = {JobState.FAILED, JobState.HELD}

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(
        {JobState.UPLOADING, JobState.FILING, JobState.DROPPED} | _ALWAYS_POSSIBLE
    ),
    JobState.UPLOADING: frozenset(
        {JobState.QUEUED, JobState.WAITING_FOR_RESULT, JobState.DOWNLOADING} | _ALWAYS_POSSIBLE
    ),
    JobState.WAITING_FOR_RESULT: frozenset(
        {JobState.QUEUED, JobState.DOWNLOADING} | _ALWAYS_POSSIBLE
    ),
    JobState.DOWNLOADING: frozenset({JobState.WAITING_FOR_RESULT, JobState.DONE, JobState.FAILED}),
    JobState.FILING: frozenset({JobState.DONE, JobState.FAILED}),
    JobState.HELD: frozenset({JobState.QUEUED, JobState.WAITING_FOR_RESULT, JobState.FAILED}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.WAITING_FOR_RESULT}),
    JobState.DONE: frozenset(),
    JobState.DROPPED: frozenset(),
}


ORIGINAL_DELETED = "(deleted)"


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
    """What to do with a file, copied into the job so later rule edits do not change it."""

    outformat: str
    lang: str
    ocr: bool
    outbox: Path
    archive: Path
    failed: Path
    after_success: str


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
    sent_at: float | None = None  # set while the service may hold an upload of ours
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

    @property
    def display_name(self) -> str:
        return self.source.name

    @property
    def staged(self) -> Path:
        """Where its result waits, whole, under a hidden name, until it is filed."""
        return staging_path(self.rule.outbox, self.id, self.remote_name, self.rule.outformat)

    @property
    def may_be_at_service(self) -> bool:
        """An upload may have reached the service: poll before sending again."""
        return self.sent_at is not None
