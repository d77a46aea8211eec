"""The journal and the state machine it enforces, on a real SQLite file."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from watcher.jobs import (
    MAX_CUT_BEFORE_SENT,
    HoldKind,
    IllegalTransition,
    Job,
    JobState,
    NewJob,
    Rule,
    SourceKind,
    SubmissionOutcome,
)
from watcher.journal import (
    META_PAGES,
    META_PAGES_AT,
    SCHEMA_VERSION,
    SPEND_REFUSED,
    Journal,
    JournalError,
    SpendRefused,
    local_day,
)
from watcher.rows import JOB_COLUMNS, to_column


def new_job(tmp_path: Path, name: str = "a.pdf", content: str = "h1") -> NewJob:
    source = tmp_path / "in" / name
    source.parent.mkdir(exist_ok=True)
    source.touch()
    rule = Rule(
        "txt", "English", True, tmp_path / "out", tmp_path / "arch", tmp_path / "f", "archive"
    )
    return NewJob(
        tmp_path / "in" / name,
        tmp_path / "in",
        SourceKind.FILE,
        None,
        content,
        10,
        123,
        rule,
        f"{Path(name).stem}-tok.pdf",
    )


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    opened = Journal.in_folder(tmp_path / "state")
    yield opened
    opened.close()


def test_moves_outside_the_state_machine_are_refused(journal: Journal, tmp_path: Path) -> None:
    job = journal.add(new_job(tmp_path))
    assert job is not None
    with pytest.raises(IllegalTransition):
        journal.move(job, JobState.DONE)
    uploading = journal.move(job, JobState.UPLOADING, sent_at=1.0)
    with pytest.raises(IllegalTransition):
        journal.move(uploading, JobState.FILING)
    with pytest.raises(ValueError):
        journal.move(uploading, JobState.WAITING_FOR_RESULT, content_hash="other")


def test_a_move_is_durable_and_seen_by_a_fresh_connection(journal: Journal, tmp_path: Path) -> None:
    job = journal.add(new_job(tmp_path))
    assert job is not None
    journal.move(job, JobState.UPLOADING, sent_at=5.0, pages=3)
    reopened = Journal(journal.path)
    again = reopened.get(job.id)
    assert again is not None and again.state is JobState.UPLOADING and again.pages == 3
    assert again.may_be_at_service
    reopened.close()


def test_only_the_results_link_is_committed_without_a_sync_of_its_own(
    journal: Journal, tmp_path: Path
) -> None:
    """A move that guards a payment or a file is synced (FULL); the result's link is not
    (NORMAL: a power cut that loses it costs a poll by name), and the next write is again."""

    def level_of_last_commit() -> int:
        return int(journal._db.execute("PRAGMA synchronous").fetchone()[0])

    full, normal = 2, 1
    job = journal.add(new_job(tmp_path))
    assert job is not None and level_of_last_commit() == full
    job = journal.move(job, JobState.UPLOADING, sent_at=5.0)
    assert level_of_last_commit() == full
    job = journal.move(job, JobState.DOWNLOADING, link="https://service/doc/a.docx")
    assert level_of_last_commit() == normal
    journal.move(job, JobState.DONE, output=tmp_path / "a.docx")
    assert level_of_last_commit() == full
    other = journal.add(new_job(tmp_path, "b.pdf", "h2"))
    assert other is not None
    other = journal.move(other, JobState.UPLOADING, sent_at=6.0)
    other = journal.move(other, JobState.WAITING_FOR_RESULT)
    assert level_of_last_commit() == full
    journal.move(other, JobState.DOWNLOADING, link="https://service/doc/b.docx")
    assert level_of_last_commit() == normal
    assert journal.add(new_job(tmp_path, "c.pdf", "h3")) is not None
    assert level_of_last_commit() == full


def test_the_same_file_seen_again_is_not_a_new_job(journal: Journal, tmp_path: Path) -> None:
    assert journal.add(new_job(tmp_path)) is not None
    assert journal.add(new_job(tmp_path)) is None
    assert journal.add(new_job(tmp_path, content="h2")) is not None  # new content: new job


def test_files_journaled_together_skip_known_and_vanished_ones(
    journal: Journal, tmp_path: Path
) -> None:
    known = journal.add(new_job(tmp_path, "known.pdf", "h0"))
    vanished = new_job(tmp_path, "vanished.pdf", "h9")
    vanished.source.unlink()
    batch = [new_job(tmp_path, f"{number}.pdf", f"h{number}") for number in range(1, 4)]
    added = journal.add_many([*batch, new_job(tmp_path, "known.pdf", "h0"), vanished])
    assert [job.source.name for job in added] == ["1.pdf", "2.pdf", "3.pdf"]
    assert known is not None and all(job.id > known.id for job in added)
    reopened = Journal(journal.path)  # committed, and what add_many returned is what is stored
    assert [reopened.get(job.id) for job in added] == added
    assert reopened.counts() == {JobState.QUEUED: 4}
    reopened.close()


def test_a_file_already_moved_away_is_not_a_new_job(journal: Journal, tmp_path: Path) -> None:
    """The watcher looked at the file; a job archived it before the watcher's job was added."""
    job = journal.add(new_job(tmp_path))
    assert job is not None
    job.source.unlink()  # the job moved the original away, then recorded where it went
    journal.move(job, JobState.DROPPED, original_at="archived")
    seen_again = new_job(tmp_path)
    seen_again.source.unlink()
    assert journal.add(seen_again) is None


