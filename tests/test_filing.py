"""Filing: names that never overwrite, moves and links that fail instead of replacing, and
files written whole, with the permissions the user's umask gives."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from conftest import umask

from watcher import filing
from watcher.filing import (
    MAX_NAME_BYTES,
    STAGING_PREFIX,
    candidate_names,
    copy_whole,
    link_without_overwrite,
    move_without_overwrite,
    write_reason,
    written_whole,
)

POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- written_whole: the umask's permissions, and nothing left behind on failure ---------------


@POSIX
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_result_gets_the_mode_the_umask_gives(tmp_path: Path, mask: int, expected: int) -> None:
    target = tmp_path / "Invoice.docx"
    with umask(mask), written_whole(target) as out:
        out.write(b"result")
    assert target.read_bytes() == b"result"
    assert mode(target) == expected
    assert listing(tmp_path) == ["Invoice.docx"]


@POSIX
def test_a_reason_file_and_a_copy_get_the_mode_the_umask_gives(tmp_path: Path) -> None:
    source = tmp_path / "twin.txt"
    source.write_text("twin")
    source.chmod(0o600)
    with umask(0o022):
        reason = write_reason(
            tmp_path / "bad.pdf", source=tmp_path / "bad.pdf", reason="broken", advice="redo"
        )
        copy = tmp_path / "copy.txt"
        copy_whole(source, copy)
    assert "What happened: broken" in reason.read_text(encoding="utf-8")
    assert (mode(reason), mode(copy)) == (0o644, 0o644)


def test_a_failed_write_leaves_neither_target_nor_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    with pytest.raises(RuntimeError), written_whole(target, encoding="utf-8") as out:
        out.write("half")
        raise RuntimeError("the download broke")
    assert listing(tmp_path) == []


def test_a_failed_write_leaves_an_earlier_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("whole, from before")
    with pytest.raises(KeyboardInterrupt), written_whole(target) as out:
        out.write(b"half")
        raise KeyboardInterrupt
    assert target.read_text() == "whole, from before"
    assert listing(tmp_path) == ["result.txt"]


def test_the_file_being_written_is_hidden_until_it_is_whole(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    with written_whole(target, encoding="utf-8") as out:
        out.write("text")
        (staged,) = tmp_path.iterdir()
        assert staged.name.startswith(STAGING_PREFIX) and not target.exists()
    assert listing(tmp_path) == ["result.txt"]


# -- candidate names ---------------------------------------------------------------------------


def test_candidate_names_number_the_stem(tmp_path: Path) -> None:
    names = candidate_names(tmp_path, "Invoice 12.pdf")
    assert [next(names).name for _ in range(3)] == [
        "Invoice 12.pdf",
        "Invoice 12 (2).pdf",
        "Invoice 12 (3).pdf",
    ]
    assert next(candidate_names(tmp_path, "README")).name == "README"
    assert [p.name for p in candidate_names(tmp_path, "README")][1] == "README (2)"


def test_candidate_names_of_a_long_name_fit_the_limit_and_keep_the_extension(
    tmp_path: Path,
) -> None:
    long = "ä" * 126 + ".pdf"  # 256 bytes: one too many
    names = candidate_names(tmp_path, long)
    next(names)  # the name as given
    numbered = [next(names).name for _ in range(20)]
    assert all(len(name.encode("utf-8")) <= MAX_NAME_BYTES for name in numbered)
    assert numbered[0].endswith(" (2).pdf") and numbered[-1].endswith(" (21).pdf")
    assert len(set(numbered)) == 20


# -- links and moves that never overwrite ------------------------------------------------------


def test_a_link_makes_the_same_file_and_never_replaces_one(tmp_path: Path) -> None:
    source, target = tmp_path / "a.txt", tmp_path / "b.txt"
    source.write_text("new")
    link_without_overwrite(source, target)
    assert target.samefile(source)
    taken = tmp_path / "taken.txt"
    taken.write_text("the user's")
    with pytest.raises(FileExistsError):
        link_without_overwrite(source, taken)
    assert taken.read_text() == "the user's"


def test_without_hard_links_a_copy_claims_the_name_exclusively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "hard links are not supported here")

    monkeypatch.setattr(os, "link", no_links)
    source, target = tmp_path / "a.txt", tmp_path / "b.txt"
    source.write_text("content")
    link_without_overwrite(source, target)
    assert target.read_text() == "content" and not target.samefile(source)
    with pytest.raises(FileExistsError):
        link_without_overwrite(source, target)
    assert target.read_text() == "content"


def test_another_link_error_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: object, target: object) -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "link", broken)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(OSError, match="input/output"):
        link_without_overwrite(tmp_path / "a.txt", tmp_path / "b.txt")
    assert not (tmp_path / "b.txt").exists()


def test_a_move_takes_the_next_free_name_and_removes_the_source(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "scan.pdf").write_text("first")
    (archive / "scan (2).pdf").write_text("second")
    source = tmp_path / "scan.pdf"
    source.write_text("third")
    moved = move_without_overwrite(source, archive)
    assert moved == archive / "scan (3).pdf" and moved.read_text() == "third"
    assert not source.exists()
    assert (archive / "scan.pdf").read_text() == "first"
    assert (archive / "scan (2).pdf").read_text() == "second"


def test_a_move_creates_the_folder_and_can_rename(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_text("x")
    moved = move_without_overwrite(source, tmp_path / "new" / "folder", "renamed.pdf")
    assert moved == tmp_path / "new" / "folder" / "renamed.pdf" and moved.read_text() == "x"
    assert not source.exists()


def test_a_move_across_devices_copies_under_a_free_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_device(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "invalid cross-device link")

    monkeypatch.setattr(os, "link", other_device)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "doc.pdf").write_text("taken")
    source = tmp_path / "doc.pdf"
    source.write_text("moved")
    moved = move_without_overwrite(source, folder)
    assert moved == folder / "doc (2).pdf" and moved.read_text() == "moved"
    assert (folder / "doc.pdf").read_text() == "taken" and not source.exists()


# -- names: results, staged results, reasons -------------------------------------------------


@pytest.mark.parametrize(
    ("source", "outformat", "expected"),
    [
        ("Invoice 12.pdf", "docx", "Invoice 12.docx"),
        ("scan.tar.pdf", "txt", "scan.tar.txt"),
        ("photo.JPG", "txt", "photo.txt"),
        ("no-extension", "pdf", "no-extension.pdf"),
    ],
)
def test_a_result_is_named_after_its_original(source: str, outformat: str, expected: str) -> None:
    assert filing.result_name(source, outformat) == expected


def test_a_long_result_name_is_cut_to_fit_and_keeps_its_extension() -> None:
    name = filing.result_name("é" * 200 + ".pdf", "docx")  # 400 bytes of stem in UTF-8
    assert name.endswith(".docx") and len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.startswith("é" * 100)


def test_a_staged_result_is_hidden_and_only_this_jobs() -> None:
    outbox = Path("/outbox")
    staged = filing.staging_path(outbox, 7, "scan-ab12.pdf", "txt")
    assert staged == outbox / f"{STAGING_PREFIX}job7-scan-ab12.txt"
    assert staged.name.startswith(".")
    # Job numbers are reused (another journal, a compacted one); the token tells them apart.
    assert staged != filing.staging_path(outbox, 7, "scan-cd34.pdf", "txt")


def test_a_reason_file_sits_beside_the_original_and_fits_the_name_limit(tmp_path: Path) -> None:
    assert filing.reason_path(tmp_path / "a.pdf") == tmp_path / "a.pdf.error.txt"
    long = filing.reason_path(tmp_path / ("x" * 250 + ".pdf"))
    assert long.name.endswith(filing.ERROR_SUFFIX)
    assert len(long.name.encode()) <= MAX_NAME_BYTES


# -- same content, set aside, removed quietly ---------------------------------------------------


def test_same_content_is_the_same_file_or_a_byte_for_byte_copy(tmp_path: Path) -> None:
    original = tmp_path / "a.txt"
    original.write_bytes(b"converted text")
    link = tmp_path / "link.txt"
    os.link(original, link)
    copy = tmp_path / "copy.txt"
    copy_whole(original, copy)
    other = tmp_path / "other.txt"
    other.write_bytes(b"converted TEXT")  # same size, other bytes
    assert filing.same_content(original, link) and filing.same_content(original, copy)
    assert not filing.same_content(original, other)
    assert not filing.same_content(original, tmp_path / "missing.txt")


def test_set_aside_moves_the_file_under_a_free_name_with_its_reason(tmp_path: Path) -> None:
    inbox, failed = tmp_path / "inbox", tmp_path / "failed"
    inbox.mkdir()
    failed.mkdir()
    (failed / "scan.pdf").write_bytes(b"an earlier failure")
    source = inbox / "scan.pdf"
    source.write_bytes(b"%PDF-1.4 broken")
    moved = filing.set_aside(source, failed, reason="it is damaged", advice="Scan it again.")
    assert moved == failed / "scan (2).pdf" and not source.exists()
    assert moved.read_bytes() == b"%PDF-1.4 broken"
    assert (failed / "scan.pdf").read_bytes() == b"an earlier failure"
    text = filing.reason_path(moved).read_text(encoding="utf-8")
    assert "File: scan.pdf" in text and f"From: {inbox}" in text
    assert "What happened: it is damaged" in text and "What to do: Scan it again." in text


def test_remove_quietly_accepts_a_missing_file_and_nothing(tmp_path: Path) -> None:
    present = tmp_path / "staged.txt"
    present.write_bytes(b"x")
    filing.remove_quietly(present)
    filing.remove_quietly(present)  # gone already
    filing.remove_quietly(None)
    assert not present.exists()
