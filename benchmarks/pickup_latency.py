"""Pickup latency: from a file's last write to the start of its upload, minus settle_seconds.

The daemon runs as its own process (`python -m watcher run --no-tray`) against a sandbox in
another process; this process writes the files into the inbox (open, write, close: what a
scanner or a copy does) and notes the time after the close. The start of the upload is the
job's `sent_at` in the journal (set by the runner just before it sends the file); the moment
the request reached the sandbox is reported too.

Two ways of arriving, each with OS events (`polling = false`) and with polling (`polling =
true`):
- one at a time: 200 files, one every --spacing seconds (the previous one is not waited for);
- burst: 200 files written back to back. A burst's uploads queue behind `concurrency`
  workers, so there the budget is judged on the time to the journal (the job is queued:
  pickup proper), and the time to the upload start, which adds the queue, is information.

Budgets (p99): < 250 ms with OS events; < one poll interval + 250 ms with polling (watchdog's
polling observer looks every min(2, max(0.5, settle_seconds)) seconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DaemonProcess,
    SandboxProcess,
    budget,
    count_jobs,
    figures,
    machine,
    note,
    pdf_bytes,
    percentile,
    query,
    temp_root,
    wait_until,
    write_config,
)


def poll_interval_of(settle: float) -> float:
    """What watcher.inbox gives watchdog's PollingObserver as its timeout."""
    return min(2.0, max(0.5, settle))


def run_case(
    root: Path,
    *,
    polling: bool,
    burst: bool,
    count: int,
    settle: float,
    spacing: float,
    chunk_pause: float = 0.0,
) -> dict[str, list[float]]:
    root.mkdir(parents=True, exist_ok=True)
    record = root / "arrivals.tsv"
    with SandboxProcess(record=record) as box:
        setup = write_config(
            root,
            endpoint=box.url,
            key=box.key,
            concurrency=4,
            settle_seconds=settle,
            polling="true" if polling else "false",
            outformat="pdf",
        )
        inbox = setup.inboxes[0]
        payloads = [pdf_bytes(number, "pickup") for number in range(count)]
        written: dict[str, float] = {}
        with DaemonProcess(setup) as daemon:
            daemon.wait_started()
            time.sleep(1.0)  # the first rescan and the observers are up
            for number, payload in enumerate(payloads):
                name = f"pickup{number:04d}.pdf"
                with (inbox / name).open("wb") as out:
                    if chunk_pause:  # a writer that takes its time, like a scanner or a copy
                        out.write(payload[:100])
                        out.flush()
                        time.sleep(chunk_pause)
                        out.write(payload[100:])
                    else:
                        out.write(payload)
                written[name] = time.time()
                if not burst:
                    time.sleep(spacing)
            done = wait_until(
                lambda: count_jobs(setup.journal, "done") >= count or not daemon.alive(),
                timeout=60 + count * 0.2 + 3 * settle,
                what=f"{count} jobs done",
            )
            if not done or count_jobs(setup.journal, "done") < count:
                raise RuntimeError(f"not all jobs were done:\n{daemon.stderr_tail()}")
            rows = query(setup.journal, "SELECT source, remote_name, created_at, sent_at FROM jobs")
    arrivals = {}
    for line in record.read_text().splitlines():
        remote, arrived, _read = line.split("\t")
        arrivals[remote] = float(arrived)
    result: dict[str, list[float]] = {"journaled": [], "sent": [], "arrived": []}
    for source, remote, created_at, sent_at in rows:
        base = written[Path(source).name]
        result["journaled"].append(created_at - base - settle)
        result["sent"].append(sent_at - base - settle)
        if remote in arrivals:
            result["arrived"].append(arrivals[remote] - base - settle)
    return result


def ms(value: float) -> str:
    return f"{value * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--settle", type=float, default=2.0, help="settle_seconds (default 2)")
    parser.add_argument("--spacing", type=float, default=0.25, help="seconds between drops")
    parser.add_argument(
        "--chunk-pause",
        type=float,
        default=0.0,
        help="write each file in two parts this many seconds apart (default: one write)",
    )
    parser.add_argument(
        "--cases",
        default="events-one,events-burst,polling-one,polling-burst",
        help="comma-separated subset of events-one, events-burst, polling-one, polling-burst",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    count, settle, spacing = args.files, args.settle, args.spacing
    known = {
        "events-one": (False, False),
        "events-burst": (False, True),
        "polling-one": (True, False),
        "polling-burst": (True, True),
    }
    cases = [known[name.strip()] for name in args.cases.split(",") if name.strip()]
    if args.quick:
        count, settle, spacing, cases = 5, 0.3, 0.1, [(False, False)]
    how_written = (
        f"written in two parts {args.chunk_pause:g} s apart"
        if args.chunk_pause
        else ("each written in one go")
    )
    print(
        f"pickup latency: {count} files per case, {how_written}, settle_seconds {settle}; "
        f"{machine()}"
    )
    values: dict[str, object] = {}
    verdicts: list[tuple[bool, str]] = []
    with temp_root("pickup", args.keep) as root:
        for polling, burst in cases:
            mode = "polling" if polling else "events"
            how = "burst" if burst else "one-at-a-time"
            result = run_case(
                root / f"{mode}-{how}",
                polling=polling,
                burst=burst,
                count=count,
                settle=settle,
                spacing=spacing,
                chunk_pause=args.chunk_pause,
            )
            limit = 0.25 + (poll_interval_of(settle) if polling else 0.0)
            judged = "journaled" if burst else "sent"
            p50, p99 = percentile(result[judged], 50), percentile(result[judged], 99)
            note(
                f"{mode:7} {how:13} to journal p50/p99 {ms(percentile(result['journaled'], 50))}"
                f"/{ms(percentile(result['journaled'], 99))} ms, to upload start "
                f"{ms(percentile(result['sent'], 50))}/{ms(percentile(result['sent'], 99))} ms,"
                f" to the sandbox {ms(percentile(result['arrived'], 50))}"
                f"/{ms(percentile(result['arrived'], 99))} ms"
            )
            key = f"{mode}_{how.replace('-', '_')}"
            values[f"{key}_p50_ms"] = ms(p50)
            values[f"{key}_p99_ms"] = ms(p99)
            target = "journal" if burst else "upload start"
            verdicts.append(
                (p99 < limit, f"{mode} {how}: p99 to {target} {ms(p99)} ms < {ms(limit)} ms")
            )
    figures("pickup_latency", files=count, settle_s=settle, **values)
    for met, what in verdicts:
        budget(met, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
