"""Chaos run: convert a batch through the sandbox while the network misbehaves and the daemon
is killed with SIGKILL at random moments, then prove nothing was lost or paid twice.

    python benchmarks/chaos.py [--files 100] [--kills 6] [--seed N]

Prints one line of figures; exits 1 if any file was lost, duplicated or damaged. The test
suite runs a smaller version of the same run (tests/test_chaos.py).
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watcher import samplepdf
from watcher.journal import JOURNAL_FILE_NAME
from watcher.sandbox import FaultRates, Sandbox, convert

INBOXES = {"to-word": "docx", "to-text": "txt"}


@dataclass(frozen=True)
class ChaosReport:
    files: int
    faults: dict[str, int]
    kills: int
    charges: int
    lost: int
    duplicated: int
    damaged: int
    leftovers: int
    seconds: float

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.damaged or self.leftovers)

    def line(self) -> str:
        faults = " ".join(f"{kind}={count}" for kind, count in sorted(self.faults.items()))
        return (
            f"chaos: files={self.files} faults[{faults}] kills={self.kills} "
            f"charges={self.charges} lost={self.lost} duplicated={self.duplicated} "
            f"damaged={self.damaged} leftovers={self.leftovers} seconds={self.seconds:.0f}"
        )


def write_rules(root: Path, box: Sandbox) -> Path:
    inboxes = "".join(
        f'[[inbox]]\npath = "{root / "inbox" / name}"\noutformat = "{fmt}"\n\n'
        for name, fmt in INBOXES.items()
    )
    rules = root / "config.toml"
    rules.write_text(
        f'[api]\nkey = "{box.key}"\nendpoint = "{box.url}"\npoll_interval = 0.2\n'
        "concurrency = 3\n\n"
        "[watch]\nsettle_seconds = 0.2\nrescan_seconds = 2\n\n"
        f'[files]\noutbox = "{root / "outbox"}"\narchive = "{root / "archive"}"\n'
        f'failed = "{root / "failed"}"\nstate_dir = "{root / "state"}"\n\n{inboxes}'
    )
    return rules


def make_batch(root: Path, files: int, rng: random.Random) -> dict[str, tuple[str, bytes]]:
    """name → (outformat, bytes): distinct contents, 1 to 3 pages, spread over the inboxes."""
    batch = {}
    for number in range(files):
        inbox = list(INBOXES)[number % len(INBOXES)]
        pages = [f"document {number} page {page}" for page in range(rng.randint(1, 3))]
        data = samplepdf.make_pdf(pages)
        name = f"doc-{number:04d}.pdf"
        (root / "inbox" / inbox).mkdir(parents=True, exist_ok=True)
        (root / "inbox" / inbox / name).write_bytes(data)
        batch[name] = (INBOXES[inbox], data)
    return batch


def done_count(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state / JOURNAL_FILE_NAME}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_daemon(rules: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def run_chaos(root: Path, *, files: int, kills: int, seed: int, timeout: float) -> ChaosReport:
    rng = random.Random(seed)
    started = time.monotonic()
    box = Sandbox(
        seconds_per_page=0.15,
        cut_after=0.25,
        workdir=root / "sandbox",
        seed=seed,
        faults=FaultRates(reset=0.1, http502=0.05, http429=0.05, truncate=0.1),
    ).start()
    try:
        rules = write_rules(root, box)
        box.inject("http503", 2)
        box.inject("http524", 2)
        batch = make_batch(root, files, rng)
        log = root / "daemon.stderr"
        for _ in range(kills):
            daemon = start_daemon(rules, log)
            time.sleep(rng.uniform(0.5, 2.5))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
        daemon = start_daemon(rules, log)
        try:
            deadline = time.monotonic() + timeout
            while done_count(root / "state") < files and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        return _judge(root, box, batch, kills, time.monotonic() - started)
    finally:
        box.stop()


def _judge(
    root: Path, box: Sandbox, batch: dict[str, tuple[str, bytes]], kills: int, seconds: float
) -> ChaosReport:
    with sqlite3.connect(f"file:{root / 'state' / JOURNAL_FILE_NAME}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT source, remote_name, state FROM jobs").fetchall()
    remote_to_name = {remote: Path(source).name for source, remote, _ in rows}
    charged = Counter(remote_to_name.get(c.filename, c.filename) for c in box.ledger())
    outbox = root / "outbox"
    lost = damaged = 0
    for name, (outformat, data) in batch.items():
        result = outbox / f"{Path(name).stem}.{outformat}"
        archived = (root / "archive" / name).exists()
        if not result.exists() or not archived:
            lost += 1
        elif result.read_bytes() != convert(data, "pdf", outformat):
            damaged += 1
    leftovers = sum(1 for p in outbox.iterdir() if p.name.startswith(".")) if outbox.exists() else 0
    unfinished = sum(1 for _, _, state in rows if state != "done")
    return ChaosReport(
        files=len(batch),
        faults=dict(box.fired),
        kills=kills,
        charges=sum(charged.values()),
        lost=max(lost, unfinished),
        duplicated=sum(count - 1 for count in charged.values() if count > 1)
        + max(0, len(list(outbox.iterdir())) - len(batch)),
        damaged=damaged,
        leftovers=leftovers,
        seconds=seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pdfocr-chaos-") as folder:
        report = run_chaos(
            Path(folder), files=args.files, kills=args.kills, seed=args.seed, timeout=args.timeout
        )
    print(report.line(), f"seed={args.seed}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
