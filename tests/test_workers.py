"""The worker pool: which job a worker takes next, what a paused or held queue still does,
how many are busy, waking and stopping. Real parts all the way down: a journal on disk, the
real runner and client, and the sandbox's rules in memory (no socket)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from watcher import samplepdf, workers
from watcher.api import ClientSettings, PdfOcrClient
from watcher.errors import AccountError
from watcher.intake import new_job
from watcher.jobs import Job, JobState, Rule
from watcher.journal import Journal
from watcher.runner import JobRunner, SubmitGuard, Timing
from watcher.sandbox.memory import MemorySandbox
from watcher.transport import Response, Transport
from watcher.turns import ServiceTurns
from watcher.workers import CRASH_RETRY_SECONDS, WorkerPool

FAST = Timing(poll_interval=0.0, max_wait=30.0, lost_after=5.0)
PATIENCE = 60.0  # generous: the machine may be loaded


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Gate:
    """A transport that holds every upload until opened, then lets the sandbox answer it."""

    def __init__(self, inner: Transport):
        self._inner = inner
        self.opened = threading.Event()
        self.arrived: list[str] = []  # the uploads held (list.append is thread-safe)

    def request(self, method: str, url: str, **options: Any) -> Response:
        if method == "POST":
            self.arrived.append(url)
            self.opened.wait(PATIENCE)
        return self._inner.request(method, url, **options)

    def close(self) -> None:
        self._inner.close()


class Buggy:
    """A SubmitGuard (the seam a shared inbox's claims use) with a bug for one file."""

    def __init__(self, name: str):
        self.name = name

    def before_submit(self, job: Job) -> None:
        if job.display_name == self.name:
            raise RuntimeError("a bug in the guard")

    def finished(self, job: Job) -> None:
        return None


class Setup:
    def __init__(self, root: Path, box: MemorySandbox):
        self.root = root
        self.box = box
        self.journal = Journal.in_folder(root / "state")
        self.stop = threading.Event()
        self.holds: list[AccountError] = []
        self.transport: Transport = box.transport
        self.guard: SubmitGuard | None = None
        self.rule = Rule(
            "txt", "English", True, root / "out", root / "archive", root / "failed", "archive"
        )

    def client(self, key: str | None = None) -> PdfOcrClient:
        return PdfOcrClient(ClientSettings(self.box.url, key or self.box.key), self.transport)

    def runner(
        self,
        key: str | None = None,
        turns: int | None = None,
        may_send: Callable[[], bool] = lambda: True,
    ) -> JobRunner:
        return JobRunner(
            self.journal,
            self.client(key),
            FAST,
            stop=self.stop,
            guard=self.guard,
            turns=ServiceTurns(turns, self.stop),
            may_send=may_send,
        )

    def pool(self, runner: JobRunner, workers: int = 1) -> WorkerPool:
        return WorkerPool(self.journal, runner, workers, stop=self.stop, on_hold=self.holds.append)

    def add(self, name: str) -> Job:
        source = samplepdf.write_pdf(self.root / "inbox" / name, [f"text of {name}"])
        job = self.journal.add(new_job(source, self.rule, source.parent))
        assert job is not None
        return job

    def state(self, job: Job) -> JobState:
        found = self.journal.get(job.id)
        assert found is not None
        return found.state

    def charged(self) -> list[str]:
        """The sent names' stems, in the order the sandbox charged them."""
        return [charge.filename.rsplit("-", 1)[0] for charge in self.box.ledger()]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with MemorySandbox() as box:
        made = Setup(tmp_path, box)
        yield made
        made.stop.set()
        if isinstance(made.transport, Gate):
            made.transport.opened.set()
        made.journal.close()


@pytest.fixture
def started(setup: Setup) -> Iterator[list[WorkerPool]]:
    """Pools appended here are stopped after the test."""
    pools: list[WorkerPool] = []
    yield pools
    for pool in pools:
        pool.stop()


def test_jobs_are_taken_in_the_order_they_fall_due(setup: Setup, started: list[WorkerPool]) -> None:
    first, second, third = (setup.add(f"{name}.pdf") for name in ("first", "second", "third"))
    setup.journal.update(first, not_before=time.time() + 0.5)  # a deferral: due after the rest
    pool = setup.pool(setup.runner())
    started.append(pool)
    pool.start()
    wait_for(lambda: setup.state(first) is JobState.DONE, "the deferred job")
    assert setup.charged() == ["second", "third", "first"]
    assert setup.state(second) is setup.state(third) is JobState.DONE


def test_a_paused_queue_sends_nothing_but_finishes_what_is_at_the_service(
    setup: Setup, started: list[WorkerPool]
) -> None:
    queued = setup.add("queued.pdf")  # first in line: a pause that let it go would send it
    sent = setup.add("sent.pdf")
    setup.box.inject("http524")
    waiting = threading.Event()  # stops this runner once the cut job waits for its result
    at_service = JobRunner(
        setup.journal,
        setup.client(),
        FAST,
        stop=waiting,
        on_change=lambda job: job.state is JobState.WAITING_FOR_RESULT and waiting.set(),
    ).advance(sent)
    assert at_service.state is JobState.WAITING_FOR_RESULT
    pool = setup.pool(setup.runner(), workers=2)
    started.append(pool)
    pool.set_paused(True)
    pool.start()
    wait_for(lambda: setup.state(sent) is JobState.DONE, "the job at the service")
    assert setup.state(queued) is JobState.QUEUED
    assert setup.charged() == ["sent"]
    pool.set_paused(False)
    wait_for(lambda: setup.state(queued) is JobState.DONE, "the queued job after the pause")
    assert setup.charged() == ["sent", "queued"]


def test_an_account_refusal_holds_the_queue_until_it_is_released(
    setup: Setup, started: list[WorkerPool]
) -> None:
    job = setup.add("scan.pdf")
    runner = setup.runner(key="not-the-key")
    pool = setup.pool(runner)
    started.append(pool)
    pool.start()
    wait_for(lambda: setup.holds, "the hold")
    assert pool.held and "API key" in setup.holds[0].message
    assert setup.state(job) is JobState.QUEUED and setup.charged() == []
    runner.reconfigure(setup.client(), FAST, 0)  # the user fixed the key
    pool.set_held(False)
    wait_for(lambda: setup.state(job) is JobState.DONE, "the job after the hold")
    assert not pool.held and setup.charged() == ["scan"] and len(setup.holds) == 1


def test_busy_counts_the_workers_with_a_job_and_stop_ends_them(
    setup: Setup, started: list[WorkerPool]
) -> None:
    jobs = [setup.add(f"doc{n}.pdf") for n in range(3)]
    setup.transport = gate = Gate(setup.box.transport)
    pool = setup.pool(setup.runner(), workers=2)
    before = set(threading.enumerate())
    pool.start()
    mine = [t for t in set(threading.enumerate()) - before if t.name.startswith("worker-")]
    assert len(mine) == 2
    wait_for(lambda: len(gate.arrived) == 2, "two workers uploading")
    assert pool.busy == 2 and setup.charged() == []  # the third waits for a free worker
    gate.opened.set()
    wait_for(lambda: all(setup.state(job) is JobState.DONE for job in jobs), "all three")
    wait_for(lambda: pool.busy == 0, "idle workers")
    pool.stop()
    assert not any(thread.is_alive() for thread in mine)
    assert sorted(setup.charged()) == ["doc0", "doc1", "doc2"]


def test_wake_sends_a_new_job_at_once(
    setup: Setup, started: list[WorkerPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "IDLE_CHECK_SECONDS", 3600.0)  # only a wake-up helps
    pool = setup.pool(setup.runner())
    started.append(pool)
    pool.start()
    for name in ("one.pdf", "two.pdf"):
        job = setup.add(name)
        pool.wake()
        wait_for(lambda job=job: setup.state(job) is JobState.DONE, name)
    assert setup.charged() == ["one", "two"]


def test_a_bug_while_advancing_a_job_defers_it_and_the_worker_goes_on(
    setup: Setup, started: list[WorkerPool]
) -> None:
    bad, good = setup.add("bad.pdf"), setup.add("good.pdf")
    setup.guard = Buggy("bad.pdf")
    pool = setup.pool(setup.runner())
    started.append(pool)
    pool.start()
    wait_for(lambda: setup.state(good) is JobState.DONE, "the next job")
    deferred = setup.journal.get(bad.id)
    assert deferred is not None and deferred.state is JobState.QUEUED
    assert deferred.not_before > time.time() + CRASH_RETRY_SECONDS / 2
    assert setup.charged() == ["good"]


def test_more_workers_than_turns_send_only_as_many_files_at_once_as_there_are_turns(
    setup: Setup, started: list[WorkerPool]
) -> None:
    """Two turns, four workers: two files at the service, the two other workers' files
    checked and counted but not yet marked as sent (a kill then leaves nothing uncertain)."""
    jobs = [setup.add(f"doc{n}.pdf") for n in range(6)]
    setup.transport = gate = Gate(setup.box.transport)
    pool = setup.pool(setup.runner(turns=2), workers=4)
    started.append(pool)
    pool.start()
    wait_for(lambda: len(gate.arrived) == 2 and pool.busy == 4, "two uploads, four busy")
    time.sleep(0.3)  # time enough for a third upload, if a turn let it through
    assert len(gate.arrived) == 2
    states = sorted(setup.state(job).value for job in jobs)
    assert states == ["queued"] * 4 + ["uploading"] * 2
    gate.opened.set()
    wait_for(lambda: all(setup.state(job) is JobState.DONE for job in jobs), "all six")
    assert sorted(setup.charged()) == sorted(f"doc{n}" for n in range(6))


def test_files_waiting_for_a_turn_are_not_sent_once_the_queue_is_paused(
    setup: Setup, started: list[WorkerPool]
) -> None:
    """A pause (or a hold) that comes while files wait for a turn keeps them unsent; the
    files already at the service are finished."""
    jobs = [setup.add(f"doc{n}.pdf") for n in range(4)]
    setup.transport = gate = Gate(setup.box.transport)
    pools: list[WorkerPool] = []  # as the daemon wires it: the runner asks the pool
    pool = setup.pool(setup.runner(turns=2, may_send=lambda: pools[0].may_send()), workers=4)
    pools.append(pool)
    started.append(pool)
    pool.start()
    wait_for(lambda: len(gate.arrived) == 2 and pool.busy == 4, "two uploads, two waiting")
    pool.set_paused(True)
    gate.opened.set()
    wait_for(lambda: pool.busy == 0, "the two at the service finished, the others let go")
    time.sleep(0.3)
    assert sorted(setup.state(job).value for job in jobs) == ["done"] * 2 + ["queued"] * 2
    assert len(setup.charged()) == 2
    pool.set_paused(False)
    wait_for(lambda: all(setup.state(job) is JobState.DONE for job in jobs), "all four")
    assert len(setup.charged()) == 4


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="Linux with 2 cores or more",
)
def test_a_batch_keeps_the_daemon_to_one_core_and_lets_go_when_it_is_over(
    setup: Setup, started: list[WorkerPool]
) -> None:
    allowed = os.sched_getaffinity(0)
    jobs = [setup.add(f"doc{n}.pdf") for n in range(4)]
    setup.transport = gate = Gate(setup.box.transport)
    pool = setup.pool(setup.runner(), workers=2)
    started.append(pool)
    pool.start()

    def cores_of_every_thread() -> list[set[int]]:
        return [os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")]

    wait_for(lambda: len(gate.arrived) == 2, "two workers uploading")
    kept = cores_of_every_thread()  # this test's own thread among them: the whole process
    assert len(kept[0]) == 1 and kept[0] <= allowed and kept == [kept[0]] * len(kept)
    gate.opened.set()
    wait_for(lambda: all(setup.state(job) is JobState.DONE for job in jobs), "all four")
    wait_for(lambda: pool.busy == 0, "idle workers")
    assert all(found == allowed for found in cores_of_every_thread())
