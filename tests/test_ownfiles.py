"""The registry of the daemon's own recent files: what it recognises, and for how long."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from watcher.ownfiles import OwnFiles, Placement


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_file(folder: Path, name: str, content: bytes = b"%PDF-1.4 result\n%%EOF\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def test_a_placed_file_is_known_under_any_name_while_unchanged(tmp_path: Path) -> None:
    own = OwnFiles()
    result = make_file(tmp_path / "out", "scan.pdf")
    assert own.placed(result) is None
    assert own.remember(result)
    placement = own.placed(result)
    assert placement is not None and placement.folder == tmp_path / "out"
    linked = tmp_path / "in" / "scan.pdf"
    linked.parent.mkdir()
    os.link(result, linked)
    assert own.placed(linked) == placement  # a hard link: the same file
    moved = tmp_path / "in" / "renamed.pdf"
    linked.rename(moved)
    assert own.placed(moved) == placement  # a move keeps identity, size and time
    with moved.open("ab") as out:
        out.write(b"% edited\n")
    assert own.placed(moved) is None and own.placed(result) is None  # changed: a new file


def test_a_copy_is_not_the_same_file(tmp_path: Path) -> None:
    own = OwnFiles()
    result = make_file(tmp_path / "out", "scan.pdf")
    own.remember(result)
    copy = make_file(tmp_path / "in", "scan.pdf", result.read_bytes())
    os.utime(copy, ns=(result.stat().st_atime_ns, result.stat().st_mtime_ns))
    assert own.placed(copy) is None


def test_the_folder_shown_can_be_given(tmp_path: Path) -> None:
    """Registered under its hidden staged name, shown as placed in the outbox."""
    own = OwnFiles()
    staged = make_file(tmp_path / "out" / ".staging", ".pdfocr-job1.pdf")
    assert own.remember(staged, folder=tmp_path / "out")
    placement = own.placed(staged)
    assert placement is not None and placement.folder == tmp_path / "out"


def test_files_are_forgotten_after_a_while(tmp_path: Path, clock: Clock) -> None:
    own = OwnFiles(keep_seconds=60, clock=clock)
    first = make_file(tmp_path, "first.pdf")
    own.remember(first)
    clock.now += 30
    second = make_file(tmp_path, "second.pdf")
    own.remember(second)
    clock.now += 30
    assert own.placed(first) is None and own.placed(second) is not None
    assert len(own) == 1
    own.remember(second)  # placed again: kept from now on
    clock.now += 59
    assert own.placed(second) is not None
    clock.now += 1
    assert own.placed(second) is None and len(own) == 0


def test_at_most_max_files_are_kept_oldest_forgotten_first(tmp_path: Path) -> None:
    own = OwnFiles(max_files=3)
    files = [make_file(tmp_path, f"r{number}.pdf") for number in range(5)]
    for path in files:
        own.remember(path)
    assert len(own) == 3
    assert [own.placed(path) is not None for path in files] == [False, False, True, True, True]


def test_a_file_that_cannot_be_looked_at_is_not_registered(tmp_path: Path) -> None:
    own = OwnFiles()
    assert not own.remember(tmp_path / "gone.pdf")
    assert own.placed(tmp_path / "gone.pdf") is None
    assert len(own) == 0


def test_placement_says_where_and_when() -> None:
    at = time.mktime((2024, 5, 6, 14, 5, 0, 0, 0, -1))
    assert Placement(Path("/home/me/out"), at).describe() == f"{Path('/home/me/out')} at 14:05"


def test_filing_threads_and_the_watcher_may_use_it_at_once(tmp_path: Path) -> None:
    own = OwnFiles(max_files=50)
    files = [make_file(tmp_path, f"f{number}.pdf") for number in range(200)]
    errors: list[BaseException] = []

    def work(chunk: list[Path]) -> None:
        try:
            for path in chunk:
                own.remember(path)
                own.placed(path)
                len(own)
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(files[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(own) == 50
    assert sum(own.placed(path) is not None for path in files) == 50
