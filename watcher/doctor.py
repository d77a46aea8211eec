"""`pdfocr-watcher doctor`: one command that says what is wrong, in a report a user can paste
into a bug report.

It checks what users most often get wrong or cannot see: the rules file (where, valid?), the
folders (there, writable?), the API endpoint (reachable from here?), the state folder (journal,
log, is a daemon running?), the tray, autostart, and the versions of everything involved.

The report must be safe to paste in public: the API key is only ever "set" or "not set", URLs
are printed without query string or user name, and, as a last guard, any known key that still
slipped into the text is replaced before printing.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from watcher import __version__, autostart
from watcher.config import (
    API_KEY_ENV,
    ApiSettings,
    Config,
    all_folders,
    check_runnable,
    config_permission_warning,
    default_config_path,
    load_config,
    parse_config,
)
from watcher.errors import (
    EXIT_OK,
    AccountError,
    ApiError,
    ConfigError,
    CreditError,
    UnknownRemoteName,
)
from watcher.instance import daemon_running
from watcher.journal import JOURNAL_FILE_NAME, META_PAGES, META_PAGES_AT, Journal
from watcher.keys import KeySource, key_source, with_key
from watcher.logs import LOG_FILE_NAME, REDACTED, redact
from watcher.wording import count
from watcher.world import has_sandbox_journal, sandbox_state_dir

EXIT_ATTENTION = 1

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
# The distributions whose versions matter in a bug report, in the order they are printed.
DISTRIBUTIONS = (
    "watchdog",
    "requests",
    "urllib3",
    "pystray",
    "desktop-notifier",
    "pypdf",
    "pillow",
    "platformdirs",
    "keyring",
)


class Level(enum.Enum):
    """OK and NOTE are fine (a note is worth knowing: no tray, no autostart); PROBLEM needs
    the user's attention and makes `doctor` exit 1."""

    OK = "ok"
    NOTE = "note"
    PROBLEM = "PROBLEM"


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    text: str


def ok(topic: str, text: str) -> Finding:
    return Finding(Level.OK, topic, text)


def note(topic: str, text: str) -> Finding:
    return Finding(Level.NOTE, topic, text)


def problem(topic: str, text: str) -> Finding:
    return Finding(Level.PROBLEM, topic, text)


# -- the rules file ---------------------------------------------------------------------------


def check_config(path: Path, env: Mapping[str, str]) -> tuple[Config | None, list[Finding]]:
    """The rules file, if valid, and what is wrong with it. Without a valid file the other
    checks run on the defaults, so the report still says as much as it can."""
    try:
        config = load_config(path, env)
    except ConfigError as exc:
        if not path.exists():
            return None, [problem("rules file", f"none at {path}; create it: pdfocr-watcher init")]
        return None, [problem("rules file", str(exc))]
    count = len(config.inboxes)
    findings = [ok("rules file", f"{path}: valid, {count} inbox{'es' if count != 1 else ''}")]
    try:
        check_runnable(config)
    except ConfigError as exc:
        findings.append(problem("rules file", exc.message))
    warning = config_permission_warning(config)
    if warning:
        findings.append(problem("rules file", warning))
    findings.append(check_key(config, env))
    return config, findings


