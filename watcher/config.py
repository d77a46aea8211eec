"""The rules file: which folders are watched, what they convert to, and how the daemon behaves.

The TOML names below are a public contract: users' files depend on them, so they never change
silently. Everything is validated up front, because a mistake found at conversion time costs
money or loses files; every refusal is one ConfigError naming file, dotted key and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import itertools
import math
import os
import re
import shlex
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import platformdirs
import tomli_w

from watcher.claims import CLAIMS_DIR
from watcher.contract import DEFAULT_ENDPOINT, LANGUAGES, OUTFORMATS, canonical_language
from watcher.errors import ConfigError
from watcher.filing import result_name, template_problem
from watcher.hooks import FAILURE_FIELDS, SUCCESS_FIELDS, command_problem, find_program
from watcher.jobs import Rule, readable
from watcher.schedule import Window, parse_window

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

APP_NAME = "pdfocr-watcher"
API_KEY_ENV = "PDFOCR_API_KEY"

# Half-written downloads, editor locks and OS litter: converting them would cost pages for junk,
# so they are always ignored, whatever the user's `ignore` says.
BUILTIN_IGNORES: tuple[str, ...] = (
    ".*", "._*", "~$*", "*.tmp", "*.part", "*.partial", "*.crdownload", "*.download",
    "desktop.ini", "Thumbs.db",
)  # fmt: skip
# Folders that NAS boxes, sync tools and operating systems drop into watched trees.
BUILTIN_IGNORED_FOLDERS: tuple[str, ...] = (
    "@eaDir", ".stfolder", ".stversions", ".Trashes", "__MACOSX", ".Spotlight-V100", "$RECYCLE.BIN",
    CLAIMS_DIR,
)  # fmt: skip


def default_config_path() -> Path:
    """Where the rules file lives unless the user names another one."""
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "config.toml"


def default_state_dir() -> Path:
    """Where the job journal lives when `files.state_dir` is empty."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


