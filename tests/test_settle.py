"""The settle tracker alone: a fake clock, no files, no threads, no sleeps."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from watcher.settle import (
    Contents,
    Decision,
    Dropped,
    FileState,
    GiveUp,
    Inspect,
    Ready,
    SettleTracker,
    Unreadable,
    Wait,
)

pytestmark = pytest.mark.timeout(10)

WALL_OFFSET = 1000.0  # the wall clock reads this much more than the monotonic one
SETTLE = 2.0
WHOLE = Contents(complete=True)
UNFINISHED = Contents(complete=False)
DENIED = Contents(complete=False, unreadable="Permission denied")
SCAN = Path("/inbox/scan.pdf")


def written(size: int, at: float) -> FileState:
    """The state of a file last written at monotonic time `at`."""
    return FileState(size, round((at + WALL_OFFSET) * 1e9))


@dataclass
class World:
    """The files as the tracker's driver would see them, and the clocks."""

    tracker: SettleTracker[str]
    now: float = 100.0
    files: dict[Path, FileState] = field(default_factory=dict)
    contents: dict[Path, Contents] = field(default_factory=dict)
    looks: int = 0  # lstat looks made
    reads: int = 0  # times a file was opened

    @property
    def wall(self) -> float:
        return self.now + WALL_OFFSET

    def write(self, path: Path, size: int, contents: Contents = WHOLE) -> Wait | None:
        """A writer writes `path` now; its event makes the driver tell the tracker."""
        self.files[path] = written(size, self.now)
        self.contents[path] = contents
        return self.tracker.seen(path, self.files[path], self.now, self.wall, "rule")

    def step(self) -> list[tuple[Path, Decision]]:
        """Make every look due now, as the settle thread does."""
        decisions = []
        for look in self.tracker.due(self.now):
            self.looks += 1
            decision = self.tracker.looked(look, self.files.get(look.path), self.now, self.wall)
            if isinstance(decision, Inspect):
                self.reads += 1
                decision = self.tracker.inspected(look, self.contents[look.path], self.now)
            assert look.tag == "rule"
            decisions.append((look.path, decision))
        return decisions

    def run_until(self, end: float) -> list[tuple[float, Path, Decision]]:
        """Jump from due time to due time up to `end`, making the looks."""
        seen = []
        while (due := self.tracker.next_due()) is not None and due <= end:
            self.now = max(self.now, due)
            seen += [(self.now, path, decision) for path, decision in self.step()]
        self.now = max(self.now, end)
        return seen

    def settle_all(self) -> list[tuple[float, Path, Decision]]:
        """Run until nothing is queued: every decision that ended a file's wait."""
        finals = []
        while (due := self.tracker.next_due()) is not None:
            self.now = max(self.now, due)
            finals += [(self.now, p, d) for p, d in self.step() if not isinstance(d, Wait)]
        return finals


def make_world(settle: float = SETTLE, give_up: float = 60.0, read_tries: int = 3) -> World:
    tracker: SettleTracker[str] = SettleTracker(settle, give_up, read_tries=read_tries)
    return World(tracker)


# --- settling ------------------------------------------------------------------------------


def test_a_file_is_ready_once_it_stood_still_for_the_settle_time() -> None:
    world = make_world()
    assert world.write(SCAN, 10) == Wait(pytest.approx(102.0))
    assert world.tracker.pending_count == 1 and world.tracker.is_pending(SCAN)
    assert world.tracker.next_due() == pytest.approx(102.0)
    world.now = 101.99
    assert world.step() == []  # not due yet: no look at all
    assert world.looks == 0
    world.now = 102.0
    assert world.step() == [(SCAN, Ready())]
    assert (world.looks, world.reads) == (1, 1)
    assert world.tracker.pending_count == 0 and world.tracker.next_due() is None
    assert world.tracker.settled_paths() == [SCAN]


def test_a_settled_file_is_not_looked_at_again_until_it_changes() -> None:
    world = make_world()
    world.write(SCAN, 10)
    world.settle_all()
    state = world.files[SCAN]
    assert world.tracker.seen(SCAN, state, world.now, world.wall, "rule") is None  # a rescan
    assert world.tracker.pending_count == 0
    world.now += 5
    assert world.write(SCAN, 20) is not None  # rewritten in place: a new file
    assert [d for _, _, d in world.settle_all()] == [Ready()]


