"""The runner's decisions, against a scripted service (the `ConversionService` seam) and, in
the last section, the real client over the in-memory sandbox (watcher.sandbox.memory), with a
real journal on disk and real files: no sockets, so every way a service can misbehave is cheap
to try, over and over. The real-HTTP versions of these stories are in test_daemon/test_spend."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher import samplepdf
from watcher.api import (
    ClientSettings,
    ConversionResult,
    ConversionService,
    Downloaded,
    PdfOcrClient,
    RemoteJob,
)
from watcher.errors import (
    ConversionCut,
    CutBeforeSent,
    NotConnected,
    ServiceLosingJobs,
    TransientError,
    UnknownRemoteName,
)
from watcher.filing import written_whole
from watcher.jobs import (
    MAX_CUT_BEFORE_SENT,
    HoldKind,
    Job,
    JobState,
    NewJob,
    Rule,
    SourceKind,
    SubmissionOutcome,
)
from watcher.journal import Journal
from watcher.runner import LOST_JOBS_TRIP, JobRunner, Timing, requeue
from watcher.sandbox import FAULT_KINDS, FaultRates
from watcher.sandbox.memory import MemorySandbox

# What a submission does, as the service and the network make it happen:
#   ok          converted, reply arrives
#   cut         reached, charged, reply cut (524); the service knows the name
#   late        reached, charged, cut; the name is unknown for `late_polls` polls first
#   lost        reached, charged, cut; the service forgets it (unknown for ever)
#   gone        a 5xx page before the origin: not charged, reply looks like a cut
#   refused     no connection was made
#   partial     cut before the whole body was sent
#   slow_down   a 429
SUBMISSIONS = ("ok", "cut", "late", "lost", "gone", "refused", "partial", "slow_down")


@dataclass
class ScriptedService:
    """A service whose next submissions behave as scripted (then "ok"), with a ledger."""

    script: list[str] = field(default_factory=list)
    late_polls: int = 2
    charges: Counter[str] = field(default_factory=Counter)  # remote name → charges
    known: dict[str, int] = field(default_factory=dict)  # remote name → unknown polls left
    polls: int = 0
    submissions: int = 0

    def _submit(self, job: RemoteJob) -> ConversionResult:
        self.submissions += 1
        how = self.script.pop(0) if self.script else "ok"
        if how in ("ok", "cut", "late", "lost"):
            self.charges[job.remote_name] += 1
        if how == "ok":
            return self._result(job)
        if how in ("cut", "late"):
            self.known[job.remote_name] = self.late_polls if how == "late" else 0
            raise ConversionCut("HTTP 524")
        if how in ("lost", "gone"):
            raise ConversionCut("HTTP 502")
        if how == "refused":
            raise NotConnected("the connection was refused; nothing was sent")
        if how == "partial":
            raise CutBeforeSent("the connection was cut before the file was sent")
        raise TransientError("slow down", retry_after=0.0)

    def upload(self, path: Path, job: RemoteJob, content: bytes | None = None) -> ConversionResult:
        return self._submit(job)

    def submit_url(self, url: str, job: RemoteJob) -> ConversionResult:
        return self._submit(job)

    def poll(self, job: RemoteJob) -> ConversionResult | None:
        self.polls += 1
        left = self.known.get(job.remote_name)
        if left is None:
            raise UnknownRemoteName("File not found")
        if left > 0:
            self.known[job.remote_name] = left - 1
            raise UnknownRemoteName("File not found")
        return self._result(job)

    def download(self, link: str, dest: Path, outformat: str) -> Downloaded:
        body = b"converted " + link.encode()
        with written_whole(dest) as out:  # as the real client writes it (its folder made)
            out.write(body)
        return Downloaded(len(body), hashlib.sha256(body).hexdigest())

    @staticmethod
    def _result(job: RemoteJob) -> ConversionResult:
        return ConversionResult(f"https://service/doc/{job.remote_name}", 900)


FAST = Timing(poll_interval=0.0, max_wait=5.0, lost_after=0.05)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.in_folder(tmp_path / "state")
    yield opened
    opened.close()


def add_job(journal: Journal, root: Path, name: str = "scan.pdf") -> Job:
    inbox = root / "inbox"
    source = samplepdf.write_pdf(inbox / name, [f"text of {name}"])
    stat = source.stat()
    rule = Rule("txt", "English", True, root / "out", root / "archive", root / "failed", "archive")
    job = journal.add(
        NewJob(
            source,
            inbox,
            SourceKind.FILE,
            None,
            f"hash-{name}",
            stat.st_size,
            stat.st_mtime_ns,
            rule,
            f"{Path(name).stem}-tok{len(name)}.pdf",
        )
    )
    assert job is not None
    return job


def run(journal: Journal, service: ConversionService, job: Job, timing: Timing = FAST) -> Job:
    """Advances the job as a worker would, through deferrals, until it settles."""
    runner = JobRunner(journal, service, timing)
    for _ in range(50):
        job = runner.advance(journal.get(job.id) or job)
        if job.state in (JobState.DONE, JobState.FAILED, JobState.HELD, JobState.DROPPED):
            return job
        journal.update(job, not_before=0.0)  # a deferral's pause, skipped
    raise AssertionError(f"job {job.id} never settled: {job.state}")


def automatic_paid(journal: Journal, service: ScriptedService, job_id: int) -> int:
    """Charges of a job's submissions made without the user's approval in between."""
    names = [name for _, _, name in journal.submissions(job_id)]
    return sum(service.charges[name] for name in dict.fromkeys(names))


def test_a_cut_upload_is_polled_and_charged_once(journal: Journal, tmp_path: Path) -> None:
    service = ScriptedService(["cut"])
    job = run(journal, service, add_job(journal, tmp_path))
    assert job.state is JobState.DONE
    assert sum(service.charges.values()) == 1 and service.submissions == 1


def test_a_name_registered_late_is_waited_for_not_sent_again(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["late"], late_polls=5)
    job = run(journal, service, add_job(journal, tmp_path), Timing(0.01, 5.0, lost_after=1.0))
    assert job.state is JobState.DONE
    assert service.submissions == 1 and service.polls == 6


def test_a_job_the_service_lost_is_held_with_a_reason_and_never_sent_again(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["lost"])
    job = run(journal, service, add_job(journal, tmp_path))
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN
    assert job.error and "sending it again may be charged twice" in job.error
    assert f"pdfocr-watcher retry {job.id}" in job.error
    for _ in range(3):  # a restart (a new runner) asks again, and holds again
        job = run(journal, service, job)
    assert service.submissions == 1 and sum(service.charges.values()) == 1


def test_the_users_retry_of_a_lost_job_asks_first_then_sends_once(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["lost"])
    job = run(journal, service, add_job(journal, tmp_path))
    assert requeue(journal, job) is None
    job = journal.get(job.id)
    assert job is not None and job.state is JobState.WAITING_FOR_RESULT
    polls = service.polls
    job = run(journal, service, job)
    assert job.state is JobState.DONE
    assert service.polls > polls, "asked by name before sending again"
    assert service.submissions == 2
    names = [name for _, _, name in journal.submissions(job.id)]
    assert len(set(names)) == 2, "sent again under a new name"


def test_a_found_result_after_the_users_retry_is_not_paid_again(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["lost"])
    job = run(journal, service, add_job(journal, tmp_path))
    service.known[job.remote_name] = 0  # the service found it after all
    assert requeue(journal, job) is None
    job = run(journal, service, job)
    assert job.state is JobState.DONE and service.submissions == 1


@pytest.mark.parametrize("how", ["refused", "slow_down"])
def test_a_submission_that_never_left_is_sent_again_by_itself(
    journal: Journal, tmp_path: Path, how: str
) -> None:
    service = ScriptedService([how] * 8)
    job = run(journal, service, add_job(journal, tmp_path))
    assert job.state is JobState.DONE and service.submissions == 9
    assert sum(service.charges.values()) == 1


def test_cuts_before_the_body_was_sent_are_retried_a_bounded_number_of_times(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["partial"] * 20)
    job = run(journal, service, add_job(journal, tmp_path))
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN
    assert service.submissions == MAX_CUT_BEFORE_SENT
    assert job.error and "broke 5 times" in job.error
    assert requeue(journal, job) is None  # the user's say: go on
    service.script.clear()
    assert run(journal, service, job).state is JobState.DONE


def test_the_breaker_stops_the_queue_when_the_service_loses_several_jobs(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["lost"] * LOST_JOBS_TRIP)
    runner = JobRunner(journal, service, FAST)
    jobs = [add_job(journal, tmp_path, f"f{n}.pdf") for n in range(LOST_JOBS_TRIP)]
    for job in jobs[:-1]:
        assert runner.advance(job).state is JobState.HELD
    with pytest.raises(ServiceLosingJobs):
        runner.advance(jobs[-1])
    held = journal.get(jobs[-1].id)
    assert held is not None and held.state is JobState.HELD


def test_a_clock_set_forward_does_not_end_a_wait(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suspend or a clock jump moves the wall clock; the wait runs on the monotonic one."""
    service = ScriptedService(["late"], late_polls=3)
    job = add_job(journal, tmp_path)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 7200)
    job = run(journal, service, job, Timing(0.01, max_wait=60.0, lost_after=1.0))
    assert job.state is JobState.DONE


