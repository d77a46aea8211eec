"""The two worlds a daemon runs in: live (pdfocr.org, real money) and the sandbox (the
stand-in on this computer, play money).

Each world keeps its own journal, history and log: the sandbox's under the `sandbox` folder
of the state folder. So a file tried on the sandbox is never given the sandbox's made-up
result in live use (the journal hands a file the result its bytes got before), and no
play-money page is ever counted in the real spend. One lock, the live state folder's, is
held by either: both watch the same inboxes, so only one of them may run at a time.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from watcher.config import Config
from watcher.journal import JOURNAL_FILE_NAME, META_MODE, Journal

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


def _on_this_computer(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def set_apart_old_sandbox_journal(config: Config) -> Path | None:
    """Before the worlds were apart, the sandbox wrote into the live journal. A live journal
    that holds nothing but the sandbox's work (its last run was the sandbox's, every result
    it knows came from this computer, nothing is under way) while the live service is
    elsewhere becomes the sandbox's journal, so that none of its made-up results is ever
    taken for a real one: the usual way from the demo to real use. A journal with any real
    work in it is left as it is. Returns where it went, if it moved. Call it holding the
    state folder's lock."""
    state_dir = config.files.state_dir
    live = state_dir / JOURNAL_FILE_NAME
    target = sandbox_state_dir(state_dir) / JOURNAL_FILE_NAME
    if _on_this_computer(config.api.endpoint) or not live.exists() or target.exists():
        return None
    journal = Journal(live)
    try:
        only_sandbox = journal.get_meta(META_MODE) == "sandbox" and all(
            job.state.is_finished and (job.link is None or _on_this_computer(job.link))
            for job in journal.jobs()
        )
    finally:
        journal.close()
    if not only_sandbox:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", ""):  # the main file last: it alone marks a journal there
        part = live.with_name(live.name + suffix)
        if part.exists():
            os.replace(part, target.with_name(target.name + suffix))
    return target


def journal_world(state_dir: Path, *, sandbox: bool) -> tuple[Path, bool]:
    """The state folder whose journal a command reads, and whether it is the sandbox's: the
    sandbox's when asked (`--sandbox`), or when only it has a journal (a first look after
    the demo)."""
    if sandbox or (not (state_dir / JOURNAL_FILE_NAME).exists() and has_sandbox_journal(state_dir)):
        return sandbox_state_dir(state_dir), True
    return state_dir, False
