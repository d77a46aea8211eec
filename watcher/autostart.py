"""`pdfocr-watcher autostart enable|disable|status`: start the daemon when the user logs in.

Everything is written in the user's own folders (no root, no installer), pointing at the
executable of *this* installation and at the user's rules file, so that a pipx install, a
virtualenv or a one-file build each start themselves.

What is written where (see docs/install.md):

- Linux and other XDG desktops: an autostart entry, ~/.config/autostart/pdfocr-watcher.desktop.
  It is the default because the tray icon needs the graphical session, and the desktop's
  session manager (GNOME, KDE, Xfce, Cinnamon, MATE, LXQt...) starts these entries inside that
  session, with DISPLAY/WAYLAND_DISPLAY and the session bus already set. `--systemd` writes a
  systemd user unit instead (~/.config/systemd/user/pdfocr-watcher.service, wanted by
  graphical-session.target): it restarts the daemon after a crash and logs to the journal, but
  graphical-session.target is only reached on desktops that run their session under systemd
  (GNOME, KDE Plasma), and only those import DISPLAY into the user manager.
- macOS: a LaunchAgent, ~/Library/LaunchAgents/org.pdfocr.watcher.plist, limited to the Aqua
  (graphical) session.
- Windows: a shortcut in the Startup folder of the Start menu, to the windowed
  `pdfocr-watcher-gui.exe` (or `pythonw.exe -m watcher`) so no console window opens at logon.
  A shortcut is a binary file made through the Windows shell, so it is created by a short
  PowerShell script; that script is the entry's `content`.

Paths are built for the *target* platform (`entries_for(platform, home, env)`), so every OS's
entry can be rendered and checked on any machine.
"""

from __future__ import annotations

import argparse
import base64
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from watcher.config import API_KEY_ENV, APP_NAME, default_config_path, load_config
from watcher.errors import EXIT_OK, ConfigError
from watcher.keys import KeySource, key_source, with_key

LAUNCH_AGENT_LABEL = "org.pdfocr.watcher"
UNIT_NAME = f"{APP_NAME}.service"
SYSTEMD_TARGET = "graphical-session.target"
GUI_SCRIPT = f"{APP_NAME}-gui"  # the [project.gui-scripts] entry: no console on Windows

# Entry kinds. The kind says how the entry is written: a text file, a symlink (content is
# its target) or, on Windows, a shortcut made by running `content` as PowerShell.
DESKTOP = "desktop entry"
SYSTEMD = "systemd unit"
SYSTEMD_LINK = "systemd enablement link"
LAUNCH_AGENT = "LaunchAgent"
STARTUP_SHORTCUT = "Startup shortcut"

EXIT_NOT_ENABLED = 1

# Characters the Desktop Entry spec reserves in Exec arguments; any of them means quoting.
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


@dataclass(frozen=True)
class Entry:
    """One file (or link) that makes the daemon start at login."""

    kind: str
    path: PurePath
    content: str


@dataclass(frozen=True)
class EntryState:
    """What `status` found for one entry location."""

    entry: Entry
    present: bool
    command: tuple[str, ...] | None  # the command line found inside, when it could be read
    program_missing: bool  # the entry points at a program that is no longer there


# -- where entries go ------------------------------------------------------------------------


def family(platform: str) -> str:
    """The family of a `sys.platform` value: windows, macos or xdg (Linux and the BSDs)."""
    if platform.startswith(("win32", "cygwin")):
        return "windows"
    if platform == "darwin":
        return "macos"
    return "xdg"


def xdg_config_home(home: Path, env: Mapping[str, str]) -> PurePosixPath:
    """$XDG_CONFIG_HOME when set to an absolute path (the spec says to ignore a relative one)."""
    configured = env.get("XDG_CONFIG_HOME", "")
    if configured and PurePosixPath(configured).is_absolute():
        return PurePosixPath(configured)
    return PurePosixPath(home) / ".config"


