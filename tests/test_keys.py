"""The API key: `init --api-key` on an existing rules file sets the key and keeps every other
byte; the key goes to the OS keyring when there is one (a real gnome-keyring in its own D-Bus
session here), else into the file; the reading order; and the key is never printed.

The suite's own processes have no keyring (conftest.py); the keyring tests start one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_daemon import wait_for
from test_faults import small_disk  # noqa: F401 (a fixture: a real tmpfs)

from watcher.cli import main
from watcher.config import load_config, parse_config
from watcher.errors import ConfigError
from watcher.keys import KEYRING_SERVICE, KeySource, edited_rules, key_source, with_key
from watcher.samplepdf import write_pdf
from watcher.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
KEY = "pk-7Hq2xW9mZ4vL0sT"  # never to be printed by any command
KEYRING_PASSWORD = "test-login-password"

# A rules file as a user leaves it: a byte-order mark, Windows line ends, comments everywhere,
# settings in an odd order and spacing.
ORIGINAL = (
    "\ufeff# my rules\r\n"
    "[watch]\r\n"
    "settle_seconds   = 1.5   # the scanner is slow\r\n"
    "\r\n"
    "[api]\r\n"
    "# from the account page\r\n"
    'key = "old-key"  # pasted 2026-11-03\r\n'
    'endpoint = "{endpoint}"\r\n'
    "\r\n"
    "[files]\r\n"
    'state_dir = "{state}"\r\n'
    'outbox = "{root}/outbox"\r\n'
    'archive = "{root}/archive"\r\n'
    'failed = "{root}/failed"\r\n'
    "[[inbox]]\r\n"
    'path = "{root}/inbox"  # the scanner drops here\r\n'
    'outformat = "txt"\r\n'
)


def users_rules(root: Path, endpoint: str = "https://pdfocr.org/ocrapiv1.html") -> Path:
    path = root / "config.toml"
    text = ORIGINAL.format(endpoint=endpoint, state=root / "state", root=root)
    path.write_bytes(text.encode("utf-8"))
    path.chmod(0o644)
    return path


def changed_lines(before: bytes, after: bytes) -> list[tuple[str, str]]:
    """The lines that differ (files of the same line count): what an edit touched."""
    old, new = before.split(b"\r\n"), after.split(b"\r\n")
    assert len(old) == len(new), (before, after)
    return [(a.decode(), b.decode()) for a, b in zip(old, new, strict=True) if a != b]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert KEY not in output
    return code, output


# -- without a keyring: the rules file holds the key -------------------------------------------


def test_without_a_keyring_init_sets_the_key_in_the_file_and_keeps_every_other_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = users_rules(tmp_path)
    before = rules.read_bytes()
    code, said = run(capsys, "init", "--api-key", KEY, "--config", str(rules))
    assert code == 0, said
    after = rules.read_bytes()
    assert changed_lines(before, after) == [
        ('key = "old-key"  # pasted 2026-11-03', f'key = "{KEY}"  # pasted 2026-11-03')
    ]
    assert after.startswith(b"\xef\xbb\xbf")  # the byte-order mark stays
    assert stat.S_IMODE(rules.stat().st_mode) == 0o600  # it holds a key now: the user's alone
    assert "No OS keyring could be used" in said and "pdfocr-watcher doctor" in said
    config = load_config(rules, env={})
    assert config.api.key == KEY and key_source(config, {}) is KeySource.RULES_FILE


def test_a_first_init_with_a_key_writes_the_starter_file_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    rules = tmp_path / "cfg" / "config.toml"
    code, said = run(capsys, "init", "--api-key", KEY, "--config", str(rules))
    assert code == 0, said
    assert f"Created {rules}" in said and "Saved the API key in" in said
    assert "Set your pdfocr.org API key" not in said  # not among the next steps: it is set
    assert stat.S_IMODE(rules.stat().st_mode) == 0o600
    config = load_config(rules, env={})
    assert config.api.key == KEY and (tmp_path / "PDFOCR" / "inbox" / "to-word").is_dir()
    code, said = run(capsys, "check", "--config", str(rules))
    assert code == 0 and "API key: in the rules file;" in said


def test_a_linked_rules_file_is_edited_where_it_is_and_stays_a_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = users_rules(tmp_path)
    link = tmp_path / "linked.toml"
    link.symlink_to(real)
    assert run(capsys, "init", "--api-key", KEY, "--config", str(link))[0] == 0
    assert link.is_symlink() and load_config(real, env={}).api.key == KEY


def test_a_rules_file_that_cannot_be_rewritten_is_said_in_words(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    disk: Path = request.getfixturevalue("small_disk")
    rules = users_rules(disk)
    before = rules.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    code, said = run(capsys, "init", "--api-key", KEY, "--config", str(rules))
    assert code == 2 and f"{rules}: cannot write it: Read-only file system" in said
    assert rules.read_bytes() == before


def test_init_without_a_key_on_an_existing_file_says_how_to_set_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = users_rules(tmp_path)
    before = rules.read_bytes()
    code, said = run(capsys, "init", "--config", str(rules))
    assert code == 2 and "pdfocr-watcher init --api-key KEY" in said
    code, said = run(capsys, "init", "--api-key", "two words", "--config", str(rules))
    assert code == 2 and "without spaces" in said
    assert rules.read_bytes() == before


def test_a_rules_file_whose_api_table_is_written_otherwise_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "config.toml"
    rules.write_text('api = { endpoint = "https://pdfocr.org/ocrapiv1.html" }\n', encoding="utf-8")
    before = rules.read_bytes()
    code, said = run(capsys, "init", "--api-key", KEY, "--config", str(rules))
    assert code == 2 and "write it yourself under [api]" in said
    assert rules.read_bytes() == before


def test_the_key_can_come_from_standard_input_out_of_the_shell_history(tmp_path: Path) -> None:
    rules = users_rules(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "init", "--api-key", "-", "--config", str(rules)],
        input=f"{KEY}\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    assert load_config(rules, env={}).api.key == KEY


@given(st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=60))
def test_any_key_is_written_so_that_it_reads_back_the_same(key: str) -> None:
    text = '[api]\nkey = "x"  # note\n[watch]\nrecursive = true\n'
    edited = edited_rules(Path("config.toml"), text, key=key)
    assert parse_config(edited, None, {}).api.key == key.strip()
    assert edited.endswith("  # note\n[watch]\nrecursive = true\n")


def test_a_new_api_table_is_added_at_the_end_when_there_is_none() -> None:
    text = "# mine\n[watch]\nrecursive = true"  # no line end at the end, either
    assert edited_rules(Path("c.toml"), text, key="k-1") == (
        '# mine\n[watch]\nrecursive = true\n\n[api]\nkey = "k-1"\n'
    )


def test_keyring_true_with_no_keyring_to_read_is_refused_not_taken_for_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon must not fall back to the sandbox because the keyring is locked or gone."""
    rules = users_rules(tmp_path)
    text = rules.read_text(encoding="utf-8-sig").replace('key = "old-key"', "keyring = true")
    rules.write_text(text, encoding="utf-8")
    config = load_config(rules, env={})
    assert key_source(config, {}) is KeySource.KEYRING
    with pytest.raises(ConfigError) as refused:
        with_key(config, {})
    assert refused.value.key == "api.keyring" and refused.value.line == 7
    assert "init --api-key KEY" in refused.value.message
    code, said = run(capsys, "run", "--no-tray", "--config", str(rules))
    assert code == 2 and "api.keyring" in said and "SANDBOX" not in said
    # The environment comes first in the reading order, keyring or not.
    environment = {"PDFOCR_API_KEY": KEY}
    assert with_key(load_config(rules, env=environment), environment).api.key == KEY


