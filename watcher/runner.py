"""Advances one job through the state machine in `watcher.jobs`, talking to the service.

This is the only place that decides what happens next to a job. Its rule: write the move to
the journal, then do the thing. Money is the tie-breaker: once a submission may have reached
the service, the job asks for its result by name; when the service keeps not knowing the
name, the job is held for the user to decide. The journal refuses a second submission of its
own accord, so a mistake here stops there instead of paying twice.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from watcher.api import ConversionResult, ConversionService, Downloaded, RemoteJob, renamed
from watcher.config import ApiSettings
from watcher.errors import (
    AccountError,
    BadDownload,
    ConversionCut,
    CutBeforeSent,
    EndpointMoved,
    FileRejected,
    NotConnected,
    ServiceLosingJobs,
    TakenOver,
    TransientError,
    UnknownRemoteName,
)
from watcher.filing import (
    candidate_names,
    copy_whole,
    link_without_overwrite,
    move_without_overwrite,
    reason_path,
    remove_quietly,
    result_name,
    same_content,
    set_aside,
)
from watcher.intake import file_hash
from watcher.jobs import (
    MAX_CUT_BEFORE_SENT,
    MAX_DEFER_SECONDS,
    ORIGINAL_DELETED,
    HoldKind,
    Job,
    JobState,
    SourceKind,
    SubmissionOutcome,
    readable,
)
from watcher.journal import Journal, SpendRefused, local_day
from watcher.ownfiles import OwnFiles
from watcher.preflight import (
    BudgetHold,
    FileFacts,
    FileKind,
    budget_hold,
    check_source,
    read_budget,
    reusable_result,
)
from watcher.turns import ServiceTurns
from watcher.wording import count

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0
DOWNLOAD_ATTEMPTS = 5
DISK_RETRY_SECONDS = 30.0
REQUEUE_MOVE_SECONDS = 5.0  # a retried job waits this long for its original to be back

JobListener = Callable[[Job], None]
# Until when (epoch seconds) and why a job must wait before it is sent; None: send it now.
SendWindow = Callable[[Job, float], tuple[float, str] | None]


class SubmitGuard(Protocol):
    """Asked before each submission and told when a job is finished: the claims of a shared
    inbox (watcher.stations). before_submit raises TakenOver (another PC has the file) or
    TransientError (ask again later)."""

    def before_submit(self, job: Job) -> None: ...

    def finished(self, job: Job) -> None: ...


class _Unguarded:
    def before_submit(self, job: Job) -> None:
        return None

    def finished(self, job: Job) -> None:
        return None


_NO_GUARD = _Unguarded()

# The circuit breaker: this many jobs lost by the service within the window stop the queue.
LOST_JOBS_TRIP = 3
LOST_JOBS_WINDOW = 600.0


@dataclass(frozen=True)
class Timing:
    """How long to wait, all measured on the monotonic clock (a suspend or a clock set
    forward does not use up a wait). `lost_after`: how long the service may keep not knowing
    a name it was sent before the job is held; shorter only holds sooner, never pays."""

    poll_interval: float
    max_wait: float
    lost_after: float = 120.0


def timing(settings: ApiSettings) -> Timing:
    return Timing(settings.poll_interval, settings.max_wait, settings.lost_after)


class ResultMissing(Exception):
    """A job's staged result is gone and nothing was placed: someone removed it."""


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, so many daemons behind one router do not retry in step;
    a server's Retry-After, when given, is the floor."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, attempts - 1))
    delay *= random.uniform(0.75, 1.25)
    return min(MAX_DEFER_SECONDS, max(delay, retry_after or 0.0))