def windows_startup_folder(home: Path, env: Mapping[str, str]) -> PureWindowsPath:
    """The per-user Startup folder: %APPDATA%\\Microsoft\\Windows\\Start Menu\\Programs\\Startup."""
    appdata = env.get("APPDATA") or str(PureWindowsPath(home) / "AppData" / "Roaming")
    return PureWindowsPath(appdata, "Microsoft", "Windows", "Start Menu", "Programs", "Startup")


def entry_paths(platform: str, home: Path, env: Mapping[str, str]) -> list[tuple[str, PurePath]]:
    """Every location `enable` may write on this platform, so `disable` and `status` find
    whichever kind was chosen."""
    kind = family(platform)
    if kind == "windows":
        return [(STARTUP_SHORTCUT, windows_startup_folder(home, env) / f"{APP_NAME}.lnk")]
    if kind == "macos":
        agents = PurePosixPath(home) / "Library" / "LaunchAgents"
        return [(LAUNCH_AGENT, agents / f"{LAUNCH_AGENT_LABEL}.plist")]
    config = xdg_config_home(home, env)
    units = config / "systemd" / "user"
    return [
        (DESKTOP, config / "autostart" / f"{APP_NAME}.desktop"),
        (SYSTEMD, units / UNIT_NAME),
        (SYSTEMD_LINK, units / f"{SYSTEMD_TARGET}.wants" / UNIT_NAME),
    ]


# -- what starts the daemon -------------------------------------------------------------------


def launch_program(
    platform: str = sys.platform,
    *,
    executable: str = sys.executable,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
    frozen: bool = bool(getattr(sys, "frozen", False)),
) -> list[str]:
    """The program (and leading arguments) that runs this installation of pdfocr-watcher.

    The script beside the running interpreter comes first: it belongs to the same install (a
    pipx venv, a virtualenv), where `which` could find another one earlier on PATH. On Windows
    the windowed gui script or pythonw is preferred, so no console window opens at logon.
    """
    if frozen:  # a PyInstaller build: the executable is the program
        return [executable]
    windows = family(platform) == "windows"
    folder = PureWindowsPath(executable).parent if windows else PurePosixPath(executable).parent
    names = [f"{GUI_SCRIPT}.exe", f"{APP_NAME}.exe"] if windows else [APP_NAME]
    for name in names:
        if exists(str(folder / name)):
            return [str(folder / name)]
    for name in [GUI_SCRIPT, APP_NAME] if windows else [APP_NAME]:
        found = which(name)
        if found:
            return [found]
    pythonw = folder / "pythonw.exe"
    if windows and exists(str(pythonw)):
        return [str(pythonw), "-m", "watcher"]
    return [executable, "-m", "watcher"]


def daemon_command(program: Sequence[str], config: PurePath) -> list[str]:
    return [*program, "run", "--config", str(config)]


# -- rendering, one small template per kind ---------------------------------------------------

_DESKTOP_TEMPLATE = """\
# Written by `pdfocr-watcher autostart enable`; `pdfocr-watcher autostart disable` removes it.
[Desktop Entry]
Type=Application
Name=pdfocr-watcher
GenericName=PDF conversion folder watcher
Comment=Converts PDFs dropped into watched folders through pdfocr.org
TryExec={try_exec}
Exec={exec_line}
Terminal=false
X-GNOME-Autostart-enabled=true
"""

_UNIT_TEMPLATE = """\
# Written by `pdfocr-watcher autostart enable --systemd`; `autostart disable` removes it.
[Unit]
Description=pdfocr-watcher: converts PDFs dropped into watched folders (pdfocr.org)
Documentation=https://pdfocr.org
# The tray icon needs the desktop session: start after it is up, stop when it ends.
PartOf={target}
After={target}

[Service]
Type=simple
ExecStart={exec_line}
Restart=on-failure
RestartSec=30
# Exit status 2 is a bad command line or rules file: restarting cannot fix that.
RestartPreventExitStatus=2

[Install]
WantedBy={target}
"""

