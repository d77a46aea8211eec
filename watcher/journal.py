"""The durable journal: one SQLite file (WAL) that remembers every job and every move.

Every write commits before it returns, with synchronous=FULL, because the caller's next line
is a side effect (an upload, a rename) that the journal must already know about if the power
goes. The one exception is a move in `UNSYNCED_MOVES` (watcher.jobs): a power cut that loses
it costs a poll by name, never a payment, and the next synced commit makes it durable too.
One connection writes for all threads behind a lock: the daemon writes a few rows per file,
far below what a single connection sustains. Reads go through a second connection, which WAL
lets see every commit without waiting for the one under way.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from watcher.errors import WatcherError
from watcher.jobs import (
    ACTIVE_STATES,
    FIXED_AT_CREATION,
    MAX_CUT_BEFORE_SENT,
    MAX_DEFER_SECONDS,
    UNSYNCED_MOVES,
    HoldKind,
    IllegalTransition,
    Job,
    JobState,
    NewJob,
    SubmissionOutcome,
    check_transition,
)
from watcher.rows import NEW_JOB_COLUMNS, job_from_row, new_job_row, path_column, to_column

JOURNAL_FILE_NAME = "journal.sqlite3"
# The message of the trigger that refuses a second automatic submission (see MIGRATIONS).
SPEND_REFUSED = "spend invariant"
# A test hook for the kill -9 tests: the process dies the instant a move to this state is
# committed, before the side effect it guards, which is exactly the moment that must be safe.
CRASH_AFTER_ENV = "PDFOCR_WATCHER_CRASH_AFTER"

# Facts about the daemon as a whole, kept beside the jobs so `status` can show them.
META_HOLD = "hold_reason"  # why the whole queue is held (account problem), if it is
META_BREAKER = "breaker"  # why the circuit breaker tripped: kept across restarts until Resume
META_SERVICE = "service_problem"  # why the service is unreachable, if it is
META_PAGES = "available_pages"  # the last balance the service reported
META_PAGES_AT = "available_pages_at"
META_MODE = "mode"  # "sandbox" or "live"

# The journal's schema as a list of steps: a journal at version N (PRAGMA user_version) has
# had the first N applied. A new release appends a step and never edits an old one, so every
# journal an earlier release wrote is brought up to date in place. Version 0 is also the
# first release's journal, which had no version: its step is written to be harmless there.
MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, daily totals of folded jobs, and facts about the daemon.
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        inbox TEXT,
        kind TEXT NOT NULL,
        url TEXT,
        content_hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        outformat TEXT NOT NULL,
        lang TEXT NOT NULL,
        ocr INTEGER NOT NULL,
        outbox TEXT NOT NULL,
        archive TEXT NOT NULL,
        failed TEXT NOT NULL,
        after_success TEXT NOT NULL,
        state TEXT NOT NULL,
        remote_name TEXT NOT NULL,
        pages INTEGER,
        sent_at REAL,
        link TEXT,
        staged TEXT, -- unused since release 1: a staged name follows from the job
        output TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        error TEXT,
        available_pages INTEGER,
        original_at TEXT,
        charged_on TEXT,
        held_until REAL,
        approved INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, not_before);
    CREATE INDEX IF NOT EXISTS jobs_source ON jobs (source);
    CREATE INDEX IF NOT EXISTS jobs_twin ON jobs (content_hash, outformat, lang, ocr);
    CREATE INDEX IF NOT EXISTS jobs_charged ON jobs (charged_on, inbox, pages);
    CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at);
    CREATE TABLE IF NOT EXISTS history (
        day TEXT NOT NULL,
        inbox TEXT NOT NULL,
        state TEXT NOT NULL,
        jobs INTEGER NOT NULL,
        pages INTEGER NOT NULL,
        PRIMARY KEY (day, inbox, state)
    );
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
    -- The balance a result brought is kept by the very statement that records the result:
    -- one trip through SQLite instead of a transaction of four, for a worker holding the lock.
    CREATE TRIGGER IF NOT EXISTS jobs_balance AFTER UPDATE OF available_pages ON jobs
    WHEN NEW.available_pages IS NOT NULL
    BEGIN
        INSERT OR REPLACE INTO meta (key, value) VALUES
            ('available_pages', NEW.available_pages), ('available_pages_at', NEW.updated_at);
    END;
    """,
    # 2: every submission, and the spend invariant (watcher.jobs) enforced by SQLite itself,
    # so that no code path, however wrong, can submit a job twice by itself.
    f"""
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL,
        remote_name TEXT NOT NULL,
        pages INTEGER,
        sent_at REAL NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX submissions_job ON submissions (job_id, outcome);
    ALTER TABLE jobs ADD COLUMN hold TEXT; -- why a HELD job is held (watcher.jobs.HoldKind)
    -- The SHA-256 of the result placed: a copy of it found in an inbox of the same format
    -- (a second mount of the outbox, a sync tool) is our own result, never a new job.
    ALTER TABLE jobs ADD COLUMN output_hash TEXT;
    -- The original's inode: a file put in its place with the same size and time is another.
    ALTER TABLE jobs ADD COLUMN inode INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_output_hash ON jobs (output_hash, outformat);
    CREATE TABLE own_results ( -- the digests of results whose jobs were folded away
        output_hash TEXT NOT NULL,
        outformat TEXT NOT NULL,
        PRIMARY KEY (output_hash, outformat)
    );
    UPDATE jobs SET hold = 'budget' WHERE state = 'held'; -- the first release's only kind
    CREATE TRIGGER submissions_guard BEFORE UPDATE OF state ON jobs
    WHEN NEW.state = 'uploading' AND OLD.state != 'uploading'
    BEGIN
        SELECT RAISE(ABORT, '{SPEND_REFUSED}: a submission may be at the service')
        WHERE EXISTS (SELECT 1 FROM submissions WHERE job_id = NEW.id
                      AND outcome = '{SubmissionOutcome.MAY_HAVE_REACHED.value}');
        SELECT RAISE(ABORT, '{SPEND_REFUSED}: cut before it was sent too often')
        WHERE (SELECT COUNT(*) FROM submissions WHERE job_id = NEW.id
               AND outcome = '{SubmissionOutcome.CUT_BEFORE_SENT.value}')
              >= {MAX_CUT_BEFORE_SENT};
    END;
    CREATE TRIGGER submissions_record AFTER UPDATE OF state ON jobs
    WHEN NEW.state = 'uploading' AND OLD.state != 'uploading'
    BEGIN
        INSERT INTO submissions (job_id, remote_name, pages, sent_at, outcome)
        VALUES (NEW.id, NEW.remote_name, NEW.pages, NEW.updated_at,
                '{SubmissionOutcome.MAY_HAVE_REACHED.value}');
    END;
    -- What the first release knew: a job with sent_at may be at the service.
    INSERT INTO submissions (job_id, remote_name, pages, sent_at, outcome)
    SELECT id, remote_name, pages, sent_at, '{SubmissionOutcome.MAY_HAVE_REACHED.value}'
    FROM jobs WHERE sent_at IS NOT NULL;
    """,
    # 3: the first release's `staged` column, unused since (a staged name follows from the job).
    """
    ALTER TABLE jobs DROP COLUMN staged;
    """,
    # 4: the uploads the user chose to send again are charges of their own day (see _RESENT).
    f"""
    CREATE INDEX submissions_resent ON submissions (sent_at)
    WHERE outcome = '{SubmissionOutcome.RESEND_APPROVED.value}';
    """,
    # 5: the result's name template (Rule.name, watcher.filing), kept with the job like the
    # rest of its rule; the jobs of earlier releases were named as the default names them.
    """
    ALTER TABLE jobs ADD COLUMN name TEXT NOT NULL DEFAULT '{stem}.{ext}';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_ACTIVE = tuple(state.value for state in ACTIVE_STATES)
_PLACEHOLDERS = ",".join("?" * len(_ACTIVE))
# Fields a caller may change alongside a move (updated_at changes with every one by itself).
_MUTABLE = frozenset(item.name for item in fields(Job)) - FIXED_AT_CREATION - {"updated_at"}


# A job's pages count on the day of its last upload (`charged_on`). An earlier upload the
# service lost, which the user chose to send again, was probably charged as well: these rows
# (day, job_id, pages) count on their own day. The literal outcome lets SQLite use the partial
# index of migration step 4.
_RESENT = (
    "SELECT date(sent_at, 'unixepoch', 'localtime') AS day, job_id, pages FROM submissions "
    f"WHERE outcome = '{SubmissionOutcome.RESEND_APPROVED.value}' AND pages > 0"
)


def local_day(moment: float | None = None) -> str:
    """The local calendar day pages are counted against, as stored in `charged_on`."""
    return time.strftime("%Y-%m-%d", time.localtime(moment))


class SpendRefused(IllegalTransition):
    """The journal refused a submission that could pay twice: a bug above it, stopped here."""


class JournalError(WatcherError):
    """The journal cannot be written: the daemon must not act on anything it cannot record."""


@dataclass
class _PendingMove:
    """A move asked for, waiting for the commit that takes it (Journal._write)."""

    job: Job
    target: JobState
    changes: dict[str, Any]
    done: bool = False
    result: Job | None = None
    error: Exception | None = None


class Journal:
    def __init__(self, path: Path | str):
        self.path = path
        self._lock = threading.RLock()
        # Jobs reserved by workers; a lock of its own, so a release never waits for a write.
        self._claims_lock = threading.Lock()
        self._claimed: set[int] = set()
        self._crash_after = os.environ.get(CRASH_AFTER_ENV)
        if str(path) != ":memory:":  # one-shot `convert` keeps its journal in memory
            _private(Path(path))
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._synced = True  # the writer's level now: FULL, or NORMAL for UNSYNCED_MOVES
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()
        # Reads have a connection and a lock of their own: in WAL mode they see every commit
        # made before they start, without waiting for the commit (and its fsync) under way.
        # Measured with 4 workers, a claim used to wait 4-5 ms per file behind the writes.
        if str(path) == ":memory:":  # a second connection would be another database
            self._reader, self._read_lock = self._db, self._lock
        else:
            self._reader = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._reader.row_factory = sqlite3.Row
            self._reader.execute("PRAGMA busy_timeout=5000")
            self._read_lock = threading.RLock()
        self._claim_lock = threading.Lock()  # two workers never get the same job
        self._group = threading.Condition()  # guards the two below (see _write)
        self._pending: list[_PendingMove] = []
        self._committing = False
        # The meta facts are written only by the one daemon that owns this state folder (and
        # through this object), so a copy in memory answers reads without waiting for the lock
        # a commit holds. Another process reading them opens its own Journal.
        self._meta: dict[str, str] = dict(self._db.execute("SELECT key, value FROM meta"))

    def _migrate(self) -> None:
        """Brings the journal to SCHEMA_VERSION in one transaction that takes the write lock
        before it reads the version: a daemon and a `status` opening an old journal at the
        same moment migrate it once, one after the other."""
        try:
            with self._transaction() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise JournalError(
                        f"the journal {self.path} was written by a newer pdfocr-watcher "
                        f"(schema {version}, this one knows {SCHEMA_VERSION}); update "
                        "pdfocr-watcher, or give this one a state_dir of its own"
                    )
                for step in MIGRATIONS[version:]:
                    for statement in _statements(step):
                        db.execute(statement)
                if version < SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"the journal {self.path} cannot be opened ({exc})") from None

    @classmethod
    def in_folder(cls, state_dir: Path) -> Journal:
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(state_dir / JOURNAL_FILE_NAME)

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, under its lock."""
        with self._read_lock:
            yield self._reader

    @contextmanager
    def _writing(self, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection, for writing under the lock; a journal that cannot be written
        becomes a JournalError the daemon can explain. `synced=False` only for moves in
        UNSYNCED_MOVES: their commit skips the fsync (WAL, synchronous=NORMAL); the WAL is
        written in order and its frames are checksummed in a chain, so a power cut loses at
        most the newest commits, never one before a commit that was synced."""
        with self._lock:
            try:
                if self._db.in_transaction:
                    # Only a COMMIT that failed (a full disk) leaves one open here; a statement
                    # run inside it would look committed and be lost with it.
                    self._db.execute("ROLLBACK")
                if synced is not self._synced:
                    self._db.execute(f"PRAGMA synchronous={'FULL' if synced else 'NORMAL'}")
                    self._synced = synced
                yield self._db
            except sqlite3.OperationalError as exc:
                raise JournalError(
                    f"the journal {self.path} cannot be written ({exc}); nothing is sent or "
                    "filed until it can. Check that its folder is writable and not full."
                ) from None

    @contextmanager
    def _transaction(self, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """Several statements committed together. Most writes are one statement, committed on
        its own (the connection is in autocommit mode): SQLite lets go of Python's GIL for
        every statement and must win it back before the journal's lock is released, so a
        write of one statement keeps the other threads waiting the shortest time."""
        with self._writing(synced) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def add(self, new: NewJob) -> Job | None:
        """Records one job (see `add_many`); None when the file is already known or gone."""
        added = self.add_many([new])
        return added[0] if added else None

    def add_many(self, new_jobs: Sequence[NewJob]) -> list[Job]:
        """Records jobs, together in one commit, except for a file a job still owns (same
        place, bytes and time): events, rescans and restarts all see the same file again;
        and for a copy of one of our own results in its format (`result_copied`). Once a
        job has moved its original away, the same file dropped in again is a new request.
        Returns the jobs recorded."""
        if not new_jobs:
            return []
        now = time.time()
        with self._transaction() if len(new_jobs) > 1 else self._writing() as db:
            return [job for new in new_jobs if (job := _insert_new(db, new, now))]

    def add_sent(self, new: NewJob, sent_at: float) -> Job | None:
        """Records a job another station sent (or may have) as `new.remote_name`: queued,
        sent and waiting for its result in one commit, so that no crash leaves it queued,
        to be sent again; None when the file is already known or gone (see `add_many`)."""
        with self._transaction() as db:
            job = _insert_new(db, new, time.time())
            if job is None:
                return None
            sent = {"sent_at": sent_at, "charged_on": local_day(sent_at)}
            job = self._update(db, job, JobState.UPLOADING, sent)
            return self._update(db, job, JobState.WAITING_FOR_RESULT, {})

    def result_copied(self, new: NewJob) -> Job | None:
        """The job whose result this new file is a copy of, in the same format: converting
        it again would be paid for nothing, and in a loop where an outbox feeds an inbox."""
        with self._reading() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE output_hash = ? AND outformat = ? LIMIT 1",
                (new.content_hash, new.rule.outformat),
            ).fetchone()
        return job_from_row(row) if row else None

    def get(self, job_id: int) -> Job | None:
        with self._reading() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return job_from_row(row) if row else None

    def move(self, job: Job, target: JobState, **changes: Any) -> Job:
        """Commits a state change (checked against the state machine) with its new facts;
        staying in the same state (a retry later) is always allowed. A new `available_pages`
        also becomes the account's last known balance (META_PAGES), in the same statement."""
        return self._write(job, target, changes)

    def update(self, job: Job, **changes: Any) -> Job:
        """Commits new facts about a job that stays in its state (an error, a later try…)."""
        return self._write(job, job.state, changes)

    def _write(self, job: Job, target: JobState, changes: dict[str, Any]) -> Job:
        """One move, committed (and synced) before it returns. Moves that workers ask for
        while a commit is under way wait for it, then go in together, in one commit: one
        fsync for all of them instead of one each (group commit). Each still returns only
        once its own move is on disk, so every side effect still follows its record."""
        mine = _PendingMove(job, target, changes)
        with self._group:
            self._pending.append(mine)
            while self._committing and not mine.done:
                self._group.wait()
            batch = None
            if not mine.done:  # nobody is committing: this thread commits what waits
                self._committing = True
                batch, self._pending = self._pending, []
        if batch is not None:
            try:
                self._commit_moves(batch)
            finally:
                with self._group:
                    for move in batch:
                        if move.result is None and move.error is None:  # interrupted
                            move.error = JournalError(f"the journal {self.path} was not written")
                        move.done = True
                    self._committing = False
                    self._group.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        self._crash_if_asked(job, target)
        return mine.result

    def _commit_moves(self, batch: list[_PendingMove]) -> None:
        """Commits moves and gives each its result or its own error: a move the journal
        refuses (SpendRefused, a job changed under us) is undone alone (a savepoint), the
        others are committed; a commit that fails fails them all."""
        synced = any((move.job.state, move.target) not in UNSYNCED_MOVES for move in batch)
        if len(batch) == 1:  # one statement in autocommit mode: the shortest hold
            move = batch[0]
            try:
                with self._writing(synced) as db:  # the meta copy changes in the order of commits
                    move.result = self._update(db, move.job, move.target, move.changes)
            except Exception as exc:
                move.error = exc
            return
        meta = dict(self._meta)
        try:
            with self._transaction(synced) as db:
                for move in batch:
                    db.execute("SAVEPOINT one_move")
                    try:
                        move.result = self._update(db, move.job, move.target, move.changes)
                    except sqlite3.OperationalError:
                        raise  # the journal cannot be written: the whole commit fails
                    except Exception as exc:
                        db.execute("ROLLBACK TO one_move")
                        move.error = exc
                    db.execute("RELEASE one_move")
        except Exception as exc:
            self._meta.clear()
            self._meta.update(meta)  # nothing of this group was committed
            for move in batch:
                move.result = None
                move.error = JournalError(str(exc)) if isinstance(exc, JournalError) else exc

    def _update(
        self, db: sqlite3.Connection, job: Job, target: JobState, changes: dict[str, Any]
    ) -> Job:
        """The UPDATE of one move, on a connection the caller holds under the lock."""
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise ValueError(f"journal fields that cannot change: {sorted(unknown)}")
        if target is not job.state:
            check_transition(job.state, target)
        if target is JobState.HELD and not isinstance(changes.get("hold", job.hold), HoldKind):
            raise ValueError(f"job {job.id}: a move to held must say why (hold=HoldKind…)")
        if target is not JobState.HELD and job.hold is not None:
            changes = {**changes, "hold": None}
        now = time.time()
        columns = {key: to_column(value) for key, value in changes.items()}
        columns.update(state=target.value, updated_at=now)
        assignments = ", ".join(f"{key} = ?" for key in columns)
        try:
            updated = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ?",
                (*columns.values(), job.id, job.state.value),
            )
        except sqlite3.IntegrityError as exc:
            if SPEND_REFUSED not in str(exc):
                raise
            raise SpendRefused(f"job {job.id} is not sent again by itself: {exc}") from None
        if updated.rowcount != 1:
            raise RuntimeError(f"job {job.id} changed under us (expected {job.state.value})")
        if changes.get("available_pages") is not None:  # what the trigger wrote
            self._meta[META_PAGES] = str(changes["available_pages"])
            self._meta[META_PAGES_AT] = str(now)
        return job.evolve(state=target, updated_at=now, **changes)

    def _crash_if_asked(self, job: Job, target: JobState) -> None:
        if target is not job.state and self._crash_after == target.value:
            os._exit(137)

    def close_submission(
        self, job: Job, outcome: SubmissionOutcome, target: JobState, **changes: Any
    ) -> tuple[Job, int]:
        """Closes the submission of an UPLOADING job as one that did not reach the service
        (or was refused by it), forgets that it may be there, and moves the job, in one
        commit. Returns the job and how often it has been cut before it was sent."""
        if job.state is not JobState.UPLOADING:
            raise IllegalTransition(f"job {job.id} has no submission in flight ({job.state})")
        if outcome in (SubmissionOutcome.MAY_HAVE_REACHED, SubmissionOutcome.RESEND_APPROVED):
            raise ValueError(f"{outcome.value} does not close a submission as not sent")
        changes.update(sent_at=None, charged_on=None)
        with self._transaction() as db:
            db.execute(
                "UPDATE submissions SET outcome = ? WHERE job_id = ? AND outcome = ?",
                (outcome.value, job.id, SubmissionOutcome.MAY_HAVE_REACHED.value),
            )
            cuts = db.execute(
                "SELECT COUNT(*) FROM submissions WHERE job_id = ? AND outcome = ?",
                (job.id, SubmissionOutcome.CUT_BEFORE_SENT.value),
            ).fetchone()[0]
            if cuts >= MAX_CUT_BEFORE_SENT and target is JobState.QUEUED:
                target = JobState.HELD  # the trigger would refuse the next try anyway
                changes["hold"] = HoldKind.UNCERTAIN
            moved = self._update(db, job, target, changes)
        self._crash_if_asked(job, target)
        return moved, int(cuts)

    def approve_resend(self, job: Job, **changes: Any) -> Job:
        """The user's say on a job held as UNCERTAIN: it may be sent again (and paid again).
        It asks for its result by name first, and is sent only if the service still does
        not know it."""
        if job.hold is not HoldKind.UNCERTAIN:
            raise IllegalTransition(f"job {job.id} is not held for the user's decision")
        approvals = (
            (SubmissionOutcome.MAY_HAVE_REACHED, SubmissionOutcome.RESEND_APPROVED),
            (SubmissionOutcome.CUT_BEFORE_SENT, SubmissionOutcome.CUT_RETRY_APPROVED),
        )
        changes = {"error": None, "not_before": 0.0, "attempts": 0, **changes, "sent_at": None}
        with self._transaction() as db:
            for before, after in approvals:
                db.execute(
                    "UPDATE submissions SET outcome = ? WHERE job_id = ? AND outcome = ?",
                    (after.value, job.id, before.value),
                )
            return self._update(db, job, JobState.WAITING_FOR_RESULT, changes)

    def submissions(self, job_id: int) -> list[tuple[SubmissionOutcome, float, str]]:
        """(outcome, when, remote name) of every submission of a job, oldest first."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT outcome, sent_at, remote_name FROM submissions WHERE job_id = ? "
                "ORDER BY id",
                (job_id,),
            ).fetchall()
        return [(SubmissionOutcome(o), float(at), str(name)) for o, at, name in rows]

    def claim(self, now: float | None = None, *, send: bool = True) -> Job | None:
        """The next job a worker should advance, reserved for the calling thread; with
        `send=False` (a paused or held queue) only jobs already at the service, which cost
        nothing more to finish.

        A queued job waits while an identical earlier twin (same bytes, same settings) is in
        flight, so it can reuse that result instead of paying for it again, and while such a
        twin is held for the user's say (it may be at the service: sending the same bytes
        again could pay twice without being asked). A pause that ends
        further away than any the daemon sets means the clock was set back: it is over. One
        query decides it all, on the read connection: a claim never waits for a commit.
        """
        now = time.time() if now is None else now
        states = [state for state in _ACTIVE if send or state != JobState.QUEUED.value]
        with self._claim_lock, self._reading() as db:
            with self._claims_lock:
                claimed = tuple(self._claimed)
            # Per state, the index (state, not_before, id) is walked in order and stops at the
            # first job that qualifies: a claim costs the same with 5 or 5,000 jobs queued
            # (one query over all active states sorted them all, twins looked up for each).
            first = (
                "SELECT * FROM (SELECT id, not_before FROM jobs AS job WHERE state = ? "
                "AND (+not_before <= ? OR +not_before > ?) "
                f"AND id NOT IN ({','.join('?' * len(claimed))}) "
                "AND NOT (state = ? AND EXISTS (SELECT 1 FROM jobs AS twin "
                "  WHERE twin.content_hash = job.content_hash AND twin.outformat = job.outformat "
                "  AND twin.lang = job.lang AND twin.ocr = job.ocr AND twin.id < job.id "
                f"  AND (twin.state IN ({_PLACEHOLDERS}) OR (twin.state = ? AND twin.hold = ?)))) "
                "ORDER BY not_before, id LIMIT 1)"
            )
            row = db.execute(
                "SELECT * FROM jobs WHERE id = (SELECT id FROM ("
                + " UNION ALL ".join(first for _ in states)
                + ") ORDER BY not_before, id LIMIT 1)",
                [
                    value
                    for state in states
                    for value in (
                        state,
                        now,
                        now + MAX_DEFER_SECONDS,
                        *claimed,
                        JobState.QUEUED.value,
                        *_ACTIVE,
                        JobState.HELD.value,
                        HoldKind.UNCERTAIN.value,
                    )
                ],
            ).fetchone()
            if row is None:
                return None
            with self._claims_lock:
                self._claimed.add(row["id"])
        return job_from_row(row)

    def release(self, job: Job | int) -> None:
        with self._claims_lock:
            self._claimed.discard(job if isinstance(job, int) else job.id)

    def twins(self, job: Job) -> list[Job]:
        """Other jobs for the same bytes with the same settings, newest first."""
        rule = job.rule
        with self._reading() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE content_hash = ? AND outformat = ? AND lang = ? "
                "AND ocr = ? AND id != ? ORDER BY id DESC",
                (job.content_hash, rule.outformat, rule.lang, int(rule.ocr), job.id),
            ).fetchall()
        return [job_from_row(row) for row in rows]

    def next_due(self, after: float) -> float | None:
        """When the next deferred job falls due, so idle workers can sleep until then."""
        with self._reading() as db:
            row = db.execute(
                f"SELECT MIN(not_before) FROM jobs WHERE state IN ({_PLACEHOLDERS}) "
                "AND not_before > ?",
                (*_ACTIVE, after),
            ).fetchone()
        return float(row[0]) if row[0] is not None else None

    def jobs(self, *, states: tuple[JobState, ...] = (), limit: int | None = None) -> list[Job]:
        query = "SELECT * FROM jobs"
        params: list[Any] = []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            params.extend(state.value for state in states)
        query += " ORDER BY updated_at DESC, id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._reading() as db:
            rows = db.execute(query, params).fetchall()
        return [job_from_row(row) for row in rows]

    def counts(
        self, states: Iterable[JobState] = (), *, unclaimed: bool = False
    ) -> dict[JobState, int]:
        """Jobs per state; only the `states` asked for, when given, so that the daemon's
        frequent counts of live jobs never walk a long history of finished ones.
        `unclaimed`: leave out the jobs a worker holds (counted as in flight: a queued
        file waiting for its turn at the service is not also waiting in the queue)."""
        params: list[object] = [state.value for state in states]
        conditions = [f"state IN ({','.join('?' * len(params))})"] if params else []
        if unclaimed:
            with self._claims_lock:
                claimed = tuple(self._claimed)
            conditions.append(f"id NOT IN ({','.join('?' * len(claimed))})")
            params.extend(claimed)
        query = "SELECT state, COUNT(*) FROM jobs"
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with self._reading() as db:
            rows = db.execute(query + " GROUP BY state", params).fetchall()
        return {JobState(state): count for state, count in rows}

    def pages_charged_on(self, day: str) -> int:
        """Pages sent (or possibly sent) on a local day, 'YYYY-MM-DD', for the daily limit."""
        with self._reading() as db:
            row = db.execute(
                "SELECT (SELECT COALESCE(SUM(pages), 0) FROM jobs WHERE charged_on = ?) "
                f"+ (SELECT COALESCE(SUM(pages), 0) FROM ({_RESENT}) WHERE day = ?)",
                (day, day),
            ).fetchone()
        return int(row[0])

    def spend(self, since_day: str) -> list[tuple[str, str, int]]:
        """(day, inbox, pages) sent since a day, newest day first, for `status`; compacted
        jobs count through their daily totals."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT day, inbox, SUM(pages) FROM ("
                "  SELECT charged_on AS day, COALESCE(inbox, '') AS inbox, pages FROM jobs"
                "  WHERE charged_on >= ? AND pages > 0"
                "  UNION ALL SELECT resent.day, COALESCE(jobs.inbox, ''), resent.pages"
                f"  FROM ({_RESENT}) AS resent JOIN jobs ON jobs.id = resent.job_id"
                "  WHERE resent.day >= ?"
                "  UNION ALL SELECT day, inbox, pages FROM history WHERE day >= ? AND pages > 0"
                ") GROUP BY day, inbox ORDER BY day DESC, inbox",
                (since_day, since_day, since_day),
            ).fetchall()
        return [
            (day, os.fsdecode(inbox) if inbox else "", int(pages)) for day, inbox, pages in rows
        ]

    def compact(self, older_than: float) -> int:
        """Folds finished jobs last changed before `older_than` into daily totals per inbox
        and outcome, so the journal does not grow without bound. Jobs that still remember a
        file left in an inbox (after_success = keep, or a failed original that could not be
        moved) stay: they keep it from being converted, and paid, again. The digests of
        their results stay too (`own_results`), so that copies of them are never taken."""
        finished = (JobState.DONE.value, JobState.FAILED.value, JobState.DROPPED.value)
        condition = (
            f"state IN ({','.join('?' * len(finished))}) AND updated_at < ? "
            "AND (original_at IS NOT NULL OR state = ?)"
        )
        params = (*finished, older_than, JobState.DROPPED.value)
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO own_results (output_hash, outformat) "
                f"SELECT output_hash, outformat FROM jobs WHERE {condition} "
                "AND output_hash IS NOT NULL",
                params,
            )
            fold = (
                "INSERT INTO history (day, inbox, state, jobs, pages) {} GROUP BY 1, 2, 3 "
                "ON CONFLICT (day, inbox, state) DO UPDATE SET "
                "jobs = jobs + excluded.jobs, pages = pages + excluded.pages"
            )
            # A job that was never sent cost nothing, whatever pages its checks counted.
            db.execute(
                fold.format(
                    "SELECT COALESCE(charged_on, date(updated_at, 'unixepoch', 'localtime')), "
                    "COALESCE(inbox, ''), state, COUNT(*), "
                    "COALESCE(SUM(CASE WHEN charged_on IS NULL THEN 0 ELSE pages END), 0) "
                    f"FROM jobs WHERE {condition}"
                ),
                params,
            )
            db.execute(
                fold.format(
                    "SELECT resent.day, COALESCE(inbox, ''), state, 0, SUM(resent.pages) "
                    f"FROM ({_RESENT}) AS resent JOIN jobs ON jobs.id = resent.job_id "
                    f"WHERE {condition}"
                ),
                params,
            )
            removed = db.execute(f"DELETE FROM jobs WHERE {condition}", params).rowcount
            db.execute("DELETE FROM submissions WHERE job_id NOT IN (SELECT id FROM jobs)")
        return removed

    def history_counts(self) -> dict[JobState, int]:
        with self._reading() as db:
            rows = db.execute("SELECT state, SUM(jobs) FROM history GROUP BY state")
            return {JobState(state): int(count) for state, count in rows.fetchall()}

    def release_held(self, *, approve: bool, due_before: float | None = None) -> int:
        """Puts jobs held by the credit guard, the daily limit or their sending hours back in
        the queue, where they are judged again. Never a job that may be at the service
        (`approve_resend`).

        `approve` marks them as released by the user, who has decided to spend the pages;
        `due_before` releases only those held until a moment that has come."""
        condition = "state = ? AND hold IN (?, ?)"
        params: list[Any] = [JobState.HELD.value, HoldKind.BUDGET.value, HoldKind.SCHEDULED.value]
        if due_before is not None:
            condition += " AND held_until IS NOT NULL AND held_until <= ?"
            params.append(due_before)
        with self._transaction() as db:  # each move through the one that checks the table
            rows = db.execute(f"SELECT * FROM jobs WHERE {condition}", params).fetchall()
            for row in rows:
                held = job_from_row(row)
                changes = {
                    "held_until": None,
                    "not_before": 0.0,
                    "approved": held.approved or approve,
                }
                self._update(db, held, JobState.QUEUED, changes)
        return len(rows)

    def set_meta(self, key: str, value: str | None) -> None:
        with self._writing() as db:
            if self._meta.get(key) == value:
                return  # already so: no commit needed
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
                self._meta.pop(key, None)
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
                self._meta[key] = value

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)


