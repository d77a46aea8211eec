"""Shared fixtures: a local pdfocr.org sandbox and real PDFs with a text layer."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from watcher.config import load_config
from watcher.daemon import Daemon
from watcher.logs import NOISY_LOGGERS
from watcher.samplepdf import write_pdf
from watcher.sandbox import Sandbox

# No test may reach the developer's own OS keyring (a key stored there would be overwritten):
# every process of the suite has none, unless a test starts its own (tests/test_keys.py).
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


@contextmanager
def umask(value: int) -> Iterator[None]:
    """The process umask set to `value` for the block (tests of the modes files get)."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Commands under test configure the root logger; each test starts from the same one."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in ("", *NOISY_LOGGERS)}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME and XDG_CONFIG_HOME, so nothing is written in the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.delenv("PDFOCR_API_KEY", raising=False)
    return home


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Factory for started sandboxes with custom settings (Sandbox keyword arguments);
    every sandbox it made is stopped after the test."""
    started: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        options.setdefault("workdir", tmp_path / f"sandbox-{len(started)}")
        box = Sandbox(**options).start()
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A started sandbox on 127.0.0.1 (free port), key "sandbox-key", 1000 pages of credit."""
    return make_sandbox()


@pytest.fixture
def make_pdf_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a real PDF: make_pdf_file("scan.pdf", pages=["page 1", "page 2"]).

    folder is relative to tmp_path unless absolute; missing folders are created.
    """

    def make(
        name: str = "sample.pdf",
        pages: Sequence[str] = ("Hello from the sample PDF",),
        folder: str | Path | None = None,
    ) -> Path:
        base = tmp_path if folder is None else tmp_path / folder  # an absolute folder wins
        return write_pdf(base / name, list(pages))

    return make


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(rules: Path) -> Daemon:
        daemon = Daemon(load_config(rules))
        daemon.start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()
        daemon.close()