_SHORTCUT_TEMPLATE = """\
$shell = New-Object -ComObject WScript.Shell
$link = $shell.CreateShortcut({path})
$link.TargetPath = {target}
$link.Arguments = {arguments}
$link.WorkingDirectory = {workdir}
$link.Description = 'pdfocr-watcher: converts PDFs dropped into watched folders'
$link.Save()
"""


def _desktop_string(text: str) -> str:
    """A Desktop Entry `string` value: backslash is the only escape needed on one line."""
    if any(char in text for char in "\n\r\t"):
        raise ValueError(f"cannot put a line break or tab in a desktop entry: {text!r}")
    return text.replace("\\", "\\\\")


def desktop_exec(argv: Sequence[str]) -> str:
    """The Exec value: arguments quoted per the Desktop Entry spec, `%` doubled (field codes),
    then string-escaped, because the spec applies the string escapes before the quoting."""
    words = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        if arg == "" or _EXEC_RESERVED & set(arg):
            escaped = "".join("\\" + char if char in '"`$\\' else char for char in arg)
            arg = f'"{escaped}"'
        words.append(arg)
    return _desktop_string(" ".join(words))


def split_quoted(value: str, escapable: str) -> list[str]:
    """Splits a command line on blanks; inside double quotes a backslash escapes the
    characters in `escapable` (shlex cannot: it only knows the shell's set)."""
    words: list[str] = []
    word: list[str] = []
    started = quoted = False  # `started` makes "" a word of its own
    chars = iter(value)
    for char in chars:
        if quoted and char == "\\":
            escaped = next(chars, "")
            word.append(escaped if escaped in escapable else "\\" + escaped)
        elif char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words


def parse_desktop_exec(value: str) -> list[str]:
    """The argument list of an Exec value written by `desktop_exec` (its inverse)."""
    unescaped = value.replace("\\\\", "\0").replace("\\s", " ").replace("\0", "\\")
    return [arg.replace("%%", "%") for arg in split_quoted(unescaped, '"`$\\')]


def systemd_exec(argv: Sequence[str]) -> str:
    """An ExecStart line: `%` (specifiers) doubled everywhere and `$` (variables) in the
    arguments, where systemd expands them; an argument with blanks, quotes or backslashes
    double-quoted with C escapes. systemd refuses quotes and backslashes in the program's
    own path, so those are refused here, with a clearer message."""
    if any(char in argv[0] for char in "\"'\\"):
        message = "systemd cannot run a program whose path has quotes or backslashes"
        raise ValueError(f"{message}: {argv[0]!r}")
    words = []
    for index, arg in enumerate(argv):
        if any(char in arg for char in "\n\r"):
            raise ValueError(f"cannot put a line break in a systemd unit: {arg!r}")
        word = arg.replace("%", "%%")
        word = word.replace("$", "$$") if index else word
        if not word or word == ";" or any(char in word for char in " \t\"'\\"):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)


def parse_systemd_exec(value: str) -> list[str]:
    """The argument list of an ExecStart written by `systemd_exec` (its inverse)."""
    words = [word.replace("%%", "%") for word in split_quoted(value, '"\\')]
    return words[:1] + [word.replace("$$", "$") for word in words[1:]]


def _powershell_literal(text: str) -> str:
    """A single-quoted PowerShell string: nothing inside is expanded; quotes are doubled."""
    return "'" + text.replace("'", "''") + "'"


def render_desktop(argv: Sequence[str]) -> str:
    return _DESKTOP_TEMPLATE.format(try_exec=_desktop_string(argv[0]), exec_line=desktop_exec(argv))


def render_unit(argv: Sequence[str]) -> str:
    return _UNIT_TEMPLATE.format(target=SYSTEMD_TARGET, exec_line=systemd_exec(argv))


def render_launch_agent(argv: Sequence[str], home: PurePath) -> str:
    """The LaunchAgent plist. No KeepAlive: like the desktop entry, a daemon the user quits
    from the tray stays quit; stderr goes to ~/Library/Logs for crashes before logging starts."""
    agent = {
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
        "StandardErrorPath": str(PurePosixPath(home) / "Library" / "Logs" / f"{APP_NAME}.log"),
    }
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML).decode("utf-8")