def test_a_file_seen_while_pending_is_not_restarted() -> None:
    world = make_world()
    world.write(SCAN, 10)
    world.now += 1
    assert world.tracker.seen(SCAN, written(10, 99.0), world.now, world.wall, "rule") is None
    assert world.tracker.next_due() == pytest.approx(102.0)


def test_the_mtime_is_credited_up_to_one_settle_period() -> None:
    world = make_world()
    tracker = world.tracker
    old = Path("/inbox/old.pdf")
    # Written 0.5 s before it was seen: due 1.5 s later, not 2.
    assert tracker.seen(SCAN, written(1, 99.5), 100.0, world.wall, "rule") == Wait(
        pytest.approx(101.5)
    )
    # Written an hour ago (a file present at start): credited one settle period, due now.
    assert tracker.seen(old, written(1, -3500.0), 100.0, world.wall, "rule") == Wait(
        pytest.approx(100.0)
    )
    # An mtime in the future (a clock step, a camera's clock) earns nothing.
    future = Path("/inbox/future.pdf")
    assert tracker.seen(future, written(1, 500.0), 100.0, world.wall, "rule") == Wait(
        pytest.approx(102.0)
    )


def test_a_file_seen_empty_then_written_at_once_is_taken_at_its_due_look() -> None:
    """Seen by its creation event, before its bytes were written; written at once after:
    at the due look it has changed, but stood still since for the settle time (its mtime
    says so), so it is taken then, not one pause later (pickup_latency.py's p99 was 200 ms)."""
    world = make_world()
    world.files[SCAN] = written(0, 100.0)
    world.contents[SCAN] = WHOLE
    world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule")
    world.files[SCAN] = written(10, 100.001)  # the write, an instant later
    world.now = 102.0  # the look is due 2 s after the sighting, 1 ms before 2 s after the write
    assert world.step() == [(SCAN, Wait(pytest.approx(102.001)))]  # not 0.2 s later
    world.now = 102.001
    assert world.step() == [(SCAN, Ready())]
    # Written again a moment before the look: a pause (min_pause), then the settle time.
    world.now += 1
    world.write(SCAN, 0)
    world.files[SCAN] = written(20, world.now + 1.95)
    world.now += 2.0
    [(_, decision)] = world.step()
    assert decision == Wait(pytest.approx(world.now + 1.95))


def test_any_change_restarts_the_settle_clock() -> None:
    world = make_world()
    world.write(SCAN, 10)
    world.now = 101.5
    world.files[SCAN] = written(20, 101.5)  # a chunk; its event comes while pending: ignored
    world.now = 102.0
    [(_, decision)] = world.step()
    assert decision == Wait(pytest.approx(103.5))  # two seconds after that chunk was written
    assert world.reads == 0  # a changing file is never opened
    world.now = 103.5
    assert world.step() == [(SCAN, Ready())]


def test_the_mtime_alone_changing_restarts_the_clock() -> None:
    world = make_world()
    world.write(SCAN, 10)
    world.now = 101.0
    world.files[SCAN] = written(10, 101.0)  # same size, touched
    world.now = 102.0
    assert world.step() == [(SCAN, Wait(pytest.approx(103.0)))]


def test_a_file_written_in_chunks_is_ready_once_after_its_last_chunk() -> None:
    """As a scanner writes page by page, each chunk a whole PDF update: only the settle clock
    tells that more is coming."""
    world = make_world(settle=0.5)
    world.write(SCAN, 1000)
    decisions = []
    for chunk in range(1, 9):
        decisions += world.run_until(world.now + 0.25)
        world.files[SCAN] = written(1000 + chunk * 20, world.now)
    last_write = world.now
    decisions += world.run_until(last_write + 10)
    finals = [(when, decision) for when, _, decision in decisions if decision != Wait(when)]
    ready = [(when, d) for when, d in finals if not isinstance(d, Wait)]
    assert ready == [(pytest.approx(last_write + 0.5), Ready())]
    assert world.reads == 1


def test_a_changing_file_is_looked_at_no_more_often_than_min_pause() -> None:
    world = make_world(settle=0.0)
    world.write(SCAN, 1)
    times = []
    for size in range(2, 6):  # it changes before every look
        world.now = world.tracker.next_due() or 0.0
        world.files[SCAN] = written(size, world.now)
        times.append(world.now)
        world.step()
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.2, 0.2, 0.2]