def check_key(config: Config, env: Mapping[str, str]) -> Finding:
    """Whether a key is set, where from, and whether the service takes it: never the key,
    nor a part of it. The service is asked the status of a name no upload ever had, which
    costs nothing; it checks the key first, so "no such file" means the key is good and a
    refusal about the key means it is not (API.md). The sandbox answers the same way."""
    from watcher.api import ClientSettings, PdfOcrClient, RemoteJob, new_token

    source = key_source(config, env)
    if source is KeySource.NONE:
        return problem(
            "API key",
            "not set: pdfocr-watcher init --api-key KEY (kept in your OS keyring), or "
            f"{API_KEY_ENV} (until then `run` works on the built-in SANDBOX only)",
        )
    try:
        config = with_key(config, env)
    except ConfigError as exc:
        return problem("API key", exc.message)
    where = f"set (from {source.value})"
    client = PdfOcrClient(ClientSettings.from_rules(config.api))
    try:
        client.poll(RemoteJob(f"doctor-probe-{new_token()}.txt", "txt", "English", False))
    except UnknownRemoteName:
        return ok("API key", f"{where}; the service accepts it (asked without spending)")
    except CreditError as exc:
        return problem("API key", f"{where}; the key works but the account has no credit: {exc}")
    except AccountError as exc:
        return problem(
            "API key",
            f'{where}, but WRONG: the service refuses it, saying "{exc.message.rstrip(".")}". '
            "Copy the key again from your pdfocr.org account and set it: "
            "pdfocr-watcher init --api-key KEY",
        )
    except ApiError as exc:
        return note("API key", f"{where}; not checked, the service did not answer: {exc}")
    finally:
        client.close()
    return note("API key", f"{where}; not checked: the service's answer did not tell")


# -- folders ----------------------------------------------------------------------------------