def test_a_retry_after_max_wait_asks_again_with_a_fresh_wait(
    journal: Journal, tmp_path: Path
) -> None:
    service = ScriptedService(["cut"])
    job = add_job(journal, tmp_path)
    service.known["never"] = 0
    slow = Timing(poll_interval=0.01, max_wait=0.05, lost_after=10.0)

    def never_ready(remote: RemoteJob) -> ConversionResult | None:
        service.polls += 1
        return None

    ready = service.poll
    service.poll = never_ready  # type: ignore[method-assign]
    job = run(journal, service, job, slow)
    assert job.state is JobState.FAILED and "no result within" in (job.error or "")
    service.poll = ready  # type: ignore[method-assign]
    assert requeue(journal, job) is None
    job = run(journal, service, journal.get(job.id) or job, slow)
    assert job.state is JobState.DONE and service.submissions == 1


def test_a_clock_set_back_does_not_leave_a_retry_pause_idle(
    journal: Journal, tmp_path: Path
) -> None:
    job = add_job(journal, tmp_path)
    journal.update(job, not_before=time.time() + 10 * 24 * 3600)  # set by a clock days ahead
    claimed = journal.claim()
    assert claimed is not None
    service = ScriptedService()
    assert JobRunner(journal, service, FAST).advance(claimed).state is JobState.DONE


