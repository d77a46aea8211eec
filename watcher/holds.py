"""Whether the queue may send new files: an account hold, the circuit breaker, a pause.

A policy only: it decides, and says why in the user's words; the daemon applies its decisions to
the workers and the journal. Files already at the service are always finished, whatever it says.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watcher.errors import AccountError, CreditError, EndpointMoved, ServiceLosingJobs

__all__ = ["HOLD_RETRY_SECONDS", "HoldStarted", "QueueHolds", "hold_reason"]

HOLD_RETRY_SECONDS = 600.0  # credit bought on the website changes nothing we can see


def hold_reason(error: AccountError, rules_file: Path | None) -> str:
    """What stopped the queue and what lifts it, in the user's words."""
    where = rules_file or "the rules file"
    if isinstance(error, ServiceLosingJobs):
        return (
            f"{error.message} — nothing more is sent. Check your pdfocr.org account "
            "(conversions and balance), then choose Resume queue in the tray: that also "
            "sends the lost files again, which may be charged twice"
        )
    if isinstance(error, EndpointMoved):
        return f"{error.message} — the queue resumes as soon as the rules file is saved"
    if isinstance(error, CreditError):
        return (
            f"the service refused the account: {error.message} — buy more pages at "
            f"pdfocr.org; the queue is tried again every {HOLD_RETRY_SECONDS / 60:.0f} "
            "minutes, or at once when you choose Resume queue"
        )
    return (
        f"the service refused the account: {error.message} — set the right key with "
        f"`pdfocr-watcher init --api-key KEY` (or edit `key` under [api] in {where}, or "
        "PDFOCR_API_KEY); the queue resumes as soon as the rules file is saved"
    )


@dataclass(frozen=True)
class HoldStarted:
    """A hold the daemon must apply: `first` when the queue was running until now."""

    reason: str
    breaker: bool
    first: bool


class QueueHolds:
    """The queue's holds and pause. Only a bad key (fixed by saving the rules file) and no
    credit (bought on the website, so tried again every 10 minutes) lift by themselves; a moved
    endpoint and the circuit breaker wait for the user, and the breaker even across restarts
    (the daemon keeps it in the journal). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._held_since: float | None = None  # monotonic
        self._retries_by_itself = True
        self._breaker = False
        self._paused_until: float | None = None  # epoch seconds; math.inf: until unpaused

    def hold(self, error: AccountError, rules_file: Path | None) -> HoldStarted | None:
        """Holds the queue; None when the breaker's hold stands and keeps its own words."""
        breaker = isinstance(error, ServiceLosingJobs)
        with self._lock:
            if self._breaker and not breaker:
                return None
            first = self._held_since is None
            self._held_since = self._clock()
            self._retries_by_itself = isinstance(error, CreditError)
            self._breaker = self._breaker or breaker
        return HoldStarted(hold_reason(error, rules_file), breaker, first)

    def lift(self, *, by_user: bool) -> bool | None:
        """Lifts the hold: True if there was one, False if not, None when refused (the
        breaker is lifted only by the user)."""
        with self._lock:
            if self._breaker and not by_user:
                return None
            was_held = self._held_since is not None
            self._held_since = None
            self._breaker = False
        return was_held

    @property
    def held(self) -> bool:
        with self._lock:
            return self._held_since is not None

    def retry_due(self) -> bool:
        """True once a hold that lifts by itself has lasted HOLD_RETRY_SECONDS."""
        with self._lock:
            since = self._held_since if self._retries_by_itself else None
        return since is not None and self._clock() - since > HOLD_RETRY_SECONDS

    def pause(self, until: float | None) -> None:
        with self._lock:
            self._paused_until = math.inf if until is None else until

    def unpause(self) -> bool:
        """Ends the pause; True if there was one."""
        with self._lock:
            was_paused = self._paused_until is not None
            self._paused_until = None
        return was_paused

    @property
    def paused_until(self) -> float | None:
        with self._lock:
            return self._paused_until
