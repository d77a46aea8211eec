"""Makes README's two commands work from a fresh clone with nothing but a stock `python3`.

`python3 -m watcher ...` and `python3 -m watcher.bootstrap pytest ...` start here, before any
third-party import. When this interpreter lacks what pyproject.toml asks for, and the program
runs from its source folder, a virtual environment is set up in `.venv` beside pyproject.toml
(never in the system: Debian and Ubuntu refuse that, PEP 668), the project is installed into it
(editable, so the clone's code is what runs), and the same command is run again there. On Linux
the environment sees the system's packages, so Debian's PyGObject and AppIndicator give the
tray its menu. Where Debian or Ubuntu lack a package for this (the venv module, the tray's
bindings) it says which, and installs it only when the user says yes. Every failure is said in
words with what to do, never as a traceback.

Standard library only, and syntax old Pythons still parse, so that even 3.8 can say it is too old.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT = "pdfocr-watcher"
VENV_NAME = ".venv"
MINIMUM_PYTHON = (3, 10)
GUARD = "PDFOCR_WATCHER_BOOTSTRAPPED"  # set in the re-run, so a failed set-up cannot loop
TRAY_PACKAGES = ("python3-gi", "gir1.2-ayatanaappindicator3-0.1")
# pystray's AppIndicator backend takes the first of these it finds (Ubuntu has had both).
APPINDICATOR_NAMESPACES = ("AyatanaAppIndicator3", "AppIndicator3")
WINDOWS = os.name == "nt"


class SetupError(Exception):
    """Set-up cannot go on; the message says what is wrong and what to do, in full sentences."""


@dataclass(frozen=True)
class Requirement:
    """One line of pyproject.toml's dependencies: a distribution, and the version it needs at
    least (pyproject.toml only uses `>=`; tests/test_bootstrap.py keeps it so)."""

    name: str
    minimum: tuple[int, ...] = ()


# -- what this interpreter has --------------------------------------------------------------


def source_root() -> Path | None:
    """The clone this package runs from, or None when it is installed (a wheel, pipx): an
    installation was made by pip with its dependencies, so there is nothing to set up."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if re.search(rf'^name = "{PROJECT}"$', text, re.M) else None


def requirements(root: Path, extra: str) -> list[Requirement] | None:
    """Everything pyproject.toml asks for with `extra` (and the extras it names), for this
    Python; None when pyproject.toml cannot be read here (Python 3.10 has no tomllib, and then
    tomli is itself one of the requirements, so this interpreter is not ready)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib
        except ImportError:
            return None
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: Mapping[str, list[str]] = project.get("optional-dependencies", {})
    wanted, seen, lines = [extra], set(), list(project.get("dependencies", []))
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in extras.get(name, []):
            own = re.fullmatch(rf"{PROJECT}\[([\w,-]+)\]", line.strip())
            if own:
                wanted.extend(own[1].split(","))
            else:
                lines.append(line)
    return [r for r in map(parse_requirement, lines) if r is not None]


def parse_requirement(line: str) -> Requirement | None:
    """`name>=1.2; python_version < '3.11'` → Requirement, or None when its marker excludes
    this Python. Only the forms pyproject.toml uses are understood; others raise ValueError."""
    spec, _, marker = line.partition(";")
    if marker.strip() and not marker_holds(marker.strip()):
        return None
    found = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:>=\s*([0-9][0-9.]*))?\s*", spec)
    if not found:
        raise ValueError(f"pyproject.toml: cannot read the requirement {line!r}")
    return Requirement(found[1], version_tuple(found[2] or ""))


def marker_holds(marker: str) -> bool:
    found = re.fullmatch(r"python_version\s*(<=|>=|<|>|==|!=)\s*['\"]([0-9.]+)['\"]", marker)
    if not found:
        raise ValueError(f"pyproject.toml: cannot read the marker {marker!r}")
    here, there = sys.version_info[:2], version_tuple(found[2])
    holds: dict[str, Callable[[], bool]] = {
        "<": lambda: here < there,
        "<=": lambda: here <= there,
        ">": lambda: here > there,
        ">=": lambda: here >= there,
        "==": lambda: here == there,
        "!=": lambda: here != there,
    }
    return holds[found[1]]()


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numbers of a version ("2.31.0rc1" → (2, 31, 0))."""
    leading = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in leading[0].split(".")) if leading else ()


