"""Where the daemon's CPU goes per file, stage by stage (a profile, not a budget).

The daemon runs as its own process (`python -m watcher run --no-tray`, started through this
script with `--child`), on N one-page PDFs already in its inbox, settle_seconds = 0,
concurrency 4, against the sandbox in its own process. Inside it, the functions of each
stage are wrapped to add up the CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID:
user + system time of that thread, so waiting for the network, the disk or the GIL does
not count, and a loaded machine changes the figures little). Time is exclusive: a stage
called inside another (a log line inside filing) counts for the inner one. What no stage
claims is charged to its thread ("worker: runner and loop", "watch: settle thread",
"watch: watchdog threads"...). Everything is divided by N: milliseconds of CPU per file.

The bare client of throughput.py is measured in the same run (its CPU per file, this
process), so the ratio daemon/bare is of one moment of the machine. The wrappers cost
about 1 us per call, a few tens of calls per file (under 0.1 ms per file).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DaemonProcess,
    SandboxProcess,
    budget,
    cpu_seconds,
    figures,
    machine,
    note,
    temp_root,
    wait_until,
    write_config,
    write_pdfs,
)

CONCURRENCY = 4
REPORT_ENV = "PDFOCR_BENCH_STAGE_REPORT"

# -- inside the daemon ---------------------------------------------------------------------

_totals: dict[str, int] = defaultdict(int)  # stage -> thread CPU ns
_walls: dict[str, int] = defaultdict(int)  # stage -> wall-clock ns (waits included)
_calls: dict[str, int] = defaultdict(int)
_claimed_by_thread: dict[str, int] = defaultdict(int)  # thread group -> ns claimed by stages
_local = threading.local()
_totals_lock = threading.Lock()
_clock = time.thread_time_ns


def _group(name: str) -> str:
    if name.startswith("worker-"):
        return "worker: runner and loop"
    if name == "inbox-settle":
        return "watch: settle thread"
    if name == "MainThread":
        return "main thread"
    if name in ("housekeeping", "intake"):
        return name
    return "watch: watchdog threads"  # the observer and its emitters (unnamed threads)


def _timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        started, wall_started = _clock(), time.perf_counter_ns()
        stack.append([0, 0])  # CPU and wall time of the stages called inside this one
        try:
            return function(*args, **kwargs)
        finally:
            spent, wall = _clock() - started, time.perf_counter_ns() - wall_started
            inner, inner_wall = stack.pop()
            if stack:
                stack[-1][0] += spent
                stack[-1][1] += wall
            with _totals_lock:
                _totals[stage] += spent - inner
                _walls[stage] += wall - inner_wall
                _calls[stage] += 1
                if not stack:
                    _claimed_by_thread[_group(threading.current_thread().name)] += spent

    return wrapper


def _wrap(owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)
    wrapped = _timed(stage, original)
    setattr(owner, name, wrapped)
    for module in list(sys.modules.values()):  # names imported with `from x import name`
        ours = getattr(module, "__name__", "").startswith("watcher") and module is not owner
        if ours and getattr(module, name, None) is original:
            setattr(module, name, wrapped)


def _instrument() -> None:
    import watcher.api as api
    import watcher.daemon as daemon
    import watcher.filing as filing
    import watcher.inbox as inbox
    import watcher.intake as intake
    import watcher.journal as journal
    import watcher.preflight as preflight
    import watcher.runner as runner
    import watcher.stations as stations

    writes = ("move", "update", "add_many", "close_submission", "set_meta", "release_held")
    reads = ("claim", "release", "twins", "next_due", "counts", "get", "jobs", "result_copied")
    for name in writes:
        _wrap(journal.Journal, name, "journal: writes (commit + fsync)")
    for name in reads:
        _wrap(journal.Journal, name, "journal: reads (claim, twins, counts)")
    _wrap(api.PdfOcrClient, "upload", "http: upload")
    _wrap(api.PdfOcrClient, "poll", "http: poll")
    _wrap(api.PdfOcrClient, "download", "http: download (+ staged file written, synced)")
    _wrap(preflight, "inspect_file", "preflight (page count)")
    _wrap(intake, "file_hash", "hash (SHA-256, source and result)")
    _wrap(intake, "new_job", "intake (stat, name)")
    for name in ("_place_result", "_put_original_away"):
        _wrap(runner.JobRunner, name, "filing (result placed, original archived)")
    _wrap(filing, "remove_quietly", "filing (result placed, original archived)")
    for name in ("_source_problem", "_still_ours"):
        _wrap(runner.JobRunner, name, "source checks (stat)")
    for name in ("admit", "claim_next", "before_submit", "finished"):
        _wrap(stations.SharedInboxes, name, "claims (shared inbox)")
    for name in ("_job_changed", "_notify", "_record"):
        _wrap(daemon.Daemon, name, "daemon: job-change hooks (tray snapshot, notices)")
    _wrap(inbox.InboxWatcher, "_hand_on", "watch: hand-on to the daemon")
    _wrap(inbox.InboxWatcher, "_on_event", "watch: our event handler")
    _wrap(logging.Logger, "_log", "logging (format, file, stderr)")
    _wrap(os, "fsync", "fsync (result files)")


def _report(path: Path) -> None:
    threads = defaultdict(int)
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            threads[_group(thread.name)] += time.clock_gettime_ns(clock)
        except OSError:
            continue
    with _totals_lock:
        stages = dict(_totals)
        walls = dict(_walls)
        calls = dict(_calls)
        claimed = dict(_claimed_by_thread)
    for group, total in threads.items():
        if group != "main thread":
            stages[group] = max(0, total - claimed.get(group, 0))
    report = {
        "stages": stages,
        "walls": walls,
        "calls": calls,
        "process_cpu_ns": time.process_time_ns(),
    }
    path.write_text(json.dumps(report))


def child(argv: list[str]) -> int:
    """The daemon, instrumented; SIGUSR1 writes the report to $PDFOCR_BENCH_STAGE_REPORT."""
    import watcher.cli as cli

    _instrument()
    report = Path(os.environ[REPORT_ENV])
    signal.signal(signal.SIGUSR1, lambda *_: _report(report))
    return cli.main(argv)


# -- the benchmark -------------------------------------------------------------------------


class InstrumentedDaemon(DaemonProcess):
    """The daemon started through `profile_stages.py --child`; with `serialized`, under
    valgrind (`--tool=none`), which runs one thread at a time: a thread's CPU time then
    grows with the work it does, not with how it competes for the GIL and the caches."""

    serialized = False

    def command(self) -> list[str]:
        valgrind = ["valgrind", "--tool=none", "--quiet"] if self.serialized else []
        return [*valgrind, sys.executable, str(Path(__file__).resolve()), "--child"]


def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]


def _instructions(out: Path) -> int:
    """Instructions executed (user space), from a callgrind output file."""
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


class CallgrindDaemon(DaemonProcess):
    """`python -m watcher` under callgrind (every thread, serialized: the count does not
    depend on the machine's load)."""

    out: Path

    def command(self) -> list[str]:
        return [*_callgrind(self.out), "-m", "watcher"]


def daemon_instructions(root: Path, url: str, key: str, count: int) -> int:
    setup = write_config(
        root, endpoint=url, key=key, concurrency=CONCURRENCY, settle_seconds=0.0, polling="never"
    )
    write_pdfs(setup.inboxes[0], count)
    CallgrindDaemon.out = root / "callgrind.out"
    with CallgrindDaemon(setup) as daemon:
        daemon.wait_started(timeout=600)
        daemon.wait_done(count, timeout=max(600.0, count * 3.0), interval=0.5)
        time.sleep(1.0 if count else 3.0)  # the start-up run idles a moment too
    return _instructions(CallgrindDaemon.out)


def bare_instructions(root: Path, url: str, key: str, count: int) -> int:
    out = root / f"bare-{count}.callgrind"
    sources = write_pdfs(root / f"bare-in-{count}", count, prefix="bare")
    subprocess.run(
        [
            *_callgrind(out),
            str(Path(__file__).resolve()),
            "--bare-child",
            url,
            key,
            str(root / f"bare-out-{count}"),
            *map(str, sources),
        ],
        check=True,
        capture_output=True,
    )
    return _instructions(out)


def bare_child(argv: list[str]) -> int:
    from throughput import bare_run

    url, key, outdir, *files = argv
    bare_run(url, key, [Path(name) for name in files], Path(outdir), "pdf")
    return 0


def callgrind_figures(root: Path, count: int) -> None:
    """Instructions per file, daemon and bare client, each minus its own run with no files
    (start-up, imports): a measure of work that a loaded machine does not change."""
    per_file = {}
    for name, measure in (("daemon", daemon_instructions), ("bare", bare_instructions)):
        totals = []
        for files in (0, count):
            with SandboxProcess() as box:
                totals.append(measure(root / f"{name}-{files}", box.url, box.key, files))
        per_file[name] = (totals[1] - totals[0]) / count
        note(f"{name}: {totals[0]:,} instructions with no files, {totals[1]:,} with {count}")
    ratio = per_file["daemon"] / per_file["bare"]
    note(
        f"instructions per file (callgrind, user space): daemon {per_file['daemon'] / 1e6:.2f} M, "
        f"bare {per_file['bare'] / 1e6:.2f} M: ratio {ratio:.2f}"
    )
    figures(
        "profile_stages_callgrind",
        files=count,
        daemon_minstr_per_file=per_file["daemon"] / 1e6,
        bare_minstr_per_file=per_file["bare"] / 1e6,
        ratio=ratio,
    )


def run_daemon(root: Path, url: str, key: str, count: int, report: Path) -> dict[str, Any]:
    setup = write_config(
        root, endpoint=url, key=key, concurrency=CONCURRENCY, settle_seconds=0.0, polling="never"
    )
    write_pdfs(setup.inboxes[0], count)
    os.environ[REPORT_ENV] = str(report)
    try:
        with InstrumentedDaemon(setup) as daemon:
            daemon.wait_started(timeout=600)
            cpu_before = cpu_seconds(daemon.pid)
            daemon.wait_done(count, timeout=max(600.0, count * 3.0))
            cpu = cpu_seconds(daemon.pid) - cpu_before
            os.kill(daemon.pid, signal.SIGUSR1)
            wait_until(report.exists, timeout=30, interval=0.05, what="the stage report")
            time.sleep(0.2)  # written whole (it is small)
    finally:
        os.environ.pop(REPORT_ENV, None)
    result: dict[str, Any] = json.loads(report.read_text())
    result["cpu_after_start"] = cpu
    return result


def main() -> int:
    from throughput import bare_run  # the same bare client as the throughput benchmark

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--json", type=Path, help="also write the per-stage figures here")
    parser.add_argument(
        "--callgrind",
        type=int,
        metavar="N",
        help="instead: instructions per file of the daemon and the bare client, N files, under "
        "valgrind's callgrind (minutes; independent of the machine's load)",
    )
    parser.add_argument(
        "--serialized",
        action="store_true",
        help="run the daemon under valgrind --tool=none: one thread at a time, so the figures "
        "are of work done, not of contention (slow: about a minute for 100 files)",
    )
    args = parser.parse_args()
    InstrumentedDaemon.serialized = args.serialized
    if args.callgrind:
        print(f"profile_stages --callgrind: {args.callgrind} one-page PDFs; {machine()}")
        with temp_root("callgrind", args.keep) as root:
            callgrind_figures(root, args.callgrind)
        budget(True, "none: a profile (see throughput.py for the budget)")
        return 0
    count = 20 if args.quick else args.files
    print(f"profile_stages: {count} one-page PDFs, concurrency {CONCURRENCY}; {machine()}")
    with temp_root("stages", args.keep) as root:
        sources = write_pdfs(root / "bare-in", count, prefix="bare")
        with SandboxProcess() as box:
            before = time.process_time()
            bare_run(box.url, box.key, sources, root / "bare-out", "pdf")
            bare_ms = (time.process_time() - before) / count * 1000
        with SandboxProcess() as box:
            result = run_daemon(root / "daemon", box.url, box.key, count, root / "report.json")
    stages: dict[str, int] = result["stages"]
    calls: dict[str, int] = result["calls"]
    total_ms = sum(stages.values()) / 1e6 / count
    walls: dict[str, int] = result["walls"]
    print(f"  {'stage':<52} {'ms CPU/file':>11} {'share':>6} {'calls/file':>10} {'ms wall':>8}")
    for stage, spent in sorted(stages.items(), key=lambda item: -item[1]):
        per_file = spent / 1e6 / count
        share = per_file / total_ms * 100 if total_ms else 0.0
        per = calls.get(stage, 0) / count
        shown = f"{per:.1f}" if stage in calls else ""
        wall = f"{walls[stage] / 1e6 / count:.3f}" if stage in walls else ""
        print(f"  {stage:<52} {per_file:>11.3f} {share:>5.1f}% {shown:>10} {wall:>8}")
    print(f"  {'all threads but main':<52} {total_ms:>11.3f}")
    daemon_ms = result["cpu_after_start"] / count * 1000
    note(
        f"daemon process {daemon_ms:.2f} ms CPU per file from Daemon.start (/proc, with the "
        f"wrappers), bare client {bare_ms:.2f} ms: ratio {daemon_ms / bare_ms:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"files": count, "bare_ms": bare_ms, **result}))
    figures("profile_stages", files=count, daemon_ms_per_file=daemon_ms, bare_ms_per_file=bare_ms)
    budget(True, "none: a profile (see throughput.py for the budget on CPU per file)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2:]))
    if sys.argv[1:2] == ["--bare-child"]:
        sys.exit(bare_child(sys.argv[2:]))
    sys.exit(main())
