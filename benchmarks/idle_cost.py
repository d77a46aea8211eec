"""Idle cost: the headless daemon with three inboxes and nothing to do.

`python -m watcher run --config CFG --no-tray` runs as a subprocess with the default watch
settings (settle_seconds 2, rescan every 300 s, `polling = "auto"`, which on a local disk means
OS events). Once start-up has settled (its "starting" log line plus --warmup seconds), the CPU
seconds it uses (utime + stime from /proc/PID/stat) are measured over --seconds, and its RSS
(VmRSS, and VmHWM, the peak since start) is read at the end. The same is measured with
`polling = true` as information (watchdog's polling observer stats every inbox every 2 s).
Budget (default settings): < 0.3 CPU-s per idle minute, RSS < 80 MB.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DaemonProcess,
    budget,
    cpu_seconds,
    figures,
    machine,
    mb,
    note,
    status,
    temp_root,
    write_config,
)

INBOXES = ("to-word", "to-excel", "to-text")


def measure(root: Path, polling: str, seconds: float, warmup: float) -> dict[str, float]:
    # Nothing is sent, so the endpoint is never contacted: a closed local port is enough.
    setup = write_config(
        root,
        endpoint="http://127.0.0.1:9/ocrapiv1.html",
        inboxes=INBOXES,
        outformat="docx",
        concurrency=2,
        settle_seconds=2.0,
        polling=polling,
        poll_interval=5.0,
    )
    with DaemonProcess(setup) as daemon:
        daemon.wait_started()
        time.sleep(warmup)
        start_cpu, started = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        used, elapsed = cpu_seconds(daemon.pid) - start_cpu, time.monotonic() - started
        values = status(daemon.pid)
        if not daemon.alive():
            raise RuntimeError(f"the daemon died:\n{daemon.stderr_tail()}")
    return {
        "cpu_per_min": used / elapsed * 60,
        "cpu": used,
        "elapsed": elapsed,
        "rss_mb": mb(values.get("VmRSS", 0)),
        "hwm_mb": mb(values.get("VmHWM", 0)),
        "threads": values.get("Threads", 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle time measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="after start-up, not counted")
    parser.add_argument("--no-polling-run", action="store_true", help="skip polling = true")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    seconds, warmup, modes = args.seconds, args.warmup, ["auto", "true"]
    if args.quick:
        seconds, warmup, modes = 2.0, 0.5, ["auto"]
    elif args.no_polling_run:
        modes = ["auto"]
    print(f"idle cost: {len(INBOXES)} inboxes, {seconds:g} s measured; {machine()}")
    results = {}
    with temp_root("idle", args.keep) as root:
        for polling in modes:
            result = measure(root / polling, polling, seconds, warmup)
            results[polling] = result
            note(
                f"polling={polling}: {result['cpu']:.2f} CPU-s in {result['elapsed']:.1f} s "
                f"= {result['cpu_per_min']:.3f} CPU-s/min; RSS {result['rss_mb']:.1f} MB "
                f"(peak {result['hwm_mb']:.1f} MB); {result['threads']} threads"
            )
    default = results["auto"]
    extra = {}
    if "true" in results:
        extra = {
            "polling_cpu_s_per_min": results["true"]["cpu_per_min"],
            "polling_rss_mb": results["true"]["rss_mb"],
        }
    figures(
        "idle_cost",
        seconds=seconds,
        cpu_s_per_min=default["cpu_per_min"],
        rss_mb=default["rss_mb"],
        peak_rss_mb=default["hwm_mb"],
        threads=default["threads"],
        **extra,
    )
    budget(
        default["cpu_per_min"] < 0.3,
        f"idle CPU {default['cpu_per_min']:.3f} CPU-s per minute < 0.3",
    )
    budget(default["rss_mb"] < 80, f"idle RSS {default['rss_mb']:.1f} MB < 80 MB")
    if "true" in results:
        polled = results["true"]
        note(
            "polling = true (information, same budgets): "
            f"{'PASS' if polled['cpu_per_min'] < 0.3 and polled['rss_mb'] < 80 else 'FAIL'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
