"""Checks a file locally before it costs anything.

The service charges per page and fails locked or unreadable files after the upload, so every
refusal we can make here is money and time the user keeps. Files are judged by their bytes,
not their names: a JPEG called `.pdf` is an image, an HTML page called `.pdf` is refused.

The runner asks `check_source`, `reusable_result` and `budget_hold` before each submission;
`check --explain` (watcher.explain) asks the same functions for its dry run, so what the dry
run says is what the daemon does.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from watcher.errors import FileRejected
from watcher.jobs import Job, JobState
from watcher.journal import META_PAGES, Journal, local_day
from watcher.shortcuts import is_shortcut, read_shortcut
from watcher.wording import count

# pypdf warns on every slightly odd PDF; those are the service's problem, not the user's.
logging.getLogger("pypdf").setLevel(logging.ERROR)

PDF_MAGIC = b"%PDF-"
PDF_END_MARKER = b"%%EOF"
# Writers append whitespace, a linearisation trailer or incremental-update junk after %%EOF.
EOF_SEARCH_BYTES = 2048
IN_MEMORY_BYTES = 2 * 1024 * 1024  # files up to this size are checked and sent from memory


class FileKind(Enum):
    PDF = "pdf"
    IMAGE = "image"


@dataclass(frozen=True)
class FileFacts:
    kind: FileKind
    pages: int
    size: int
    image_format: str = ""  # "jpeg", "png"… for images
    # The bytes that were checked, for a PDF small enough to be read whole: sending these,
    # not the file again, sends exactly what was counted (and spares reading it twice).
    content: bytes | None = field(default=None, repr=False)


# Files read whole or in big pieces are opened unbuffered (here, below and in the hash): a
# buffered open costs two more system calls (a terminal check and a seek), each a hand-over
# of Python's GIL to a thread that wants it, which under load costs more than the call.


def read_ends(handle: BinaryIO) -> tuple[bytes, bytes]:
    """The first bytes and the last EOF_SEARCH_BYTES of an open file: what is_whole_pdf reads.
    A file that short is read in one go (two system calls instead of six, each a hand-over
    of the GIL on a busy daemon)."""
    handle.seek(0)
    start = handle.read(EOF_SEARCH_BYTES + _HEAD_BYTES)
    if len(start) < EOF_SEARCH_BYTES + _HEAD_BYTES:  # a short read: that was all of it
        return start[:_HEAD_BYTES], start[-EOF_SEARCH_BYTES:]
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - EOF_SEARCH_BYTES))
    return start[:_HEAD_BYTES], handle.read()


_HEAD_BYTES = 16


def is_whole_pdf(head: bytes, tail: bytes) -> bool:
    """A cheap completeness test, for a file that may still be being written or a download.

    Scanners and sync clients create the file first and fill it later; a PDF is only worth
    submitting (or filing) once it starts with its magic and ends with its end marker.
    """
    return head.startswith(PDF_MAGIC) and PDF_END_MARKER in tail


def inspect_file(path: Path, *, outformat: str | None = None) -> FileFacts:
    """What the file is and how many pages it will cost, or FileRejected saying what to do."""
    name = path.name
    try:
        with open_small_in_memory(path) as (handle, size, content):  # once: checks, then pages
            head, tail = read_ends(handle)
            if head.startswith(PDF_MAGIC):
                if not is_whole_pdf(head, tail):
                    raise FileRejected(
                        f"{name} is an incomplete PDF: its end is missing, as when a copy or "
                        "download was cut short. Copy or download it again, then drop the "
                        "complete file in."
                    )
                return FileFacts(FileKind.PDF, _pdf_pages(handle, name), size, content=content)
    except OSError as exc:
        raise FileRejected(f"{name} could not be read ({exc.strerror}).") from None
    if size == 0:
        raise FileRejected(
            f"{name} is empty (0 bytes). Check that the scan or download finished, "
            "then drop the complete file in again."
        )
    image = _image_facts(path)
    if image is None:
        raise FileRejected(
            f"{name} is neither a PDF nor an image: it is {_looks_like(head)}. "
            "Only PDFs and images (JPEG, PNG, TIFF, …) can be converted; if it is a web page "
            "saved under a .pdf name, download the real PDF instead."
        )
    if outformat == "pdf":
        raise FileRejected(
            f"{name} is an image, and the service cannot turn images into PDFs. "
            "Move it to an inbox with another output format (docx, txt, …)."
        )
    pages, image_format = image
    return FileFacts(FileKind.IMAGE, pages, size, image_format)


@contextmanager
def open_small_in_memory(path: Path) -> Iterator[tuple[BinaryIO, int, bytes | None]]:
    """The file to read, its size and, for a small one, its bytes. A small one is read into
    memory with one system call (pypdf then seeks in it dozens of times, and the upload's
    encoder asks it its size and position some twenty times, all for free); a big one is
    buffered, never read whole."""
    with path.open("rb", buffering=0) as raw:
        size = os.fstat(raw.fileno()).st_size
        if size <= IN_MEMORY_BYTES:
            content = raw.read(size)
            if len(content) < size:  # one read is all on a local disk, not on every share
                content += raw.readall()
            yield io.BytesIO(content), len(content), content
        else:
            with io.BufferedReader(raw) as buffered:
                yield buffered, size, None


def _pdf_pages(handle: BinaryIO, name: str) -> int:
    """Pages of an open PDF."""
    try:
        handle.seek(0)
        return _unlocked_pages(PdfReader(handle, strict=False), name)
    except FileRejected:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError):
        raise FileRejected(
            f"{name} is a damaged or incomplete PDF: its pages cannot be read. "
            "Open it in a PDF viewer; if it opens, save a fresh copy and drop that in."
        ) from None


def _unlocked_pages(reader: PdfReader, name: str) -> int:
    if reader.is_encrypted:
        raise FileRejected(
            f"{name} is password- or permission-protected, and the service refuses locked "
            "PDFs. Open it, remove the protection (or print it to a new PDF), and drop the "
            "unlocked copy in again."
        )
    pages = len(reader.pages)  # counted page by page: a declared /Count may be wrong
    if pages == 0:
        raise FileRejected(f"{name} is a PDF with no pages: there is nothing to convert.")
    return pages


def _image_facts(path: Path) -> tuple[int, str] | None:
    """Pages (frames of a multi-page TIFF) and format of an image, or None if it is not one."""
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            image_format = (image.format or "").lower()
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    if frames < 1:
        return None
    return frames, {"jpeg": "jpg", "mpo": "jpg"}.get(image_format, image_format or "img")


def _looks_like(head: bytes) -> str:
    """What a file that is neither a PDF nor an image seems to be, from its first bytes, in
    words ("a web page (HTML)"), never as the bytes themselves."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")):
        return "a web page (HTML)"
    if start.startswith(b"<"):
        return "an XML or HTML document"
    if start.startswith(b"pk\x03\x04"):
        return "a ZIP archive (or an Office document, which is one)"
    if start.startswith((b"{", b"[")):
        return "JSON text"
    if start and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start):
        return "plain text"
    return "of an unknown kind"


