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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests
from common import (
    DaemonProcess,
    SandboxProcess,
    bare_client,
    bare_download,
    bare_upload,
    budget,
    figures,
    last_filed,
    machine,
    note,
    temp_root,
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

    def link_of(reply: requests.Response) -> str | None:
        try:
            return str(reply.json()["data"]["link"])
        except (ValueError, KeyError, TypeError):
            return None  # a 524 page, or not ready yet

    def convert(session: requests.Session, path: Path) -> str | None:
        remote = f"{path.stem}-bare.pdf"
        link = link_of(bare_upload(session, url, key, path, remote, "pdf"))
        deadline = time.monotonic() + 600
        while link is None and time.monotonic() < deadline:
            poll = {"apikey": key, "filename": remote, "outformat": "pdf"}
            link = link_of(session.get(url, params=poll, timeout=30))
            if link is None:
                time.sleep(poll_interval)
        if link is None:
            return "no result"
        bare_download(session, link, outdir / path.name)
        return None

    return bare_client(files, CONCURRENCY, convert)


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
        daemon.wait_done(count, timeout=600, interval=0.05)
        return last_filed(setup.journal) - started


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
