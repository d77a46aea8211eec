"""The inbox watcher: what it accepts, and that it hands each complete file on exactly once."""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from watcher import inbox
from watcher.config import Config, InboxRule, parse_config
from watcher.inbox import InboxWatcher, OnReady, ReadyFile, judge
from watcher.ownfiles import OwnFiles
from watcher.samplepdf import make_pdf

pytestmark = pytest.mark.timeout(30)

PDF = make_pdf(["Hello from the inbox"])
SETTLE = 0.3


def make_config(
    tmp_path: Path,
    *,
    inboxes: tuple[str, ...] = ("in",),
    settle: float = SETTLE,
    recursive: bool = False,
    polling: str = "never",
    extra: str = "",
) -> Config:
    """A Config with inboxes under tmp_path (created) and no periodic rescan."""
    text = f"""
        [watch]
        settle_seconds = {settle}
        recursive = {str(recursive).lower()}
        polling = "{polling}"
        rescan_seconds = 0
        {extra}
        [files]
        outbox = '{tmp_path / "out"}'
        archive = '{tmp_path / "archive"}'
        failed = '{tmp_path / "failed"}'
        state_dir = '{tmp_path / "state"}'
    """
    for name in inboxes:
        (tmp_path / name).mkdir(exist_ok=True)
        text += f"[[inbox]]\npath = '{tmp_path / name}'\noutformat = 'docx'\n"
    return parse_config(text, tmp_path / "config.toml", env={})


