"""Packaging and first run: the built wheel installs and runs in a fresh virtualenv, the
autostart entries are valid for each OS, and `doctor` reports what is wrong without the key.

External validators are used where the machine has them: desktop-file-validate (Debian's
desktop-file-utils, installed by .ci/run) and systemd-analyze (from systemd).
"""

from __future__ import annotations

import argparse
import os
import plistlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from watcher import __version__, autostart, doctor
from watcher.config import write_starter_config
from watcher.instance import InstanceLock
from watcher.journal import META_PAGES, META_PAGES_AT, Journal
from watcher.sandbox import Sandbox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
LINUX = sys.platform.startswith("linux")
SECRET = "sk-live-0123456789abcdef"  # never to be printed by any command

linux_only = pytest.mark.skipif(not LINUX, reason="autostart is exercised for real on Linux")


def parser() -> argparse.ArgumentParser:
    """The command line as cli.py builds it, with the two commands registered through their
    own `register`, so these tests do not depend on cli.py being wired yet."""
    parser = argparse.ArgumentParser(prog="pdfocr-watcher")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="PATH")
    common.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    autostart.register(commands, common)
    doctor.register(commands, common)
    return parser


def run_command(*argv: str) -> int:
    args = parser().parse_args(list(argv))
    return int(args.handler(args))


@pytest.fixture
def rules(home: Path) -> Path:
    """A starter rules file with a key in the temporary HOME (autostart refuses a keyless one)."""
    path = home / "xdg-config" / "pdfocr-watcher" / "config.toml"
    write_starter_config(path, api_key=SECRET, home=home)
    return path


def desktop_file_validate(path: Path) -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate not installed (Debian package desktop-file-utils)")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def systemd_verify(unit: Path, runtime_dir: Path, env: dict[str, str] | None = None) -> None:
    """`systemd-analyze --user verify`: it prints nothing for a valid unit, and checks that
    ExecStart's program exists, so it also proves the quoting was understood."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, **(env or {}), "XDG_RUNTIME_DIR": str(runtime_dir)}
    result = subprocess.run(
        [tool, "--user", "verify", str(unit)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def executable(path: Path) -> Path:
    """A real program at an awkward path, for validators that check ExecStart exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


# -- autostart on Linux, for real, in a temporary HOME ----------------------------------------


