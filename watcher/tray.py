"""The tray icon: what the daemon is doing at a glance, and the few actions a user needs.

The tray is a window onto the daemon, never a part it depends on: every callback is guarded, a
tray that cannot start or dies leaves the daemon running headless, and pystray is imported only
when a tray is wanted (importing it without a display raises).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from datetime import time as clock
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from watcher.bootstrap import TRAY_PACKAGES
from watcher.config import APP_NAME
from watcher.cores import anywhere
from watcher.wording import count

if TYPE_CHECKING:
    import pystray

    from watcher.daemon import Daemon
    from watcher.status import Snapshot

log = logging.getLogger(__name__)

TITLE_LIMIT = 120  # X and Windows cut longer tooltips
MENU_LIMIT = 50  # a status line in the menu: longer ones make a menu too wide for the screen
REFRESH_SECONDS = 60.0  # keeps "2 min ago" true without polling the daemon
COALESCE_SECONDS = 0.25  # a burst of job changes becomes one redraw
MORNING_HOUR = 8
PROGRESS_STEPS = 12  # the working icon has 13 looks, so the cache stays small
GNOME_PACKAGES = " ".join(TRAY_PACKAGES)  # the AppIndicator backend: a menu and StatusNotifier
ICON_SIZE = 128  # panels scale it down; large enough for HiDPI panels
DOCK_RETRY_SECONDS = 2.0  # how often an undocked X icon looks for a tray host
NO_MENU = (
    "the tray icon has no menu here: only pystray's X backend could be loaded, which shows "
    "the icon and opens the outbox on a left click. For the menu and its Pause, Resume and "
    f"Retry, install {GNOME_PACKAGES} (Debian, Ubuntu) and install pdfocr-watcher with "
    "--system-site-packages (pipx install --system-site-packages, or a venv made with "
    "/usr/bin/python3 -m venv --system-site-packages); until then, `pdfocr-watcher pause`, "
    "`resume` and `status` do the same from a terminal"
)


class TrayState(Enum):
    IDLE = "idle"
    WORKING = "working"
    PAUSED = "paused"
    HELD = "held"
    OFFLINE = "offline"
    ERROR = "error"  # a file failed
    BROKEN = "broken"  # the rules file is broken (the old rules go on)


def tray_state(s: Snapshot) -> TrayState:
    """One state for the icon, the one that most needs the user: broken rules > a failed
    file > held > offline > working > paused > idle."""
    if s.config_error:
        return TrayState.BROKEN
    if s.unseen_failures > 0:
        return TrayState.ERROR
    if s.held:
        return TrayState.HELD
    if s.service_problem:
        return TrayState.OFFLINE
    # Paused, files only wait: nothing is converting. What the service already has is still
    # finished (in flight), and that is working.
    if s.in_flight > 0 or (s.queued > 0 and s.paused_until is None):
        return TrayState.WORKING
    if s.paused_until is not None:
        return TrayState.PAUSED
    return TrayState.IDLE


# -- the picture ------------------------------------------------------------------------------

BADGE_COLOURS = {
    TrayState.IDLE: (46, 157, 79),
    TrayState.WORKING: (31, 111, 235),
    TrayState.PAUSED: (110, 119, 129),
    TrayState.HELD: (217, 119, 6),
    TrayState.OFFLINE: (130, 80, 223),
    TrayState.ERROR: (207, 34, 46),
    TrayState.BROKEN: (207, 34, 46),
}
WHITE, INK, GREY, SANDBOX_YELLOW = (255, 255, 255), (36, 41, 47), (140, 149, 159), (245, 196, 0)
SUPERSAMPLE = 4  # drawn large and scaled down, so small icons get smooth edges


def draw_icon(
    state: TrayState,
    *,
    progress: float | None = None,
    sandbox: bool = False,
    size: int = ICON_SIZE,
) -> Image.Image:
    """A page with a badge whose colour AND shape name the state, so it reads at 16 px and
    without colour vision. Images are cached and shared: never draw on one."""
    steps = None if progress is None else round(min(max(progress, 0.0), 1.0) * PROGRESS_STEPS)
    return _draw_icon(state, steps, sandbox, size)


@functools.lru_cache(maxsize=64)
def _draw_icon(state: TrayState, steps: int | None, sandbox: bool, size: int) -> Image.Image:
    """Drawn on a 100-unit grid, four times too large, then scaled down. At panel sizes (24 px
    and less) the page loses its lines and the badge grows, so that what names the state is
    not lost in a few blurred pixels."""
    small = size <= SMALL_PIXELS
    big = Image.new("RGBA", (size * SUPERSAMPLE,) * 2, (0, 0, 0, 0))
    pen = _Pen(ImageDraw.Draw(big), big.width / 100)
    edge = BADGE_COLOURS[state] if state in (TrayState.ERROR, TrayState.BROKEN) else INK
    outline = pen.w(8 if small else 5)
    pen.draw.polygon(pen.at(14, 6, 52, 6, 66, 20, 66, 90, 14, 90), WHITE, edge, outline)
    if small:
        pass
    elif state is TrayState.BROKEN:  # the rules file: a list of rules, with a gap in it
        for y in (26, 40, 54):
            pen.draw.rectangle(pen.at(22, y - 3, 28, y + 3), fill=INK)
            pen.draw.line(pen.at(33, y, 56, y), fill=INK, width=pen.w(5))
    else:
        for y in (30, 44, 58):
            pen.draw.line(pen.at(24, y, 54, y), fill=GREY, width=pen.w(5))
    badge = replace(pen, zoom=SMALL_BADGE_ZOOM, to=SMALL_BADGE_CENTRE) if small else pen
    badge.draw.ellipse(badge.at(42, 42, 98, 98), BADGE_COLOURS[state], WHITE, badge.w(4))
    _draw_symbol(badge, state, steps)
    if sandbox:
        pen.draw.polygon(pen.at(0, 0, 46, 0, 0, 46), fill=SANDBOX_YELLOW)
        font = ImageFont.load_default(size=pen.w(26))
        pen.draw.text(pen.xy(12, 11), "S", fill=INK, font=font, anchor="mm")
    return big.resize((size, size), Image.Resampling.LANCZOS)


SMALL_PIXELS = 24
BADGE_CENTRE = 70.0  # the badge's centre on the grid, in both directions
SMALL_BADGE_ZOOM, SMALL_BADGE_CENTRE = 1.25, 64.0  # at panel sizes: a badge 70 units wide


@dataclass(frozen=True)
class _Pen:
    """Draws on a 100 x 100 grid whatever the pixel size; `zoom` enlarges what is drawn about
    the badge's centre, moved to `to`."""

    draw: ImageDraw.ImageDraw
    unit: float
    zoom: float = 1.0
    to: float = BADGE_CENTRE

    def at(self, *points: float) -> list[float]:
        return [(self.to + (p - BADGE_CENTRE) * self.zoom) * self.unit for p in points]

    def xy(self, x: float, y: float) -> tuple[float, float]:
        """One point, as ImageDraw.text takes it."""
        first, second = self.at(x, y)
        return (first, second)

    def w(self, width: float) -> int:
        return max(1, round(width * self.zoom * self.unit))