# -- the spend invariant as a property ------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scripts=st.lists(st.lists(st.sampled_from(SUBMISSIONS), max_size=8), min_size=1, max_size=4),
    restarts=st.integers(min_value=0, max_value=3),
)
def test_automatic_paid_submissions_per_job_are_at_most_one(
    tmp_path_factory: pytest.TempPathFactory, scripts: list[list[str]], restarts: int
) -> None:
    """Whatever the service and the network do, and however often the daemon restarts,
    no job is charged twice without the user's say."""
    root = tmp_path_factory.mktemp("run")
    journal = Journal.in_folder(root / "state")
    try:
        service = ScriptedService([how for script in scripts for how in script], late_polls=1)
        jobs = [add_job(journal, root, f"doc{n}.pdf") for n in range(len(scripts))]
        for _ in range(restarts + 1):
            for job in jobs:
                with contextlib.suppress(ServiceLosingJobs):
                    run(journal, service, journal.get(job.id) or job)
        for job in jobs:
            assert automatic_paid(journal, service, job.id) <= 1
            final = journal.get(job.id)
            assert final is not None
            assert final.state in (JobState.DONE, JobState.HELD), final
            if final.state is JobState.HELD:
                assert final.hold is HoldKind.UNCERTAIN and final.error
    finally:
        journal.close()