class AutoSwitch(enum.Enum):
    """A setting that is on, off, or decided per folder: on for network shares (which often
    send no change events, and which other PCs may watch too)."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class AfterSuccess(enum.Enum):
    """What happens to the original PDF once its conversion is safely in the outbox."""

    ARCHIVE = "archive"
    DELETE = "delete"
    KEEP = "keep"


@dataclass(frozen=True)
class ApiSettings:
    """How to talk to pdfocr.org. The key is kept out of repr so it never reaches a log.
    `keyring`: the rules file says the key is kept in the OS keyring (watcher.keys reads it
    from there; this file never holds it then)."""

    key: str = field(default="", repr=False)
    keyring: bool = False
    endpoint: str = DEFAULT_ENDPOINT
    concurrency: int = 2
    request_timeout: float = 110.0
    poll_interval: float = 5.0
    max_wait: float = 3600.0
    lost_after: float = 120.0  # a sent file the service keeps not knowing is held after this
    download_hosts: tuple[str, ...] = ()
    max_result_mb: int = 2048
    verify_tls: bool = True


@dataclass(frozen=True)
class WatchSettings:
    """When a file counts as arrived. `ignore` already includes BUILTIN_IGNORES."""

    settle_seconds: float = 2.0
    patterns: tuple[str, ...] = ("*.pdf",)
    ignore: tuple[str, ...] = BUILTIN_IGNORES
    recursive: bool = False
    polling: AutoSwitch = AutoSwitch.AUTO
    shared: AutoSwitch = AutoSwitch.AUTO  # other PCs may watch the same inboxes: claim files
    claim_lease: float = 120.0  # a PC silent this long loses its claims to the others
    rescan_seconds: float = 300.0
    send_between: Window | None = None  # sending hours (watcher.schedule); None: any time


@dataclass(frozen=True)
class FileSettings:
    """Default destinations, shared by every inbox that does not override them."""

    outbox: Path
    archive: Path
    failed: Path
    after_success: AfterSuccess
    state_dir: Path
    history_days: int = 90  # finished jobs older than this are folded into daily totals


@dataclass(frozen=True)
class CreditSettings:
    """Guards against spending more pages than the user meant to."""

    low_warning: int = 100
    daily_page_limit: int = 0


@dataclass(frozen=True, kw_only=True)
class InboxRule(Rule):
    """One watched folder and the Rule for the files in it, the [files] and [watch] defaults
    already filled in. A job keeps `as_rule(file)`: a frozen copy, so later edits do not
    change it. Which files it takes (`patterns`), how long they must stand still
    (`settle_seconds`), whether its subfolders count (`recursive`) and when it may send
    (`send_between`) are the folder's own, as are the commands after its results: these are
    asked of the current rules, so an edit applies to files already queued."""

    path: Path
    patterns: tuple[str, ...] = WatchSettings.patterns
    settle_seconds: float = WatchSettings.settle_seconds
    recursive: bool = WatchSettings.recursive
    send_between: Window | None = WatchSettings.send_between
    on_success: tuple[str, ...] = ()  # a command after each result (watcher.hooks)
    on_failure: tuple[str, ...] = ()  # and after each failure
    hook_seconds: float = 60.0  # their time limit

    def as_rule(self, file: Path | None = None) -> Rule:
        """The Rule for one file of this inbox. A file from a subfolder keeps it: its
        result, archived original or failed copy go to the same subfolder of each folder
        (inbox/2026/March/x.pdf → outbox/2026/March/x.docx)."""
        rule = Rule(**{item.name: getattr(self, item.name) for item in dataclasses.fields(Rule)})
        below = self.subfolder_of(file) if file is not None else ()
        if not below:
            return rule
        return dataclasses.replace(
            rule,
            outbox=rule.outbox.joinpath(*below),
            archive=rule.archive.joinpath(*below),
            failed=rule.failed.joinpath(*below),
        )

    def summary(self) -> str:
        """What `check` says of this inbox: what it takes, what it makes, where things go."""
        ocr = "on" if self.ocr else "off"
        below = "subfolders too, kept in the output folders" if self.recursive else "no subfolders"
        originals = {
            "archive": f"originals to {self.archive}",
            "delete": "originals deleted once converted",
            "keep": "originals kept in the inbox",
        }[self.after_success]
        hours = f"\n    sends only between {self.send_between}" if self.send_between else ""
        hooks = "".join(
            f"\n    after each {what}: {shlex.join(argv)} (stopped after {self.hook_seconds:g} s)"
            for what, argv in (("result", self.on_success), ("failure", self.on_failure))
            if argv
        )
        return (
            f"- {self.path}\n    takes {', '.join(self.patterns)} ({below}; settled after "
            f"{self.settle_seconds:g} s)\n    → {self.outformat}, {self.lang}, OCR {ocr}; "
            f"results to {self.outbox} named {self.name!r}\n    {originals} (failed: "
            f"{self.failed})" + hours + hooks
        )

    def destinations(self, file: Path) -> str:
        """Where a file of this inbox would go, for `check --explain` (dated today)."""
        rule = self.as_rule(file)
        name = result_name(
            readable(file.name), rule.outformat, template=rule.name, lang=rule.lang,
            inbox=readable(self.path.name),
        )  # fmt: skip
        original = {
            "archive": f"the original then moves to {rule.archive}",
            "delete": "the original is then deleted",
            "keep": "the original then stays where it is",
        }[rule.after_success]
        hours = f" It is sent only between {self.send_between}." if self.send_between else ""
        return (
            f'The result would be {rule.outbox / name} (with " (2)" added if that name is '
            f"taken); {original}; if it fails, it goes to {rule.failed}.{hours}"
        )

    def subfolder_of(self, file: Path) -> tuple[str, ...]:
        """The folders between the inbox and the file, as names (none when the file lies in
        the inbox itself, or is not below it). Taken from the resolved paths, so never
        ".." nor a link leading elsewhere."""
        if not self.recursive:
            return ()
        folder = file.parent.expanduser().resolve()
        if self.path not in folder.parents:
            return ()
        below = folder.relative_to(self.path).parts
        return below if all(part not in ("", ".", "..") for part in below) else ()


@dataclass(frozen=True)
class Config:
    """The whole validated rules file; `path` is None when it was not read from a file."""

    path: Path | None
    api: ApiSettings
    watch: WatchSettings
    files: FileSettings
    credits: CreditSettings
    inboxes: tuple[InboxRule, ...]

    def inbox_for(self, file: Path) -> InboxRule | None:
        """The rule whose folder holds this file (at any depth when watching recursively)."""
        return self.inbox_holding(file.parent.expanduser().resolve())

    def inbox_holding(self, folder: Path) -> InboxRule | None:
        """The rule of a folder (resolved), or of a folder above it when recursive."""
        for rule in self.inboxes:
            if folder == rule.path or (rule.recursive and rule.path in folder.parents):
                return rule
        return None


def check_runnable(config: Config) -> None:
    """What the daemon needs beyond a valid file: something to watch. Also guards live
    reloads, where an editor's half-saved (empty) file must not unwatch every inbox."""
    if not config.inboxes:
        raise ConfigError(
            str(config.path or "<config>"),
            "no [[inbox]] is configured, so there is nothing to watch; "
            "add one (see config.example.toml)",
        )