def _draw_symbol(pen: _Pen, state: TrayState, steps: int | None) -> None:
    """The white shape in the badge: a check, a progress pie (an arrow while the total is
    unknown), two bars, a lock, a slashed cloud, an exclamation mark."""
    draw, at, w = pen.draw, pen.at, pen.w
    if state is TrayState.IDLE:
        draw.line(at(57, 71, 67, 81, 84, 60), fill=WHITE, width=w(7), joint="curve")
    elif state is TrayState.WORKING and steps is None:
        draw.polygon(at(70, 52, 84, 68, 56, 68), fill=WHITE)
        draw.rectangle(at(65, 66, 75, 86), fill=WHITE)
    elif state is TrayState.WORKING:
        draw.ellipse(at(52, 52, 88, 88), outline=WHITE, width=w(4))
        if steps:
            draw.pieslice(at(52, 52, 88, 88), -90, -90 + 360 * steps / PROGRESS_STEPS, WHITE)
    elif state is TrayState.PAUSED:
        draw.rectangle(at(58, 56, 65, 84), fill=WHITE)
        draw.rectangle(at(75, 56, 82, 84), fill=WHITE)
    elif state is TrayState.HELD:
        draw.arc(at(60, 50, 80, 74), 180, 360, fill=WHITE, width=w(5))
        draw.line(at(62.5, 62, 62.5, 68, 77.5, 68, 77.5, 62), fill=WHITE, width=w(5))
        draw.rounded_rectangle(at(55, 66, 85, 88), radius=w(3), fill=WHITE)
    elif state is TrayState.OFFLINE:
        for circle in ((52, 66, 70, 84), (60, 56, 80, 76), (70, 64, 88, 82), (61, 70, 79, 84)):
            draw.ellipse(at(*circle), fill=WHITE)
        draw.line(at(54, 54, 86, 88), fill=BADGE_COLOURS[state], width=w(10))
        draw.line(at(54, 54, 86, 88), fill=WHITE, width=w(4))
    elif state is TrayState.BROKEN:
        draw.line(at(59, 59, 81, 81), fill=WHITE, width=w(8))
        draw.line(at(59, 81, 81, 59), fill=WHITE, width=w(8))
    else:
        draw.rounded_rectangle(at(65, 50, 75, 76), radius=w(3), fill=WHITE)
        draw.ellipse(at(64.5, 80, 75.5, 91), fill=WHITE)