def missing(wanted: Sequence[Requirement]) -> list[str]:
    """The requirements this interpreter lacks, worded ("pystray", "urllib3 (1.26.12, needs 2.0
    or newer)"); empty when it has them all."""
    lacking = []
    for requirement in wanted:
        try:
            have = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            lacking.append(requirement.name)
            continue
        if version_tuple(have) < requirement.minimum:
            needs = ".".join(map(str, requirement.minimum))
            lacking.append(f"{requirement.name} ({have}, needs {needs} or newer)")
    return lacking


def worded(names: Sequence[str], shown: int = 4) -> str:
    """ "a, b, c and 9 more": a long list of missing packages says how long it is instead."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def appindicator_available() -> bool:
    """Whether pystray's AppIndicator backend (the tray icon with its menu on Linux desktops)
    can load its bindings in this interpreter. Needs no display."""
    try:
        import gi  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    for namespace in APPINDICATOR_NAMESPACES:
        try:
            gi.require_version(namespace, "0.1")
            importlib.import_module(f"gi.repository.{namespace}")
        except (ImportError, ValueError):
            continue
        return True
    return False


# -- Debian and Ubuntu packages -------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """What decides which system packages set-up needs; read once from the running system."""

    debian_like: bool  # Debian, Ubuntu and their derivatives: apt, and packages named as below
    system_python: bool  # this interpreter is the distribution's (apt's packages are for it)
    has_ensurepip: bool  # venv can install pip (Debian and Ubuntu ship it apart, in pythonX.Y-venv)
    has_appindicator: bool
    has_display: bool  # a desktop session, where a tray icon matters
    is_root: bool
    has_sudo: bool

    @classmethod
    def here(cls) -> Machine:
        return cls(
            debian_like=debian_like(Path("/etc/os-release")),
            system_python=is_system_python(),
            has_ensurepip=importlib.util.find_spec("ensurepip") is not None,
            has_appindicator=sys.platform.startswith("linux") and appindicator_available(),
            has_display=bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
            is_root=hasattr(os, "geteuid") and os.geteuid() == 0,
            has_sudo=shutil.which("sudo") is not None,
        )


def is_system_python() -> bool:
    """The distribution's own Python (under /usr), the one its packages of modules are for."""
    return sys.platform.startswith("linux") and sys.base_prefix == "/usr"


def debian_like(os_release: Path) -> bool:
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return False
    ids = re.findall(r"^(?:ID|ID_LIKE)=\"?([^\"\n]*)", text, re.M)
    return any(name in {"debian", "ubuntu"} for line in ids for name in line.split())


def venv_package() -> str:
    """Debian's package with ensurepip for *this* Python (python3-venv names only the default)."""
    return f"python{sys.version_info[0]}.{sys.version_info[1]}-venv"


@dataclass(frozen=True)
class PackagePlan:
    """The system packages set-up wants: `needed` ones it cannot go on without, `tray` ones
    that give the tray icon its menu (without them the daemon runs all the same)."""

    needed: tuple[str, ...] = ()
    tray: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.needed + self.tray


def package_plan(machine: Machine) -> PackagePlan:
    if not machine.debian_like:
        return PackagePlan()
    needed = () if machine.has_ensurepip else (venv_package(),)
    wants_tray = machine.system_python and machine.has_display and not machine.has_appindicator
    return PackagePlan(needed, TRAY_PACKAGES if wants_tray else ())


def apt_command(arguments: Sequence[str], *, as_root: bool) -> list[str]:
    """apt-get with `arguments`, through sudo unless this process is root already."""
    command = ["apt-get", *arguments]
    return command if as_root else ["sudo", *command]


