"""`check --explain`: a dry run that says what the daemon will do, because it asks the daemon's
own checks. Each verdict is compared with what a real daemon then does with the same file."""

from __future__ import annotations

import io
import plistlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from test_daemon import files_in, wait_for, write_rules

import watcher.inbox
from watcher import samplepdf
from watcher.cli import EXIT_FILE, EXIT_OK, main
from watcher.config import load_config
from watcher.daemon import Daemon
from watcher.explain import Explanation, Outcome, current_budget, explain, open_journal
from watcher.jobs import JobState
from watcher.journal import META_PAGES, Journal
from watcher.sandbox import Sandbox

MakeDaemon = Callable[..., Daemon]


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(out, format="JPEG")
    return out.getvalue()


# Files the daemon refuses before paying, and words each refusal must have.
REFUSED: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty.pdf": (lambda: b"", "is empty (0 bytes)"),
    "page.pdf": (
        lambda: b"<!DOCTYPE html><html><title>Sign in</title></html>",
        "neither a PDF nor an image: it is a web page (HTML)",
    ),
    "truncated.pdf": (lambda: samplepdf.make_pdf(["one", "two"])[:300], "incomplete PDF"),
    "locked.pdf": (lambda: samplepdf.make_encrypted_pdf(["secret"]), "password"),
    "damaged.pdf": (
        lambda: samplepdf.make_pdf(["x"])[:20] + b"\0" * 200 + samplepdf.make_pdf(["x"])[-40:],
        "damaged or incomplete PDF: its pages cannot be read",
    ),
}


@pytest.fixture
def quick_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PDF that never gets its end marker is handed on after a minute; here, at once."""
    monkeypatch.setattr(watcher.inbox, "GIVE_UP_SECONDS", 0.5)


def dry_run(rules: Path, path: Path) -> list[Explanation]:
    """`check --explain` as the command runs it, with the journal if there is one."""
    config = load_config(rules)
    journal = open_journal(config)
    try:
        return explain(config, path, current_budget(config, journal), journal)
    finally:
        if journal is not None:
            journal.close()


def by_name(explanations: list[Explanation]) -> dict[str, Explanation]:
    return {e.path.name: e for e in explanations}


def reason_in(error_file: Path) -> str:
    """The "What happened" of a reason file the daemon wrote beside a failed original."""
    text = error_file.read_text(encoding="utf-8")
    return text.split("What happened: ", 1)[1].split("\n\nWhat to do: ", 1)[0]


def test_the_dry_run_refuses_what_the_daemon_refuses_in_the_same_words(
    sandbox: Sandbox,
    tmp_path: Path,
    make_daemon: MakeDaemon,
    quick_give_up: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Empty, an HTML page named .pdf, truncated, password-locked, damaged: `check --explain`
    used to call each "accepted"; the daemon then failed them. Now the dry run gives the
    very reason the daemon writes beside the failed file, and the daemon charges nothing."""
    rules = write_rules(tmp_path, sandbox)
    inbox = tmp_path / "inbox" / "to-word"
    for name, (content, _) in REFUSED.items():
        (inbox / name).write_bytes(content())

    assert main(["check", "--config", str(rules), "--explain", str(inbox)]) == EXIT_FILE
    shown = capsys.readouterr().out
    verdicts = by_name(dry_run(rules, inbox))
    assert sorted(verdicts) == sorted(REFUSED)
    for name, (_, words) in REFUSED.items():
        verdict = verdicts[name]
        assert verdict.outcome is Outcome.REFUSED, name
        assert words in verdict.details[1], name
        assert f"{name}: would be refused before anything is sent" in shown
        assert verdict.details[1] in shown
        assert "nothing is sent or charged" in verdict.details[-1]
    assert "The daemon first waits" in " ".join(verdicts["truncated.pdf"].details)

    make_daemon(rules)
    failed = tmp_path / "failed"
    # Each reason file is written under a hidden name, then renamed: wait for the names.
    wait_for(
        lambda: all((failed / f"{name}.error.txt").exists() for name in REFUSED),
        timeout=60,
        what="all filed",
    )
    assert files_in(failed) == sorted([*REFUSED, *(f"{name}.error.txt" for name in REFUSED)])
    for name in REFUSED:
        assert reason_in(failed / f"{name}.error.txt") == verdicts[name].details[1], name
        advice = (failed / f"{name}.error.txt").read_text(encoding="utf-8")
        assert "Nothing was sent or charged." in advice
        assert "unless the service said otherwise" not in advice
    assert sandbox.ledger() == []


