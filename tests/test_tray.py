"""The tray: pure state, words, pictures and menu; the real icon under Xvfb; headless fallback.

Set PDFOCR_WATCHER_DOCS=1 to (re)write the screenshots in docs/ from these tests.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from watcher import doctor, tray
from watcher.samplepdf import write_pdf
from watcher.sandbox import Sandbox
from watcher.status import Notice, RecentConversion, Snapshot
from watcher.tray import (
    BADGE_COLOURS,
    Tray,
    TrayState,
    build_menu,
    draw_icon,
    present,
    tooltip,
    tray_state,
    tray_unavailable_reason,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
WRITE_DOCS = bool(os.environ.get("PDFOCR_WATCHER_DOCS"))


def snap(**fields: Any) -> Snapshot:
    """A snapshot of an idle live daemon, with `fields` changed."""
    base: dict[str, Any] = dict(
        sandbox=False, queued=0, in_flight=0, batch_done=0, batch_total=0, held=None,
        service_problem=None, paused_until=None, config_error=None, unseen_failures=0,
        last_failure=None, failed=0, available_pages=None, low_credit=False,
        last_conversion_at=None, recent=(), inboxes=(), outboxes=(), failed_folders=(),
        config_path=None, log_path=None,
    )  # fmt: skip
    return Snapshot(**{**base, **fields})


# The smallest snapshot change that puts the tray in each state, highest priority first.
MAKES = {
    TrayState.BROKEN: {"config_error": "rules.toml:3: outformat: not one of docx, txt"},
    TrayState.ERROR: {"unseen_failures": 1, "last_failure": "scan.pdf: damaged"},
    TrayState.HELD: {"held": "no credit left"},
    TrayState.OFFLINE: {"service_problem": "connection refused"},
    TrayState.WORKING: {"queued": 2, "in_flight": 1, "batch_done": 2, "batch_total": 10},
    TrayState.PAUSED: {"paused_until": math.inf},
    TrayState.IDLE: {},
}


# -- state and words --------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(MAKES))
def test_each_state_alone(state: TrayState) -> None:
    assert tray_state(snap(**MAKES[state])) is state


@pytest.mark.parametrize(
    ("high", "low"), list(itertools.combinations(MAKES, 2)), ids=lambda s: s.value
)
def test_the_more_urgent_state_wins(high: TrayState, low: TrayState) -> None:
    assert tray_state(snap(**{**MAKES[low], **MAKES[high]})) is high


def test_a_broken_rules_file_is_not_a_failed_file() -> None:
    broken = snap(**MAKES[TrayState.BROKEN], **MAKES[TrayState.ERROR])
    assert tray_state(broken) is TrayState.BROKEN
    assert differ(draw_icon(TrayState.BROKEN), draw_icon(TrayState.ERROR))


def test_tooltips_say_the_state_and_the_credit() -> None:
    assert tooltip(snap(**MAKES[TrayState.WORKING], available_pages=1960)) == (
        "Converting 3 of 10 · 1,960 pages left"
    )
    assert tooltip(snap(available_pages=1960)) == "Idle · 1,960 pages left"
    assert tooltip(snap(paused_until=math.inf)) == "Paused until resumed"
    assert tooltip(snap(sandbox=True)) == "SANDBOX · Idle"
    assert tooltip(snap(**MAKES[TrayState.ERROR])) == "Failed: scan.pdf: damaged"
    assert tooltip(snap(**{**MAKES[TrayState.ERROR], "unseen_failures": 3})) == (
        "3 files failed; see the failed folder"
    )
    assert tooltip(snap(available_pages=12, low_credit=True)) == "Idle · 12 pages left (low)"
    assert tooltip(snap(service_problem="timed out")) == "Offline, retrying: timed out"
    assert tooltip(snap(held="bad key")) == "Held: bad key"
    assert (
        tooltip(snap(config_error="rules.toml:3: x: bad"))
        == "Rules file not used: rules.toml:3: x: bad"
    )
    assert tooltip(snap(queued=4)) == "Converting 4 files"
    at = time.time() + 600
    assert tooltip(snap(paused_until=at)) == f"Paused until {tray.until(at)}"
    assert tooltip(snap(**MAKES[TrayState.WORKING], paused_until=math.inf)) == (
        "Converting 3 of 10 · paused until resumed"
    )
    # Paused with files only waiting: nothing converts, so it is not "Converting 1 of 1".
    waiting = snap(queued=1, batch_total=1, paused_until=math.inf)
    assert tray_state(waiting) is TrayState.PAUSED
    assert tooltip(waiting) == "Paused until resumed · 1 file waiting"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(5, "just now"), (130, "2 min ago"), (3 * 3600 + 5, "3 h ago"), (86400, "1 day ago"),
     (5 * 86400, "5 days ago")],
)  # fmt: skip
def test_ago(seconds: float, said: str) -> None:
    assert tray.ago(seconds) == said


def test_a_long_reason_is_cut_to_one_short_line() -> None:
    text = tooltip(snap(held="the service refused the account:\n" + "x" * 300, sandbox=True))
    assert text.startswith("SANDBOX · Held: the service refused the account: xxx")
    assert len(text) == tray.TITLE_LIMIT and text.endswith("…") and "\n" not in text


def test_until_tomorrow_means_the_next_eight_oclock() -> None:
    evening = time.mktime((2030, 5, 6, 21, 15, 0, 0, 0, -1))
    early = time.mktime((2030, 5, 7, 6, 0, 0, 0, 0, -1))
    eight = time.mktime((2030, 5, 7, 8, 0, 0, 0, 0, -1))
    assert tray.next_morning(evening) == tray.next_morning(early) == eight
    assert tray.until(eight, now=evening) == "tomorrow 08:00"
    assert tray.until(eight, now=early) == "08:00"


# -- pictures ---------------------------------------------------------------------------------


def differ(a: Image.Image, b: Image.Image) -> bool:
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    return diff.getbbox(alpha_only=False) is not None


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return sum(abs(a - b) for a, b in zip(pixel[:3], colour, strict=True)) < tolerance


def test_every_state_has_its_own_picture() -> None:
    icons = {state: draw_icon(state) for state in TrayState}
    for a, b in itertools.combinations(TrayState, 2):
        assert differ(icons[a], icons[b]), f"{a} and {b} look the same"
    assert all(icon.mode == "RGBA" and icon.size == (128, 128) for icon in icons.values())


def test_progress_fills_the_working_icon_in_twelfths() -> None:
    looks = [draw_icon(TrayState.WORKING, progress=p) for p in (None, 0.0, 0.5, 1.0)]
    for a, b in itertools.combinations(looks, 2):
        assert differ(a, b)
    assert draw_icon(TrayState.WORKING, progress=0.5) is draw_icon(TrayState.WORKING, progress=0.52)


def test_the_sandbox_mark_is_a_yellow_corner() -> None:
    plain, marked = draw_icon(TrayState.IDLE), draw_icon(TrayState.IDLE, sandbox=True)
    assert differ(plain, marked)
    assert near(marked.getpixel((2, 2)), tray.SANDBOX_YELLOW)
    assert plain.getpixel((3, 3))[3] == 0


@pytest.mark.parametrize("size", [16, 22, 24, 32])
def test_at_panel_sizes_every_state_still_has_its_own_picture(size: int) -> None:
    icons = {state: draw_icon(state, size=size) for state in TrayState}
    for a, b in itertools.combinations(TrayState, 2):
        assert differ(icons[a], icons[b]), f"{a} and {b} look the same at {size} px"
    for icon in icons.values():  # transparent around the page, never a square
        assert icon.getpixel((size - 1, 0))[3] == 0 and icon.getpixel((0, size - 1))[3] == 0


def state_sheet() -> Image.Image:
    """All states side by side, large, with their names, and the sandbox variant last."""
    cells = [(state.value, draw_icon(state, progress=0.5, size=96)) for state in TrayState]
    cells.append(("sandbox", draw_icon(TrayState.WORKING, progress=0.25, sandbox=True, size=96)))
    sheet = Image.new("RGB", (120 * len(cells), 130), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=15)
    for index, (name, icon) in enumerate(cells):
        sheet.paste(icon, (120 * index + 12, 6), icon)
        draw.text((120 * index + 60, 116), name, fill="black", font=font, anchor="mm")
    return sheet


def test_state_sheet(tmp_path: Path) -> None:
    path = (DOCS if WRITE_DOCS else tmp_path) / "tray-states.png"
    state_sheet().save(path, optimize=True)
    assert Image.open(path).size == (120 * (len(TrayState) + 1), 130)


# -- the menu ---------------------------------------------------------------------------------


class FakeDaemon:
    """The daemon's tray-facing surface, keeping its state in a snapshot."""

    def __init__(self, **fields: Any):
        self.state = snap(**fields)
        self.stop_event = threading.Event()
        self.listeners: list[Callable[[Snapshot], None]] = []
        self.notice_listeners: list[Callable[[Notice], None]] = []
        self.waited = 0

    def change(self, **fields: Any) -> None:
        self.state = replace(self.state, **fields)
        for listener in self.listeners:
            listener(self.state)

    def snapshot(self) -> Snapshot:
        return self.state

    def add_listener(self, callback: Callable[[Snapshot], None]) -> None:
        self.listeners.append(callback)

    def add_notice_listener(self, callback: Callable[[Notice], None]) -> None:
        self.notice_listeners.append(callback)

    def pause(self, until: float | None) -> None:
        self.change(paused_until=math.inf if until is None else until)

    def unpause(self) -> None:
        self.change(paused_until=None)

    def resume(self) -> None:
        self.change(held=None)

    def retry_failed(self) -> int:
        count = self.state.failed
        self.change(failed=0, unseen_failures=0)
        return count

    def acknowledge_failures(self) -> None:
        self.change(unseen_failures=0)

    def request_stop(self) -> None:
        self.stop_event.set()

    def wait(self) -> None:
        self.waited += 1


