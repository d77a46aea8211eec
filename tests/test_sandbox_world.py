"""The sandbox is a world of its own: its own journal, history and log, never a source of
results for live use, never in the live spend; `run` without a key runs there, loudly.

Through real parts: the daemon in its own process, on real folders, first on its built-in
sandbox, then live against a second sandbox standing in for pdfocr.org (with its own key and
ledger, so that "really sent" is a charge in that ledger)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_daemon import journal_states, stop_process, wait_for

from watcher import samplepdf
from watcher.cli import main
from watcher.config import load_config
from watcher.journal import JOURNAL_FILE_NAME, Journal
from watcher.logs import LOG_FILE_NAME
from watcher.sandbox import Sandbox
from watcher.world import set_apart_old_sandbox_journal

LIVE_KEY = "live-key-5f0c9a"


def keyless_rules(root: Path, endpoint: str) -> Path:
    """Rules with no key, pointing at `endpoint`, every folder under `root`."""
    path = root / "config.toml"
    path.write_text(
        f'[api]\nkey = ""\nendpoint = "{endpoint}"\npoll_interval = 0.1\n\n'
        f'[watch]\nsettle_seconds = 0.3\n\n[files]\noutbox = "{root / "outbox"}"\n'
        f'archive = "{root / "archive"}"\nfailed = "{root / "failed"}"\n'
        f'state_dir = "{root / "state"}"\n\n'
        f'[[inbox]]\npath = "{root / "inbox"}"\noutformat = "txt"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def status(rules: Path, capsys: pytest.CaptureFixture[str], *more: str) -> str:
    capsys.readouterr()
    assert main(["status", "--config", str(rules), *more]) == 0
    return capsys.readouterr().out


def start(rules: Path, *more: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--no-tray", "--config", str(rules), *more],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_until(rules: Path, done: Callable[[], object], what: str) -> str:
    """Runs the daemon in its own process until `done()`; returns what it said."""
    process = start(rules)
    failure: AssertionError | None = None
    try:
        wait_for(done, timeout=60, what=what)
    except AssertionError as exc:
        failure = exc
    stop_process(process)
    assert process.stderr is not None
    said = process.stderr.read().decode("utf-8", "replace")
    if failure is not None:
        raise AssertionError(f"{failure}; the daemon said:\n{said}")
    return said


def test_a_file_tried_on_the_sandbox_is_really_sent_in_live_use_and_counted_apart(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    real = make_sandbox(key=LIVE_KEY)  # stands in for pdfocr.org
    rules = keyless_rules(tmp_path, real.url)
    state = tmp_path / "state"
    samplepdf.write_pdf(tmp_path / "inbox" / "invoice.pdf", ["Invoice 7", "Total 12.00"])

    # No key: `run` runs on its own sandbox, says so loudly, and pdfocr.org sees nothing.
    said = run_until(rules, (tmp_path / "outbox" / "invoice.txt").exists, "the sandbox result")
    assert "SANDBOX: no API key is configured" in said
    assert real.ledger() == []
    assert not (state / JOURNAL_FILE_NAME).exists()  # the live world has no journal yet
    assert (state / "sandbox" / JOURNAL_FILE_NAME).exists()
    assert "SANDBOX" in (state / "sandbox" / LOG_FILE_NAME).read_text(encoding="utf-8")
    shown = status(rules, capsys)  # only the sandbox has a journal: that one, marked
    assert shown.startswith("SANDBOX: ") and "SANDBOX Jobs: 1 done" in shown
    assert "play money" in shown and "$" not in shown

    # The key is set; the same bytes arrive again: sent to the live service and paid there,
    # not given the sandbox's result (which, the same text, is the same file in the outbox).
    assert main(["init", "--api-key", LIVE_KEY, "--config", str(rules)]) == 0
    shutil.copy(tmp_path / "archive" / "invoice.pdf", tmp_path / "inbox" / "invoice.pdf")
    said = run_until(rules, lambda: journal_states(state) == ["done"], "the live result")
    assert "SANDBOX" not in said
    [charge] = real.ledger()
    assert charge.pages == 2
    journal = Journal(state / JOURNAL_FILE_NAME)
    try:
        [job] = journal.jobs()
    finally:
        journal.close()
    assert job.remote_name == charge.filename  # this very job was what the live service got
    assert job.link is not None and job.link.startswith(real.url.rsplit("/", 1)[0])
    assert job.output is not None and "Invoice 7" in job.output.read_text(encoding="utf-8")
    assert not (tmp_path / "inbox" / "invoice.pdf").exists()

    # Each world's figures alone: live pages with their cost, the sandbox's as play money.
    live = json.loads(status(rules, capsys, "--json"))
    assert live["world"] == "live" and live["counts"] == {"done": 1}
    assert [(row["pages"], row["estimated_cost_usd"]) for row in live["pages_sent"]] == [
        (2, [0.02, 0.08])
    ]
    assert live["other_world_journal"] is True
    play = json.loads(status(rules, capsys, "--json", "--sandbox"))
    assert play["world"] == "sandbox" and play["counts"] == {"done": 1}
    assert [(row["pages"], row["estimated_cost_usd"]) for row in play["pages_sent"]] == [(2, None)]
    text = status(rules, capsys)
    assert not text.startswith("SANDBOX") and "2 pages  $0.02 to $0.08" in text
    assert "The SANDBOX keeps its own journal, not counted here" in text


def test_a_sandbox_run_after_live_use_leaves_the_live_journal_and_spend_alone(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    real = make_sandbox(key=LIVE_KEY)
    rules = keyless_rules(tmp_path, real.url)
    assert main(["init", "--api-key", LIVE_KEY, "--config", str(rules)]) == 0
    samplepdf.write_pdf(tmp_path / "inbox" / "memo.pdf", ["Memo"])
    said = run_until(rules, (tmp_path / "outbox" / "memo.txt").exists, "the live result")
    assert "SANDBOX" not in said
    assert len(real.ledger()) == 1

    # `run --sandbox`, with a key set: the same bytes again are the sandbox's own job.
    shutil.copy(tmp_path / "archive" / "memo.pdf", tmp_path / "inbox" / "memo.pdf")
    process = start(rules, "--sandbox")
    sandbox_state = tmp_path / "state" / "sandbox"
    try:
        wait_for(lambda: journal_states(sandbox_state) == ["done"], timeout=60, what="sandbox")
        shown = status(rules, capsys)
        assert "Daemon: not running (a SANDBOX daemon is running: " in shown
        assert "SANDBOX Daemon: running" in status(rules, capsys, "--sandbox")
        capsys.readouterr()
        main(["doctor", "--config", str(rules)])
        report = capsys.readouterr().out
        assert re.search(r"^note +daemon +running on the SANDBOX$", report, re.M)
        assert re.search(r"^note +sandbox +its own journal and log in .*sandbox", report, re.M)
    finally:
        stop_process(process)
    assert len(real.ledger()) == 1  # nothing more reached the live service
    live = json.loads(status(rules, capsys, "--json"))
    assert live["counts"] == {"done": 1} and [r["pages"] for r in live["pages_sent"]] == [1]
    play = json.loads(status(rules, capsys, "--json", "--sandbox"))
    assert play["counts"] == {"done": 1} and play["mode"] == "sandbox"


def set_link(journal: Path, link: str) -> None:
    """Where every job's result came from, as if another service had made it."""
    with contextlib.closing(sqlite3.connect(journal)) as db, db:
        db.execute("UPDATE jobs SET link = ?", (link,))