def all_folders(config: Config) -> set[Path]:
    """Every folder the rules name, so `init` and `run` can create them before watching."""
    folders = {config.files.outbox, config.files.archive, config.files.failed}
    for rule in config.inboxes:
        folders |= {rule.path, rule.outbox, rule.archive, rule.failed}
    return folders


# --- Locating keys in the text -------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([\w\s.\"'-]+?)\s*\]\]?\s*(?:#.*)?$")
_TOML_LINE_RE = re.compile(r"\(at line (\d+), column \d+\)")
_HOST_RE = re.compile(r"[\w-]+(\.[\w-]+)*")


@dataclass
class _Section:
    """A `[table]` or `[[array]]` header and the lines up to the next header."""

    name: str
    is_array: bool
    line: int
    body: list[tuple[int, str]] = field(default_factory=list)


class _Source:
    """The file's text, scanned just enough to say on which line a key is written."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.lines = text.splitlines()
        self.sections = [_Section("", False, 0)]
        for number, line in enumerate(self.lines, 1):
            match = _HEADER_RE.match(line)
            if match:
                name = ".".join(part.strip().strip("\"'") for part in match[2].split("."))
                self.sections.append(_Section(name, match[1] == "[[", number))
            else:
                self.sections[-1].body.append((number, line))

    def fail(self, message: str, table: str, key: str = "", index: int = 0) -> ConfigError:
        """A ConfigError for `table[index].key` (index is 1-based; 0 for plain tables)."""
        dotted = table + (f"[{index}]" if index else "") + (f".{key}" if key else "")
        return ConfigError(self.path, message, key=dotted, line=self.line_of(table, key, index))

    def line_of(self, table: str, key: str = "", index: int = 0) -> int | None:
        """The key's line, else its table header's line, else the line that names the table."""
        section = self._section(table, index)
        if section is None:
            return self._key_line(self.sections[0], table)
        return (self._key_line(section, key) if key else None) or section.line

    def _section(self, table: str, index: int) -> _Section | None:
        if index:
            arrays = [s for s in self.sections if s.is_array and s.name == table]
            return arrays[index - 1] if index <= len(arrays) else None
        named = (s for s in self.sections[1:] if s.name == table or s.name.startswith(table + "."))
        return next(named, None)

    @staticmethod
    def _key_line(section: _Section, key: str) -> int | None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*[=.]")
        return next((number for number, line in section.body if pattern.match(line)), None)


# --- Checking single values ----------------------------------------------------------------


class _Invalid(Exception):
    """A value's complaint, before _read_table says where in the file the value is."""


Converter = Callable[[Any], Any]


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind(value: object) -> str:
    """A value's TOML type in the user's words (never the value itself: it may be the key)."""
    kinds = {bool: "true/false", int: "a whole number", float: "a decimal", str: "text"}
    kinds |= {list: "a list", dict: "a table"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), "a date")


def _expect(value: Any, kinds: tuple[type, ...], what: str) -> Any:
    """`value` if it has one of these TOML types; true/false never counts as a number."""
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _Invalid(f"must be {what}; got {_kind(value)}")
    return value


def _text(value: Any) -> str:
    return cast(str, _expect(value, (str,), 'text in quotes, like "..."')).strip()


def _boolean(value: Any) -> bool:
    return cast(bool, _expect(value, (bool,), "true or false (no quotes)"))


