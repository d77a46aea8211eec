"""The daemon while it runs: the credit guard, the daily limit, pauses, live rules, notices."""

from __future__ import annotations

import json
import time
from pathlib import Path

from test_daemon import files_in, wait_for, write_rules

from watcher import samplepdf
from watcher.cli import main
from watcher.sandbox import Sandbox
from watcher.status import Notice, NoticeKind


def pages(count: int) -> list[str]:
    return [f"page {number}" for number in range(1, count + 1)]


def test_a_file_larger_than_the_balance_is_held_and_costs_nothing(
    make_sandbox, tmp_path: Path, make_daemon
) -> None:
    box: Sandbox = make_sandbox(credits=21)
    daemon = make_daemon(write_rules(tmp_path, box))
    inbox = tmp_path / "inbox" / "to-word"
    samplepdf.write_pdf(inbox / "first.pdf", pages(1))  # teaches the daemon the balance: 20
    wait_for(lambda: daemon.snapshot().available_pages == 20, what="balance known")
    samplepdf.write_pdf(inbox / "big.pdf", pages(30))
    wait_for(lambda: daemon.snapshot().held, what="held")
    snapshot = daemon.snapshot()
    assert "30 pages and the account has 20 left" in (snapshot.held or "")
    assert [c.pages for c in box.ledger()] == [1]
    assert files_in(inbox) == ["big.pdf"] and files_in(tmp_path / "failed") == []
    box.available_pages = 100  # the user buys credit, then chooses Resume
    daemon.resume()
    wait_for(lambda: (tmp_path / "outbox" / "big.docx").exists(), what="sent after resume")
    assert [c.pages for c in box.ledger()] == [1, 30]


def test_the_daily_limit_holds_files_beyond_the_days_budget(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    rules = write_rules(tmp_path, sandbox, extra="[credits]\ndaily_page_limit = 3\n")
    daemon = make_daemon(rules)
    inbox = tmp_path / "inbox" / "to-text"
    samplepdf.write_pdf(inbox / "a.pdf", pages(2))
    wait_for(lambda: (tmp_path / "outbox" / "a.txt").exists(), what="a converted")
    samplepdf.write_pdf(inbox / "b.pdf", ["other", "content"])
    wait_for(lambda: daemon.snapshot().held, what="b held")
    assert "today's page limit (3)" in (daemon.snapshot().held or "")
    assert [c.pages for c in sandbox.ledger()] == [2]
    daemon.resume()
    wait_for(lambda: (tmp_path / "outbox" / "b.txt").exists(), what="b sent after resume")
    assert [c.pages for c in sandbox.ledger()] == [2, 2]


def test_status_shows_pages_per_day_and_inbox_with_estimated_spend(
    sandbox: Sandbox, tmp_path: Path, make_daemon, capsys
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "x.pdf", pages(4))
    wait_for(lambda: daemon.snapshot().last_conversion_at, what="converted")
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(rules)]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["pages_sent"]
    assert row["pages"] == 4 and row["inbox"].endswith("to-text")
    assert row["day"] == time.strftime("%Y-%m-%d")
    assert row["estimated_cost_usd"] == [0.03, 0.16]  # 4 pages at $0.008 and $0.04
    assert report["available_pages"] == 996


def test_the_tray_lists_the_latest_results_newest_first_across_restarts(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    inbox = tmp_path / "inbox" / "to-text"
    for name in ("first", "second"):
        samplepdf.write_pdf(inbox / f"{name}.pdf", [name])
        wait_for(lambda: (tmp_path / "outbox" / f"{name}.txt").exists(), what=name)  # noqa: B023
    newest_first = [(c.name, c.output.name) for c in daemon.snapshot().recent]
    assert newest_first == [("second.pdf", "second.txt"), ("first.pdf", "first.txt")]
    daemon.stop()
    daemon.close()
    again = make_daemon(rules)  # a new process reads them back from the journal
    assert [(c.name, c.output.name) for c in again.snapshot().recent] == newest_first
    assert again.snapshot().last_conversion_at == again.snapshot().recent[0].finished_at


def test_a_pause_keeps_files_queued_until_it_ends(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    daemon = make_daemon(write_rules(tmp_path, sandbox))
    daemon.pause(time.time() + 1.5)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "later.pdf", ["later"])
    wait_for(lambda: daemon.snapshot().queued == 1, what="queued while paused")
    assert daemon.snapshot().paused_until is not None
    assert sandbox.ledger() == []
    wait_for(lambda: (tmp_path / "outbox" / "later.txt").exists(), what="sent after the pause")
    assert daemon.snapshot().paused_until is None


def test_an_inbox_added_while_running_is_watched(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    new_inbox = tmp_path / "inbox" / "to-slides"
    new_inbox.mkdir()
    rules.write_text(rules.read_text() + f'\n[[inbox]]\npath = "{new_inbox}"\noutformat = "pptx"\n')
    wait_for(lambda: len(daemon.snapshot().inboxes) == 3, what="rules reloaded")
    samplepdf.write_pdf(new_inbox / "deck.pdf", ["Slide one"])
    wait_for(lambda: (tmp_path / "outbox" / "deck.pptx").exists(), what="deck.pptx")


def test_one_notice_per_batch_and_one_per_failure(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    daemon = make_daemon(write_rules(tmp_path, sandbox))
    notices: list[Notice] = []
    daemon.add_notice_listener(notices.append)
    inbox = tmp_path / "inbox" / "to-text"
    daemon.pause(None)  # one batch: all four are queued before any is sent
    for name in ("one", "two", "three"):
        samplepdf.write_pdf(inbox / f"{name}.pdf", [name])
    (inbox / "bad.pdf").write_text("not a pdf")
    wait_for(lambda: daemon.snapshot().queued == 4, what="all queued")
    daemon.unpause()
    wait_for(lambda: any(n.kind is NoticeKind.BATCH_DONE for n in notices), what="batch done")
    time.sleep(0.5)
    kinds = [n.kind for n in notices]
    assert kinds.count(NoticeKind.BATCH_DONE) == 1
    assert kinds.count(NoticeKind.FILE_FAILED) == 1
    summary = next(n for n in notices if n.kind is NoticeKind.BATCH_DONE).message
    assert summary == "3 files converted, 1 failed"
    assert daemon.snapshot().unseen_failures == 1
    daemon.acknowledge_failures()
    assert daemon.snapshot().unseen_failures == 0
