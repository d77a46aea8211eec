"""While a batch runs, the daemon keeps to one core (Linux).

Python runs one thread at a time (the GIL), and a thread lets go of it at every system call.
Spread over several cores, the daemon's threads hand it to one another across cores: each
hand-over wakes a thread on another core, which costs more than the work it hands over on a
small file (on the 2-core test machine, a fifth of the daemon's CPU went to such wake-ups;
keeping its threads on one core cut CPU per file by a fifth: benchmarks/README.md).

A batch keeps every thread of the process to the core its first worker was on when the
batch began (the scheduler's choice at that moment); an idle daemon keeps to nothing, so the
next batch is placed afresh. A program inherits the cores of the thread that starts it: a
thread starts one inside `anywhere()`, so that the user's commands and file manager may use
every core. Elsewhere than Linux all of this does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["anywhere", "current_core", "keep_process_to"]

# The cores this process may use (all of them, or what `taskset` or a container allows).
_ALLOWED: frozenset[int] = (
    frozenset(os.sched_getaffinity(0))
    if sys.platform.startswith("linux") and hasattr(os, "sched_setaffinity")
    else frozenset()
)
# Held while the threads are placed and while a program is started: a batch beginning at
# that moment cannot keep the starting thread to one core before the program has started.
_placing = threading.Lock()


def current_core() -> int | None:
    """The core the calling thread runs on now; None where keeping to one makes no sense
    (not Linux, or a single core allowed) or it cannot be read."""
    if len(_ALLOWED) < 2:
        return None
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            text = stat.read()
        core = int(text[text.rindex(b")") + 2 :].split()[36])  # field 39: "processor"
    except (OSError, ValueError, IndexError):
        return None
    return core if core in _ALLOWED else None


def keep_process_to(core: int | None) -> None:
    """Every thread of this process runs on `core` alone from now on (threads started later
    inherit it from the thread that starts them); None: on any allowed core."""
    if not _ALLOWED:
        return
    cores = _ALLOWED if core is None else {core}
    with _placing:
        try:
            threads = os.listdir("/proc/self/task")
        except OSError:
            return
        for thread in threads:
            _keep(int(thread), cores)


@contextlib.contextmanager
def anywhere() -> Iterator[None]:
    """For the block, the calling thread may run on any allowed core, and so may a program
    it starts there; no batch keeps it to one core before the block has ended."""
    with _placing:
        if _ALLOWED:
            _keep(0, _ALLOWED)
        yield


def _keep(thread: int, cores: frozenset[int] | set[int]) -> None:
    with contextlib.suppress(OSError):  # gone meanwhile, or a core taken away: left as it is
        os.sched_setaffinity(thread, cores)
