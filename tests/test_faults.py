"""Things going wrong on purpose: bad files, full or read-only disks, vanished folders, a
second daemon, and the key that must never be written anywhere."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_daemon import files_in, start_daemon_process, stop_process, wait_for, write_rules

import watcher.inbox
from watcher import samplepdf
from watcher.api import ClientSettings, PdfOcrClient
from watcher.cli import main
from watcher.contract import DEFAULT_ENDPOINT
from watcher.filing import copy_whole
from watcher.jobs import JobState, NewJob, Rule, SourceKind
from watcher.journal import Journal
from watcher.runner import JobRunner, Timing
from watcher.sandbox import Sandbox

SECRET = "sk-live-SECRET-7f3a9c1e5b"
RESCAN_EVERY_SECOND = "settle_seconds = 0.3\nrescan_seconds = 1"


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(out, format="JPEG")
    return out.getvalue()


# -- bad input: each ends with a clear reason, and no charge where the file is at fault -------

BAD_FILES = {
    "truncated.pdf": (lambda: samplepdf.make_pdf(["cut"])[:300], "incomplete"),
    "zero-pages.pdf": (lambda: samplepdf.make_pdf([]), "no pages"),
    "permission.pdf": (lambda: samplepdf.make_permission_locked_pdf(["x"]), "protected"),
    "page.pdf": (lambda: b"<!DOCTYPE html><title>Login</title>", "neither a PDF nor an image"),
}


@pytest.fixture
def quick_give_up(monkeypatch) -> None:
    """A PDF that never gets its end marker is handed on after a minute; here, at once."""
    monkeypatch.setattr(watcher.inbox, "GIVE_UP_SECONDS", 0.5)


def test_bad_files_fail_with_a_reason_and_cost_nothing(
    sandbox: Sandbox, tmp_path: Path, make_daemon, quick_give_up
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    inbox = tmp_path / "inbox" / "to-text"
    for name, (content, _) in BAD_FILES.items():
        (inbox / name).write_bytes(content())
    failed = tmp_path / "failed"
    wait_for(lambda: len(files_in(failed)) == 2 * len(BAD_FILES), timeout=30, what="filed")
    for name, (_, words) in BAD_FILES.items():
        assert words in (failed / f"{name}.error.txt").read_text(), name
    assert sandbox.ledger() == []


def test_a_jpeg_named_pdf_is_sent_as_the_image_it_is(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    (tmp_path / "inbox" / "to-text" / "photo.pdf").write_bytes(jpeg_bytes())
    wait_for(lambda: (tmp_path / "outbox" / "photo.txt").exists(), what="photo converted")
    (charge,) = sandbox.ledger()
    assert charge.filename.endswith(".jpg") and charge.pages == 1


def test_a_very_large_sparse_file_is_refused_quickly(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    big = tmp_path / "inbox" / "to-text" / "huge.pdf"
    with big.open("wb") as out:
        out.truncate(300 * 1024 * 1024)  # 300 MB of nothing, sparse on disk
    wait_for(
        lambda: (tmp_path / "failed" / "huge.pdf.error.txt").exists(),
        timeout=60,
        what="huge.pdf failed",
    )
    assert "neither a PDF nor an image" in (tmp_path / "failed" / "huge.pdf.error.txt").read_text()
    assert sandbox.ledger() == []


STRANGE_NAMES = [
    "with spaces  and  tabs\t.pdf",
    "emoji 📄✨.pdf",
    "עברית مرحبا.pdf",
    "new\nline.pdf",
    "!!!.pdf",
    ("x" * 251) + ".pdf",  # 255 bytes
]


def test_strange_names_round_trip(sandbox: Sandbox, tmp_path: Path, make_daemon) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    inbox = tmp_path / "inbox" / "to-text"
    for number, name in enumerate(STRANGE_NAMES):
        samplepdf.write_pdf(inbox / name, [f"text {number}"])
    wait_for(
        lambda: len(files_in(tmp_path / "archive")) == len(STRANGE_NAMES),
        timeout=30,
        what="all archived",
    )
    outputs = files_in(tmp_path / "outbox")
    for number, name in enumerate(STRANGE_NAMES):
        expected = name[: -len(".pdf")] + ".txt"
        assert expected in outputs, name
        assert (tmp_path / "outbox" / expected).read_text() == f"text {number}"
    assert len(sandbox.ledger()) == len(STRANGE_NAMES)


def test_a_long_failed_name_still_gets_its_reason_file(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    name = ("y" * 251) + ".pdf"
    (tmp_path / "inbox" / "to-text" / name).write_bytes(b"")
    failed = tmp_path / "failed"

    def reason_files() -> list[str]:
        # The reason is written under a hidden staging name and renamed when whole: only a
        # visible ".error.txt" counts, so the staging file is never taken for it.
        return [n for n in files_in(failed) if n.endswith(".error.txt") and n[0] != "."]

    wait_for(lambda: reason_files(), what="failed with a reason")
    (reason_name,) = reason_files()
    assert len(reason_name.encode()) <= 255
    assert files_in(failed) == sorted([name, reason_name])  # nothing else left behind
    assert "empty" in (failed / reason_name).read_text()


def test_the_same_name_in_two_inboxes_at_once(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    data = samplepdf.make_pdf(["twice"])
    (tmp_path / "inbox" / "to-word" / "same.pdf").write_bytes(data)
    (tmp_path / "inbox" / "to-text" / "same.pdf").write_bytes(data)
    wait_for(lambda: len(files_in(tmp_path / "archive")) == 2, what="both archived")
    assert files_in(tmp_path / "outbox") == ["same.docx", "same.txt"]
    assert files_in(tmp_path / "archive") == ["same (2).pdf", "same.pdf"]
    assert len(sandbox.ledger()) == 2  # other settings: another conversion


def test_a_file_changed_after_it_was_queued_is_converted_in_its_new_version(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    daemon = make_daemon(write_rules(tmp_path, sandbox))
    daemon.pause(None)
    target = tmp_path / "inbox" / "to-text" / "draft.pdf"
    samplepdf.write_pdf(target, ["old version"])
    wait_for(lambda: daemon.snapshot().queued == 1, what="old version queued")
    time.sleep(0.05)
    samplepdf.write_pdf(target, ["new version", "longer"])
    wait_for(lambda: daemon.snapshot().queued == 2, what="new version queued")
    daemon.unpause()
    wait_for(lambda: (tmp_path / "outbox" / "draft.txt").exists(), what="converted")
    assert "new version" in (tmp_path / "outbox" / "draft.txt").read_text()
    assert [c.pages for c in sandbox.ledger()] == [2]
    states = sorted(job.state.value for job in daemon.journal.jobs())
    assert states == ["done", "dropped"]
    assert daemon.snapshot().unseen_failures == 0  # the user did nothing wrong


def test_a_file_deleted_mid_upload_is_still_delivered(
    make_sandbox, tmp_path: Path, make_daemon
) -> None:
    box = make_sandbox(seconds_per_page=1.0)
    daemon = make_daemon(write_rules(tmp_path, box))
    target = tmp_path / "inbox" / "to-text" / "gone.pdf"
    samplepdf.write_pdf(target, ["paid for"])
    wait_for(
        lambda: any(j.state is JobState.UPLOADING for j in daemon.journal.jobs()), what="uploading"
    )
    target.unlink()
    wait_for(lambda: (tmp_path / "outbox" / "gone.txt").exists(), what="result delivered")
    assert len(box.ledger()) == 1


def test_a_symlink_to_a_file_outside_is_not_followed(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    make_daemon(write_rules(tmp_path, sandbox))
    secret = samplepdf.write_pdf(tmp_path / "private" / "tax.pdf", ["private"])
    (tmp_path / "inbox" / "to-text" / "link.pdf").symlink_to(secret)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "real.pdf", ["real"])
    wait_for(lambda: (tmp_path / "outbox" / "real.txt").exists(), what="real converted")
    time.sleep(0.5)
    assert files_in(tmp_path / "outbox") == ["real.txt"]
    assert len(sandbox.ledger()) == 1 and secret.exists()


# -- disks and folders -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny file system (tmpfs), to fill up or make read-only for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_outbox_keeps_the_original_and_retries_without_paying_again(
    sandbox: Sandbox, tmp_path: Path, make_daemon, small_disk: Path
) -> None:
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace(f'"{tmp_path / "outbox"}"', f'"{small_disk}"'))
    filler = small_disk / "filler.bin"
    with filler.open("wb") as out, pytest.raises(OSError):
        out.write(b"\0" * 1024 * 1024)  # fills the disk
    daemon = make_daemon(rules)
    target = tmp_path / "inbox" / "to-word" / "report.pdf"
    samplepdf.write_pdf(target, ["report"])
    wait_for(
        lambda: any(j.error and "cannot be written" in j.error for j in daemon.journal.jobs()),
        what="disk trouble noticed",
    )
    assert target.exists() and files_in(tmp_path / "archive") == []
    assert all(job.state is not JobState.DONE for job in daemon.journal.jobs())
    filler.unlink()
    wait_for(
        lambda: (
            all(job.state is JobState.DONE for job in daemon.journal.jobs())
            and files_in(small_disk) == ["report.docx"]  # the staged copy gone too
        ),
        timeout=40,
        what="delivered",
    )
    assert len(sandbox.ledger()) == 1
    assert files_in(tmp_path / "archive") == ["report.pdf"]


def test_a_read_only_state_folder_is_refused_in_plain_words(
    sandbox: Sandbox, tmp_path: Path, small_disk: Path
) -> None:
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace(f'"{tmp_path / "state"}"', f'"{small_disk}"'))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert str(small_disk) in done.stderr and "cannot be written" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_full_journal_disk_sends_nothing_until_there_is_room(
    sandbox: Sandbox, tmp_path: Path, small_disk: Path
) -> None:
    rules = write_rules(tmp_path, sandbox)
    text = rules.read_text().replace(f'"{tmp_path / "state"}"', f'"{small_disk}"')
    rules.write_text(text.replace("settle_seconds = 0.3", RESCAN_EVERY_SECOND))
    process = start_daemon_process(rules)
    filler = small_disk / "filler.bin"
    try:
        wait_for(lambda: (small_disk / "journal.sqlite3").exists(), what="journal created")
        time.sleep(0.5)
        with filler.open("wb") as out, pytest.raises(OSError):
            out.write(b"\0" * 1024 * 1024)
        samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "wait.pdf", ["wait"])
        time.sleep(2.5)
        assert sandbox.ledger() == [] and not (tmp_path / "outbox" / "wait.txt").exists()
        filler.unlink()
        wait_for(
            lambda: (tmp_path / "outbox" / "wait.txt").exists(),
            timeout=20,
            what="converted once there is room",
        )
    finally:
        stop_process(process)
    assert len(sandbox.ledger()) == 1


def test_vanished_archive_and_recreated_inbox(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace("settle_seconds = 0.3", RESCAN_EVERY_SECOND))
    make_daemon(rules)
    inbox = tmp_path / "inbox" / "to-text"
    samplepdf.write_pdf(inbox / "one.pdf", ["one"])
    wait_for(lambda: files_in(tmp_path / "archive") == ["one.pdf"], what="first archived")
    shutil.rmtree(tmp_path / "archive")
    shutil.rmtree(inbox)
    inbox.mkdir()
    samplepdf.write_pdf(inbox / "two.pdf", ["two"])
    wait_for(
        lambda: files_in(tmp_path / "archive") == ["two.pdf"],
        timeout=20,
        what="second archived after the folders came back",
    )


# -- one daemon per state folder ------------------------------------------------------------


def test_a_second_daemon_on_the_same_state_folder_is_refused(
    sandbox: Sandbox, tmp_path: Path, capsys
) -> None:
    rules = write_rules(tmp_path, sandbox)
    first = start_daemon_process(rules)
    try:
        wait_for(lambda: (tmp_path / "state" / "daemon.lock").exists(), what="first running")
        time.sleep(0.5)
        second = subprocess.run(
            [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        stop_process(first)
    assert second.returncode != 0
    assert "already running" in second.stderr and str(first.pid) in second.stderr


# -- the key, nowhere ---------------------------------------------------------------------------


def test_the_key_appears_in_nothing_the_program_writes(
    make_sandbox, tmp_path: Path, capsys
) -> None:
    box = make_sandbox(key=SECRET, seconds_per_page=0.3, cut_after=0.1)
    rules = write_rules(tmp_path, box)
    os.chmod(rules, 0o644)  # readable by others: the warning must not echo the key either
    inbox = tmp_path / "inbox" / "to-text"
    samplepdf.write_pdf(inbox / "ok.pdf", ["fine"])
    (inbox / "bad.pdf").write_bytes(b"not a pdf")
    # A retry, a cut and the polls after it: every kind of request goes out with the key.
    box.inject("http429")
    box.inject("http524")
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                (tmp_path / "outbox" / "ok.txt").exists()
                and (tmp_path / "failed" / "bad.pdf.error.txt").exists()
            ),
            timeout=30,
            what="run",
        )
    finally:
        process.terminate()
        out, err = process.communicate(timeout=20)
    capsys.readouterr()
    for command in (["status"], ["status", "--json"], ["check"]):
        main([*command, "--config", str(rules)])
    printed = capsys.readouterr()
    written = [out, err, printed.out, printed.err]
    for folder in (tmp_path / "state", tmp_path / "failed", tmp_path / "outbox"):
        written += [
            p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
        ]
    # Debug logging really was on: urllib3's request lines are there, without their query.
    assert "urllib3" in err and '"GET /ocrapiv1.html HTTP/1.1"' in err
    assert "apikey=" not in err
    assert "chmod 600" in err  # and the permission warning was given
    assert not [text for text in written if SECRET in text]


def test_an_archive_that_cannot_be_written_never_gets_the_result_filed_twice(
    tmp_path: Path, small_disk: Path
) -> None:
    """The result is in the outbox, the original cannot go to the (full) archive: the job
    waits, and its retries do not file the result again, even after a sync tool took it out
    of the outbox; once the archive has room, the job finishes."""
    filler = small_disk / "filler.bin"
    with filler.open("wb") as out, pytest.raises(OSError):
        out.write(b"\0" * 1024 * 1024)  # fills the disk
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    source = samplepdf.write_pdf(inbox / "Invoice.pdf", ["x" * 2000])
    outbox.mkdir()
    journal = Journal(tmp_path / "journal.sqlite3")
    client = PdfOcrClient(ClientSettings(DEFAULT_ENDPOINT))  # never asked: nothing to fetch
    runner = JobRunner(journal, client, Timing(0.1, 5))
    rule = Rule("txt", "English", True, outbox, small_disk / "archive", tmp_path / "f", "archive")
    stat = source.stat()
    job = journal.add(
        NewJob(
            source,
            inbox,
            SourceKind.FILE,
            None,
            "h",
            stat.st_size,
            stat.st_mtime_ns,
            rule,
            "I-a.pdf",
        )
    )
    assert job is not None
    job = journal.move(job, JobState.UPLOADING, sent_at=time.time(), pages=1)
    job = journal.move(job, JobState.DOWNLOADING, link="http://127.0.0.1:9/doc/r.txt")
    job.staged.write_text("the converted text")
    job = runner.advance(job)
    assert job.state is JobState.DOWNLOADING and "cannot be written" in (job.error or "")
    assert str(small_disk / "archive") in (job.error or "")
    # the staged copy stays while the original cannot be put away: a retry places it again
    assert sorted(os.listdir(outbox)) == [".pdfocr-job1-I-a.txt", "Invoice.txt"]
    (outbox / "Invoice.txt").unlink()  # a sync tool takes it
    job = runner.advance(journal.update(job, not_before=0.0))
    assert job.state is JobState.DOWNLOADING and sorted(os.listdir(outbox)) == [
        ".pdfocr-job1-I-a.txt"
    ]
    filler.unlink()
    job = runner.advance(journal.update(job, not_before=0.0))
    assert job.state is JobState.DONE and job.output == outbox / "Invoice.txt"
    assert os.listdir(outbox) == [] and files_in(small_disk / "archive") == ["Invoice.pdf"]
    journal.close()


def test_a_copy_cut_short_by_a_full_disk_leaves_nothing_behind(
    tmp_path: Path, small_disk: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024))
    with pytest.raises(OSError):
        copy_whole(big, small_disk / "result.txt")
    assert files_in(small_disk) == []


def test_a_name_that_is_not_utf8_is_converted_and_named_readably(
    sandbox: Sandbox, tmp_path: Path, make_daemon
) -> None:
    """A Latin-1 name from an old zip archive: journaled losslessly, logged and named
    readably, and the file that arrived with it is not held up."""
    make_daemon(write_rules(tmp_path, sandbox))
    inbox = tmp_path / "inbox" / "to-text"
    raw = os.fsencode(inbox) + b"/caf\xe9 menu.pdf"
    with open(raw, "wb") as out:  # a bytes path, as the disk has it
        out.write(samplepdf.make_pdf(["menu du jour"]))
    samplepdf.write_pdf(inbox / "plain.pdf", ["plain"])
    outbox = tmp_path / "outbox"
    wait_for(lambda: len(files_in(outbox)) == 2, what="both converted")
    assert files_in(outbox) == ["caf\ufffd menu.txt", "plain.txt"]
    assert "menu du jour" in (outbox / "caf\ufffd menu.txt").read_text()
    wait_for(lambda: len(files_in(tmp_path / "archive")) == 2, what="both archived")
    assert os.path.exists(os.fsencode(tmp_path / "archive") + b"/caf\xe9 menu.pdf")
    assert len(sandbox.ledger()) == 2


def test_a_same_size_same_time_replacement_during_the_upload_is_converted_too(
    make_sandbox, tmp_path: Path, make_daemon
) -> None:
    """Another file put in the original's place while it converts, with the same size and
    time (a copy tool keeping times): the job must not archive it as done."""
    box = make_sandbox(seconds_per_page=1.0)
    rules = write_rules(tmp_path, box)  # one worker: the new version waits for the old one
    rules.write_text(rules.read_text().replace("concurrency = 2", "concurrency = 1"))
    make_daemon(rules)
    inbox = tmp_path / "inbox" / "to-text"
    old, new = samplepdf.make_pdf(["version A"]), samplepdf.make_pdf(["version B"])
    assert len(old) == len(new)
    (inbox / "draft.pdf").write_bytes(old)
    wait_for(lambda: box.ledger(), what="the first version sent")
    stat = (inbox / "draft.pdf").stat()
    replacement = tmp_path / "replacement.pdf"
    replacement.write_bytes(new)
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, inbox / "draft.pdf")
    wait_for(lambda: len(files_in(tmp_path / "outbox")) == 2, timeout=30, what="both versions")
    texts = sorted(
        (tmp_path / "outbox" / name).read_text() for name in files_in(tmp_path / "outbox")
    )
    assert ["version A" in texts[0], "version B" in texts[1]] == [True, True]
    assert len(box.ledger()) == 2
