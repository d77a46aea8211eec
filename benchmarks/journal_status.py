"""`pdfocr-watcher status` on a journal of 100,000 finished jobs.

The journal is made with `watcher.journal.Journal` (so the schema is the daemon's own) and
filled with one executemany of finished jobs (90% done, 10% failed) spread over the last 60
days, over three inboxes. Then `status` and `status --json` are timed in-process
(`watcher.cli.main`, output captured; the first call and the median of --repeat calls) and as
a subprocess (`python -m watcher status`, which adds the interpreter start and the imports;
median of --repeat runs). Budget: `status` answers in < 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO,
    budget,
    figures,
    machine,
    note,
    temp_root,
    write_config,
)

from watcher import cli
from watcher.config import load_config
from watcher.daemon import Daemon
from watcher.journal import META_MODE, META_PAGES, META_PAGES_AT, Journal

COLUMNS = (
    "source, inbox, kind, url, content_hash, size, mtime_ns, outformat, lang, ocr, outbox, "
    "archive, failed, after_success, state, remote_name, pages, sent_at, link, output, "
    "attempts, not_before, error, available_pages, original_at, charged_on, held_until, "
    "approved, created_at, updated_at"
)


def fill_journal(path: Path, inboxes: list[Path], outbox: Path, count: int) -> float:
    """Adds `count` finished jobs; returns the seconds it took."""
    began = time.perf_counter()
    rng = random.Random(1)
    now = time.time()
    journal = Journal(path)
    journal.set_meta(META_MODE, "sandbox")
    journal.set_meta(META_PAGES, "123456")
    journal.set_meta(META_PAGES_AT, str(now))
    journal.close()
    rows = []
    for number in range(count):
        inbox = inboxes[number % len(inboxes)]
        created = now - rng.uniform(0, 60 * 86400)
        updated = created + rng.uniform(2, 60)
        failed = number % 10 == 9
        name = f"scan-{number:06d}"
        pages = rng.randint(1, 12)
        rows.append(
            (
                str(inbox / f"{name}.pdf"),
                str(inbox),
                "file",
                None,
                f"{number:064x}",
                rng.randint(20_000, 5_000_000),
                int(created * 1e9),
                "docx",
                "English",
                1,
                str(outbox),
                str(outbox.parent / "archive"),
                str(outbox.parent / "failed"),
                "archive",
                "failed" if failed else "done",
                f"{name}-{number:010x}.pdf",
                None if failed else pages,
                None if failed else created + 1,
                None if failed else f"https://pdfocr.org/doc/{number:x}/{name}.docx",
                None if failed else str(outbox / f"{name}.docx"),
                0,
                0.0,
                "the service refused it: damaged PDF" if failed else None,
                None if failed else 100_000 - number,
                str(outbox.parent / ("failed" if failed else "archive") / f"{name}.pdf"),
                None if failed else time.strftime("%Y-%m-%d", time.localtime(created + 1)),
                None,
                0,
                created,
                updated,
            )
        )
    placeholders = ",".join("?" * len(rows[0]))
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("BEGIN")
    db.executemany(f"INSERT INTO jobs ({COLUMNS}) VALUES ({placeholders})", rows)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - began


def in_process(config: Path, extra: list[str], repeat: int) -> tuple[float, float, str]:
    """(first call, median of the calls) in seconds, and the last output."""
    times = []
    output = ""
    for _ in range(repeat):
        buffer = io.StringIO()
        began = time.perf_counter()
        with contextlib.redirect_stdout(buffer):
            code = cli.main(["status", "--config", str(config), *extra])
        times.append(time.perf_counter() - began)
        if code != 0:
            raise RuntimeError(f"status {extra} exited {code}")
        output = buffer.getvalue()
    return times[0], statistics.median(times), output


def as_subprocess(config: Path, extra: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "watcher", "status", "--config", str(config), *extra],
            cwd=str(REPO),
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            raise RuntimeError(f"status {extra} exited {done.returncode}: {done.stderr}")
    return statistics.median(times)


def tray_snapshot(config: Path, repeat: int) -> float:
    """Median seconds of the snapshot the daemon hands the tray after every job change."""
    daemon = Daemon(load_config(config))
    try:
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            daemon.snapshot()
            times.append(time.perf_counter() - began)
    finally:
        daemon.close()
    return statistics.median(times)


def interpreter_start(repeat: int) -> float:
    """The baseline: a Python that starts and does nothing."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    count, repeat = (2_000, 2) if args.quick else (args.jobs, args.repeat)
    print(f"journal status: {count} finished jobs; {machine()}")
    with temp_root("status", args.keep) as root:
        setup = write_config(root, inboxes=("to-word", "to-excel", "to-text"))
        filled = fill_journal(setup.journal, setup.inboxes, setup.outbox, count)
        size = setup.journal.stat().st_size / 2**20
        note(f"journal of {count} jobs built in {filled:.1f} s ({size:.1f} MB)")
        text_first, text_median, text_out = in_process(setup.config, [], repeat)
        json_first, json_median, json_out = in_process(setup.config, ["--json"], repeat)
        if f"{count - count // 10}" not in text_out.replace(",", "") or '"counts"' not in json_out:
            raise RuntimeError(f"unexpected status output:\n{text_out}")
        text_sub = as_subprocess(setup.config, [], repeat)
        json_sub = as_subprocess(setup.config, ["--json"], repeat)
        bare_python = interpreter_start(repeat)
        snapshot = tray_snapshot(setup.config, repeat * 4)
    note(
        f"in-process: status first {text_first:.3f} s, median {text_median:.3f} s; "
        f"--json first {json_first:.3f} s, median {json_median:.3f} s"
    )
    note(
        f"subprocess (median of {repeat}): status {text_sub:.3f} s, --json {json_sub:.3f} s; "
        f"`python -c pass` alone {bare_python:.3f} s"
    )
    note(f"the tray's snapshot after each job change: {snapshot * 1000:.1f} ms (median)")
    figures(
        "journal_status",
        jobs=count,
        inproc_s=text_median,
        inproc_json_s=json_median,
        subprocess_s=text_sub,
        subprocess_json_s=json_sub,
        python_start_s=bare_python,
        tray_snapshot_ms=snapshot * 1000,
    )
    inproc = max(text_first, text_median, json_first, json_median)
    budget(inproc < 0.5, f"in-process status answers in {inproc:.3f} s < 0.5 s")
    worst = max(text_sub, json_sub)
    budget(worst < 0.5, f"`python -m watcher status` answers in {worst:.3f} s < 0.5 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