# What each kind of notification (watcher.notify.Look) shows as its picture.
NOTIFICATION_STATES = {
    "batch_done": TrayState.IDLE,
    "file_failed": TrayState.ERROR,
    "rules_broken": TrayState.BROKEN,
    "low_credit": TrayState.HELD,
    "held": TrayState.HELD,
    "offline": TrayState.OFFLINE,
}


def notification_icon(look: str) -> Image.Image:
    """The tray's picture for a notification, large enough for a notification's icon."""
    return draw_icon(NOTIFICATION_STATES.get(look, TrayState.IDLE), size=128)


def _icon_for(s: Snapshot, size: int = ICON_SIZE) -> Image.Image:
    progress = s.batch_done / s.batch_total if s.batch_total else None
    return draw_icon(tray_state(s), progress=progress, sandbox=s.sandbox, size=size)


# -- the words --------------------------------------------------------------------------------


def tooltip(s: Snapshot) -> str:
    """One line for the icon's title: the state, then the credit left."""
    text = ("SANDBOX · " if s.sandbox else "") + status_line(s)
    if s.available_pages is not None:
        text += f" · {credit_line(s)}"
    return one_line(text, TITLE_LIMIT)


def one_line(text: str, limit: int) -> str:
    """The text on one line (whatever the reasons hold), cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_line(s: Snapshot) -> str:
    """The state in words: one file's reason only when one file failed, a count otherwise."""
    state = tray_state(s)
    if state is TrayState.BROKEN:
        return f"Rules file not used: {s.config_error}"
    if state is TrayState.ERROR:
        if s.unseen_failures == 1 and s.last_failure:
            return f"Failed: {s.last_failure}"
        return f"{s.unseen_failures} files failed; see the failed folder"
    if state is TrayState.HELD:
        return f"Held: {s.held}"
    if state is TrayState.OFFLINE:
        return f"Offline, retrying: {s.service_problem}"
    if state is TrayState.PAUSED:
        waiting = f" · {count(s.queued, 'file')} waiting" if s.queued else ""
        return f"Paused until {until(s.paused_until)}{waiting}"
    if state is TrayState.IDLE:
        return "Idle"
    if s.batch_total:
        line = f"Converting {min(s.batch_done + 1, s.batch_total)} of {s.batch_total}"
    else:
        line = f"Converting {s.queued + s.in_flight} files"
    return line + (f" · paused until {until(s.paused_until)}" if s.paused_until else "")


