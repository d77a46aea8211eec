"""The daemon end to end: real inboxes, a real observer, a real journal, a real sandbox."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from watcher import samplepdf
from watcher.daemon import Daemon
from watcher.filing import STAGING_PREFIX
from watcher.journal import JOURNAL_FILE_NAME
from watcher.sandbox import Sandbox

MakeDaemon = Callable[..., Daemon]


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def write_rules(root: Path, box: Sandbox, *, key: str | None = None, extra: str = "") -> Path:
    """Two inboxes with different rules, all folders under `root`."""
    path = root / "config.toml"
    path.write_text(
        f"""
[api]
key = "{key or box.key}"
endpoint = "{box.url}"
poll_interval = 0.1
concurrency = 2

[watch]
settle_seconds = 0.3
patterns = ["*.pdf", "*.png"]

[files]
outbox = "{root / "outbox"}"
archive = "{root / "archive"}"
failed = "{root / "failed"}"
state_dir = "{root / "state"}"
{extra}
[[inbox]]
path = "{root / "inbox" / "to-word"}"
outformat = "docx"

[[inbox]]
path = "{root / "inbox" / "to-text"}"
outformat = "txt"
lang = "french"
"""
    )
    for name in ("to-word", "to-text"):
        (root / "inbox" / name).mkdir(parents=True, exist_ok=True)
    return path


def files_in(folder: Path) -> list[str]:
    """The names a user sees in the folder: not a result's hidden staged copy, which stays
    until its job's DONE is journaled (a moment after the original is archived)."""
    if not folder.exists():
        return []
    staged = f"{STAGING_PREFIX}job"  # watcher.filing.staging_path's names
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(staged))


def test_two_inboxes_with_different_rules(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "Report 2026.pdf", ["Annual report"])
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "lettre.PDF", ["Bonjour"])
    outbox = tmp_path / "outbox"
    wait_for(
        lambda: files_in(tmp_path / "archive") == ["Report 2026.pdf", "lettre.PDF"],
        what="both originals archived",
    )
    assert files_in(outbox) == ["Report 2026.docx", "lettre.txt"]
    assert (outbox / "lettre.txt").read_text() == "Bonjour"
    charges = sorted((c.outformat, c.lang) for c in sandbox.ledger())
    assert charges == [("docx", "English"), ("txt", "French")]
    assert files_in(tmp_path / "inbox" / "to-word") == []


def test_files_already_there_at_start_are_converted(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    rules = write_rules(tmp_path, sandbox)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "early.pdf", ["before start"])
    make_daemon(rules)
    wait_for(lambda: (tmp_path / "outbox" / "early.txt").exists(), what="early.txt")
    assert len(sandbox.ledger()) == 1