# -- a real gnome-keyring in its own D-Bus session ---------------------------------------------

needs_keyring = pytest.mark.skipif(
    not (shutil.which("gnome-keyring-daemon") and shutil.which("dbus-run-session")),
    reason="gnome-keyring-daemon or dbus-run-session missing (Debian: gnome-keyring, dbus)",
)


def in_desktop_session(tmp_path: Path, script: str, *, unlocked: bool) -> str:
    """Runs `script` (sh) in a fresh D-Bus session of its own, as a desktop login has one:
    with a gnome-keyring unlocked by the login password, or with none unlocked (and no
    display to ask for a password on). Returns what the script printed."""
    home = tmp_path / "session-home"
    runtime = tmp_path / "session-runtime"
    for folder in (home, runtime):
        folder.mkdir(mode=0o700, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS", "PDFOCR_API_KEY")
        and name not in ("DISPLAY", "WAYLAND_DISPLAY")
    }
    env |= {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "PYTHONPATH": str(ROOT),
        "PYTHON": sys.executable,
        "KEYRING_PASSWORD": KEYRING_PASSWORD,
    }
    unlock = (
        'printf "%s\\n" "$KEYRING_PASSWORD" | gnome-keyring-daemon --unlock '
        "--components=secrets >/dev/null\n"
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-ec", (unlock if unlocked else "") + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert KEY not in result.stdout + result.stderr
    return result.stdout


@needs_keyring
def test_init_puts_the_key_in_a_real_keyring_and_every_command_reads_it_from_there(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    service = make_sandbox(key=KEY)
    rules = users_rules(tmp_path, service.url)
    before = rules.read_bytes()
    scan = write_pdf(tmp_path / "scan.pdf", ["Delivery note 44"])
    said = in_desktop_session(
        tmp_path,
        f"""
        "$PYTHON" -m watcher init --api-key "{KEY}" --config "{rules}"
        echo "=== stored"
        "$PYTHON" -c 'import keyring; print(keyring.get_password("{KEYRING_SERVICE}",
            "{rules}") == "{KEY}")'
        echo "=== check"
        "$PYTHON" -m watcher check --config "{rules}"
        echo "=== doctor"
        "$PYTHON" -m watcher doctor --config "{rules}" || true
        echo "=== convert"
        "$PYTHON" -m watcher convert "{scan}" --to txt --outdir "{tmp_path}" --config "{rules}"
        """,
        unlocked=True,
    )
    init, stored, check, doctor, convert = said.split("=== ")
    assert "Saved the API key in the OS keyring" in init
    assert stored.split() == ["stored", "True"]
    assert "API key: in the OS keyring;" in check
    assert "set (from the OS keyring); the service accepts it" in doctor
    assert "done" in convert and "Delivery note 44" in (tmp_path / "scan.txt").read_text()
    assert len(service.ledger()) == 1  # the key the keyring gave was the one the service took

    # The file now says where the key is; nothing else in it changed, and no key is in it.
    after = rules.read_bytes()
    [(old, new)] = changed_lines(before, after)
    assert old.startswith('key = "old-key"') and new.startswith("keyring = true  # ")
    assert b"old-key" not in after and KEY.encode() not in after
    assert load_config(rules, env={}).api.key == ""  # a plain load never opens the keyring


@needs_keyring
def test_a_keyring_that_cannot_be_unlocked_leaves_the_key_in_the_file(tmp_path: Path) -> None:
    rules = users_rules(tmp_path)
    said = in_desktop_session(
        tmp_path, f'"$PYTHON" -m watcher init --api-key "{KEY}" --config "{rules}"', unlocked=False
    )
    assert "No OS keyring could be used: the OS keyring refused it" in said
    assert load_config(rules, env={}).api.key == KEY
    assert stat.S_IMODE(rules.stat().st_mode) == 0o600


@needs_keyring
def test_a_running_daemon_takes_a_corrected_key_from_the_keyring_at_once(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    """The rules file already says `keyring = true`: setting the key again leaves it the
    same, yet the running daemon reads the new key from the keyring and its held queue goes."""
    service = make_sandbox(key=KEY)
    rules = users_rules(tmp_path, service.url)
    text = rules.read_text(encoding="utf-8-sig").replace(
        "settle_seconds   = 1.5", "settle_seconds = 0.2"
    )
    rules.write_text(text, encoding="utf-8")
    write_pdf(tmp_path / "inbox" / "order.pdf", ["Order 12"])
    go, log = tmp_path / "go", tmp_path / "state" / "pdfocr-watcher.log"
    script = f"""
        "$PYTHON" -m watcher init --api-key wrong-key-1 --config "{rules}" >/dev/null
        "$PYTHON" -m watcher run --no-tray --config "{rules}" 2>/dev/null &
        daemon=$!
        trap 'kill $daemon 2>/dev/null || true' EXIT
        tries=0
        until [ -e "{go}" ]; do
            tries=$((tries + 1)); [ $tries -lt 600 ] || exit 3; sleep 0.1
        done
        "$PYTHON" -m watcher init --api-key "{KEY}" --config "{rules}"
        tries=0
        until [ -e "{tmp_path / "outbox" / "order.txt"}" ]; do
            tries=$((tries + 1)); [ $tries -lt 600 ] || exit 4; sleep 0.1
        done
    """
    session = threading.Thread(
        target=lambda: said.append(in_desktop_session(tmp_path, script, unlocked=True))
    )
    said: list[str] = []
    session.start()
    try:
        wait_for(
            lambda: log.exists() and "API key does not exist" in log.read_text(encoding="utf-8"),
            timeout=60,
            what="the queue held for the wrong key",
        )
        assert service.ledger() == []
        rules_before = rules.read_bytes()
    finally:
        go.touch()
        session.join(timeout=150)
    assert said and "Saved the API key in the OS keyring" in said[0]
    assert rules.read_bytes() == rules_before  # the file said keyring = true already
    assert len(service.ledger()) == 1