def test_a_journal_of_the_sandbox_alone_from_before_the_split_is_set_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier release let the sandbox write into the live journal: the demo's journal,
    found in the live place when real use begins, moves to the sandbox's, unless it holds
    real work."""
    rules = keyless_rules(tmp_path, "https://pdfocr.org/ocrapiv1.html")
    state = tmp_path / "state"
    samplepdf.write_pdf(tmp_path / "inbox" / "demo.pdf", ["Demo"])
    process = start(rules)  # no key: the sandbox
    try:
        wait_for(lambda: journal_states(state / "sandbox") == ["done"], timeout=60, what="demo")
    finally:
        stop_process(process)
    for name in os.listdir(state / "sandbox"):  # the old layout: the sandbox wrote here
        if name.startswith(JOURNAL_FILE_NAME):
            os.replace(state / "sandbox" / name, state / name)
    old = state / JOURNAL_FILE_NAME

    # A live service on this computer (a test's) or a journal with real work: left alone.
    on_this_computer = keyless_rules(tmp_path, "http://127.0.0.1:9/ocrapiv1.html")
    assert set_apart_old_sandbox_journal(load_config(on_this_computer)) is None
    set_link(old, "https://pdfocr.org/doc/demo.txt")
    rules = keyless_rules(tmp_path, "https://pdfocr.org/ocrapiv1.html")
    assert set_apart_old_sandbox_journal(load_config(rules)) is None and old.exists()

    set_link(old, "http://127.0.0.1:41234/doc/abc/demo.txt")
    moved = set_apart_old_sandbox_journal(load_config(rules))
    assert moved == state / "sandbox" / JOURNAL_FILE_NAME and not old.exists()
    assert journal_states(state / "sandbox") == ["done"]
    assert status(rules, capsys).startswith("SANDBOX: ")  # the only journal left


def test_run_sandbox_needs_no_key_so_a_keyring_that_cannot_be_read_is_not_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = keyless_rules(tmp_path, "https://pdfocr.org/ocrapiv1.html")
    rules.write_text(rules.read_text().replace('key = ""', "keyring = true"), encoding="utf-8")
    samplepdf.write_pdf(tmp_path / "inbox" / "note.pdf", ["Note"])
    assert main(["run", "--no-tray", "--config", str(rules)]) == 2  # live: the key is missing
    assert "api.keyring" in capsys.readouterr().err
    process = start(rules, "--sandbox")  # this process has no keyring either (conftest.py)
    try:
        wait_for((tmp_path / "outbox" / "note.txt").exists, timeout=60, what="note.txt")
    finally:
        stop_process(process)
