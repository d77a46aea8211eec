"""Logging set-up: a rotating file in the state folder, stderr when there is one, and no secrets.

Redaction happens in the formatter, after the message and any traceback are rendered, so a key
that reaches a record by any road (a URL in a library's debug line, an exception's text) is
replaced before it is written anywhere.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path

LOG_FILE_NAME = "pdfocr-watcher.log"
REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries whose debug output drowns ours unless --verbose asks for it.
NOISY_LOGGERS = ("urllib3", "watchdog", "PIL")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Makes every later log line hide `value`. Short values are skipped: redacting "a"
    everywhere would garble the log and protects nothing."""
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Every handler (and the log file's size check) asks for the same text: render once.
        cached = record.__dict__.get("_watcher_text")
        if cached is None or cached[0] is not self:
            cached = (self, redact(super().format(record)))
            record.__dict__["_watcher_text"] = cached
        return cached[1]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record arrives: None under pythonw or a
    windowed build (then nothing is written), replaced by test runners, restored later."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr is not None:
            super().emit(record)


class LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log in our own state folder. The standard size check asks the file for
    its position and makes sure it is a regular file (ours always is): three system calls
    for every line. This one counts what it writes, and asks once per file."""

    _size: int | None = None  # of the open file, in bytes

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