class FakeIcon:
    """Stands in for pystray.Icon: runs `setup`, then "loops" until stopped."""

    def __init__(self, name: str, icon: Image.Image, title: str, menu: Any):
        self.icon, self.title, self.menu = icon, title, menu
        self.visible = False
        self.stopped = threading.Event()

    def run(self, setup: Callable[[Any], None]) -> None:
        threading.Thread(target=setup, args=(self,)).start()
        assert self.stopped.wait(10), "the icon was never stopped"

    def stop(self) -> None:
        self.stopped.set()

    def update_menu(self) -> None:
        pass


@pytest.fixture(scope="module")
def pystray() -> Any:
    """pystray picks a backend when imported, and its X one fails without a display: the
    menu classes are the same for all, so the dummy backend serves here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSTRAY_BACKEND", "dummy")
        import pystray

        return pystray


def texts(menu: Any) -> list[str]:
    return [item.text for item in menu if item is not menu.SEPARATOR]


def item(menu: Any, text: str) -> Any:
    return next(entry for entry in menu if entry.text == text)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    paths: list[Path] = []
    monkeypatch.setattr(tray, "open_path", paths.append)
    return paths


def test_an_idle_daemon_shows_only_what_applies(pystray: Any, opened: list[Path]) -> None:
    menu = build_menu(FakeDaemon(inboxes=(Path("/in/a"),), outboxes=(Path("/out"),)))
    assert texts(menu) == ["Idle", "Open inbox", "Open outbox", "Pause", "Quit"]
    assert [entry.text for entry in item(menu, "Pause").submenu] == [
        "For 1 hour",
        f"Until {tray.until(tray.next_morning(time.time()))}",
        "Until resumed",
    ]
    assert not item(menu, "Idle").enabled


def test_the_menu_keeps_a_long_reason_short(pystray: Any) -> None:
    reason = "scan.pdf: " + "it is neither a PDF nor an image " * 5
    menu = build_menu(FakeDaemon(unseen_failures=1, last_failure=reason))
    (status,) = [text for text in texts(menu) if text.startswith("Failed: ")]
    assert len(status) == tray.MENU_LIMIT and status.endswith("…")


def test_a_busy_daemon_shows_everything(pystray: Any, opened: list[Path]) -> None:
    daemon = FakeDaemon(
        **MAKES[TrayState.ERROR], held="no credit", paused_until=math.inf, failed=2,
        available_pages=1960, last_conversion_at=time.time() - 130,
        recent=(RecentConversion("a.pdf", Path("/out/a.docx"), 0.0),),
        inboxes=(Path("/in/to-word"), Path("/in/to-text")), outboxes=(Path("/out"),),
        failed_folders=(Path("/failed"),), config_path=Path("/rules.toml"),
        log_path=Path("/state/pdfocr-watcher.log"),
    )  # fmt: skip
    menu = build_menu(daemon)
    assert texts(menu) == [
        "Failed: scan.pdf: damaged",
        "1,960 pages left",
        "Last conversion: 2 min ago",
        "Recent conversions",
        "Open inbox",
        "Open outbox",
        "Open failed folder",
        "Resume",
        "Resume queue",
        "Retry failed (2)",
        "Edit rules…",
        "Open log",
        "Quit",
    ]
    inboxes = item(menu, "Open inbox").submenu
    assert [entry.text for entry in inboxes] == ["to-word", "to-text"]
    next(iter(inboxes))(None)
    item(menu, "Recent conversions").submenu.items[0](None)
    item(menu, "Edit rules…")(None)
    item(menu, "Open log")(None)
    assert opened == [
        Path("/in/to-word"),
        Path("/out/a.docx"),
        Path("/rules.toml"),
        Path("/state/pdfocr-watcher.log"),
    ]


def test_menu_actions_drive_the_daemon(pystray: Any, opened: list[Path]) -> None:
    daemon = FakeDaemon(failed_folders=(Path("/failed"),), outboxes=(Path("/out"),))
    menu, icon = build_menu(daemon), FakeIcon("t", draw_icon(TrayState.IDLE), "", None)
    item(item(menu, "Pause").submenu, "For 1 hour")(icon)
    assert daemon.state.paused_until == pytest.approx(time.time() + 3600, abs=5)
    assert "Pause" not in texts(menu)
    item(menu, "Resume")(icon)
    assert daemon.state.paused_until is None
    list(item(menu, "Pause").submenu)[1](icon)
    assert daemon.state.paused_until == tray.next_morning(time.time())
    item(menu, "Resume")(icon)
    item(item(menu, "Pause").submenu, "Until resumed")(icon)
    assert daemon.state.paused_until == math.inf
    item(menu, "Resume")(icon)

    daemon.change(held="bad key")
    item(menu, "Resume queue")(icon)
    assert daemon.state.held is None and "Resume queue" not in texts(menu)

    daemon.change(failed=3, unseen_failures=3)
    assert "Open failed folder" in texts(menu)
    menu(icon)  # a left click (the default action) opens the failed folder, and so looks
    assert opened == [Path("/failed")] and daemon.state.unseen_failures == 0
    menu(icon)  # with nothing unseen, a left click opens the outbox
    assert opened[-1] == Path("/out")
    item(menu, "Retry failed (3)")(icon)
    assert daemon.state.failed == 0 and "Open failed folder" not in texts(menu)

    item(menu, "Quit")(icon)
    assert daemon.stop_event.is_set() and icon.stopped.is_set()


def test_a_failing_action_is_logged_not_raised(
    pystray: Any, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = FakeDaemon(held="bad key")
    daemon.resume = lambda: 1 / 0  # type: ignore[method-assign]
    item(build_menu(daemon), "Resume queue")(None)
    assert "the tray action 'Resume queue' failed" in caplog.text


def test_open_path_never_blocks_or_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: calls.append((args, kw)))
    tray.open_path(tmp_path)
    ((args, options),) = calls
    assert args[-1] == str(tmp_path) and options["start_new_session"]
    assert options["stdin"] == options["stdout"] == options["stderr"] == subprocess.DEVNULL

    def missing(*_args: Any, **_kw: Any) -> None:
        raise FileNotFoundError("xdg-open")

    monkeypatch.setattr(subprocess, "Popen", missing)
    tray.open_path(tmp_path)
    assert f"could not open {tmp_path}" in caplog.text


# -- the Tray object with a stand-in icon -----------------------------------------------------


def test_tray_follows_the_daemon_and_stops_with_it(
    pystray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pystray, "Icon", FakeIcon)
    daemon, icons = FakeDaemon(), []
    monkeypatch.setattr(FakeIcon, "update_menu", lambda icon: icons.append(icon))
    runner = threading.Thread(target=Tray(daemon).run)
    runner.start()
    deadline = time.monotonic() + 5
    while not icons and time.monotonic() < deadline:  # the first refresh shows the icon
        daemon.change(queued=1, batch_total=4, batch_done=1)
        time.sleep(0.05)
    icon = icons[-1]
    wait_until(lambda: icon.title == "Converting 2 of 4", "the title to follow")
    assert icon.visible and icon.icon is draw_icon(TrayState.WORKING, progress=0.25)
    built = len(icons)
    daemon.change(sandbox=True)  # a new look and title, the same menu
    wait_until(lambda: icon.title.startswith("SANDBOX"), "the sandbox title")
    assert len(icons) == built, "the menu was rebuilt with nothing new in it"
    daemon.change(paused_until=math.inf)
    wait_until(lambda: len(icons) > built, "the menu rebuilt to offer Resume")
    daemon.request_stop()
    runner.join(5)
    assert not runner.is_alive() and icon.stopped.is_set()


def test_a_tray_that_fails_leaves_the_daemon_running(
    pystray: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    icons: list[Any] = []

    class BrokenIcon(pystray.Icon):  # the dummy backend's Icon is pystray's base class
        def _run(self) -> None:
            icons.append(self)
            raise RuntimeError("no session bus")  # as gtk does, before its loop is ready

        def _update_menu(self) -> None:
            pass

    monkeypatch.setattr(pystray, "Icon", BrokenIcon)
    monkeypatch.setenv("DISPLAY", ":99")
    daemon, threads = FakeDaemon(), set(threading.enumerate())
    try:
        present(daemon, no_tray=False)
        assert daemon.waited == 1
        wait_until(
            lambda: all(t.daemon for t in set(threading.enumerate()) - threads),
            "pystray's setup thread to end (it would keep the process alive)",
        )
    finally:
        for icon in icons:  # if the tray left it waiting, let this test fail, not hang
            if icon._setup_thread.is_alive():
                icon._mark_ready()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["the tray icon failed (no session bus); running on without it"]

    caplog.clear()
    daemon = FakeDaemon()
    daemon.stop_event.set()  # gtk with no notification service raises while it stops
    present(daemon, no_tray=False)
    assert daemon.waited == 0 and not caplog.records


def wait_until(
    condition: Callable[[], object], what: str | Callable[[], str], timeout: float = 10.0
) -> None:
    """Polls `condition`; `what` says (or, called, tells at the time) what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what if isinstance(what, str) else what()}"
        )
        time.sleep(0.05)


