"""The running daemon: inbox events in, journaled jobs, workers, and the rules file watched.

It owns the wiring and the shared state a tray or `status` shows; the decisions about a job
live in `watcher.runner`, the facts in `watcher.journal`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from watcher.api import PdfOcrClient
from watcher.config import Config, check_runnable, load_config
from watcher.errors import (
    AccountError,
    ConfigError,
    CreditError,
    EndpointMoved,
    ServiceLosingJobs,
)
from watcher.filing import STAGING_PREFIX, set_aside
from watcher.inbox import InboxWatcher, ReadyFile
from watcher.intake import BIG_FILE_BYTES, BackgroundIntake, new_job
from watcher.jobs import ACTIVE_STATES, HoldKind, Job, JobState, Rule, readable
from watcher.journal import (
    META_BREAKER,
    META_HOLD,
    META_MODE,
    META_PAGES,
    META_SERVICE,
    Journal,
    NewJob,
    local_day,
)
from watcher.logs import log_path
from watcher.ownfiles import OwnFiles
from watcher.runner import JobRunner, requeue, timing
from watcher.stations import Admitted, SharedInboxes
from watcher.workers import WorkerPool

log = logging.getLogger(__name__)

HOLD_RETRY_SECONDS = 600.0  # credit bought on the website changes nothing we can see
OFFLINE_NOTICE_SECONDS = 300.0  # a short outage is not worth interrupting anyone for
HOUSEKEEPING_SECONDS = 30.0
# Editors save in steps (truncate, write; or write a copy, rename): the rules file is read
# once it has been quiet this long.
RULES_QUIET_SECONDS = 0.5
RECENT_LIMIT = 10
# What the tray counts after every change: never the finished jobs of a long history.
_SHOWN_STATES = (JobState.QUEUED, JobState.HELD, JobState.FAILED)
DAY = 24 * 3600.0


@dataclass(frozen=True)
class RecentConversion:
    name: str
    output: Path
    finished_at: float


class NoticeKind(Enum):
    BATCH_DONE = "batch_done"
    FILE_FAILED = "file_failed"
    LOW_CREDIT = "low_credit"
    HELD = "held"
    OFFLINE = "offline"


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


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        endpoint_override: str | None = None,
        key_override: str | None = None,
    ):
        self._overrides = (endpoint_override, key_override)
        self.config = self._effective(config)
        self.sandbox = endpoint_override is not None
        self.stop_event = threading.Event()
        self.journal = Journal.in_folder(config.files.state_dir)
        self._client = PdfOcrClient(self.config.api)
        own_files = OwnFiles()  # results we placed: never taken for new files
        self.stations = SharedInboxes(self.config, config.files.state_dir)
        self.runner = JobRunner(
            self.journal,
            self._client,
            timing(self.config.api),
            stop=self.stop_event,
            on_change=self._job_changed,
            on_service_state=self._service_state,
            daily_page_limit=self.config.credits.daily_page_limit,
            own_files=own_files,
            guard=self.stations,
        )
        self.pool = WorkerPool(
            self.journal,
            self.runner,
            self.config.api.concurrency,
            stop=self.stop_event,
            on_hold=self._hold,
        )
        self.inbox = InboxWatcher(
            self.config, self.enqueue, own_files, on_unreadable=self.set_aside_unreadable
        )
        self._intake = BackgroundIntake(self._record, self.set_aside_unreadable, self.stop_event)
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._notice_listeners: list[Callable[[Notice], None]] = []
        self._lock = threading.Lock()  # guards the fields below
        self._held_since: float | None = None
        self._hold_retries_by_itself = True
        self._breaker: str | None = None  # the circuit breaker's hold, until the user lifts it
        self._service_problem: str | None = None
        self._service_problem_since: float | None = None
        self._offline_noticed = False
        self._config_error: str | None = None
        self._last_failure: str | None = None
        self._unseen_failures = 0
        self._paused_until: float | None = None
        self._batch_total = 0
        self._batch_done = 0
        self._batch_failed = 0
        self._low_credit_noticed = False
        # The tray shows the latest results after every change: kept here, newest first, so
        # that never means sorting a long history in the journal.
        self._recent: deque[RecentConversion] = deque(maxlen=RECENT_LIMIT)
        self._reload_at: float | None = None
        self._compacted_at = time.monotonic()
        self._rules_observer: BaseObserver | None = None
        self._wakeup = threading.Event()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="housekeeping", daemon=True
        )

    def _effective(self, config: Config) -> Config:
        endpoint, key = self._overrides
        if endpoint is None:
            return config
        return replace(config, api=replace(config.api, endpoint=endpoint, key=key or ""))

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.sandbox:
            mode = "SANDBOX (simulated locally, nothing sent to pdfocr.org)"
        else:
            mode = f"live: {self.config.api.endpoint}"
        self.journal.set_meta(META_MODE, "sandbox" if self.sandbox else "live")
        self.journal.set_meta(META_HOLD, None)
        log.info("pdfocr-watcher starting, %s", mode)
        for rule in self.config.inboxes:
            log.info(
                "watching %s → %s (%s, OCR %s) → %s",
                rule.path,
                rule.outformat,
                rule.lang,
                "on" if rule.ocr else "off",
                rule.outbox,
            )
        self._recover()
        self._compact_journal()
        done = self.journal.jobs(states=(JobState.DONE,), limit=RECENT_LIMIT)
        with self._lock:
            self._recent.extend(_recent(job, job.output) for job in done if job.output)
            self._batch_total = self._active_count()
        self.pool.start()
        self._intake.start()
        self.inbox.start()
        self._watch_rules_file()
        self._housekeeper.start()
        breaker = self.journal.get_meta(META_BREAKER)
        if breaker is not None:  # set before a restart: still the user's to lift
            self._hold(ServiceLosingJobs(breaker))
        self._notify()

    def request_stop(self) -> None:
        self.stop_event.set()
        self._wakeup.set()

    def stop(self) -> None:
        """Stops watching and sending; work in the middle of a request resumes next start."""
        log.info("stopping")
        self.request_stop()
        self.inbox.stop()
        self._intake.stop()
        if self._rules_observer is not None:
            self._rules_observer.stop()
            self._rules_observer.join(timeout=2)
        self.pool.stop()
        if self._housekeeper.is_alive():
            self._housekeeper.join(timeout=2)

    def wait(self) -> None:
        while not self.stop_event.wait(1.0):
            pass

    def close(self) -> None:
        self._client.close()
        self.journal.close()

    def add_listener(self, listener: Callable[[Snapshot], None]) -> None:
        self._listeners.append(listener)

    def add_notice_listener(self, listener: Callable[[Notice], None]) -> None:
        self._notice_listeners.append(listener)

    # -- arrivals --------------------------------------------------------------------------

    def enqueue(self, files: Sequence[ReadyFile]) -> list[Path]:
        """Journals complete files as jobs (before anything is sent), together in one commit,
        and wakes the workers; big files are hashed and journaled by the intake thread, so
        that this (the watcher's thread) never waits for them. Returns the files that could
        not be read, for the watcher to offer again at its next rescan.

        Raises when the journal cannot be written: the watcher then offers the files again,
        and nothing is sent for a job that is not recorded."""
        new_jobs: list[NewJob] = []
        unread: list[Path] = []
        for admitted in self.stations.admit(files):
            path, rule = admitted.path, admitted.rule
            if admitted.sent_as:
                self._adopt(admitted)
                continue
            try:
                if path.stat().st_size > BIG_FILE_BYTES:
                    self._intake.submit(path, rule.as_rule(), rule.path)
                    continue
                new_jobs.append(new_job(path, rule.as_rule(), rule.path))
            except FileNotFoundError:
                log.debug("%s went away before it was journaled", readable(path.name))
            except OSError as exc:
                log.warning(
                    "%s cannot be read (%s); it is tried again a few times, then set aside",
                    readable(path.name),
                    exc.strerror or exc,
                )
                unread.append(path)
        self._record(new_jobs)
        return unread

    def _adopt(self, admitted: Admitted) -> None:
        """A file taken over from a station that stopped after (maybe) sending it: journaled
        as sent under the name its claim recorded, so it is asked for by that name and never
        sent again by itself (held if the service does not know the name)."""
        try:
            new = new_job(admitted.path, admitted.rule.as_rule(), admitted.rule.path)
        except OSError as exc:
            log.warning("%s cannot be read (%s)", readable(admitted.path.name), exc)
            return
        added = self.journal.add(replace(new, remote_name=admitted.sent_as or new.remote_name))
        if added is None:
            return
        sent_at = admitted.sent_at or time.time()
        job = self.journal.move(
            added, JobState.UPLOADING, sent_at=sent_at, charged_on=local_day(sent_at)
        )
        job = self.journal.move(job, JobState.WAITING_FOR_RESULT)
        log.info("%s: asking for the result of %s by name", job.display_name, job.remote_name)
        self.pool.wake()

    def _record(self, new_jobs: list[NewJob]) -> None:
        jobs = self.journal.add_many(new_jobs)
        for job in jobs:
            log.info("%s: queued (job %d)", job.display_name, job.id)
        if len(jobs) < len(new_jobs):
            self._tell_own_copies(new_jobs, {job.source for job in jobs})
        if jobs:
            with self._lock:
                if self._batch_done >= self._batch_total:
                    self._batch_total = self._batch_done = self._batch_failed = 0
                self._batch_total += len(jobs)
            self.pool.wake()
            self._notify()

    def _tell_own_copies(self, offered: list[NewJob], added: set[Path]) -> None:
        """Says so, once per file, when a file was not taken because it is a copy of one
        of our own results (the others were files already known)."""
        for new in offered:
            if new.source in added:
                continue
            original = self.journal.result_copied(new)
            if original is not None:
                log.info(
                    "%s is a copy of our own result %s (from %s); it is not converted again",
                    readable(new.source.name),
                    original.output,
                    original.display_name,
                )

    def set_aside_unreadable(self, path: Path, rule: Rule, reason: str) -> None:
        """A file that cannot be read, after a few tries: into the failed folder with a
        reason, instead of an error at every rescan. Nothing was sent for it."""
        name = readable(path.name)
        try:
            moved = set_aside(
                path,
                rule.failed,
                reason=f"it cannot be read ({reason})",
                advice="Give yourself permission to read it (or close the program that "
                "locks it), then drop it into the inbox again. Nothing was sent or charged.",
            )
        except OSError as exc:
            log.error(
                "%s cannot be read (%s) nor moved to %s (%s)",
                name,
                reason,
                rule.failed,
                exc.strerror or exc,
            )
            return
        log.warning("%s cannot be read (%s); moved to %s with the reason", name, reason, moved)
        with self._lock:
            self._unseen_failures += 1
            self._last_failure = f"{name}: it cannot be read ({reason})"
        self._tell(NoticeKind.FILE_FAILED, "File cannot be read", f"{name}: {reason}")
        self._notify()

    # -- what the user sees ----------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        counts = self.journal.counts(_SHOWN_STATES)
        pages = self.journal.get_meta(META_PAGES)
        available = int(pages) if pages else None
        with self._lock:
            recent = tuple(self._recent)
            held = self.journal.get_meta(META_HOLD) if self._held_since is not None else None
            held_jobs = counts.get(JobState.HELD, 0)
            if held is None and held_jobs:
                newest = self.journal.jobs(states=(JobState.HELD,), limit=1)
                reason = newest[0].error if newest else ""
                held = f"{held_jobs} file(s) waiting: {reason}"
            rules = self.config.inboxes
            return Snapshot(
                sandbox=self.sandbox,
                queued=counts.get(JobState.QUEUED, 0),
                in_flight=self.pool.busy,
                batch_done=self._batch_done,
                batch_total=self._batch_total,
                held=held,
                service_problem=self._service_problem,
                paused_until=self._paused_until,
                config_error=self._config_error,
                unseen_failures=self._unseen_failures,
                last_failure=self._last_failure,
                failed=counts.get(JobState.FAILED, 0),
                available_pages=available,
                low_credit=available is not None and available < self.config.credits.low_warning,
                last_conversion_at=recent[0].finished_at if recent else None,
                recent=recent,
                inboxes=tuple(rule.path for rule in rules),
                outboxes=tuple(dict.fromkeys(rule.outbox for rule in rules)),
                failed_folders=tuple(dict.fromkeys(rule.failed for rule in rules)),
                config_path=self.config.path,
                log_path=log_path(self.config.files.state_dir),
            )

    def _notify(self) -> None:
        if not self._listeners:
            return
        snapshot = self.snapshot()
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("a status listener failed")

    def _tell(self, kind: NoticeKind, title: str, message: str) -> None:
        log.info("%s: %s", title, message)
        notice = Notice(kind, title, message)
        for listener in self._notice_listeners:
            try:
                listener(notice)
            except Exception:
                log.exception("a notice listener failed")

    def _job_changed(self, job: Job) -> None:
        if job.state.is_finished:
            self._job_finished(job)
        elif job.state is JobState.HELD:
            self._tell(NoticeKind.HELD, "File held", f"{job.display_name}: {job.error}")
        if job.state is JobState.DOWNLOADING:
            self._check_credit()
        self._notify()

    def _job_finished(self, job: Job) -> None:
        with self._lock:
            if job.state is JobState.DONE and job.output is not None:
                self._recent.appendleft(_recent(job, job.output))
            self._batch_done += 1
            if job.state is JobState.FAILED:
                self._batch_failed += 1
                self._unseen_failures += 1
                self._last_failure = f"{job.display_name}: {job.error}"
            batch_over = self._batch_done >= self._batch_total
            done, failed = self._batch_done - self._batch_failed, self._batch_failed
        if job.state is JobState.FAILED:
            self._tell(
                NoticeKind.FILE_FAILED, "Conversion failed", f"{job.display_name}: {job.error}"
            )
        if batch_over and not self._active_count():
            summary = f"{done} file(s) converted" + (f", {failed} failed" if failed else "")
            self._tell(NoticeKind.BATCH_DONE, "Batch finished", summary)

    def _active_count(self) -> int:
        """Jobs still on their way, counted in the journal (not loaded: a burst has many)."""
        return sum(self.journal.counts(ACTIVE_STATES).values())

    def _active_jobs(self) -> list[Job]:
        return self.journal.jobs(states=tuple(ACTIVE_STATES))

    def _check_credit(self) -> None:
        pages = self.journal.get_meta(META_PAGES)
        if pages is None:
            return
        low = int(pages) < self.config.credits.low_warning
        with self._lock:
            first = low and not self._low_credit_noticed
            self._low_credit_noticed = low
        if first:
            self._tell(
                NoticeKind.LOW_CREDIT,
                "Credit running low",
                f"{int(pages):,} pages left on your pdfocr.org account",
            )
        elif not low and self.journal.counts((JobState.HELD,)):
            # More credit than we knew of (bought on the website): files the credit guard
            # held may fit now; the runner judges them again.
            self._release_held(approve=False)

    def _service_state(self, problem: str | None) -> None:
        with self._lock:
            if problem == self._service_problem:
                return
            self._service_problem = problem
            self._service_problem_since = time.monotonic() if problem else None
            self._offline_noticed = False
        if problem:
            log.warning("the service is not reachable right now (%s); jobs wait and retry", problem)
        else:
            log.info("the service is reachable again")
        self.journal.set_meta(META_SERVICE, problem)
        self._notify()

    # -- holds and pauses ------------------------------------------------------------------

    def _hold(self, error: AccountError) -> None:
        """Stops the whole queue. Only a bad key (fixed by saving the rules file) and no
        credit (bought on the website, so tried again every 10 minutes) lift by themselves;
        a moved endpoint and the circuit breaker wait for the user, and the breaker even
        across restarts (META_BREAKER)."""
        where = self.config.path or "the rules file"
        breaker = isinstance(error, ServiceLosingJobs)
        if breaker:
            reason = (
                f"{error.message} — nothing more is sent. Check your pdfocr.org account "
                "(conversions and balance), then choose Resume queue in the tray: that also "
                "sends the lost files again, which may be charged twice"
            )
        elif isinstance(error, EndpointMoved):
            reason = f"{error.message} — the queue resumes as soon as the rules file is saved"
        elif isinstance(error, CreditError):
            reason = (
                f"the service refused the account: {error.message} — buy more pages at "
                f"pdfocr.org; the queue is tried again every {HOLD_RETRY_SECONDS / 60:.0f} "
                "minutes, or at once when you choose Resume queue"
            )
        else:
            reason = (
                f"the service refused the account: {error.message} — fix `key` under [api] "
                f"in {where} (or PDFOCR_API_KEY); the queue resumes as soon as the file is saved"
            )
        with self._lock:
            if self._breaker is not None and not breaker:
                return  # the breaker's hold stays, in its words, until the user lifts it
            first = self._held_since is None
            self._held_since = time.monotonic()
            self._hold_retries_by_itself = isinstance(error, CreditError)
            if breaker:
                self._breaker = reason
        self.pool.set_held(True)
        self.journal.set_meta(META_HOLD, reason)
        if breaker:
            self.journal.set_meta(META_BREAKER, error.message)
        if first:
            log.error("queue held: %s", reason)
            self._tell(NoticeKind.HELD, "Conversions held", reason)
        self._notify()

    def resume(self, *, by_user: bool = True) -> None:
        """Releases the queue after an account hold, and the files the credit guard held.
        `by_user` (the tray's Resume queue): the user has chosen to go on, which also lifts
        the circuit breaker and approves sending again the files held because the service
        no longer knew them. The clock and a rules-file edit resume with `by_user=False`,
        which never approves a payment and never lifts the breaker."""
        with self._lock:
            if self._breaker is not None and not by_user:
                return
            was_held = self._held_since is not None
            self._held_since = None
            self._breaker = None
        if was_held:
            log.info("queue resumed")
            self.journal.set_meta(META_HOLD, None)
            self.journal.set_meta(META_BREAKER, None)
        self.pool.set_held(False)
        self._release_held(approve=by_user)
        if by_user:
            for job in self.journal.jobs(states=(JobState.HELD,)):
                if job.hold is HoldKind.UNCERTAIN:
                    log.info(
                        "%s: sent again if the service still does not know it", job.display_name
                    )
                    self.journal.approve_resend(job, approved=True)
            self.pool.wake()
        self._notify()

    def _release_held(self, *, approve: bool, due_before: float | None = None) -> None:
        released = self.journal.release_held(approve=approve, due_before=due_before)
        if released:
            log.info("%d held file(s) back in the queue", released)
            self.pool.wake()

    def pause(self, until: float | None) -> None:
        """Stops sending new files until `until` (epoch seconds) or, with None, until
        unpaused. Conversions already at the service are finished."""
        with self._lock:
            self._paused_until = math.inf if until is None else until
        self.pool.set_paused(True)
        when = "resumed" if until is None else time.strftime("%H:%M", time.localtime(until))
        log.info("paused until %s", when)
        self._wakeup.set()
        self._notify()

    def unpause(self) -> None:
        with self._lock:
            was_paused = self._paused_until is not None
            self._paused_until = None
        self.pool.set_paused(False)
        if was_paused:
            log.info("pause ended")
        self._notify()

    def retry_failed(self) -> int:
        retried = 0
        for job in self.journal.jobs(states=(JobState.FAILED,)):
            problem = requeue(self.journal, job)
            if problem:
                log.info("%s: not retried: %s", job.display_name, problem)
            else:
                retried += 1
        self.acknowledge_failures()
        if retried:
            self.pool.wake()
        return retried

    def acknowledge_failures(self) -> None:
        with self._lock:
            self._unseen_failures = 0
        self._notify()

    def _housekeeping(self) -> None:
        """Timed duties: reload an edited rules file once it is quiet, end pauses, retry an
        account hold, release yesterday's daily-limit holds, tell about a long outage.
        Sleeps until the next one is due."""
        while not self.stop_event.is_set():
            with self._lock:
                paused_until = self._paused_until
                reload_at = self._reload_at
                reload_due = reload_at is not None and reload_at <= time.monotonic()
                if reload_due:
                    self._reload_at = reload_at = None
            if reload_due:
                self.reload_rules()
            now = time.time()
            if paused_until is not None and paused_until <= now:
                self.unpause()
            with self._lock:
                since = self._held_since if self._hold_retries_by_itself else None
            if since is not None and time.monotonic() - since > HOLD_RETRY_SECONDS:
                log.info("trying the held queue again")
                self.resume(by_user=False)
            self._release_held(approve=False, due_before=now)
            self._tell_long_outage()
            again = self.stations.housekeeping()
            if again:
                self.enqueue(again)
            if time.monotonic() - self._compacted_at > DAY:
                self._compact_journal()
            delay = min(HOUSEKEEPING_SECONDS, self.stations.lease_seconds / 3)
            if paused_until is not None and paused_until != math.inf:
                delay = min(delay, max(0.05, paused_until - now))
            if reload_at is not None:
                delay = min(delay, max(0.05, reload_at - time.monotonic()))
            self._wakeup.wait(delay)
            self._wakeup.clear()

    def _compact_journal(self) -> None:
        days = self.config.files.history_days
        self._compacted_at = time.monotonic()
        if days:
            folded = self.journal.compact(older_than=time.time() - days * DAY)
            if folded:
                log.info(
                    "folded %d finished jobs older than %d days into daily totals", folded, days
                )

    def _tell_long_outage(self) -> None:
        with self._lock:
            since, problem = self._service_problem_since, self._service_problem
            due = (
                since is not None
                and not self._offline_noticed
                and time.monotonic() - since > OFFLINE_NOTICE_SECONDS
            )
            if due:
                self._offline_noticed = True
        if due:
            minutes = OFFLINE_NOTICE_SECONDS / 60
            self._tell(
                NoticeKind.OFFLINE,
                "Service unreachable",
                f"for more than {minutes:.0f} minutes ({problem}); files wait and retry",
            )

    # -- live rules ------------------------------------------------------------------------

    def _watch_rules_file(self) -> None:
        path = self.config.path
        if path is None or not path.parent.is_dir():
            return
        daemon = self

        class RulesFileHandler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                touched = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
                if str(path) in touched and event.event_type not in ("opened", "closed_no_write"):
                    daemon.rules_file_touched()

        observer = Observer()
        observer.schedule(RulesFileHandler(), str(path.parent), recursive=False)
        observer.daemon = True
        observer.start()
        self._rules_observer = observer

    def rules_file_touched(self) -> None:
        with self._lock:
            self._reload_at = time.monotonic() + RULES_QUIET_SECONDS
        self._wakeup.set()

    def reload_rules(self) -> None:
        """Applies an edited rules file at once, or keeps the running rules if it is broken."""
        path = self.config.path
        if path is None:
            return
        try:
            fresh = self._effective(load_config(path))
            check_runnable(fresh)
        except ConfigError as exc:
            if str(exc) != self._config_error:
                log.error("the edited rules file is not used: %s", exc)
            with self._lock:
                self._config_error = str(exc)
            self._notify()
            return
        with self._lock:
            self._config_error = None
        if fresh == self.config:
            self._notify()
            return
        if fresh.files.state_dir != self.config.files.state_dir:
            log.warning("a new state_dir takes effect at the next start")
        account_changed = fresh.api != self.config.api
        limits_changed = fresh.credits != self.config.credits
        self.config = fresh
        if account_changed or limits_changed:
            self._client = PdfOcrClient(fresh.api)
            self.runner.reconfigure(
                self._client,
                timing(fresh.api),
                fresh.credits.daily_page_limit,
            )
        self.inbox.update_config(fresh)
        self.stations.update_config(fresh)
        log.info("rules reloaded from %s (%d inboxes)", path, len(fresh.inboxes))
        if account_changed:
            self.resume(by_user=False)
        elif limits_changed:
            self._release_held(approve=False)
        self._notify()

    # -- start-up recovery -----------------------------------------------------------------

    def _recover(self) -> None:
        """Finishes what a killed process left half-done, before any new work starts."""
        active = self._active_jobs()
        # Only a DOWNLOADING or FILING job's staged result is known to be whole (a QUEUED
        # job's may be a copy from an identical earlier result that a kill cut short).
        staged = {job.staged for job in active if job.state in _STAGED_STATES}
        outboxes = {rule.outbox for rule in self.config.inboxes} | {
            job.rule.outbox for job in active
        }
        for outbox in outboxes:
            for leftover in _our_temporary_files(outbox):
                if leftover not in staged:
                    log.info("removing a leftover temporary file %s", leftover)
                    with contextlib.suppress(OSError):
                        leftover.unlink()
        for job in self.journal.jobs(states=(JobState.FAILED,)):
            if job.original_at is None:
                self.runner.file_failed_original(job)
        for job in self.stations.resume(active):
            if job.state in (JobState.QUEUED, JobState.UPLOADING, JobState.WAITING_FOR_RESULT):
                log.info("%s: another PC on the shared inbox took it over", job.display_name)
                self.journal.move(job, JobState.DROPPED, error="taken over by another PC")


_STAGED_STATES = (JobState.DOWNLOADING, JobState.FILING)


def _recent(job: Job, output: Path) -> RecentConversion:
    return RecentConversion(job.display_name, output, job.updated_at)


def _our_temporary_files(folder: Path) -> list[Path]:
    try:
        names = list(folder.iterdir())
    except OSError:
        return []
    return [p for p in names if p.name.startswith(STAGING_PREFIX)]
