"""Desktop notifications through the desktop's own service, whatever the tray can do.

desktop-notifier speaks org.freedesktop.Notifications over D-Bus on Linux and uses the native
centres on macOS and Windows; it is asyncio-based, so it runs on a thread and loop of its own
and the daemon's threads only hand notices over.

Few and useful: notices of one kind that come close together become one ("3 files failed"),
and a kind just shown waits a while before it is shown again (a burst of failures is one or two
notifications, never a storm). A broken rules file is seen in the snapshots (the daemon keeps
the old rules and says so in the tray), and gets a look of its own, apart from a failed file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watcher.daemon import Daemon
    from watcher.status import Notice, Snapshot

log = logging.getLogger(__name__)

APP_NAME = "pdfocr-watcher"
GATHER_SECONDS = 2.0  # notices of one kind this close together are shown as one
QUIET_SECONDS = 60.0  # after showing a kind, more of it waits this long and comes as one
NAMES_SHOWN = 3  # "a.pdf, b.pdf, c.pdf and 4 more"
STOP_SECONDS = 2.0  # a notification still on its way is not worth holding up a stop
CHECK_SECONDS = 20.0  # a look for the notification service never holds anything up longer


class Look(Enum):
    """What a notification is about, which decides its icon, urgency and how it merges."""

    BATCH_DONE = "batch_done"
    FILE_FAILED = "file_failed"
    RULES_BROKEN = "rules_broken"
    LOW_CREDIT = "low_credit"
    HELD = "held"
    OFFLINE = "offline"


URGENT = {Look.RULES_BROKEN, Look.HELD}


@dataclass(frozen=True)
class Message:
    look: Look
    title: str
    body: str


def merge(messages: Sequence[Message]) -> Message:
    """One message for several of one look: failures are counted and named, anything else
    says its latest news (a batch summary or a hold supersedes the one before)."""
    last = messages[-1]
    if len(messages) == 1 or last.look is not Look.FILE_FAILED:
        return last
    names = [m.body.split(":", 1)[0] for m in messages]
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return Message(
        last.look,
        f"{len(messages)} files failed",
        shown + (f" and {more} more" if more > 0 else "") + "; each is in the failed folder "
        "with a note saying why",
    )


def from_notice(notice: Notice) -> Message:
    return Message(Look(notice.kind.value), notice.title, notice.message)


def rules_broken(error: str) -> Message:
    return Message(
        Look.RULES_BROKEN,
        "Rules file not used",
        f"{error} — the watcher goes on with the rules it had; fix the file and save it",
    )


Sender = Callable[[Message], Coroutine[Any, Any, None]]


@dataclass
class _Pending:
    messages: list[Message] = field(default_factory=list)
    due: float = 0.0


class Notifier:
    """Coalesces messages and sends them on its own thread. `send` is the coroutine that
    shows one (desktop-notifier's by default; tests may give their own)."""

    def __init__(self, send: Sender | None = None) -> None:
        self._send = send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._pending: dict[Look, _Pending] = {}
        self._shown_at: dict[Look, float] = {}
        self._lock = threading.Lock()
        self._config_error: str | None = None
        self._stopped = threading.Event()

    # -- from the daemon's threads --------------------------------------------------------

    def watch(self, daemon: Daemon) -> None:
        daemon.add_notice_listener(self.on_notice)
        daemon.add_listener(self.on_snapshot)
        self.start()

    def on_notice(self, notice: Notice) -> None:
        self.post(from_notice(notice))

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A rules file that breaks is told once, when it breaks (not at every snapshot)."""
        with self._lock:
            fresh = snapshot.config_error and snapshot.config_error != self._config_error
            self._config_error = snapshot.config_error
        if fresh and snapshot.config_error:
            self.post(rules_broken(snapshot.config_error))

    def post(self, message: Message) -> None:
        now = time.monotonic()
        with self._lock:
            pending = self._pending.setdefault(message.look, _Pending())
            if not pending.messages:
                quiet_until = self._shown_at.get(message.look, -QUIET_SECONDS) + QUIET_SECONDS
                pending.due = max(now + GATHER_SECONDS, quiet_until)
            pending.messages.append(message)
        self._wake_up()

    # -- the notifier's own thread --------------------------------------------------------

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended: nothing to wake
                loop.call_soon_threadsafe(wake.set)

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="notifications", daemon=True
        )
        self._thread.start()
        ready.wait(CHECK_SECONDS)

    def stop(self) -> None:
        self._stopped.set()
        self._wake_up()
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready))
        except Exception:
            log.exception("notifications stopped")
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        send = self._send or DesktopSender().send
        while not self._stopped.is_set():
            due = self._take_due()
            for message in due:
                try:
                    await send(message)
                except Exception as exc:
                    log.debug("notification not shown (%s): %s", exc, message.title)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait())

    def _take_due(self) -> list[Message]:
        now, due = time.monotonic(), []
        with self._lock:
            for look, pending in self._pending.items():
                if pending.messages and pending.due <= now:
                    due.append(merge(pending.messages))
                    pending.messages = []
                    self._shown_at[look] = now
        return due

    def _next_wait(self) -> float:
        with self._lock:
            dues = [p.due for p in self._pending.values() if p.messages]
        return max(0.05, min(dues) - time.monotonic()) if dues else 3600.0


class DesktopSender:
    """desktop-notifier, asked once whether the desktop has a notification service; without
    one it says so once and stays quiet, asking again only at the next message (a service
    can be started later)."""

    def __init__(self) -> None:
        self._notifier: Any = None
        self._said_missing = False
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        # Its own "Notification failed" warning carries a traceback: the reason is said
        # here, in one line.
        logging.getLogger("desktop_notifier").setLevel(logging.ERROR)

    async def send(self, message: Message) -> None:
        reason = await self._ready()
        if reason:
            if not self._said_missing:
                self._said_missing = True
                log.warning("no desktop notifications: %s", reason)
            log.debug("notification not shown: %s: %s", message.title, message.body)
            return
        from desktop_notifier import Icon, Urgency

        self._said_missing = False
        urgency = Urgency.Critical if message.look in URGENT else Urgency.Normal
        await self._notifier.send(
            message.title, message.body, urgency=urgency, icon=Icon(path=self._icon(message.look))
        )

    async def _ready(self) -> str | None:
        """None when notifications can be sent, else why not."""
        try:
            if self._notifier is None:
                from desktop_notifier import DesktopNotifier

                self._notifier = DesktopNotifier(app_name=APP_NAME, app_icon=None)
            await asyncio.wait_for(self._notifier.get_capabilities(), CHECK_SECONDS)
        except Exception as exc:
            self._forget_notifier()
            return service_missing(exc)
        return None

    def _forget_notifier(self) -> None:
        """Drops a notifier that found no service, with the bus connection it opened (asked
        again at the next message, it would open another)."""
        bus = getattr(getattr(self._notifier, "_backend", None), "bus", None)
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.disconnect()
        self._notifier = None

    def _icon(self, look: Look) -> Path:
        """The tray's own picture for the look, drawn once into a folder that goes with us."""
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="pdfocr-watcher-icons-")
        path = Path(self._folder.name) / f"{look.value}.png"
        if not path.exists():
            from watcher.tray import notification_icon

            notification_icon(look.value).save(path)
        return path


def service_missing(exc: BaseException) -> str:
    """A user's words for why desktop-notifier could not reach a notification service."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ImportError):
        return f"desktop-notifier cannot be loaded ({text}); reinstall pdfocr-watcher"
    if "org.freedesktop.Notifications" in text or "ServiceUnknown" in text:
        return "no notification service runs on this desktop (org.freedesktop.Notifications)"
    if sys.platform.startswith("linux") and not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set: not a desktop session?)"
    return text


async def check() -> str | None:
    """For `doctor`: None when a notification service answers, else why not."""
    return await DesktopSender()._ready()
