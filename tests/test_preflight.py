"""Local checks before anything is paid for: pages counted, broken files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher import preflight
from watcher.errors import FileRejected
from watcher.preflight import FileKind, inspect_file, is_whole_pdf, read_ends
from watcher.samplepdf import make_pdf

PAGES = ["one", "two", "three"]


def ends(path: Path) -> tuple[bytes, bytes]:
    with path.open("rb") as handle:
        return read_ends(handle)


@pytest.mark.parametrize("in_memory_up_to", [0, 10 * 1024 * 1024])
def test_pages_are_counted_from_memory_or_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory_up_to: int
) -> None:
    """Small PDFs are parsed from memory, big ones from the file: same answer either way."""
    monkeypatch.setattr(preflight, "IN_MEMORY_BYTES", in_memory_up_to)
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(PAGES))
    facts = inspect_file(path, outformat="docx")
    assert (facts.kind, facts.pages, facts.size) == (FileKind.PDF, 3, path.stat().st_size)


@pytest.mark.parametrize("count_entry", [b"/Count 1", b"/Count 7", b"/Xount 3", b"/Count 0"])
def test_pages_are_counted_whatever_the_page_tree_declares(
    tmp_path: Path, count_entry: bytes
) -> None:
    """The credit guard and the daily limit rest on this number: a declared /Count that is
    wrong or missing (a careless writer) must not make a file look cheaper than it is."""
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(PAGES).replace(b"/Count 3", count_entry))
    assert inspect_file(path).pages == 3


@pytest.mark.parametrize("in_memory_up_to", [0, 10 * 1024 * 1024])
def test_a_pdf_cut_short_is_refused_before_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory_up_to: int
) -> None:
    monkeypatch.setattr(preflight, "IN_MEMORY_BYTES", in_memory_up_to)
    whole = make_pdf(PAGES)
    path = tmp_path / "cut.pdf"
    path.write_bytes(whole[: len(whole) // 2])
    assert not is_whole_pdf(*ends(path))
    with pytest.raises(FileRejected, match="incomplete PDF"):
        inspect_file(path)
    damaged = tmp_path / "damaged.pdf"  # its end is there, its insides are not
    damaged.write_bytes(whole[:20] + b"\0" * 200 + whole[-40:])
    assert is_whole_pdf(*ends(damaged))
    with pytest.raises(FileRejected, match="damaged or incomplete PDF"):
        inspect_file(damaged)


def test_empty_and_unreadable_files_are_refused_in_words(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(FileRejected, match="is empty"):
        inspect_file(empty)
    with pytest.raises(FileRejected, match="could not be read"):
        inspect_file(tmp_path / "missing.pdf")
