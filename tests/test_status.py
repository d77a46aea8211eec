"""The status board and the queue's holds: pure state, no threads, no daemon."""

from __future__ import annotations

import math
from pathlib import Path

from watcher.errors import AccountError, CreditError, EndpointMoved, ServiceLosingJobs
from watcher.holds import HOLD_RETRY_SECONDS, QueueHolds
from watcher.jobs import Job, JobState, Rule, SourceKind
from watcher.status import OFFLINE_NOTICE_SECONDS, Notice, NoticeKind, StatusBoard

RULE = Rule("docx", "English", True, Path("/o"), Path("/a"), Path("/f"), "archive")


def job(
    number: int, state: JobState, *, output: str | None = None, error: str | None = None
) -> Job:
    return Job(
        id=number,
        source=Path(f"/in/file{number}.pdf"),
        inbox=Path("/in"),
        kind=SourceKind.FILE,
        url=None,
        content_hash="h",
        size=1,
        mtime_ns=1,
        rule=RULE,
        state=state,
        remote_name=f"r{number}.pdf",
        created_at=1.0,
        updated_at=float(number),
        output=Path(output) if output else None,
        error=error,
    )


def board_with_notices() -> tuple[StatusBoard, list[Notice]]:
    board = StatusBoard()
    told: list[Notice] = []
    board.add_notice_listener(told.append)
    return board, told


def test_a_batch_summary_counts_only_converted_files_as_converted() -> None:
    board, told = board_with_notices()
    board.arrived(4)
    board.finished(job(1, JobState.DONE, output="/o/file1.docx"), queue_empty=lambda: False)
    board.finished(job(2, JobState.DROPPED), queue_empty=lambda: False)
    board.finished(job(3, JobState.DROPPED), queue_empty=lambda: False)
    assert [n.kind for n in told] == []  # one file is still on its way
    board.finished(job(4, JobState.FAILED, error="damaged"), queue_empty=lambda: True)
    kinds = [n.kind for n in told]
    assert kinds == [NoticeKind.FILE_FAILED, NoticeKind.BATCH_DONE]
    assert told[-1].message == (
        "1 file converted, 1 failed, 2 not converted here (removed, changed or taken by another PC)"
    )
    view = board.view()
    assert (view.done, view.total, view.unseen_failures) == (4, 4, 1)
    assert view.last_failure == "file4.pdf: damaged"
    assert [r.name for r in view.recent] == ["file1.pdf"]


def test_a_batch_with_nothing_converted_is_told_by_its_failure_alone() -> None:
    board, told = board_with_notices()
    board.arrived(1)
    board.finished(job(1, JobState.FAILED, error="damaged"), queue_empty=lambda: True)
    assert [n.kind for n in told] == [NoticeKind.FILE_FAILED]


def test_the_batch_is_not_over_while_the_journal_still_has_work() -> None:
    board, told = board_with_notices()
    board.arrived(1)
    board.finished(job(1, JobState.DONE, output="/o/x.docx"), queue_empty=lambda: False)
    assert not told  # a twin of the file is still queued: no "batch finished" yet


def test_a_new_batch_starts_once_the_last_one_is_over() -> None:
    board, _ = board_with_notices()
    board.arrived(2)
    board.finished(job(1, JobState.DONE, output="/o/1.docx"), queue_empty=lambda: False)
    board.arrived(1)  # the batch is not over: the new file joins it
    assert (board.view().done, board.view().total) == (1, 3)
    board.finished(job(2, JobState.DONE, output="/o/2.docx"), queue_empty=lambda: False)
    board.finished(job(3, JobState.DONE, output="/o/3.docx"), queue_empty=lambda: True)
    board.arrived(1)
    assert (board.view().done, board.view().total) == (0, 1)


def test_files_another_station_took_end_the_batch_as_not_converted_here() -> None:
    board, told = board_with_notices()
    board.arrived(3)  # one journaled, two waiting in a shared inbox
    board.finished(job(1, JobState.DONE, output="/o/1.docx"), queue_empty=lambda: False)
    assert not told
    board.passed_over(2, queue_empty=lambda: True)
    assert [n.message for n in told] == [
        "1 file converted, 2 not converted here (removed, changed or taken by another PC)"
    ]
    assert (board.view().done, board.view().total) == (3, 3)


