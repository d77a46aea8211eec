"""Chaos run: convert a batch through the sandbox while the network misbehaves and the daemon
is killed with SIGKILL at random moments, then prove nothing was lost or paid twice.

    python benchmarks/chaos.py [--files 100] [--kills 6] [--seed N]

A file whose submission may have reached the service but which the service does not know
(killed before the upload left, a 5xx page in front of the service) is held, never sent
again by itself: the run then plays the user, who runs `pdfocr-watcher retry JOB...` for them,
and goes on. So "paid twice" is judged where it matters: no file is charged twice before
the user said so (`auto_duplicated`), and none more than once per time the user said so.

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


USER_ROUNDS = 3  # times the "user" sends held files again before the run is judged


@dataclass(frozen=True)
class ChaosReport:
    files: int
    faults: dict[str, int]
    kills: int
    charges: int
    held: int  # holds the user released (one file may be held more than once)
    auto_duplicated: int  # charges beyond one per file, before the user approved any
    lost: int
    duplicated: int  # charges beyond one per file and one per approval of it, and twins
    damaged: int
    leftovers: int
    seconds: float

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.auto_duplicated or self.duplicated or self.damaged or self.leftovers
        )

    def line(self) -> str:
        faults = " ".join(f"{kind}={count}" for kind, count in sorted(self.faults.items()))
        return (
            f"chaos: files={self.files} faults[{faults}] kills={self.kills} "
            f"charges={self.charges} held={self.held} auto_duplicated={self.auto_duplicated} "
            f"lost={self.lost} duplicated={self.duplicated} damaged={self.damaged} "
            f"leftovers={self.leftovers} seconds={self.seconds:.0f}"
        )


def write_rules(root: Path, box: Sandbox) -> Path:
    inboxes = "".join(
        f'[[inbox]]\npath = "{root / "inbox" / name}"\noutformat = "{fmt}"\n\n'
        for name, fmt in INBOXES.items()
    )
    rules = root / "config.toml"
    rules.write_text(
        f'[api]\nkey = "{box.key}"\nendpoint = "{box.url}"\npoll_interval = 0.2\n'
        "concurrency = 3\nlost_after = 1\n\n"
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


def journal_rows(state: Path, query: str) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{state / JOURNAL_FILE_NAME}?mode=ro", uri=True) as db:
            return db.execute(query).fetchall()
    except sqlite3.Error:
        return []


def settled(state: Path) -> bool:
    """Nothing in flight and nothing queued (or the whole queue held): only the user can
    move the run on now."""
    states = dict(journal_rows(state, "SELECT state, COUNT(*) FROM jobs GROUP BY state"))
    queue_held = journal_rows(state, "SELECT value FROM meta WHERE key = 'hold_reason'")
    moving = sum(states.get(s, 0) for s in ("uploading", "waiting_for_result", "downloading"))
    queued = states.get("queued", 0) + states.get("filing", 0)
    return bool(states) and not moving and (not queued or bool(queue_held))


def charges_by_file(root: Path, box: Sandbox) -> Counter[str]:
    """Charges per original file name, through every remote name a job was sent under."""
    rows = journal_rows(
        root / "state",
        "SELECT s.remote_name, j.source FROM submissions s JOIN jobs j ON j.id = s.job_id",
    )
    remote_to_name = {remote: Path(source).name for remote, source in rows}
    return Counter(remote_to_name.get(c.filename, c.filename) for c in box.ledger())


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
        late_names=0.4,  # shorter than lost_after: waited for
        lose_after_cut=0.05,  # charged, then unknown: held for the user
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
        deadline = time.monotonic() + timeout
        approvals: Counter[str] = Counter()
        before_any_approval: Counter[str] | None = None
        for _round in range(USER_ROUNDS + 1):
            daemon = start_daemon(rules, log)
            try:
                while not settled(root / "state") and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(0.5)  # settled, and stays so
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
            held_rows = journal_rows(
                root / "state", "SELECT id, source FROM jobs WHERE state = 'held'"
            )
            held = [Path(source).name for _, source in held_rows]
            if not held or time.monotonic() >= deadline:
                break
            if before_any_approval is None:
                before_any_approval = charges_by_file(root, box)
            approvals.update(held)
            subprocess.run(  # the user, having read the reasons, sends them again
                [sys.executable, "-m", "watcher", "retry", "--config", str(rules)]
                + [str(job_id) for job_id, _ in held_rows],
                stdout=subprocess.DEVNULL,
                check=True,
            )
        return _judge(
            root,
            box,
            batch,
            kills,
            time.monotonic() - started,
            approvals,
            before_any_approval or charges_by_file(root, box),
        )
    finally:
        box.stop()


def _judge(
    root: Path,
    box: Sandbox,
    batch: dict[str, tuple[str, bytes]],
    kills: int,
    seconds: float,
    approvals: Counter[str],
    before_any_approval: Counter[str],
) -> ChaosReport:
    rows = journal_rows(root / "state", "SELECT source, state FROM jobs")
    charged = charges_by_file(root, box)
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
    unfinished = sum(1 for _, state in rows if state != "done")
    allowed = {name: 1 + approvals[name] for name in batch}
    return ChaosReport(
        files=len(batch),
        faults=dict(box.fired),
        kills=kills,
        charges=sum(charged.values()),
        held=sum(approvals.values()),
        auto_duplicated=sum(count - 1 for count in before_any_approval.values() if count > 1),
        lost=max(lost, unfinished),
        duplicated=sum(max(0, count - allowed.get(name, 1)) for name, count in charged.items())
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
