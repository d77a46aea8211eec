"""The CLI's rough edges, each found by a new user (issue 15): options where README says
they go, a quiet end when the reader goes away, counts and reasons in words, each failure
logged once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_daemon import wait_for, write_rules

from watcher import samplepdf
from watcher.cli import EXIT_BROKEN_PIPE, EXIT_OK, main
from watcher.daemon import Daemon
from watcher.errors import FileRejected
from watcher.jobs import JobState
from watcher.journal import META_PAGES, Journal
from watcher.preflight import Budget, budget_hold, inspect_file
from watcher.sandbox import Sandbox
from watcher.status import Notice, NoticeKind
from watcher.wording import count

MakeDaemon = Callable[..., Daemon]
ROOT = Path(__file__).resolve().parent.parent


def test_config_and_verbose_go_before_the_command_or_after_it(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: "Every command takes --config PATH"; before the command it was refused."""
    rules = write_rules(tmp_path, sandbox)
    for argv in (
        ["--config", str(rules), "check"],
        ["-v", "--config", str(rules), "check"],
        ["check", "--config", str(rules)],
        ["--config", str(tmp_path / "missing.toml"), "check", "--config", str(rules)],
    ):
        assert main(argv) == EXIT_OK, argv
        assert capsys.readouterr().out.startswith(f"{rules}: valid."), argv
    assert main(["--config", str(rules), "status"]) == EXIT_OK
    assert "No journal yet at" in capsys.readouterr().out


def test_a_reader_that_goes_away_ends_the_output_quietly(sandbox: Sandbox, tmp_path: Path) -> None:
    """`status | head`: the reader closes the pipe; no BrokenPipeError traceback follows."""
    rules = write_rules(tmp_path, sandbox)
    Journal.in_folder(tmp_path / "state").close()
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before the first line is written
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "watcher", "--config", str(rules), "status"],
            stdout=writer,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr.decode() == ""
    assert done.returncode == EXIT_BROKEN_PIPE


def test_counts_are_said_in_words() -> None:
    assert [count(n, "page") for n in (0, 1, 2, 1960)] == [
        "0 pages",
        "1 page",
        "2 pages",
        "1,960 pages",
    ]
    assert count(1, "held file") == "1 held file"
    hold = budget_hold(1, Budget(None, 1, 1), job_id=7)
    assert hold is not None
    assert hold.reason.startswith(
        "today's page limit (1) would be passed: 1 page was sent today and this file has 1 page."
    )
    assert "`pdfocr-watcher retry 7`" in hold.reason


def test_a_one_page_conversion_says_1_page(
    make_sandbox: Callable[..., Sandbox],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the real one-shot `convert` on the sandbox: the log line of the result and
    the credit left both count in words ("1 page", never "1 pages" or "1 page(s)")."""
    box = make_sandbox(credits=2)
    rules = write_rules(tmp_path, box)
    scan = samplepdf.write_pdf(tmp_path / "scan.pdf", ["only page"])
    argv = ["convert", str(scan), "--to", "txt", "--config", str(rules), "--outdir", str(tmp_path)]
    assert main(argv) == EXIT_OK
    said = capsys.readouterr()
    assert "(1 page, sent as " in said.err
    assert said.out.rstrip().endswith("; 1 page left")
    assert "(s)" not in said.out + said.err and "1 pages" not in said.out + said.err


def test_reasons_show_no_python_internals(tmp_path: Path) -> None:
    """A non-PDF is described ("a web page (HTML)"), never shown as b'<!DOCTYP'; a damaged
    PDF is not named by pypdf's exception class."""
    kinds = {
        "page.pdf": (b"<!DOCTYPE html><html></html>", "a web page (HTML)"),
        "notes.pdf": (b"just some notes\n", "plain text"),
        "book.pdf": (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
        "junk.pdf": (b"\x00\x01\x02\xfe\xff junk", "of an unknown kind"),
    }
    whole = samplepdf.make_pdf(["x"])
    reasons = []
    for name, (content, words) in kinds.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(FileRejected) as refused:
            inspect_file(tmp_path / name)
        assert words in refused.value.message, name
        reasons.append(refused.value.message)
    (tmp_path / "damaged.pdf").write_bytes(whole[:20] + b"\0" * 200 + whole[-40:])
    with pytest.raises(FileRejected) as refused:
        inspect_file(tmp_path / "damaged.pdf")
    reasons.append(refused.value.message)
    for reason in reasons:
        assert "b'" not in reason and "\\x" not in reason and "Error" not in reason, reason


def test_each_failure_and_hold_is_logged_once(
    sandbox: Sandbox,
    tmp_path: Path,
    make_daemon: MakeDaemon,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The runner logged a failure, then the daemon logged its notice of it again; the same
    for a held file. Now each is in the log once, a locally refused file's reason file says
    nothing was sent, and the batch summary counts in words."""
    caplog.set_level(logging.INFO)
    rules = write_rules(tmp_path, sandbox)
    journal = Journal.in_folder(tmp_path / "state")
    journal.set_meta(META_PAGES, "2")  # the last balance the service reported
    journal.close()
    inbox = tmp_path / "inbox" / "to-word"
    (inbox / "empty.pdf").write_bytes(b"")
    samplepdf.write_pdf(
        inbox / "good.pdf", ["fine"]
    )  # a batch with nothing converted has no summary
    daemon = make_daemon(rules)
    reason_file = tmp_path / "failed" / "empty.pdf.error.txt"
    wait_for(reason_file.exists, what="the empty file filed with its reason")
    wait_for(
        lambda: any("Batch finished" in r.getMessage() for r in caplog.records),
        what="the batch summary",
    )
    daemon.journal.set_meta(META_PAGES, "2")  # good.pdf's reply brought the sandbox's balance
    notices: list[Notice] = []
    daemon.add_notice_listener(notices.append)
    samplepdf.write_pdf(inbox / "big.pdf", ["1", "2", "3"])
    # The notice is told after the hold is journaled: once it is, all is logged that will be.
    wait_for(lambda: any(n.kind is NoticeKind.HELD for n in notices), what="the big file held")
    assert daemon.journal.jobs(states=(JobState.HELD,))
    messages = [record.getMessage() for record in caplog.records]
    assert sum("empty.pdf is empty" in m for m in messages) == 1, messages
    assert sum("it has 3 pages and the account has 2 left" in m for m in messages) == 1
    assert any("Batch finished: 1 file converted" in m for m in messages), messages
    reason = reason_file.read_text(encoding="utf-8")
    assert "Nothing was sent or charged." in reason
    assert "unless the service said otherwise" not in reason