def test_failures_are_unseen_until_acknowledged() -> None:
    board, _ = board_with_notices()
    board.failed_before_journal("locked.pdf: it cannot be read (permission denied)")
    assert board.view().unseen_failures == 1
    board.acknowledge_failures()
    assert board.view().unseen_failures == 0
    assert board.view().last_failure == "locked.pdf: it cannot be read (permission denied)"


def test_listeners_get_a_snapshot_only_when_there_is_one() -> None:
    board = StatusBoard()
    built: list[int] = []

    def snapshot() -> object:
        built.append(1)
        return object()

    board.publish(snapshot)  # type: ignore[arg-type]
    assert built == []  # nobody listens: nothing is built (a burst has many changes)
    seen: list[object] = []
    board.add_listener(seen.append)  # type: ignore[arg-type]
    board.publish(snapshot)  # type: ignore[arg-type]
    assert len(built) == len(seen) == 1


def test_a_broken_listener_does_not_stop_the_others() -> None:
    board, told = board_with_notices()

    def broken(_: Notice) -> None:
        raise RuntimeError("tray gone")

    board.add_notice_listener(broken)
    board.add_notice_listener(told.append)
    board.tell(NoticeKind.HELD, "Held", "why")
    assert len(told) == 2


def test_service_outage_and_credit_are_news_once() -> None:
    now = [100.0]
    board = StatusBoard(clock=lambda: now[0])
    told: list[Notice] = []
    board.add_notice_listener(told.append)
    assert board.service_state("timed out") is True
    assert board.service_state("timed out") is False
    now[0] += OFFLINE_NOTICE_SECONDS - 1
    board.tell_long_outage()
    assert told == []  # not out for five minutes yet
    now[0] += 2
    board.tell_long_outage()
    board.tell_long_outage()
    assert [n.kind for n in told] == [NoticeKind.OFFLINE]
    assert "timed out" in told[0].message
    told.clear()
    assert board.credit_state(low=True) is True
    assert board.credit_state(low=True) is False
    assert board.credit_state(low=False) is False
    assert board.credit_state(low=True) is True  # fell again after credit was bought
    assert board.config_state("bad line 3") is True
    assert board.config_state("bad line 3") is False
    assert board.view().config_error == "bad line 3"
    assert board.config_state(None) is True


# -- holds ------------------------------------------------------------------------------------


def test_the_breaker_is_lifted_only_by_the_user_and_keeps_its_words() -> None:
    holds = QueueHolds()
    started = holds.hold(ServiceLosingJobs("3 files lost"), None)
    assert started is not None and started.breaker and started.first
    assert "Resume queue" in started.reason
    assert holds.hold(AccountError("bad key"), None) is None  # the breaker's words stay
    assert holds.lift(by_user=False) is None
    assert holds.held
    assert holds.lift(by_user=True) is True
    assert not holds.held
    assert holds.lift(by_user=True) is False


def test_only_a_credit_hold_is_retried_by_the_clock() -> None:
    now = [100.0]
    holds = QueueHolds(clock=lambda: now[0])
    holds.hold(EndpointMoved("the API moved"), Path("/rules.toml"))
    assert not holds.retry_due()
    holds.lift(by_user=False)
    started = holds.hold(CreditError("no pages left"), None)
    assert started is not None and "every 10 minutes" in started.reason
    now[0] += HOLD_RETRY_SECONDS - 1
    assert not holds.retry_due()
    now[0] += 2
    assert holds.retry_due()


def test_a_bad_key_hold_names_the_rules_file() -> None:
    started = QueueHolds().hold(AccountError("invalid key"), Path("/home/me/rules.toml"))
    assert started is not None and "/home/me/rules.toml" in started.reason


def test_pause_until_resumed_and_until_a_time() -> None:
    holds = QueueHolds()
    assert holds.paused_until is None
    holds.pause(None)
    assert holds.paused_until == math.inf
    holds.pause(1000.0)
    assert holds.paused_until == 1000.0
    assert holds.unpause() is True
    assert holds.unpause() is False