def test_two_workers_on_one_job_cannot_both_submit(journal: Journal, tmp_path: Path) -> None:
    """The journal itself refuses a second submission; even two runners racing on one job
    (a bug the claims prevent) produce one charge."""
    job = add_job(journal, tmp_path)
    service = ScriptedService(["cut", "cut"])
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            outcomes.append(JobRunner(journal, service, FAST).advance(job).state.value)
        except Exception as exc:  # the loser's move finds the job changed under it
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert service.submissions == 1, outcomes


# -- the real client and the sandbox's rules, in memory ---------------------------------------
# The same stories through PdfOcrClient (its reading of 524 pages, resets and "File not found")
# and the sandbox's own charges and faults, over watcher.sandbox.memory instead of a socket.


@pytest.fixture
def box() -> Iterator[MemorySandbox]:
    with MemorySandbox() as sandbox:
        yield sandbox


def in_memory(box: MemorySandbox) -> PdfOcrClient:
    return PdfOcrClient(ClientSettings(box.url, box.key), box.transport)


def charges(box: MemorySandbox, job: Job) -> int:
    """What the sandbox charged for this job's file, under any of the names it was sent as."""
    stem = job.display_name.rsplit(".", 1)[0]
    return sum(1 for charge in box.ledger() if charge.filename.startswith(f"{stem}-"))