def test_a_twin_waits_while_the_first_copy_is_in_flight(journal: Journal, tmp_path: Path) -> None:
    first = journal.add(new_job(tmp_path, "a.pdf"))
    second = journal.add(new_job(tmp_path, "b.pdf"))
    assert first and second
    assert journal.claim().id == first.id
    assert journal.claim() is None  # b.pdf waits for a.pdf's result, to reuse it
    journal.release(first)
    journal.move(journal.get(first.id), JobState.FAILED, error="x")
    assert journal.claim().id == second.id


def test_a_twin_waits_while_the_first_copy_may_be_at_the_service(
    journal: Journal, tmp_path: Path
) -> None:
    """The first copy was sent and then lost by the service (held for the user's say): its
    twin is not sent either, or the same bytes would be paid for twice by themselves."""
    first = journal.add(new_job(tmp_path, "a.pdf"))
    second = journal.add(new_job(tmp_path, "b.pdf"))
    assert first and second
    assert journal.claim().id == first.id
    sent = journal.move(first, JobState.UPLOADING, sent_at=time.time())
    journal.release(first)
    held = journal.move(sent, JobState.HELD, hold=HoldKind.UNCERTAIN, error="lost")
    assert journal.claim() is None  # b.pdf waits for the user's decision on a.pdf
    journal.approve_resend(held, approved=True)
    assert journal.claim().id == first.id  # asked for by name (then maybe sent) first
    assert journal.claim() is None
    journal.release(first)
    journal.move(journal.get(first.id), JobState.DOWNLOADING)
    journal.move(journal.get(first.id), JobState.DONE, output=tmp_path / "a.docx")
    assert journal.claim().id == second.id  # now it reuses a.pdf's result


def test_compaction_folds_old_jobs_into_daily_totals(journal: Journal, tmp_path: Path) -> None:
    for number in range(5):
        job = journal.add(new_job(tmp_path, f"{number}.pdf", f"h{number}"))
        assert job is not None
        job = journal.move(job, JobState.UPLOADING, sent_at=1.0, pages=2, charged_on="2026-01-02")
        job = journal.move(job, JobState.DOWNLOADING, link="x")
        kept = number == 4  # after_success = keep: its file is still in the inbox
        journal.move(job, JobState.DONE, original_at=None if kept else "archived")
    assert journal.compact(older_than=time.time() + 1) == 4
    assert journal.counts() == {JobState.DONE: 1}
    assert journal.history_counts() == {JobState.DONE: 4}
    assert journal.spend(since_day="2026-01-01") == [("2026-01-02", str(tmp_path / "in"), 10)]
    assert journal.add(new_job(tmp_path, "4.pdf", "h4")) is None  # the kept file stays known