def _number(minimum: int, maximum: float = math.inf, *, whole: bool, above: bool) -> Converter:
    """Counts stay int; seconds become float. `above` refuses the minimum itself."""
    allowed = f"more than {minimum}" if above else f"{minimum} or more"
    allowed = allowed if maximum == math.inf else f"from {minimum} to {maximum}"
    what = f"a whole number, {allowed}" if whole else f"a number of seconds, {allowed}"

    def convert(value: Any) -> float:
        number = _expect(value, (int,) if whole else (int, float), what)
        above_minimum = number > minimum if above else number >= minimum
        if not (math.isfinite(number) and above_minimum and number <= maximum):
            raise _Invalid(f"must be {allowed}; got {number}")
        return number if whole else float(number)

    return convert


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _Invalid(f"must be a list of {what}")
    return tuple(value)


def _patterns(value: Any) -> tuple[str, ...]:
    patterns = _strings(value, 'file patterns in quotes, like ["*.pdf"]')
    if not patterns:
        raise _Invalid('must name at least one file pattern, like ["*.pdf"]')
    return patterns


def _ignore(value: Any) -> tuple[str, ...]:
    extra = _strings(value, 'file patterns in quotes, like ["*.bak"]')
    return tuple(dict.fromkeys(BUILTIN_IGNORES + extra))


def _hosts(value: Any) -> tuple[str, ...]:
    what = 'host names (no https:// or path), like ["files.example.com"]'
    hosts = _strings(value, what)
    if not all(_HOST_RE.fullmatch(host) for host in hosts):
        raise _Invalid(f"must be a list of {what}")
    return tuple(host.lower() for host in hosts)


def _endpoint(value: Any) -> str:
    url = urlsplit(_text(value))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise _Invalid(f"must be an http(s) address, like {DEFAULT_ENDPOINT}")
    return url.geturl()


def _choice(kind: type[enum.Enum], aliases: Mapping[str | bool, str] | None = None) -> Converter:
    """Enum values in any case, plus aliases (which may be TOML true/false)."""
    names = {member.value: member for member in kind} | {
        alias: kind(value) for alias, value in (aliases or {}).items()
    }
    shown = ", ".join(repr(name) if isinstance(name, str) else str(name).lower() for name in names)

    def convert(value: Any) -> enum.Enum:
        name = value.strip().casefold() if isinstance(value, str) else value
        if not isinstance(name, str | bool) or name not in names:
            raise _Invalid(f"must be one of {shown}")
        return names[name]

    return convert


def _window(value: Any) -> Window | None:
    try:
        return parse_window(_text(value))
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _outformat(value: Any) -> str:
    outformat = _text(value).casefold()
    if outformat not in OUTFORMATS:
        raise _Invalid(f"unknown format {value!r}; use one of: {', '.join(OUTFORMATS)}")
    return outformat


def _lang(value: Any) -> str:
    language = canonical_language(_text(value))
    if language is None:
        hint = _suggest(value, LANGUAGES)
        raise _Invalid(f"unknown language {value!r}; use one of: {', '.join(LANGUAGES)}{hint}")
    return language