# -- headless ---------------------------------------------------------------------------------


@pytest.fixture
def no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")


def test_without_a_display_it_runs_headless_and_says_why_once(
    no_display: None, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = FakeDaemon()
    present(daemon, no_tray=False)
    assert daemon.waited == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no display" in warnings[0]


def test_no_tray_is_asked_for_so_nothing_is_said(
    no_display: None, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = FakeDaemon()
    present(daemon, no_tray=True)
    assert daemon.waited == 1 and not caplog.records


def test_a_missing_backend_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setitem(sys.modules, "pystray", None)  # as if it could not be imported
    reason = tray_unavailable_reason() or ""
    assert "python3-gi gir1.2-ayatanaappindicator3-0.1" in reason and "tray host" in reason


# -- the real icon on a desktop made of Xvfb, a session bus, trayer and dunst -----------------

X_TOOLS = ("Xvfb", "trayer", "import", "xdotool", "dbus-daemon", "dbus-send", "dunst", "dunstctl")
SCREEN = (800, 400)  # room below the tray for its menu
TRAY_BOX = (680, 0, 800, 24)  # where trayer sits, top right
needs_desktop = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in X_TOOLS),
    reason="the real tray tests need Xvfb, trayer, ImageMagick's import, xdotool, dbus and dunst "
    "(Debian: apt-get install xvfb trayer imagemagick xdotool dbus dbus-x11 dunst; .ci/run "
    "installs them)",
)


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Ends every process started in the block, the last first."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def read_line_from(
    command: list[str],
    started: list[subprocess.Popen[bytes]],
    what: str,
    env: dict[str, str] | None = None,
) -> str:
    """Starts `command` with {fd} replaced by a pipe it writes one line to, and returns it
    (how Xvfb tells its display and dbus-daemon its address)."""
    read, write = os.pipe()
    try:
        started.append(
            subprocess.Popen(
                [part.replace("{fd}", str(write)) for part in command],
                pass_fds=(write,),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        os.close(write)
        line = b""
        while not line.endswith(b"\n"):  # Xvfb dies if the pipe closes before its newline
            assert select.select([read], [], [], 20)[0], f"{what} did not start"
            chunk = os.read(read, 256)
            assert chunk, f"{what} did not start"
            line += chunk
        return line.decode().strip()
    finally:
        os.close(read)


def start_xvfb(started: list[subprocess.Popen[bytes]]) -> str:
    size = f"{SCREEN[0]}x{SCREEN[1]}x24"
    # -noreset: Xvfb otherwise resets when its last client leaves, and a test that connects
    # in that moment (to ask whether a tray host is up) has its connection reset.
    command = ["Xvfb", "-displayfd", "{fd}", "-screen", "0", size, "-nolisten", "tcp", "-noreset"]
    return ":" + read_line_from(command, started, "Xvfb")


# A session bus that starts no services by itself (but those of Desktop's `failing`): only
# what a test starts is there.
SESSION_BUS = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class Desktop:
    """A display and a session bus of its own; a tray host and a notification server on
    request. `env` is what a program started on it gets."""

    def __init__(
        self, started: list[subprocess.Popen[bytes]], home: Path, *, failing: str | None = None
    ):
        """`failing`: a bus name the bus offers to start, with a program that fails at once
        (as a notification server with no display does)."""
        self.started, self.home = started, home
        self.display = start_xvfb(started)
        config = home / "session-bus.conf"
        services = home / "bus-services"
        services.mkdir()
        if failing:
            (services / f"{failing}.service").write_text(
                f"[D-BUS Service]\nName={failing}\nExec=/bin/false\n"
            )
        config.write_text(
            SESSION_BUS.replace(
                "</busconfig>", f"  <servicedir>{services}</servicedir>\n</busconfig>"
            )
        )
        bus = read_line_from(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address={fd}"],
            started,
            "dbus",
        )
        self.env = {
            **os.environ,
            "DISPLAY": self.display,
            "DBUS_SESSION_BUS_ADDRESS": bus,
            "NO_AT_BRIDGE": "1",  # no accessibility bus to start
            "PYTHONUNBUFFERED": "1",
        }

    def start_trayer(self) -> None:
        with (self.home / "trayer.err").open("ab") as log:  # the child keeps its own copy
            self.started.append(
                subprocess.Popen(
                    ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel",
                     "--width", "120", "--heighttype", "pixel", "--height", "24",
                     "--transparent", "false", "--tint", "0xffffff"],
                    env=self.env, stdout=subprocess.DEVNULL, stderr=log,
                )
            )  # fmt: skip
        trayer = self.started[-1]
        wait_until(
            lambda: tray_host_running(self.display),
            lambda: (
                f"trayer to own the tray (exit code {trayer.poll()}); it said: "
                f"{self.said('trayer.err')}"
            ),
            60,
        )

    def start_dunst(self, home: Path) -> None:
        """dunst as the notification server, with a config of its own (no user's rules)."""
        config = home / "dunstrc"
        config.write_text("[global]\n    timeout = 0\n")  # kept on screen until read
        self.started.append(
            subprocess.Popen(
                ["dunst", "-config", str(config)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_until(lambda: self.has_bus_name("org.freedesktop.Notifications"), "dunst", 20)

    def said(self, name: str) -> str:
        """What a program wrote to its log file `name` in the desktop's folder."""
        path = self.home / name
        return path.read_text(errors="replace") if path.exists() else ""

    def has_bus_name(self, name: str) -> bool:
        answer = subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
             "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
            env=self.env, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        return "boolean true" in answer.stdout

    def notifications(self) -> list[str]:
        """Every notification dunst got so far, as "summary: body"."""
        subprocess.run(["dunstctl", "close-all"], env=self.env, check=True, timeout=20)
        history = subprocess.run(
            ["dunstctl", "history"], env=self.env, capture_output=True, check=True, timeout=20
        )
        import json

        entries = json.loads(history.stdout)["data"][0]
        return [f"{e['summary']['data']}: {e['body']['data']}" for e in reversed(entries)]

    def tray(self) -> Image.Image:
        return self.screenshot().crop(TRAY_BOX)

    def screenshot(self) -> Image.Image:
        png = subprocess.run(
            ["import", "-display", self.display, "-window", "root", "PNG:-"],
            capture_output=True,
            check=True,
            timeout=20,
        ).stdout
        from io import BytesIO

        return Image.open(BytesIO(png)).convert("RGB")

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=20)


def tray_host_running(display: str) -> bool:
    from Xlib import X
    from Xlib.display import Display

    connection = Display(display)
    try:
        owner = connection.get_selection_owner(connection.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return owner != X.NONE
    finally:
        connection.close()


def shows(picture: Image.Image, state: TrayState) -> bool:
    """Whether the icon's badge colour is in the picture (a few pixels, after scaling)."""
    data = picture.convert("RGB").tobytes()
    pixels = zip(data[0::3], data[1::3], data[2::3], strict=True)
    return sum(1 for pixel in pixels if near(pixel, BADGE_COLOURS[state])) >= 8


def write_config(root: Path, box: Sandbox) -> Path:
    for name in ("inbox", "outbox", "archive", "failed", "state"):
        (root / name).mkdir()
    path = root / "config.toml"
    path.write_text(
        f"""
[api]
key = "{box.key}"
endpoint = "{box.url}"
poll_interval = 0.1
concurrency = 1

[watch]
settle_seconds = 0.2

[files]
outbox = "{root / "outbox"}"
archive = "{root / "archive"}"
failed = "{root / "failed"}"
state_dir = "{root / "state"}"

[[inbox]]
path = "{root / "inbox"}"
outformat = "txt"
"""
    )
    path.chmod(0o600)
    return path


class RunningDaemon:
    """`watcher run` in its own process on the desktop, its log in a file."""

    def __init__(self, desktop: Desktop, rules: Path, log: Path, **env: str):
        self.log = log
        self.stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(rules)],
            env={**desktop.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        desktop.started.append(self.process)
        self.desktop = desktop
        self.shots: dict[TrayState, Image.Image] = {}

    def text(self) -> str:
        return self.log.read_text()

    def reach(self, state: TrayState) -> None:
        def there() -> bool:
            assert self.process.poll() is None, f"the daemon ended:\n{self.text()}"
            self.shots[state] = self.desktop.tray()
            return shows(self.shots[state], state)

        wait_until(there, lambda: f"the {state.value} icon; daemon log:\n{self.text()}", 60)

    def said(self, text: str) -> None:
        wait_until(lambda: text in self.text(), lambda: f"{text!r} in:\n{self.text()}", 60)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, f"SIGTERM must end icon and daemon:\n{self.text()}"
        self.stderr.close()


def drop(inbox: Path, *names: str) -> None:
    for name in names:
        write_pdf(inbox / name, [f"page of {name}"])


@needs_desktop
@pytest.mark.timeout(240)
def test_the_x_icon_follows_a_batch_and_notifications_reach_the_desktop(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    """pystray's X backend (no menu): idle -> working -> idle -> error seen in screenshots of a
    real tray host; the notifications reach dunst all the same; SIGTERM ends it all."""
    rules = write_config(tmp_path, make_sandbox(seconds_per_page=1))
    with processes() as started:
        desktop = Desktop(started, tmp_path)
        desktop.start_trayer()
        desktop.start_dunst(tmp_path)
        background = desktop.tray()
        daemon = RunningDaemon(desktop, rules, tmp_path / "daemon.err", PYSTRAY_BACKEND="xorg")
        daemon.reach(TrayState.IDLE)
        assert differ(daemon.shots[TrayState.IDLE], background), "nothing was drawn in the tray"
        corner = daemon.shots[TrayState.IDLE].getpixel((TRAY_BOX[2] - TRAY_BOX[0] - 1, 1))
        assert corner == background.getpixel((TRAY_BOX[2] - TRAY_BOX[0] - 1, 1)), (
            "the icon's transparent corner shows the tray behind it"
        )
        drop(tmp_path / "inbox", "one.pdf", "two.pdf")
        daemon.reach(TrayState.WORKING)
        working = daemon.shots[TrayState.WORKING]
        wait_until(lambda: len(list((tmp_path / "outbox").glob("*.txt"))) == 2, "results", 60)
        daemon.reach(TrayState.IDLE)
        (tmp_path / "inbox" / "bad.pdf").write_text("this is text, not a PDF")
        daemon.reach(TrayState.ERROR)
        shots = {**daemon.shots, TrayState.WORKING: working}
        for a, b in itertools.combinations(shots.values(), 2):
            assert differ(a, b)
        failure = "Conversion failed: bad.pdf"
        wait_until(
            lambda: any(n.startswith(failure) for n in desktop.notifications()),
            lambda: f"the failure's notification; dunst has {desktop.notifications()}",
            30,
        )
        assert any(n.startswith("Batch finished: ") for n in desktop.notifications())
        daemon.stop()
    said = [line.split(" watcher.tray: ")[-1] for line in daemon.text().splitlines()]
    assert [line for line in said if "tray" in line] == [tray.NO_MENU], "one warning, no more"
    assert "Traceback" not in daemon.text()
    if WRITE_DOCS:
        xvfb_sheet(shots).save(DOCS / "tray-xvfb.png", optimize=True)


@needs_desktop
@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["xorg", "appindicator"])
def test_with_no_tray_host_it_waits_quietly_and_docks_when_one_starts(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], backend: str
) -> None:
    env = {"PYSTRAY_BACKEND": backend}
    if backend == "appindicator":
        gi = system_gi(tmp_path)
        if gi is None:
            pytest.skip("needs Debian's python3-gi for this Python version")
        env["PYTHONPATH"] = os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(gi)])
    rules = write_config(tmp_path, make_sandbox())
    with processes() as started:
        # pystray's GTK icons would fail whole for a notification service that cannot start
        desktop = Desktop(started, tmp_path, failing="org.freedesktop.Notifications")
        daemon = RunningDaemon(desktop, rules, tmp_path / "daemon.err", **env)
        daemon.said("watching ")  # the daemon is up, its icon starting with no tray to go to
        if backend == "xorg":
            daemon.said(tray.NO_MENU)  # the icon is up, and has found no tray
        assert not tray_host_running(desktop.display)
        desktop.start_trayer()
        daemon.reach(TrayState.IDLE)
        daemon.stop()
    assert "Traceback" not in daemon.text() and "Failed to dock" not in daemon.text()


def system_gi(tmp_path: Path) -> Path | None:
    """A folder holding only Debian's PyGObject (python3-gi), for an interpreter of the same
    Python version that does not see /usr/lib/python3/dist-packages (pyenv's, here and in
    CI). A user's venv made with --system-site-packages from /usr/bin/python3 sees it as is."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        return None
    found = subprocess.run(
        [str(system), "-c", "import sys, gi; print(gi.__path__[0]); print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        return None
    where, version = found.stdout.splitlines()
    if version != str(sys.version_info[:2]):
        return None
    folder = tmp_path / "system-gi"
    folder.mkdir()
    (folder / "gi").symlink_to(where)
    return folder


def menu_shown(desktop: Desktop) -> bool:
    """Whether a menu is open below the tray (the rest of the screen stays black)."""
    return desktop.screenshot().crop((SCREEN[0] - 300, 30, SCREEN[0], 120)).getbbox() is not None


def choose(desktop: Desktop, where: tuple[int, int], *keys: str) -> Image.Image:
    """Right-clicks the icon and walks its menu with the keyboard: End is Quit, each Up one
    item higher (separators and disabled lines are skipped), Right opens a submenu. Returns
    the top right of the screen with the menu open."""
    desktop.xdotool("mousemove", str(where[0]), str(where[1]), "click", "3")
    wait_until(lambda: menu_shown(desktop), "the menu to open", 30)
    opened = desktop.screenshot().crop((SCREEN[0] - 420, 0, SCREEN[0], 270))
    desktop.xdotool("key", "--delay", "150", "End", *keys, "Return")
    wait_until(lambda: not menu_shown(desktop), "the menu to close", 30)
    return opened


@needs_desktop
@pytest.mark.timeout(300)
def test_the_appindicator_menu_drives_the_daemon(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    """The AppIndicator backend with no StatusNotifier watcher falls back into the X tray,
    where a right-click opens its GTK menu: Pause, Resume, Retry failed and Quit act on the
    daemon, and no warning about a missing menu is given."""
    gi = system_gi(tmp_path)
    if gi is None:
        pytest.skip("needs Debian's python3-gi for this Python version (apt-get install "
                    "python3-gi gir1.2-ayatanaappindicator3-0.1)")  # fmt: skip
    rules = write_config(tmp_path, make_sandbox())
    with processes() as started:
        desktop = Desktop(started, tmp_path)
        desktop.start_trayer()
        background = desktop.tray()
        daemon = RunningDaemon(
            desktop, rules, tmp_path / "daemon.err", PYSTRAY_BACKEND="appindicator",
            PYTHONPATH=os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(gi)]),
        )  # fmt: skip
        daemon.reach(TrayState.IDLE)
        box = ImageChops.difference(daemon.shots[TrayState.IDLE], background).getbbox()
        assert box is not None
        icon = (TRAY_BOX[0] + (box[0] + box[2]) // 2, TRAY_BOX[1] + (box[1] + box[3]) // 2)

        # Quit, Open log, Edit rules…, Pause ▸ For 1 hour, Until tomorrow, Until resumed
        choose(desktop, icon, "Up", "Up", "Up", "Right", "Down", "Down")
        daemon.said("paused until resumed")
        daemon.reach(TrayState.PAUSED)
        choose(desktop, icon, "Up", "Up", "Up")  # Resume
        daemon.said("pause ended")
        daemon.reach(TrayState.IDLE)

        (tmp_path / "inbox" / "bad.pdf").write_text("this is text, not a PDF")
        daemon.reach(TrayState.ERROR)
        wait_until((tmp_path / "failed" / "bad.pdf").is_file, "bad.pdf set aside")
        write_pdf(tmp_path / "failed" / "bad.pdf", ["mended"])
        menu = choose(desktop, icon, "Up", "Up", "Up")  # Retry failed (1)
        wait_until((tmp_path / "outbox" / "bad.txt").is_file, "the retried file converted", 60)
        daemon.reach(TrayState.IDLE)

        choose(desktop, icon)  # Quit
        assert daemon.process.wait(30) == 0, daemon.text()
        daemon.stderr.close()
    assert "Traceback" not in daemon.text() and tray.NO_MENU not in daemon.text()
    if WRITE_DOCS:
        menu.save(DOCS / "tray-menu.png", optimize=True)


class Indicator:
    """The AppIndicator icon as a StatusNotifier host sees it on the session bus: its
    properties (title, the PNG file of its picture) and its menu (com.canonical.dbusmenu)."""

    ITEM = "org.kde.StatusNotifierItem"

    def __init__(self, desktop: Desktop, name: str, path: str):
        self.address = desktop.env["DBUS_SESSION_BUS_ADDRESS"]
        self.name, self.path = name, path

    def call(self, path: str, interface: str, member: str, signature: str, *body: Any) -> Any:
        import asyncio

        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        async def ask() -> Any:
            bus = await MessageBus(bus_address=self.address).connect()
            try:
                return await bus.call(
                    Message(
                        destination=self.name, path=path, interface=interface, member=member,
                        signature=signature, body=list(body),
                    )
                )  # fmt: skip
            finally:
                bus.disconnect()

        reply = asyncio.run(asyncio.wait_for(ask(), 20))
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        return reply.body

    def properties(self) -> dict[str, Any]:
        (found,) = self.call(self.path, "org.freedesktop.DBus.Properties", "GetAll", "s", self.ITEM)
        return {key: value.value for key, value in found.items()}

    def picture(self) -> Image.Image | None:
        """The icon's picture, or None when pystray has just replaced its file by another."""
        try:
            with Image.open(self.properties()["IconName"]) as image:
                return image.convert("RGBA")
        except FileNotFoundError:
            return None

    def items(self) -> dict[str, int]:
        """Every menu item's label and id (submenus' too); ids change as the menu is rebuilt."""
        menu = self.properties()["Menu"]
        _revision, root = self.call(menu, "com.canonical.dbusmenu", "GetLayout", "iias", 0, -1, [])
        found: dict[str, int] = {}

        def walk(node: Any) -> None:
            ident, props, children = node
            if "label" in props:
                found[props["label"].value] = ident
            for child in children:
                walk(child.value)

        walk(root)
        return found

    def click(self, label: str) -> None:
        from dbus_fast import Variant

        wait_until(lambda: label in self.items(), lambda: f"{label!r} in {list(self.items())}")
        menu = self.properties()["Menu"]
        ident = self.items()[label]
        self.call(menu, "com.canonical.dbusmenu", "Event", "isvu", ident, "clicked",
                  Variant("s", ""), 0)  # fmt: skip


@needs_desktop
@pytest.mark.timeout(300)
def test_on_a_status_notifier_host_the_icon_and_menu_are_on_the_bus(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    """As on KDE Plasma or GNOME with the AppIndicator extension: the icon registers with the
    StatusNotifier watcher; its picture and title follow the daemon, its menu's Pause, Resume,
    Retry failed and Quit act on it, and `doctor` names the watcher."""
    gi = system_gi(tmp_path)
    if gi is None:
        pytest.skip("needs Debian's python3-gi for this Python version")
    with_gi = {"PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(gi)])}
    rules = write_config(tmp_path, make_sandbox(seconds_per_page=1))
    with processes() as started:
        desktop = Desktop(started, tmp_path)
        watcher = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sni_watcher.py"))],
            env=desktop.env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(watcher)  # type: ignore[arg-type]  # text mode, ended all the same
        assert watcher.stdout is not None and watcher.stdout.readline() == "ready\n"
        daemon = RunningDaemon(
            desktop, rules, tmp_path / "daemon.err", PYSTRAY_BACKEND="appindicator", **with_gi
        )
        name, path = watcher.stdout.readline().split()  # the icon registered
        icon = Indicator(desktop, name, path)

        def reach(state: TrayState, title: str | None = None) -> None:
            def there() -> bool:
                assert daemon.process.poll() is None, daemon.text()
                found = icon.properties()
                picture = icon.picture()
                return (
                    picture is not None
                    and shows(picture, state)
                    and found["Title"].startswith(title or "")
                )

            wait_until(there, lambda: f"{state.value}: {icon.properties()['Title']}", 60)

        reach(TrayState.IDLE, "Idle")
        drop(tmp_path / "inbox", "one.pdf", "two.pdf")
        reach(TrayState.WORKING)
        wait_until(lambda: len(list((tmp_path / "outbox").glob("*.txt"))) == 2, "results", 60)
        reach(TrayState.IDLE, "Idle")

        icon.click("Until resumed")
        daemon.said("paused until resumed")
        reach(TrayState.PAUSED, "Paused until resumed")
        icon.click("Resume")
        reach(TrayState.IDLE, "Idle")

        (tmp_path / "inbox" / "bad.pdf").write_text("this is text, not a PDF")
        reach(TrayState.ERROR)
        wait_until((tmp_path / "failed" / "bad.pdf").is_file, "bad.pdf set aside")
        write_pdf(tmp_path / "failed" / "bad.pdf", ["mended"])
        icon.click("Retry failed (1)")
        wait_until((tmp_path / "outbox" / "bad.txt").is_file, "the retried file converted", 60)
        reach(TrayState.IDLE, "Idle")

        said = doctor_says(desktop, rules, PYSTRAY_BACKEND="appindicator", **with_gi)
        assert said["tray host"] == (
            "ok a StatusNotifier watcher (org.kde.StatusNotifierWatcher)"
        ), said["report"]

        icon.click("Quit")
        assert daemon.process.wait(30) == 0, daemon.text()
        daemon.stderr.close()
    assert "Traceback" not in daemon.text() and tray.NO_MENU not in daemon.text()


def xvfb_sheet(shots: dict[TrayState, Image.Image]) -> Image.Image:
    """The tray as it was seen in each state, three times its size, each with its name."""
    sheet = Image.new("RGB", (len(shots) * 380, 100), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=15)
    for index, (state, shot) in enumerate(shots.items()):
        sheet.paste(shot.resize((360, 72), Image.Resampling.NEAREST), (380 * index + 10, 4))
        draw.text((380 * index + 190, 90), state.value, fill="black", font=font, anchor="mm")
    return sheet


# -- the states follow a real daemon ----------------------------------------------------------


class StateLog:
    """What a tray would show: the state of every snapshot the daemon pushes, in order."""

    def __init__(self) -> None:
        self.states: list[TrayState] = []
        self.latest: Snapshot | None = None

    def __call__(self, snapshot: Snapshot) -> None:
        self.latest = snapshot
        if not self.states or self.states[-1] is not tray_state(snapshot):
            self.states.append(tray_state(snapshot))

    def now(self) -> TrayState | None:
        return None if self.latest is None else tray_state(self.latest)

    def reach(self, state: TrayState) -> None:
        wait_until(lambda: self.now() is state, lambda: f"{state.value}; seen {self.states}", 60)

    def saw(self, state: TrayState) -> None:
        """Waits for `state` to have been shown, however briefly."""
        wait_until(lambda: state in self.states, lambda: f"{state.value}; seen {self.states}", 60)


def test_a_batch_ends_idle_and_a_failure_until_seen(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], make_daemon: Callable[..., Any]
) -> None:
    """The pushed snapshots, not a fresh look, must end idle: after the last job's change the
    worker still counted as busy, and a tray showing "Converting 1 of 1" forever was the bug."""
    daemon = make_daemon(write_config(tmp_path, make_sandbox()))
    states = StateLog()
    daemon.add_listener(states)
    daemon.acknowledge_failures()  # a first push, with nothing to acknowledge
    states.reach(TrayState.IDLE)
    for name in ("one.pdf", "two.pdf", "three.pdf"):
        write_pdf(tmp_path / "inbox" / name, [f"page of {name}"])
    states.saw(TrayState.WORKING)
    wait_until(lambda: len(list((tmp_path / "outbox").glob("*.txt"))) == 3, "three results", 60)
    states.reach(TrayState.IDLE)
    assert TrayState.WORKING in states.states and states.states[-1] is TrayState.IDLE
    assert states.latest is not None and states.latest.in_flight == 0

    bad = tmp_path / "inbox" / "bad.pdf"
    bad.write_text("this is text, not a PDF")
    states.reach(TrayState.ERROR)
    daemon.acknowledge_failures()  # what "Open failed folder" does
    states.reach(TrayState.IDLE)

    (tmp_path / "inbox" / "worse.pdf").write_text("not a PDF either")
    states.reach(TrayState.ERROR)
    for name in ("bad.pdf", "worse.pdf"):
        failed = tmp_path / "failed" / name
        wait_until(failed.is_file, f"{name} set aside")
        write_pdf(failed, ["mended"])
    assert states.states[-1] is TrayState.ERROR
    mark = len(states.states)
    assert daemon.retry_failed() == 2
    for name in ("bad.txt", "worse.txt"):
        wait_until((tmp_path / "outbox" / name).is_file, f"the mended {name}", 60)
    states.reach(TrayState.IDLE)
    after = states.states[mark:]
    assert TrayState.WORKING in after and TrayState.ERROR not in after


# -- doctor -----------------------------------------------------------------------------------


def test_doctor_without_a_display_says_so_and_does_not_raise(no_display: None) -> None:
    findings = doctor.check_tray()
    assert [(f.level, f.topic) for f in findings] == [
        (doctor.Level.NOTE, "tray"),
        (doctor.Level.NOTE, "notifications"),
    ]
    assert all("no display" in f.text for f in findings)


def doctor_says(desktop: Desktop, rules: Path, **env: str) -> dict[str, str]:
    """`doctor`'s tray lines, by topic ("ok      tray  pystray's ..." -> {"tray": "ok ..."}),
    and the whole report under "report" (for the messages of failed assertions)."""
    report = subprocess.run(
        [sys.executable, "-m", "watcher", "doctor", "--config", str(rules)],
        env={**desktop.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in report.stderr + report.stdout, report.stderr
    lines = {"report": report.stdout}
    for line in report.stdout.splitlines():
        level, _, rest = line.partition(" ")
        topic, _, text = rest.strip().partition("  ")
        if topic in ("tray", "tray host", "notifications"):
            lines[topic] = f"{level} {text.strip()}"
    return lines


@needs_desktop
@pytest.mark.timeout(240)
def test_doctor_checks_the_tray_for_real(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    rules = write_config(tmp_path, make_sandbox())
    gi = system_gi(tmp_path)
    with_gi = {"PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(gi)])}
    with processes() as started:
        desktop = Desktop(started, tmp_path)
        bare = doctor_says(desktop, rules, PYSTRAY_BACKEND="xorg")
        report = bare["report"]
        assert bare["tray"].startswith("note pystray's xorg backend: the icon has NO menu"), report
        assert bare["tray host"].startswith("note none running now"), report
        assert bare["notifications"].startswith("note none will be shown: "), report
        desktop.start_trayer()
        desktop.start_dunst(tmp_path)
        hosted = doctor_says(desktop, rules, PYSTRAY_BACKEND="xorg")
        report = hosted["report"]
        assert hosted["tray host"] == "ok an X system tray (_NET_SYSTEM_TRAY_S0)", report
        assert hosted["notifications"] == "ok the desktop's notification service answers", report
        if gi is not None:
            full = doctor_says(desktop, rules, **with_gi)
            assert full["tray"] == "ok pystray's appindicator backend: an icon with its menu", full[
                "report"
            ]


def test_a_pause_running_out_is_shown(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], make_daemon: Callable[..., Any]
) -> None:
    daemon = make_daemon(write_config(tmp_path, make_sandbox()))
    states = StateLog()
    daemon.add_listener(states)
    daemon.pause(time.time() + 1)
    states.reach(TrayState.PAUSED)
    states.reach(TrayState.IDLE)  # nobody touched it: the daemon's clock ended the pause


def test_x_window_names_are_plain_ascii() -> None:
    assert tray.x_safe("Converting 3 of 10 · 1,960 pages left") == (
        "Converting 3 of 10 - 1,960 pages left"
    )
    assert tray.x_safe("Failed: Fähre \N{EN DASH} Köln.pdf: damaged…") == (
        "Failed: Fahre - Koln.pdf: damaged..."
    )


def test_a_hold_released_by_a_fixed_key_is_shown(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], make_daemon: Callable[..., Any]
) -> None:
    box = make_sandbox()
    rules = write_config(tmp_path, box)
    right = rules.read_text()
    rules.write_text(right.replace(f'key = "{box.key}"', 'key = "not-the-key"'))
    daemon = make_daemon(rules)
    states = StateLog()
    daemon.add_listener(states)
    drop(tmp_path / "inbox", "one.pdf")
    states.reach(TrayState.HELD)
    rules.write_text(right)  # the user fixes the key: the daemon reloads and resumes
    wait_until((tmp_path / "outbox" / "one.txt").is_file, "the held file converted", 60)
    states.reach(TrayState.IDLE)
