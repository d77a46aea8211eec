"""Shared helpers of the benchmarks: rules files, a sandbox and a daemon in their own processes,
the bare client the daemon is measured against, and what /proc says about a process.

Every benchmark prints one `<name> figures: ...` line and one `budget: PASS|FAIL ...` line
per budget, and exits 0 whether or not a budget is met (figures are information); only a
crash exits non-zero. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO))

from watcher.journal import JOURNAL_FILE_NAME  # noqa: E402
from watcher.logs import LOG_FILE_NAME  # noqa: E402
from watcher.samplepdf import make_pdf  # noqa: E402

SANDBOX_KEY = "sandbox-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- printing ----------------------------------------------------------------------------------


def figures(name: str, **values: object) -> None:
    """The one line the smoke tests look for."""
    shown = " ".join(f"{key}={_fmt(value)}" for key, value in values.items())
    print(f"{name} figures: {shown}", flush=True)


def budget(met: bool, what: str) -> bool:
    print(f"budget: {'PASS' if met else 'FAIL'} - {what}", flush=True)
    return met


def note(text: str) -> None:
    print(f"  {text}", flush=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPU ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {datetime.now():%Y-%m-%d %H:%M}"
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


# -- files -------------------------------------------------------------------------------------


def pdf_bytes(number: int, prefix: str = "file") -> bytes:
    """A small one-page PDF whose bytes differ per number (identical bytes would be paid
    once and reused by the daemon, which would flatter it)."""
    return make_pdf([f"{prefix} {number}: benchmark page"])


def write_pdfs(folder: Path, count: int, prefix: str = "file") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"{prefix}{number:05d}.pdf"
        path.write_bytes(pdf_bytes(number, prefix))
        paths.append(path)
    return paths


# -- rules files -------------------------------------------------------------------------------


@dataclass
class Setup:
    root: Path
    config: Path
    inboxes: list[Path]
    outbox: Path
    archive: Path
    failed: Path
    state_dir: Path

    @property
    def journal(self) -> Path:
        return self.state_dir / JOURNAL_FILE_NAME

    @property
    def log(self) -> Path:
        return self.state_dir / LOG_FILE_NAME


def write_config(
    root: Path,
    *,
    endpoint: str = "http://127.0.0.1:9/ocrapiv1.html",
    key: str = SANDBOX_KEY,
    inboxes: Sequence[str] = ("to-pdf",),
    outformat: str = "pdf",
    concurrency: int = 4,
    settle_seconds: float = 0.0,
    polling: str = "auto",
    poll_interval: float = 0.5,
    rescan_seconds: float = 300.0,
    shared: bool = False,
) -> Setup:
    """A rules file with every folder under `root`, the folders created."""
    root.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        root=root,
        config=root / "config.toml",
        inboxes=[root / "inbox" / name for name in inboxes],
        outbox=root / "outbox",
        archive=root / "archive",
        failed=root / "failed",
        state_dir=root / "state",
    )
    polling_value = {"true": "true", "false": "false"}.get(polling, f'"{polling}"')
    text = f"""
[api]
key = "{key}"
endpoint = "{endpoint}"
concurrency = {concurrency}
poll_interval = {poll_interval}

[watch]
settle_seconds = {settle_seconds}
polling = {polling_value}
rescan_seconds = {rescan_seconds}
shared = {"true" if shared else "false"}

[files]
outbox = "{setup.outbox}"
archive = "{setup.archive}"
failed = "{setup.failed}"
state_dir = "{setup.state_dir}"

[credits]
low_warning = 0
"""
    for inbox in setup.inboxes:
        text += f'\n[[inbox]]\npath = "{inbox}"\noutformat = "{outformat}"\n'
    setup.config.write_text(text)
    setup.config.chmod(0o600)  # it holds a key: the daemon warns about a readable one
    for folder in (*setup.inboxes, setup.outbox, setup.archive, setup.failed, setup.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return setup


# -- the journal, read from outside ------------------------------------------------------------


def query(journal: Path, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    """Rows from the daemon's journal through a read-only connection; [] while it is not
    there yet or busy."""
    if not journal.exists():
        return []
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=2)
        ) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []


def count_jobs(journal: Path, state: str | None = None) -> int:
    if state is None:
        rows = query(journal, "SELECT COUNT(*) FROM jobs")
    else:
        rows = query(journal, "SELECT COUNT(*) FROM jobs WHERE state = ?", (state,))
    return int(rows[0][0]) if rows else 0


def wait_until(condition, timeout: float, interval: float = 0.1, what: str = "") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    note(f"gave up waiting for {what or condition} after {timeout:.0f} s")
    return False


def last_filed(journal: Path) -> float:
    """Epoch seconds of the journal's newest job change: its last job filed, once all are done."""
    return float(query(journal, "SELECT MAX(updated_at) FROM jobs")[0][0] or 0)