def _folder(base: Path, *, empty_means: Path | None = None) -> Converter:
    """Folders: `~` expanded, relative to the rules file's folder, absolute and resolved."""

    def convert(value: Any) -> Path:
        text = _text(value)
        if not text and empty_means is not None:
            return empty_means
        if not text or "\0" in text:
            raise _Invalid('must be a folder, like "~/PDFOCR/outbox"')
        try:
            return (base / Path(text).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, odd names
            raise _Invalid(f"cannot be used as a folder: {exc}") from None

    return convert


# --- Reading tables ------------------------------------------------------------------------

_TABLES = ("api", "watch", "files", "credits", "inbox")
_FOLDER_KEYS = ("outbox", "archive", "failed")
_FILE_DEFAULTS = {name: f"~/PDFOCR/{name}" for name in _FOLDER_KEYS} | {
    "after_success": "archive",
    "state_dir": "",
    "history_days": 90,
}
_INBOX_DEFAULTS = {"lang": "English", "ocr": True}

_seconds = _number(0, whole=False, above=False)
_positive_seconds = _number(0, whole=False, above=True)
_count = _number(0, whole=True, above=False)
_API_SCHEMA: dict[str, Converter] = {
    "key": _text,
    "keyring": _boolean,
    "endpoint": _endpoint,
    "concurrency": _number(1, 16, whole=True, above=False),
    "request_timeout": _positive_seconds,
    "poll_interval": _positive_seconds,
    "max_wait": _positive_seconds,
    "lost_after": _seconds,
    "download_hosts": _hosts,
    "max_result_mb": _number(1, 1_000_000, whole=True, above=False),
    "verify_tls": _boolean,
}
_SWITCH_ALIASES: dict[str | bool, str] = {
    True: "always",
    False: "never",
    "true": "always",
    "false": "never",
}
_WATCH_SCHEMA: dict[str, Converter] = {
    "settle_seconds": _seconds,
    "patterns": _patterns,
    "ignore": _ignore,
    "recursive": _boolean,
    "polling": _choice(AutoSwitch, _SWITCH_ALIASES),
    "shared": _choice(AutoSwitch, _SWITCH_ALIASES),
    "claim_lease": _positive_seconds,
    "rescan_seconds": _seconds,
    "send_between": _window,
}
_CREDITS_SCHEMA: dict[str, Converter] = {"low_warning": _count, "daily_page_limit": _count}


def _files_schema(base: Path) -> dict[str, Converter]:
    state_dir = _folder(base, empty_means=default_state_dir().resolve())
    folders = {name: _folder(base) for name in _FOLDER_KEYS}
    return folders | {
        "after_success": _choice(AfterSuccess),
        "state_dir": state_dir,
        "history_days": _count,
    }


def _after_success(value: Any) -> str:
    """As in [files], but kept as its text: the job's Rule is journaled as text."""
    return cast(AfterSuccess, _choice(AfterSuccess)(value)).value


def _name_template(value: Any) -> str:
    template = _text(value)
    problem = template_problem(template)
    if problem is not None:
        raise _Invalid(f"{template!r} {problem}")
    return template


# What an [[inbox]] may set for itself, with [watch] as the default for the watch settings.
_INBOX_WATCH_KEYS = ("patterns", "settle_seconds", "recursive", "send_between")


def _command(base: Path, fields: Mapping[str, str]) -> Converter:
    """A hook: an argument list whose program exists (made absolute) and whose fields are
    those this hook has; [] for none."""
    example = '["/usr/bin/lp", "{output}"]'

    def convert(value: Any) -> tuple[str, ...]:
        if value == []:
            return ()
        argv = _strings(value, f"a program and its arguments, like {example}")
        problem = command_problem(argv, fields)
        if problem is not None:
            raise _Invalid(problem)
        program = find_program(argv[0], base)
        if program is None:
            raise _Invalid(
                f"no program {argv[0]!r} that can be run was found (give its full path, "
                "and make sure it is executable)"
            )
        return (str(program), *argv[1:])

    return convert


def _inbox_schema(base: Path) -> dict[str, Converter]:
    folders = {name: _folder(base) for name in ("path", *_FOLDER_KEYS)}
    watch = {key: _WATCH_SCHEMA[key] for key in _INBOX_WATCH_KEYS}
    return (
        folders
        | {"outformat": _outformat, "lang": _lang, "ocr": _boolean}
        | {"after_success": _after_success, "name": _name_template}
        | watch
        | {
            "on_success": _command(base, SUCCESS_FIELDS),
            "on_failure": _command(base, FAILURE_FIELDS),
            "hook_seconds": _positive_seconds,
        }
    )


def _read_table(
    src: _Source, table: str, data: object, schema: Mapping[str, Converter], index: int = 0
) -> dict[str, Any]:
    """Convert every key of one table, refusing unknown keys and wrong values."""
    if not isinstance(data, dict):
        header = f"[[{table}]]" if index else f"[{table}]"
        raise src.fail(f"must be a table, written as {header} on a line of its own", table)
    values = {}
    for key, value in data.items():
        if key not in schema:
            allowed = f"unknown setting; allowed: {', '.join(schema)}{_suggest(key, schema)}"
            raise src.fail(allowed, table, key, index)
        try:
            values[key] = schema[key](value)
        except _Invalid as exc:
            raise src.fail(str(exc), table, key, index) from None
    return values


def _read_files(src: _Source, data: object, base: Path) -> FileSettings:
    schema = _files_schema(base)
    defaults = {key: schema[key](value) for key, value in _FILE_DEFAULTS.items()}
    return FileSettings(**defaults | _read_table(src, "files", data, schema))


def _read_inboxes(
    src: _Source, data: object, base: Path, files: FileSettings, watch: WatchSettings
) -> list[InboxRule]:
    if not isinstance(data, list):
        raise src.fail("write each inbox as [[inbox]] (double brackets), one per folder", "inbox")
    defaults = {name: getattr(files, name) for name in _FOLDER_KEYS} | _INBOX_DEFAULTS
    defaults |= {key: getattr(watch, key) for key in _INBOX_WATCH_KEYS}
    defaults["after_success"] = files.after_success.value
    inboxes = []
    for index, item in enumerate(data, 1):
        values = defaults | _read_table(src, "inbox", item, _inbox_schema(base), index)
        for key in ("path", "outformat"):
            if key not in values:
                message = "missing; every [[inbox]] needs path and outformat"
                raise src.fail(message, "inbox", key, index)
        inboxes.append(InboxRule(**values))
    return inboxes


# --- Folders that must stay apart -------------------------------------------------------------

Identity = tuple[int, int]  # (st_dev, st_ino): the same folder, whatever path leads to it
_ANOTHER_PATH = (
    "under another path (a symbolic link, a bind mount or a second mount of the same share, "
    "or a spelling that differs only in case)"
)
# Why each folder must be outside every inbox: what would happen to the files put there.
_LOOPS = {
    "outbox": "its results would be taken as new files, converted again and paid again, in a loop",
    "archive": "the originals archived there would be converted again and paid again, in a loop",
    "failed": "the files set aside there would be sent again and again, in a loop",
    "state_dir": "the daemon's journal and logs there would be taken as new files, in a loop",
}
_MOVE_IT = "set {key} to a folder outside every inbox"


@dataclass(frozen=True)
class _Place:
    """A folder by name and, as far as it exists yet, by identity: a folder not created yet
    can only turn out to be an inbox if its nearest existing folder is (or is inside) one."""

    path: Path  # resolved
    chain: tuple[Identity | None, ...]  # the nearest existing folder's identity, then its parents'
    missing: tuple[str, ...]  # the names below that folder, not created yet
    folds_case: bool  # whether that folder's file system ignores case (only asked when missing)

    def names_below(self, depth: int) -> tuple[str, ...]:
        """The names from the `depth`-th existing folder up (0: the nearest) down to this one."""
        existing = self.path.parts[: len(self.path.parts) - len(self.missing)]
        return (existing[len(existing) - depth :] if depth else ()) + self.missing


@dataclass(frozen=True)
class _Overlap:
    """How one folder lies in another: the same folder or inside it, and whether only the
    file system says so (the paths differ: another path leads to it)."""

    inside: bool
    another_path: bool


def _identity(path: Path, *, follow: bool = True) -> Identity | None:
    """None where there is nothing, or no inode number to tell (some shares report 0)."""
    try:
        info = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if info.st_ino else None


def _folds_case(folder: Path) -> bool:
    """Whether the file system holding this existing folder ignores case: one of its entries
    is looked up again by its name in swapped case. An entry of the folder, not the folder's
    own name, which belongs to the file system above when the folder is a mount point. With no
    entry to try, the system's usual file system decides (those of macOS and Windows ignore
    case)."""
    try:
        with os.scandir(folder) as entries:
            for entry in itertools.islice(entries, 32):
                swapped = entry.name.swapcase()
                if swapped != entry.name:
                    own = _identity(Path(entry.path), follow=False)
                    return own is not None and own == _identity(folder / swapped, follow=False)
    except OSError:
        pass
    return sys.platform in ("darwin", "win32")


def _folded(names: tuple[str, ...], fold: bool) -> tuple[str, ...]:
    return tuple(name.casefold() for name in names) if fold else names


def _place(path: Path) -> _Place:
    """Where a folder is; looked up once, since every folder is compared with every inbox."""
    lineage = (path, *path.parents)
    identities = [_identity(folder) for folder in lineage]
    depth = next((n for n, identity in enumerate(identities) if identity is not None), None)
    if depth is None:  # nothing could be looked at: the names alone decide
        return _Place(path, (), path.parts, False)
    missing = path.parts[len(path.parts) - depth :] if depth else ()
    folds = bool(missing) and _folds_case(lineage[depth])
    return _Place(path, tuple(identities[depth:]), missing, folds)


def _overlap(inner: _Place, outer: _Place) -> _Overlap | None:
    """Whether `inner` is `outer` or lies inside it: by name, else by identity (walking up
    from `inner`'s nearest existing folder, looking for `outer`'s nearest existing one, then
    for the names `outer` is still missing below it). One function for both, so the name and
    the identity checks can never disagree about what "inside" means."""
    if inner.path == outer.path or outer.path in inner.path.parents:
        return _Overlap(inside=inner.path != outer.path, another_path=False)
    if not outer.chain or outer.chain[0] is None:
        return None
    wanted = _folded(outer.missing, outer.folds_case)
    for depth, identity in enumerate(inner.chain):
        if identity == outer.chain[0]:
            below = inner.names_below(depth)
            if _folded(below[: len(wanted)], outer.folds_case) == wanted:
                return _Overlap(inside=len(below) > len(wanted), another_path=True)
    return None


def _relation(overlap: _Overlap, inbox: str, inbox_path: Path) -> str:
    """'is inside inbox[2]', or where only identity tells: 'is the same folder as inbox[2]
    (/its/path) under another path (...)'."""
    if not overlap.another_path:
        return f"is inside {inbox}" if overlap.inside else f"is the folder of {inbox}"
    if overlap.inside:
        return f"is inside {inbox} ({inbox_path}), reached {_ANOTHER_PATH}"
    return f"is the same folder as {inbox} ({inbox_path}) {_ANOTHER_PATH}"


def _inbox_clash(inbox: _Place, other: _Place, other_name: str) -> str | None:
    """Why an inbox cannot be watched beside an earlier one, or None: it is the same folder,
    or one is inside the other (either way round)."""
    overlap = _overlap(inbox, other) or _overlap(other, inbox)
    if overlap is None:
        return None
    how = f" {_ANOTHER_PATH}" if overlap.another_path else ""
    if overlap.inside:
        return f"nested with {other_name} ({other.path}){how}; inboxes cannot nest"
    seen = f" ({other.path}){how}" if overlap.another_path else ""
    return (
        f"same folder as {other_name}{seen}: each file there would be converted twice, and "
        "paid twice; name each folder once"
    )


def _check_folders(src: _Source, doc: dict[str, Any], config: Config) -> None:
    """Refuse a file watched by two inboxes, or output that would land back in an inbox:
    by name, and by identity, so that no other path to an inbox (a symbolic link, a bind or
    second mount, a different spelling of the same folder) slips through."""
    files_doc = doc.get("files", {})
    folders = [  # (table, index, key, folder, written in the file)
        ("files", 0, name, getattr(config.files, name), bool(files_doc.get(name)))
        for name in (*_FOLDER_KEYS, "state_dir")
    ]
    for index, (rule, raw) in enumerate(zip(config.inboxes, doc.get("inbox", []), strict=True), 1):
        folders += [("inbox", index, n, getattr(rule, n), True) for n in _FOLDER_KEYS if n in raw]
    places = {folder: _place(folder) for folder in {entry[3] for entry in folders}}
    inboxes = [_place(rule.path) for rule in config.inboxes]
    for index, inbox in enumerate(inboxes, 1):
        for other_index, other in enumerate(inboxes[: index - 1], 1):
            clash = _inbox_clash(inbox, other, f"inbox[{other_index}]")
            if clash is not None:
                raise src.fail(clash, "inbox", "path", index)
        for table, where, key, folder, written in folders:
            overlap = _overlap(places[folder], inbox)
            if overlap is None:
                continue
            if written:
                relation = _relation(overlap, f"inbox[{index}]", inbox.path)
                message = f"{folder} {relation}: {_LOOPS[key]}; {_MOVE_IT.format(key=key)}"
                raise src.fail(message, table, key, where)
            how = f", {_ANOTHER_PATH}" if overlap.another_path else ""
            message = (
                f"contains the default {key} folder {folder}{how}: {_LOOPS[key]}; move the "
                f"inbox, or {_MOVE_IT.format(key=key)} in [files]"
            )
            raise src.fail(message, "inbox", "path", index)


# --- Public entry points -------------------------------------------------------------------


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the rules file; PDFOCR_API_KEY in `env` overrides `api.key`. A key
    kept in the OS keyring is not read here (`watcher.keys.with_key` does, where a key is
    needed): reading a keyring may ask the desktop to unlock it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        message = "no rules file here; create one with `pdfocr-watcher init`"
        raise ConfigError(str(path), message) from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "is not UTF-8 text; save it as UTF-8") from None
    return parse_config(text, path, env)


