"""Big file: a 500 MB PDF converted to PDF (so the result is 500 MB too), the daemon's memory.

The PDF is generated in a temporary folder (a valid header, one page whose content stream is
~500 MB of filler comments, a correct xref table, trailer and %%EOF), checked with
`watcher.preflight.inspect_file` (it must be accepted and counted as 1 page), renamed into the
inbox of a daemon subprocess (`python -m watcher run --no-tray`), and its result downloaded
from a sandbox running in its own process (benchmarks/sandbox_server.py), so the sandbox's
memory is not counted. The daemon's RSS is sampled every 10 ms; the growth is its peak (the
larger of the sampled VmRSS and VmHWM) minus its VmRSS once started and idle. Everything is
deleted afterwards. Budget: peak RSS growth < 50 MB.
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
    query,
    status,
    temp_root,
    wait_until,
    write_config,
)

from watcher.preflight import inspect_file

CHUNK = 8 * 1024 * 1024


def write_big_pdf(path: Path, size: int) -> int:
    """A one-page PDF of about `size` bytes, written in chunks; returns its real size."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>",
    ]
    line = b"% filler line of a big benchmark page, padding the content stream out\n"
    filler_length = max(len(line), size - 1024) // len(line) * len(line)
    offsets = []
    with path.open("wb") as out:
        out.write(head)
        for number, body in enumerate(objects, start=1):
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        offsets.append(out.tell())
        out.write(b"4 0 obj\n<< /Length %d >>\nstream\n" % filler_length)
        block = line * (CHUNK // len(line))
        left = filler_length
        while left:
            piece = block[: min(left, len(block))]
            out.write(piece)
            left -= len(piece)
        out.write(b"\nendstream\nendobj\n")
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
        out.write(
            b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(offsets) + 1, xref)
        )
        return out.tell()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=500, help="size of the PDF in MB")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    size_mb = 5 if args.quick else args.mb
    print(f"big file: a {size_mb} MB PDF to pdf; {machine()}")
    with temp_root("bigfile", args.keep) as root:
        source = root / "big.pdf"
        began = time.monotonic()
        size = write_big_pdf(source, size_mb * 1024 * 1024)
        generated = time.monotonic() - began
        began = time.monotonic()
        facts = inspect_file(source, outformat="pdf")
        inspected = time.monotonic() - began
        if facts.pages != 1:
            raise RuntimeError(f"inspect_file counted {facts.pages} pages, not 1")
        note(
            f"generated {size / 2**20:.0f} MB in {generated:.1f} s; inspect_file accepts it "
            f"({facts.kind.value}, {facts.pages} page) in {inspected:.2f} s"
        )
        with SandboxProcess(workdir=root / "sandbox") as box:
            setup = write_config(
                root / "daemon",
                endpoint=box.url,
                key=box.key,
                concurrency=1,
                settle_seconds=0.0,
                polling="false",
                outformat="pdf",
            )
            with DaemonProcess(setup) as daemon:
                daemon.wait_started()
                time.sleep(1.5)
                before = status(daemon.pid)
                baseline_kb, baseline_hwm = before.get("VmRSS", 0), before.get("VmHWM", 0)
                sampler = Sampler(daemon.pid, interval=0.01).start()
                dropped = time.time()
                os.rename(source, setup.inboxes[0] / source.name)
                done = wait_until(
                    lambda: (
                        count_jobs(setup.journal, "done") >= 1
                        or count_jobs(setup.journal, "failed") >= 1
                        or not daemon.alive()
                    ),
                    timeout=600,
                    interval=0.1,
                    what="the big file converted",
                )
                sampler.stop()
                hwm_kb = status(daemon.pid).get("VmHWM", 0)
                sandbox_hwm_kb = status(box.pid).get("VmHWM", 0)
                rows = query(setup.journal, "SELECT state, error, sent_at, updated_at FROM jobs")
                if not done or not rows or rows[0][0] != "done":
                    raise RuntimeError(
                        f"the big file was not converted: {rows}\n{daemon.stderr_tail()}"
                    )
            output = setup.outbox / "big.pdf"
            if output.stat().st_size != size:
                raise RuntimeError(f"result has {output.stat().st_size} bytes, not {size}")
            output.unlink()
        _, _, sent_at, finished = rows[0]
    peak_kb = sampler.peak_rss_kb
    if hwm_kb > baseline_hwm:  # a new high-water mark was set during the conversion
        peak_kb = max(peak_kb, hwm_kb)
    growth = mb(peak_kb - baseline_kb)
    note(
        f"daemon RSS {mb(baseline_kb):.1f} MB idle, peak {mb(peak_kb):.1f} MB "
        f"({sampler.samples} samples); dropped to preflight+upload start "
        f"{sent_at - dropped:.1f} s, upload start to filed {finished - sent_at:.1f} s; "
        f"the sandbox process peaked at {mb(sandbox_hwm_kb):.0f} MB (not counted)"
    )
    figures(
        "big_file",
        size_mb=round(size / 2**20),
        baseline_rss_mb=mb(baseline_kb),
        peak_rss_mb=mb(peak_kb),
        rss_growth_mb=growth,
        seconds=finished - dropped,
    )
    budget(growth < 50, f"daemon peak RSS growth {growth:.1f} MB < 50 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
