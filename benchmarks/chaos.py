"""Chaos run: convert a batch through the sandbox while the network misbehaves and the daemon
is killed with SIGKILL at random moments, then prove nothing was lost or paid twice.

    python benchmarks/chaos.py [--files 100] [--kills 6] [--seed N] [--stations 3]

With --stations N, N daemons with their own state folders watch the same inboxes (PCs on
one network folder): each kill takes one of them down at random, and it starts again.

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


USER_ROUNDS = 10  # times the "user" sends held files again before the run is judged
CLAIM_LEASE = 2.0  # seconds: a killed station's files are taken over quickly


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


def write_rules(root: Path, box: Sandbox, station: int, stations: int) -> Path:
    """One station's rules; with several stations they share the inboxes and the outbox,
    each with its own state folder, as PCs on one network folder do."""
    inboxes = "".join(
        f'[[inbox]]\npath = "{root / "inbox" / name}"\noutformat = "{fmt}"\n\n'
        for name, fmt in INBOXES.items()
    )
    shared = f"shared = true\nclaim_lease = {CLAIM_LEASE}\n" if stations > 1 else ""
    rules = root / f"config-{station}.toml"
    rules.write_text(
        f'[api]\nkey = "{box.key}"\nendpoint = "{box.url}"\npoll_interval = 0.2\n'
        "concurrency = 3\nlost_after = 1\n\n"
        f"[watch]\nsettle_seconds = 0.2\nrescan_seconds = 2\n{shared}\n"
        f'[files]\noutbox = "{root / "outbox"}"\narchive = "{root / "archive"}"\n'
        f'failed = "{root / "failed"}"\nstate_dir = "{state_dir(root, station)}"\n\n{inboxes}'
    )
    return rules


def state_dir(root: Path, station: int) -> Path:
    return root / f"state-{station}"


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


def settled(root: Path, states_dirs: list[Path]) -> bool:
    """At every station nothing in flight and nothing queued (or its whole queue held), and
    every file left in an inbox is held somewhere, or queued behind a held queue: only the
    user can move the run on now."""
    held = 0
    for state in states_dirs:
        states = dict(journal_rows(state, "SELECT state, COUNT(*) FROM jobs GROUP BY state"))
        queue_held = journal_rows(state, "SELECT value FROM meta WHERE key = 'hold_reason'")
        moving = sum(states.get(s, 0) for s in ("uploading", "waiting_for_result", "downloading"))
        queued = states.get("queued", 0) + states.get("filing", 0)
        if moving or (queued and not queue_held):
            return False
        held += states.get("held", 0) + (queued if queue_held else 0)
    waiting = sum(1 for name in INBOXES for _ in (root / "inbox" / name).glob("*.pdf"))
    return waiting <= held


def charges_by_file(states_dirs: list[Path], box: Sandbox) -> Counter[str]:
    """Charges per original file name, through every remote name any station's job was
    sent under."""
    remote_to_name: dict[str, str] = {}
    for state in states_dirs:
        rows = journal_rows(
            state,
            "SELECT s.remote_name, j.source FROM submissions s JOIN jobs j ON j.id = s.job_id",
        )
        remote_to_name.update({remote: Path(source).name for remote, source in rows})
    return Counter(remote_to_name.get(c.filename, c.filename) for c in box.ledger())


def start_daemon(rules: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def run_chaos(
    root: Path, *, files: int, kills: int, seed: int, timeout: float, stations: int = 1
) -> ChaosReport:
    """With several stations, each kill takes down one station at random while the
    others go on, and it is started again."""
    rng = random.Random(seed)
    started = time.monotonic()
    box = Sandbox(
        seconds_per_page=0.15,
        cut_after=0.25,
        workdir=root / "sandbox",
        seed=seed,
        faults=FaultRates(reset=0.1, http502=0.05, http429=0.05, truncate=0.1),
        late_names=0.4,  # shorter than lost_after: waited for
        lose_after_cut=0.03,  # charged, then unknown: held for the user
    ).start()
    all_rules = [write_rules(root, box, n, stations) for n in range(stations)]
    states_dirs = [state_dir(root, n) for n in range(stations)]
    log = root / "daemon.stderr"
    daemons: list[subprocess.Popen | None] = [None] * stations
    try:
        box.inject("http503", 2)
        box.inject("http524", 2)
        batch = make_batch(root, files, rng)
        daemons = [start_daemon(rules, log) for rules in all_rules]
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 2.5))
            victim = rng.randrange(stations)
            daemon = daemons[victim]
            assert daemon is not None
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            daemons[victim] = start_daemon(all_rules[victim], log)
        deadline = time.monotonic() + timeout
        approvals: Counter[str] = Counter()
        before_any_approval: Counter[str] | None = None
        for _round in range(USER_ROUNDS + 1):
            pairs = zip(daemons, all_rules, strict=True)
            daemons = [daemon or start_daemon(rules, log) for daemon, rules in pairs]
            while not settled(root, states_dirs) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)  # settled, and stays so
            daemons = _stopped(daemons)
            held_by_station = [
                journal_rows(state, "SELECT id, source FROM jobs WHERE state = 'held'")
                for state in states_dirs
            ]
            held = [Path(source).name for rows in held_by_station for _, source in rows]
            if not held or time.monotonic() >= deadline:
                break
            if before_any_approval is None:
                before_any_approval = charges_by_file(states_dirs, box)
            approvals.update(held)
            for rules, rows in zip(all_rules, held_by_station, strict=True):
                if rows:  # the user, having read the reasons, sends them again
                    subprocess.run(
                        [sys.executable, "-m", "watcher", "retry", "--config", str(rules)]
                        + [str(job_id) for job_id, _ in rows],
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
            before_any_approval or charges_by_file(states_dirs, box),
            states_dirs,
        )
    finally:
        _stopped(daemons)
        box.stop()


def _stopped(daemons: list[subprocess.Popen | None]) -> list[subprocess.Popen | None]:
    for daemon in daemons:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    return [None] * len(daemons)


def _judge(
    root: Path,
    box: Sandbox,
    batch: dict[str, tuple[str, bytes]],
    kills: int,
    seconds: float,
    approvals: Counter[str],
    before_any_approval: Counter[str],
    states_dirs: list[Path],
) -> ChaosReport:
    rows = [
        row
        for state in states_dirs
        for row in journal_rows(state, "SELECT source, state FROM jobs")
    ]
    charged = charges_by_file(states_dirs, box)
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
    # A job dropped because another station took its file over is not unfinished.
    unfinished = sum(1 for _, state in rows if state not in ("done", "dropped"))
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
    parser.add_argument(
        "--stations", type=int, default=1, help="PCs, each with its own state folder, on one inbox"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pdfocr-chaos-") as folder:
        report = run_chaos(
            Path(folder),
            files=args.files,
            kills=args.kills,
            seed=args.seed,
            timeout=args.timeout,
            stations=args.stations,
        )
    print(report.line(), f"stations={args.stations} seed={args.seed}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