def test_a_file_written_in_chunks_is_sent_once_after_its_last_chunk(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    data = samplepdf.make_pdf(["first page", "second page", "third page"])
    target = tmp_path / "inbox" / "to-text" / "scan.pdf"
    chunks = [data[i : i + len(data) // 4 + 1] for i in range(0, len(data), len(data) // 4 + 1)]
    with target.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
            out.flush()
            time.sleep(0.5)  # longer than nothing, shorter than settle + checks
    wait_for(lambda: (tmp_path / "outbox" / "scan.txt").exists(), what="scan.txt")
    assert "third page" in (tmp_path / "outbox" / "scan.txt").read_text()
    assert [c.pages for c in sandbox.ledger()] == [3]


def test_a_slow_conversion_is_polled_and_charged_once(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=0.5, cut_after=0.2)
    daemon = make_daemon(write_rules(tmp_path, box))
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "slow.pdf", ["a", "b"])
    wait_for(lambda: (tmp_path / "outbox" / "slow.docx").exists(), what="slow.docx")
    assert len(box.ledger()) == 1
    assert daemon.snapshot().available_pages == 998


def test_a_file_waiting_for_its_turn_is_counted_once(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """One turn at the service, two workers: the second file waits for its turn in a
    worker's hands; the tray's "Converting N files" counts it once, not as queued and busy."""
    box = make_sandbox(seconds_per_page=1.0)
    rules = write_rules(tmp_path, box)
    rules.write_text(rules.read_text().replace("concurrency = 2", "concurrency = 1"))
    inbox = tmp_path / "inbox" / "to-text"
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        samplepdf.write_pdf(inbox / name, [name] * 3)
    daemon = make_daemon(rules)
    wait_for(lambda: daemon.pool.busy == 2, what="one file at the service, one waiting")
    snapshot = daemon.snapshot()
    assert (snapshot.queued, snapshot.in_flight) == (1, 2)
    assert len(box.ledger()) == 1


def test_bad_files_land_in_failed_with_a_reason_and_cost_nothing(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    inbox = tmp_path / "inbox" / "to-word"
    (inbox / "page.pdf").write_text("<!doctype html><html>Sign in to download</html>")
    (inbox / "empty.pdf").write_bytes(b"")
    (inbox / "locked.pdf").write_bytes(samplepdf.make_encrypted_pdf(["x"]))
    failed = tmp_path / "failed"
    expected = [
        "empty.pdf",
        "empty.pdf.error.txt",
        "locked.pdf",
        "locked.pdf.error.txt",
        "page.pdf",
        "page.pdf.error.txt",
    ]
    wait_for(lambda: files_in(failed) == expected, what="three failures filed")
    assert "neither a PDF nor an image" in (failed / "page.pdf.error.txt").read_text()
    assert "empty" in (failed / "empty.pdf.error.txt").read_text()
    reason = (failed / "locked.pdf.error.txt").read_text()
    assert "protected" in reason and "What to do:" in reason
    assert sandbox.ledger() == []
    assert files_in(tmp_path / "outbox") == []


def test_bad_key_holds_the_queue_until_the_rules_are_fixed(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    rules = write_rules(tmp_path, sandbox, key="wrong-key")
    daemon = make_daemon(rules)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "a.pdf", ["a"])
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "b.pdf", ["b"])
    wait_for(lambda: daemon.snapshot().held, what="queue held")
    time.sleep(0.5)
    held = daemon.snapshot()
    assert "API key does not exist" in (held.held or "")
    assert held.failed == 0 and files_in(tmp_path / "failed") == []
    assert held.queued == 2
    rules.write_text(rules.read_text().replace('"wrong-key"', f'"{sandbox.key}"'))
    wait_for(lambda: files_in(tmp_path / "outbox") == ["a.docx", "b.docx"], what="resumed")
    assert daemon.snapshot().held is None
    assert len(sandbox.ledger()) == 2


def test_a_broken_rules_edit_keeps_the_running_rules(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    rules.write_text(rules.read_text().replace('outformat = "txt"', 'outformat = "mp3"'))
    wait_for(lambda: daemon.snapshot().config_error, what="config error reported")
    error = daemon.snapshot().config_error or ""
    assert "config.toml:" in error and "outformat" in error
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "still.pdf", ["works"])
    wait_for(lambda: (tmp_path / "outbox" / "still.txt").exists(), what="old rules used")


def test_an_internet_shortcut_is_converted_through_the_url(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    site = tmp_path / "site"
    samplepdf.write_pdf(site / "report.pdf", ["From the web"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        make_daemon(write_rules(tmp_path, sandbox))
        shortcut = tmp_path / "inbox" / "to-text" / "Quarterly.url"
        shortcut.write_text(
            f"[InternetShortcut]\nURL=http://127.0.0.1:{server.server_port}/report.pdf\n"
        )
        wait_for(lambda: (tmp_path / "outbox" / "Quarterly.txt").exists(), what="url result")
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "outbox" / "Quarterly.txt").read_text() == "From the web"
    assert [c.via for c in sandbox.ledger()] == ["url"]


def test_the_same_content_twice_is_paid_once(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    data = samplepdf.make_pdf(["same bytes"])
    (tmp_path / "inbox" / "to-text" / "one.pdf").write_bytes(data)
    (tmp_path / "inbox" / "to-text" / "two.pdf").write_bytes(data)
    wait_for(lambda: files_in(tmp_path / "outbox") == ["one.txt", "two.txt"], what="both")
    assert len(sandbox.ledger()) == 1
    assert (tmp_path / "outbox" / "two.txt").read_text() == "same bytes"


# -- kill -9 and restart: a real process, killed for real -------------------------------------


def journal_states(state_dir: Path) -> list[str]:
    path = state_dir / JOURNAL_FILE_NAME
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return [row[0] for row in db.execute("SELECT state FROM jobs")]
    except sqlite3.OperationalError:
        return []


def start_daemon_process(rules: Path, crash_after: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PDFOCR_WATCHER_CRASH_AFTER", None)
    if crash_after:
        env["PDFOCR_WATCHER_CRASH_AFTER"] = crash_after
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# (how the kill happens, sandbox seconds per page, cut after). "mid-upload" kills once the
# service has the file (a kill before that is the next test's case).
KILLS = {
    "mid-upload": ("state:uploading", 1.5, 100.0),
    "while-polling": ("state:waiting_for_result", 1.5, 0.2),
    "mid-download": ("state:downloading", 0.0, 100.0),
    "before-done": ("crash:done", 0.0, 100.0),
}


@pytest.mark.parametrize("moment", KILLS)
def test_sigkill_at_any_moment_converts_each_file_exactly_once(
    make_sandbox, tmp_path: Path, moment: str
) -> None:
    how, seconds_per_page, cut_after = KILLS[moment]
    box = make_sandbox(seconds_per_page=seconds_per_page, cut_after=cut_after)
    if moment == "mid-download":
        box.download_delay = 1.5
    rules = write_rules(tmp_path, box)
    inbox = tmp_path / "inbox" / "to-word"
    samplepdf.write_pdf(inbox / "contract.pdf", ["Contract", "Signatures"])
    kind, _, point = how.partition(":")
    process = start_daemon_process(rules, crash_after=point if kind == "crash" else None)
    try:
        if kind == "state":
            wait_for(
                lambda: point in journal_states(tmp_path / "state") and box.ledger(), what=point
            )
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode in (-signal.SIGKILL, 137)
        box.download_delay = 0.0
        process = start_daemon_process(rules)
        wait_for(  # done, and start-up recovery has cleared what the kill left behind
            lambda: (
                journal_states(tmp_path / "state") == ["done"]
                and files_in(tmp_path / "outbox") == ["contract.docx"]
            ),
            timeout=30,
            what="done after restart",
        )
    finally:
        stop_process(process)
    assert files_in(tmp_path / "archive") == ["contract.pdf"]
    assert files_in(inbox) == []
    assert [c.pages for c in box.ledger()] == [2], "charged exactly once"
    from docx import Document

    text = [p.text for p in Document(str(tmp_path / "outbox" / "contract.docx")).paragraphs]
    assert "Signatures" in text


def test_a_kill_before_the_upload_left_holds_the_file_until_the_user_says_send(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Killed the instant the journal said UPLOADING: nothing reached the service, but after
    a restart nobody can know that. The restarted daemon asks by name, is told "not found"
    for lost_after, and holds the file with a reason; nothing is sent until the user runs
    `retry`, and then it is converted and charged once."""
    rules = write_rules(tmp_path, sandbox, extra="")
    rules.write_text(
        rules.read_text().replace("concurrency = 2", "concurrency = 2\nlost_after = 0.5")
    )
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "contract.pdf", ["Contract"])
    process = start_daemon_process(rules, crash_after="uploading")
    process.wait(timeout=30)
    assert process.returncode in (-signal.SIGKILL, 137)
    process = start_daemon_process(rules)
    try:
        wait_for(lambda: journal_states(tmp_path / "state") == ["held"], what="held")
        time.sleep(1.0)  # held, and stays so: nothing is sent by itself
        assert journal_states(tmp_path / "state") == ["held"]
    finally:
        stop_process(process)
    assert sandbox.ledger() == []
    status = subprocess.run(
        [sys.executable, "-m", "watcher", "status", "--config", str(rules)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sending it again may be charged twice" in status.stdout
    subprocess.run(
        [sys.executable, "-m", "watcher", "retry", "1", "--config", str(rules)], check=True
    )
    process = start_daemon_process(rules)
    try:
        wait_for(lambda: journal_states(tmp_path / "state") == ["done"], what="done after retry")
    finally:
        stop_process(process)
    assert files_in(tmp_path / "outbox") == ["contract.docx"]
    assert [c.pages for c in sandbox.ledger()] == [1], "charged exactly once"


@pytest.mark.timeout(200)  # an unreadable file is set aside after 60 s of tries
def test_a_file_that_cannot_be_read_goes_to_failed_with_a_reason(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A mode-000 file: set aside with a reason after a few tries, not an error at every
    rescan for ever; the file beside it is converted. Root reads any file, so when the
    tests run as root (CI) the daemon runs without the capabilities that let it."""
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace("settle_seconds = 0.3", "settle_seconds = 0.1"))
    locked = tmp_path / "inbox" / "to-text" / "locked.pdf"
    samplepdf.write_pdf(locked, ["secret"])
    locked.chmod(0o000)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "fine.pdf", ["fine"])
    command = [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("as root a mode-000 file is readable, and setpriv is missing")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (tmp_path / "outbox" / "fine.txt").exists(), what="the other file")
        reason = tmp_path / "failed" / "locked.pdf.error.txt"
        wait_for(reason.exists, timeout=120, what="the reason")  # set aside after 60 s of tries
    finally:
        stop_process(process)
    assert "cannot be read" in reason.read_text()
    assert (tmp_path / "failed" / "locked.pdf").exists()
    assert len(sandbox.ledger()) == 1