def test_the_settle_time_can_change_while_files_wait() -> None:
    world = make_world(settle=2.0)
    world.write(SCAN, 1)
    world.tracker.settle_seconds = 5.0  # new rules
    world.now = 102.0
    assert world.step() == [(SCAN, Wait(pytest.approx(105.0)))]  # judged by the new time
    world.now = 105.0
    assert world.step() == [(SCAN, Ready())]


def test_a_file_gone_at_its_look_is_dropped() -> None:
    world = make_world()
    world.write(SCAN, 1)
    del world.files[SCAN]  # deleted, or replaced by a link: the driver saw no regular file
    world.now = 102.0
    assert world.step() == [(SCAN, Dropped())]
    assert world.tracker.pending_count == 0 and world.tracker.settled_paths() == []


# --- unfinished files and giving up -----------------------------------------------------------


def test_a_pdf_waits_for_its_end_marker() -> None:
    world = make_world()
    world.write(SCAN, 10, UNFINISHED)
    world.now = 102.0
    assert world.step() == [(SCAN, Wait(pytest.approx(102.2)))]  # read again soon
    world.now = 102.2
    assert world.step() == [(SCAN, Wait(pytest.approx(102.4)))]
    world.files[SCAN], world.contents[SCAN] = written(16, 102.3), WHOLE  # the end marker
    world.now = 102.4
    assert world.step() == [(SCAN, Wait(pytest.approx(104.3)))]  # changed: settle again
    world.now = 104.3
    assert world.step() == [(SCAN, Ready())]


def test_a_file_that_stays_unfinished_is_given_up_and_handed_on() -> None:
    world = make_world(settle=0.1, give_up=1.0)
    world.write(SCAN, 100, UNFINISHED)
    [(when, path, decision)] = world.settle_all()
    assert path == SCAN and isinstance(decision, GiveUp)
    assert when == pytest.approx(101.0, abs=0.2)
    assert decision.reason == "has not changed for 1 s but still looks unfinished"
    assert world.tracker.settled_paths() == [SCAN]  # handed on: not looked at again


def test_give_up_waits_ten_settle_periods_if_longer() -> None:
    world = make_world(settle=10.0, give_up=60.0)
    assert world.tracker.give_up_after == 100.0
    world.write(SCAN, 100, UNFINISHED)
    [(when, _, decision)] = world.settle_all()
    assert isinstance(decision, GiveUp) and 100 + 100 <= when < 100 + 100.3


# --- unreadable files -----------------------------------------------------------------------


def test_a_file_that_cannot_be_read_is_unreadable_after_tries_over_the_give_up_time() -> None:
    world = make_world(settle=2.0, give_up=60.0)
    world.write(SCAN, 100, DENIED)
    decisions = world.run_until(1000.0)
    times = [when for when, _, _ in decisions]
    assert times[0] == pytest.approx(102.0)  # the first look inside, after settling
    # Looked at again after a growing pause, and last at the give-up moment exactly.
    pauses = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert pauses == [0.2, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 8.8]
    assert all(isinstance(d, Wait) for _, _, d in decisions[:-1])
    when, path, decision = decisions[-1]
    assert (when, path) == (pytest.approx(162.0), SCAN)
    assert decision == Unreadable("Permission denied; tried 11 times over 60 s")
    assert world.tracker.pending_count == 0 and world.tracker.next_due() is None


def test_an_unreadable_file_is_left_alone_until_it_changes() -> None:
    world = make_world(settle=0.1, give_up=1.0)
    world.write(SCAN, 100, DENIED)
    [(_, _, decision)] = world.settle_all()
    assert isinstance(decision, Unreadable)
    state = world.files[SCAN]
    for _ in range(3):  # rescans
        world.now += 300
        assert world.tracker.seen(SCAN, state, world.now, world.wall, "rule") is None
    assert world.tracker.pending_count == 0
    world.write(SCAN, 200, DENIED)  # changed: counted afresh, from one
    start = world.now
    [(when, _, decision)] = world.settle_all()
    assert isinstance(decision, Unreadable) and when >= start + 0.1 + 1.0


def test_a_file_unreadable_for_a_moment_is_taken_soon_after() -> None:
    """As on Windows while a virus scanner holds it: a few failures, then it reads."""
    world = make_world(settle=2.0, give_up=60.0)
    world.write(SCAN, 100, DENIED)
    world.run_until(102.0 + 0.2 + 0.2 + 0.4)  # four failed reads
    assert world.reads == 4
    world.contents[SCAN] = WHOLE
    [(when, _, decision)] = world.settle_all()
    assert decision == Ready() and when == pytest.approx(102.0 + 0.8 + 0.8)


