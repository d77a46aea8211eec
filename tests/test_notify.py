"""Notifications: few and useful (merged per kind, a kind just shown waits), and delivered to a
real notification server (dunst) on a session bus of the test's own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_tray import Desktop, needs_desktop, processes, snap, wait_until, write_config

from watcher import notify
from watcher.daemon import Notice, NoticeKind
from watcher.notify import DesktopSender, Look, Message, Notifier
from watcher.sandbox import Sandbox


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gathering and quiet times short enough for a test, in the same proportion."""
    monkeypatch.setattr(notify, "GATHER_SECONDS", 0.3)
    monkeypatch.setattr(notify, "QUIET_SECONDS", 3.0)


class Shown:
    """A stand-in for the desktop: records what would be shown, from the notifier's loop."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def send(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@pytest.fixture
def shown(quick: None) -> Iterator[tuple[Notifier, Shown]]:
    record = Shown()
    notifier = Notifier(record.send)
    notifier.start()
    yield notifier, record
    notifier.stop()


def failed(name: str) -> Notice:
    return Notice(NoticeKind.FILE_FAILED, "Conversion failed", f"{name}: it is damaged")


def test_a_burst_of_failures_is_one_notification_then_one_more(
    shown: tuple[Notifier, Shown],
) -> None:
    notifier, record = shown
    for number in range(5):
        notifier.on_notice(failed(f"scan{number}.pdf"))
    wait_until(lambda: record.count() == 1, "the first notification")
    assert record.messages[0] == Message(
        Look.FILE_FAILED,
        "5 files failed",
        "scan0.pdf, scan1.pdf, scan2.pdf and 2 more; each is in the failed folder with a note "
        "saying why",
    )
    for number in range(5, 8):  # while the kind is quiet: kept, then shown as one
        notifier.on_notice(failed(f"scan{number}.pdf"))
    wait_until(lambda: record.count() == 2, "the failures after the quiet time")
    assert record.messages[1].title == "3 files failed"


def test_kinds_are_not_mixed_and_a_broken_rules_file_is_told_once(
    shown: tuple[Notifier, Shown],
) -> None:
    notifier, record = shown
    broken = snap(config_error="rules.toml:3: outformat: 'doc' is not one of docx, txt")
    notifier.on_notice(failed("scan.pdf"))
    notifier.on_snapshot(broken)
    notifier.on_snapshot(replace(broken, queued=2))  # the same error: nothing new
    wait_until(lambda: record.count() == 2, "two notifications")
    looks = {m.look: m for m in record.messages}
    assert set(looks) == {Look.FILE_FAILED, Look.RULES_BROKEN}
    assert looks[Look.FILE_FAILED] == Message(
        Look.FILE_FAILED, "Conversion failed", "scan.pdf: it is damaged"
    )
    assert looks[Look.RULES_BROKEN].title == "Rules file not used"
    assert looks[Look.RULES_BROKEN].body.startswith("rules.toml:3: outformat: 'doc' is not")
    notifier.on_snapshot(snap())  # fixed
    notifier.on_snapshot(broken)  # and broken again: worth saying again
    wait_until(lambda: record.count() == 3, "the rules file broken again")


def dunst_desktop(started: list[Any], home: Path, *, server: bool) -> Desktop:
    desktop = Desktop(started, home)
    if server:
        desktop.start_dunst(home)
    return desktop


@pytest.fixture
def on_bus(monkeypatch: pytest.MonkeyPatch) -> Callable[[Desktop], None]:
    """Points this process's D-Bus clients at the desktop's session bus."""

    def point(desktop: Desktop) -> None:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", desktop.env["DBUS_SESSION_BUS_ADDRESS"])
        monkeypatch.setenv("DISPLAY", desktop.display)

    return point


@needs_desktop
@pytest.mark.timeout(180)
def test_a_real_daemon_notifies_the_desktop(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    make_daemon: Callable[..., Any],
    on_bus: Callable[[Desktop], None],
    quick: None,
) -> None:
    """A failed file and a broken rules file reach dunst, each in its own words; three bad
    files dropped together are fewer than three notifications."""
    rules = write_config(tmp_path, make_sandbox())
    with processes() as started:
        desktop = dunst_desktop(started, tmp_path, server=True)
        on_bus(desktop)
        daemon = make_daemon(rules)
        notifier = Notifier()
        notifier.watch(daemon)
        try:
            for name in ("a.pdf", "b.pdf", "c.pdf"):
                (tmp_path / "inbox" / name).write_text("not a PDF")

            def failures() -> list[str]:
                return [n for n in desktop.notifications() if " failed" in n.split(":")[0]]

            def named() -> bool:
                text = " ".join(failures())
                return all(name in text for name in ("a.pdf", "b.pdf", "c.pdf"))

            wait_until(named, lambda: f"the failures named; dunst has {failures()}", 60)
            assert len(failures()) < 3, failures()
            rules.write_text(rules.read_text().replace('outformat = "txt"', 'outformat = "doc"'))
            wait_until(
                lambda: any(n.startswith("Rules file not used: ") for n in desktop.notifications()),
                lambda: f"the broken rules file; dunst has {desktop.notifications()}",
                60,
            )
            (broken,) = [n for n in desktop.notifications() if n.startswith("Rules file")]
            assert "config.toml" in broken and "outformat" in broken
        finally:
            notifier.stop()


@needs_desktop
@pytest.mark.timeout(120)
def test_without_a_notification_service_it_says_so_once(
    tmp_path: Path, on_bus: Callable[[Desktop], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with processes() as started:
        desktop = dunst_desktop(started, tmp_path, server=False)
        on_bus(desktop)
        sender = DesktopSender()
        import asyncio

        for _ in range(2):
            asyncio.run(sender.send(Message(Look.HELD, "Conversions held", "no credit left")))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "no desktop notifications: no notification service runs on this desktop "
        "(org.freedesktop.Notifications)"
    ]
    assert not any(r.exc_info for r in caplog.records)


def test_every_notice_the_daemon_gives_has_a_look() -> None:
    assert {kind.value for kind in NoticeKind} <= {look.value for look in Look}
    assert set(tray_states()) == {look.value for look in Look}


def tray_states() -> dict[str, object]:
    from watcher.tray import NOTIFICATION_STATES

    return NOTIFICATION_STATES


def test_no_session_bus_is_said_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setattr(notify.sys, "platform", "linux")
    reason = notify.service_missing(OSError("could not open dbus info file: /root/.dbus/x"))
    assert reason == (
        "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set: not a desktop session?)"
    )
