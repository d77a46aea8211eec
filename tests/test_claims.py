"""Claims on a shared inbox: one station per file, a dead station's file taken over (polling by
the old remote name, never paying again), and nothing of a live station's ever touched.

Real files in tmp_path; the races run in real processes, one ClaimBook per process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from watcher import claims as claims_module
from watcher.claims import (
    CLAIMS_DIR,
    DONE,
    Claim,
    ClaimBook,
    ClaimLost,
    ClaimRecord,
    Taken,
    Unclaimable,
    claim_key,
    station_id,
)

LEASE = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def drop(inbox: Path, name: str, data: bytes = b"%PDF-1.4 test\n%%EOF\n") -> Path:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def claim(book: ClaimBook, path: Path, **kwargs: Any) -> Claim | Taken | Unclaimable:
    st = path.stat()
    return book.claim(path, st.st_size, st.st_mtime_ns, **kwargs)


def won(result: Claim | Taken | Unclaimable) -> Claim:
    assert isinstance(result, Claim), result
    return result


def taken(result: Claim | Taken | Unclaimable) -> Taken:
    assert isinstance(result, Taken), result
    return result


def records(inbox: Path) -> list[str]:
    folder = inbox / CLAIMS_DIR
    return sorted(n for n in os.listdir(folder) if n.endswith(".claim")) if folder.exists() else []


def head_record(inbox: Path, path: Path) -> ClaimRecord:
    """The head of the file's chain as stored, read without any ClaimBook."""
    st = path.stat()
    key = claim_key(path.relative_to(inbox).as_posix(), st.st_size, st.st_mtime_ns)
    gen = 0
    while (inbox / CLAIMS_DIR / f".{key}.{gen + 1}.claim").exists():
        gen += 1
    record = ClaimRecord.from_bytes((inbox / CLAIMS_DIR / f".{key}.{gen}.claim").read_bytes())
    assert record is not None
    return record


# -- one station per file --------------------------------------------------------------------