def test_a_file_sent_again_by_the_users_choice_counts_its_pages_twice(
    journal: Journal, tmp_path: Path
) -> None:
    """The service lost it after the first upload (probably charged), the user chose to send
    it again: both uploads count against the daily limit and in the spend, before and after
    compaction; a file whose pages were counted but that was never sent costs nothing."""
    today = local_day()
    job = journal.add(new_job(tmp_path, "lost.pdf", "h1"))
    assert job is not None
    job = journal.move(job, JobState.UPLOADING, sent_at=time.time(), pages=3, charged_on=today)
    job = journal.move(job, JobState.WAITING_FOR_RESULT)
    job = journal.move(job, JobState.HELD, hold=HoldKind.UNCERTAIN, error="lost")
    assert journal.pages_charged_on(today) == 3
    job = journal.approve_resend(job, approved=True)
    job = journal.move(job, JobState.QUEUED)
    job = journal.move(job, JobState.UPLOADING, sent_at=time.time(), charged_on=today)
    job = journal.move(job, JobState.DOWNLOADING, link="x")
    journal.move(job, JobState.DONE, original_at="archived")
    never_sent = journal.add(new_job(tmp_path, "removed.pdf", "h2"))
    assert never_sent is not None
    journal.move(never_sent, JobState.DROPPED, pages=50, original_at="gone")
    assert journal.pages_charged_on(today) == 6
    inbox = str(tmp_path / "in")
    assert journal.spend(since_day=today) == [(today, inbox, 6)]
    assert journal.compact(older_than=time.time() + 1) == 2
    assert journal.spend(since_day=today) == [(today, inbox, 6)]


def test_a_write_that_returns_is_committed_even_after_a_failed_commit(
    journal: Journal, tmp_path: Path
) -> None:
    """SQLite may leave a transaction open when a COMMIT fails (a full disk): the next
    write must not slip into it and look committed while it is not."""
    job = journal.add(new_job(tmp_path))
    assert job is not None
    journal._db.execute("BEGIN")  # what a COMMIT that failed can leave behind
    journal._db.execute("UPDATE jobs SET error = 'half-written' WHERE id = ?", (job.id,))
    journal.move(job, JobState.UPLOADING, sent_at=5.0)
    fresh = Journal(journal.path)  # another connection sees only what is committed
    seen = fresh.get(job.id)
    assert seen is not None and seen.state is JobState.UPLOADING and seen.error is None
    fresh.close()


def test_the_balance_a_result_brings_is_committed_with_it(journal: Journal, tmp_path: Path) -> None:
    """The last balance is what `status` and a restarted daemon show: it is written by the
    same statement as the result that reported it, and only a reported one replaces it."""
    job = journal.add(new_job(tmp_path))
    assert job is not None
    job = journal.move(job, JobState.UPLOADING, sent_at=5.0, pages=2)
    job = journal.move(job, JobState.DOWNLOADING, link="x", available_pages=998)
    assert journal.get_meta(META_PAGES) == "998"
    other_process = Journal(journal.path)
    assert other_process.get_meta(META_PAGES) == "998"
    assert float(other_process.get_meta(META_PAGES_AT) or 0) == pytest.approx(job.updated_at)
    other_process.close()
    journal.move(job, JobState.DONE, output=tmp_path / "out.pdf")
    assert Journal(journal.path).get_meta(META_PAGES) == "998"


# -- the spend invariant and the schema's versions ------------------------------------------

RELEASE_1 = Path(__file__).parent / "data" / "journal-release-1.sql"


def test_the_journal_itself_refuses_a_second_submission(journal: Journal, tmp_path: Path) -> None:
    """Even a raw UPDATE, past every check in Python, cannot submit a job again while its
    submission may be at the service: the trigger refuses it."""
    job = journal.add(new_job(tmp_path))
    assert job is not None
    job = journal.move(job, JobState.UPLOADING, sent_at=1.0, pages=2)
    assert [outcome for outcome, _, _ in journal.submissions(job.id)] == [
        SubmissionOutcome.MAY_HAVE_REACHED
    ]
    raw = sqlite3.connect(journal.path)
    raw.execute("UPDATE jobs SET state = 'queued', sent_at = NULL WHERE id = ?", (job.id,))
    raw.commit()
    with pytest.raises(sqlite3.IntegrityError, match=SPEND_REFUSED):
        raw.execute("UPDATE jobs SET state = 'uploading' WHERE id = ?", (job.id,))
    raw.close()
    queued = journal.get(job.id)
    assert queued is not None
    with pytest.raises(SpendRefused):
        journal.move(queued, JobState.UPLOADING, sent_at=2.0)


def test_a_file_another_station_sent_is_journaled_as_sent_in_one_commit(
    journal: Journal, tmp_path: Path
) -> None:
    """A station taking over a file another station may have sent records it waiting for
    its result, never queued (a queued job is sent): one commit, with its submission."""
    taken_over = new_job(tmp_path)
    job = journal.add_sent(taken_over, sent_at=5.0)
    assert job is not None and job.state is JobState.WAITING_FOR_RESULT
    fresh = Journal.in_folder(tmp_path / "state")
    again = fresh.get(job.id)
    assert again is not None and again.state is JobState.WAITING_FOR_RESULT
    assert again.sent_at == 5.0 and again.charged_on == local_day(5.0)
    assert [o for o, _, _ in fresh.submissions(job.id)] == [SubmissionOutcome.MAY_HAVE_REACHED]
    fresh.close()
    assert journal.add_sent(taken_over, sent_at=6.0) is None  # known already
    taken_over.source.unlink()
    assert journal.add_sent(dataclasses.replace(taken_over, content_hash="h2"), 7.0) is None