class Recorder:
    """An on_ready callback that takes every file and remembers each with its size then."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Path, int, InboxRule, float]] = queue.Queue()

    def __call__(self, files: Sequence[ReadyFile]) -> list[Path]:
        for path, rule in files:
            self.calls.put((path, path.stat().st_size, rule, time.monotonic()))
        return []

    def next(self, timeout: float = 5.0) -> tuple[Path, int, InboxRule, float]:
        try:
            return self.calls.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"nothing was handed on within {timeout} s")

    def assert_quiet(self, seconds: float) -> None:
        with pytest.raises(queue.Empty):
            call = self.calls.get(timeout=seconds)
            pytest.fail(f"unexpectedly handed on: {call[0].name}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def start_watcher(recorder: Recorder) -> Iterator[Callable[..., InboxWatcher]]:
    """Factory for started watchers (reporting to `recorder` by default), stopped afterwards."""
    started: list[InboxWatcher] = []

    def start(
        config: Config, on_ready: OnReady = recorder, own_files: OwnFiles | None = None
    ) -> InboxWatcher:
        watcher = InboxWatcher(config, on_ready, own_files)
        watcher.start()
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


# --- judge --------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, extra='ignore = ["*-draft.pdf"]')


def verdict_for(config: Config, name: str) -> inbox.Verdict:
    path = config.inboxes[0].path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PDF)
    return judge(config, path)


@pytest.mark.parametrize("name", ["scan.pdf", "SCAN.PDF", "link.url", "Link.WEBLOC"])
def test_judge_accepts_matching_files_and_shortcuts(config: Config, name: str) -> None:
    verdict = verdict_for(config, name)
    assert verdict.accepted, verdict.reason
    assert verdict.rule is config.inboxes[0]
    assert str(config.inboxes[0].path) in verdict.reason


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (".hidden.pdf", "built-in pattern '.*'"),
        ("~$report.pdf", "'~$*'"),
        ("scan.pdf.crdownload", "'*.crdownload'"),
        ("scan.pdf.part", "'*.part'"),
        ("Letter-DRAFT.pdf", "'*-draft.pdf' from ignore in [watch]"),
        ("notes.txt", "none of its inbox's patterns: '*.pdf'"),
    ],
)
def test_judge_names_the_pattern_that_refuses(config: Config, name: str, said: str) -> None:
    verdict = verdict_for(config, name)
    assert not verdict.accepted
    assert verdict.reason.startswith(name) and said in verdict.reason
    assert verdict.rule is config.inboxes[0]


def test_judge_subfolders_need_recursive(tmp_path: Path) -> None:
    flat = make_config(tmp_path)
    verdict = verdict_for(flat, "sub/scan.pdf")
    assert not verdict.accepted and "recursive = true" in verdict.reason
    assert verdict_for(make_config(tmp_path, recursive=True), "sub/scan.pdf").accepted


def test_judge_refuses_files_under_ignored_folders(tmp_path: Path) -> None:
    verdict = verdict_for(make_config(tmp_path, recursive=True), "sub/@eaDir/scan.pdf")
    assert not verdict.accepted and "'@eaDir'" in verdict.reason


def test_judge_never_follows_symlinks(config: Config, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.pdf"
    target.write_bytes(PDF)
    link = config.inboxes[0].path / "link.pdf"
    link.symlink_to(target)
    verdict = judge(config, link)
    assert not verdict.accepted and "symbolic link" in verdict.reason


def test_judge_refuses_folders_and_outsiders(config: Config, tmp_path: Path) -> None:
    folder = config.inboxes[0].path / "folder.pdf"
    folder.mkdir()
    assert "a folder, not a file" in judge(config, folder).reason
    outside = tmp_path / "scan.pdf"
    outside.write_bytes(PDF)
    verdict = judge(config, outside)
    assert not verdict.accepted and verdict.rule is None
    assert "not in any inbox" in verdict.reason


def test_network_file_systems_are_found_by_longest_mount_point() -> None:
    mounts = "/dev/vda / ext4 rw 0 0\nnas:/scans /mnt/my\\040nas nfs4 rw 0 0\n"
    assert inbox._fs_type(Path("/mnt/my nas/inbox"), mounts) == "nfs4"
    assert inbox._fs_type(Path("/mnt/my nasty"), mounts) == "ext4"


# --- watching -----------------------------------------------------------------------------


def test_file_present_before_start_is_handed_on_once(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path)
    scan = config.inboxes[0].path / "scan.pdf"
    scan.write_bytes(PDF)
    watcher = start_watcher(config)
    path, size, rule, _ = recorder.next()
    assert (path, size, rule) == (scan, len(PDF), config.inboxes[0])
    watcher.rescan()
    recorder.assert_quiet(3 * SETTLE)
    assert watcher.pending_count == 0


def test_file_written_in_chunks_is_handed_on_after_its_last_chunk(
    tmp_path, start_watcher, recorder
) -> None:
    """Each chunk is a complete PDF update (as scanners write page by page): only the settle
    clock can tell that more is coming."""
    config = make_config(tmp_path, settle=0.5)
    start_watcher(config)
    scan = config.inboxes[0].path / "scan.pdf"
    scan.write_bytes(PDF)
    for _ in range(8):
        time.sleep(0.25)
        with scan.open("ab") as out:
            out.write(b"% another page\n%%EOF\n")
    last_write = time.monotonic()
    path, size, _, when = recorder.next()
    assert path == scan and size == scan.stat().st_size
    assert when - last_write >= 0.45
    recorder.assert_quiet(1.0)


@pytest.mark.parametrize("polling", ["never", "always"])
def test_a_file_rewritten_in_place_is_handed_on_again(
    tmp_path, start_watcher, recorder, polling
) -> None:
    """No create, no move: only the write tells (a close after writing, with inotify). A new
    link to the file changes its attributes, not its content: nothing to hand on."""
    config = make_config(tmp_path, polling=polling)
    start_watcher(config)
    scan = config.inboxes[0].path / "scan.pdf"
    scan.write_bytes(PDF)
    assert recorder.next()[:2] == (scan, len(PDF))
    os.link(scan, tmp_path / "a-link-elsewhere.pdf")
    recorder.assert_quiet(3 * SETTLE)
    with scan.open("r+b") as out:
        out.seek(0, os.SEEK_END)
        out.write(b"% one more page\n%%EOF\n")
    assert recorder.next()[:2] == (scan, scan.stat().st_size)


def test_file_created_empty_is_handed_on_once_filled(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path, settle=0.8)
    start_watcher(config)
    upload = config.inboxes[0].path / "upload.pdf"
    upload.touch()
    time.sleep(0.3)
    upload.write_bytes(PDF)
    assert recorder.next()[:2] == (upload, len(PDF))
    recorder.assert_quiet(2 * SETTLE)


def test_empty_file_that_stays_empty_is_handed_on(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path)
    start_watcher(config)
    (config.inboxes[0].path / "empty.pdf").touch()
    assert recorder.next()[1] == 0


def test_pdf_waits_for_its_end_marker(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path)
    start_watcher(config)
    scan = config.inboxes[0].path / "scan.pdf"
    truncated = PDF[: PDF.rindex(b"%%EOF")]
    scan.write_bytes(truncated)
    recorder.assert_quiet(4 * SETTLE)
    with scan.open("ab") as out:
        out.write(b"%%EOF\n")
    assert recorder.next()[:2] == (scan, len(truncated) + 6)


def test_pdf_never_finished_is_handed_on_after_standing_still(
    tmp_path, start_watcher, recorder, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(inbox, "GIVE_UP_SECONDS", 1.0)
    config = make_config(tmp_path, settle=0.1)
    start_watcher(config)
    scan = config.inboxes[0].path / "broken.pdf"
    scan.write_bytes(PDF[:100])
    written = time.monotonic()
    path, _, _, when = recorder.next()
    assert path == scan and when - written >= 0.9
    assert "broken.pdf" in caplog.text and "unfinished" in caplog.text


def test_browser_download_is_handed_on_once_renamed(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path)
    start_watcher(config)
    partial = config.inboxes[0].path / "invoice.pdf.crdownload"
    partial.write_bytes(PDF)
    recorder.assert_quiet(3 * SETTLE)  # long enough to be handed on, were it not ignored
    partial.rename(partial.with_suffix(""))
    assert recorder.next()[:2] == (partial.with_suffix(""), len(PDF))
    recorder.assert_quiet(3 * SETTLE)


def test_file_moved_in_from_outside_and_again(tmp_path, start_watcher, recorder) -> None:
    """Moving keeps size and mtime: a file moved out and back in is a new arrival."""
    config = make_config(tmp_path)
    start_watcher(config)
    outside, inside = tmp_path / "outside.pdf", config.inboxes[0].path / "moved.pdf"
    outside.write_bytes(PDF)
    outside.rename(inside)
    assert recorder.next()[0] == inside
    inside.rename(outside)
    time.sleep(0.2)  # let the observer report it gone
    outside.rename(inside)
    assert recorder.next()[0] == inside


def test_folder_moved_into_recursive_inbox(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path, recursive=True)
    start_watcher(config)
    batch = tmp_path / "batch"
    (batch / "sub").mkdir(parents=True)
    for name in ("a.pdf", "b.pdf", "sub/c.pdf"):
        (batch / name).write_bytes(PDF)
    batch.rename(config.inboxes[0].path / "batch")
    names = sorted(recorder.next()[0].name for _ in range(3))
    assert names == ["a.pdf", "b.pdf", "c.pdf"]
    recorder.assert_quiet(3 * SETTLE)


def test_file_deleted_before_settling_is_forgotten(tmp_path, start_watcher, recorder, caplog):
    config = make_config(tmp_path, settle=0.5)
    watcher = start_watcher(config)
    caplog.set_level(logging.WARNING, logger="watcher.inbox")
    scan = config.inboxes[0].path / "oops.pdf"
    scan.write_bytes(PDF)
    deadline = time.monotonic() + 2
    while watcher.pending_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watcher.pending_count == 1
    scan.unlink()
    recorder.assert_quiet(1.0)
    assert watcher.pending_count == 0
    assert caplog.records == []


def test_missing_inbox_is_watched_after_a_rescan(tmp_path, start_watcher, recorder, caplog):
    """No observer watches a folder that did not exist at start: only rescan() can find the
    file; after it, the folder is watched, even once deleted and recreated."""
    config = make_config(tmp_path)
    folder = config.inboxes[0].path
    folder.rmdir()
    watcher = start_watcher(config)
    assert str(folder) in caplog.text and not folder.exists()
    folder.mkdir()
    (folder / "first.pdf").write_bytes(PDF)
    recorder.assert_quiet(3 * SETTLE)
    watcher.rescan()
    assert recorder.next()[0].name == "first.pdf"
    shutil.rmtree(folder)
    folder.mkdir()
    time.sleep(0.2)  # let the observer report the deletion
    watcher.rescan()
    (folder / "second.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "second.pdf"


def test_a_failing_hand_on_does_not_stop_the_watcher(
    tmp_path, start_watcher, recorder, caplog
) -> None:
    """The daemon could not take a file (a name its journal cannot store, say): it is
    offered again at the next rescan, and files arriving later are handed on as usual."""
    failures = []

    def on_ready(files: Sequence[ReadyFile]) -> list[Path]:
        if not failures:
            failures.append([path.name for path, _ in files])
            raise RuntimeError("boom")
        return recorder(files)

    config = make_config(tmp_path)
    watcher = start_watcher(config, on_ready)
    (config.inboxes[0].path / "first.pdf").write_bytes(PDF)
    deadline = time.monotonic() + 5
    while "boom" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert failures == [["first.pdf"]]
    assert "could not hand on first.pdf" in caplog.text and "boom" in caplog.text
    (config.inboxes[0].path / "second.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "second.pdf"
    recorder.assert_quiet(SETTLE * 3)  # not offered again before a rescan
    watcher.rescan()
    assert recorder.next()[0].name == "first.pdf"


def test_one_file_the_daemon_chokes_on_does_not_hold_back_its_batch(
    tmp_path, start_watcher, recorder, caplog
) -> None:
    def on_ready(files: Sequence[ReadyFile]) -> list[Path]:
        if any(path.name == "odd.pdf" for path, _ in files):
            raise UnicodeEncodeError("utf-8", "odd", 0, 1, "surrogates not allowed")
        return recorder(files)

    config = make_config(tmp_path, settle=1.0)
    written = time.time()
    names = ["a.pdf", "odd.pdf", "b.pdf", "c.pdf"]
    for name in names:
        path = config.inboxes[0].path / name
        path.write_bytes(PDF)
        os.utime(path, (written, written))  # due together: one batch
    start_watcher(config, on_ready)
    taken = {recorder.next()[0].name for _ in range(3)}
    assert taken == {"a.pdf", "b.pdf", "c.pdf"}
    assert "could not hand on odd.pdf" in caplog.text


def test_files_the_daemon_did_not_take_are_offered_again_at_the_next_rescan(
    tmp_path, start_watcher, recorder
) -> None:
    offered: list[str] = []

    def on_ready(files: Sequence[ReadyFile]) -> list[Path]:
        offered.extend(path.name for path, _ in files)
        recorder(files)
        return [path for path, _ in files if path.name == "unreadable.pdf"]

    config = make_config(tmp_path)
    watcher = start_watcher(config, on_ready)
    for name in ("unreadable.pdf", "fine.pdf"):
        (config.inboxes[0].path / name).write_bytes(PDF)
    assert {recorder.next()[0].name, recorder.next()[0].name} == {"unreadable.pdf", "fine.pdf"}
    watcher.rescan()
    assert recorder.next()[0].name == "unreadable.pdf"
    recorder.assert_quiet(SETTLE * 3)
    assert sorted(offered) == ["fine.pdf", "unreadable.pdf", "unreadable.pdf"]


def test_files_settling_together_are_handed_on_together(tmp_path, start_watcher) -> None:
    """A burst is journaled in a few commits: one call carries every file due at once, up to
    HAND_ON_BATCH of them."""
    calls: queue.Queue[int] = queue.Queue()

    def on_ready(files: Sequence[ReadyFile]) -> list[Path]:
        calls.put(len(files))
        return []

    config = make_config(tmp_path, settle=2.5)  # all are scanned well before they are due
    count = inbox.HAND_ON_BATCH + 36
    written = time.time()
    for number in range(count):
        path = config.inboxes[0].path / f"scan{number:03}.pdf"
        path.write_bytes(PDF)
        os.utime(path, (written, written))  # last written at the same moment: due together
    start_watcher(config, on_ready)
    sizes = []
    while sum(sizes) < count:
        sizes.append(calls.get(timeout=10))
    assert sizes == [inbox.HAND_ON_BATCH, 36]


def test_update_config_watches_added_inboxes_and_releases_removed_ones(
    tmp_path, start_watcher, recorder
) -> None:
    watcher = start_watcher(make_config(tmp_path, inboxes=("a",)))
    second = tmp_path / "b"
    second.mkdir()
    (second / "waiting.pdf").write_bytes(PDF)
    recorder.assert_quiet(3 * SETTLE)
    config = make_config(tmp_path, inboxes=("a", "b"))
    watcher.update_config(config)
    path, _, rule, _ = recorder.next()
    assert path.name == "waiting.pdf" and rule is config.inboxes[1]
    (second / "new.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "new.pdf"
    watcher.update_config(make_config(tmp_path, inboxes=("b",)))
    (tmp_path / "a" / "released.pdf").write_bytes(PDF)
    recorder.assert_quiet(3 * SETTLE)


def test_polling_mode_always(tmp_path, start_watcher, recorder, monkeypatch) -> None:
    def no_native_observer() -> None:
        raise AssertionError("polling = always must not use the native observer")

    monkeypatch.setattr(inbox, "Observer", no_native_observer)
    config = make_config(tmp_path, polling="always")
    start_watcher(config)
    (config.inboxes[0].path / "polled.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "polled.pdf"


def test_stop_is_idempotent_and_ends_the_threads(tmp_path, start_watcher) -> None:
    """(Idle CPU cost is measured in benchmarks/, not asserted here: timings are noisy.)"""
    before = {thread.name for thread in threading.enumerate()}
    watcher = start_watcher(make_config(tmp_path))
    watcher.stop()
    watcher.stop()
    assert {thread.name for thread in threading.enumerate() if thread.is_alive()} <= before


def test_many_files_at_once(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path)
    start_watcher(config)
    for index in range(1000):
        (config.inboxes[0].path / f"scan-{index}.pdf").write_bytes(PDF)
    names = {recorder.next(timeout=10)[0].name for _ in range(1000)}
    assert len(names) == 1000
    recorder.assert_quiet(2 * SETTLE)


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlink_dropped_in_is_never_handed_on(tmp_path, start_watcher, recorder) -> None:
    config = make_config(tmp_path)
    start_watcher(config)
    target = tmp_path / "target.pdf"
    target.write_bytes(PDF)
    (config.inboxes[0].path / "link.pdf").symlink_to(target)
    (config.inboxes[0].path / "real.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "real.pdf"
    recorder.assert_quiet(2 * SETTLE)


# --- our own results, seen again ----------------------------------------------------------


def own_result_messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.INFO and record.getMessage().startswith(f"{name} is one of")
    ]


def test_our_own_result_linked_into_an_inbox_is_not_handed_on(
    tmp_path: Path,
    start_watcher: Callable[..., InboxWatcher],
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loop no rules check can see (a sync tool, a share mounted again later) brings a
    result back into an inbox as the same file: it is left alone, and said so once; a file
    of the user's beside it is handed on as usual."""
    caplog.set_level(logging.INFO, logger="watcher.inbox")
    config = make_config(tmp_path)
    watcher = start_watcher(config)
    outbox = tmp_path / "out"
    outbox.mkdir()
    result = outbox / "scan.pdf"
    result.write_bytes(PDF)
    assert watcher.own_files.remember(result)
    inbox_folder = config.inboxes[0].path
    os.link(result, inbox_folder / "scan.pdf")  # the same inode, under the inbox
    (inbox_folder / "ordinary.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "ordinary.pdf"
    recorder.assert_quiet(3 * SETTLE)
    placement = watcher.own_files.placed(result)
    assert placement is not None and placement.folder == outbox
    assert re.fullmatch(rf"{re.escape(str(outbox))} at \d\d:\d\d", placement.describe())
    assert own_result_messages(caplog, "scan.pdf") == [
        f"scan.pdf is one of our own results (placed in {placement.describe()}); "
        "it is not converted again"
    ]
    watcher.rescan()  # looked at again: still not handed on, and not logged again
    recorder.assert_quiet(3 * SETTLE)
    assert len(own_result_messages(caplog, "scan.pdf")) == 1
    assert watcher.pending_count == 0


def test_our_own_result_changed_since_is_a_new_file(
    tmp_path: Path, start_watcher: Callable[..., InboxWatcher], recorder: Recorder
) -> None:
    """Known by identity and by size and time: once the user edits it, it is theirs."""
    config = make_config(tmp_path)
    own_files = OwnFiles()
    watcher = start_watcher(config, own_files=own_files)
    assert watcher.own_files is own_files
    result = config.inboxes[0].path.parent / "result.pdf"
    result.write_bytes(PDF)
    own_files.remember(result)
    linked = config.inboxes[0].path / "result.pdf"
    os.link(result, linked)
    recorder.assert_quiet(3 * SETTLE)
    with linked.open("ab") as out:
        out.write(b"% annotated by the user\n%%EOF\n")
    assert recorder.next()[:2] == (linked, linked.stat().st_size)


def test_each_watcher_has_its_own_registry_by_default(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    first, second = InboxWatcher(config, Recorder()), InboxWatcher(config, Recorder())
    assert isinstance(first.own_files, OwnFiles) and first.own_files is not second.own_files


# --- files that cannot be read --------------------------------------------------------------


class Reports:
    """An on_unreadable callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Path, InboxRule, str]] = queue.Queue()

    def __call__(self, path: Path, rule: InboxRule, reason: str) -> None:
        self.calls.put((path, rule, reason))

    def next(self, timeout: float = 5.0) -> tuple[Path, InboxRule, str]:
        try:
            return self.calls.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"nothing was reported unreadable within {timeout} s")


def start_reporting(request: pytest.FixtureRequest, watcher: InboxWatcher) -> InboxWatcher:
    watcher.start()
    request.addfinalizer(watcher.stop)
    return watcher


def test_inspect_says_why_a_file_cannot_be_read(tmp_path: Path) -> None:
    """Entries no mode can make readable, so this holds for root too (judge() keeps both out
    of the watcher: they stand for a file that cannot be opened)."""
    dangling = tmp_path / "dangling.pdf"
    dangling.symlink_to(tmp_path / "missing.pdf")
    folder = tmp_path / "folder.pdf"
    folder.mkdir()
    assert inbox._inspect(dangling) == inbox.Contents(
        complete=False, unreadable="No such file or directory"
    )
    if os.name != "nt":  # Windows says "Permission denied" for a folder
        assert inbox._inspect(folder).unreadable == "Is a directory"


def test_inspect_tells_whole_files_from_unfinished_ones(tmp_path: Path) -> None:
    cases = {
        "whole.pdf": (PDF, True),
        "no-end-marker.pdf": (PDF[: PDF.rindex(b"%%EOF")], False),
        "empty.pdf": (b"", True),  # not a PDF (yet): the daemon says what is wrong with it
        "link.url": (b"[InternetShortcut]\nURL=https://example.org/a.pdf\n", True),
    }
    for name, (content, complete) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert inbox._inspect(path) == inbox.Contents(complete=complete), name


def test_a_file_that_cannot_be_opened_is_reported_once_and_not_handed_on(
    tmp_path, recorder, monkeypatch, caplog, request
) -> None:
    """The watcher's own look inside fails (here it opens a dangling link in the file's
    place: as root no file mode would stop it): after a few tries it is told, with why, once,
    at WARNING by default, and left alone until it changes."""
    monkeypatch.setattr(inbox, "GIVE_UP_SECONDS", 1.0)
    real_inspect, broken = inbox._inspect, [True]
    dangling = tmp_path / "nowhere.pdf"
    dangling.symlink_to(tmp_path / "missing.pdf")

    def inspect(path: Path) -> inbox.Contents:
        return real_inspect(dangling if broken and path.name == "locked.pdf" else path)

    monkeypatch.setattr(inbox, "_inspect", inspect)
    config = make_config(tmp_path, settle=0.1)
    watcher = start_reporting(request, InboxWatcher(config, recorder))
    locked = config.inboxes[0].path / "locked.pdf"
    locked.write_bytes(PDF)
    written = time.monotonic()
    (config.inboxes[0].path / "fine.pdf").write_bytes(PDF)
    assert recorder.next()[0].name == "fine.pdf"

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    deadline = time.monotonic() + 5
    while not warnings() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert time.monotonic() - written >= 1.0  # not at the first failure
    [message] = warnings()
    assert message.startswith("locked.pdf cannot be read (No such file or directory; tried ")
    assert "left alone until it changes" in message
    watcher.rescan()
    recorder.assert_quiet(0.5)  # neither handed on, nor looked at again
    assert len(warnings()) == 1 and watcher.pending_count == 0
    broken.clear()  # the user fixes it, and saves it again
    with locked.open("ab") as out:
        out.write(b"% saved again\n%%EOF\n")
    assert recorder.next()[:2] == (locked, locked.stat().st_size)


def test_a_mode_000_file_is_reported_to_on_unreadable(tmp_path, recorder, monkeypatch, request):
    """The real thing, where the user running the tests cannot read a mode-000 file."""
    config = make_config(tmp_path, settle=0.1)
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        probe.read_bytes()
    except PermissionError:
        pass
    else:
        pytest.skip("this user reads mode-000 files (root, or Windows): nothing to test")
    monkeypatch.setattr(inbox, "GIVE_UP_SECONDS", 1.0)
    reports = Reports()
    start_reporting(request, InboxWatcher(config, recorder, on_unreadable=reports))
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(PDF)
    locked.chmod(0)
    locked.rename(config.inboxes[0].path / locked.name)
    path, rule, reason = reports.next()
    assert (path.name, rule) == ("locked.pdf", config.inboxes[0])
    assert reason.startswith("Permission denied; tried ")
    recorder.assert_quiet(0.3)


def test_a_file_the_daemon_cannot_read_is_reported_at_the_third_try(
    tmp_path, monkeypatch, request, caplog
) -> None:
    """The daemon returns it unread: offered again at the next rescan, up to three times
    over at least the give-up time; then on_unreadable is told, and it is offered no more
    until it changes."""
    offered: queue.Queue[str] = queue.Queue()

    def on_ready(files: Sequence[ReadyFile]) -> list[Path]:
        for path, _ in files:
            offered.put(path.name)
        return [path for path, _ in files]

    def next_offer() -> str:
        try:
            return offered.get(timeout=5)
        except queue.Empty:
            pytest.fail("not offered within 5 s")

    monkeypatch.setattr(inbox, "GIVE_UP_SECONDS", 1.0)
    config = make_config(tmp_path, settle=0.1)
    reports = Reports()
    watcher = start_reporting(request, InboxWatcher(config, on_ready, on_unreadable=reports))
    scan = config.inboxes[0].path / "scan.pdf"
    scan.write_bytes(PDF)
    assert next_offer() == "scan.pdf"
    first_failure = time.monotonic()
    watcher.rescan()
    assert next_offer() == "scan.pdf"
    assert reports.calls.empty()
    time.sleep(max(0.0, first_failure + 1.05 - time.monotonic()))
    watcher.rescan()
    assert next_offer() == "scan.pdf"
    path, rule, reason = reports.next()
    assert (path, rule) == (scan, config.inboxes[0])
    assert reason.startswith("reading it for conversion failed; tried 3 times over ")
    watcher.rescan()
    with pytest.raises(queue.Empty):
        offered.get(timeout=0.5)
    assert reports.calls.empty()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # told, not logged
    with scan.open("ab") as out:
        out.write(b"% changed\n%%EOF\n")
    assert next_offer() == "scan.pdf"
