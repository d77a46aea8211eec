"""The README's promises that code can check: CI runs its test command, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from watcher.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands.*?```sh\n(.*?)```", readme, re.S)
    assert block, "README.md lost its two set-up commands"
    return [line for line in block[1].splitlines() if line and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    """Both do their own set-up (watcher/bootstrap.py; tests/test_bootstrap.py runs them from a
    fresh clone): no pip step, which Debian's and Ubuntu's own python3 refuse."""
    commands = setup_commands()
    assert len(commands) == 2
    run, test = commands
    assert run.startswith("python3 -m watcher run")
    assert test.startswith("python3 -m watcher.bootstrap pytest")
    assert not any("pip" in command.split() for command in commands)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in ci, ".ci/run must run the README's test command verbatim"


def test_every_command_the_readme_shows_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippets = re.findall(r"`([^`\n]+)`", readme) + re.findall(
        r"^(pdfocr-watcher .*)$", readme, re.M
    )
    shown = {
        m[1]
        for text in snippets
        if (m := re.match(r"(?:pdfocr-watcher|python3 -m watcher) (\w+)", text))
    }
    shown |= set(re.findall(r"^\| `(\w+)", readme, re.M))  # the command table
    commands = next(action for action in build_parser()._actions if action.choices)
    assert {"run", "init", "check", "convert", "status", "retry", "sandbox"} <= shown
    assert shown <= set(commands.choices)
