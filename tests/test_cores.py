"""The workers of a batch share one core (Linux): a thread kept to a core, and let go."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from watcher import cores

T = TypeVar("T")
ALLOWED = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(ALLOWED) < 2, reason="Linux with 2 cores or more"
)


def in_a_thread(work: Callable[[], T]) -> T:
    """Runs `work` in a thread of its own: a core kept to is the thread's, not the test's."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join(10)
    return result[0]


def test_a_thread_keeps_to_the_core_it_is_on_then_may_run_anywhere_again() -> None:
    def keep_then_let_go() -> tuple[int | None, set[int], set[int]]:
        core = cores.current_core()
        cores.keep_to(core)
        kept = os.sched_getaffinity(0)
        cores.run_anywhere()
        return core, kept, os.sched_getaffinity(0)

    core, kept, after = in_a_thread(keep_then_let_go)
    assert core in ALLOWED
    assert kept == {core}
    assert after == ALLOWED


def test_a_thread_started_by_a_kept_thread_is_kept_too_until_it_lets_go() -> None:
    """Why the hooks' thread calls run_anywhere: threads and programs inherit the cores."""

    def start_a_child() -> tuple[set[int], set[int]]:
        cores.keep_to(cores.current_core())
        inherited = in_a_thread(lambda: os.sched_getaffinity(0))
        freed = in_a_thread(lambda: (cores.run_anywhere(), os.sched_getaffinity(0))[1])
        return inherited, freed

    inherited, freed = in_a_thread(start_a_child)
    assert len(inherited) == 1
    assert freed == ALLOWED
