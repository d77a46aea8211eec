"""Exactly once at the edges: a real daemon against a real sandbox that misbehaves as a real
service could (names registered late, jobs lost after a 524, a service that goes away and
comes back without its memory), and folders that loop results back into an inbox. Each of
these once turned into an endless loop of paid uploads; the ledger says none does now."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from test_daemon import MakeDaemon, files_in, wait_for, write_rules

from watcher import samplepdf
from watcher.jobs import HoldKind, JobState
from watcher.sandbox import Sandbox


def rules_with(tmp_path: Path, box: Sandbox, **api: object) -> Path:
    rules = write_rules(tmp_path, box)
    lines = "".join(f"{key} = {value}\n" for key, value in api.items())
    rules.write_text(rules.read_text().replace("concurrency = 2\n", f"concurrency = 2\n{lines}"))
    return rules


def drop(tmp_path: Path, *names: str, inbox: str = "to-text") -> None:
    for name in names:
        samplepdf.write_pdf(tmp_path / "inbox" / inbox / name, [f"text of {name}"])


def test_names_registered_late_are_waited_for_and_charged_once(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=0.2, cut_after=0.1, late_names=1.0)
    daemon = make_daemon(rules_with(tmp_path, box, lost_after=5))
    drop(tmp_path, "a.pdf", "b.pdf", "c.pdf")
    wait_for(lambda: files_in(tmp_path / "outbox") == ["a.txt", "b.txt", "c.txt"], what="all")
    assert len(box.ledger()) == 3
    assert [job.state for job in daemon.journal.jobs()] == [JobState.DONE] * 3


def test_a_job_lost_after_a_524_is_held_charged_once_and_sent_again_only_on_resume(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=0.2, cut_after=0.1, lose_after_cut=1.0)
    daemon = make_daemon(rules_with(tmp_path, box, lost_after=0.5))
    drop(tmp_path, "lost.pdf")
    wait_for(lambda: daemon.journal.counts().get(JobState.HELD) == 1, what="held")
    (job,) = daemon.journal.jobs()
    assert job.hold is HoldKind.UNCERTAIN
    assert job.error and "no longer knows it" in job.error
    time.sleep(1.5)  # nothing is sent again by itself
    assert len(box.ledger()) == 1
    assert files_in(tmp_path / "inbox" / "to-text") == ["lost.pdf"]  # nothing is lost
    snapshot = daemon.snapshot()
    assert snapshot.held and "lost.pdf" not in (snapshot.last_failure or "")
    box.lose_after_cut = 0.0
    daemon.resume()  # the user's say
    wait_for(lambda: files_in(tmp_path / "outbox") == ["lost.txt"], what="sent again")
    assert len(box.ledger()) == 2
    assert len({charge.filename for charge in box.ledger()}) == 2, "a new name the 2nd time"


def test_a_service_losing_several_jobs_stops_the_queue(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=0.2, cut_after=0.1, lose_after_cut=1.0)
    daemon = make_daemon(rules_with(tmp_path, box, lost_after=0.3))
    daemon.pause(None)
    drop(tmp_path, *(f"f{n}.pdf" for n in range(6)))
    wait_for(lambda: daemon.snapshot().queued == 6, what="queued")
    daemon.unpause()
    wait_for(lambda: "lost 3 conversions" in (daemon.snapshot().held or ""), what="breaker")
    time.sleep(1.0)
    charged = len(box.ledger())
    assert 3 <= charged <= 4  # the breaker trips at the third; the other worker's may be out
    time.sleep(1.0)
    assert len(box.ledger()) == charged, "nothing more is sent while the queue is held"
    assert daemon.journal.counts().get(JobState.QUEUED, 0) >= 2


def test_a_service_that_comes_back_without_its_memory_is_not_paid_again(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=1.0, cut_after=0.1)
    daemon = make_daemon(rules_with(tmp_path, box, lost_after=0.5))
    drop(tmp_path, "doc.pdf")
    wait_for(lambda: box.ledger(), what="sent")
    box.go_away()
    time.sleep(0.3)
    box.come_back(keep_memory=False)
    wait_for(lambda: daemon.journal.counts().get(JobState.HELD) == 1, what="held")
    time.sleep(1.0)
    assert len(box.ledger()) == 1


def test_a_sync_tool_copying_results_back_into_the_inbox_is_not_a_paid_loop(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """An outbox that feeds an inbox (here a "sync tool" hard-linking every result into it,
    as a second mount of one share would show it) with outformat pdf: our own result comes
    back as a PDF in the inbox, and is not converted again."""
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace('outformat = "txt"', 'outformat = "pdf"'))
    make_daemon(rules)
    inbox, outbox = tmp_path / "inbox" / "to-text", tmp_path / "outbox"
    stop = threading.Event()

    def sync_tool() -> None:
        while not stop.wait(0.05):
            for result in outbox.glob("*.pdf") if outbox.exists() else []:
                target = inbox / f"synced-{result.name}"
                if not target.exists():
                    os.link(result, target)

    syncing = threading.Thread(target=sync_tool, daemon=True)
    syncing.start()
    try:
        drop(tmp_path, "scan.pdf")
        wait_for(lambda: (inbox / "synced-scan.pdf").exists(), what="synced back")
        time.sleep(2.0)  # settle time and more: it would have been sent by now
    finally:
        stop.set()
        syncing.join()
    assert len(sandbox.ledger()) == 1
    assert files_in(outbox) == ["scan.pdf"]


def test_a_copy_of_our_result_in_an_inbox_of_its_format_is_not_converted_again(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """A second mount of one share shows the outbox's files under another device number,
    and a sync tool copies them: no inode matches. Their content does."""
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace('outformat = "txt"', 'outformat = "pdf"'))
    daemon = make_daemon(rules)
    inbox, outbox = tmp_path / "inbox" / "to-text", tmp_path / "outbox"
    drop(tmp_path, "scan.pdf")
    wait_for(lambda: (outbox / "scan.pdf").exists(), what="converted")
    shutil.copyfile(outbox / "scan.pdf", inbox / "copy-of-scan.pdf")
    time.sleep(1.5)  # settle time and more
    assert len(sandbox.ledger()) == 1
    assert len(daemon.journal.jobs()) == 1
    assert (inbox / "copy-of-scan.pdf").exists()  # left alone, not lost


def test_retry_failed_leaves_files_the_service_may_have_to_the_user(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys
) -> None:
    from watcher.cli import main

    box = make_sandbox(seconds_per_page=0.2, cut_after=0.1, lose_after_cut=1.0)
    rules = rules_with(tmp_path, box, lost_after=0.3)
    daemon = make_daemon(rules)
    drop(tmp_path, "lost.pdf")
    wait_for(lambda: daemon.journal.counts().get(JobState.HELD) == 1, what="held")
    daemon.stop()
    capsys.readouterr()
    main(["retry", "--failed", "--config", str(rules)])
    said = capsys.readouterr().out
    assert "left alone" in said and "pdfocr-watcher retry 1" in said
    (job,) = daemon.journal.jobs()
    assert job.state is JobState.HELD and job.hold is HoldKind.UNCERTAIN


def test_the_breaker_holds_through_a_rules_edit_and_a_restart(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=0.2, cut_after=0.1, lose_after_cut=1.0)
    rules = rules_with(tmp_path, box, lost_after=0.3)
    daemon = make_daemon(rules)
    drop(tmp_path, *(f"f{n}.pdf" for n in range(5)))
    wait_for(lambda: "lost 3 conversions" in (daemon.snapshot().held or ""), what="breaker")
    rules.write_text(rules.read_text().replace("poll_interval = 0.1", "poll_interval = 0.2"))
    daemon.reload_rules()  # an edit of [api] resumes an account hold, not the breaker
    assert "lost 3 conversions" in (daemon.snapshot().held or "")
    daemon.stop()
    daemon.close()
    again = make_daemon(rules)
    assert "lost 3 conversions" in (again.snapshot().held or "")
    charged = len(box.ledger())
    time.sleep(1.0)
    assert len(box.ledger()) == charged
    box.lose_after_cut = 0.0
    again.resume()  # the user's say: the queue goes on, the lost files are sent again
    wait_for(lambda: len(files_in(tmp_path / "outbox")) == 5, timeout=30, what="all five")


def test_a_retry_after_max_wait_asks_again_and_is_not_paid_twice(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """No result within max_wait: failed with advice. The user's retry asks the service
    again with a fresh wait (the first wait's clock is not carried over) and gets the
    result the first upload paid for."""
    box = make_sandbox(seconds_per_page=2.0, cut_after=0.1)
    daemon = make_daemon(rules_with(tmp_path, box, max_wait=0.5))
    drop(tmp_path, "slow.pdf")
    wait_for(lambda: daemon.journal.counts().get(JobState.FAILED) == 1, what="failed")
    (job,) = daemon.journal.jobs()
    assert job.error and "no result within" in job.error
    time.sleep(2.0)  # the service finishes meanwhile; the upload is now 4 max_waits old
    assert daemon.retry_failed() == 1  # the tray's "Retry failed"
    wait_for(lambda: (tmp_path / "outbox" / "slow.txt").exists(), what="the paid result")
    assert len(box.ledger()) == 1