def credit_line(s: Snapshot) -> str:
    return f"{count(s.available_pages or 0, 'page')} left" + (" (low)" if s.low_credit else "")


def until(at: float | None, now: float | None = None) -> str:
    """A local time as people say it: "14:30", "tomorrow 08:00", "Tue 08:00", "resumed"."""
    if at is None or math.isinf(at):
        return "resumed"
    moment, today = datetime.fromtimestamp(at), datetime.fromtimestamp(now or time.time()).date()
    if moment.date() == today:
        return f"{moment:%H:%M}"
    day = "tomorrow" if moment.date() == today + timedelta(days=1) else f"{moment:%a}"
    return f"{day} {moment:%H:%M}"


def ago(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days > 1 else ''} ago"


def next_morning(now: float) -> float:
    """The next 08:00 local time: "until tomorrow" means until the working day starts."""
    start = datetime.combine(datetime.fromtimestamp(now).date(), clock(MORNING_HOUR))
    if start.timestamp() <= now:
        start += timedelta(days=1)
    return start.timestamp()


# -- the menu ---------------------------------------------------------------------------------


def open_path(path: Path | None) -> None:
    """Opens a file or folder as a double click would. A tray has no terminal for $EDITOR, so
    the rules file opens in the desktop's editor for TOML too. Never blocks, never raises."""
    if path is None:
        return
    try:
        if sys.platform == "win32":
            os.startfile(path)  # type: ignore[attr-defined]
            return
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        quiet = subprocess.DEVNULL
        with anywhere():  # the daemon may keep to one core: not the program it starts
            subprocess.Popen(
                [opener, str(path)], stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True
            )
    except Exception as exc:
        log.warning("could not open %s: %s", path, exc)


def _action(do: Callable[[Any], object]) -> Callable[[Any, Any], None]:
    """A menu action that logs its failure: on xorg an exception would end pystray's loop."""

    def run(icon: Any, item: Any) -> None:
        try:
            do(icon)
        except Exception:
            log.exception("the tray action %r failed", str(item))

    return run


SnapshotTest = Callable[["Snapshot"], object]


def build_menu(daemon: Daemon, *, current: Callable[[], Snapshot] | None = None) -> pystray.Menu:
    """One menu whose texts and visibility are computed when shown, so it never goes stale.
    `current` gives the snapshot to show (the tray passes its latest, so showing the menu reads
    no journal); by default the daemon is asked."""
    from pystray import Menu, MenuItem

    now = current or daemon.snapshot

    def always(_s: Snapshot) -> bool:
        return True

    def shown(test: SnapshotTest) -> Callable[[Any], bool]:
        return lambda _item: bool(test(now()))

    def info(text: Callable[[Snapshot], str], test: SnapshotTest) -> pystray.MenuItem:
        def line(_item: Any) -> str:
            return one_line(text(now()), MENU_LIMIT)

        return MenuItem(line, None, enabled=False, visible=shown(test))

    def do(text: Any, act: Callable[[], object], test: SnapshotTest = always) -> pystray.MenuItem:
        return MenuItem(text, _action(lambda _icon: act()), visible=shown(test))

    def recent() -> list[pystray.MenuItem]:
        return [do(r.name, functools.partial(open_path, r.output)) for r in now().recent]

    def open_failed(path: Path) -> None:
        daemon.acknowledge_failures()
        open_path(path)

    def quit_(icon: Any) -> None:
        daemon.request_stop()
        icon.stop()

    def morning() -> float:
        return next_morning(time.time())

    def failed_folders() -> Sequence[Path]:
        return now().failed_folders if now().failed or now().unseen_failures else ()

    pause = Menu(
        do("For 1 hour", lambda: daemon.pause(time.time() + 3600)),
        do(lambda _item: f"Until {until(morning())}", lambda: daemon.pause(morning())),
        do("Until resumed", lambda: daemon.pause(None)),
    )
    return Menu(
        info(status_line, always),
        info(credit_line, lambda s: s.available_pages is not None),
        info(
            lambda s: f"Last conversion: {ago(time.time() - (s.last_conversion_at or 0))}",
            lambda s: s.last_conversion_at is not None,
        ),
        MenuItem("Recent conversions", Menu(recent)),  # hidden while it has no items
        Menu.SEPARATOR,
        *_folder_items("Open inbox", lambda: now().inboxes, open_path),
        *_folder_items(
            "Open outbox", lambda: now().outboxes, open_path, shown(lambda s: not s.unseen_failures)
        ),
        *_folder_items(
            "Open failed folder", failed_folders, open_failed, shown(lambda s: s.unseen_failures)
        ),
        Menu.SEPARATOR,
        MenuItem("Pause", pause, visible=shown(lambda s: s.paused_until is None)),
        do("Resume", daemon.unpause, lambda s: s.paused_until is not None),
        do("Resume queue", daemon.resume, lambda s: s.held),
        do(lambda _item: f"Retry failed ({now().failed})", daemon.retry_failed, lambda s: s.failed),
        Menu.SEPARATOR,
        do("Edit rules…", lambda: open_path(now().config_path), lambda s: s.config_path),
        do("Open log", lambda: open_path(now().log_path), lambda s: s.log_path),
        Menu.SEPARATOR,
        MenuItem("Quit", _action(quit_)),
    )


