"""The running daemon: inbox events in, journaled jobs, workers, and the rules file watched.

It owns the wiring and the shared state a tray or `status` shows; the decisions about a job
live in `watcher.runner`, the facts in `watcher.journal`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from watcher.api import DOWNLOAD_TEMP_PREFIX, PdfOcrClient, new_token, remote_name
from watcher.config import Config, InboxRule, load_config
from watcher.errors import AccountError, ConfigError, CreditError
from watcher.filing import STAGING_PREFIX
from watcher.inbox import InboxWatcher
from watcher.jobs import ACTIVE_STATES, Job, JobState, Rule, SourceKind
from watcher.journal import Journal, NewJob
from watcher.runner import JobRunner, Timing
from watcher.shortcuts import is_shortcut
from watcher.workers import WorkerPool

log = logging.getLogger(__name__)

HOLD_RETRY_SECONDS = 600.0  # credit bought on the website changes nothing we can see
HASH_CHUNK = 1024 * 1024

META_HOLD = "hold_reason"
META_SERVICE = "service_problem"
META_PAGES = "available_pages"
META_PAGES_AT = "available_pages_at"
META_MODE = "mode"


@dataclass(frozen=True)
class Snapshot:
    """What the daemon is doing, for the tray and logs; cheap to build, safe to share."""

    sandbox: bool
    queued: int = 0
    in_flight: int = 0
    held: str | None = None
    service_problem: str | None = None
    last_failure: str | None = None
    available_pages: int | None = None
    done: int = 0
    failed: int = 0
    config_error: str | None = None
    counts: dict[JobState, int] = field(default_factory=dict)


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
        self.runner = JobRunner(
            self.journal,
            self._client,
            Timing(self.config.api.poll_interval, self.config.api.max_wait),
            stop=self.stop_event,
            on_change=self._job_changed,
            on_service_state=self._service_state,
        )
        self.pool = WorkerPool(
            self.journal,
            self.runner,
            self.config.api.concurrency,
            stop=self.stop_event,
            on_hold=self._hold,
        )
        self.inbox = InboxWatcher(self.config, self.enqueue)
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._state_lock = threading.Lock()
        self._held_since: float | None = None
        self._service_problem: str | None = None
        self._config_error: str | None = None
        self._last_failure: str | None = None
        self._rules_observer: Observer | None = None
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="housekeeping", daemon=True
        )

    def _effective(self, config: Config) -> Config:
        endpoint, key = self._overrides
        if endpoint is None:
            return config
        api = replace(config.api, endpoint=endpoint, key=key or "")
        return replace(config, api=api)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        mode = (
            "SANDBOX (simulated locally, nothing sent to pdfocr.org)"
            if self.sandbox
            else (f"live: {self.config.api.endpoint}")
        )
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
        self.pool.start()
        self.inbox.start()
        self._watch_rules_file()
        self._housekeeper.start()

    def stop(self) -> None:
        """Stops watching and sending; work in the middle of a request resumes next start."""
        log.info("stopping")
        self.stop_event.set()
        self.inbox.stop()
        if self._rules_observer is not None:
            self._rules_observer.stop()
            self._rules_observer.join(timeout=2)
        self.pool.stop()
        self._housekeeper.join(timeout=2)

    def wait(self) -> None:
        while not self.stop_event.wait(1.0):
            pass

    def close(self) -> None:
        self._client.close()
        self.journal.close()

    def add_listener(self, listener: Callable[[Snapshot], None]) -> None:
        self._listeners.append(listener)

    # -- arrivals --------------------------------------------------------------------------

    def enqueue(self, path: Path, rule: InboxRule) -> Job | None:
        """Journals a complete file as a job (before anything is sent) and wakes a worker."""
        try:
            stat = path.stat()
            content_hash = file_hash(path)
        except FileNotFoundError:
            log.debug("%s went away before it was journaled", path.name)
            return None
        shortcut = is_shortcut(path)
        sent_name = f"{path.stem}.pdf" if shortcut else path.name
        job = self.journal.add(
            NewJob(
                source=path,
                inbox=rule.path,
                kind=SourceKind.URL if shortcut else SourceKind.FILE,
                url=None,
                content_hash=content_hash,
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                rule=self.job_rule(rule),
                remote_name=remote_name(sent_name, new_token()),
            )
        )
        if job is not None:
            log.info("%s: queued (job %d)", path.name, job.id)
            self.pool.wake()
            self._notify()
        return job

    def job_rule(self, rule: InboxRule) -> Rule:
        return Rule(
            outformat=rule.outformat,
            lang=rule.lang,
            ocr=rule.ocr,
            outbox=rule.outbox,
            archive=rule.archive,
            failed=rule.failed,
            after_success=self.config.files.after_success.value,
        )

    # -- state shown to the user -----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        counts = self.journal.counts()
        pages = self.journal.get_meta(META_PAGES)
        with self._state_lock:
            held = self.journal.get_meta(META_HOLD) if self._held_since is not None else None
            return Snapshot(
                sandbox=self.sandbox,
                queued=counts.get(JobState.QUEUED, 0),
                in_flight=self.pool.busy,
                held=held,
                service_problem=self._service_problem,
                last_failure=self._last_failure,
                available_pages=int(pages) if pages else None,
                done=counts.get(JobState.DONE, 0),
                failed=counts.get(JobState.FAILED, 0),
                config_error=self._config_error,
                counts=counts,
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

    def _job_changed(self, job: Job) -> None:
        if job.available_pages is not None and job.state is JobState.DOWNLOADING:
            self.journal.set_meta(META_PAGES, str(job.available_pages))
            self.journal.set_meta(META_PAGES_AT, str(time.time()))
        if job.state is JobState.FAILED:
            self._last_failure = f"{job.display_name}: {job.error}"
        self._notify()

    def _service_state(self, problem: str | None) -> None:
        with self._state_lock:
            if problem == self._service_problem:
                return
            self._service_problem = problem
        if problem:
            log.warning("the service is not reachable right now (%s); jobs wait and retry", problem)
        else:
            log.info("the service is reachable again")
        self.journal.set_meta(META_SERVICE, problem)
        self._notify()

    # -- account hold ------------------------------------------------------------------------

    def _hold(self, error: AccountError) -> None:
        where = self.config.path or "the rules file"
        if isinstance(error, CreditError):
            advice = (
                "buy more pages at pdfocr.org; the queue is tried again every "
                f"{HOLD_RETRY_SECONDS / 60:.0f} minutes, or at once when you edit {where}"
            )
        else:
            advice = (
                f"fix `key` under [api] in {where} (or PDFOCR_API_KEY); "
                "the queue resumes as soon as the file is saved"
            )
        reason = f"the service refused the account: {error.message} — {advice}"
        with self._state_lock:
            first = self._held_since is None
            self._held_since = time.monotonic()
        self.pool.set_held(True)
        self.journal.set_meta(META_HOLD, reason)
        if first:
            log.error("queue held: %s", reason)
        self._notify()

    def resume(self) -> None:
        """Releases a held queue (after a config change, a retry timer, or the user)."""
        with self._state_lock:
            was_held = self._held_since is not None
            self._held_since = None
        if was_held:
            log.info("queue resumed")
            self.journal.set_meta(META_HOLD, None)
        self.pool.set_held(False)
        self._notify()

    def _housekeeping(self) -> None:
        while not self.stop_event.wait(30.0):
            with self._state_lock:
                since = self._held_since
            if since is not None and time.monotonic() - since > HOLD_RETRY_SECONDS:
                log.info("trying the held queue again")
                self.resume()

    # -- live rules ------------------------------------------------------------------------

    def _watch_rules_file(self) -> None:
        path = self.config.path
        if path is None or not path.parent.is_dir():
            return
        daemon = self

        class RulesFileHandler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                touched = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
                if str(path) in touched and event.event_type != "opened":
                    daemon.reload_rules()

        observer = Observer()
        observer.schedule(RulesFileHandler(), str(path.parent), recursive=False)
        observer.daemon = True
        observer.start()
        self._rules_observer = observer

    def reload_rules(self) -> None:
        """Applies an edited rules file at once, or keeps the running rules if it is broken."""
        path = self.config.path
        if path is None:
            return
        try:
            fresh = self._effective(load_config(path))
        except ConfigError as exc:
            if str(exc) != self._config_error:
                log.error("the edited rules file is not used: %s", exc)
            self._config_error = str(exc)
            self._notify()
            return
        if fresh == self.config:
            return
        if fresh.files.state_dir != self.config.files.state_dir:
            log.warning("a new state_dir takes effect at the next start")
        account_changed = fresh.api != self.config.api
        self._config_error = None
        self.config = fresh
        if account_changed:
            self._client = PdfOcrClient(fresh.api)
            self.runner.reconfigure(
                self._client, Timing(fresh.api.poll_interval, fresh.api.max_wait)
            )
        self.inbox.update_config(fresh)
        log.info("rules reloaded from %s (%d inboxes)", path, len(fresh.inboxes))
        if account_changed:
            self.resume()
        self._notify()

    # -- start-up recovery -----------------------------------------------------------------

    def _recover(self) -> None:
        """Finishes what a killed process left half-done, before any new work starts."""
        staged_jobs = {
            job.staged
            for job in self.journal.jobs(states=(JobState.DOWNLOADING, JobState.FILING))
            if job.staged
        }
        active = self.journal.jobs(states=tuple(ACTIVE_STATES))
        outboxes = {rule.outbox for rule in self.config.inboxes} | {
            job.rule.outbox for job in active
        }
        for outbox in outboxes:
            for leftover in _our_temporary_files(outbox):
                if leftover not in staged_jobs:
                    log.info("removing a leftover temporary file %s", leftover)
                    with contextlib.suppress(OSError):
                        leftover.unlink()
        for job in self.journal.jobs(states=(JobState.FAILED,)):
            if job.original_at is None:
                self.runner.file_failed_original(job)


def _our_temporary_files(folder: Path) -> list[Path]:
    try:
        names = list(folder.iterdir())
    except OSError:
        return []
    return [path for path in names if path.name.startswith((DOWNLOAD_TEMP_PREFIX, STAGING_PREFIX))]


def file_hash(path: Path) -> str:
    """SHA-256 of the content: identical bytes with identical settings are paid for once."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