def test_reads_must_fail_read_tries_times_however_short_the_give_up() -> None:
    world = make_world(settle=0.0, give_up=0.0, read_tries=3)
    world.write(SCAN, 100, DENIED)
    decisions = world.run_until(200.0)
    assert [type(d) for _, _, d in decisions] == [Wait, Wait, Unreadable]


def test_the_daemon_failing_to_read_counts_too() -> None:
    """Each failure once handed on offers the file again, until the third, at least the
    give-up time after the first (as at three rescans, five minutes apart)."""
    world = make_world()
    world.write(SCAN, 100)
    for attempt in range(1, 4):
        [(_, _, decision)] = world.settle_all()
        assert decision == Ready()
        given_up = world.tracker.unread(SCAN, world.now, "could not be read for conversion")
        if attempt < 3:
            assert given_up is None
            assert world.tracker.settled_paths() == []  # offered again when next seen
            world.now += 300  # the next rescan
            assert world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule")
    assert given_up == Unreadable("could not be read for conversion; tried 3 times over 600 s")
    assert world.tracker.settled_paths() == [SCAN]  # kept, so not offered again
    assert world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule") is None


def test_three_quick_daemon_failures_are_not_enough() -> None:
    world = make_world(settle=0.0, give_up=60.0)
    world.write(SCAN, 100)
    results = []
    for _ in range(4):  # rescans every 20 s
        world.settle_all()
        results.append(world.tracker.unread(SCAN, world.now, "could not be read"))
        world.now += 20
        world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule")
    assert results[:3] == [None, None, None]  # 0, 20 and 40 s after the first
    assert results[3] == Unreadable("could not be read; tried 4 times over 60 s")
    assert world.tracker.pending_count == 0  # left alone: that last rescan started nothing


def test_a_file_the_daemon_took_has_its_failures_forgotten() -> None:
    world = make_world(settle=0.0, give_up=0.0, read_tries=2)
    world.write(SCAN, 100)
    world.settle_all()
    assert world.tracker.unread(SCAN, world.now, "no") is None  # one failure
    world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule")
    world.settle_all()
    world.tracker.taken(SCAN)  # read at last
    world.tracker.release(SCAN)  # (as if the user asked for it again)
    world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule")
    world.settle_all()
    assert world.tracker.unread(SCAN, world.now, "no") is None  # counted from one again


def test_unread_of_a_file_forgotten_meanwhile_counts_nothing() -> None:
    world = make_world(settle=0.0, give_up=0.0, read_tries=1)
    assert world.tracker.unread(SCAN, world.now, "no") is None  # never seen
    world.write(SCAN, 100)
    world.settle_all()
    world.tracker.forget(SCAN)  # moved away while the daemon read it
    assert world.tracker.unread(SCAN, world.now, "no") is None


def test_a_failure_of_the_own_look_and_of_the_daemon_add_up() -> None:
    world = make_world(settle=0.0, give_up=0.0, read_tries=2)
    world.write(SCAN, 100, DENIED)
    world.now = world.tracker.next_due() or 0.0
    [(_, decision)] = world.step()
    assert isinstance(decision, Wait)  # one failure
    world.contents[SCAN] = WHOLE  # it reads for us, but not for the daemon
    assert world.settle_all()[0][2] == Ready()
    given_up = world.tracker.unread(SCAN, world.now, "could not be read for conversion")
    assert given_up is not None and "tried 2 times" in given_up.reason


def test_contents_cannot_be_complete_and_unreadable() -> None:
    with pytest.raises(ValueError, match="cannot look complete"):
        Contents(complete=True, unreadable="no")


# --- forgetting -----------------------------------------------------------------------------


def test_forget_drops_a_pending_file_and_its_queued_look() -> None:
    world = make_world()
    world.write(SCAN, 100)
    world.tracker.forget(SCAN)
    assert world.tracker.pending_count == 0
    assert world.tracker.next_due() is None  # the queued look went stale
    world.now = 200.0
    assert world.step() == []