def install_packages(
    plan: PackagePlan,
    machine: Machine,
    *,
    ask: Callable[[str], bool] | None,
    say: Callable[[str], None],
) -> None:
    """Installs the planned packages when the user says yes (`ask` is None when nobody can be
    asked: nothing is installed then). Raises SetupError when a needed one is still missing;
    tray packages that are not installed only cost the menu."""
    if not plan.all:
        return
    command = apt_command(["install", "-y", *plan.all], as_root=machine.is_root)
    shown = shlex.join(command)
    reasons = []
    if plan.needed:
        reasons.append(f"{' '.join(plan.needed)} (lets Python create the environment)")
    if plan.tray:
        reasons.append(f"{' '.join(plan.tray)} (gives the tray icon its menu)")
    say(f"This system lacks the packages {' and '.join(reasons)}.")
    can_run = machine.is_root or machine.has_sudo
    agreed = bool(can_run and ask is not None and ask(f"Install them now with `{shown}`?"))
    if agreed:
        if _run(command) != 0:
            # A fresh system may have no package lists yet; fetching them is part of installing.
            update = apt_command(["update"], as_root=machine.is_root)
            if _run(update) != 0 or _run(command) != 0:
                raise SetupError(
                    f"`{shown}` failed (apt's messages are above). Fix what apt says, run it "
                    "yourself, then run this command again."
                )
        return
    as_root = shlex.join(apt_command(["install", "-y", *plan.all], as_root=True))
    how = f"Run `{shown}`" if can_run else f"As root, run `{as_root}`"
    if plan.needed:
        raise SetupError(f"{how}, then run this command again.")
    say(
        f"Going on without them: the tray icon will have no menu. {how} to have it at the "
        f"next start ({VENV_NAME} sees the system's packages)."
    )


# -- the environment --------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if WINDOWS else "bin/python")


def running_in(venv: Path) -> bool:
    return Path(sys.prefix).resolve() == venv.resolve()