MenuLook = tuple[tuple[str, bool, "MenuLook"], ...]


def menu_shown(menu: Any) -> MenuLook:
    """What a pystray menu shows right now (texts, enabled, submenus): rebuilt only when it
    changes, so that a menu opened during a batch is not closed by every file."""
    if menu is None:
        return ()
    return tuple(
        (str(item.text), bool(item.enabled), menu_shown(item.submenu))
        for item in menu
        if item is not menu.SEPARATOR
    )


def _folder_items(
    label: str,
    folders: Callable[[], Sequence[Path]],
    open_one: Callable[[Path], None],
    default: Callable[[Any], bool] | bool = False,
) -> tuple[pystray.MenuItem, pystray.MenuItem]:
    """A plain item for one folder (the default action, a left click, where `default` says),
    a submenu naming each of several, nothing for none."""
    from pystray import Menu, MenuItem

    def opener(path: Path) -> Callable[[Any], None]:
        return lambda _icon: open_one(path)

    def each() -> list[pystray.MenuItem]:
        return [MenuItem(p.name or str(p), _action(opener(p))) for p in folders()]

    single = MenuItem(
        label,
        _action(lambda _: open_one(folders()[0])),
        default=default,
        visible=lambda _item: len(folders()) == 1,
    )
    return single, MenuItem(label, Menu(each), visible=lambda _item: len(folders()) > 1)


# -- the icon at run time ---------------------------------------------------------------------


