"""Throughput: N one-page PDFs through the full daemon versus a bare upload+download script.

Both run against a sandbox in its own process with no conversion delay, at concurrency 4
(daemon `[api] concurrency = 4`; bare: 4 threads with requests). The daemon runs as its own
process (`python -m watcher run --no-tray`) with the files already in its inbox at start and
settle_seconds = 0; its time runs from Daemon.start (its "starting" log line) to the last job
filed (the newest DONE updated_at in its journal), so it includes journaling, hashing,
preflight, upload, download, filing and archiving. The bare script's time runs from its
first upload to its last download written. Budget: daemon >= 0.8 x bare files/s.
"""

from __future__ import annotations

import argparse
import statistics
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
    cpu_seconds,
    figures,
    machine,
    note,
    query,
    sandbox_charges,
    temp_root,
    write_config,
    write_pdfs,
)

CONCURRENCY = 4


def bare_run(url: str, key: str, files: list[Path], outdir: Path, outformat: str) -> float:
    """Upload + download only, 4 threads; returns the seconds from first upload to last file."""
    outdir.mkdir(parents=True, exist_ok=True)

    def convert(session: requests.Session, path: Path) -> str | None:
        body = bare_upload(session, url, key, path, f"{path.stem}-bare.pdf", outformat).json()
        link = body.get("data", {}).get("link")
        if not link:
            return str(body)
        bare_download(session, link, outdir / f"{path.stem}.{outformat}")
        return None

    return bare_client(files, CONCURRENCY, convert)


def daemon_run(root: Path, url: str, key: str, count: int, outformat: str) -> dict[str, float]:
    setup = write_config(
        root,
        endpoint=url,
        key=key,
        outformat=outformat,
        concurrency=CONCURRENCY,
        settle_seconds=0.0,
        polling="never",
    )
    write_pdfs(setup.inboxes[0], count)
    with DaemonProcess(setup) as daemon:
        started = daemon.wait_started()
        cpu_before = cpu_seconds(daemon.pid)
        daemon.wait_done(count, timeout=max(120.0, count * 0.5))
        cpu = cpu_seconds(daemon.pid) - cpu_before
        last = query(setup.journal, "SELECT MAX(updated_at), MIN(created_at) FROM jobs")[0]
        popen_at = daemon.started_at
    outputs = len(list(setup.outbox.iterdir()))
    if outputs != count:
        raise RuntimeError(f"daemon run: {outputs} outputs for {count} files")
    return {
        "seconds": last[0] - started,
        "with_process_start": last[0] - popen_at,
        "first_journaled_after": last[1] - started,
        "cpu": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5, help="bare/daemon pairs (median)")
    parser.add_argument("--outformat", default="pdf", choices=("pdf", "txt", "docx"))
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    count, repeat = (20, 1) if args.quick else (args.files, args.repeat)
    print(
        f"throughput: {count} one-page PDFs, concurrency {CONCURRENCY}, outformat "
        f"{args.outformat}, {repeat} bare/daemon pair(s), each on a fresh sandbox; {machine()}"
    )
    bare_rates, daemon_rates, ratios, cpu_ratios = [], [], [], []
    with temp_root("throughput", args.keep) as root:
        sources = write_pdfs(root / "bare-in", count, prefix="bare")
        for run in range(repeat):
            with SandboxProcess() as box:
                cpu_before = time.process_time()
                bare_seconds = bare_run(
                    box.url, box.key, sources, root / f"bare-out-{run}", args.outformat
                )
                bare_cpu = time.process_time() - cpu_before
                if sandbox_charges(box.url) != count:
                    raise RuntimeError("the bare run was not charged once per file")
            with SandboxProcess() as box:
                result = daemon_run(root / f"daemon-{run}", box.url, box.key, count, args.outformat)
                charged = sandbox_charges(box.url)
            bare_rates.append(count / bare_seconds)
            daemon_rates.append(count / result["seconds"])
            ratios.append(daemon_rates[-1] / bare_rates[-1])
            cpu_ratios.append(result["cpu"] / bare_cpu)
            note(
                f"run {run + 1}: bare {bare_seconds:.2f} s (first upload to last download "
                f"written; {bare_cpu / count * 1000:.1f} ms CPU per file), daemon "
                f"{result['seconds']:.2f} s (Daemon.start to last job filed; "
                f"{result['with_process_start']:.2f} s from process launch; "
                f"{result['cpu'] / count * 1000:.1f} ms CPU per file; sandbox charged "
                f"{charged}): ratio {ratios[-1]:.2f}"
            )
    ratio, cpu_ratio = statistics.median(ratios), statistics.median(cpu_ratios)
    figures(
        "throughput",
        files=count,
        daemon_files_per_s=statistics.median(daemon_rates),
        bare_files_per_s=statistics.median(bare_rates),
        ratio=ratio,
        cpu_ratio=cpu_ratio,
    )
    note(
        f"targets (not budgets): ratio >= 0.9 ({ratio:.2f}); CPU per file <= 1.3 x bare "
        f"({cpu_ratio:.2f} x, pairs {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
    )
    budget(ratio >= 0.8, f"daemon >= 0.8 x bare files/s (median ratio {ratio:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