def parse_config(
    text: str, source: Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Validate rules given as text; relative folders are taken from `source`'s folder."""
    env = os.environ if env is None else env
    src = _Source(str(source) if source else "<config>", text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE_RE.search(str(exc))
        line = int(found[1]) if found else len(src.lines) or None
        raise ConfigError(src.path, f"not valid TOML: {exc}", line=line) from None
    for table in doc:
        if table not in _TABLES:
            allowed = "[api], [watch], [files], [credits], [[inbox]]"
            raise src.fail(f"unknown table; allowed: {allowed}{_suggest(table, _TABLES)}", table)
    path = source.expanduser().absolute() if source else None
    base = path.parent if path else Path.cwd()
    api = ApiSettings(**_read_table(src, "api", doc.get("api", {}), _API_SCHEMA))
    if env.get(API_KEY_ENV, "").strip():
        api = dataclasses.replace(api, key=env[API_KEY_ENV].strip())
    files = _read_files(src, doc.get("files", {}), base)
    watch = WatchSettings(**_read_table(src, "watch", doc.get("watch", {}), _WATCH_SCHEMA))
    config = Config(
        path=path,
        api=api,
        watch=watch,
        files=files,
        credits=CreditSettings(
            **_read_table(src, "credits", doc.get("credits", {}), _CREDITS_SCHEMA)
        ),
        inboxes=tuple(_read_inboxes(src, doc.get("inbox", []), base, files, watch)),
    )
    _check_folders(src, doc, config)
    return config


_STARTER_HEADER = """\
# pdfocr-watcher rules file: which folders are watched and what each one converts to.
# Every setting, with its default and meaning, is explained in config.example.toml
# in the pdfocr-watcher project. Settings left out here keep their defaults.
# This file may hold your API key: keep it private (readable by you only).

"""
_STARTER_INBOXES = (("to-word", "docx"), ("to-excel", "xlsx"), ("to-text", "txt"))


def write_starter_config(path: Path, *, api_key: str = "", home: Path | None = None) -> Config:
    """Write a first rules file (mode 0600: it may hold the key) and create its folders.

    Only the folders and the key are written; other settings are left to their defaults so
    that a later release's better defaults reach users who never changed them.
    """
    root = (home or Path.home()).absolute() / "PDFOCR"
    data = {
        "api": {"key": api_key},
        "files": {name: str(root / name) for name in _FOLDER_KEYS},
        "inbox": [
            {"path": str(root / "inbox" / name), "outformat": fmt, "lang": "English", "ocr": True}
            for name, fmt in _STARTER_INBOXES
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        message = "already exists; edit it, or move it away to start afresh"
        raise ConfigError(str(path), message) from None
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
        out.write(_STARTER_HEADER + tomli_w.dumps(data))
    config = load_config(path)
    for folder in all_folders(config):
        folder.mkdir(parents=True, exist_ok=True)
    return config


def config_permission_warning(config: Config) -> str | None:
    """A one-line warning when other users can read an API key written in the rules file."""
    if os.name != "posix" or config.path is None:
        return None
    try:
        if not config.path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
            return None
        api = tomllib.loads(config.path.read_text(encoding="utf-8-sig")).get("api")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not (isinstance(api, dict) and isinstance(api.get("key"), str) and api["key"].strip()):
        return None
    quoted = shlex.quote(str(config.path))
    return f"{config.path} holds your API key and other users can read it; fix: chmod 600 {quoted}"