class Tray:
    """Runs the icon on the main thread (macOS requires it) until the daemon stops."""

    def __init__(self, daemon: Daemon):
        self._daemon = daemon
        self._icon: pystray.Icon | None = None
        self._latest: Snapshot | None = None
        self._changed = threading.Event()
        self._ready = threading.Event()  # pystray's loop is up
        self._ended = threading.Event()  # and has returned
        self._failed = False
        self._on_x = False  # pystray's X backend, which needs a few work-arounds
        self._menu_shown: MenuLook = ()  # what the menu showed when last built

    def run(self) -> None:
        """Blocks until the icon stops. Never raises: a failure is logged once, and the caller
        goes on without a tray while the daemon runs."""
        try:
            import pystray

            latest = self._latest = self._daemon.snapshot()
            menu = build_menu(self._daemon, current=lambda: self._latest or latest)
            self._on_x = backend_name() == "xorg"
            self._icon = pystray.Icon(APP_NAME, _icon_for(latest), self._title(latest), menu)
            if backend_name() in ("appindicator", "gtk"):
                _without_pystray_notifications(self._icon)
            if self._on_x:
                log.warning(NO_MENU)
                _fit_to_x_tray(self._icon, lambda size: _icon_for(self._latest or latest, size))
                _dock_quietly(self._icon)
            self._daemon.add_listener(self._on_change)
            self._icon.run(setup=self._setup)
        except Exception as exc:
            self._failed = True
            self._release_setup_thread()
            if self._daemon.stop_event.is_set():  # e.g. gtk with no notification service
                log.debug("the tray icon ended with an error while stopping: %s", exc)
            else:
                log.warning("the tray icon failed (%s); running on without it", exc, exc_info=True)
            return
        finally:
            self._ended.set()
        if not self._daemon.stop_event.is_set():
            log.warning("the tray icon stopped; running on without it")

    def _title(self, s: Snapshot) -> str:
        """The tooltip; pystray's X backend can only write Latin-1 window names."""
        return x_safe(tooltip(s)) if self._on_x else tooltip(s)

    def _setup(self, icon: pystray.Icon) -> None:
        """Runs once pystray's loop is up: only from then on can icon.stop() end it."""
        self._ready.set()
        if self._failed:
            return
        try:
            icon.visible = True
            threading.Thread(target=self._refresh_loop, name="tray-refresh", daemon=True).start()
            threading.Thread(target=self._stop_with_daemon, name="tray-stop", daemon=True).start()
        except Exception:
            log.exception("the tray icon could not be shown")

    def _release_setup_thread(self) -> None:
        """pystray's setup thread is not a daemon thread and waits for the loop to be ready; if
        the loop failed before that, the thread would keep the process alive forever."""
        if self._icon is not None and not self._ready.is_set():
            try:
                self._icon._mark_ready()
            except Exception:
                log.debug("pystray's setup thread could not be released", exc_info=True)

    def _on_change(self, snapshot: Snapshot) -> None:
        """Called from worker threads on every change: only note it, the refresh thread draws."""
        self._latest = snapshot
        self._changed.set()

    def _refresh_loop(self) -> None:
        stop = self._daemon.stop_event
        while not stop.is_set():
            undocked = self._on_x and self._icon is not None and not _docked(self._icon)
            changed = self._changed.wait(DOCK_RETRY_SECONDS if undocked else REFRESH_SECONDS)
            self._changed.clear()
            if stop.is_set():
                break
            if undocked and not changed:  # a tray host may have started since: try again
                self._on_main_thread(self._icon._update_icon)  # type: ignore[union-attr]
            self._on_main_thread(self._apply)
            stop.wait(COALESCE_SECONDS)

    def _apply(self) -> None:
        icon, s = self._icon, self._latest
        if icon is None or s is None:
            return
        image = _icon_for(s)
        if image is not icon.icon:
            icon.icon = image
        shown = menu_shown(icon.menu)
        if shown != self._menu_shown:  # a rebuilt menu closes under the user's pointer
            self._menu_shown = shown
            icon.update_menu()
        icon.title = self._title(s)

    def _stop_with_daemon(self) -> None:
        """SIGTERM and Quit both end in the daemon's stop event; the icon follows it."""
        self._daemon.stop_event.wait()
        self._changed.set()
        if self._icon is not None:
            self._on_main_thread(self._icon.stop)
        while self._on_x and not self._ended.wait(0.5):
            # python-xlib can leave a request unsent when two threads flush at once; pystray's
            # X loop then waits forever for the window it has asked to destroy: send it.
            self._on_main_thread(self._icon._display.flush)  # type: ignore[union-attr]

    @staticmethod
    def _on_main_thread(call: Callable[[], object]) -> None:
        """Runs a change to the icon where the backend allows it, logging any failure."""

        def guarded() -> None:
            try:
                call()
            except Exception:
                log.exception("the tray icon could not be updated")

        if sys.platform == "darwin":
            # AppKit may only be touched on the main thread, and pystray's darwin backend does
            # not hand calls over itself (xorg, gtk, appindicator and win32 do): queue the call
            # on the main run loop, which Icon.run is spinning.
            from PyObjCTools import AppHelper

            AppHelper.callAfter(guarded)
        else:
            guarded()


