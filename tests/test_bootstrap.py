"""README's two commands from a fresh clone (watcher/bootstrap.py).

The slow tests do what a new user does: clone the repository, run command 1 with Debian's own
/usr/bin/python3 (PEP 668, no project packages) in an empty HOME, and command 2 in the same
clone. The system packages set-up may install are exercised through stand-in `apt-get` and
`sudo` programs on PATH, the tests must not change the machine they run on; stock Ubuntu (no
pythonX.Y-venv) is Debian's python3 with its ensurepip hidden.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_readme import setup_commands

from watcher import bootstrap
from watcher.bootstrap import Machine, PackagePlan, Requirement, SetupError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")
VENV_PACKAGE = f"python3.{sys.version_info[1]}-venv"


def readme_command(number: int, *extra: str) -> list[str]:
    """README's command 1 or 2 as typed, with Debian's own python3 for `python3`."""
    program, *arguments = shlex.split(setup_commands()[number - 1])
    assert program == "python3"
    return [str(SYSTEM_PYTHON), *arguments, *extra]


def watcher_version(
    python: Path | str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m watcher --version` from a clone: the least a start does, set-up included."""
    return subprocess.run(
        [str(python), "-m", "watcher", "--version"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def names(requirements: list[Requirement] | None) -> set[str]:
    assert requirements is not None
    return {r.name for r in requirements}


# -- what pyproject.toml asks for -------------------------------------------------------------


def test_every_requirement_in_pyproject_is_understood_and_extras_include_their_own() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    for line in [*project["dependencies"], *(line for extra in extras for line in extra)]:
        if not line.startswith(bootstrap.PROJECT):
            bootstrap.parse_requirement(line)  # raises on a form the bootstrap cannot check

    sandbox = names(bootstrap.requirements(ROOT, "sandbox"))
    test = names(bootstrap.requirements(ROOT, "test"))
    assert {"watchdog", "pystray", "pypdf", "python-docx", "openpyxl"} <= sandbox
    assert sandbox <= test and {"pytest", "hypothesis", "mypy"} <= test
    assert bootstrap.PROJECT not in test  # `pdfocr-watcher[sandbox]` is expanded, not required


def test_a_marker_keeps_a_requirement_to_the_pythons_it_names() -> None:
    older = f"3.{sys.version_info[1] - 1}"
    newer = f"3.{sys.version_info[1] + 1}"
    assert bootstrap.parse_requirement(f"tomli>=2.0; python_version < '{older}'") is None
    assert bootstrap.parse_requirement(f"tomli>=2.0; python_version < '{newer}'") == Requirement(
        "tomli", (2, 0)
    )
    assert bootstrap.parse_requirement("certifi") == Requirement("certifi")
    with pytest.raises(ValueError, match="cannot read the requirement"):
        bootstrap.parse_requirement("pystray~=0.19")
    with pytest.raises(ValueError, match="cannot read the marker"):
        bootstrap.parse_requirement("pywin32; sys_platform == 'win32'")


def test_missing_names_absent_and_too_old_distributions_from_the_real_metadata() -> None:
    pytest_version = bootstrap.version_tuple(pytest.__version__)
    assert bootstrap.missing(
        [
            Requirement("pytest", pytest_version),
            Requirement("pytest", (pytest_version[0] + 1,)),
            Requirement("no-such-distribution-for-pdfocr"),
        ]
    ) == [
        f"pytest ({pytest.__version__}, needs {pytest_version[0] + 1} or newer)",
        "no-such-distribution-for-pdfocr",
    ]
    assert bootstrap.worded(list("abcdef")) == "a, b, c, d and 2 more"


def test_an_installed_copy_is_not_a_clone_so_nothing_is_set_up(tmp_path: Path) -> None:
    installed = tmp_path / "site-packages" / "watcher"
    installed.mkdir(parents=True)
    for name in ("__init__.py", "bootstrap.py"):
        shutil.copy(ROOT / "watcher" / name, installed / name)
    probe = "from watcher import bootstrap; print(bootstrap.source_root())"
    env = {**os.environ, "PYTHONPATH": str(installed.parent)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert result.stdout.strip() == "None"
    assert bootstrap.source_root() == ROOT


def old_python() -> str | None:
    """A Python 3.8 or 3.9 that runs here (on PATH, or one pyenv keeps), if any."""
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob("3.[89].*/bin/python3"))
    found = [shutil.which("python3.9"), shutil.which("python3.8"), *map(str, pyenv)]
    probe = "import sys; print(sys.version_info[:2] in ((3, 8), (3, 9)))"
    for python in filter(None, found):
        result = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
        if result.stdout.strip() == "True":
            return python
    return None


def test_a_python_too_old_is_told_so(tmp_path: Path) -> None:
    """macOS's own python3 is 3.9: both commands say so, in words, before anything else."""
    python = old_python()
    if python is None:
        pytest.skip("no Python 3.9 or 3.8 here")
    copy = copy_of_the_clone(tmp_path / "copy")
    for command in (["watcher", "--version"], ["watcher.bootstrap", "pytest", "--version"]):
        result = subprocess.run(
            [python, "-m", *command],
            cwd=copy,
            env=fresh_user_env(tmp_path / "home"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("pdfocr-watcher: Python 3.10 or newer is needed; this is")


def test_bootstrap_without_a_module_to_run_says_how_it_is_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        bootstrap.main([])
    assert stopped.value.code == 2
    assert "usage: python3 -m watcher.bootstrap MODULE [ARGS...]" in capsys.readouterr().err


# -- Debian and Ubuntu packages -----------------------------------------------------------------

STOCK_UBUNTU = Machine(
    debian_like=True,
    system_python=True,
    has_ensurepip=False,
    has_appindicator=False,
    has_display=True,
    is_root=False,
    has_sudo=True,
)


@pytest.mark.parametrize(
    ("os_release", "expected"),
    [
        ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n', True),
        ("ID=ubuntu\nID_LIKE=debian\n", True),
        ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', True),
        ('ID=fedora\nID_LIKE="rhel centos"\n', False),
    ],
)
def test_debian_and_its_derivatives_are_recognised(
    tmp_path: Path, os_release: str, expected: bool
) -> None:
    path = tmp_path / "os-release"
    path.write_text(os_release, encoding="utf-8")
    assert bootstrap.debian_like(path) is expected
    assert bootstrap.debian_like(tmp_path / "missing") is False


def test_the_plan_names_the_venv_package_of_this_python_and_the_tray_only_where_it_helps() -> None:
    plan = bootstrap.package_plan(STOCK_UBUNTU)
    assert plan == PackagePlan((VENV_PACKAGE,), bootstrap.TRAY_PACKAGES)
    ready = dataclasses.replace(STOCK_UBUNTU, has_ensurepip=True, has_appindicator=True)
    assert bootstrap.package_plan(ready) == PackagePlan()
    # No desktop (a server over ssh), or a Python apt's packages are not for (pyenv): no tray.
    for machine in (
        dataclasses.replace(STOCK_UBUNTU, has_display=False),
        dataclasses.replace(STOCK_UBUNTU, system_python=False),
    ):
        assert bootstrap.package_plan(machine) == PackagePlan((VENV_PACKAGE,))
    assert bootstrap.package_plan(dataclasses.replace(STOCK_UBUNTU, debian_like=False)) == (
        PackagePlan()
    )


class FakeApt:
    """Stand-ins for apt-get and sudo in a `bin` folder: each call is appended to a log, and
    the first `fail_installs(n)` installs fail (as apt does on a fresh system that has no
    package lists yet, or always)."""

    def __init__(self, folder: Path) -> None:
        self.bin, self.log = folder / "bin", folder / "apt-calls.log"
        self.failures = folder / "apt-failures"
        self.bin.mkdir()
        (self.bin / "apt-get").write_text(
            "#!/bin/sh\n"
            f'echo "apt-get $*" >> "{self.log}"\n'
            f'left=$(cat "{self.failures}" 2>/dev/null || echo 0)\n'
            'if [ "$1" = install ] && [ "$left" -gt 0 ]; then\n'
            f'    echo $((left - 1)) > "{self.failures}"; exit 100\n'
            "fi\n",
            encoding="utf-8",
        )
        (self.bin / "sudo").write_text(f'#!/bin/sh\necho sudo >> "{self.log}"\nexec "$@"\n')
        for program in self.bin.iterdir():
            program.chmod(0o755)

    def fail_installs(self, count: int) -> None:
        self.failures.write_text(str(count), encoding="utf-8")

    def calls(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    """FakeApt at the front of PATH, for this process and the programs it starts."""
    apt = FakeApt(tmp_path)
    monkeypatch.setenv("PATH", f"{apt.bin}{os.pathsep}{os.environ['PATH']}")
    return apt


class Answers:
    """The user at the terminal: says `answer` to every question, and remembers them."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer


def test_nobody_to_ask_means_nothing_is_installed_and_the_command_is_given(
    fake_apt: FakeApt,
) -> None:
    said: list[str] = []
    plan = bootstrap.package_plan(STOCK_UBUNTU)
    with pytest.raises(SetupError) as refused:
        bootstrap.install_packages(plan, STOCK_UBUNTU, ask=None, say=said.append)
    command = f"sudo apt-get install -y {VENV_PACKAGE} python3-gi gir1.2-ayatanaappindicator3-0.1"
    assert str(refused.value) == f"Run `{command}`, then run this command again."
    assert VENV_PACKAGE in said[0] and "menu" in said[0]
    assert fake_apt.calls() == []


def test_a_yes_installs_through_sudo_and_fetches_the_package_lists_when_apt_needs_them(
    fake_apt: FakeApt,
) -> None:
    user = Answers(True)
    fake_apt.fail_installs(1)
    plan = PackagePlan((VENV_PACKAGE,))
    bootstrap.install_packages(plan, STOCK_UBUNTU, ask=user, say=lambda _: None)
    assert user.questions == [f"Install them now with `sudo apt-get install -y {VENV_PACKAGE}`?"]
    install = f"apt-get install -y {VENV_PACKAGE}"
    assert fake_apt.calls() == ["sudo", install, "sudo", "apt-get update", "sudo", install]


def test_root_installs_directly_and_no_sudo_means_saying_what_root_should_run(
    fake_apt: FakeApt,
) -> None:
    plan = PackagePlan((VENV_PACKAGE,))
    root = dataclasses.replace(STOCK_UBUNTU, is_root=True)
    bootstrap.install_packages(plan, root, ask=Answers(True), say=lambda _: None)
    assert fake_apt.calls() == [f"apt-get install -y {VENV_PACKAGE}"]

    user = Answers(True)
    no_sudo = dataclasses.replace(STOCK_UBUNTU, has_sudo=False)
    with pytest.raises(SetupError, match=f"As root, run `apt-get install -y {VENV_PACKAGE}`"):
        bootstrap.install_packages(plan, no_sudo, ask=user, say=lambda _: None)
    assert user.questions == []  # nothing it could do with a yes


def test_declining_only_the_tray_packages_goes_on_without_the_menu(
    fake_apt: FakeApt,
) -> None:
    said: list[str] = []
    plan = PackagePlan((), bootstrap.TRAY_PACKAGES)
    bootstrap.install_packages(plan, STOCK_UBUNTU, ask=Answers(False), say=said.append)
    assert "the tray icon will have no menu" in said[-1]
    assert "sudo apt-get install -y python3-gi gir1.2-ayatanaappindicator3-0.1" in said[-1]
    assert fake_apt.calls() == []


# Debian's python3 as on stock Ubuntu, which has no pythonX.Y-venv: ensurepip is not there.
LIKE_STOCK_UBUNTU = (
    "import runpy, sys; sys.modules['ensurepip'] = None; "
    "runpy.run_module('watcher', run_name='__main__', alter_sys=True)"
)
debian_python = pytest.mark.skipif(
    not (SYSTEM_PYTHON.exists() and bootstrap.debian_like(Path("/etc/os-release"))),
    reason="needs Debian's or Ubuntu's own /usr/bin/python3",
)


def like_stock_ubuntu(tmp_path: Path, apt: FakeApt, *, answer: str | None) -> tuple[str, str]:
    """README's command 1 in a copy of the clone with Debian's python3 lacking ensurepip, apt
    replaced by `apt`, on a terminal where the user types `answer` (None: no terminal)."""
    import pty  # Unix only

    copy = copy_of_the_clone(tmp_path / "copy")
    env = fresh_user_env(tmp_path / "home")
    env["PATH"] = f"{apt.bin}{os.pathsep}{env['PATH']}"
    python, _m, _watcher, *arguments = readme_command(1)
    argv = [python, "-c", LIKE_STOCK_UBUNTU, *arguments]
    terminal, user = pty.openpty() if answer is not None else (None, None)
    if user is not None and terminal is not None:
        os.write(user, f"{answer}\n".encode())  # typed ahead; the terminal holds it
    try:
        result = subprocess.run(
            argv,
            cwd=copy,
            env=env,
            stdin=terminal if terminal is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        for fd in (terminal, user):
            if fd is not None:
                os.close(fd)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert not bootstrap.venv_python(copy / ".venv").exists()
    return result.stdout, result.stderr


SUDO = ["sudo"] if hasattr(os, "geteuid") and os.geteuid() != 0 else []  # before apt-get here


def system_venv_package() -> str:
    """python3.X-venv for Debian's python3 (the tests may run on another Python)."""
    minor = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[1])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"python3.{minor}-venv"


def as_this_user(*commands: str) -> list[str]:
    """The calls FakeApt logs for `commands`."""
    return [call for command in commands for call in (*SUDO, command)]


@debian_python
def test_stock_ubuntu_without_a_terminal_is_told_the_apt_command_and_nothing_is_installed(
    tmp_path: Path,
) -> None:
    apt, package = FakeApt(tmp_path), system_venv_package()
    _out, err = like_stock_ubuntu(tmp_path, apt, answer=None)
    install = " ".join([*SUDO, f"apt-get install -y {package}"])
    assert f"This system lacks the packages {package} (lets Python create" in err
    assert f"Run `{install}`, then run this command again." in err
    assert apt.calls() == []


@debian_python
def test_stock_ubuntu_on_a_terminal_is_asked_and_a_yes_runs_apt(tmp_path: Path) -> None:
    apt, package = FakeApt(tmp_path), system_venv_package()
    apt.fail_installs(2)  # so that set-up stops there, before making a real .venv
    out, err = like_stock_ubuntu(tmp_path, apt, answer="y")
    install = f"apt-get install -y {package}"
    shown = " ".join([*SUDO, install])
    assert f"Install them now with `{shown}`? [y/N]" in out
    assert apt.calls() == as_this_user(install, "apt-get update", install)
    assert f"`{shown}` failed (apt's messages are above)." in err


@debian_python
def test_stock_ubuntu_on_a_terminal_answered_no_installs_nothing(tmp_path: Path) -> None:
    apt = FakeApt(tmp_path)
    out, err = like_stock_ubuntu(tmp_path, apt, answer="n")
    assert "[y/N]" in out and apt.calls() == []
    assert "then run this command again." in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tray report is for Linux")
def test_the_tray_report_says_whether_the_menu_is_there_and_else_how_to_get_it() -> None:
    said: list[str] = []
    bootstrap.tray_report(said.append)
    [report] = said
    if bootstrap.appindicator_available():
        assert report.endswith("so the icon has its menu.")
    elif bootstrap.is_system_python():
        assert "no menu" in report and " ".join(bootstrap.TRAY_PACKAGES) in report
    else:  # pyenv and the like: Debian's PyGObject cannot be loaded here
        assert "no menu" in report and "with the system's python3" in report


# -- the two commands, for real, from a fresh clone --------------------------------------------

needs_system_python = pytest.mark.skipif(
    not (SYSTEM_PYTHON.exists() and (ROOT / ".git").exists() and shutil.which("git")),
    reason="needs /usr/bin/python3, git, and this project as a git clone",
)


def fresh_user_env(home: Path) -> dict[str, str]:
    """A new user's environment: an empty HOME, no display, none of the machine's Python,
    XDG or pdfocr settings. pip keeps the machine's own settings (index, proxy, certificates)
    and its download cache, which only makes the install faster."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("XDG_", "PDFOCR_", "PYTHON", "VIRTUAL_ENV", "PYENV"))
        and key not in {"DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"}
    }
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env |= {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    home.mkdir(parents=True, exist_ok=True)
    return env


def clone(into: Path) -> Path:
    """This repository as committed, as a user gets it."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into)], check=True)
    return into


def copy_of_the_clone(into: Path) -> Path:
    """The program and its pyproject.toml: all set-up reads (git's history is not needed)."""
    shutil.copytree(ROOT / "watcher", into / "watcher", ignore=shutil.ignore_patterns("__py*"))
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


@dataclasses.dataclass
class FirstRun:
    clone: Path
    home: Path
    env: dict[str, str]
    returncode: int
    output: str


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output, _ = process.communicate()
            pytest.fail(f"command 1 stopped or took over {seconds:.0f} s:\n{output}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    """README's command 1 (`python3 -m watcher run`, no key yet), typed by a new user with
    Debian's python3 in a fresh clone: it sets up .venv, starts the daemon on the sandbox, and
    converts the sample; Ctrl-C (SIGINT) stops it."""
    base = tmp_path_factory.mktemp("fresh")
    home, source = base / "home", clone(base / "clone")
    env = fresh_user_env(home)
    outbox = home / "PDFOCR" / "outbox" / "welcome.docx"
    process = subprocess.Popen(
        readme_command(1),
        cwd=source,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(outbox.exists, process, seconds=400)  # most of it is pip, once
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    yield FirstRun(source, home, env, process.returncode, output)


@needs_system_python
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_command_1_sets_up_a_fresh_clone_with_debians_python_and_converts_the_sample(
    first_run: FirstRun,
) -> None:
    output = first_run.output
    assert first_run.returncode == 0, output
    assert "Traceback" not in output and "externally-managed" not in output, output
    assert f"setting up an environment for pdfocr-watcher in {first_run.clone / '.venv'}" in output
    assert "SANDBOX" in output
    assert "welcome.pdf: done" in output
    assert (first_run.home / "PDFOCR" / "archive" / "welcome.pdf").exists()

    # The tray's backend with a menu: the environment sees Debian's AppIndicator bindings.
    assert "Tray: the AppIndicator backend is available, so the icon has its menu." in output
    python = bootstrap.venv_python(first_run.clone / ".venv")
    probe = "from watcher.bootstrap import appindicator_available as a; print(a())"
    seen = subprocess.run(
        [str(python), "-c", probe], env=first_run.env, capture_output=True, text=True, check=True
    )
    assert seen.stdout.strip() == "True", seen.stderr
    if shutil.which("xvfb-run"):  # and pystray, on a display, picks that backend: with a menu
        probe = "import pystray; print(pystray.Icon.__module__, pystray.Icon.HAS_MENU)"
        seen = subprocess.run(
            ["xvfb-run", "-a", str(python), "-c", probe],
            env=first_run.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert seen.stdout.strip() == "pystray._appindicator True", seen.stdout + seen.stderr

    # The next start goes straight to the environment, saying nothing about set-up.
    again = watcher_version(SYSTEM_PYTHON, first_run.clone, first_run.env)
    assert (again.returncode, again.stdout.strip(), again.stderr) == (
        0,
        "pdfocr-watcher 0.1.0",
        "",
    )


@needs_system_python
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_command_2_adds_the_test_tools_to_the_same_clone_and_runs_pytest(
    first_run: FirstRun,
) -> None:
    """README's command 2, given one test file (the whole suite would run this test again)."""
    result = subprocess.run(
        readme_command(2, "tests/test_readme.py"),
        cwd=first_run.clone,
        env=first_run.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Installing pdfocr-watcher[test]" in output
    assert "2 passed" in output and "Traceback" not in output


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs /usr/bin/python3")
@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("venv-is-a-file", "Setting up .venv failed: File exists ({copy}/.venv). Run this"),
        ("bad-requirement", "pyproject.toml: cannot read the requirement 'pystray~=0.19'."),
    ],
)
def test_a_clone_where_set_up_cannot_work_gets_words_not_a_traceback(
    tmp_path: Path, damage: str, said: str
) -> None:
    copy = copy_of_the_clone(tmp_path / "copy")
    if damage == "venv-is-a-file":
        (copy / ".venv").write_text("not a folder", encoding="utf-8")
    else:
        pyproject = (copy / "pyproject.toml").read_text(encoding="utf-8")
        pyproject = pyproject.replace('"pystray>=0.19"', '"pystray~=0.19"')
        (copy / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    result = watcher_version(SYSTEM_PYTHON, copy, fresh_user_env(tmp_path / "home"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert said.format(copy=copy) in result.stderr


def test_the_users_own_virtualenv_is_left_to_them_with_the_command_that_completes_it(
    tmp_path: Path,
) -> None:
    copy = copy_of_the_clone(tmp_path / "copy")
    theirs = tmp_path / "their-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(theirs)], check=True)
    python = bootstrap.venv_python(theirs)
    result = watcher_version(python, copy, fresh_user_env(tmp_path / "home"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"This virtual environment ({theirs}) lacks watchdog" in result.stderr
    assert f"`{python} -m pip install -e '{copy}[sandbox]'`" in result.stderr
    assert not (copy / ".venv").exists()


@needs_system_python
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pip_failing_is_explained_in_words_not_a_traceback(tmp_path: Path) -> None:
    """No index to install from (as offline): the user is told what failed and what to do."""
    source = clone(tmp_path / "clone")
    env = fresh_user_env(tmp_path / "home")
    env = {key: value for key, value in env.items() if not key.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    result = subprocess.run(
        readme_command(1),
        cwd=source,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"pdfocr-watcher: Installing into {source / '.venv'} failed"), last
    assert "check the network or proxy, then run this command again" in last
    assert not (tmp_path / "home" / "PDFOCR").exists()