def test_a_look_under_way_when_its_file_is_forgotten_is_dropped() -> None:
    world = make_world()
    world.write(SCAN, 100)
    world.now = 102.0
    [look] = world.tracker.due(world.now)
    assert world.tracker.looked(look, world.files[SCAN], world.now, world.wall) == Inspect()
    world.tracker.forget(SCAN)  # deleted while it was being read
    world.write(SCAN, 100)  # and a new file came under the same name
    assert world.tracker.inspected(look, WHOLE, world.now) == Dropped()
    assert world.tracker.looked(look, world.files[SCAN], world.now, world.wall) == Dropped()
    assert world.tracker.pending_count == 1  # the new one waits for its own look
    assert [d for _, _, d in world.settle_all()] == [Ready()]


def test_forget_drops_what_was_settled_so_the_file_is_new_when_moved_back() -> None:
    world = make_world()
    world.write(SCAN, 100)
    world.settle_all()
    world.tracker.forget(SCAN)  # moved out
    state = world.files[SCAN]  # moved back in: same size and mtime
    assert world.tracker.seen(SCAN, state, world.now, world.wall, "rule") is not None


def test_prune_forgets_settled_files_but_not_a_new_arrival() -> None:
    world = make_world()
    other = Path("/inbox/other.pdf")
    world.write(SCAN, 100)
    world.write(other, 100)
    world.settle_all()
    world.now += 10
    world.write(other, 200)  # rewritten: pending again, while still settled at 100 bytes
    world.tracker.prune([SCAN, other])  # a rescan raced with the rewrite
    assert world.tracker.settled_paths() == []
    assert world.tracker.is_pending(other)
    assert [(p, d) for _, p, d in world.settle_all()] == [(other, Ready())]


def test_release_offers_a_file_again_when_next_seen() -> None:
    world = make_world()
    world.write(SCAN, 100)
    world.settle_all()
    world.tracker.release(SCAN)  # the daemon could not take it (its journal was full)
    assert world.tracker.seen(SCAN, world.files[SCAN], world.now, world.wall, "rule")


def test_abandon_drops_a_look_that_failed() -> None:
    world = make_world()
    world.write(SCAN, 100)
    world.now = 102.0
    [look] = world.tracker.due(world.now)
    world.tracker.abandon(look)
    assert world.tracker.pending_count == 0
    assert world.tracker.looked(look, world.files[SCAN], world.now, world.wall) == Dropped()
    assert world.write(SCAN, 100) is not None  # seen afresh
    world.tracker.abandon(look)  # stale: the new candidate is untouched
    assert world.tracker.pending_count == 1


# --- order and many files -------------------------------------------------------------------


def test_looks_come_due_in_order_and_next_due_skips_stale_ones() -> None:
    world = make_world()
    tracker = world.tracker
    late, early, same = Path("/in/late.pdf"), Path("/in/early.pdf"), Path("/in/same.pdf")
    assert tracker.next_due() is None
    tracker.seen(late, written(1, 100.0), 100.0, world.wall, "rule")  # due 102
    tracker.seen(early, written(1, 99.0), 100.0, world.wall, "rule")  # due 101
    tracker.seen(same, written(1, 99.0), 100.0, world.wall, "rule")  # due 101, seen later
    assert tracker.next_due() == pytest.approx(101.0)
    tracker.forget(early)
    assert tracker.next_due() == pytest.approx(101.0)  # `same` is still due then
    tracker.forget(same)
    assert tracker.next_due() == pytest.approx(102.0)
    tracker.seen(early, written(1, 99.0), 100.0, world.wall, "rule")
    tracker.seen(same, written(1, 99.0), 100.0, world.wall, "rule")
    assert [look.path for look in tracker.due(110.0)] == [early, same, late]
    assert tracker.next_due() is None  # all taken: each awaits its answer
    assert tracker.pending_count == 3


def test_many_files_due_together_come_in_one_look_each() -> None:
    world = make_world()
    paths = [Path(f"/inbox/scan{n:04}.pdf") for n in range(1000)]
    for path in paths:
        world.files[path], world.contents[path] = written(100, 99.0), WHOLE
        world.tracker.seen(path, world.files[path], 100.0, world.wall, "rule")
    world.now = 101.0
    decisions = world.step()
    assert [path for path, _ in decisions] == paths  # in the order they were seen
    assert all(decision == Ready() for _, decision in decisions)
    assert world.looks == 1000 and world.tracker.pending_count == 0
    assert world.tracker.next_due() is None