class JobRunner:
    def __init__(
        self,
        journal: Journal,
        client: ConversionService,
        timing: Timing,
        *,
        stop: threading.Event | None = None,
        on_change: JobListener | None = None,
        on_service_state: Callable[[str | None], None] | None = None,
        file_originals: bool = True,
        daily_page_limit: int = 0,
        own_files: OwnFiles | None = None,
        guard: SubmitGuard | None = None,
        after_result: JobListener | None = None,
        send_window: SendWindow | None = None,
        turns: ServiceTurns | None = None,
        may_send: Callable[[], bool] = lambda: True,
    ):
        """`file_originals=False` (one-shot `convert`) leaves the user's files where they are;
        the daemon moves them to the archive or the failed folder. Every result placed is
        remembered in `own_files`, which the inbox watcher asks before it takes a file.
        `after_result` is told of each job that ended DONE or FAILED, once that is journaled
        (the user's command after a result, watcher.hooks): it must not wait. `turns` bounds
        the jobs at the service at once (watcher.turns); none: no bound. `may_send` says
        whether new files may be sent now (not while the queue is held or paused): a job
        that waited for its turn asks it again before it is sent."""
        self._after_result = after_result or (lambda job: None)
        # Sending hours (watcher.schedule): until when a job must wait before it is sent.
        self._send_window = send_window or (lambda job, now: None)
        self._own_files = OwnFiles() if own_files is None else own_files
        self._guard = guard or _NO_GUARD
        self._file_originals = file_originals
        self._daily_page_limit = daily_page_limit
        # The credit guard's check and the move that spends the pages happen under one lock,
        # so two workers cannot both fit into the last pages of the day's budget.
        self._budget_lock = threading.Lock()
        self._journal = journal
        self._client = client
        self._timing = timing
        self._stop = stop or threading.Event()
        self._turns = turns or ServiceTurns(None)
        self._may_send = may_send
        self._on_change = on_change or (lambda job: None)
        self._on_service_state = on_service_state or (lambda problem: None)
        self._lost_at: deque[float] = deque(maxlen=LOST_JOBS_TRIP)  # monotonic times

    def reconfigure(self, client: ConversionService, timing: Timing, daily_page_limit: int) -> None:
        """New key, endpoint, timings or limits from an edited rules file."""
        self._client = client
        self._timing = timing
        self._daily_page_limit = daily_page_limit

    def advance(self, job: Job) -> Job:
        """Runs the job until it is finished, held, deferred to later, or the daemon stops.

        AccountError propagates after the job was put back safely: the whole queue must wait.
        """
        steps = {
            JobState.QUEUED: self._send,
            JobState.UPLOADING: self._resume_interrupted_upload,
            JobState.WAITING_FOR_RESULT: self._wait_for_result,
            JobState.DOWNLOADING: self._download,
            JobState.FILING: self._file,
        }
        try:
            while job.state in steps and not self._stop.is_set() and job.is_due(time.time()):
                moved = steps[job.state](job)
                if moved is job:  # it must wait as it is (stopping, or the queue is held)
                    break
                job = moved
                self._on_change(job)
        finally:
            self._turns.give_back()  # a job deferred, held or failed at the service
        if job.state.is_finished:
            self._guard.finished(job)
        if job.state in (JobState.DONE, JobState.FAILED):
            self._after_result(job)
        return job

    # -- QUEUED: check locally, then send -------------------------------------------------

    def _send(self, job: Job) -> Job:
        if job.may_be_at_service:  # an older journal's, or a bug: never send it again
            return self._hold_uncertain(job, _unsure(job))
        problem = self._source_problem(job)
        if problem:
            log.info("%s: %s", job.display_name, problem)
            return self._journal.move(job, JobState.DROPPED, error=problem)
        reused = self._reuse_twin(job)
        if reused:
            return reused
        # What the checks learn is journaled with the next move, not in a write of its own.
        learned: dict[str, Any] = {}
        try:
            checked = check_source(job.source, outformat=job.rule.outformat)
        except FileRejected as exc:
            return self._fail(job, exc.message, advice=_refused_here_advice(job))
        facts = checked.facts
        if checked.url is not None:
            learned["url"] = checked.url
        if facts is not None:
            learned["pages"] = facts.pages
            learned["remote_name"] = _named_for(job.remote_name, facts)
        content = facts.content if facts is not None else None
        wait = self._send_window(job, time.time())
        if wait is not None:  # before anything is sent: it waits whole, for its hours
            opens, why = wait
            log.info("%s: %s", job.display_name, why)
            return self._journal.move(
                job,
                JobState.HELD,
                error=why,
                held_until=opens,
                hold=HoldKind.SCHEDULED,
                **learned,
            )
        # Its turn before it is marked as maybe at the service: a kill while it waits for
        # one must leave a job that was surely not sent.
        if not self._turns.take() or not self._may_send():
            return job  # stopping, held or paused meanwhile: still QUEUED, not sent
        with self._budget_lock:
            hold = self._credit_guard(job, checked.pages)
            if hold is not None:
                log.warning("%s: held: %s", job.display_name, hold.reason)
                return self._journal.move(
                    job,
                    JobState.HELD,
                    error=hold.reason,
                    held_until=hold.until,
                    hold=HoldKind.BUDGET,
                    **learned,
                )
            sent_at = time.time()
            try:  # the claim on a shared inbox says it first: a station taking over polls
                self._guard.before_submit(job.evolve(sent_at=sent_at, **learned))
            except TakenOver as exc:
                log.info("%s: %s", job.display_name, exc)
                return self._journal.move(job, JobState.DROPPED, error=str(exc))
            except TransientError as exc:
                return self._retry_later(job, JobState.QUEUED, exc)
            try:
                job = self._journal.move(
                    job, JobState.UPLOADING, sent_at=sent_at, charged_on=local_day(), **learned
                )
            except SpendRefused as exc:
                log.error("%s: %s", job.display_name, exc)
                return self._hold_uncertain(job, _unsure(job), **learned)
        self._on_change(job)
        remote = self._remote(job)
        try:
            if job.kind is SourceKind.URL:
                result = self._client.submit_url(job.url or "", remote)
            else:
                result = self._client.upload(job.source, remote, content)
        except ConversionCut as exc:
            log.info("%s: %s; asking for the result by name", job.display_name, exc.message)
            return self._journal.move(job, JobState.WAITING_FOR_RESULT)
        except TransientError as exc:
            return self._retry_later(job, JobState.QUEUED, exc, outcome=_not_sent_outcome(exc))
        except EndpointMoved:
            self._journal.move(job, JobState.WAITING_FOR_RESULT)  # it went out: ask first
            raise
        except AccountError:
            self._journal.close_submission(job, SubmissionOutcome.NOT_SENT, JobState.QUEUED)
            raise
        except FileRejected as exc:
            return self._fail(
                job,
                f"the service refused it: {exc.message}",
                advice=_FILE_ADVICE,
                outcome=SubmissionOutcome.REFUSED,
            )
        self._on_service_state(None)
        return self._got_result(job, result)

    def _credit_guard(self, job: Job, pages: int) -> BudgetHold | None:
        """Why this file must wait instead of spending pages (watcher.preflight's guard, as
        `check --explain` asks it); None when it may go. Released jobs pass: the user decided."""
        if job.approved:
            return None
        budget = read_budget(self._journal, self._daily_page_limit)
        return budget_hold(pages, budget, job_id=job.id)

    def _source_problem(self, job: Job) -> str | None:
        try:
            stat = job.source.stat()  # one look for both questions
        except OSError:
            return "it was removed from the inbox before it was sent; nothing was charged"
        if not self._still_ours(job, stat):
            return "it changed after it was queued; the new version is converted instead"
        return None

    def _reuse_twin(self, job: Job) -> Job | None:
        """The same bytes with the same settings were converted before: copy that result."""
        twin = reusable_result(self._journal, job)
        if twin is None or twin.output is None:
            return None
        try:
            copy_whole(twin.output, job.staged)  # a staged result is always whole
        except OSError as exc:
            return self._disk_trouble(job, job.rule.outbox, exc)
        log.info(
            "%s: same content as %s, reusing its result (no charge)",
            job.display_name,
            twin.display_name,
        )
        return self._journal.move(job, JobState.FILING, pages=0)

    def _resume_interrupted_upload(self, job: Job) -> Job:
        log.info(
            "%s: an upload was interrupted; asking the service before sending again",
            job.display_name,
        )
        return self._journal.move(job, JobState.WAITING_FOR_RESULT)

    # -- WAITING_FOR_RESULT: poll by name ------------------------------------------------

    def _wait_for_result(self, job: Job) -> Job:
        """Asks for the result by name until it comes, the wait runs out, or the service has
        not known the name for `lost_after`: then the job is held, since the service may
        have it, late, or may have lost it after charging; sending it again is the user's
        call. A job the user approved for sending again is sent only if the name stays
        unknown now."""
        remote = self._remote(job)
        started = time.monotonic()
        unknown_since: float | None = None
        if not self._turns.take():  # kept through the polls: the conversion is under way
            return job
        while not self._stop.is_set():
            now = time.monotonic()
            if now - started > self._timing.max_wait:
                return self._fail(
                    job,
                    f"the service gave no result within {_minutes(self._timing.max_wait)} "
                    "of asking for it",
                    advice="Check your pdfocr.org account (conversions and balance) before "
                    "retrying: if the conversion was charged, retrying with `pdfocr-watcher "
                    "retry` asks for the result again first.",
                )
            try:
                result = self._client.poll(remote)
            except UnknownRemoteName:
                if not job.may_be_at_service:
                    log.info("%s: not at the service; sending it again", job.display_name)
                    return self._journal.move(
                        job, JobState.QUEUED, remote_name=renamed(job.remote_name)
                    )
                unknown_since = now if unknown_since is None else unknown_since
                if now - unknown_since >= self._timing.lost_after:
                    return self._lost(job)
                result = None
            except AccountError:
                raise
            except TransientError as exc:
                self._on_service_state(exc.message)
                result = None
            else:
                unknown_since = None  # it knows the name (or said nothing about it)
            if result:
                self._on_service_state(None)
                return self._got_result(job, result)
            self._stop.wait(self._timing.poll_interval)
        return job

    def _lost(self, job: Job) -> Job:
        """Holds a job the service no longer knows, and stops the queue when that happens
        too often: a service that loses paid jobs loses the next ones too."""
        sent = time.strftime("%H:%M", time.localtime(job.sent_at or time.time()))
        reason = (
            f"it was sent at {sent} and the service no longer knows it (asked for "
            f"{_minutes(self._timing.lost_after)}); sending it again may be charged twice. "
            "Check your pdfocr.org account, then choose Resume queue in the tray or run "
            f"`pdfocr-watcher retry {job.id}` to send it again"
        )
        job = self._hold_uncertain(job, reason)
        now = time.monotonic()
        with self._budget_lock:  # workers lose jobs at the same moment
            self._lost_at.append(now)
            trips = len(self._lost_at) == LOST_JOBS_TRIP
            trips = trips and now - self._lost_at[0] <= LOST_JOBS_WINDOW
            if trips:
                self._lost_at.clear()
        if trips:
            self._on_change(job)
            raise ServiceLosingJobs(
                f"the service lost {LOST_JOBS_TRIP} conversions within "
                f"{_minutes(LOST_JOBS_WINDOW)} (sent, probably charged, then unknown to it)"
            )
        return job

    def _got_result(self, job: Job, result: ConversionResult) -> Job:
        return self._journal.move(
            job,
            JobState.DOWNLOADING,
            link=result.link,
            available_pages=result.available_pages,
            attempts=0,
        )

    # -- DOWNLOADING: fetch the result, then file it ---------------------------------------

    def _download(self, job: Job) -> Job:
        """Fetches the result to its staged name and files it, with no journal write between:
        a staged result appears only whole (the atomic rename of a complete, synced file)
        under a name that is this job's alone, so one found here (after a kill, or a disk
        error while filing) is filed without being fetched again, and filing finds its own
        earlier work instead of repeating it."""
        if job.staged.exists():
            return self._file(job)
        if not self._turns.take():
            return job
        fetched = self._fetch(job)
        self._turns.give_back()  # filing needs only this computer
        if isinstance(fetched, Job):
            return fetched
        return self._file(job, fetched.sha256)

    def _fetch(self, job: Job) -> Job | Downloaded:
        """Downloads the result; the job's next move if that failed."""
        try:
            return self._client.download(job.link or "", job.staged, job.rule.outformat)
        except BadDownload as exc:
            if job.attempts + 1 >= DOWNLOAD_ATTEMPTS:
                return self._fail(
                    job,
                    f"the converted file could not be downloaded ({exc.message})",
                    advice="The conversion is paid. Run `pdfocr-watcher retry --failed` later: "
                    "it asks the service for the result again without uploading.",
                )
            return self._retry_later(job, JobState.DOWNLOADING, exc)
        except FileRejected as exc:
            return self._fail(job, exc.message, advice=_SERVICE_ADVICE)
        except OSError as exc:
            return self._disk_trouble(job, job.rule.outbox, exc)

    # -- filing: result into the outbox, original away (DOWNLOADING or FILING) -----------

    def _file(self, job: Job, result_hash: str | None = None) -> Job:
        """Result placed, original put away, then DONE with both places in one write. The
        staged name goes last: until DONE is journaled it is what a retry places again. When
        the original cannot be put away, the result's name is journaled, so that the retries
        never place it again (not even after someone took it out of the outbox).
        `result_hash`: the staged result's SHA-256 when it was just downloaded."""
        try:
            output = self._place_result(job)
            output_hash = job.output_hash or result_hash or _digest(output)
        except ResultMissing:
            return self._fail(
                job,
                "its result was removed from the outbox before it was filed",
                advice="Run `pdfocr-watcher retry --failed`: nothing is paid twice (a conversion "
                "already paid is asked for again before anything is uploaded).",
            )
        except OSError as exc:
            return self._disk_trouble(job, job.rule.outbox, exc)
        try:
            original_at = self._put_original_away(job)
        except OSError as exc:
            where = job.source.parent if job.rule.after_success == "delete" else job.rule.archive
            return self._disk_trouble(job, where, exc, output=output)
        job = self._journal.move(
            job,
            JobState.DONE,
            output=output,
            original_at=original_at,
            error=None,
            output_hash=output_hash,
        )
        remove_quietly(job.staged)  # if a kill leaves it, the daemon's start-up sweep removes it
        if job.pages:
            log.info(
                "%s: done → %s (%s, sent as %s)",
                job.display_name,
                job.output,
                count(job.pages, "page"),
                job.remote_name,
            )
        else:
            log.info("%s: done → %s", job.display_name, job.output)
        return job

    def _place_result(self, job: Job) -> Path:
        """Gives the staged result its final name in the outbox and returns it. Idempotent:
        a retry, or a restart after a kill, finds the name that already holds this result
        (the same file, or a copy where links are not supported) instead of placing it twice."""
        if job.output is not None:  # placed by an earlier try (or an older version)
            return job.output
        staged = job.staged
        # Known before it gets a name an inbox may see (a link keeps its identity): an outbox
        # that is an inbox after all never takes our own result for a new file. Its look at
        # the staged file is also the check that it is there.
        if not self._own_files.remember(staged, folder=job.rule.outbox) and not staged.exists():
            raise ResultMissing(f"the staged result of job {job.id} is missing")
        for candidate in candidate_names(job.rule.outbox, job_result_name(job)):
            try:
                linked = link_without_overwrite(staged, candidate)
            except FileExistsError:
                if same_content(candidate, staged):
                    return candidate
                continue
            if not linked:  # a copy: a new inode, registered in its turn
                self._own_files.remember(candidate, folder=job.rule.outbox)
            return candidate
        raise FileExistsError(f"no free name for the result in {job.rule.outbox}")

    def _put_original_away(self, job: Job) -> str | None:
        if not (self._file_originals and self._still_ours(job)):
            return job.original_at
        after = job.rule.after_success
        if after == "delete":
            job.source.unlink()
            return ORIGINAL_DELETED
        if after == "archive":
            return str(move_without_overwrite(job.source, job.rule.archive))
        return None

    def _still_ours(self, job: Job, stat: os.stat_result | None = None) -> bool:
        """The original is still in its place, unchanged (not a new file under its name).
        The same bytes put back under a new inode (a sync tool's write-and-rename) are.
        `stat`: the original's, when the caller has just looked."""
        if stat is None:
            try:
                stat = job.source.stat()
            except OSError:
                return False
        if job.is_original(stat):
            return True
        same_look = stat.st_size == job.size and stat.st_mtime_ns == job.mtime_ns
        return same_look and _digest(job.source) == job.content_hash

    # -- failures and waits ----------------------------------------------------------------

    def _hold_uncertain(self, job: Job, reason: str, **changes: object) -> Job:
        log.warning("%s: held: %s", job.display_name, reason)
        return self._journal.move(
            job, JobState.HELD, error=reason, hold=HoldKind.UNCERTAIN, **changes
        )

    def _move(
        self,
        job: Job,
        target: JobState,
        outcome: SubmissionOutcome | None = None,
        **changes: object,
    ) -> Job:
        """A move; with `outcome`, one that also closes the job's submission as not sent
        (when it was cut before it was sent too often, the job is held instead)."""
        if outcome is None:
            return self._journal.move(job, target, **changes)
        moved, cuts = self._journal.close_submission(job, outcome, target, **changes)
        if moved.state is JobState.HELD and target is not JobState.HELD:
            return self._journal.update(moved, error=_cut_too_often(moved, cuts))
        return moved

    def _fail(
        self,
        job: Job,
        reason: str,
        *,
        advice: str,
        outcome: SubmissionOutcome | None = None,
    ) -> Job:
        job = self._move(job, JobState.FAILED, outcome, error=reason)
        log.warning("%s: failed: %s", job.display_name, reason)
        return self.file_failed_original(job, advice)

    def file_failed_original(self, job: Job, advice: str = "") -> Job:
        """Moves a failed job's original to the failed folder with a reason beside it.

        Separate from the move to FAILED so that start-up can finish it after a crash."""
        if not (self._file_originals and self._still_ours(job)):
            return job
        try:
            moved = set_aside(
                job.source,
                job.rule.failed,
                reason=job.error or "unknown",
                advice=advice or _refused_here_advice(job),
            )
        except OSError as exc:
            log.error(
                "%s: could not be moved to %s (%s); it stays where it is",
                job.display_name,
                job.rule.failed,
                exc.strerror,
            )
            return job
        return self._journal.update(job, original_at=str(moved))

    def _retry_later(
        self,
        job: Job,
        state: JobState,
        exc: TransientError,
        outcome: SubmissionOutcome | None = None,
    ) -> Job:
        attempts = job.attempts + 1
        delay = backoff(attempts, exc.retry_after)
        self._on_service_state(exc.message)
        log.info("%s: %s; trying again in %.0f s", job.display_name, exc.message, delay)
        moved = self._move(job, state, outcome, attempts=attempts, not_before=time.time() + delay)
        if moved.state is JobState.HELD:
            log.warning("%s: held: %s", job.display_name, moved.error)
        return moved

    def _disk_trouble(self, job: Job, folder: Path, exc: OSError, **changes: object) -> Job:
        """A full or missing disk is the user's to fix and ours to wait for: the job keeps
        its state (a paid conversion is never sent again for this), with `changes`."""
        reason = f"{folder} cannot be written ({exc.strerror or exc})"
        attempts = job.attempts + 1
        delay = min(DISK_RETRY_SECONDS, backoff(attempts))
        log.error(
            "%s: %s; the original stays where it is, trying again in %.0f s",
            job.display_name,
            reason,
            delay,
        )
        return self._journal.update(
            job, error=reason, attempts=attempts, not_before=time.time() + delay, **changes
        )

    def _remote(self, job: Job) -> RemoteJob:
        return RemoteJob(job.remote_name, job.rule.outformat, job.rule.lang, job.rule.ocr)


