"""The running daemon: the wiring of intake, journal, workers, holds, status and rules file.

Each concern has its own module: `watcher.runner` decides a job's next step, `watcher.journal`
keeps the facts, `watcher.holds` says whether the queue may send, `watcher.status` keeps what the
user sees, `watcher.rulesfile` notices edits. This class connects them and runs the timed duties.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from watcher.api import ClientSettings, PdfOcrClient
from watcher.config import Config, InboxRule, check_runnable, load_config
from watcher.errors import AccountError, ConfigError, ServiceLosingJobs, WatcherError
from watcher.filing import STAGING_PREFIX, set_aside
from watcher.holds import QueueHolds
from watcher.hooks import HookRunner
from watcher.inbox import InboxWatcher, ReadyFile
from watcher.intake import BIG_FILE_BYTES, BackgroundIntake, new_job
from watcher.jobs import ACTIVE_STATES, HoldKind, Job, JobState, NewJob, Rule, readable
from watcher.journal import (
    META_BREAKER,
    META_HOLD,
    META_MODE,
    META_PAGES,
    META_SERVICE,
    Journal,
)
from watcher.keys import with_key
from watcher.logs import log_path
from watcher.ownfiles import OwnFiles
from watcher.rulesfile import RulesFileWatcher
from watcher.runner import JobRunner, requeue, timing
from watcher.schedule import SendSchedule
from watcher.stations import Admitted, SharedInboxes, present
from watcher.status import RECENT_LIMIT, Notice, NoticeKind, Snapshot, StatusBoard
from watcher.turns import ServiceTurns
from watcher.wording import count
from watcher.workers import WORKERS_PER_TURN, WorkerPool
from watcher.world import in_sandbox

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 30.0
HOUSEKEEPING_RETRY_SECONDS = 5.0  # after a round of timed duties that failed
# What the tray counts after every change: never the finished jobs of a long history.
_SHOWN_STATES = (JobState.QUEUED, JobState.HELD, JobState.FAILED)
DAY = 24 * 3600.0


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
        self.journal = Journal.in_folder(self.config.files.state_dir)
        self._client = PdfOcrClient(ClientSettings.from_rules(self.config.api))
        own_files = OwnFiles()  # results we placed: never taken for new files
        self.status = StatusBoard()
        workers = WORKERS_PER_TURN * self.config.api.concurrency
        self.stations = SharedInboxes(
            self.config,
            self.config.files.state_dir,
            at_most=workers,
            on_passed_over=self._passed_over,
        )
        self.holds = QueueHolds()
        self.hooks = HookRunner(self.config, self.journal, on_problem=self._hook_failed)
        self.schedule = SendSchedule(self.config)
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
            after_result=self.hooks.after_result,
            send_window=self.schedule.wait,
            turns=ServiceTurns(self.config.api.concurrency, self.stop_event),
            may_send=lambda: self.pool.may_send(),
        )
        self.pool = WorkerPool(
            self.journal,
            self.runner,
            workers,
            stop=self.stop_event,
            on_hold=self._hold,
            on_idle=self._notify,
            find_work=self.take_shared_file,
        )
        self.inbox = InboxWatcher(
            self.config, self.enqueue, own_files, on_unreadable=self.set_aside_unreadable
        )
        self._intake = BackgroundIntake(self._record, self.set_aside_unreadable, self.stop_event)
        self._wakeup = threading.Event()
        self.rules_file = (
            RulesFileWatcher(self.config.path, self._wakeup.set) if self.config.path else None
        )
        self._compacted_at = time.monotonic()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="housekeeping", daemon=True
        )

    def _effective(self, config: Config) -> Config:
        endpoint, key = self._overrides
        if endpoint is None:
            return with_key(config)
        return in_sandbox(config, endpoint, key or "")

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
        self.status.restore(self._active_count(), done)
        breaker = self.journal.get_meta(META_BREAKER)
        if breaker is not None:  # set before a restart: still the user's to lift, and held
            self._hold(ServiceLosingJobs(breaker))  # before a worker can claim a file
        self.pool.start()
        self._intake.start()
        self.inbox.start()
        if self.rules_file is not None:
            self.rules_file.start()
        self._housekeeper.start()
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
        if self.rules_file is not None:
            self.rules_file.stop()
        self.pool.stop()
        self.hooks.stop()
        if self._housekeeper.is_alive():
            self._housekeeper.join(timeout=2)

    def wait(self) -> None:
        while not self.stop_event.wait(1.0):
            pass

    def close(self) -> None:
        self._client.close()
        self.journal.close()

    def add_listener(self, listener: Callable[[Snapshot], None]) -> None:
        self.status.add_listener(listener)

    def add_notice_listener(self, listener: Callable[[Notice], None]) -> None:
        self.status.add_notice_listener(listener)

    # -- arrivals --------------------------------------------------------------------------

    def enqueue(self, files: Sequence[ReadyFile]) -> list[Path]:
        """Journals complete files as jobs (before anything is sent), together in one commit,
        and wakes the workers; big files are hashed and journaled by the intake thread, so
        that this (the watcher's thread) never waits for them. A shared inbox's files wait
        for a free worker instead (`take_shared_file`). Returns the files that could not be
        read, for the watcher to offer again at its next rescan.

        Raises when the journal cannot be written: the watcher then offers the files again,
        and nothing is sent for a job that is not recorded."""
        admitted, waiting = self.stations.admit(files)
        if waiting:
            self.status.arrived(waiting)
            self.pool.wake()
            self._notify()  # the tray counts them (waiting, while paused or held)
        return self._journal_files(admitted)

    def take_shared_file(self) -> bool:
        """Asked by a worker with nothing to do: claims the next file waiting in a shared
        inbox and journals it (hashing a big one here: this worker is free). True when it
        took a waiting file from the line (journaled or not: the worker then looks again),
        False when none could be taken. Claiming only what a free worker takes leaves the
        rest of a batch to the other stations' free workers."""
        if not self.pool.may_send():  # paused or held since the worker looked
            return False
        admitted = self.stations.claim_next()
        if admitted is None:
            return False
        path, unread = admitted.path, list[Path]()
        new: NewJob | None = None
        added: list[Job] = []
        try:  # nothing is journaled if this raises
            if admitted.sent_as:
                journaled = self._adopt(admitted, unread)
            else:
                new = self._read(admitted, unread, intake=False)
                added = self.journal.add_many([new]) if new else []
                journaled = bool(added)
        except Exception as exc:  # offered again at the watcher's next rescan, to any station
            if isinstance(exc, WatcherError):  # the journal cannot be written
                log.error("%s not taken yet: %s", readable(path.name), exc)
            else:
                log.exception("%s not taken yet", readable(path.name))
            self._not_journaled(admitted)
            self.inbox.release([path])
            return False
        copies = self._recorded([new], added, counted=admitted.counted) if new else set()
        if not journaled:
            self._not_journaled(admitted, read=new is not None, own_copy=path in copies)
        self.inbox.handed_on([(path, admitted.rule)], set(unread))
        return True

    def _not_journaled(
        self, admitted: Admitted, *, read: bool = False, own_copy: bool = False
    ) -> None:
        """A claimed file that is no job: its claim let go (see SharedInboxes.let_go), or
        kept for the job of ours that has the file (`read`: the journal refused it as one
        it has; `own_copy`: as a copy of one of our results)."""
        if admitted.counted:
            self._passed_over(1)
        if not read or not present(admitted.path):
            self.stations.let_go(admitted)
        elif own_copy:
            self.stations.let_go(admitted, final=True)

    def _passed_over(self, count: int) -> None:
        self.status.passed_over(count, queue_empty=self._queue_empty)
        self._notify()

    def _journal_files(self, files: Sequence[Admitted]) -> list[Path]:
        """Journals the files admitted in one commit, or hands big ones to the intake
        thread; returns those that could not be read."""
        unread: list[Path] = []
        new_jobs = [new for admitted in files if (new := self._read(admitted, unread))]
        self._record(new_jobs)
        return unread

    def _read(
        self, admitted: Admitted, unread: list[Path], *, intake: bool = True
    ) -> NewJob | None:
        """The job record of a complete file, hashed here; None when it went away, cannot be
        read (added to `unread`), or is big and `intake`: then the intake thread hashes and
        journals it."""
        path, rule = admitted.path, admitted.rule
        try:
            if intake and path.stat().st_size > BIG_FILE_BYTES:
                self._intake.submit(path, rule.as_rule(path), rule.path)
                return None
            return new_job(path, rule.as_rule(path), rule.path)
        except FileNotFoundError:
            log.debug("%s went away before it was journaled", readable(path.name))
        except OSError as exc:
            log.warning(
                "%s cannot be read (%s); it is tried again a few times, then set aside",
                readable(path.name),
                exc.strerror or exc,
            )
            unread.append(path)
        return None

    def _adopt(self, admitted: Admitted, unread: list[Path]) -> bool:
        """A file taken over from a station that stopped after (maybe) sending it: journaled
        as sent under the name its claim recorded, so it is asked for by that name and never
        sent again by itself (held if the service does not know the name)."""
        new = self._read(admitted, unread, intake=False)
        if new is None:
            return False
        job = self.journal.add_sent(
            replace(new, remote_name=admitted.sent_as or new.remote_name),
            admitted.sent_at or time.time(),
        )
        if job is None:
            return False
        log.info("%s: asking for the result of %s by name", job.display_name, job.remote_name)
        if not admitted.counted:
            self.status.arrived(1)
        self.pool.wake()
        return True

    def _record(self, new_jobs: list[NewJob]) -> None:
        """Journals new jobs in one commit."""
        self._recorded(new_jobs, self.journal.add_many(new_jobs))

    def _recorded(
        self, offered: list[NewJob], jobs: list[Job], *, counted: bool = False
    ) -> set[Path]:
        """Tells of the jobs journaled (of those offered) and wakes the workers; returns the
        files refused as copies of our own results. `counted`: already counted in the batch
        (they waited in a shared inbox)."""
        for job in jobs:
            log.info("%s: queued (job %d)", job.display_name, job.id)
        copies = set()
        if len(jobs) < len(offered):
            copies = self._tell_own_copies(offered, {job.source for job in jobs})
        if jobs:
            if not counted:
                self.status.arrived(len(jobs))
            self.pool.wake()
            self._notify()
        return copies

    def _tell_own_copies(self, offered: list[NewJob], added: set[Path]) -> set[Path]:
        """Says so, once per file, when a file was not taken because it is a copy of one
        of our own results (the others were files already known); returns those files."""
        copies: set[Path] = set()
        for new in offered:
            if new.source in added:
                continue
            original = self.journal.result_copied(new)
            if original is not None:
                copies.add(new.source)
                log.info(
                    "%s is a copy of our own result %s (from %s); it is not converted again",
                    readable(new.source.name),
                    original.output,
                    original.display_name,
                )
        return copies

    def set_aside_unreadable(self, path: Path, rule: Rule, reason: str) -> None:
        """A file that cannot be read, after a few tries: into the failed folder with a
        reason, instead of an error at every rescan. Nothing was sent for it."""
        name = readable(path.name)
        if isinstance(rule, InboxRule):  # from the watcher: its subfolder is kept too
            rule = rule.as_rule(path)
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
        self.status.failed_before_journal(f"{name}: it cannot be read ({reason})")
        self.status.tell(NoticeKind.FILE_FAILED, "File cannot be read", f"{name}: {reason}")
        self._notify()

    # -- what the user sees ----------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        counts = self.journal.counts(_SHOWN_STATES, unclaimed=True)  # held ones: in_flight
        pages = self.journal.get_meta(META_PAGES)
        available = int(pages) if pages else None
        board = self.status.view()
        held = self.journal.get_meta(META_HOLD) if self.holds.held else None
        held_jobs = counts.get(JobState.HELD, 0)
        if held is None and held_jobs:
            newest = self.journal.jobs(states=(JobState.HELD,), limit=1)
            reason = newest[0].error if newest else ""
            held = f"{count(held_jobs, 'file')} waiting: {reason}"
        rules = self.config.inboxes
        waiting = self.stations.waiting  # in a shared inbox, for a free worker to claim
        return Snapshot(
            sandbox=self.sandbox,
            queued=counts.get(JobState.QUEUED, 0) + waiting,
            in_flight=self.pool.busy,
            batch_done=board.done,
            batch_total=board.total,
            held=held,
            service_problem=board.service_problem,
            paused_until=self.holds.paused_until,
            config_error=board.config_error,
            unseen_failures=board.unseen_failures,
            last_failure=board.last_failure,
            failed=counts.get(JobState.FAILED, 0),
            available_pages=available,
            low_credit=available is not None and available < self.config.credits.low_warning,
            last_conversion_at=board.recent[0].finished_at if board.recent else None,
            recent=board.recent,
            inboxes=tuple(rule.path for rule in rules),
            outboxes=tuple(dict.fromkeys(rule.outbox for rule in rules)),
            failed_folders=tuple(dict.fromkeys(rule.failed for rule in rules)),
            config_path=self.config.path,
            log_path=log_path(self.config.files.state_dir),
        )

    def _notify(self) -> None:
        self.status.publish(self.snapshot)

    def _hook_failed(self, text: str) -> None:
        self.status.tell(NoticeKind.FILE_FAILED, "A command after a result failed", text)

    def _job_changed(self, job: Job) -> None:
        if job.state.is_finished:
            self.status.finished(job, queue_empty=self._queue_empty)
        elif job.state is JobState.HELD:
            self.status.tell(NoticeKind.HELD, "File held", f"{job.display_name}: {job.error}")
        if job.state is JobState.DOWNLOADING:
            self._check_credit()
        self._notify()

    def _queue_empty(self) -> bool:
        return not self.stations.waiting and not self._active_count()

    def _active_count(self) -> int:
        """Jobs still on their way, counted in the journal (not loaded: a burst has many)."""
        return sum(self.journal.counts(ACTIVE_STATES).values())

    def _check_credit(self) -> None:
        pages = self.journal.get_meta(META_PAGES)
        if pages is None:
            return
        low = int(pages) < self.config.credits.low_warning
        if self.status.credit_state(low):
            self.status.tell(
                NoticeKind.LOW_CREDIT,
                "Credit running low",
                f"{count(int(pages), 'page')} left on your pdfocr.org account",
            )
        elif not low and self.journal.counts((JobState.HELD,)):
            # More credit than we knew of (bought on the website): files the credit guard
            # held may fit now; the runner judges them again.
            self._release_held(approve=False)

    def _service_state(self, problem: str | None) -> None:
        if not self.status.service_state(problem):
            return
        if problem:
            log.warning("the service is not reachable right now (%s); jobs wait and retry", problem)
        else:
            log.info("the service is reachable again")
        self.journal.set_meta(META_SERVICE, problem)
        self._notify()

    # -- holds and pauses ------------------------------------------------------------------

    def _hold(self, error: AccountError) -> None:
        """Stops the whole queue (see `QueueHolds` for what lifts it)."""
        started = self.holds.hold(error, self.config.path)
        if started is None:
            return  # the breaker's hold stays, in its words, until the user lifts it
        self.pool.set_held(True)
        self.journal.set_meta(META_HOLD, started.reason)
        if started.breaker:
            self.journal.set_meta(META_BREAKER, error.message)
        if started.first:
            log.error("queue held: %s", started.reason)
            self.status.tell(NoticeKind.HELD, "Conversions held", started.reason)
        self._notify()

    def resume(self, *, by_user: bool = True) -> None:
        """Releases the queue after an account hold, and the files the credit guard held.
        `by_user` (the tray's Resume queue): the user has chosen to go on, which also lifts
        the circuit breaker and approves sending again the files held because the service
        no longer knew them. The clock and a rules-file edit resume with `by_user=False`,
        which never approves a payment and never lifts the breaker."""
        was_held = self.holds.lift(by_user=by_user)
        if was_held is None:
            return
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
            log.info("%s back in the queue", count(released, "held file"))
            self.pool.wake()
            self._notify()

    def pause(self, until: float | None) -> None:
        """Stops sending new files until `until` (epoch seconds) or, with None, until
        unpaused. Conversions already at the service are finished."""
        self.holds.pause(until)
        self.pool.set_paused(True)
        when = "resumed" if until is None else time.strftime("%H:%M", time.localtime(until))
        log.info("paused until %s", when)
        self._wakeup.set()
        self._notify()

    def unpause(self) -> None:
        if self.holds.unpause():
            log.info("pause ended")
        self.pool.set_paused(False)
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
        self.status.acknowledge_failures()
        self._notify()

    def _housekeeping(self) -> None:
        """Timed duties: reload an edited rules file once it is quiet, end pauses, retry an
        account hold, release yesterday's daily-limit holds, tell about a long outage.
        Sleeps until the next one is due."""
        while not self.stop_event.is_set():
            try:
                delay = self._timed_duties()
            except Exception:  # a full disk, a bug: the claims must still be renewed
                log.exception("the timed duties failed; they are tried again shortly")
                delay = HOUSEKEEPING_RETRY_SECONDS
            self._wakeup.wait(delay)
            self._wakeup.clear()

    def _timed_duties(self) -> float:
        """One round of `_housekeeping`'s duties, the claims on shared inboxes first (another
        station takes over a claim that is not renewed); the seconds until the next round."""
        if self.stations.housekeeping():  # files wait: a free worker claims them
            self.pool.wake()
        if self.rules_file is not None and self.rules_file.take_due():
            self.reload_rules()
        now = time.time()
        paused_until = self.holds.paused_until
        if paused_until is not None and paused_until <= now:
            self.unpause()
        if self.holds.retry_due():
            log.info("trying the held queue again")
            self.resume(by_user=False)
        self._release_held(approve=False, due_before=now)
        self.status.tell_long_outage()
        if time.monotonic() - self._compacted_at > DAY:
            self._compact_journal()
        delay = min(HOUSEKEEPING_SECONDS, self.stations.lease_seconds / 3)
        paused_until = self.holds.paused_until
        if paused_until is not None and paused_until != math.inf:
            delay = min(delay, max(0.05, paused_until - now))
        reload_in = self.rules_file.seconds_until_due() if self.rules_file else None
        if reload_in is not None:
            delay = min(delay, max(0.05, reload_in))
        return delay

    def _compact_journal(self) -> None:
        days = self.config.files.history_days
        self._compacted_at = time.monotonic()
        if days:
            folded = self.journal.compact(older_than=time.time() - days * DAY)
            if folded:
                log.info(
                    "folded %d finished jobs older than %d days into daily totals", folded, days
                )

    # -- live rules ------------------------------------------------------------------------

    def reload_rules(self) -> None:
        """Applies an edited rules file at once, or keeps the running rules if it is broken."""
        path = self.config.path
        if path is None:
            return
        try:
            fresh = self._effective(load_config(path))
            check_runnable(fresh)
        except ConfigError as exc:
            if self.status.config_state(str(exc)):
                log.error("the edited rules file is not used: %s", exc)
            self._notify()
            return
        self.status.config_state(None)
        if fresh == self.config:
            self._notify()
            return
        if fresh.files.state_dir != self.config.files.state_dir:
            log.warning("a new state_dir takes effect at the next start")
        account_changed = fresh.api != self.config.api
        limits_changed = fresh.credits != self.config.credits
        self.config = fresh
        if account_changed or limits_changed:
            self._client = PdfOcrClient(ClientSettings.from_rules(fresh.api))
            self.runner.reconfigure(
                self._client,
                timing(fresh.api),
                fresh.credits.daily_page_limit,
            )
        self.inbox.update_config(fresh)
        self.stations.update_config(fresh)
        self.hooks.update_config(fresh)
        if self.schedule.update_config(fresh):  # files waiting for their hours: judged again
            self._release_held(approve=False)
        log.info("rules reloaded from %s (%d inboxes)", path, len(fresh.inboxes))
        if account_changed:
            self.resume(by_user=False)
        elif limits_changed:
            self._release_held(approve=False)
        self._notify()

    # -- start-up recovery -----------------------------------------------------------------

    def _recover(self) -> None:
        """Finishes what a killed process left half-done, before any new work starts."""
        active = self.journal.jobs(states=tuple(ACTIVE_STATES))
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
        held = self.journal.jobs(states=(JobState.HELD,))  # their claims kept, renewed
        for job in self.stations.resume([*active, *held]):
            if job.state in (JobState.QUEUED, JobState.UPLOADING, JobState.WAITING_FOR_RESULT):
                log.info("%s: another PC on the shared inbox took it over", job.display_name)
                self.journal.move(job, JobState.DROPPED, error="taken over by another PC")


_STAGED_STATES = (JobState.DOWNLOADING, JobState.FILING)


def _our_temporary_files(folder: Path) -> list[Path]:
    try:
        names = list(folder.iterdir())
    except OSError:
        return []
    return [p for p in names if p.name.startswith(STAGING_PREFIX)]