def test_a_submission_closed_as_never_sent_may_be_sent_again(
    journal: Journal, tmp_path: Path
) -> None:
    job = journal.add(new_job(tmp_path))
    assert job is not None
    for _ in range(MAX_CUT_BEFORE_SENT - 1):
        job = journal.move(job, JobState.UPLOADING, sent_at=1.0)
        job, _cuts = journal.close_submission(
            job, SubmissionOutcome.CUT_BEFORE_SENT, JobState.QUEUED
        )
        assert job.state is JobState.QUEUED and not job.may_be_at_service
    job = journal.move(job, JobState.UPLOADING, sent_at=1.0)
    job, cuts = journal.close_submission(job, SubmissionOutcome.CUT_BEFORE_SENT, JobState.QUEUED)
    assert cuts == MAX_CUT_BEFORE_SENT
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN
    job = journal.approve_resend(job)  # the user's say
    assert job.state is JobState.WAITING_FOR_RESULT and job.hold is None


def test_a_move_to_held_must_say_why(journal: Journal, tmp_path: Path) -> None:
    job = journal.add(new_job(tmp_path))
    assert job is not None
    with pytest.raises(ValueError, match="must say why"):
        journal.move(job, JobState.HELD, error="x")


def test_a_journal_written_by_release_1_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(RELEASE_1.read_text())
    old.close()
    journal = Journal(path)
    try:
        assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        by_name = {job.source.name: job for job in journal.jobs()}
        assert by_name["done.pdf"].state is JobState.DONE
        assert by_name["done.pdf"].output == Path("/home/u/PDFOCR/outbox/done.docx")
        assert journal.get_meta(META_PAGES) == "998"
        held = by_name["held.pdf"]
        assert held.state is JobState.HELD and held.hold is HoldKind.BUDGET
        waiting = by_name["waiting.pdf"]
        assert [o for o, _, _ in journal.submissions(waiting.id)] == [
            SubmissionOutcome.MAY_HAVE_REACHED
        ]
        assert journal.pages_charged_on("2026-11-20") == 5
        # What it knew survives: the job sent before the upgrade is never sent again by
        # itself, even when something (here raw SQL) puts it back in the queue.
        journal._db.execute("UPDATE jobs SET state = 'queued' WHERE id = ?", (waiting.id,))
        requeued = journal.get(waiting.id)
        assert requeued is not None
        with pytest.raises(SpendRefused):
            journal.move(requeued, JobState.UPLOADING)
    finally:
        journal.close()
    assert Journal(path)._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_the_migrated_schema_has_a_column_for_each_field_of_the_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    try:
        columns = {row[1] for row in journal._db.execute("PRAGMA table_info(jobs)")}
    finally:
        journal.close()
    assert columns == set(JOB_COLUMNS)


def test_every_field_of_a_job_comes_back_from_the_journal_as_it_went_in(tmp_path: Path) -> None:
    """Each field with a value unlike its default, through a real SQLite file and back: a
    type the row mapping reads wrongly (a path, an enum, a flag, a name that is no UTF-8)
    shows here."""
    rule = Rule("xlsx", "French", False, Path("/o"), Path("/a"), Path("/f"), "delete")
    job = Job(
        id=7,
        source=Path(os.fsdecode(b"/in/caf\xe9.pdf")),
        inbox=Path("/in"),
        kind=SourceKind.URL,
        url="https://example.com/x.pdf",
        content_hash="c" * 64,
        size=12,
        mtime_ns=34,
        rule=rule,
        state=JobState.HELD,
        remote_name="x-1.pdf",
        created_at=1.5,
        updated_at=2.5,
        pages=3,
        sent_at=4.5,
        link="https://example.com/result",
        output=Path("/o/x.xlsx"),
        attempts=2,
        not_before=5.5,
        error="why",
        available_pages=99,
        original_at="/a/x.pdf",
        charged_on="2026-12-01",
        held_until=6.5,
        approved=True,
        hold=HoldKind.UNCERTAIN,
        output_hash="d" * 64,
        inode=8,
    )
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    db = sqlite3.connect(path)
    rule_fields = {item.name for item in dataclasses.fields(Rule)}
    values = [to_column(getattr(rule if n in rule_fields else job, n)) for n in JOB_COLUMNS]
    marks = ", ".join("?" for _ in JOB_COLUMNS)
    with db:
        db.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})", values)
    db.close()
    journal = Journal(path)
    try:
        back = journal.get(7)
    finally:
        journal.close()
    assert back == job
    # == takes 1 for True and "held" for JobState.HELD: the types must match as well.
    for record, original in ((back, job), (back and back.rule, rule)):
        for item in dataclasses.fields(original):
            name = item.name
            assert type(getattr(record, name)) is type(getattr(original, name)), name


