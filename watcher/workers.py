"""A fixed number of worker threads, each taking the next due job from the journal.

How many jobs are at the service at once is bounded apart (watcher.turns: a worker keeps its
job's turn while it polls for the result); the daemon runs twice as many workers as turns, so
that checking, counting and filing on this computer overlap the service's work. While a
batch runs the daemon keeps to one core (watcher.cores). A worker with no job due first asks
for one more (`find_work`: a file waiting in a shared inbox, claimed only now), then sleeps
on a condition until a job arrives or the earliest deferred job is due, so an idle daemon
costs no CPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from watcher.cores import current_core, keep_process_to
from watcher.errors import AccountError
from watcher.jobs import JobState
from watcher.journal import Journal, JournalError
from watcher.runner import JobRunner

log = logging.getLogger(__name__)

# A bound on sleeping: `pdfocr-watcher retry` wakes the workers over the control channel, but a
# journal changed with no channel to tell us (a daemon whose socket could not be made, another
# process's requeue while we start) is seen at the next look.
IDLE_CHECK_SECONDS = 30.0
JOURNAL_RETRY_SECONDS = 5.0  # a journal that cannot be written stops this worker's work
CRASH_RETRY_SECONDS = 60.0  # a job that hit a bug is tried again after this
ACCOUNT_RETRY_SECONDS = 60.0  # a job whose request the account refused (queue held)
# Workers per turn at the service: while one job of a pair is at the service, the other is
# checked or filed here (a file's local work is about a third of its time with a fast service).
WORKERS_PER_TURN = 2


class WorkerPool:
    def __init__(
        self,
        journal: Journal,
        runner: JobRunner,
        workers: int,
        *,
        stop: threading.Event,
        on_hold: Callable[[AccountError], None],
        on_idle: Callable[[], None] = lambda: None,
        find_work: Callable[[], bool] = lambda: False,
    ):
        self._journal = journal
        self._runner = runner
        self._workers = workers
        self._stop = stop
        self._on_hold = on_hold
        self._on_idle = on_idle
        self._find_work = find_work  # journals one more job (from a shared inbox), if any
        self._wakeup = threading.Condition()
        self._held = False
        self._paused = False
        self._busy = 0
        self._generation = 0  # counts wake-ups, so none is lost between a claim and a wait
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(1, self._workers + 1):
            thread = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        with self._wakeup:
            self._generation += 1
            self._wakeup.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Asks workers to stop and waits a little: one in the middle of a long request is
        left behind (the journal says where its job stands, and the next start resumes it)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        keep_process_to(None)  # a batch cut short by the stop let go of nothing

    @property
    def held(self) -> bool:
        return self._held

    def may_send(self) -> bool:
        """New files may be sent: the queue is neither held nor paused."""
        return not (self._held or self._paused)

    @property
    def busy(self) -> int:
        return self._busy

    def set_held(self, held: bool) -> None:
        with self._wakeup:
            self._held = held
        self.wake()

    def set_paused(self, paused: bool) -> None:
        with self._wakeup:
            self._paused = paused
        self.wake()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._wakeup:
                generation, idle = self._generation, not self.may_send()
            # Claimed outside the condition's lock, so a wake() never waits on the journal.
            # A held or paused queue still finishes what is at the service already.
            job = self._journal.claim(send=not idle)
            if job is None:
                if not idle and self._found_work():
                    continue
                with self._wakeup:
                    if generation == self._generation:  # nothing happened since we looked
                        self._wakeup.wait(self._sleep_seconds())
                continue
            with self._wakeup:
                self._busy += 1
                if self._busy == 1:  # a batch begins: the daemon keeps to this core
                    keep_process_to(current_core())
            try:
                self._runner.advance(job)
            except AccountError as exc:
                self._held = True
                self._on_hold(exc)
                if job.state is not JobState.QUEUED:  # a poll: not asked again at once
                    self._defer(job.id, ACCOUNT_RETRY_SECONDS)
            except JournalError as exc:
                log.error("%s: %s", job.display_name, exc)
                self._stop.wait(JOURNAL_RETRY_SECONDS)
            except Exception:
                # A bug or an unforeseen OS error must not take the worker down: the job keeps
                # its journaled state and is tried again later.
                log.exception(
                    "%s: unexpected error; it will be tried again later", job.display_name
                )
                self._defer(job.id, CRASH_RETRY_SECONDS)
            finally:
                self._journal.release(job)
                with self._wakeup:
                    self._busy -= 1
                    self._generation += 1
                    self._wakeup.notify_all()
                    idle = self._busy == 0
                    if idle:  # placed afresh next time
                        keep_process_to(None)
                if idle:
                    # The job's last change was told while this worker still counted as
                    # busy: without this, a finished batch would be shown as converting.
                    self._tell_idle()

    def _found_work(self) -> bool:
        try:
            return self._find_work()
        except Exception:
            log.exception("looking for a file waiting in a shared inbox failed")
            return False

    def _tell_idle(self) -> None:
        try:
            self._on_idle()
        except Exception:
            log.exception("a listener to the pool going idle failed")

    def _sleep_seconds(self) -> float:
        # Jobs due now but not claimable (claimed, or waiting for a twin) become claimable
        # only when another job is released, which wakes us; so sleep until the next
        # deferred job falls due.
        now = time.time()
        due = self._journal.next_due(after=now)
        if due is None:
            return IDLE_CHECK_SECONDS
        return min(IDLE_CHECK_SECONDS, max(0.01, due - now))

    def _defer(self, job_id: int, seconds: float) -> None:
        try:
            job = self._journal.get(job_id)
            if job is not None:
                self._journal.update(job, not_before=time.time() + seconds)
        except Exception:
            log.exception("could not defer job %s", job_id)