_INSERT_NEW = (
    f"INSERT INTO jobs ({', '.join(NEW_JOB_COLUMNS)}) "
    f"SELECT {', '.join('?' for _ in NEW_JOB_COLUMNS)} WHERE NOT EXISTS ("
    "SELECT 1 FROM jobs WHERE source = ? AND size = ? AND mtime_ns = ? AND content_hash = ? "
    "AND original_at IS NULL AND state != ?) "
    "AND NOT EXISTS (SELECT 1 FROM jobs WHERE output_hash = ? AND outformat = ?) "
    "AND NOT EXISTS (SELECT 1 FROM own_results WHERE output_hash = ? AND outformat = ?)"
)


def _insert_new(db: sqlite3.Connection, new: NewJob, now: float) -> Job | None:
    """Inserts a new job (queued) under the caller's lock, or None (see `add_many`)."""
    # A job moves its original away before it records where it went, so a file found here,
    # under the lock, is still owned by a job that has not said so.
    if not new.source.is_file():
        return None
    cursor = db.execute(_INSERT_NEW, (*new_job_row(new, now), *_ownership(new)))
    if cursor.rowcount != 1 or cursor.lastrowid is None:
        return None
    return _queued_job(new, cursor.lastrowid, now)


def _ownership(new: NewJob) -> tuple[Any, ...]:
    """What makes a job the owner of this very file, for the NOT EXISTS above."""
    return (
        path_column(new.source),
        new.size,
        new.mtime_ns,
        new.content_hash,
        JobState.DROPPED.value,
        new.content_hash,
        new.rule.outformat,
        new.content_hash,
        new.rule.outformat,
    )


def _queued_job(new: NewJob, job_id: int, now: float) -> Job:
    known = {item.name: getattr(new, item.name) for item in fields(NewJob)}
    return Job(id=job_id, state=JobState.QUEUED, created_at=now, updated_at=now, **known)


def _statements(script: str) -> list[str]:
    """A migration step's statements one by one (a trigger's body holds semicolons too), so
    that they run inside the caller's transaction, which executescript would commit."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def _private(path: Path) -> None:
    """The journal holds file names and download links: readable by the user alone. Its
    -wal and -shm files take its mode from it."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