# -- pystray's backends -----------------------------------------------------------------------


class _NoNotifier:
    """Stands in for pystray's own D-Bus notifier, which is not used (watcher.notify is)."""

    def notify(self, *_args: object) -> None:
        pass

    def hide(self) -> None:
        pass


def _without_pystray_notifications(icon: Any) -> None:
    """pystray's GTK and AppIndicator icons connect to the notification service as they start,
    asking D-Bus to start one, and fail whole when that fails (no service, or one that cannot
    start): the icon and its menu would be lost for want of notifications. The rest of
    pystray's start-up is kept as it is (SIGINT back to its default, then ready)."""
    import signal

    def initialize() -> None:
        with contextlib.suppress(ValueError):  # only possible on the main thread
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        icon._notifier = _NoNotifier()
        icon._mark_ready()

    icon._initialize = initialize


X_PUNCTUATION = str.maketrans(
    {
        "\N{HORIZONTAL ELLIPSIS}": "...",
        "\N{MIDDLE DOT}": "-",
        "\N{EN DASH}": "-",
        "\N{EM DASH}": "-",
        "\N{RIGHTWARDS ARROW}": "->",
        "\N{LEFT SINGLE QUOTATION MARK}": "'",
        "\N{RIGHT SINGLE QUOTATION MARK}": "'",
        "\N{LEFT DOUBLE QUOTATION MARK}": '"',
        "\N{RIGHT DOUBLE QUOTATION MARK}": '"',
    }
)


def x_safe(text: str) -> str:
    """The text as an X window name shows it without "?": ASCII, accents dropped."""
    plain = unicodedata.normalize("NFKD", text.translate(X_PUNCTUATION))
    return plain.encode("ascii", "ignore").decode("ascii")


def _docked(icon: Any) -> bool:
    return icon._systray_manager is not None


def _dock_quietly(icon: Any) -> None:
    """pystray's X backend asks the tray to dock the icon again on every image change (and
    trayer, embedding it again, sometimes leaves it unmapped: an empty slot), and logs a
    traceback whenever no tray host runs. Dock only while undocked, and without a host just
    stay undocked: the refresh loop tries again, so the icon docks once a host starts."""

    def assert_docked() -> None:
        if not _docked(icon):
            icon._dock_window()

    icon._assert_docked = assert_docked