def job_result_name(job: Job) -> str:
    """The name its rule's template gives the result. Every value comes from the journal
    (the date is the day the file arrived), so a filing tried again after a kill or a disk
    error looks for the very same name and finds its own earlier work there."""
    return result_name(
        job.display_name,
        job.rule.outformat,
        template=job.rule.name,
        lang=job.rule.lang,
        inbox=readable(job.inbox.name) if job.inbox else "",
        when=datetime.fromtimestamp(job.created_at),
    )


def _named_for(name: str, facts: FileFacts) -> str:
    """The remote name with the extension of what the file really is (a JPEG saved as
    `.pdf` is sent as `.jpg`), so the service is not misled by the user's name."""
    stem, _, extension = name.rpartition(".")
    if facts.kind is FileKind.PDF:
        return f"{stem}.pdf"
    if extension == "pdf":
        return f"{stem}.{facts.image_format}"
    return name


def requeue(journal: Journal, job: Job) -> str | None:
    """Puts a failed or held job back in line (its original back in the inbox, where it was)
    and returns why it could not be, if it could not. A job that may already be paid for
    asks the service for its result before anything is sent again; one held because the
    service no longer knew it is, by this call, the user's approval to send it again."""
    if job.state not in (JobState.FAILED, JobState.HELD):
        return f"it is {job.state.value}, nothing to retry"
    failed_copy = Path(job.original_at) if job.original_at else None
    moved_away = failed_copy is not None and failed_copy.is_file()
    if not moved_away and not job.source.is_file():
        return "the original is gone; drop it into the inbox again"
    source = job.source
    if moved_away:  # the name it will have back in the inbox
        source = next(c for c in candidate_names(source.parent, source.name) if not c.exists())
    # Journaled before the original moves back: a kill in between leaves it in the failed
    # folder with its reason, and a job that finds no file (nothing lost, nothing sent);
    # the other way round, the file would be back with no job owning it, and taken as new.
    fresh: dict[str, object] = {
        "source": source,
        "original_at": None,
        "output": None,
        "error": None,
        "attempts": 0,
        "not_before": time.time() + REQUEUE_MOVE_SECONDS if moved_away else 0.0,
        "held_until": None,
        "approved": True,
    }
    if job.hold is HoldKind.UNCERTAIN:
        job = journal.approve_resend(job, **fresh)
    else:
        target = JobState.WAITING_FOR_RESULT if job.may_be_at_service else JobState.QUEUED
        job = journal.move(job, target, **fresh)
    if failed_copy is None or not moved_away:
        return None
    try:
        placed = move_without_overwrite(failed_copy, source.parent, source.name)
    except OSError as exc:
        return f"the original could not be moved back from {failed_copy} ({exc.strerror})"
    remove_quietly(reason_path(failed_copy))
    # A copy across devices is a new inode: the job must still know it as its original.
    journal.update(job, source=placed, inode=placed.stat().st_ino, not_before=0.0)
    return None


