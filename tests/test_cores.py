"""While a batch runs the daemon keeps to one core (Linux): every thread, and what a thread
starting a program does about it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from watcher import cores

ALLOWED = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(ALLOWED) < 2, reason="Linux with 2 cores or more"
)


def cores_of_every_thread() -> list[set[int]]:
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")]


@pytest.fixture
def kept() -> Iterator[int]:
    """The process kept to the core this test runs on; let go afterwards, whatever happens."""
    core = cores.current_core()
    assert core in ALLOWED
    cores.keep_process_to(core)
    try:
        yield core
    finally:
        cores.keep_process_to(None)


def test_every_thread_keeps_to_the_core_then_may_run_anywhere_again(kept: int) -> None:
    sleeping = threading.Event()
    thread = threading.Thread(target=sleeping.wait, args=(10,))
    thread.start()  # started by a kept thread: kept too
    try:
        assert cores_of_every_thread() == [{kept}] * len(cores_of_every_thread())
        cores.keep_process_to(None)
        assert all(found == ALLOWED for found in cores_of_every_thread())
    finally:
        sleeping.set()
        thread.join(10)


def test_a_program_started_in_anywhere_may_use_every_core(kept: int) -> None:
    show = [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]
    inherited = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    assert inherited.strip() == str([kept])  # why the block is needed
    with cores.anywhere():
        freed = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    assert freed.strip() == str(sorted(ALLOWED))
