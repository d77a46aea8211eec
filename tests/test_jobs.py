"""The state machine's table is exactly the moves the code makes, checked both ways: every
move outside it is refused by the journal, and every move in it is made by a real scenario
(the runner against a scripted service, a real journal, real files)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_runner import FAST, ScriptedService, add_job, run

from watcher.jobs import TRANSITIONS, HoldKind, IllegalTransition, JobState
from watcher.journal import META_PAGES, Journal
from watcher.runner import JobRunner, Timing, requeue

Move = tuple[JobState, JobState]
# Made by the daemon's start-up, not the runner: a job whose shared-inbox claim another PC
# took over while this one was off (tests/test_stations.py drives a takeover for real).
MADE_AT_START_UP: set[Move] = {
    (JobState.UPLOADING, JobState.DROPPED),
    (JobState.WAITING_FOR_RESULT, JobState.DROPPED),
}


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[Move]]:
    """Every move any journal makes during the test."""
    made: set[Move] = set()
    update = Journal._update

    def recording(self: Journal, db, job, target, changes):  # type: ignore[no-untyped-def]
        moved = update(self, db, job, target, changes)
        if target is not job.state:
            made.add((job.state, target))
        return moved

    monkeypatch.setattr(Journal, "_update", recording)
    yield made


def test_every_move_outside_the_table_is_refused(tmp_path: Path) -> None:
    journal = Journal.in_folder(tmp_path / "state")
    try:
        job = add_job(journal, tmp_path)
        for current, target in itertools.product(JobState, JobState):
            if current is target or target in TRANSITIONS[current]:
                continue
            journal._db.execute("UPDATE jobs SET state = ? WHERE id = ?", (current.value, job.id))
            stale = journal.get(job.id)
            assert stale is not None
            with pytest.raises(IllegalTransition):
                journal.move(stale, target, hold=HoldKind.BUDGET)
    finally:
        journal.close()


def test_every_move_in_the_table_is_made_by_the_code(tmp_path: Path, moves: set[Move]) -> None:
    journal = Journal.in_folder(tmp_path / "state")
    try:
        _scenarios(journal, tmp_path)
    finally:
        journal.close()
    table = {(current, target) for current, targets in TRANSITIONS.items() for target in targets}
    assert moves | MADE_AT_START_UP == table, sorted(
        (a.value, b.value) for a, b in table ^ (moves | MADE_AT_START_UP)
    )


def _scenarios(journal: Journal, root: Path) -> None:
    n = itertools.count()

    def job(name: str = "doc"):  # type: ignore[no-untyped-def]
        return add_job(journal, root, f"{name}{next(n)}.pdf")

    # sent, converted, filed; a cut and a poll; the same bytes again: reused
    first = run(journal, ScriptedService(["cut"]), job())
    twin = add_job(journal, root, "twin.pdf")
    journal._db.execute(
        "UPDATE jobs SET content_hash = ? WHERE id = ?", (first.content_hash, twin.id)
    )
    run(journal, ScriptedService(), journal.get(twin.id) or twin)
    # a reused result removed before it was filed: FILING -> FAILED
    again = add_job(journal, root, "again.pdf")
    journal._db.execute(
        "UPDATE jobs SET content_hash = ? WHERE id = ?", (first.content_hash, again.id)
    )
    runner = JobRunner(journal, ScriptedService(), FAST)
    claimed = journal.get(again.id)
    assert claimed is not None
    reused = runner._reuse_twin(claimed)
    assert reused is not None and reused.state is JobState.FILING
    reused.staged.unlink()
    assert runner.advance(reused).state is JobState.FAILED
    # never left (refused), refused by the service, lost and retried by the user
    run(journal, ScriptedService(["refused"]), job())
    bad = ScriptedService()
    bad.upload = _refuse  # type: ignore[method-assign]
    failed = run(journal, bad, job())
    assert failed.state is JobState.FAILED
    assert requeue(journal, failed) is None  # FAILED -> QUEUED
    lost = run(journal, ScriptedService(["lost"]), job())
    assert requeue(journal, lost) is None  # HELD -> WAITING; unknown again -> QUEUED
    run(journal, ScriptedService(), journal.get(lost.id) or lost)
    # cut before it was sent, too often: UPLOADING -> HELD
    run(journal, ScriptedService(["partial"] * 5), job())
    # no result within max_wait, then retried: WAITING -> FAILED -> WAITING
    slow = ScriptedService(["cut"])
    slow.poll = lambda remote: None  # type: ignore[method-assign, assignment]
    waited = run(journal, slow, job(), Timing(0.0, max_wait=0.0, lost_after=10.0))
    assert waited.state is JobState.FAILED
    assert requeue(journal, waited) is None
    # a result that cannot be downloaded, five times: DOWNLOADING -> FAILED
    broken = ScriptedService()
    broken.download = _cut_download  # type: ignore[method-assign]
    assert run(journal, broken, job()).state is JobState.FAILED
    # removed before it was sent: QUEUED -> DROPPED
    gone = job()
    gone.source.unlink()
    run(journal, ScriptedService(), gone)
    # not a PDF: QUEUED -> FAILED; more pages than the credit: QUEUED -> HELD -> QUEUED
    junk = job()
    junk.source.write_bytes(b"not a pdf at all")
    journal._db.execute(
        "UPDATE jobs SET size = ?, mtime_ns = ? WHERE id = ?",
        (junk.source.stat().st_size, junk.source.stat().st_mtime_ns, junk.id),
    )
    run(journal, ScriptedService(), journal.get(junk.id) or junk)
    journal.set_meta(META_PAGES, "0")
    held = run(journal, ScriptedService(), job())
    assert held.state is JobState.HELD and held.hold is HoldKind.BUDGET
    assert journal.release_held(approve=True) == 1


def _refuse(path: Path, remote: object, content: bytes | None = None) -> object:
    from watcher.errors import FileRejected

    raise FileRejected("The PDF is password protected")


def _cut_download(link: str, dest: Path, outformat: str) -> int:
    from watcher.errors import BadDownload

    raise BadDownload("the download was cut")