def test_a_claim_keeps_a_second_station_out(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "Invoice 12.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    other = taken(claim(ClaimBook("B", LEASE, clock), path))
    assert (other.by, other.state, other.final) == ("A", "queued", False)
    assert "Invoice 12.pdf is being converted by" in other.reason and "station A" in other.reason
    assert a.state == "queued" and a.remote_name is None and a.taken_over_from is None
    # Hidden names only, so no inbox scan can take a claim for a document.
    assert all(name.startswith(".") for name in os.listdir(inbox / CLAIMS_DIR))


def test_the_same_station_gets_its_own_claim_back(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    first = won(claim(ClaimBook("A", LEASE, clock), path))
    first.update("uploading", "scan-1a2b", sent_at=5.0)
    clock.advance(10 * LEASE)  # long dead: it is ours all the same, no lease to wait
    again = won(claim(ClaimBook("A", LEASE, clock), path))  # a restart of station A
    assert again.resumed and again.taken_over_from is None
    assert (again.token, again.state, again.remote_name, again.sent_at) == (
        first.token,
        "uploading",
        "scan-1a2b",
        5.0,
    )
    taken(claim(ClaimBook("B", LEASE, clock), path))  # and the resumed claim is live again


def test_a_new_version_of_a_file_is_a_new_claim(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    won(claim(ClaimBook("A", LEASE, clock), path))
    st = path.stat()
    b = ClaimBook("B", LEASE, clock)
    taken(b.claim(path, st.st_size, st.st_mtime_ns))
    won(b.claim(path, st.st_size, st.st_mtime_ns + 1_000_000_000))  # saved again a second later
    won(b.claim(path, st.st_size + 1, st.st_mtime_ns))  # other size, same second
    second = 1_700_000_000 * 10**9
    assert claim_key("a.pdf", 1, second) not in {
        claim_key("a.pdf", 1, second + 10**9),
        claim_key("a.pdf", 2, second),
        claim_key("b.pdf", 1, second),
    }


def test_stations_on_different_clients_of_a_share_agree_on_the_key() -> None:
    """SMB stamps in 100 ns, NFS in ns; a Mac decomposes accents. One file, one key."""
    stamp = 1_700_000_000_123_456_789
    nfc, nfd = "Rechnung M\u00e4rz.pdf", "Rechnung Ma\u0308rz.pdf"
    assert claim_key(nfc, 10, stamp) == claim_key(nfd, 10, stamp - stamp % 100)


def test_files_in_subfolders_are_claimed_in_the_inbox_claims_folder(
    inbox: Path, clock: FakeClock
) -> None:
    path = drop(inbox, "2024/March/scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path, inbox=inbox))
    assert a.folder == inbox / CLAIMS_DIR and a.record.name == "2024/March/scan.pdf"
    taken(claim(ClaimBook("B", LEASE, clock), path, inbox=inbox))
    assert not (path.parent / CLAIMS_DIR).exists()


def test_a_finished_file_left_in_the_inbox_is_never_taken_over(
    inbox: Path, clock: FakeClock
) -> None:
    path = drop(inbox, "kept.pdf")
    won(claim(ClaimBook("A", LEASE, clock), path)).update(DONE, "kept-77")
    b = ClaimBook("B", LEASE, clock)
    for _ in range(3):
        result = taken(claim(b, path))
        assert result.final and result.by == "A" and "converted by" in result.reason
        clock.advance(10 * LEASE)


# -- stale claims: taken over by one station, carrying what the dead one did -----------------


def test_a_stale_claim_is_taken_over_with_its_remote_name(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    a.update("uploading", "scan-4f1e", sent_at=1234.5)
    b = ClaimBook("B", LEASE, clock)
    assert taken(claim(b, path)).state == "uploading"
    clock.advance(LEASE - 0.5)
    taken(claim(b, path))  # not yet a lease without a change
    clock.advance(1.0)
    mine = won(claim(b, path))
    assert mine.taken_over_from == "A" and mine.station == "B" and not mine.resumed
    assert (mine.state, mine.remote_name, mine.sent_at) == ("uploading", "scan-4f1e", 1234.5)
    stored = head_record(inbox, path)
    assert (stored.station, stored.remote_name, stored.sent_at) == ("B", "scan-4f1e", 1234.5)
    assert stored.taken_over_from == "A" and stored.token == mine.token != a.token
    assert taken(claim(ClaimBook("C", LEASE, clock), path)).by == "B"


def test_a_claim_is_live_at_first_sight_whatever_its_age(inbox: Path, clock: FakeClock) -> None:
    """Liveness is what this station saw change, on its own clock: no stamp written by another
    PC (or by the share) is compared with ours, so a skewed clock cannot make a claim stale."""
    path = drop(inbox, "scan.pdf")
    won(claim(ClaimBook("A", LEASE, wall_clock=lambda: 0.0), path))  # "written in 1970"
    old = time.time_ns() - 10**18
    for name in os.listdir(inbox / CLAIMS_DIR):
        os.utime(inbox / CLAIMS_DIR / name, ns=(old, old))
    b = ClaimBook("B", LEASE, clock)
    taken(claim(b, path))
    clock.advance(LEASE + 0.1)
    assert won(claim(b, path)).taken_over_from == "A"


def test_renewals_keep_a_claim_live(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    a_book = ClaimBook("A", LEASE, clock)
    a = won(claim(a_book, path))
    b = ClaimBook("B", LEASE, clock)
    for _ in range(8):
        taken(claim(b, path))
        clock.advance(LEASE / 3 + 1)
        assert a_book.renew([a]) == []
        clock.advance(LEASE / 3 + 1)
    clock.advance(LEASE)
    taken(claim(b, path))  # the last renewal is a change it sees now: a lease from here
    clock.advance(LEASE + 0.1)
    assert won(claim(b, path)).taken_over_from == "A"
    assert a_book.renew([a]) == [a] and a.lost


def _head_file(inbox: Path, path: Path) -> Path:
    st = path.stat()
    key = claim_key(path.relative_to(inbox).as_posix(), st.st_size, st.st_mtime_ns)
    gens = [int(n.split(".")[2]) for n in records(inbox) if n.startswith(f".{key}.")]
    return inbox / CLAIMS_DIR / f".{key}.{max(gens)}.claim"


def test_a_renewal_moves_the_mtime_and_leaves_the_record(
    inbox: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = drop(inbox, "scan.pdf")
    book = ClaimBook("A", LEASE, clock)
    a = won(claim(book, path))
    head = _head_file(inbox, path)
    data, before = head.read_bytes(), head.stat().st_mtime_ns
    # Even with this PC's clock far behind the share's, each renewal moves mtime by >= 2 s
    # (FAT keeps even seconds), so every other station sees it change.
    monkeypatch.setattr(claims_module.time, "time_ns", lambda: 0)
    for beat in (1, 2, 3):
        assert book.renew([a]) == []
        assert head.read_bytes() == data and head_record(inbox, path).beat == 0
        assert head.stat().st_mtime_ns >= before + beat * 2_000_000_000


def test_renewal_rewrites_the_record_where_the_share_ignores_utime(
    inbox: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = drop(inbox, "scan.pdf")
    a_book = ClaimBook("A", LEASE, clock)
    a = won(claim(a_book, path))
    monkeypatch.setattr(os, "utime", lambda *args, **kwargs: None)
    b = ClaimBook("B", LEASE, clock)
    taken(claim(b, path))
    for beat in (1, 2, 3):
        clock.advance(LEASE * 0.6)
        assert a_book.renew([a]) == []
        assert head_record(inbox, path).beat == beat
        clock.advance(LEASE * 0.6)
        taken(claim(b, path))


def test_a_real_short_lease(inbox: Path) -> None:
    lease = 0.2
    path = drop(inbox, "scan.pdf")
    a_book = ClaimBook("A", lease)
    a = won(claim(a_book, path))
    b = ClaimBook("B", lease)
    taken(claim(b, path))
    for _ in range(4):  # renewed every lease/3: never taken over
        time.sleep(lease / 3)
        assert a_book.renew([a]) == []
        taken(claim(b, path))
    time.sleep(lease * 1.5)  # station A stops renewing
    assert won(claim(b, path)).taken_over_from == "A"
    with pytest.raises(ClaimLost):
        a.update("uploading", "scan-1")


def _race(
    inbox: Path, files: list[Path], stations: int, lease: float, observe_first: bool, link: bool
) -> dict[str, list[tuple[str, str | None, str | None, str | None]]]:
    """Every station claims every file at once (after a first look, if observe_first); for
    each file, the outcome per station: ("won", taken_over_from, remote_name, state) or
    ("taken", by, state, None)."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(stations)
    results: Any = ctx.Queue()
    jobs = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    procs = [
        ctx.Process(
            target=_race_station,
            args=(f"S{i}", str(inbox), jobs, lease, observe_first, link, start, results),
        )
        for i in range(stations)
    ]
    for proc in procs:
        proc.start()
    outcomes: dict[str, list[tuple[str, str | None, str | None, str | None]]] = {}
    try:
        for _ in procs:
            _station, outcome = results.get(timeout=60)
            for name, result in outcome.items():
                outcomes.setdefault(name, []).append(result)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    assert "error" not in outcomes, outcomes["error"]
    assert all(proc.exitcode == 0 for proc in procs)
    return outcomes


def _race_station(
    station: str,
    inbox: str,
    jobs: list[tuple[str, int, int]],
    lease: float,
    observe_first: bool,
    link: bool,
    start: Any,
    results: Any,
) -> None:
    try:
        outcome = _race_rounds(station, inbox, jobs, lease, observe_first, link, start)
    except BaseException as exc:  # the parent fails at once, saying why
        results.put((station, {"error": ("error", repr(exc), None, None)}))
        raise
    results.put((station, outcome))


def _race_rounds(
    station: str,
    inbox: str,
    jobs: list[tuple[str, int, int]],
    lease: float,
    observe_first: bool,
    link: bool,
    start: Any,
) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    if not link:
        os.link = _no_link  # type: ignore[assignment]  # this process only: a FAT-like share
    book = ClaimBook(station, lease)
    folder = Path(inbox)
    order = list(jobs)  # the same order everywhere: every file is fought over at once
    if station.endswith(("4", "5")):
        random.Random(station).shuffle(order)  # ... and some stations come from elsewhere
    if observe_first:
        for name, size, mtime_ns in order:
            assert isinstance(book.claim(folder / name, size, mtime_ns), Taken)
        time.sleep(lease * 1.5)
    start.wait(timeout=30)
    outcome: dict[str, tuple[str, str | None, str | None, str | None]] = {}
    for name, size, mtime_ns in order:
        result = book.claim(folder / name, size, mtime_ns)
        if isinstance(result, Claim):
            outcome[name] = ("won", result.taken_over_from, result.remote_name, result.state)
        elif isinstance(result, Taken):
            outcome[name] = ("taken", result.by, result.state, None)
        else:
            outcome[name] = ("unclaimable", result.reason, None, None)
    return outcome


def _no_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    raise OSError(errno.EPERM, "Operation not permitted")


@pytest.mark.parametrize("link", [True, False], ids=["hard-links", "no-hard-links"])
def test_racing_stations_on_new_files_make_exactly_one_winner(inbox: Path, link: bool) -> None:
    files = [drop(inbox, f"scan {i:02}.pdf", b"%PDF " + bytes([i]) * i) for i in range(12)]
    outcomes = _race(inbox, files, stations=6, lease=120.0, observe_first=False, link=link)
    assert sorted(outcomes) == sorted(f.name for f in files)
    for path in files:
        results = outcomes[path.name]
        winners = [r for r in results if r[0] == "won"]
        assert len(results) == 6 and len(winners) == 1, (path.name, results)
        assert all(r[0] == "taken" for r in results if r[0] != "won")
        assert winners[0][1] is None  # nothing to take over
        assert head_record(inbox, path).state == "queued"
    assert not [n for n in os.listdir(inbox / CLAIMS_DIR) if n.endswith(".tmp")]


@pytest.mark.parametrize("link", [True, False], ids=["hard-links", "no-hard-links"])
def test_racing_stations_take_over_a_dead_stations_claims_once(inbox: Path, link: bool) -> None:
    lease = 0.2
    files = [drop(inbox, f"scan {i:02}.pdf", b"%PDF " + bytes([i]) * i) for i in range(12)]
    dead = ClaimBook("dead", lease)
    for i, path in enumerate(files):
        claimed = won(claim(dead, path))
        if i % 2:
            claimed.update("waiting_for_result", f"remote-{i}", sent_at=float(i))
    outcomes = _race(inbox, files, stations=6, lease=lease, observe_first=True, link=link)
    for i, path in enumerate(files):
        results = outcomes[path.name]
        winners = [r for r in results if r[0] == "won"]
        assert len(results) == 6 and len(winners) == 1, (path.name, results)
        assert all(r[0] == "taken" for r in results if r[0] != "won")
        if i % 2:
            assert winners[0] == ("won", "dead", f"remote-{i}", "waiting_for_result")
        else:
            assert winners[0] == ("won", "dead", None, "queued")
        stored = head_record(inbox, path)
        assert stored.station != "dead" and stored.taken_over_from == "dead"
        assert stored.remote_name == (f"remote-{i}" if i % 2 else None)


# -- losing a claim --------------------------------------------------------------------------


def test_an_update_after_losing_the_claim_raises_and_leaves_the_new_owners_record(
    inbox: Path, clock: FakeClock
) -> None:
    path = drop(inbox, "scan.pdf")
    a_book = ClaimBook("A", LEASE, clock)
    a = won(claim(a_book, path))  # then station A is suspended for a while
    b = ClaimBook("B", LEASE, clock)
    taken(claim(b, path))
    clock.advance(LEASE + 1)
    mine = won(claim(b, path))
    mine.update("uploading", "scan-b", sent_at=7.0)
    before = sorted((n, (inbox / CLAIMS_DIR / n).read_bytes()) for n in records(inbox))
    with pytest.raises(ClaimLost, match=r"taken over by .*station B"):
        a.update("uploading", "scan-a", sent_at=8.0)  # A wakes up: it must not upload
    with pytest.raises(ClaimLost):
        a.update("uploading", "scan-a", sent_at=8.0)
    assert a.lost and a_book.renew([a]) == [a]
    assert a.release() is False
    after = sorted((n, (inbox / CLAIMS_DIR / n).read_bytes()) for n in records(inbox))
    assert after == before
    stored = head_record(inbox, path)
    assert (stored.station, stored.remote_name, stored.sent_at) == ("B", "scan-b", 7.0)


def test_an_update_after_the_claim_was_swept_away_raises(inbox: Path, clock: FakeClock) -> None:
    """The gen a late update would create may be free again once the chain was removed; the
    update still must not count as ours (and must not leave a stray record)."""
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    path.unlink()  # the user took the file away while station A was suspended
    sweeper = ClaimBook("B", LEASE, clock)
    assert sweeper.sweep(inbox) == []
    clock.advance(LEASE + 1)
    assert sweeper.sweep(inbox) != [] and records(inbox) == []
    with pytest.raises(ClaimLost):
        a.update("uploading", "scan-a")
    assert records(inbox) == []


def test_a_takeover_does_not_build_on_a_chain_removed_under_it(
    inbox: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep (of another station) removes the stale chain between our reading its head and
    our creating the next gen: ours would be a record above a gap, seen by nobody."""
    path = drop(inbox, "scan.pdf")
    won(claim(ClaimBook("A", LEASE, clock), path))
    b = ClaimBook("B", LEASE, clock)
    taken(claim(b, path))
    clock.advance(LEASE + 1)
    real_create = ClaimBook._create

    def swept_first(self: ClaimBook, folder: Path, key: str, gen: int, rec: ClaimRecord) -> bool:
        if gen == 1:
            (folder / f".{key}.0.claim").unlink(missing_ok=True)
        return real_create(self, folder, key, gen, rec)

    monkeypatch.setattr(ClaimBook, "_create", swept_first)
    mine = won(claim(b, path))
    assert mine.gen == 0 and mine.taken_over_from is None
    assert len(records(inbox)) == 1 and head_record(inbox, path).token == mine.token


def test_two_claim_objects_of_one_station_share_the_claim(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    book = ClaimBook("A", LEASE, clock)
    first = won(claim(book, path))
    second = won(claim(book, path))
    first.update("uploading", "scan-1")
    second.update("waiting_for_result")  # builds on the first one's record
    assert head_record(inbox, path).remote_name == "scan-1"
    assert book.renew([first, second]) == []
    assert second.release() and records(inbox) == []


def test_release_removes_the_claim_and_frees_the_file(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    a.update("uploading", "scan-1")
    a.update("downloading")
    assert a.release() is True
    assert records(inbox) == [] and os.listdir(inbox / CLAIMS_DIR) == []
    with pytest.raises(ClaimLost):
        a.update("done")
    # Back in the inbox (moved back from the failed folder, same mtime): free at once.
    fresh = won(claim(ClaimBook("B", LEASE, clock), path))
    assert fresh.remote_name is None and fresh.taken_over_from is None


def test_a_released_head_is_free_at_once(inbox: Path, clock: FakeClock) -> None:
    """A release interrupted before its records were deleted leaves a "released" head."""
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    a.update("released")
    b = won(claim(ClaimBook("B", LEASE, clock), path))
    assert b.state == "queued" and b.remote_name is None


def test_update_keeps_the_remote_name_unless_told_to_clear_it(
    inbox: Path, clock: FakeClock
) -> None:
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    a.update("uploading", "scan-1", sent_at=3.0)
    a.update("waiting_for_result")
    assert (
        (a.remote_name, a.sent_at)
        == ("scan-1", 3.0)
        == (
            head_record(inbox, path).remote_name,
            head_record(inbox, path).sent_at,
        )
    )
    a.update("queued", clear_remote=True)
    assert (a.remote_name, a.sent_at, head_record(inbox, path).remote_name) == (None, None, None)


# -- read-only and forbidden claims folders --------------------------------------------------


def _check_unclaimable(result: Claim | Taken | Unclaimable, inbox: Path, code: int) -> None:
    assert isinstance(result, Unclaimable), result
    assert result.lasting and result.errno == code
    assert result.folder == inbox / CLAIMS_DIR
    assert result.reason.startswith(f"cannot write in {inbox / CLAIMS_DIR} (read-only share?)")
    assert "another PC converts them too" in result.reason


@contextlib.contextmanager
def _tmpfs(where: Path) -> Iterator[Callable[[], None]]:
    """A tmpfs mounted at `where`; yields a function that makes it read-only."""
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to make a truly read-only folder")
    where.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")

    def make_readonly() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)

    try:
        yield make_readonly
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("folder_exists", [False, True])
def test_a_read_only_share_is_unclaimable(
    tmp_path: Path, clock: FakeClock, folder_exists: bool
) -> None:
    inbox = tmp_path / "share"
    with _tmpfs(inbox) as make_readonly:
        path = drop(inbox, "scan.pdf")
        if folder_exists:
            (inbox / CLAIMS_DIR).mkdir()
        make_readonly()
        with pytest.raises(OSError):
            (inbox / "probe").write_bytes(b"")  # truly read-only, even for root
        _check_unclaimable(claim(ClaimBook("A", LEASE, clock), path), inbox, errno.EROFS)


def test_a_read_only_share_still_shows_whose_file_it_is(tmp_path: Path, clock: FakeClock) -> None:
    inbox = tmp_path / "share"
    with _tmpfs(inbox) as make_readonly:
        path = drop(inbox, "scan.pdf")
        won(claim(ClaimBook("A", LEASE, clock), path))
        make_readonly()
        assert taken(claim(ClaimBook("B", LEASE, clock), path)).by == "A"


def test_a_forbidden_claims_folder_is_unclaimable(clock: FakeClock) -> None:
    base = Path(tempfile.mkdtemp(prefix="claims-perm-"))
    try:
        base.chmod(0o755)
        inbox = base / "inbox"
        inbox.mkdir()
        path = drop(inbox, "scan.pdf")
        path.chmod(0o644)
        inbox.chmod(0o555)
        if os.name == "posix" and os.geteuid() == 0:
            # Root ignores permission bits: ask as an unprivileged user, in a child process.
            summary = _as_nobody(inbox, path)
            assert summary[:2] == ("unclaimable", True), summary
            assert summary[2] == errno.EACCES and "(read-only share?)" in str(summary[3])
        else:
            _check_unclaimable(claim(ClaimBook("A", LEASE, clock), path), inbox, errno.EACCES)
    finally:
        for folder in (base, base / "inbox"):
            with contextlib.suppress(OSError):
                folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def _as_nobody(inbox: Path, path: Path) -> tuple[object, ...]:
    ctx = multiprocessing.get_context("fork")
    results: Any = ctx.Queue()
    proc = ctx.Process(target=_claim_as_nobody, args=(str(inbox), str(path), results))
    proc.start()
    try:
        summary: tuple[object, ...] = results.get(timeout=30)
    finally:
        proc.join(timeout=10)
    if summary[0] == "skip":
        pytest.skip(str(summary[1]))
    return summary


def _claim_as_nobody(inbox: str, path: str, results: Any) -> None:
    try:
        os.setgid(65534)
        os.setuid(65534)
    except OSError as exc:
        results.put(("skip", f"cannot drop root privileges: {exc}"))
        return
    st = os.stat(path)
    result = ClaimBook("A", LEASE).claim(Path(path), st.st_size, st.st_mtime_ns)
    if isinstance(result, Unclaimable):
        results.put(("unclaimable", result.lasting, result.errno, result.reason))
    else:
        results.put((type(result).__name__, repr(result)))


# -- torn records (shares without hard links) ------------------------------------------------


def _plant(inbox: Path, path: Path, gen: int, data: bytes) -> Path:
    st = path.stat()
    key = claim_key(path.name, st.st_size, st.st_mtime_ns)
    folder = inbox / CLAIMS_DIR
    folder.mkdir(exist_ok=True)
    record = folder / f".{key}.{gen}.claim"
    record.write_bytes(data)
    return record


@pytest.mark.parametrize("data", [b"", b'{"v": 1, "station": "A", "tok'], ids=["empty", "partial"])
def test_a_torn_claim_is_live_for_the_grace_time_then_stale(
    inbox: Path, clock: FakeClock, data: bytes
) -> None:
    path = drop(inbox, "scan.pdf")
    _plant(inbox, path, 0, data)
    b = ClaimBook("B", LEASE, clock, grace_seconds=3.0)
    first = taken(claim(b, path))
    assert first.by is None and "writing its claim" in first.reason
    clock.advance(2.9)
    taken(claim(b, path))
    clock.advance(0.2)
    mine = won(claim(b, path))
    assert mine.taken_over_from is None and mine.remote_name is None and mine.gen == 1


def test_a_torn_claim_that_keeps_changing_stays_live(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    record = _plant(inbox, path, 0, b"")
    b = ClaimBook("B", LEASE, clock, grace_seconds=3.0)
    for size in range(1, 6):
        taken(claim(b, path))
        clock.advance(2.0)
        record.write_bytes(b"{" * size)  # still being written, slowly
    taken(claim(b, path))


def test_a_torn_head_carries_the_last_whole_record(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    a.update("uploading", "scan-a", sent_at=9.0)
    _plant(inbox, path, 2, b'{"v": 1')  # station A died writing its next record
    b = ClaimBook("B", LEASE, clock)
    taken(claim(b, path))
    clock.advance(b.grace_seconds + 0.1)
    mine = won(claim(b, path))
    assert (mine.taken_over_from, mine.remote_name, mine.sent_at) == ("A", "scan-a", 9.0)
    assert mine.gen == 3


def test_a_claim_that_cannot_be_opened_is_never_stale(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    won(claim(ClaimBook("A", LEASE, clock), path))
    real_open = os.open

    def deny(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(file).endswith(".claim") and not flags & os.O_CREAT and os.path.exists(file):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    b = ClaimBook("B", LEASE, clock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", deny)
        for _ in range(3):
            assert "may not read" in taken(claim(b, path)).reason
            clock.advance(10 * LEASE)
            assert b.sweep(inbox) == []
    assert head_record(inbox, path).station == "A"


def test_without_hard_links_claims_are_still_exclusive_and_whole(
    inbox: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "link", _no_link)
    path = drop(inbox, "scan.pdf")
    a = won(claim(ClaimBook("A", LEASE, clock), path))
    a.update("uploading", "scan-1")
    taken(claim(ClaimBook("B", LEASE, clock), path))
    assert head_record(inbox, path).remote_name == "scan-1"
    assert [n for n in os.listdir(inbox / CLAIMS_DIR) if not n.endswith(".claim")] == []


# -- sweeping --------------------------------------------------------------------------------


def test_sweep_removes_only_what_no_station_needs(inbox: Path, clock: FakeClock) -> None:
    dead, live = ClaimBook("dead", LEASE, clock), ClaimBook("live", LEASE, clock)
    gone_dead = drop(inbox, "gone-dead.pdf")
    gone_live = drop(inbox, "gone-live.pdf")
    here_dead = drop(inbox, "here-dead.pdf")
    gone_done = drop(inbox, "gone-done.pdf")
    here_done = drop(inbox, "here-done.pdf")
    changed = drop(inbox, "changed.pdf")
    won(claim(dead, gone_dead)).update("uploading", "x-1")
    live_claim = won(claim(live, gone_live))
    won(claim(dead, here_dead))
    won(claim(dead, gone_done)).update(DONE)
    won(claim(dead, here_done)).update(DONE)
    won(claim(dead, changed))
    for path in (gone_dead, gone_live, gone_done):
        path.unlink()
    changed.write_bytes(b"%PDF-1.4 another version, longer\n%%EOF\n")
    folder = inbox / CLAIMS_DIR
    old_temp = folder / ".0123.claim.abcdef.tmp"
    old_temp.write_bytes(b"{")
    (folder / "notes.txt").write_text("not ours")

    sweeper = ClaimBook("sweeper", LEASE, clock)
    first = sweeper.sweep(inbox)
    # Only the finished claim of a file that left is removed at once; the rest is first seen.
    assert first and all(n.endswith(".claim") for n in first)
    assert len(first) == 3  # gone-done: its two records and the "released" one put on top
    assert len(records(inbox)) == 2 + 1 + 1 + 2 + 1  # gone-dead, gone-live, here-dead, ...
    clock.advance(LEASE / 2)
    assert live.renew([live_claim]) == []
    clock.advance(LEASE / 2 + 1)
    second = sweeper.sweep(inbox)
    remaining = set(os.listdir(folder))
    assert {n for n in second if n in remaining} == set()
    # gone-dead and changed (its claim is for a version no longer there) are removed; the
    # renewed claim, the claims of files still there, and foreign files are kept.
    assert remaining >= {"notes.txt", old_temp.name}
    assert len(records(inbox)) == 1 + 1 + 2
    assert taken(claim(ClaimBook("other", LEASE, clock), here_dead)).by == "dead"
    assert taken(claim(ClaimBook("other", LEASE, clock), here_done)).final
    assert live_claim.update("uploading", "y-1") is None  # untouched: still its owner's
    clock.advance(3 * LEASE)
    assert live.renew([live_claim]) == []
    sweeper.sweep(inbox)
    assert old_temp.name not in os.listdir(folder)  # unchanged for three leases
    assert "notes.txt" in os.listdir(folder)
    assert len(records(inbox)) == 1 + 1 + 2 + 1  # the live claim's update added a gen


def test_sweep_finds_a_file_whose_name_a_mac_recorded_decomposed(
    inbox: Path, clock: FakeClock
) -> None:
    path = drop(inbox, "M\u00e4rz.pdf")
    st = path.stat()
    won(ClaimBook("mac", LEASE, clock).claim(inbox / "Ma\u0308rz.pdf", st.st_size, st.st_mtime_ns))
    sweeper = ClaimBook("B", LEASE, clock)
    sweeper.sweep(inbox)
    clock.advance(2 * LEASE)
    assert sweeper.sweep(inbox) == [] and len(records(inbox)) == 1
    path.unlink()
    sweeper.sweep(inbox)
    clock.advance(2 * LEASE)
    assert len(sweeper.sweep(inbox)) == 2 and records(inbox) == []  # with its "released" gen


def test_sweep_leaves_a_fresh_temp_file_alone(inbox: Path, clock: FakeClock) -> None:
    path = drop(inbox, "scan.pdf")
    won(claim(ClaimBook("A", LEASE, clock), path))
    temp = inbox / CLAIMS_DIR / ".abc.claim.123456.tmp"
    sweeper = ClaimBook("B", LEASE, clock)
    for _ in range(4):
        temp.write_bytes(os.urandom(8))  # a station writing temp files under this name
        sweeper.sweep(inbox)
        clock.advance(LEASE)
    assert temp.exists()


def test_sweep_of_a_missing_claims_folder_does_nothing(inbox: Path, clock: FakeClock) -> None:
    assert ClaimBook("A", LEASE, clock).sweep(inbox) == []
    assert not (inbox / CLAIMS_DIR).exists()


# -- station ids -----------------------------------------------------------------------------


def test_station_id_is_made_once_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = station_id(state)
    assert first == station_id(state) == (state / "station-id").read_text().strip()
    assert first.rsplit("-", 1)[0] == claims_module._host_label()
    assert len(first.rsplit("-", 1)[1]) == 16
    ClaimBook(first)  # a valid station for a claim book
    other = tmp_path / "other-state"
    assert station_id(other) != first


def test_a_state_folder_copied_to_another_pc_gets_its_own_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(claims_module.platform, "node", lambda: "office-pc1.example.lan")
    first = station_id(state)
    assert first.startswith("office-pc1-")
    monkeypatch.setattr(claims_module.platform, "node", lambda: "office-pc2")
    second = station_id(state)
    assert second.startswith("office-pc2-") and second != first
    assert station_id(state) == second


def test_a_damaged_station_id_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "station-id").write_text("../../not an id\n")
    new = station_id(state)
    assert new != "../../not an id" and station_id(state) == new


def test_records_round_trip_and_foreign_json_is_no_record() -> None:
    record = ClaimRecord("A", "t" * 32, "pc", 1, "a.pdf", 1, 2, 3.0, 4.0, "queued", "r", 5.0)
    assert ClaimRecord.from_bytes(record.to_bytes()) == record
    for foreign in (b"[]", b"{}", json.dumps({"v": 2}).encode(), b"\xff", b"null"):
        assert ClaimRecord.from_bytes(foreign) is None
    bad = json.loads(record.to_bytes())
    bad["size"] = "1"
    assert ClaimRecord.from_bytes(json.dumps(bad).encode()) is None
