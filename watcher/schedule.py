"""Sending hours: an inbox (or every inbox, from [watch]) may send files only within a daily
window, `send_between = "22:00-06:00"` (local time; it may cross midnight).

A file that is due outside its window waits *before* it is sent: the runner holds it as
SCHEDULED (watcher.jobs) with the moment its window opens, and the daemon's housekeeping puts
it back in the queue then, where it is judged again by the rules in force. Nothing else
waits: a file already at the service is always asked for and filed, whatever the hour, so a
window can never leave a paid conversion unfinished nor cause anything to be sent twice.
A reused earlier result (the same bytes converted before) sends nothing and is not held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watcher.config import Config
    from watcher.jobs import Job

_WINDOW_RE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
WINDOW_EXAMPLE = '"22:00-06:00"'


@dataclass(frozen=True)
class Window:
    """A daily window of local time, from `start` (included) to `end` (not included)."""

    start: clock
    end: clock

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: datetime) -> bool:
        now = moment.time()
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # across midnight

    def next_opening(self, moment: datetime) -> datetime:
        """The next moment the window opens after `moment` (which is outside it)."""
        opening = datetime.combine(moment.date(), self.start)
        return opening if opening > moment else opening + timedelta(days=1)


def parse_window(text: str) -> Window | None:
    """A window from "HH:MM-HH:MM", None for "" (any time); ValueError in the user's words."""
    if not text.strip():
        return None
    match = _WINDOW_RE.fullmatch(text)
    if match is None:
        raise ValueError(f'must be two times of day, like {WINDOW_EXAMPLE}, or "" for any time')
    hours = (int(match[1]), int(match[3]))
    minutes = (int(match[2]), int(match[4]))
    if max(hours) > 23 or max(minutes) > 59:
        raise ValueError(
            f"has a time that does not exist; use 00:00 to 23:59, like {WINDOW_EXAMPLE}"
        )
    start, end = clock(hours[0], minutes[0]), clock(hours[1], minutes[1])
    if start == end:
        raise ValueError('opens and closes at the same time, so nothing would be sent; use "" '
                         "to send at any time")  # fmt: skip
    return Window(start, end)


def wait_reason(window: Window, opening: datetime, inbox: Path | None) -> str:
    where = f"inbox {inbox}" if inbox else "its inbox"
    return (
        f"scheduled: {where} sends only between {window} (send_between), so it is sent at "
        f"{opening:%H:%M} on {opening:%a %d %b}. To send it sooner, change send_between"
    )


class SendSchedule:
    """The sending hours of the current rules, asked by the runner before each submission."""

    def __init__(self, config: Config) -> None:
        self._windows = _windows(config)

    def update_config(self, config: Config) -> bool:
        """Use new rules; True when a window changed (held files are then judged again)."""
        windows = _windows(config)
        changed = windows != self._windows
        self._windows = windows
        return changed

    def wait(self, job: Job, now: float) -> tuple[float, str] | None:
        """Until when (epoch seconds) and why this job must wait before it is sent, or None
        when it may go now."""
        window = self._windows.get(job.inbox) if job.inbox else None
        return wait_for(window, job.inbox, now)


def wait_for(window: Window | None, inbox: Path | None, now: float) -> tuple[float, str] | None:
    """Until when and why a file of this inbox must wait at `now` (None: it may go); the
    daemon's question, and `check --explain`'s."""
    if window is None:
        return None
    moment = datetime.fromtimestamp(now)
    if window.contains(moment):
        return None
    opening = window.next_opening(moment)
    return opening.timestamp(), wait_reason(window, opening, inbox)


def _windows(config: Config) -> dict[Path, Window]:
    return {rule.path: rule.send_between for rule in config.inboxes if rule.send_between}
