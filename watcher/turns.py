"""Turns at the service: at most `concurrency` jobs are at the service at once.

A job takes a turn before it is sent and keeps it through its polls and its download: the
user's `concurrency` is how many files the service converts at once for them. Everything
else a job needs (checks, page count, filing, the journal's synced writes) happens on this
computer, outside the turn, on more workers than there are turns: the service is kept busy
while results are filed and the next files are counted, instead of waiting for them.
"""

from __future__ import annotations

import threading

__all__ = ["ServiceTurns"]

# How often a worker waiting for a turn looks whether the daemon is stopping.
_STOP_CHECK_SECONDS = 0.1


class ServiceTurns:
    """`size` turns, taken and given back by worker threads; a thread holds at most one.
    `size=None`: no limit (a one-shot conversion has one job at a time anyway)."""

    def __init__(self, size: int | None, stop: threading.Event | None = None) -> None:
        self._free = threading.Semaphore(size) if size is not None else None
        self._stop = stop or threading.Event()
        self._holder = threading.local()

    def take(self) -> bool:
        """Waits for a turn unless this thread holds one; False when the daemon stops first."""
        if self._free is None or getattr(self._holder, "turn", False):
            return True
        while not self._stop.is_set():
            if self._free.acquire(timeout=_STOP_CHECK_SECONDS):
                self._holder.turn = True
                return True
        return False

    def give_back(self) -> None:
        """Gives this thread's turn back, if it holds one."""
        if self._free is not None and getattr(self._holder, "turn", False):
            self._holder.turn = False
            self._free.release()
