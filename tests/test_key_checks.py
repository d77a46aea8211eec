"""Checks of the key before it costs anything: `doctor` asks the service about the key
without spending, `autostart enable` refuses a rules file without one, and `autostart status`
names the entry it found. Through a real sandbox on 127.0.0.1 and a temporary HOME."""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import write_starter_config
from watcher.sandbox import Sandbox

KEY = "pk-live-3c9d0e7a1f"  # never to be printed
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="autostart is exercised for real on Linux"
)


def rules_for(home: Path, endpoint: str, key: str) -> Path:
    path = home / "rules" / "config.toml"
    write_starter_config(path, api_key=key, home=home)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[api]\n", f'[api]\nendpoint = "{endpoint}"\n'), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert KEY not in output
    return code, output


def key_line(report: str) -> str:
    [line] = [line for line in report.splitlines() if re.match(r"^\S+ +API key ", line)]
    return line


# -- the service tells a bad key from a good one, at no cost ------------------------------------


def status_query(box: Sandbox, key: str) -> dict[str, object]:
    """A status query for a name no upload ever had, as doctor sends it."""
    fields = {"apikey": key, "filename": "doctor-probe-0a1b2c3d4e.txt", "outformat": "txt"}
    with urllib.request.urlopen(f"{box.url}?{urllib.parse.urlencode(fields)}") as reply:
        answer: dict[str, object] = json.loads(reply.read())
    return answer


def test_the_sandbox_answers_a_status_query_as_api_md_says_the_service_does(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    box = make_sandbox(key=KEY)
    bad = status_query(box, "not-the-key")
    assert bad["retcode"] == "404" and "API key does not exist" in str(bad["msg"])
    good = status_query(box, KEY)
    assert good["retcode"] == "404" and "File not found" in str(good["msg"])


def test_doctor_says_a_good_key_is_accepted_and_nothing_is_charged(
    home: Path, make_sandbox: Callable[..., Sandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    box = make_sandbox(key=KEY)
    rules = rules_for(home, box.url, KEY)
    code, report = run(capsys, "doctor", "--config", str(rules))
    assert code == 0, report
    assert key_line(report).split(None, 1)[0] == "ok"
    assert "set (from the rules file); the service accepts it (asked without spending)" in report
    assert box.ledger() == [] and box.available_pages == 1000


def test_doctor_says_plainly_that_a_wrong_key_is_wrong(
    home: Path, make_sandbox: Callable[..., Sandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    box = make_sandbox(key="the-right-one")
    rules = rules_for(home, box.url, KEY)
    code, report = run(capsys, "doctor", "--config", str(rules))
    assert code == 1
    line = key_line(report)
    assert line.startswith("PROBLEM") and "WRONG" in line
    assert "API key does not exist" in line and "pdfocr-watcher init --api-key KEY" in line
    assert box.ledger() == []


def test_doctor_does_not_call_a_key_wrong_when_the_service_cannot_be_reached(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = rules_for(home, "http://127.0.0.1:9/ocrapiv1.html", KEY)
    _code, report = run(capsys, "doctor", "--config", str(rules))
    line = key_line(report)
    assert line.startswith("note") and "not checked, the service did not answer" in line


def test_doctor_without_a_key_says_how_to_set_one(
    home: Path, make_sandbox: Callable[..., Sandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    rules = rules_for(home, make_sandbox().url, "")
    code, report = run(capsys, "doctor", "--config", str(rules))
    assert code == 1
    line = key_line(report)
    assert line.startswith("PROBLEM") and "init --api-key KEY" in line and "SANDBOX" in line


# -- autostart ----------------------------------------------------------------------------------


@linux_only
def test_autostart_enable_refuses_a_rules_file_without_a_key(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = rules_for(home, "https://pdfocr.org/ocrapiv1.html", "")
    code, said = run(capsys, "autostart", "enable", "--config", str(rules))
    assert code == 1
    assert "holds no API key" in said and "SANDBOX" in said
    assert f"pdfocr-watcher init --api-key KEY --config {rules}" in said
    assert not (home / "xdg-config" / "autostart").exists()

    # A key in this shell's environment is no key at login.
    monkeypatch.setenv("PDFOCR_API_KEY", KEY)
    code, said = run(capsys, "autostart", "enable", "--config", str(rules))
    assert code == 1 and "a login session does not have it" in said
    assert not (home / "xdg-config" / "autostart").exists()


@linux_only
def test_autostart_enable_refuses_a_keyring_key_it_cannot_read(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = rules_for(home, "https://pdfocr.org/ocrapiv1.html", "")
    text = rules.read_text(encoding="utf-8").replace('key = ""', "keyring = true")
    rules.write_text(text, encoding="utf-8")
    code, said = run(capsys, "autostart", "enable", "--config", str(rules))
    assert code == 1 and "api.keyring" in said and "would stop at every login" in said
    assert not (home / "xdg-config" / "autostart").exists()


@linux_only
def test_autostart_status_names_the_entry_it_found(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = run(capsys, "autostart", "status")
    assert code == 1 and said.startswith("Autostart (xdg): not enabled; no entry found")

    rules = rules_for(home, "https://pdfocr.org/ocrapiv1.html", KEY)
    assert run(capsys, "autostart", "enable", "--config", str(rules))[0] == 0
    desktop = home / "xdg-config" / "autostart" / "pdfocr-watcher.desktop"
    code, said = run(capsys, "autostart", "status")
    assert code == 0
    assert said.splitlines()[0] == f"Autostart (xdg): enabled by the desktop entry {desktop}"
    assert f"desktop entry: {desktop} (found)" in said and f"--config {rules}" in said