def _fit_to_x_tray(icon: Any, render: Callable[[int], Image.Image]) -> None:
    """pystray's X backend pastes the icon on a black square, scaled from whatever size it
    has. Instead: drawn at the size of the tray's slot, over what the tray shows behind it
    (the window's background is its parent's, read back after clearing)."""
    from Xlib import X  # type: ignore[import-untyped]

    icon._window.change_attributes(background_pixmap=X.ParentRelative)

    behind: list[Image.Image] = []  # what the tray showed, once it could be read

    def assert_icon_data(width: int, height: int) -> None:
        if icon._icon_data and icon._icon_data.size == (width, height) and behind:
            return
        try:
            icon._window.clear_area(0, 0, width, height)
            raw = icon._window.get_image(0, 0, width, height, X.ZPixmap, 0xFFFFFFFF)
            behind[:] = [Image.frombytes("RGB", (width, height), raw.data, "raw", "BGRX")]
        except Exception:  # not docked (so not viewable) yet: drawn again once it shows
            behind.clear()
        back = behind[0].copy() if behind else Image.new("RGB", (width, height), WHITE)
        picture = render(min(width, height))
        back.paste(picture, ((width - picture.width) // 2, (height - picture.height) // 2), picture)
        back.tostring = back.tobytes  # type: ignore[attr-defined]  # what pystray calls
        icon._icon_data = back

    icon._assert_icon_data = assert_icon_data


# -- tray or headless -------------------------------------------------------------------------

SNI_WATCHER = "org.kde.StatusNotifierWatcher"
HOST_CHECK_SECONDS = 10.0  # only a bus that hangs takes long


def no_display() -> bool:
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def tray_unavailable_reason() -> str | None:
    """None when a tray can probably be shown, else one sentence saying what is missing."""
    if no_display():
        return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    try:
        import pystray  # noqa: F401  (importing it picks and starts a backend)
    except Exception as exc:
        if "display" in str(exc).lower():  # python-xlib's words for an X server not there
            return f"the display cannot be reached ({exc})"
        backend = os.environ.get("PYSTRAY_BACKEND") or "default"
        return (
            f"pystray's {backend} backend could not be loaded ({exc}); for GNOME's AppIndicator "
            f"install the Debian packages {GNOME_PACKAGES} (a virtualenv needs "
            "--system-site-packages to see them), or run a system tray host"
        )
    return None


def backend_name() -> str:
    """pystray's backend in use: appindicator, gtk, xorg, darwin, win32 (or dummy)."""
    import pystray

    module: str = pystray.Icon.__module__
    return module.rsplit(".", 1)[-1].lstrip("_")


@dataclass(frozen=True)
class TrayFacts:
    """What `doctor` says about the tray: what would show the icon, with a menu or not, and
    what on the desktop would host it."""

    reason: str | None  # why no icon can be shown at all
    backend: str | None
    menu: bool
    hosts: tuple[str, ...]  # what could host the icon here; empty: none runs right now


def tray_facts() -> TrayFacts:
    """Looks, never raises: with no display, no session bus or no pystray, says so."""
    reason = tray_unavailable_reason()
    if reason:
        return TrayFacts(reason, None, False, ())
    backend = backend_name()
    if not sys.platform.startswith("linux"):
        return TrayFacts(None, backend, True, ("the system's notification area",))
    hosts = []
    if backend in ("appindicator", "gtk") and _name_on_session_bus(SNI_WATCHER):
        hosts.append(f"a StatusNotifier watcher ({SNI_WATCHER})")
    if _x_tray_running():
        hosts.append("an X system tray (_NET_SYSTEM_TRAY_S0)")
    return TrayFacts(None, backend, backend != "xorg", tuple(hosts))


def _x_tray_running() -> bool:
    display = os.environ.get("DISPLAY")
    if not display:
        return False
    try:
        from Xlib import X
        from Xlib.display import Display  # type: ignore[import-untyped]

        connection = Display(display)
        try:
            atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
            return bool(connection.get_selection_owner(atom) != X.NONE)
        finally:
            connection.close()
    except Exception as exc:
        log.debug("no X tray could be looked for: %s", exc)
        return False


def _name_on_session_bus(name: str) -> bool:
    """Whether `name` has an owner on the D-Bus session bus (dbus-fast, which
    desktop-notifier brings on Linux)."""
    import asyncio

    async def ask() -> bool:
        from dbus_fast import Message
        from dbus_fast.aio import MessageBus

        bus = await MessageBus().connect()
        try:
            reply = await bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="NameHasOwner",
                    signature="s",
                    body=[name],
                )
            )
            return bool(reply is not None and reply.body and reply.body[0])
        finally:
            bus.disconnect()

    try:
        return asyncio.run(asyncio.wait_for(ask(), HOST_CHECK_SECONDS))
    except Exception as exc:
        log.debug("the session bus could not be asked for %s: %s", name, exc)
        return False


def present(daemon: Daemon, *, no_tray: bool) -> None:
    """Shows the tray until the daemon stops; without one, just waits for the daemon.
    Notifications go to the desktop's service whether or not an icon shows."""
    from watcher.notify import Notifier

    notifier = None if no_tray or no_display() else Notifier()
    if notifier is not None:
        notifier.watch(daemon)
    try:
        reason = None if no_tray else tray_unavailable_reason()
        if no_tray or reason:
            if reason:
                log.warning("running without a tray icon: %s", reason)
            daemon.wait()
            return
        Tray(daemon).run()
        if not daemon.stop_event.is_set():
            daemon.wait()
    finally:
        if notifier is not None:
            notifier.stop()