@contextlib.contextmanager
def locked(venv: Path) -> Iterator[None]:
    """One set-up at a time in a clone (two commands started at once would both run pip).
    Windows has no fcntl; there a second set-up at the same moment is not prevented."""
    venv.mkdir(exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(venv / ".setup.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def create_venv(venv: Path, say: Callable[[str], None]) -> None:
    # On Linux the system's packages stay visible: Debian's PyGObject and AppIndicator cannot
    # be installed with pip. Elsewhere a clean environment is the safer choice.
    system_site = sys.platform.startswith("linux")
    say(f"Creating {venv}" + (" (it sees the system's Python packages)" if system_site else ""))
    command = [sys.executable, "-m", "venv", *(["--system-site-packages"] * system_site), str(venv)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not venv_python(venv).exists():
        output = (result.stdout + result.stderr).strip()
        raise SetupError(
            f"Python could not create the environment {venv}:\n{output}\n"
            f"Fix what it says (or delete {venv}), then run this command again."
        )


def install_project(root: Path, extra: str, say: Callable[[str], None]) -> None:
    target = f"{root}[{extra}]"
    say(f"Installing {PROJECT}[{extra}] and what it needs into {sys.prefix} (about a minute)")
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if _run([*command, "-e", target]) != 0:
        raise SetupError(
            f"Installing into {sys.prefix} failed (pip's messages are above). pip needs to reach "
            "PyPI (or your own index): check the network or proxy, then run this command again; "
            f"to start afresh, delete the folder {sys.prefix}."
        )


def tray_report(say: Callable[[str], None]) -> None:
    """Says once, at set-up, whether the tray icon will have its menu, and if not, how to get
    it: apt's bindings are built for the distribution's own python3 only."""
    if not sys.platform.startswith("linux"):
        return
    if appindicator_available():
        say("Tray: the AppIndicator backend is available, so the icon has its menu.")
        return
    if is_system_python():
        how = (
            "install PyGObject and AppIndicator (Debian, Ubuntu: "
            f"{' '.join(TRAY_PACKAGES)}); the next start finds them"
        )
    else:
        how = (
            f"delete {VENV_NAME} and run this command with the system's python3 (the system's "
            "PyGObject is built for that one only)"
        )
    say(
        "Tray: no AppIndicator bindings here, so the icon (where a tray shows one) has no "
        f"menu. To have it, {how}."
    )


# -- the whole set-up -----------------------------------------------------------------------


def ensure(extra: str, rerun: Sequence[str]) -> None:
    """Returns when this interpreter has everything `extra` needs; otherwise sets up the
    clone's environment and runs `rerun` (the same command, from `-m` on) there, never
    returning. Exits with a worded message when that cannot be done."""
    try:
        _ensure(extra, rerun)
    except SetupError as problem:
        _say(str(problem))
        sys.exit(1)
    except ValueError as problem:  # pyproject.toml unreadable: the clone itself is damaged
        _say(f"{problem}. Check out a clean copy of {PROJECT} and run this command again.")
        sys.exit(1)
    except OSError as problem:  # e.g. a clone in a folder this user cannot write to
        where = f" ({problem.filename})" if problem.filename else ""
        _say(
            f"Setting up {VENV_NAME} failed: {problem.strerror or problem}{where}. Run this "
            "command in a clone you can write to, or fix that, and run it again."
        )
        sys.exit(1)
    except KeyboardInterrupt:
        _say(f"Set-up interrupted; run the command again to finish it ({VENV_NAME} is kept).")
        sys.exit(130)


def _ensure(extra: str, rerun: Sequence[str]) -> None:
    if sys.version_info[:2] < MINIMUM_PYTHON:
        raise SetupError(
            f"Python {'.'.join(map(str, MINIMUM_PYTHON))} or newer is needed; this is "
            f"{sys.version.split()[0]} ({sys.executable}). Install a newer Python and run the "
            "command with it."
        )
    root = source_root()
    if root is None:
        return
    wanted = requirements(root, extra)
    lacking = ["tomli (to read pyproject.toml)"] if wanted is None else missing(wanted)
    if not lacking:
        os.environ.pop(GUARD, None)  # the daemon's hooks and children start afresh
        return
    venv = root / VENV_NAME
    if sys.prefix != sys.base_prefix and not running_in(venv):
        raise SetupError(  # the user's own virtual environment: theirs to change, not ours
            f"This virtual environment ({sys.prefix}) lacks {worded(lacking)}. Install them "
            f"with `{sys.executable} -m pip install -e '{root}[{extra}]'`, or run this command "
            f"with a Python outside any virtual environment, which sets up {venv} for it."
        )
    if not running_in(venv):
        with locked(venv):
            if not venv_python(venv).exists():
                _say(
                    f"This Python ({sys.executable}) lacks {worded(lacking)}: setting up an "
                    f"environment for {PROJECT} in {venv} (once)."
                )
                machine = Machine.here()
                install_packages(package_plan(machine), machine, ask=_asker(), say=_say)
                create_venv(venv, _say)
        _replace_process([str(venv_python(venv)), *rerun])
    if os.environ.get(GUARD):
        raise SetupError(
            f"{venv} still lacks {worded(lacking)} after installing. Delete the folder "
            f"{venv} and run this command again."
        )
    with locked(venv):
        if wanted is None or missing(wanted):  # another set-up may have finished meanwhile
            install_project(root, extra, _say)
            tray_report(_say)
    os.environ[GUARD] = "1"
    _replace_process([sys.executable, *rerun])


def _asker() -> Callable[[str], bool] | None:
    """A yes/no question on the terminal, or None when no one is there to answer."""
    if not (sys.stdin and sys.stdin.isatty()):
        return None

    def ask(question: str) -> bool:
        try:
            return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
        except EOFError:
            return False

    return ask


def _replace_process(argv: Sequence[str]) -> None:
    """Runs `argv` in place of this process (on Windows, which cannot, as a child whose exit
    status becomes ours, so that Ctrl-C reaches the daemon and not a half-dead parent)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if not WINDOWS:
            os.execv(argv[0], list(argv))
        child = subprocess.Popen(list(argv))
    except OSError as exc:
        raise SetupError(
            f"{argv[0]} cannot be started ({exc.strerror}). Delete the folder "
            f"{Path(argv[0]).parent.parent} and run this command again."
        ) from None
    while True:
        try:
            sys.exit(child.wait())
        except KeyboardInterrupt:
            continue


def _run(command: Sequence[str]) -> int:
    try:
        return subprocess.run(list(command), check=False).returncode
    except OSError as exc:
        raise SetupError(f"`{shlex.join(command)}` could not be started: {exc}.") from None


def _say(message: str) -> None:
    print(f"{PROJECT}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> None:
    """`python3 -m watcher.bootstrap MODULE [ARGS]`: runs `python -m MODULE ARGS` in an
    environment with the test tools (the `test` extra), set up first when needed."""
    if not argv or argv[0].startswith("-"):
        _say(
            "usage: python3 -m watcher.bootstrap MODULE [ARGS...], e.g. `python3 -m "
            "watcher.bootstrap pytest -q`: runs `python -m MODULE` with the test tools, setting "
            f"up {VENV_NAME} first when this Python lacks them."
        )
        sys.exit(2)
    ensure("test", ["-m", "watcher.bootstrap", *argv])
    _replace_process([sys.executable, "-m", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