def render_shortcut(argv: Sequence[str], path: PureWindowsPath, home: PurePath) -> str:
    """PowerShell that saves a shortcut at `path` running `argv` (quoted as Windows parses a
    command line)."""
    return _SHORTCUT_TEMPLATE.format(
        path=_powershell_literal(str(path)),
        target=_powershell_literal(argv[0]),
        arguments=_powershell_literal(subprocess.list2cmdline(list(argv[1:]))),
        workdir=_powershell_literal(str(PureWindowsPath(home))),
    )


def entries_for(
    platform: str,
    home: Path,
    env: Mapping[str, str],
    *,
    program: Sequence[str] | None = None,
    config: PurePath | None = None,
    systemd: bool = False,
) -> list[Entry]:
    """The entries `enable` writes for `platform`: rendered, but not written.

    `program` defaults to this installation (`launch_program`) and `config` to the default
    rules file. On XDG desktops `systemd` picks the user unit (and its enablement link)
    instead of the desktop entry.
    """
    argv = daemon_command(program or launch_program(platform), config or default_config_path())
    paths = dict(entry_paths(platform, home, env))
    kind = family(platform)
    if kind == "windows":
        path = paths[STARTUP_SHORTCUT]
        assert isinstance(path, PureWindowsPath)
        return [Entry(STARTUP_SHORTCUT, path, render_shortcut(argv, path, home))]
    if kind == "macos":
        return [Entry(LAUNCH_AGENT, paths[LAUNCH_AGENT], render_launch_agent(argv, home))]
    if not systemd:
        return [Entry(DESKTOP, paths[DESKTOP], render_desktop(argv))]
    return [
        Entry(SYSTEMD, paths[SYSTEMD], render_unit(argv)),
        Entry(SYSTEMD_LINK, paths[SYSTEMD_LINK], str(paths[SYSTEMD])),
    ]


# -- writing, removing, reading back ----------------------------------------------------------