def _digest(result: Path) -> str | None:
    """The placed result's SHA-256, by which a copy of it coming back into an inbox is known;
    None when it cannot be read (taken out of the outbox already): that guard is a bonus,
    and filing must not wait for it."""
    try:
        return file_hash(result)
    except OSError:
        return None


def _not_sent_outcome(exc: TransientError) -> SubmissionOutcome:
    if isinstance(exc, NotConnected):
        return SubmissionOutcome.NO_CONNECTION
    if isinstance(exc, CutBeforeSent):
        return SubmissionOutcome.CUT_BEFORE_SENT
    return SubmissionOutcome.NOT_SENT  # the service answered before taking it (a 429)


def _cut_too_often(job: Job, cuts: int) -> str:
    return (
        f"the connection broke {cuts} times while it was being sent (the most tried by "
        f"itself is {MAX_CUT_BEFORE_SENT}); nothing reached the service as far as we can "
        "tell. Check the network, then choose Resume queue in the tray or run "
        f"`pdfocr-watcher retry {job.id}` to try again"
    )


def _unsure(job: Job) -> str:
    return (
        "the service may already have this file from an earlier submission; it is not sent "
        "again by itself. Choose Resume queue in the tray or run "
        f"`pdfocr-watcher retry {job.id}` to send it again"
    )


# A file refused here was never sent; one the service refused was, and only the service
# knows whether it charged it.
_REFUSED_HERE_ADVICE = (
    "Fix the file as described above, then drop it into the inbox again. Nothing was sent "
    "or charged."
)
_FILE_ADVICE = (
    "Fix the file as described above, then drop it into the inbox again. Nothing was charged "
    "for it unless the service said otherwise."
)


def _refused_here_advice(job: Job) -> str:
    """The advice for a file that failed before it was sent this time: whether anything was
    sent at all is in the job (a job sent before, then found unknown to the service, was)."""
    return _REFUSED_HERE_ADVICE if job.sent_at is None else _FILE_ADVICE


_SERVICE_ADVICE = (
    "This looks like a problem on the service's side. Try again later with "
    "`pdfocr-watcher retry --failed`; if it persists, contact pdfocr.org support."
)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
