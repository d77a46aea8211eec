"""Makespan against a realistic service: the daemon versus a bare client that polls the same way.

The sandbox (in its own process) converts at 1 s per page and cuts every submission's reply
with a 524 page after 10 s, as the real service's CDN does (after 100 s there), so every
result of these 12-page PDFs comes by polling. Both sides run 8 conversions at once
(daemon `[api] concurrency = 8`; bare: 8 threads with requests) and poll the same way: at
once after the 524, then every `poll_interval` (5 s, the product's default), until the
reply is the result; then they download it. All files have the same page count, so the
order in which each side takes them does not change its makespan.

Bare: from its first upload to its last download written. Daemon (`python -m watcher run
--no-tray`, files in the inbox at start, settle_seconds = 0): from Daemon.start (its
"starting" log line) to its last job filed. Budget: the daemon's makespan within 2 % of the
bare client's (ratio daemon / bare <= 1.02). Here the service's time dominates; what this
measures is that the daemon's journaling, checks and filing add nothing a user could see.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests
from common import (
    DaemonProcess,
    SandboxProcess,
    budget,
    count_jobs,
    figures,
    machine,
    note,
    query,
    temp_root,
    wait_until,
    write_config,
)

from watcher.samplepdf import make_pdf

CONCURRENCY = 8
POLL_INTERVAL = 5.0  # the product's default [api] poll_interval
SECONDS_PER_PAGE = 1.0
CUT_AFTER = 10.0
PAGES = 12  # done 12 s after the upload: between the polls at 10 s and 15 s, with room


def write_batch(folder: Path, count: int, pages: int, prefix: str) -> list[Path]:
    """`count` PDFs of `pages` pages, each with different bytes (none reused by the daemon)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"{prefix}{number:03d}.pdf"
        path.write_bytes(make_pdf([f"{prefix} {number}, page {page + 1}" for page in range(pages)]))
        paths.append(path)
    return paths


def bare_run(url: str, key: str, files: list[Path], outdir: Path, poll_interval: float) -> float:
    """Upload, poll after a 524 (at once, then every poll_interval), download; 8 threads.
    Returns the seconds from the first upload to the last file written."""
    outdir.mkdir(parents=True, exist_ok=True)
    todo: queue.Queue[Path] = queue.Queue()
    for path in files:
        todo.put(path)
    errors: list[str] = []

    def link_of(reply: requests.Response) -> str | None:
        try:
            return str(reply.json()["data"]["link"])
        except (ValueError, KeyError, TypeError):
            return None  # a 524 page, or not ready yet

    def work() -> None:
        session = requests.Session()
        while True:
            try:
                path = todo.get_nowait()
            except queue.Empty:
                break
            remote = f"{path.stem}-bare.pdf"
            fields = {"apikey": key, "lang": "English", "outformat": "pdf", "ocr": "1"}
            with path.open("rb") as handle:
                reply = session.post(
                    url,
                    data={**fields, "filename": remote},
                    files={"file": (remote, handle, "application/octet-stream")},
                    timeout=120,
                )
            link = link_of(reply)
            deadline = time.monotonic() + 600
            while link is None and time.monotonic() < deadline:
                poll = {"apikey": key, "filename": remote, "outformat": "pdf"}
                link = link_of(session.get(url, params=poll, timeout=30))
                if link is None:
                    time.sleep(poll_interval)
            if link is None:
                errors.append(f"{path.name}: no result")
                continue
            with session.get(link, stream=True, timeout=120) as download:
                download.raise_for_status()
                with (outdir / path.name).open("wb") as out:
                    for chunk in download.iter_content(64 * 1024):
                        out.write(chunk)
        session.close()

    threads = [threading.Thread(target=work) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"bare run: {len(errors)} failed, first: {errors[0]}")
    return elapsed


def daemon_run(
    root: Path, url: str, key: str, count: int, pages: int, poll_interval: float
) -> float:
    setup = write_config(
        root,
        endpoint=url,
        key=key,
        concurrency=CONCURRENCY,
        settle_seconds=0.0,
        polling="never",
        poll_interval=poll_interval,
    )
    write_batch(setup.inboxes[0], count, pages, "daemon")
    with DaemonProcess(setup) as daemon:
        started = daemon.wait_started()
        finished = wait_until(
            lambda: count_jobs(setup.journal, "done") >= count or not daemon.alive(),
            timeout=600,
            interval=0.05,
            what=f"{count} jobs done",
        )
        if not finished or count_jobs(setup.journal, "done") < count:
            states = query(setup.journal, "SELECT state, COUNT(*) FROM jobs GROUP BY state")
            raise RuntimeError(f"daemon run: states {states}\n{daemon.stderr_tail()}")
        last = query(setup.journal, "SELECT MAX(updated_at) FROM jobs")[0][0]
    return float(last) - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=1, help="bare/daemon pairs (median)")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if args.quick:  # still cut and polled, in seconds
        count, pages, per_page, cut, interval, repeat = 4, 2, 0.5, 0.5, 0.5, 1
    else:
        count, pages, per_page, cut, interval = (
            args.files,
            PAGES,
            SECONDS_PER_PAGE,
            CUT_AFTER,
            POLL_INTERVAL,
        )
        repeat = args.repeat
    print(
        f"service_makespan: {count} PDFs of {pages} pages, {per_page:g} s per page, replies "
        f"cut with a 524 after {cut:g} s, polled every {interval:g} s, concurrency "
        f"{CONCURRENCY}, {repeat} bare/daemon pair(s); {machine()}"
    )
    ratios, bares, daemons = [], [], []
    with temp_root("makespan", args.keep) as root:
        sources = write_batch(root / "bare-in", count, pages, "bare")
        for run in range(repeat):
            with SandboxProcess(seconds_per_page=per_page, cut_after=cut) as box:
                bare = bare_run(box.url, box.key, sources, root / f"bare-out-{run}", interval)
            with SandboxProcess(seconds_per_page=per_page, cut_after=cut) as box:
                daemon = daemon_run(
                    root / f"daemon-{run}", box.url, box.key, count, pages, interval
                )
            bares.append(bare)
            daemons.append(daemon)
            ratios.append(daemon / bare)
            note(f"run {run + 1}: bare {bare:.2f} s, daemon {daemon:.2f} s: ratio {ratios[-1]:.3f}")
    ratio = sorted(ratios)[len(ratios) // 2]
    figures(
        "service_makespan",
        files=count,
        bare_seconds=sorted(bares)[len(bares) // 2],
        daemon_seconds=sorted(daemons)[len(daemons) // 2],
        ratio=ratio,
    )
    budget(ratio <= 1.02, f"daemon makespan <= 1.02 x bare (ratio {ratio:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