def _run_powershell(script: str) -> None:
    """Runs `script` without a window (we may run under pythonw); -EncodedCommand (UTF-16LE,
    base64) passes any path intact."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    subprocess.run(
        ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded],
        check=True,
        capture_output=True,
        creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
    )


def write_entry(entry: Entry, run_powershell: Callable[[str], None] = _run_powershell) -> None:
    """Writes one entry; a file is replaced atomically, so a login never sees half of it."""
    path = Path(entry.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if entry.kind == STARTUP_SHORTCUT:
        run_powershell(entry.content)
        return
    if entry.kind == SYSTEMD_LINK:
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(entry.content)
        return
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(entry.content)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _exists(path: Path) -> bool:
    return path.is_symlink() or path.exists()  # a dangling enablement link still counts


def read_command(kind: str, path: Path) -> tuple[str, ...] | None:
    """The command line inside an entry we wrote, or None when it cannot be read back."""
    try:
        if kind == LAUNCH_AGENT:
            return tuple(plistlib.loads(path.read_bytes())["ProgramArguments"])
        prefix = {DESKTOP: "Exec=", SYSTEMD: "ExecStart="}.get(kind)
        if prefix is None:
            return None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(prefix):
                value = line[len(prefix) :]
                parse = parse_desktop_exec if kind == DESKTOP else parse_systemd_exec
                return tuple(parse(value))
    except (OSError, ValueError, KeyError, TypeError, plistlib.InvalidFileException):
        return None
    return None


def _program_missing(command: tuple[str, ...] | None) -> bool:
    """True when the entry names an absolute program that is gone (e.g. after uninstalling)."""
    if not command or not os.path.isabs(command[0]):
        return False
    return not os.access(command[0], os.X_OK)


def entry_states(platform: str, home: Path, env: Mapping[str, str]) -> list[EntryState]:
    """Every location `enable` may write, and what is there now (on this machine)."""
    states = []
    for kind, pure in entry_paths(platform, home, env):
        path = Path(pure)
        present = _exists(path)
        command = read_command(kind, path) if present else None
        entry = Entry(kind, pure, "")
        states.append(EntryState(entry, present, command, _program_missing(command)))
    return states


def is_enabled(states: Sequence[EntryState]) -> bool:
    """Enabled when something starts the daemon at login: the desktop entry, the LaunchAgent,
    the shortcut, or a systemd unit *with* its enablement link (a unit alone starts nothing)."""
    present = {state.entry.kind for state in states if state.present}
    return bool(present - {SYSTEMD, SYSTEMD_LINK}) or {SYSTEMD, SYSTEMD_LINK} <= present


def enable(
    platform: str,
    home: Path,
    env: Mapping[str, str],
    *,
    program: Sequence[str] | None = None,
    config: PurePath | None = None,
    systemd: bool = False,
    run_powershell: Callable[[str], None] = _run_powershell,
) -> list[Entry]:
    """Writes this platform's entries and removes the other Linux kind, if any: the desktop
    entry and the unit together would start two daemons (the second one refused by the lock)."""
    entries = entries_for(platform, home, env, program=program, config=config, systemd=systemd)
    wanted = {entry.path for entry in entries}
    for _kind, other in entry_paths(platform, home, env):
        if other not in wanted and _exists(Path(other)):
            Path(other).unlink()
    for entry in entries:
        write_entry(entry, run_powershell)
    return entries


def disable(platform: str, home: Path, env: Mapping[str, str]) -> list[PurePath]:
    """Removes whatever `enable` wrote; returns the removed paths."""
    removed = []
    for _kind, pure in entry_paths(platform, home, env):
        path = Path(pure)
        if _exists(path):
            path.unlink()
            removed.append(pure)
    return removed


# -- the command -----------------------------------------------------------------------------


def start_now_hint(entries: Sequence[Entry]) -> str:
    """How to start the daemon now rather than at the next login."""
    kinds = {entry.kind for entry in entries}
    if SYSTEMD in kinds:
        return (
            f"To start it now: systemctl --user daemon-reload && systemctl --user start {UNIT_NAME}"
        )
    if LAUNCH_AGENT in kinds:
        path = shlex.quote(str(entries[0].path))
        return f'To start it now: launchctl bootstrap gui/"$(id -u)" {path}'
    return "It starts at your next login; to start it now: pdfocr-watcher run"


def stop_hint(removed: Sequence[PurePath]) -> str:
    """A running daemon keeps running after its entry is removed: how to stop it."""
    names = {path.name for path in removed}
    if UNIT_NAME in names:
        return f"A running daemon keeps running: systemctl --user stop {UNIT_NAME}"
    if f"{LAUNCH_AGENT_LABEL}.plist" in names:
        label = LAUNCH_AGENT_LABEL
        return f'A running daemon keeps running: launchctl bootout gui/"$(id -u)"/{label}'
    return "A running daemon keeps running until you quit it (tray menu: Quit)."


def shown(platform: str, argv: Sequence[str]) -> str:
    """A command line quoted the way the user's own shell would take it."""
    if family(platform) == "windows":
        return subprocess.list2cmdline(list(argv))
    return shlex.join(argv)


def _config_argument(args: argparse.Namespace) -> Path:
    return (args.config or default_config_path()).expanduser().absolute()


def command_autostart(args: argparse.Namespace) -> int:
    """`autostart enable|disable|status`, for the OS this runs on."""
    platform, home, env = sys.platform, Path.home(), os.environ
    if args.action == "enable":
        return _enable_command(platform, home, env, args)
    if args.action == "disable":
        removed = disable(platform, home, env)
        for path in removed:
            print(f"Removed {path}")
        if not removed:
            print("Autostart was not enabled: nothing to remove.")
        else:
            print(stop_hint(removed))
        return EXIT_OK
    return print_status(entry_states(platform, home, env), platform)