def _nearest_existing(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return Path(folder.anchor or "/")


def check_folder(topic: str, folder: Path) -> Finding:
    """A folder must be a writable folder; a missing one is fine if `run` can create it."""
    if folder.is_dir():
        if os.access(folder, os.W_OK | os.X_OK):
            return ok(topic, f"{folder}: writable")
        return problem(topic, f"{folder}: not writable by you; fix its permissions")
    if folder.exists():
        return problem(topic, f"{folder}: is a file, not a folder")
    parent = _nearest_existing(folder)
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return note(topic, f"{folder}: missing; `pdfocr-watcher run` creates it")
    return problem(topic, f"{folder}: missing, and {parent} is not writable to create it")


def check_folders(config: Config) -> list[Finding]:
    findings = []
    inboxes = {rule.path for rule in config.inboxes}
    for folder in sorted(all_folders(config)):
        findings.append(check_folder("inbox" if folder in inboxes else "folder", folder))
    return findings


# -- the service ------------------------------------------------------------------------------


def public_url(url: str) -> str:
    """The URL without query string, fragment or user:password, which may carry a key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal needs its brackets back
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_endpoint(api: ApiSettings) -> Finding:
    """One GET to the endpoint, without the key, the way the daemon connects (same proxy
    and certificates): any answer below 500 means this computer reaches the service (the
    key itself is checked by the first real request)."""
    from watcher.api import ClientSettings, PdfOcrClient  # here: the other checks start faster

    url = public_url(api.endpoint)
    client = PdfOcrClient(ClientSettings.from_rules(api))
    started = time.monotonic()
    try:
        status = client.reach(url, CONNECT_TIMEOUT, READ_TIMEOUT)
    except ApiError as exc:  # offline, or a proxy setting that cannot work
        return problem("service", f"{url}: not reachable: {exc.message}")
    finally:
        client.close()
    answer = f"HTTP {status} in {time.monotonic() - started:.2f} s"
    if status >= 500:
        return problem("service", f"{url}: reached, but it answered {answer}; try again later")
    return ok("service", f"{url}: reachable ({answer})")


# -- state: journal, log, daemon -------------------------------------------------------------


def _last_credit(journal_path: Path) -> str | None:
    journal = Journal(journal_path)
    try:
        pages, seen = journal.get_meta(META_PAGES), journal.get_meta(META_PAGES_AT)
    finally:
        journal.close()
    if not pages:
        return None
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(seen))) if seen else "unknown"
    return f"{count(int(pages), 'page')} (seen {when})"


def check_state(state_dir: Path) -> list[Finding]:
    findings = [check_folder("state folder", state_dir)]
    journal_path = state_dir / JOURNAL_FILE_NAME
    if journal_path.exists():
        findings.append(ok("journal", str(journal_path)))
        try:
            credit = _last_credit(journal_path)
        except Exception as exc:  # a damaged journal must not stop the rest of the report
            findings.append(problem("journal", f"cannot be read: {type(exc).__name__}: {exc}"))
        else:
            findings.append(note("credit", credit or "no balance seen yet; see `status`"))
    else:
        findings.append(note("journal", f"none yet at {journal_path} (no daemon has run live)"))
    if has_sandbox_journal(state_dir):
        findings.append(
            note(
                "sandbox",
                f"its own journal and log in {sandbox_state_dir(state_dir)}, apart from the "
                "real ones (play money; `pdfocr-watcher status --sandbox`)",
            )
        )
    log_file = state_dir / LOG_FILE_NAME
    where = f"{log_file}" if log_file.exists() else f"none yet (will be {log_file})"
    findings.append(note("log", where))
    running = daemon_running(state_dir)
    on_sandbox = running and daemon_running(sandbox_state_dir(state_dir))
    said = "running on the SANDBOX" if on_sandbox else "running" if running else "not running"
    findings.append(note("daemon", said))
    return findings


# -- the desktop: tray and autostart ----------------------------------------------------------


def check_tray() -> list[Finding]:
    """The tray for real, as watcher.tray judges it (it knows the backends): which of pystray's
    backends loads (with a menu or not), what on this desktop would host the icon right now,
    and whether notifications reach the desktop. Never raises (no display, no pystray)."""
    try:
        from watcher.notify import check as check_notifications
        from watcher.tray import GNOME_PACKAGES, no_display, tray_facts

        facts = tray_facts()
        if no_display():  # the daemon sends none either
            return [
                note("tray", f"no tray icon; the daemon runs without one: {facts.reason}"),
                note("notifications", f"off: {facts.reason}"),
            ]
        unheard = asyncio.run(check_notifications())
    except Exception as exc:  # a broken install must not stop the rest of the report
        return [problem("tray", f"cannot be checked: {type(exc).__name__}: {exc}")]
    if facts.reason:
        return [
            note("tray", f"no tray icon; the daemon runs without one: {facts.reason}"),
            _notifications(unheard),
        ]
    if facts.menu:
        findings = [ok("tray", f"pystray's {facts.backend} backend: an icon with its menu")]
    else:
        findings = [
            note(
                "tray",
                f"pystray's {facts.backend} backend: the icon has NO menu (no Pause, Resume or "
                f"Retry in the tray); install {GNOME_PACKAGES} and reinstall with "
                "--system-site-packages (docs/install.md); meanwhile `pdfocr-watcher pause`, "
                "`resume` and `status` do it from a terminal",
            )
        ]
    if facts.hosts:
        findings.append(ok("tray host", ", ".join(facts.hosts)))
    else:
        findings.append(
            note(
                "tray host",
                "none running now (no StatusNotifier watcher, no X system tray): the icon "
                "appears once one starts; on GNOME enable the AppIndicator extension",
            )
        )
    return [*findings, _notifications(unheard)]


def _notifications(unheard: str | None) -> Finding:
    if unheard:
        return note("notifications", f"none will be shown: {unheard}")
    return ok("notifications", "the desktop's notification service answers")


def check_autostart(home: Path, env: Mapping[str, str]) -> Finding:
    states = autostart.entry_states(sys.platform, home, env)
    present = [state for state in states if state.present]
    if any(state.program_missing for state in present):
        broken = next(state for state in present if state.program_missing)
        return problem(
            "autostart",
            f"{broken.entry.path} starts a program that is gone; run "
            "`pdfocr-watcher autostart enable` again (or `autostart disable`)",
        )
    if autostart.is_enabled(states):
        return ok("autostart", ", ".join(f"{s.entry.kind} {s.entry.path}" for s in present))
    return note("autostart", "not enabled (`pdfocr-watcher autostart enable` starts it at login)")


# -- versions and system ----------------------------------------------------------------------


def versions() -> tuple[list[str], list[Finding]]:
    """ "name version" for Python, us and our main dependencies; a missing one is a problem
    (a broken install: the daemon would fail when it first needs it)."""
    found = [f"Python {platform.python_version()}", f"pdfocr-watcher {__version__}"]
    findings = []
    for name in DISTRIBUTIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} MISSING")
            findings.append(
                problem("install", f"{name} is not installed; reinstall pdfocr-watcher")
            )
    return found, findings


def system_line(env: Mapping[str, str]) -> str:
    """The OS, and on Linux the desktop and session type, which decide how the tray works."""
    line = f"{platform.system()} {platform.release()} ({platform.machine()})"
    if getattr(sys, "frozen", False):
        line += ", one-file build"
    desktop = env.get("XDG_CURRENT_DESKTOP")
    if desktop:
        line += f"; desktop {desktop} ({env.get('XDG_SESSION_TYPE') or 'unknown session'})"
    return line


# -- the report -------------------------------------------------------------------------------


def diagnose(
    config_path: Path, home: Path, env: Mapping[str, str]
) -> tuple[list[Finding], list[str], Config | None]:
    """Every check, in the order a user would fix things; returns findings, versions and the
    config (for redaction), never raising for what it finds."""
    config, findings = check_config(config_path, env)
    settings = config or parse_config("", None, env)  # defaults: endpoint and state folder
    if config is not None:
        findings += check_folders(config)
    findings.append(check_endpoint(settings.api))
    findings += check_state(settings.files.state_dir)
    findings += check_tray()
    findings.append(check_autostart(home, env))
    found, missing = versions()
    return findings + missing, found, config


def secrets_in(config: Config | None, env: Mapping[str, str]) -> list[str]:
    keys = [config.api.key if config else "", env.get(API_KEY_ENV, "").strip()]
    return [key for key in keys if len(key) >= 4]


def render(findings: list[Finding], found: list[str], env: Mapping[str, str]) -> str:
    width = max((len(finding.topic) for finding in findings), default=0)
    lines = ["pdfocr-watcher doctor (safe to paste into a bug report: no API key in it)", ""]
    lines += [f"{f.level.value:<8} {f.topic:<{width}}  {f.text}" for f in findings]
    lines += ["", f"versions: {', '.join(found)}", f"system: {system_line(env)}", ""]
    problems = sum(finding.level is Level.PROBLEM for finding in findings)
    lines.append(
        f"{problems} thing{'s' if problems != 1 else ''} need{'' if problems != 1 else 's'} "
        "attention (marked PROBLEM)."
        if problems
        else "All fine."
    )
    return "\n".join(lines)


def run_doctor(
    config_path: Path, home: Path | None = None, env: Mapping[str, str] | None = None
) -> int:
    """Prints the report; 0 when all is fine, 1 when something needs attention."""
    env = os.environ if env is None else env
    findings, found, config = diagnose(config_path, home or Path.home(), env)
    text = render(findings, found, env)
    for secret in secrets_in(config, env):
        text = text.replace(secret, REDACTED)
    print(redact(text))  # and a key read from the keyring, in any of its forms
    return EXIT_ATTENTION if any(f.level is Level.PROBLEM for f in findings) else EXIT_OK


def command_doctor(args: argparse.Namespace) -> int:
    return run_doctor((args.config or default_config_path()).expanduser().absolute())


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds `doctor` to the command line (cli.py calls this once)."""
    parser = commands.add_parser(
        "doctor",
        parents=[common],
        help="check the set-up and print a report to paste into a bug report",
        description="Checks the rules file, folders, the service's reachability, the state "
        "folder, the tray and autostart, and prints the versions involved. The API key is "
        "never printed. Exits 0 when all is fine, 1 when something needs attention.",
    )
    parser.set_defaults(handler=command_doctor)