def test_a_journal_from_a_newer_release_is_refused_in_words(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(JournalError, match="newer pdfocr-watcher"):
        Journal(path)


def test_the_journal_is_readable_by_its_user_only(journal: Journal) -> None:
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600


def test_two_processes_opening_an_old_journal_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(RELEASE_1.read_text())
    old.close()
    script = (
        "import sys; from watcher.journal import Journal; "
        "j = Journal(sys.argv[1]); print(len(j.jobs())); j.close()"
    )
    openers = [
        subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [opener.communicate(timeout=30)[0].strip() for opener in openers]
    assert [opener.returncode for opener in openers] == [0] * 4
    assert outputs == [b"4"] * 4
    journal = Journal(path)
    assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    journal.close()


def test_compaction_keeps_what_stops_a_second_payment(journal: Journal, tmp_path: Path) -> None:
    """A failed job whose original could not leave the inbox keeps it from being taken as
    new; the digest of a folded result still marks copies of it as our own."""
    stuck = journal.add(new_job(tmp_path, "stuck.pdf", "h-stuck"))
    done = journal.add(new_job(tmp_path, "done.pdf", "h-done"))
    assert stuck is not None and done is not None
    stuck = journal.move(stuck, JobState.UPLOADING, sent_at=1.0)
    journal.move(stuck, JobState.WAITING_FOR_RESULT)
    journal.move(journal.get(stuck.id), JobState.FAILED, error="no result")
    done = journal.move(done, JobState.UPLOADING, sent_at=1.0)
    done = journal.move(done, JobState.DOWNLOADING, link="x")
    journal.move(done, JobState.DONE, original_at="/archive/done.pdf", output_hash="h-result")
    assert journal.compact(older_than=time.time() + 1) == 1
    assert [job.source.name for job in journal.jobs()] == ["stuck.pdf"]
    copy = new_job(tmp_path, "copy.pdf", "h-result")
    assert journal.add(copy) is None  # a copy of the folded job's result, same format


def test_moves_asked_for_at_once_are_committed_together_each_with_its_own_outcome(
    journal: Journal, tmp_path: Path
) -> None:
    added = [journal.add(new_job(tmp_path, f"g{n}.pdf", f"h{n}")) for n in range(6)]
    jobs = [job for job in added if job is not None]
    stale = jobs[0]
    journal.move(stale, JobState.DROPPED, error="gone")  # the copy below is out of date
    outcomes: dict[int, object] = {}

    def move(job: Job) -> None:
        try:
            outcomes[job.id] = journal.move(job, JobState.FAILED, error=f"e{job.id}").state
        except RuntimeError as exc:
            outcomes[job.id] = exc

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert condition()

    threads = [threading.Thread(target=move, args=(job,)) for job in [*jobs[1:], stale]]
    with journal._lock:  # the writer is busy: the first move waits, the others queue up
        threads[0].start()
        until(lambda: journal._committing)
        for thread in threads[1:]:
            thread.start()
        until(lambda: len(journal._pending) == len(jobs) - 1)  # they go in as one group
    for thread in threads:
        thread.join(30)
    assert isinstance(outcomes[stale.id], RuntimeError)  # refused alone...
    assert [outcomes[job.id] for job in jobs[1:]] == [JobState.FAILED] * 5  # ...the rest kept
    reopened = Journal(journal.path)
    try:
        on_disk = {job.id: (job.state, job.error) for job in reopened.jobs()}
    finally:
        reopened.close()
    assert on_disk[stale.id] == (JobState.DROPPED, "gone")
    assert all(on_disk[job.id] == (JobState.FAILED, f"e{job.id}") for job in jobs[1:])