@linux_only
def test_enable_writes_a_valid_desktop_entry_status_reports_it_and_disable_removes_it(
    home: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desktop = home / "xdg-config" / "autostart" / "pdfocr-watcher.desktop"
    assert run_command("autostart", "status", "--config", str(rules)) == 1

    assert run_command("autostart", "enable", "--config", str(rules)) == 0
    assert desktop.is_file()
    assert not (home / "xdg-config" / "systemd").exists()  # one kind only, by default
    desktop_file_validate(desktop)
    command = autostart.read_command(autostart.DESKTOP, desktop)
    assert command is not None and command[-3:] == ("run", "--config", str(rules))
    assert Path(command[0]).is_absolute() and os.access(command[0], os.X_OK)

    capsys.readouterr()
    assert run_command("autostart", "status", "--config", str(rules)) == 0
    out = capsys.readouterr().out
    assert "enabled" in out and str(desktop) in out and f"--config {rules}" in out

    assert run_command("autostart", "disable") == 0
    assert not desktop.exists()
    assert run_command("autostart", "status") == 1
    assert "not enabled" in capsys.readouterr().out


@linux_only
def test_enable_systemd_writes_a_valid_unit_and_its_link_instead_of_the_desktop_entry(
    home: Path, rules: Path, tmp_path: Path
) -> None:
    config = home / "xdg-config"
    unit = config / "systemd" / "user" / "pdfocr-watcher.service"
    link = config / "systemd" / "user" / "graphical-session.target.wants" / "pdfocr-watcher.service"
    assert run_command("autostart", "enable", "--config", str(rules)) == 0
    assert run_command("autostart", "enable", "--systemd", "--config", str(rules)) == 0

    assert unit.is_file() and link.is_symlink() and link.resolve() == unit.resolve()
    assert not (config / "autostart" / "pdfocr-watcher.desktop").exists()
    text = unit.read_text(encoding="utf-8")
    assert "After=graphical-session.target" in text and "WantedBy=graphical-session.target" in text
    systemd_verify(unit, tmp_path / "runtime")
    states = autostart.entry_states("linux", home, os.environ)
    assert autostart.is_enabled(states)
    assert {s.entry.kind for s in states if s.present} == {
        autostart.SYSTEMD,
        autostart.SYSTEMD_LINK,
    }

    assert run_command("autostart", "disable") == 0
    assert not unit.exists() and not link.is_symlink()


@linux_only
def test_a_unit_without_its_link_starts_nothing_so_it_is_not_enabled(home: Path) -> None:
    entries = autostart.entries_for(
        "linux", home, os.environ, program=["/bin/true"], config=home / "c.toml", systemd=True
    )
    autostart.write_entry(entries[0])  # the unit only
    assert not autostart.is_enabled(autostart.entry_states("linux", home, os.environ))


@linux_only
def test_awkward_paths_are_quoted_so_both_validators_and_the_parsers_agree(
    home: Path, tmp_path: Path
) -> None:
    program = executable(tmp_path / "my apps %h" / "pdf $HOME watcher")
    config = tmp_path / 'rules 100% "$x"' / "it's a \\ back`slash.toml"
    argv = autostart.daemon_command([str(program)], config)
    assert autostart.parse_desktop_exec(autostart.desktop_exec(argv)) == argv
    assert autostart.parse_systemd_exec(autostart.systemd_exec(argv)) == argv

    [desktop] = autostart.entries_for("linux", home, {}, program=[str(program)], config=config)
    unit, _link = autostart.entries_for(
        "linux", home, {}, program=[str(program)], config=config, systemd=True
    )
    for entry in (desktop, unit):
        autostart.write_entry(entry)
    desktop_file_validate(Path(desktop.path))
    assert autostart.read_command(autostart.DESKTOP, Path(desktop.path)) == tuple(argv)
    assert autostart.read_command(autostart.SYSTEMD, Path(unit.path)) == tuple(argv)
    systemd_verify(Path(unit.path), tmp_path / "runtime")


def test_a_desktop_entry_takes_any_program_path_but_systemd_refuses_quotes() -> None:
    argv = ['/opt/pdf "watcher" `$HOME`\\x/pdfocr-watcher', "run"]
    assert autostart.parse_desktop_exec(autostart.desktop_exec(argv)) == argv
    with pytest.raises(ValueError, match="quotes or backslashes"):
        autostart.systemd_exec(argv)


def test_a_line_break_in_a_path_is_refused_rather_than_written() -> None:
    with pytest.raises(ValueError, match="line break"):
        autostart.desktop_exec(["/bin/true", "a\nb"])
    with pytest.raises(ValueError, match="line break"):
        autostart.systemd_exec(["/bin/true", "a\nb"])


def test_xdg_config_home_is_honoured_unless_relative(tmp_path: Path) -> None:
    home = tmp_path / "home"
    absolute = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    [entry] = autostart.entries_for("linux", home, absolute, program=["/x"], config=Path("/c"))
    assert entry.path == PurePosixPath(tmp_path / "cfg" / "autostart" / "pdfocr-watcher.desktop")
    [entry] = autostart.entries_for(
        "linux", home, {"XDG_CONFIG_HOME": "relative"}, program=["/x"], config=Path("/c")
    )
    assert entry.path == PurePosixPath(home / ".config" / "autostart" / "pdfocr-watcher.desktop")


@linux_only
def test_status_says_when_the_entry_points_at_a_program_that_is_gone(
    home: Path, rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = executable(tmp_path / "old-venv" / "bin" / "pdfocr-watcher")
    autostart.enable("linux", home, os.environ, program=[str(gone)], config=rules)
    gone.unlink()
    assert run_command("autostart", "status") == 1
    assert "that program is gone" in capsys.readouterr().out


@linux_only
def test_enable_refuses_without_a_rules_file(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = home / "nowhere.toml"
    assert run_command("autostart", "enable", "--config", str(missing)) == 1
    assert "pdfocr-watcher init" in capsys.readouterr().err
    assert not (home / "xdg-config" / "autostart").exists()


def test_this_installation_is_what_autostart_starts() -> None:
    """The script beside the interpreter (same venv) wins over PATH; then PATH; then -m."""
    beside = {"/venv/bin/pdfocr-watcher"}
    found = autostart.launch_program(
        "linux",
        executable="/venv/bin/python",
        which=lambda _: "/usr/bin/x",
        exists=beside.__contains__,
    )
    assert found == ["/venv/bin/pdfocr-watcher"]
    found = autostart.launch_program(
        "linux", executable="/venv/bin/python", which=lambda _: None, exists=lambda _: False
    )
    assert found == ["/venv/bin/python", "-m", "watcher"]
    frozen = autostart.launch_program("linux", executable="/opt/pdfocr-watcher", frozen=True)
    assert frozen == ["/opt/pdfocr-watcher"]


def test_on_windows_a_launcher_without_a_console_window_is_chosen() -> None:
    scripts = PureWindowsPath(r"C:\Users\Ann\pipx\venvs\pdfocr-watcher\Scripts")
    python = str(scripts / "python.exe")
    gui, pythonw = str(scripts / "pdfocr-watcher-gui.exe"), str(scripts / "pythonw.exe")
    no_path: Callable[[str], str | None] = lambda _: None  # noqa: E731
    found = autostart.launch_program(
        "win32", executable=python, which=no_path, exists={gui, pythonw}.__contains__
    )
    assert found == [gui]
    found = autostart.launch_program(
        "win32", executable=python, which=no_path, exists={pythonw}.__contains__
    )
    assert found == [pythonw, "-m", "watcher"]


# -- macOS and Windows entries, rendered for their OS and checked here -------------------------


def test_macos_launch_agent_is_a_plist_with_the_right_program_arguments(tmp_path: Path) -> None:
    home = tmp_path / "Users" / "ann"
    program = ["/Users/ann/.local/bin/pdfocr-watcher"]
    config = PurePosixPath("/Users/ann/Library/Application Support/pdfocr-watcher/config.toml")
    [entry] = autostart.entries_for("darwin", home, {}, program=program, config=config)
    assert entry.kind == autostart.LAUNCH_AGENT
    assert entry.path == PurePosixPath(home, "Library", "LaunchAgents", "org.pdfocr.watcher.plist")
    agent = plistlib.loads(entry.content.encode("utf-8"))
    assert agent["Label"] == "org.pdfocr.watcher"
    assert agent["ProgramArguments"] == [*program, "run", "--config", str(config)]
    assert agent["RunAtLoad"] is True and agent["LimitLoadToSessionType"] == "Aqua"

    # Writing, reading back and removing are plain file operations: they run here too.
    autostart.enable("darwin", home, {}, program=program, config=config)
    states = autostart.entry_states("darwin", home, {})
    assert autostart.is_enabled(states)
    assert states[0].command == (*program, "run", "--config", str(config))
    assert autostart.disable("darwin", home, {}) == [entry.path]
    assert not Path(entry.path).exists()


def test_windows_entry_is_a_shortcut_in_the_startup_folder_made_by_powershell() -> None:
    env = {"APPDATA": r"C:\Users\Ann\AppData\Roaming"}
    program = [r"C:\Users\Ann\.local\bin\pdfocr-watcher-gui.exe"]
    config = PureWindowsPath(r"C:\Users\Ann\AppData\Local\pdfocr-watcher\config files\c.toml")
    [entry] = autostart.entries_for("win32", Path("/unused"), env, program=program, config=config)
    startup = PureWindowsPath(r"C:\Users\Ann\AppData\Roaming\Microsoft\Windows")
    startup = startup / "Start Menu" / "Programs" / "Startup"
    assert isinstance(entry.path, PureWindowsPath)
    assert entry.path.parent == startup and entry.path.name == "pdfocr-watcher.lnk"
    script = entry.content
    assert f"CreateShortcut('{entry.path}')" in script
    assert f"TargetPath = '{program[0]}'" in script
    assert f"Arguments = 'run --config \"{config}\"'" in script  # quoted: it has a blank

    # Without APPDATA the Startup folder is found under the profile.
    [entry] = autostart.entries_for(
        "win32", Path("C:/Users/Bob"), {}, program=program, config=config
    )
    assert str(entry.path).endswith(
        r"AppData\Roaming\Microsoft\Windows\Start Menu\Programs"
        r"\Startup\pdfocr-watcher.lnk"
    )


def test_a_quote_in_a_windows_path_cannot_break_out_of_the_powershell_string() -> None:
    program = [r"C:\Users\O'Brien\pdfocr-watcher-gui.exe"]
    [entry] = autostart.entries_for(
        "win32", Path("/unused"), {"APPDATA": r"C:\x"}, program=program, config=Path("c.toml")
    )
    assert r"TargetPath = 'C:\Users\O''Brien\pdfocr-watcher-gui.exe'" in entry.content


# -- the files in packaging/ --------------------------------------------------------------------


def test_packaged_desktop_entry_is_valid() -> None:
    desktop_file_validate(PACKAGING / "pdfocr-watcher.desktop")


@linux_only
def test_packaged_systemd_unit_is_valid(tmp_path: Path) -> None:
    home = tmp_path / "home"
    executable(home / ".local" / "bin" / "pdfocr-watcher")  # where %h/.local/bin points
    systemd_verify(PACKAGING / "pdfocr-watcher.service", tmp_path / "runtime", {"HOME": str(home)})


def test_packaged_launch_agent_parses_and_matches_the_generated_one() -> None:
    agent = plistlib.loads((PACKAGING / "org.pdfocr.watcher.plist").read_bytes())
    assert agent["Label"] == autostart.LAUNCH_AGENT_LABEL
    assert agent["ProgramArguments"][1:] == ["run"]
    generated = plistlib.loads(autostart.render_launch_agent(["/p"], PurePosixPath("/h")).encode())
    assert set(agent) == set(generated)


def test_packaged_windows_script_writes_the_same_shortcut_autostart_does() -> None:
    script = (PACKAGING / "pdfocr-watcher-startup.ps1").read_text(encoding="utf-8")
    assert '"pdfocr-watcher.lnk"' in script and 'GetFolderPath("Startup")' in script
    assert "pdfocr-watcher-gui.exe" in script and "pythonw.exe" in script


def test_pyinstaller_spec_is_python_naming_the_entry_point() -> None:
    source = (PACKAGING / "pdfocr-watcher.spec").read_text(encoding="utf-8")
    compile(source, "pdfocr-watcher.spec", "exec")
    assert '"watcher", "__main__.py"' in source
    assert (ROOT / "watcher" / "__main__.py").is_file()


# -- doctor ---------------------------------------------------------------------------------------


def write_rules(folder: Path, endpoint: str, key: str = SECRET) -> Path:
    """Rules pointing at `endpoint`, with every folder (and the state folder) in `folder`."""
    for name in ("inbox", "outbox", "archive", "failed", "state"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        f'[api]\nkey = "{key}"\nendpoint = "{endpoint}"\n'
        f'[files]\noutbox = "{folder / "outbox"}"\narchive = "{folder / "archive"}"\n'
        f'failed = "{folder / "failed"}"\nstate_dir = "{folder / "state"}"\n'
        f'[[inbox]]\npath = "{folder / "inbox"}"\noutformat = "docx"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def run_doctor(rules: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run_command("doctor", "--config", str(rules))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert SECRET not in output
    return code, output


def test_doctor_with_a_reachable_sandbox_says_all_fine(
    home: Path,
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = make_sandbox(key=SECRET)
    rules = write_rules(tmp_path / "pdfocr", sandbox.url)
    code, output = run_doctor(rules, capsys)
    assert code == 0, output
    assert f"{rules}: valid, 1 inbox" in output
    assert "set (from the rules file)" in output
    assert f"{sandbox.url}: reachable (HTTP" in output
    assert re.search(r"^note +daemon +not running$", output, re.M)
    assert f"pdfocr-watcher {__version__}" in output and "watchdog " in output
    assert "PROBLEM" not in output and output.rstrip().endswith("All fine.")


def test_doctor_reports_a_dead_endpoint_and_never_prints_the_key(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The key in the query string and the user part must not leak through the printed URL.
    endpoint = f"http://user:{SECRET}@127.0.0.1:9/ocrapiv1.html?apikey={SECRET}"
    rules = write_rules(tmp_path / "pdfocr", endpoint)
    code, output = run_doctor(rules, capsys)
    assert code == 1
    assert "PROBLEM  service" in output
    assert "http://127.0.0.1:9/ocrapiv1.html: not reachable: the connection was refused" in output
    assert "1 thing needs attention" in output


def test_doctor_says_where_the_key_comes_from_without_printing_it(
    home: Path,
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PDFOCR_API_KEY", SECRET)
    rules = write_rules(tmp_path / "pdfocr", make_sandbox(key=SECRET).url, key="")
    code, output = run_doctor(rules, capsys)
    assert code == 0, output
    assert "set (from PDFOCR_API_KEY)" in output


def test_doctor_sees_the_running_daemon_the_credit_and_a_folder_that_is_a_file(
    home: Path, tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pdfocr"
    rules = write_rules(folder, sandbox.url)
    journal = Journal.in_folder(folder / "state")
    journal.set_meta(META_PAGES, "950")
    journal.set_meta(META_PAGES_AT, "1700000000")
    journal.close()
    (folder / "archive").rmdir()
    (folder / "archive").write_text("not a folder", encoding="utf-8")
    with InstanceLock(folder / "state"):
        code, output = run_doctor(rules, capsys)
    assert code == 1
    assert re.search(r"^note +daemon +running$", output, re.M)
    assert "950 pages (seen" in output
    assert f"{folder / 'archive'}: is a file, not a folder" in output


def test_doctor_without_a_rules_file_says_how_to_make_one(tmp_path: Path) -> None:
    config, findings = doctor.check_config(tmp_path / "missing.toml", {})
    assert config is None
    [finding] = findings
    assert finding.level is doctor.Level.PROBLEM and "pdfocr-watcher init" in finding.text


def test_doctor_reports_an_invalid_rules_file_with_its_line(tmp_path: Path) -> None:
    rules = tmp_path / "config.toml"
    rules.write_text('[api]\nkey = "k"\nconcurency = 2\n', encoding="utf-8")
    _config, [finding] = doctor.check_config(rules, {})
    assert finding.level is doctor.Level.PROBLEM
    assert f"{rules}:3" in finding.text and "concurency" in finding.text


def test_cli_wires_autostart_and_doctor() -> None:
    """Skipped until cli.py calls `autostart.register` and `doctor.register`."""
    from watcher.cli import build_parser

    commands = next(action for action in build_parser()._actions if action.choices)
    if not {"autostart", "doctor"} <= set(commands.choices):
        pytest.skip("cli.py does not register the autostart and doctor commands yet")
    assert commands.choices["doctor"].get_default("handler") is doctor.command_doctor
    assert commands.choices["autostart"].get_default("handler") is autostart.command_autostart


# -- the built wheel in a fresh virtualenv ----------------------------------------------------

_NOT_SOURCE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".benchmarks",
)  # fmt: skip


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """HOME and pip's cache in tmp_path; no key, XDG folders or PYTHONPATH from the machine
    (pip's own settings stay: a CI machine may need its index, proxy or certificates)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("XDG_", "PDFOCR_", "PYTHON", "VIRTUAL_ENV"))
    }
    env |= {
        "HOME": str(tmp_path / "home"),
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    (tmp_path / "home").mkdir()
    return env


def _run(argv: list[str | Path], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.timeout(120)  # typically 20-40 s; most of it is pip
def test_the_built_wheel_installs_and_runs_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """Catches missing package data and undeclared dependencies: only the wheel and what it
    declares are installed, and the commands run from outside the source tree."""
    env = _clean_env(tmp_path)
    source = tmp_path / "src"  # setuptools writes build/ into the tree: build a copy
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source],
        env,
        tmp_path,
    )
    [wheel] = wheels.glob("pdfocr_watcher-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    modules = {f"watcher/{path.name}" for path in (ROOT / "watcher").glob("*.py")}
    assert modules <= packed, f"missing from the wheel: {sorted(modules - packed)}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], env, tmp_path)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    _run([python, "-m", "pip", "install", "-q", wheel], env, tmp_path)

    program = bin_dir / "pdfocr-watcher"
    assert _run([program, "--version"], env, tmp_path).strip() == f"pdfocr-watcher {__version__}"
    assert _run([python, "-m", "watcher", "--version"], env, tmp_path).strip().endswith(__version__)
    rules = tmp_path / "c.toml"
    assert "Created" in _run([program, "init", "--config", rules], env, tmp_path)
    assert f"{rules}: valid." in _run([program, "check", "--config", rules], env, tmp_path)

    # Every script the project declares is installed; doctor finds every dependency.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for name in [*project.get("scripts", {}), *project.get("gui-scripts", {})]:
        assert (bin_dir / name).exists(), f"script {name} was not installed"
    text = rules.read_text(encoding="utf-8").replace(
        'key = ""', 'key = ""\nendpoint = "http://127.0.0.1:9/ocrapiv1.html"'
    )
    rules.write_text(text, encoding="utf-8")
    doctor_script = (
        f"import pathlib, watcher.doctor as d; d.run_doctor(pathlib.Path({str(rules)!r}))"
    )
    report = _run([python, "-c", doctor_script], env, tmp_path)
    assert "MISSING" not in report and "watchdog " in report, report
