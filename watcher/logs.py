"""Logging set-up: a rotating file in the state folder, stderr when there is one, and no secrets.

Redaction happens in the formatter, after the message and any traceback are rendered, so a key
that reaches a record by any road (a URL in a library's debug line, an exception's text) is
replaced before it is written anywhere: raw, and in every form an encoder gives it (percent-
encoded with upper- or lower-case hex, "+" for spaces, JSON-escaped). Lines from libraries
(urllib3's request lines) lose the query part of any URL as well: it holds the key and the
file's name, whatever the key looks like. The log file is the user's alone (0600), and so are
its rotated copies.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import quote, quote_plus

LOG_FILE_NAME = "pdfocr-watcher.log"
REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries whose debug output drowns ours unless --verbose asks for it.
NOISY_LOGGERS = ("urllib3", "watchdog", "PIL")
OUR_LOGGER = "watcher"  # and its children: the only lines whose URLs keep their queries
LOG_FILE_MODE = 0o600

# The characters requests' requote_uri leaves as they are: a URL it re-quotes keeps them raw.
_REQUOTE_SAFE = "!#$%&'()*+,/:;=?@[]~"
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")
_JSON_HEX = re.compile(r"(?<=\\u)[0-9a-f]{4}")
# A URL's query: from "?" up to whitespace or a quote (urllib3 quotes its request line).
_QUERY = re.compile(r"\?[^\s\"']+")

_secrets: set[str] = set()
_forms: tuple[str, ...] = ()  # every secret's every form, longest first; replaced whole
_secrets_lock = threading.Lock()


def encoded_forms(value: str) -> set[str]:
    """`value` as it may appear in a line: raw; percent-encoded as quote, quote_plus and
    requests' re-quoting give it, with upper- and lower-case hex; and JSON-escaped (ASCII
    or not, upper- or lower-case hex, with "/" escaped or not)."""
    forms = {value}
    for encode in (quote, quote_plus):
        for safe in ("", "/", _REQUOTE_SAFE):
            encoded = encode(value, safe=safe)
            forms.add(encoded)
            forms.add(_PERCENT_HEX.sub(lambda hexed: hexed.group(0).lower(), encoded))
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        for variant in (escaped, _JSON_HEX.sub(lambda hexed: hexed.group(0).upper(), escaped)):
            forms.add(variant)
            forms.add(variant.replace("/", "\\/"))
    return forms


def register_secret(value: str) -> None:
    """Makes every later log line hide `value`, in any of its encoded forms. Short values
    are skipped: redacting "a" everywhere would garble the log and protects nothing."""
    global _forms
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)
            every = set().union(*(encoded_forms(secret) for secret in _secrets))
            _forms = tuple(sorted(every, key=len, reverse=True))


def redact(text: str) -> str:
    for form in _forms:  # a tuple, replaced whole: no lock needed to read it
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def strip_queries(text: str) -> str:
    """Every URL's query part removed: "GET /ocrapiv1.html?apikey=… HTTP/1.1" → "GET
    /ocrapiv1.html HTTP/1.1"."""
    return _QUERY.sub("", text) if "?" in text else text


def _is_ours(logger_name: str) -> bool:
    return logger_name == OUR_LOGGER or logger_name.startswith(OUR_LOGGER + ".")


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Every handler (and the log file's size check) asks for the same text: render once.
        cached = record.__dict__.get("_watcher_text")
        if cached is None or cached[0] is not self:
            text = redact(super().format(record))
            if not _is_ours(record.name):
                text = strip_queries(text)
            cached = (self, text)
            record.__dict__["_watcher_text"] = cached
        return cached[1]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record arrives: None under pythonw or a
    windowed build (then nothing is written), replaced by test runners, restored later."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO | None:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr is not None:
            super().emit(record)


def _private_opener(path: str, flags: int) -> int:
    """Opens as `open` would, creating the file 0600 whatever the umask, and makes an
    existing file (an older version's, 0644) 0600 too. A file someone else owns (a run
    as root) keeps its mode: only its owner may change it, and logging goes on."""
    fd = os.open(path, flags, LOG_FILE_MODE)
    if hasattr(os, "fchmod"):  # POSIX; Windows guards the file with its folder's ACL
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, LOG_FILE_MODE)
    return fd


class LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log in our own state folder, readable by its owner only (0600), like
    its rotated copies: it names the user's files and holds download links.

    The standard size check asks the file for its position and makes sure it is a regular
    file (ours always is): three system calls for every line. This one counts what it
    writes, and asks once per file."""

    _size: int | None = None  # of the open file, in bytes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Backups are renamed from files opened 0600 (by `_open`), unless an older version
        # made them: those are tightened once, here.
        if hasattr(os, "fchmod"):
            for number in range(1, self.backupCount + 1):
                backup = self.rotation_filename(f"{self.baseFilename}.{number}")
                # Absent (the usual case), or not ours to change: left as it is.
                with contextlib.suppress(OSError):
                    os.chmod(backup, LOG_FILE_MODE)

    def _open(self) -> io.TextIOWrapper:
        """The file, opened as the standard handler opens it, but 0600 (`_private_opener`)."""
        stream = open(  # noqa: SIM115 - the handler owns and closes it
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=_private_opener,
        )
        return cast(io.TextIOWrapper, stream)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        if self._size is None:
            self._size = self.stream.tell()
        line = self.format(record).encode(self.encoding or "utf-8", "replace")
        self._size += len(line) + len(os.linesep)
        return 0 < self.maxBytes <= self._size

    def doRollover(self) -> None:
        super().doRollover()
        self._size = None


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_FILE_NAME


def setup_logging(state_dir: Path | None, *, verbose: bool = False) -> None:
    """Configures the root logger (a later call replaces the handlers)."""
    root = logging.getLogger()
    # FORMAT names no process or thread: a record need not ask the OS for them (getpid is a
    # system call, a hand-over of the GIL on a busy daemon, twice per file).
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = RedactingFormatter(FORMAT)
    stream = _StderrHandler()
    stream.setFormatter(formatter)
    stream.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(stream)
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        rotating = LogFile(
            log_path(state_dir), maxBytes=2 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
        rotating.setFormatter(formatter)
        rotating.setLevel(logging.DEBUG)
        root.addHandler(rotating)
    root.setLevel(logging.DEBUG)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # watchdog's debug lines are about our own watching; with the log in a watched folder
    # (the state folder beside the rules file), each line written would cause the next.
    logging.getLogger("watchdog").setLevel(logging.INFO if verbose else logging.WARNING)
