"""Burst: 10,000 small files in one inbox, appearing at once or already there at start-up.

The daemon runs as a subprocess (`python -m watcher run --no-tray`, settle_seconds 0,
concurrency 4, OS events) against a sandbox in another process that refuses its key: the
first upload is refused and the whole queue is held, so nothing more is sent and the
measurement is about noticing, checking and journaling files. Reported:
- time until every file is a job in the journal (polled read-only every 0.1 s): from the
  first file moved in ("appear": files are written beside the inbox, then renamed into it one
  after another as fast as possible, each whole on arrival), or from Daemon.start ("at
  start-up": the files are in the inbox before the daemon is launched);
- peak RSS (the larger of VmHWM and the sampled VmRSS) and peak thread count (sampled every
  20 ms from /proc/PID/status), with the daemon's thread count when idle before the burst.
Budgets: all journaled within 60 s; RSS < 200 MB; threads bounded by configuration (the peak
stays at the idle count, which is fixed by concurrency and the number of inboxes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DaemonProcess,
    Sampler,
    SandboxProcess,
    budget,
    count_jobs,
    figures,
    machine,
    mb,
    note,
    pdf_bytes,
    status,
    temp_root,
    wait_until,
    write_config,
)

BUDGET_SECONDS = 60.0


def make_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    template = pdf_bytes(0, "burst")
    paths = []
    for number in range(count):
        path = folder / f"burst{number:05d}.pdf"
        # distinct bytes per file, still a valid PDF: a comment after the header
        path.write_bytes(template.replace(b"\n", f"\n%{number:08d}\n".encode(), 1))
        paths.append(path)
    return paths


def run_case(root: Path, count: int, *, at_start: bool, timeout: float) -> dict[str, float]:
    with SandboxProcess() as box:
        setup = write_config(
            root,
            endpoint=box.url,
            key="refused-key",  # the sandbox refuses it: the queue is held after one try
            concurrency=4,
            settle_seconds=0.0,
            polling="false",
        )
        inbox = setup.inboxes[0]
        staged = make_files(inbox if at_start else root / "staging", count)
        with DaemonProcess(setup) as daemon:
            sampler = Sampler(daemon.pid).start()
            started = daemon.wait_started()
            idle_threads = 0
            if not at_start:
                time.sleep(1.0)
                idle_threads = status(daemon.pid).get("Threads", 0)
                began = time.time()
                for path in staged:
                    os.rename(path, inbox / path.name)
                moved = time.time() - began
            else:
                began, moved = started, 0.0
            finished = wait_until(
                lambda: count_jobs(setup.journal) >= count or not daemon.alive(),
                timeout=timeout,
                interval=0.1,
                what=f"{count} jobs journaled",
            )
            journaled_at = time.time()
            jobs = count_jobs(setup.journal)
            sampler.stop()
            hwm = status(daemon.pid).get("VmHWM", 0)
            held = "held" in setup.log.read_text(errors="replace")
            if not daemon.alive():
                raise RuntimeError(f"the daemon died:\n{daemon.stderr_tail()}")
    return {
        "seconds": (journaled_at - began) if finished and jobs >= count else float("inf"),
        "journaled": jobs,
        "moved_in": moved,
        "peak_rss_mb": mb(max(hwm, sampler.peak_rss_kb)),
        "peak_threads": sampler.peak_threads,
        "idle_threads": idle_threads,
        "held": held,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after (s)")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    count, timeout = (200, 30.0) if args.quick else (args.files, args.timeout)
    print(f"burst: {count} small PDFs in one inbox, sending held (key refused); {machine()}")
    results = {}
    with temp_root("burst", args.keep) as root:
        for at_start in (False, True):
            name = "at_start" if at_start else "appear"
            result = run_case(root / name, count, at_start=at_start, timeout=timeout)
            results[name] = result
            origin = "Daemon.start" if at_start else "the first file moved in"
            note(
                f"{name}: {result['journaled']}/{count} journaled {result['seconds']:.2f} s "
                f"after {origin} (moving them in took {result['moved_in']:.2f} s); peak RSS "
                f"{result['peak_rss_mb']:.1f} MB; peak threads {result['peak_threads']}"
                + (f" (idle before: {result['idle_threads']})" if not at_start else "")
                + ("; queue held as planned" if result["held"] else "; queue NOT held")
            )
    appear, at_start = results["appear"], results["at_start"]
    idle_threads = appear["idle_threads"]
    figures(
        "burst",
        files=count,
        appear_s=appear["seconds"],
        at_start_s=at_start["seconds"],
        appear_peak_rss_mb=appear["peak_rss_mb"],
        at_start_peak_rss_mb=at_start["peak_rss_mb"],
        appear_peak_threads=appear["peak_threads"],
        at_start_peak_threads=at_start["peak_threads"],
        idle_threads=idle_threads,
    )
    for name, result in results.items():
        budget(
            result["seconds"] <= BUDGET_SECONDS,
            f"{name}: all {count} journaled in {result['seconds']:.1f} s <= 60 s",
        )
        budget(
            result["peak_rss_mb"] < 200, f"{name}: peak RSS {result['peak_rss_mb']:.1f} < 200 MB"
        )
        budget(
            result["peak_threads"] <= idle_threads,
            f"{name}: peak threads {result['peak_threads']} <= {idle_threads} (idle, fixed by "
            "the configuration)",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