def _enable_command(
    platform: str, home: Path, env: Mapping[str, str], args: argparse.Namespace
) -> int:
    config = _config_argument(args)
    if not config.exists():
        print(
            f"pdfocr-watcher: no rules file at {config}: the daemon would stop at every login. "
            "Create one first with `pdfocr-watcher init`.",
            file=sys.stderr,
        )
        return EXIT_NOT_ENABLED
    if args.systemd and family(platform) != "xdg":
        print("pdfocr-watcher: --systemd is for Linux only.", file=sys.stderr)
        return 2
    refusal = keyless_reason(config, env)
    if refusal:
        print(f"pdfocr-watcher: {refusal}", file=sys.stderr)
        return EXIT_NOT_ENABLED
    program = launch_program(platform)
    try:
        entries = enable(platform, home, env, program=program, config=config, systemd=args.systemd)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"pdfocr-watcher: could not write the autostart entry: {exc}", file=sys.stderr)
        return EXIT_NOT_ENABLED
    for entry in entries:
        print(f"Wrote {entry.kind}: {entry.path}")
    print(f"It runs: {shown(platform, daemon_command(program, config))}")
    print(start_now_hint(entries))
    return EXIT_OK


def keyless_reason(config: Path, env: Mapping[str, str]) -> str | None:
    """Why the rules file cannot be started at login, or None: as a login session reads it,
    without this shell's PDFOCR_API_KEY. Without a key the daemon would run on the sandbox
    at every login, converting nothing for real, and nobody watching to see it."""
    try:
        rules = load_config(config, env={})
        if key_source(rules, env={}) is not KeySource.NONE:
            with_key(rules, env={})
            return None
    except ConfigError as exc:
        return f"{exc}. The watcher would stop at every login: fix that first."
    shell = (
        f" ({API_KEY_ENV} is set in this shell, but a login session does not have it.)"
        if env.get(API_KEY_ENV, "").strip()
        else ""
    )
    return (
        f"{config} holds no API key, so at every login the watcher would run on the built-in "
        f"SANDBOX and convert nothing for real.{shell} Set the key first: pdfocr-watcher init "
        f"--api-key KEY --config {shlex.quote(str(config))} (it goes to your OS keyring), then "
        "`pdfocr-watcher autostart enable` again."
    )


def print_status(states: Sequence[EntryState], platform: str) -> int:
    """Prints what is enabled, naming the entry that does it first; 0 when the daemon starts
    at login, 1 when not (or broken)."""
    enabled = is_enabled(states)
    broken = any(state.program_missing for state in states)
    present = [state for state in states if state.present]
    if enabled:
        found = ", ".join(f"the {state.entry.kind} {state.entry.path}" for state in present)
        print(f"Autostart ({family(platform)}): enabled by {found}")
    elif present:
        found = ", ".join(f"{state.entry.kind} {state.entry.path}" for state in present)
        print(f"Autostart ({family(platform)}): not enabled; found only {found}")
    else:
        print(f"Autostart ({family(platform)}): not enabled; no entry found")
    for state in states:
        found = "found" if state.present else "absent"
        print(f"  {state.entry.kind}: {state.entry.path} ({found})")
        if state.command:
            print(f"    runs: {shown(platform, state.command)}")
        if state.program_missing:
            print(
                "    that program is gone (uninstalled or moved): run "
                "`pdfocr-watcher autostart enable` again, or `autostart disable`."
            )
    return EXIT_OK if enabled and not broken else EXIT_NOT_ENABLED


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds `autostart` to the command line (cli.py calls this once)."""
    parser = commands.add_parser(
        "autostart",
        parents=[common],
        help="start the watcher when you log in (enable, disable, status)",
        description="Start the watcher at login, in your own folders (no admin rights). "
        "Linux: a desktop autostart entry (or a systemd user unit with --systemd); "
        "macOS: a LaunchAgent; Windows: a shortcut in the Startup folder. "
        "`status` exits 0 when enabled, 1 when not.",
    )
    parser.add_argument("action", choices=("enable", "disable", "status"))
    parser.add_argument(
        "--systemd",
        action="store_true",
        help="Linux: a systemd user unit (restarts after a crash, logs to the journal) "
        "instead of the desktop autostart entry",
    )
    parser.set_defaults(handler=command_autostart)