def test_a_file_the_dry_run_accepts_is_converted_and_charged_the_pages_it_said(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_rules(tmp_path, sandbox)
    scan = samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "scan.pdf", ["a", "b", "c"])
    assert main(["check", "--config", str(rules), "--explain", str(scan)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert f"{scan}: would be converted" in shown
    assert f"taken by inbox {scan.parent} → docx (English, OCR on)" in shown
    # 3 pages at $0.008 (the 50,000 pack) to $0.04 (the 1,000 pack) a page
    assert "a PDF of 3 pages: about $0.02 to $0.12 at pdfocr.org's pack prices" in shown
    assert "Credit: not known (no journal yet" in shown
    make_daemon(rules)
    wait_for(lambda: (tmp_path / "outbox" / "scan.docx").exists(), what="converted")
    (charge,) = sandbox.ledger()
    assert charge.pages == 3


def test_the_credit_guard_holds_in_the_dry_run_what_it_holds_in_the_daemon(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """The last balance the service reported is in the journal; a file with more pages is
    held by the daemon, and the dry run says so first, in the daemon's words."""
    rules = write_rules(tmp_path, sandbox)
    journal = Journal.in_folder(tmp_path / "state")
    journal.set_meta(META_PAGES, "2")
    journal.close()
    big = samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "big.pdf", ["1", "2", "3"])
    (verdict,) = dry_run(rules, big)
    assert verdict.outcome is Outcome.HELD
    said = verdict.details[-1]
    assert said.startswith("it has 3 pages and the account has 2 left. Buy more pages")

    daemon = make_daemon(rules)
    wait_for(lambda: daemon.journal.jobs(states=(JobState.HELD,)), what="the daemon holds the file")
    (held,) = daemon.journal.jobs(states=(JobState.HELD,))
    common = said.split("`pdfocr-watcher retry", 1)[0]
    assert held.error is not None and held.error.startswith(common)
    assert sandbox.ledger() == []


def test_the_daily_limit_in_a_folder_counts_the_files_before(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """Two files of 2 pages under a limit of 3 a day: the dry run converts the first and
    holds the second, as the daemon then does (whichever of the two it takes first)."""
    rules = write_rules(tmp_path, sandbox, extra="[credits]\ndaily_page_limit = 3\n")
    inbox = tmp_path / "inbox" / "to-word"
    for name in ("a.pdf", "b.pdf"):
        samplepdf.write_pdf(inbox / name, [name, "second page"])
    first, second = dry_run(rules, inbox)
    assert (first.outcome, first.pages) == (Outcome.CONVERTED, 2)
    assert second.outcome is Outcome.HELD
    said = second.details[2]
    assert said.startswith(
        "today's page limit (3) would be passed: 2 pages were sent today and this file has "
        "2 pages. It is sent tomorrow"
    )
    assert second.details[3] == "(counting the files listed before it as sent first)"

    daemon = make_daemon(rules)
    wait_for(lambda: daemon.journal.jobs(states=(JobState.HELD,)), what="the second held")
    wait_for(lambda: len(sandbox.ledger()) == 1, what="the first converted")
    (held,) = daemon.journal.jobs(states=(JobState.HELD,))
    assert held.error is not None
    assert held.error.startswith(said.split("`pdfocr-watcher retry", 1)[0])


def test_images_say_how_they_are_taken(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --explain scan.jpg` with the patterns leaving JPEGs out says how to have them
    taken; a PNG the patterns take says how it is converted; a JPEG named .pdf is one."""
    rules = write_rules(tmp_path, sandbox)  # patterns: *.pdf, *.png
    inbox = tmp_path / "inbox" / "to-word"
    (inbox / "scan.jpg").write_bytes(jpeg_bytes())
    Image.new("RGB", (30, 30), "white").save(inbox / "photo.png")
    (inbox / "camera.pdf").write_bytes(jpeg_bytes())

    assert main(["check", "--config", str(rules), "--explain", str(inbox / "scan.jpg")]) == 3
    shown = capsys.readouterr().out
    assert "scan.jpg: is not taken" in shown
    assert 'Images are converted too (the service reads their text by OCR): add "*.jpg"' in shown
    assert "Credit:" not in shown  # nothing got as far as the credit guard

    verdicts = by_name(dry_run(rules, inbox))
    png, camera = verdicts["photo.png"], verdicts["camera.pdf"]
    assert png.outcome is Outcome.CONVERTED and png.pages == 1
    assert png.details[1].startswith("a PNG image of 1 page: the service reads its text by OCR")
    assert camera.outcome is Outcome.CONVERTED
    assert camera.details[1].startswith(
        "a JPG image of 1 page under a .pdf name (sent as the image it is)"
    )


def test_an_image_in_an_inbox_without_ocr_is_warned_about(sandbox: Sandbox, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, sandbox)
    plain = tmp_path / "inbox" / "no-ocr"
    rules.write_text(
        rules.read_text() + f'[[inbox]]\npath = "{plain}"\noutformat = "txt"\nocr = false\n'
    )
    plain.mkdir()
    Image.new("RGB", (30, 30)).save(plain / "photo.png")
    (verdict,) = dry_run(rules, plain / "photo.png")
    assert verdict.outcome is Outcome.CONVERTED
    assert "OCR is off in this inbox" in verdict.details[1]
    assert "set ocr = true in its [[inbox]]" in verdict.details[1]


def test_an_image_in_a_searchable_pdf_inbox_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    extra = f'[[inbox]]\npath = "{tmp_path / "inbox" / "to-pdf"}"\noutformat = "pdf"\n'
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text() + extra)
    (tmp_path / "inbox" / "to-pdf").mkdir()
    Image.new("RGB", (30, 30)).save(tmp_path / "inbox" / "to-pdf" / "photo.png")
    (verdict,) = dry_run(rules, tmp_path / "inbox" / "to-pdf" / "photo.png")
    assert verdict.outcome is Outcome.REFUSED
    assert "cannot turn images into PDFs" in verdict.details[1]


def test_a_shortcut_says_where_it_points(sandbox: Sandbox, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, sandbox)
    link = tmp_path / "inbox" / "to-word" / "report.url"
    link.write_text("[InternetShortcut]\nURL=https://example.com/report.pdf\n")
    bad = tmp_path / "inbox" / "to-word" / "local.url"
    bad.write_text("[InternetShortcut]\nURL=file:///etc/passwd\n")
    webloc = tmp_path / "inbox" / "to-word" / "mac.webloc"
    webloc.write_bytes(plistlib.dumps({"URL": "https://example.org/scan.pdf"}))
    verdicts = by_name(dry_run(rules, link.parent))
    assert verdicts["report.url"].outcome is Outcome.CONVERTED
    assert (
        verdicts["report.url"]
        .details[1]
        .startswith("an internet shortcut to https://example.com/report.pdf: the service fetches")
    )
    assert verdicts["mac.webloc"].outcome is Outcome.CONVERTED
    assert (
        "an internet shortcut to https://example.org/scan.pdf" in verdicts["mac.webloc"].details[1]
    )
    assert verdicts["local.url"].outcome is Outcome.REFUSED
    assert "not a web (http or https) address" in verdicts["local.url"].details[1]


def test_folders_are_walked_as_the_watcher_sees_them(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder used to be "not in any inbox". Now: an inbox's files one by one, a folder
    above the inboxes walked into each, subfolders named (with what makes them watched),
    litter folders skipped, and a folder with no inbox said once."""
    rules = write_rules(tmp_path, sandbox)
    inboxes = tmp_path / "inbox"
    samplepdf.write_pdf(inboxes / "to-word" / "a.pdf", ["a"])
    samplepdf.write_pdf(inboxes / "to-text" / "b.pdf", ["b", "b"])
    samplepdf.write_pdf(inboxes / "to-word" / "sub" / "deep.pdf", ["deep"])
    samplepdf.write_pdf(inboxes / "to-word" / "@eaDir" / "thumb.pdf", ["nas litter"])
    (inboxes / "to-word" / "notes.txt").write_text("not a pattern")
    (inboxes / "to-word" / "report.pdf.crdownload").write_bytes(b"%PDF-1.4 half of it")

    assert main(["check", "--config", str(rules), "--explain", str(inboxes)]) == EXIT_FILE
    shown = capsys.readouterr().out
    assert "to-word/a.pdf: would be converted" in shown
    assert "to-text/b.pdf: would be converted" in shown
    assert "taken by inbox" in shown and "txt (French, OCR on)" in shown
    assert "to-word/sub/deep.pdf: is not taken" in shown
    assert "set recursive = true in [watch]" in shown
    assert "thumb.pdf" not in shown
    assert "to-word/notes.txt: is not taken" in shown
    assert "to-word/report.pdf.crdownload: is not taken" in shown
    assert "matches the built-in pattern '*.crdownload' (hidden or unfinished)" in shown
    assert "In all: 5 files; 2 would be converted (3 pages, about $0.02 to $0.12" in shown

    elsewhere = tmp_path / "Downloads"
    samplepdf.write_pdf(elsewhere / "x.pdf", ["x"])
    assert main(["check", "--config", str(rules), "--explain", str(elsewhere)]) == EXIT_FILE
    shown = capsys.readouterr().out
    assert shown.startswith(f"{elsewhere} is not an inbox, nor inside or above one (inboxes: ")
    assert "x.pdf" not in shown

    (inboxes / "to-text" / "b.pdf").unlink()
    assert main(["check", "--config", str(rules), "--explain", str(inboxes / "to-text")]) == 0
    assert capsys.readouterr().out == f"{inboxes / 'to-text'} holds no files.\n"


def test_the_dry_run_sends_nothing_and_writes_no_journal(sandbox: Sandbox, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, sandbox)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "a.pdf", ["a"])
    assert main(["check", "--config", str(rules), "--explain", str(tmp_path / "inbox")]) == 0
    assert sandbox.ledger() == []
    assert not (tmp_path / "state").exists()
    assert files_in(tmp_path / "inbox" / "to-word") == ["a.pdf"]


def test_what_the_journal_knows_is_said_as_the_daemon_acts_on_it(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """Once a file is converted, the same bytes again cost nothing (its result is copied),
    and a copy of our own result dropped into an inbox is not taken: the dry run says both,
    from the journal the daemon keeps, and the daemon then does both."""
    rules = write_rules(tmp_path, sandbox)
    to_word, to_pdf = tmp_path / "inbox" / "to-word", tmp_path / "inbox" / "to-pdf"
    rules.write_text(rules.read_text() + f'[[inbox]]\npath = "{to_pdf}"\noutformat = "pdf"\n')
    to_pdf.mkdir()
    samplepdf.write_pdf(to_word / "first.pdf", ["same bytes", "two pages"])
    samplepdf.write_pdf(to_pdf / "scan.pdf", ["made searchable"])
    daemon = make_daemon(rules)
    outbox = tmp_path / "outbox"
    wait_for(lambda: files_in(outbox) == ["first.docx", "scan.pdf"], what="both converted")
    wait_for(lambda: files_in(to_word) == files_in(to_pdf) == [], what="originals archived")
    daemon.pause(None)
    (to_word / "again.pdf").write_bytes((tmp_path / "archive" / "first.pdf").read_bytes())
    (to_pdf / "result-copy.pdf").write_bytes((outbox / "scan.pdf").read_bytes())  # a sync tool
    verdicts = by_name(dry_run(rules, tmp_path / "inbox"))

    (first,) = [job for job in daemon.journal.jobs() if job.display_name == "first.pdf"]
    again = verdicts["again.pdf"]
    assert (again.outcome, again.pages) == (Outcome.CONVERTED, 0)
    assert again.details[1] == (
        f"the same content with the same settings was converted before (first.pdf, job "
        f"{first.id}): its result is copied, at no charge"
    )
    ours = verdicts["result-copy.pdf"]
    assert ours.outcome is Outcome.NOT_TAKEN
    assert ours.details[0] == (
        f"result-copy.pdf is a copy of our own result {outbox / 'scan.pdf'} (from scan.pdf); "
        "it is not converted again"
    )

    daemon.unpause()
    wait_for(lambda: (outbox / "again.docx").exists(), what="the copy filed")
    assert len(sandbox.ledger()) == 2  # the first two files only
    assert files_in(to_pdf) == ["result-copy.pdf"]  # left alone


def test_a_shared_inbox_says_another_pc_may_take_the_file(sandbox: Sandbox, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, sandbox)
    rules.write_text(rules.read_text().replace("[watch]\n", "[watch]\nshared = true\n"))
    scan = samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "scan.pdf", ["x"])
    (verdict,) = dry_run(rules, scan)
    assert verdict.outcome is Outcome.CONVERTED
    assert "the inbox is shared with other PCs" in verdict.details[0]
    assert not (scan.parent / ".pdfocr-claims").exists()  # nothing claimed by a dry run
    rules.write_text(rules.read_text().replace("shared = true", "shared = false"))
    (verdict,) = dry_run(rules, scan)
    assert "shared with other PCs" not in verdict.details[0]