def log_time_of(log: Path, text: str) -> float | None:
    """Epoch seconds of the first log line containing `text` (the log has milliseconds)."""
    with contextlib.suppress(OSError):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if text in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp()
    return None


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SandboxProcess:
    """`benchmarks/sandbox_server.py` in its own process, so that its CPU and memory are not
    the daemon's. `record` names a file where it appends one line per upload it receives."""

    def __init__(
        self,
        *,
        seconds_per_page: float = 0.0,
        cut_after: float = 100.0,
        credits: int = 10**9,
        record: Path | None = None,
        workdir: Path | None = None,
    ):
        command = [
            sys.executable,
            str(BENCH_DIR / "sandbox_server.py"),
            "--port",
            str(free_port()),
            "--credits",
            str(credits),
            "--seconds-per-page",
            str(seconds_per_page),
            "--cut-after",
            str(cut_after),
        ]
        if record is not None:
            command += ["--record", str(record)]
        if workdir is not None:
            command += ["--workdir", str(workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            _stop(self.process)
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        self.url = line.split()[1]
        self.key = SANDBOX_KEY
        self.pid = self.process.pid

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DaemonProcess:
    """`python -m watcher run --config CFG --no-tray`, its stderr in a file in the state folder."""

    def __init__(self, setup: Setup):
        self.setup = setup
        # Not beside the rules file: the daemon watches that folder for edits, and every line
        # written to a file there would be an event for it (a terminal or journald is not).
        self.stderr_path = setup.state_dir / "daemon.stderr"
        self._stderr = self.stderr_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PDFOCR_WATCHER_CRASH_AFTER", None)
        env.pop("PDFOCR_API_KEY", None)
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [*self.command(), "run", "--config", str(setup.config), "--no-tray"],
            cwd=str(REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.pid = self.process.pid

    def command(self) -> list[str]:
        """The program before its `run` arguments."""
        return [sys.executable, "-m", "watcher"]

    def wait_started(self, timeout: float = 30.0) -> float:
        """Epoch seconds of the daemon's "starting" log line (Daemon.start was entered)."""
        found: list[float] = []

        def started() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.stderr_tail()}")
            moment = log_time_of(self.setup.log, "pdfocr-watcher starting")
            if moment is not None:
                found.append(moment)
            return bool(found)

        if not wait_until(started, timeout, 0.02, "the daemon to start"):
            raise RuntimeError(f"the daemon did not start: {self.stderr_tail()}")
        return found[0]

    def wait_done(self, count: int, timeout: float, interval: float = 0.1) -> None:
        """Until `count` jobs are done in its journal; raises, with the jobs' states and its
        last words, if it exits first or the time runs out."""
        journal = self.setup.journal
        wait_until(
            lambda: count_jobs(journal, "done") >= count or not self.alive(),
            timeout=timeout,
            interval=interval,
            what=f"{count} jobs done",
        )
        done = count_jobs(journal, "done")
        if done < count:
            states = query(journal, "SELECT state, COUNT(*) FROM jobs GROUP BY state")
            raise RuntimeError(
                f"daemon run: {done}/{count} done, states {states}\n{self.stderr_tail()}"
            )

    def stderr_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        _stop(self.process)
        self._stderr.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sandbox_charges(url: str) -> int:
    """How many conversions the sandbox process at `url` has charged (its ledger)."""
    base = url.rsplit("/", 1)[0]
    return len(json.loads(requests.get(f"{base}/_sandbox/ledger", timeout=10).text)["charges"])


# -- the bare client: what the daemon is measured against --------------------------------------


def bare_client(
    files: Sequence[Path], threads: int, convert: Callable[[requests.Session, Path], str | None]
) -> float:
    """`convert(session, path)` for every file, on `threads` threads with a requests session
    each; returns the seconds from the threads' start to the last file through. `convert`
    returns why a file failed, or None; a failure is raised once all are through."""
    todo: queue.Queue[Path] = queue.Queue()
    for path in files:
        todo.put(path)
    errors: list[str] = []

    def work() -> None:
        session = requests.Session()
        while True:
            try:
                path = todo.get_nowait()
            except queue.Empty:
                break
            error = convert(session, path)
            if error is not None:
                errors.append(f"{path.name}: {error}")
        session.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"bare run: {len(errors)} failed, first: {errors[0]}")
    return elapsed


def bare_upload(
    session: requests.Session, url: str, key: str, path: Path, remote: str, outformat: str
) -> requests.Response:
    """The upload of one file as `remote`, as the API's contract has it (OCR, English)."""
    with path.open("rb") as handle:
        return session.post(
            url,
            data={
                "apikey": key,
                "lang": "English",
                "outformat": outformat,
                "ocr": "1",
                "filename": remote,
            },
            files={"file": (remote, handle, "application/octet-stream")},
            timeout=120,
        )


def bare_download(session: requests.Session, link: str, target: Path) -> None:
    with session.get(link, stream=True, timeout=120) as download:
        download.raise_for_status()
        with target.open("wb") as out:
            for chunk in download.iter_content(64 * 1024):
                out.write(chunk)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in kB, and Threads, from /proc/PID/status ({} once it is gone)."""
    wanted = {"VmRSS", "VmHWM", "Threads"}
    result: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in wanted:
                result[name] = int(value.split()[0])
    return result


@dataclass
class Sampler:
    """Samples a process's RSS and thread count in a thread until stopped; keeps the peaks."""

    pid: int
    interval: float = 0.02
    peak_rss_kb: int = 0
    peak_threads: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        values = status(self.pid)
        if values:
            self.samples += 1
            self.peak_rss_kb = max(self.peak_rss_kb, values.get("VmRSS", 0))
            self.peak_threads = max(self.peak_threads, values.get("Threads", 0))

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self


@contextlib.contextmanager
def temp_root(prefix: str, keep: bool = False) -> Iterator[Path]:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=f"pdfocr-bench-{prefix}-"))
    try:
        yield root
    finally:
        if keep:
            note(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def mb(kb: float) -> float:
    return kb / 1024