# -- the daemon's checks before sending, shared with `check --explain` --------------------------


@dataclass(frozen=True)
class Checked:
    """What the checks before sending learned of a file: a document's facts, or the web
    address an internet shortcut points to (the service fetches it; its pages are not known
    before)."""

    facts: FileFacts | None = None
    url: str | None = None

    @property
    def pages(self) -> int:
        return self.facts.pages if self.facts is not None else 0


def check_source(path: Path, *, outformat: str) -> Checked:
    """The checks a file passes before it may cost anything, or FileRejected saying what to
    do. The daemon's runner asks this before each submission and `check --explain` asks it
    for its dry run: one function, so that the dry run says what the daemon will do."""
    if is_shortcut(path):
        return Checked(url=read_shortcut(path))
    return Checked(facts=inspect_file(path, outformat=outformat))


def reusable_result(journal: Journal, job: Job) -> Job | None:
    """An earlier job for the same bytes with the same settings whose result is still there
    to copy, for nothing; None when there is none. Asked before the checks that cost a read:
    the runner then copies that result, and `check --explain` says it would."""
    for twin in journal.twins(job):
        if twin.state is JobState.DONE and twin.output and twin.output.is_file():
            return twin
    return None


@dataclass(frozen=True)
class Budget:
    """What the credit guard weighs a file against: the balance the service last reported
    (None before its first reply), and the pages sent today against the daily limit (0:
    no limit)."""

    balance: int | None
    sent_today: int
    daily_limit: int

    def after(self, pages: int) -> Budget:
        """The budget once a file of `pages` was sent and converted: the service then reports
        that much less, and today's count has it."""
        balance = None if self.balance is None else self.balance - pages
        return Budget(balance, self.sent_today + pages, self.daily_limit)


def read_budget(journal: Journal, daily_limit: int) -> Budget:
    """The budget as the journal knows it now (today's pages are counted only against a
    daily limit: a read per file saved where there is none)."""
    known = journal.get_meta(META_PAGES)
    balance = int(known) if known is not None else None
    sent_today = journal.pages_charged_on(local_day()) if daily_limit else 0
    return Budget(balance, sent_today, daily_limit)


@dataclass(frozen=True)
class BudgetHold:
    """Why a file must wait instead of spending pages, and until when (None: until the user
    releases it)."""

    reason: str
    until: float | None


def budget_hold(pages: int, budget: Budget, *, job_id: int | None) -> BudgetHold | None:
    """The credit guard and the daily page limit: whether a file of `pages` is held, or None
    when it may go. `job_id` names the job in the advice (None in a dry run: not journaled)."""
    retry = (
        f"`pdfocr-watcher retry {job_id}`"
        if job_id is not None
        else ("`pdfocr-watcher retry JOB` (JOB: its number in `pdfocr-watcher status`)")
    )
    if pages <= 0:
        return None
    if budget.balance is not None and pages > budget.balance:
        return BudgetHold(
            f"it has {count(pages, 'page')} and the account has {budget.balance:,} left. Buy "
            f"more pages at pdfocr.org, then choose Resume queue in the tray or run {retry}",
            None,
        )
    limit, used = budget.daily_limit, budget.sent_today
    if limit and used + pages > limit:
        return BudgetHold(
            f"today's page limit ({limit:,}) would be passed: {count(used, 'page')} "
            f"{'was' if used == 1 else 'were'} sent today and this file has "
            f"{count(pages, 'page')}. It is sent tomorrow, or at once if you choose Resume "
            f"queue in the tray or run {retry}",
            next_local_midnight(),
        )
    return None


def next_local_midnight(now: float | None = None) -> float:
    today = datetime.fromtimestamp(now if now is not None else time.time())
    midnight = datetime.combine(today.date() + timedelta(days=1), datetime.min.time())
    return midnight.timestamp()
