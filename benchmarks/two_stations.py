"""Two stations on one shared inbox finish a batch faster than one: claims cost little.

Two daemons (`python -m watcher run --no-tray`), each with its own rules file and state
folder, watch the same inbox with `[watch] shared = true` and file into the same outbox;
N one-page PDFs arrive. Each station claims a file in the
inbox's `.pdfocr-claims` folder before it journals it, so each file is converted, paid and
filed once (checked: the sandbox charged N times, the outbox holds N results). The files
are moved into the inbox one after another once both stations are watching (a copy or a
scanner's batch arriving): a station claims a file when one of its workers is free
(watcher/stations.py), so the batch is shared by pace, not by who saw it first. The sandbox
(its own process) takes 0.25 s per page, so that, as with the real service, the conversions
in flight (4 per station) set the pace, not this machine's CPU.

Makespan: from the first file moved in to the last job filed in either journal.
Measured in the same run: one station on the same shared inbox (claims on), and one with
`shared = false` (no claims), for the claims' own cost. Budgets: two stations' makespan at
most 1/1.5 of one station's (speed-up >= 1.5; 2 is the ideal), and one station with claims
within 5 % of one without.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DaemonProcess,
    SandboxProcess,
    Setup,
    budget,
    count_jobs,
    figures,
    last_filed,
    machine,
    note,
    sandbox_charges,
    temp_root,
    wait_until,
    write_config,
    write_pdfs,
)

CONCURRENCY = 4
SECONDS_PER_PAGE = 0.25


def station_setups(root: Path, url: str, key: str, stations: int, shared: bool) -> list[Setup]:
    """Rules files that differ only in their state folder (and the folder they are in)."""
    first = write_config(
        root / "station-1",
        endpoint=url,
        key=key,
        concurrency=CONCURRENCY,
        settle_seconds=0.0,
        polling="never",
        shared=shared,
    )
    setups = [first]
    text = first.config.read_text()
    for number in range(2, stations + 1):
        folder = root / f"station-{number}"
        state = folder / "state"
        state.mkdir(parents=True)
        config = folder / "config.toml"
        config.write_text(text.replace(f'"{first.state_dir}"', f'"{state}"'))
        config.chmod(0o600)
        setups.append(
            Setup(folder, config, first.inboxes, first.outbox, first.archive, first.failed, state)
        )
    return setups


def batch_run(root: Path, count: int, stations: int, shared: bool) -> tuple[float, list[int]]:
    """Makespan of `count` files dropped into the inbox of `stations` running daemons (moved
    in one after another, as a copy or a scanner's batch arrives); and the jobs each did."""
    with SandboxProcess(seconds_per_page=SECONDS_PER_PAGE) as box:
        setups = station_setups(root, box.url, box.key, stations, shared)
        inbox = setups[0].inboxes[0]
        batch = write_pdfs(root / "batch", count)
        with contextlib.ExitStack() as stack:
            daemons = [stack.enter_context(DaemonProcess(setup)) for setup in setups]
            for daemon in daemons:
                daemon.wait_started()
            time.sleep(1.0)  # both watching: the start-up scan is over
            dropped = time.time()
            for path in batch:
                path.rename(inbox / path.name)

            def done() -> int:
                return sum(count_jobs(setup.journal, "done") for setup in setups)

            if not wait_until(
                lambda: done() >= count or not all(d.alive() for d in daemons),
                timeout=max(120.0, count * 2.0),
                interval=0.05,
                what=f"{count} jobs done",
            ):
                tails = "\n".join(daemon.stderr_tail() for daemon in daemons)
                raise RuntimeError(f"{done()}/{count} done\n{tails}")
            last = max(last_filed(setup.journal) for setup in setups)
            per_station = [count_jobs(setup.journal, "done") for setup in setups]
        charged = sandbox_charges(box.url)
    results = len([p for p in setups[0].outbox.iterdir() if not p.name.startswith(".")])
    if charged != count or results != count or sum(per_station) != count:
        raise RuntimeError(
            f"{count} files: {charged} charged, {results} results, jobs done {per_station}"
        )
    return last - dropped, per_station


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    count = 16 if args.quick else args.files
    print(
        f"two_stations: {count} one-page PDFs on one shared inbox, {SECONDS_PER_PAGE:g} s per "
        f"page, concurrency {CONCURRENCY} per station; {machine()}"
    )
    with temp_root("stations", args.keep) as root:
        alone, _ = batch_run(root / "unshared", count, 1, shared=False)
        note(f"one station, shared = false (no claims): {alone:.2f} s")
        one, _ = batch_run(root / "one", count, 1, shared=True)
        note(f"one station, shared = true: {one:.2f} s")
        two, split = batch_run(root / "two", count, 2, shared=True)
        note(f"two stations, shared = true: {two:.2f} s (jobs per station: {split})")
    speedup = one / two
    claims = one / alone
    figures(
        "two_stations",
        files=count,
        one_unshared_seconds=alone,
        one_seconds=one,
        two_seconds=two,
        speedup=speedup,
        claims_ratio=claims,
    )
    budget(speedup >= 1.5, f"two stations >= 1.5 x as fast as one (speed-up {speedup:.2f})")
    budget(claims <= 1.05, f"one station with claims <= 1.05 x without (ratio {claims:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