def test_a_524_reply_is_polled_to_its_result_and_charged_once(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.inject("http524")
    job = run(journal, in_memory(box), add_job(journal, tmp_path))
    assert job.state is JobState.DONE and box.fired["http524"] == 1
    assert job.output is not None and "text of scan.pdf" in job.output.read_text()
    assert charges(box, job) == 1
    assert [outcome for outcome, _, _ in journal.submissions(job.id)] == [
        SubmissionOutcome.MAY_HAVE_REACHED
    ]


def test_a_reset_after_the_upload_is_polled_not_sent_again(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.inject("reset_after_upload")
    job = run(journal, in_memory(box), add_job(journal, tmp_path))
    assert job.state is JobState.DONE and charges(box, job) == 1
    assert len(journal.submissions(job.id)) == 1


def test_a_cut_before_the_upload_was_sent_is_sent_again_and_charged_once(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.inject("reset_before_upload", times=2)
    job = run(journal, in_memory(box), add_job(journal, tmp_path))
    assert job.state is JobState.DONE and charges(box, job) == 1
    outcomes = [outcome for outcome, _, _ in journal.submissions(job.id)]
    assert outcomes == [SubmissionOutcome.CUT_BEFORE_SENT] * 2 + [
        SubmissionOutcome.MAY_HAVE_REACHED
    ]


def test_cut_before_sent_too_often_is_held_for_the_user(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.inject("reset_before_upload", times=MAX_CUT_BEFORE_SENT + 3)
    job = run(journal, in_memory(box), add_job(journal, tmp_path))
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN
    assert box.fired["reset_before_upload"] == MAX_CUT_BEFORE_SENT
    assert box.ledger() == []


def test_an_outage_before_the_upload_is_waited_out_and_charged_once(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    client = in_memory(box)
    box.reachable = False
    job = JobRunner(journal, client, FAST).advance(add_job(journal, tmp_path))
    assert job.state is JobState.QUEUED and job.not_before > time.time()
    assert [o for o, _, _ in journal.submissions(job.id)] == [SubmissionOutcome.NO_CONNECTION]
    box.reachable = True
    job = run(journal, client, job)
    assert job.state is JobState.DONE and charges(box, job) == 1


def test_a_job_lost_after_a_cut_is_held_uncertain_after_the_grace_and_never_resent(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.inject("http524")
    box.inject("lose_job")
    client = in_memory(box)
    job = run(journal, client, add_job(journal, tmp_path))
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN
    assert job.error and "no longer knows it" in job.error
    for _ in range(3):  # restarts ask again, and hold again
        job = run(journal, client, job)
    assert job.state is JobState.HELD and charges(box, job) == 1
    assert requeue(journal, job) is None  # the user's say: send it again
    job = run(journal, client, journal.get(job.id) or job)
    assert job.state is JobState.DONE and charges(box, job) == 2


def test_the_breaker_trips_when_the_sandbox_loses_paid_jobs(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.set_behaviour({"cut_after": 0.0, "lose_after_cut": 1.0, "seconds_per_page": 0.5})
    runner = JobRunner(journal, in_memory(box), FAST)
    jobs = [add_job(journal, tmp_path, f"f{n}.pdf") for n in range(LOST_JOBS_TRIP)]
    for job in jobs[:-1]:
        assert runner.advance(job).state is JobState.HELD
    with pytest.raises(ServiceLosingJobs):
        runner.advance(jobs[-1])
    assert box.fired["lose_job"] == LOST_JOBS_TRIP
    assert [charges(box, job) for job in jobs] == [1] * LOST_JOBS_TRIP


def test_a_submission_the_journal_refuses_never_reaches_the_service(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    """A bug that puts a job which may be at the service back in line, forgetting that it was
    sent, meets the journal's SpendRefused: the job is held and nothing is sent or charged."""
    box.inject("http524")
    client = in_memory(box)
    cut = threading.Event()  # stops the runner once the job waits for its result

    def note(moved: Job) -> None:
        if moved.state is JobState.WAITING_FOR_RESULT:
            cut.set()

    job = JobRunner(journal, client, FAST, stop=cut, on_change=note).advance(
        add_job(journal, tmp_path)
    )
    assert job.state is JobState.WAITING_FOR_RESULT and charges(box, job) == 1
    job = journal.move(job, JobState.QUEUED, sent_at=None)  # the bug
    assert not job.may_be_at_service
    job = JobRunner(journal, client, FAST).advance(job)
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN
    assert charges(box, job) == 1 and len(box.ledger()) == 1


def test_a_truncated_download_is_fetched_again_without_uploading(
    journal: Journal, box: MemorySandbox, tmp_path: Path
) -> None:
    box.inject("truncate_download", times=2)
    job = run(journal, in_memory(box), add_job(journal, tmp_path))
    assert job.state is JobState.DONE and box.fired["truncate_download"] == 2
    assert charges(box, job) == 1


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    injected=st.lists(st.sampled_from(FAULT_KINDS), max_size=8),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    rate=st.sampled_from([0.0, 0.1, 0.3]),
    lose=st.sampled_from([0.0, 0.5, 1.0]),
    files=st.integers(min_value=1, max_value=3),
    restarts=st.integers(min_value=0, max_value=2),
)
def test_whatever_the_sandbox_does_no_file_is_charged_twice_by_itself(
    tmp_path_factory: pytest.TempPathFactory,
    injected: list[str],
    seed: int,
    rate: float,
    lose: float,
    files: int,
    restarts: int,
) -> None:
    """The spend invariant through the real client and the sandbox's own ledger: injected
    faults first, then random resets and cut downloads, and jobs lost after cut replies;
    however often the daemon restarts, each file is charged at most once."""
    root = tmp_path_factory.mktemp("chaos")
    journal = Journal.in_folder(root / "state")
    # Random 5xx pages and 429s stay off: polls in memory are so quick that one of them would
    # come within every `lost_after`, and a job the service lost would fail after max_wait
    # instead of being held (the injected ones still strike, once each).
    faults = FaultRates(reset=rate, truncate=rate)
    try:
        with MemorySandbox(faults=faults, seed=seed, lose_after_cut=lose) as box:
            for kind in injected:
                box.inject(kind)
            client = in_memory(box)
            jobs = [add_job(journal, root, f"doc{n}.pdf") for n in range(files)]
            for _ in range(restarts + 1):
                for job in jobs:
                    with contextlib.suppress(ServiceLosingJobs):
                        run(journal, client, journal.get(job.id) or job)
            for job in jobs:
                final = journal.get(job.id)
                assert final is not None and charges(box, final) <= 1, box.ledger()
                assert final.state in (JobState.DONE, JobState.HELD, JobState.FAILED), final
                if final.state is JobState.DONE:
                    assert charges(box, final) == 1
    finally:
        journal.close()
