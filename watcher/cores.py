"""The workers of a batch share one core (Linux).

Python runs one thread at a time (the GIL), and a worker lets go of it at every system call.
Spread over several cores, the workers hand it to one another across cores: each hand-over
wakes a thread on another core, which costs more than the work it hands over on a small
file (on the 2-core test machine, a fifth of the daemon's CPU went to such wake-ups, and
keeping the workers on one core cut CPU per file by about 12 %; benchmarks/README.md).

While a batch runs, the workers keep to the core the first of them was on when the batch
began (the scheduler's choice at that moment); an idle daemon keeps no thread anywhere, so
the next batch is placed afresh. A program the daemon starts inherits the cores of the
thread that starts it, so a thread that starts programs (the user's commands after a
result) calls `run_anywhere` first. Elsewhere than Linux all of this does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["current_core", "keep_to", "run_anywhere"]

# The cores this process may use (all of them, or what `taskset` or a container allows).
_ALLOWED: frozenset[int] = (
    frozenset(os.sched_getaffinity(0))
    if sys.platform.startswith("linux") and hasattr(os, "sched_setaffinity")
    else frozenset()
)


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


def keep_to(core: int | None) -> None:
    """The calling thread runs on `core` alone from now on; None: on any allowed core."""
    if not _ALLOWED:
        return
    with contextlib.suppress(OSError):  # a core taken away meanwhile: it runs where it may
        os.sched_setaffinity(0, _ALLOWED if core is None else {core})


def run_anywhere() -> None:
    """The calling thread (and every program it starts) may run on any allowed core."""
    keep_to(None)
