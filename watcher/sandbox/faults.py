"""The faults the sandbox can play, where each may strike, and how the next one is picked.

Kept apart from the service rules so the catalogue is in one place: a test or a chaos run can
read which faults exist and choose rates without knowing anything of charges or HTTP, and the
picking order (queued faults first, in FAULT_KINDS order; random ones only while nothing is
queued, so injected faults stay deterministic) is written once.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

FAULT_KINDS: tuple[str, ...] = (
    "reset_before_upload",
    "reset_after_upload",
    "http524",
    "http502",
    "http503",
    "http429",
    "truncate_download",
    "foreign_link",
    "missing_link",
    "html_reply",
    "lose_job",
)
# Which queued faults may fire on which kind of moment, in FAULT_KINDS order. "cut" is the
# moment a submission's reply is cut (a 524 page or a reset after the upload): a queued
# "lose_job" waits there for the next cut job, whatever requests come before it.
SCOPES: dict[str, tuple[str, ...]] = {
    "submission": (*FAULT_KINDS[:6], "html_reply"),
    "poll": ("http502", "http503", "http429", "html_reply"),
    "download": ("truncate_download",),
    "reply": ("foreign_link", "missing_link"),
    "cut": ("lose_job",),
}


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per request of random misbehaviour, for chaos runs of the CLI sandbox."""

    reset: float = 0.0
    http502: float = 0.0
    http429: float = 0.0
    truncate: float = 0.0

    def describe(self) -> str:
        """The rates in plain words, for the sandbox banner: "none" when all are zero."""
        words = [
            (self.reset, "of submissions reset"),
            (self.http502, "of API requests answered 502"),
            (self.http429, "of API requests answered 429"),
            (self.truncate, "of downloads cut short"),
        ]
        said = [f"{percent(rate)} {what}" for rate, what in words if rate > 0]
        return ", ".join(said) or "none"


def percent(rate: float) -> str:
    """0.1 -> "10%", 0.025 -> "2.5%"."""
    return f"{rate * 100:.4g}%"


def check_injection(kind: str, times: int) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
    if times < 0:
        raise ValueError("times must be >= 0")


def take_queued(queued: Counter[str], scope: str) -> str | None:
    """Use up one queued fault that may fire in `scope`, the first in FAULT_KINDS order."""
    for kind in SCOPES[scope]:
        if queued[kind] > 0:
            queued[kind] -= 1
            return kind
    return None


def random_fault(scope: str, rates: FaultRates, rng: random.Random) -> str | None:
    """A fault drawn at the given rates; the draws per scope are fixed, so a seed repeats a run."""
    if scope == "submission" and rng.random() < rates.reset:
        return rng.choice(("reset_after_upload", "reset_before_upload"))
    if scope in ("submission", "poll"):
        if rng.random() < rates.http502:
            return "http502"
        if rng.random() < rates.http429:
            return "http429"
    if scope == "download" and rng.random() < rates.truncate:
        return "truncate_download"
    return None
