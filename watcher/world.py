"""The two worlds a daemon runs in: live (pdfocr.org, real money) and the sandbox (the
stand-in on this computer, play money).

Each world keeps its own journal, history and log: the sandbox's under the `sandbox` folder
of the state folder. So a file tried on the sandbox is never given the sandbox's made-up
result in live use (the journal hands a file the result its bytes got before), and no
play-money page is ever counted in the real spend. One lock, the live state folder's, is
held by either: both watch the same inboxes, so only one of them may run at a time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from watcher.config import Config
from watcher.journal import JOURNAL_FILE_NAME

SANDBOX_FOLDER = "sandbox"
SANDBOX_SERVICE_FOLDER = "service"  # the stand-in service's own files (its results)


def sandbox_state_dir(state_dir: Path) -> Path:
    """The sandbox world's state folder, inside the live one."""
    return state_dir / SANDBOX_FOLDER


def in_sandbox(config: Config, endpoint: str, key: str) -> Config:
    """The rules as a sandbox daemon runs them: the sandbox's address and key, and the
    sandbox world's own state folder."""
    return replace(
        config,
        api=replace(config.api, endpoint=endpoint, key=key),
        files=replace(config.files, state_dir=sandbox_state_dir(config.files.state_dir)),
    )


def has_sandbox_journal(state_dir: Path) -> bool:
    return (sandbox_state_dir(state_dir) / JOURNAL_FILE_NAME).exists()
