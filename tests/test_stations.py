"""Several PCs ("stations") on one shared inbox, each with its own state folder: real
daemons (in this process and in killed subprocesses), one real folder, the sandbox's ledger
as the judge. Each file is converted and paid once, and delivered once."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from test_daemon import (
    MakeDaemon,
    files_in,
    journal_states,
    start_daemon_process,
    stop_process,
    wait_for,
)

from watcher import samplepdf
from watcher.claims import CLAIMS_DIR
from watcher.config import load_config
from watcher.errors import TakenOver
from watcher.intake import new_job
from watcher.jobs import ACTIVE_STATES
from watcher.journal import Journal
from watcher.sandbox import Sandbox
from watcher.stations import SharedInboxes


def station_rules(
    root: Path,
    box: Sandbox,
    station: str,
    *,
    lease: float = 60.0,
    after_success: str = "archive",
    outformat: str = "txt",
) -> Path:
    """One station's rules: its own state folder, the shared inbox and outbox."""
    rules = root / f"{station}.toml"
    rules.write_text(
        f'[api]\nkey = "{box.key}"\nendpoint = "{box.url}"\npoll_interval = 0.1\n'
        "concurrency = 2\nlost_after = 5\n\n"
        f"[watch]\nsettle_seconds = 0.2\nshared = true\nclaim_lease = {lease}\n\n"
        f'[files]\noutbox = "{root / "outbox"}"\narchive = "{root / "archive"}"\n'
        f'failed = "{root / "failed"}"\nstate_dir = "{root / station}"\n'
        f'after_success = "{after_success}"\n\n'
        f'[[inbox]]\npath = "{root / "inbox"}"\noutformat = "{outformat}"\n'
    )
    (root / "inbox").mkdir(exist_ok=True)
    return rules


def test_two_stations_on_one_inbox_convert_each_file_once(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    one = make_daemon(station_rules(tmp_path, sandbox, "pc-one"))
    two = make_daemon(station_rules(tmp_path, sandbox, "pc-two"))
    names = [f"scan-{n:02d}.pdf" for n in range(12)]
    for name in names:
        samplepdf.write_pdf(tmp_path / "inbox" / name, [f"text of {name}"])
    wait_for(lambda: len(files_in(tmp_path / "archive")) == 12, timeout=60, what="all archived")
    assert files_in(tmp_path / "outbox") == sorted(n.replace(".pdf", ".txt") for n in names)
    assert len(sandbox.ledger()) == 12, "each file paid once"
    done = [len(daemon.journal.jobs()) for daemon in (one, two)]
    assert sum(done) == 12, done  # each file journaled by one station only
    claims = tmp_path / "inbox" / CLAIMS_DIR
    wait_for(lambda: not list(claims.glob("*.claim")), what="every claim released")
    assert files_in(tmp_path / "inbox") == [CLAIMS_DIR]


def test_a_station_killed_after_sending_is_taken_over_without_a_second_charge(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=2.0, cut_after=0.1)
    doomed = start_daemon_process(station_rules(tmp_path, box, "pc-one", lease=1.5))
    try:
        samplepdf.write_pdf(tmp_path / "inbox" / "contract.pdf", ["Contract"])
        wait_for(lambda: box.ledger(), timeout=30, what="sent by the first station")
        wait_for(
            lambda: "waiting_for_result" in journal_states(tmp_path / "pc-one"), what="polling"
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        stop_process(doomed)
    heir = make_daemon(station_rules(tmp_path, box, "pc-two", lease=1.5))
    wait_for(lambda: (tmp_path / "outbox" / "contract.txt").exists(), timeout=60, what="done")
    assert len(box.ledger()) == 1, "asked by name, not paid again"
    assert [job.remote_name for job in heir.journal.jobs()] == [box.ledger()[0].filename]
    assert files_in(tmp_path / "archive") == ["contract.pdf"]


def test_a_busy_station_leaves_the_files_it_cannot_start_to_the_others(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    box = make_sandbox(seconds_per_page=1.0)
    one = make_daemon(station_rules(tmp_path, box, "pc-one"))  # 2 turns, so 4 workers
    names = [f"scan-{n:02d}.pdf" for n in range(10)]
    for name in names:
        samplepdf.write_pdf(tmp_path / "inbox" / name, [f"text of {name}"])
    wait_for(lambda: files_in(tmp_path / "archive"), timeout=30, what="a first file filed")
    unfinished = [job for job in one.journal.jobs() if job.state in ACTIVE_STATES]
    assert len(unfinished) <= 4, "claimed only what its workers can take"
    assert one.snapshot().batch_total == 10, "the waiting files are still its batch"
    two = make_daemon(station_rules(tmp_path, box, "pc-two"))
    wait_for(lambda: len(files_in(tmp_path / "archive")) == 10, timeout=60, what="all archived")
    shares = [len(daemon.journal.jobs()) for daemon in (one, two)]
    assert sum(shares) == 10 and shares[1] > 0, shares
    assert len(box.ledger()) == 10, "each file paid once"


def test_a_paused_station_claims_nothing_and_shows_what_waits(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    one = make_daemon(station_rules(tmp_path, sandbox, "pc-one"))
    shown: list[int] = []  # what the tray is told, not a fresh look
    one.add_listener(lambda snapshot: shown.append(snapshot.queued))
    one.pause(None)
    for name in ("a.pdf", "b.pdf"):
        samplepdf.write_pdf(tmp_path / "inbox" / name, [name])
    wait_for(lambda: shown and shown[-1] == 2, what="both files shown waiting")
    assert one.journal.jobs() == [] and not list((tmp_path / "inbox" / CLAIMS_DIR).glob("*"))
    two = make_daemon(station_rules(tmp_path, sandbox, "pc-two"))
    wait_for(lambda: len(files_in(tmp_path / "archive")) == 2, what="converted by the other")
    assert len(two.journal.jobs()) == 2 and len(sandbox.ledger()) == 2
    one.unpause()
    wait_for(lambda: one.snapshot().queued == 0, what="the paused station let them go")
    assert one.journal.jobs() == [] and len(sandbox.ledger()) == 2


def test_only_a_claim_taken_just_now_for_no_job_may_be_let_go(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """`fresh` is what keeps a station from releasing, for a file it cannot read once
    more, the claim its own job (of this run or an earlier one) holds: another station
    would then send the file again."""
    config = load_config(station_rules(tmp_path, sandbox, "pc-one"))
    rule = config.inboxes[0]
    scan = tmp_path / "inbox" / "scan.pdf"
    samplepdf.write_pdf(scan, ["scan"])
    station = SharedInboxes(config, tmp_path / "pc-one", at_most=4)
    assert station.admit([(scan, rule)]) == ([], 1)
    first = station.claim_next()
    assert first is not None and first.fresh and first.counted
    assert station.admit([(scan, rule)]) == ([], 0)  # offered again while its job runs
    again = station.claim_next()
    assert again is not None and not again.fresh and not again.counted
    station.let_go(first)  # a late let-go of the first look: the job's claim now
    station.let_go(again)
    after_restart = SharedInboxes(config, tmp_path / "pc-one", at_most=4)
    after_restart.admit([(scan, rule)])
    resumed = after_restart.claim_next()
    assert resumed is not None and not resumed.fresh, "still claimed, and ours"


def test_a_station_holding_its_share_of_claims_claims_no_more(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Jobs held for a daily limit or sending hours keep their claims: a station holding
    `at_most` leaves the next files to the others."""
    config = load_config(station_rules(tmp_path, sandbox, "pc-one"))
    rule = config.inboxes[0]
    files = [tmp_path / "inbox" / f"{name}.pdf" for name in ("a", "b")]
    for path in files:
        samplepdf.write_pdf(path, [path.name])
    station = SharedInboxes(config, tmp_path / "pc-one", at_most=1)
    assert station.admit([(path, rule) for path in files]) == ([], 2)
    first = station.claim_next()
    assert first is not None and first.path == files[0]
    assert station.claim_next() is None and station.waiting == 1
    station.let_go(first)
    second = station.claim_next()
    assert second is not None and second.path == files[1]


def test_a_file_another_station_has_is_counted_once_however_often_it_is_asked_about(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = load_config(station_rules(tmp_path, sandbox, "pc-one"))
    rule = config.inboxes[0]
    scan = tmp_path / "inbox" / "scan.pdf"
    samplepdf.write_pdf(scan, ["scan"])
    other = SharedInboxes(config, tmp_path / "pc-two", at_most=4)
    other.admit([(scan, rule)])
    assert other.claim_next() is not None
    passed_over: list[int] = []
    station = SharedInboxes(
        config, tmp_path / "pc-one", at_most=4, on_passed_over=passed_over.append
    )
    assert station.admit([(scan, rule)]) == ([], 1)
    assert station.claim_next() is None and passed_over == [1]
    for _ in range(3):
        assert station.housekeeping(), "asked about again: it waits in line"
        assert station.claim_next() is None
    assert passed_over == [1] and station.waiting == 0


def test_originals_a_station_converted_and_kept_do_not_use_up_its_claims(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """After a restart the kept originals are seen again; their final claims are ours, but
    no job holds them, so they must not count against the claims a station may hold (4)."""
    rules = station_rules(tmp_path, sandbox, "pc-one", after_success="keep")
    first_run = start_daemon_process(rules)
    try:
        for number in range(5):
            samplepdf.write_pdf(tmp_path / "inbox" / f"kept-{number}.pdf", [f"kept {number}"])
        wait_for(lambda: len(files_in(tmp_path / "outbox")) == 5, timeout=60, what="converted")
    finally:
        stop_process(first_run)
    make_daemon(rules)
    samplepdf.write_pdf(tmp_path / "inbox" / "new.pdf", ["new"])
    wait_for(lambda: (tmp_path / "outbox" / "new.txt").exists(), timeout=30, what="new one done")
    assert len(sandbox.ledger()) == 6, "the kept originals were not converted again"


def test_a_shared_file_whose_job_holds_no_claim_is_claimed_before_it_is_sent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A failed file retried back into a shared inbox, a file held through a restart, an
    inbox a rules edit made shared: the job holds no claim. It is claimed before the upload,
    or left to the station that has it (TakenOver)."""
    config = load_config(station_rules(tmp_path, sandbox, "pc-one"))
    rule = config.inboxes[0]
    journal = Journal.in_folder(tmp_path / "pc-one")
    station = SharedInboxes(config, tmp_path / "pc-one", at_most=4)
    other = SharedInboxes(config, tmp_path / "pc-two", at_most=4)
    jobs = []
    for name in ("ours.pdf", "theirs.pdf"):
        path = tmp_path / "inbox" / name
        samplepdf.write_pdf(path, [name])
        jobs.append(journal.add(new_job(path, rule.as_rule(path), rule.path)))
    ours, theirs = jobs
    assert ours is not None and theirs is not None
    station.before_submit(ours)  # claimed now
    other.admit([(ours.source, rule), (theirs.source, rule)])
    claimed = other.claim_next()
    assert claimed is not None and claimed.path == theirs.source, "ours is taken"
    with pytest.raises(TakenOver):
        station.before_submit(theirs)
    journal.close()


def test_copies_of_our_own_results_in_a_shared_inbox_do_not_use_up_its_claims(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """A result copied back into the shared inbox is not converted again, and its claim,
    final, is no job's: four of them must not stop a station (4 claims at most) for good."""
    rules = station_rules(tmp_path, sandbox, "pc-one", outformat="pdf")
    make_daemon(rules)
    for number in range(4):
        samplepdf.write_pdf(tmp_path / "inbox" / f"scan-{number}.pdf", [f"scan {number}"])
    wait_for(lambda: len(files_in(tmp_path / "outbox")) == 4, timeout=60, what="converted")
    for result in (tmp_path / "outbox").iterdir():
        shutil.copy(result, tmp_path / "inbox" / f"copy-of-{result.name}")
    samplepdf.write_pdf(tmp_path / "inbox" / "new.pdf", ["new"])
    wait_for(lambda: (tmp_path / "outbox" / "new.pdf").exists(), timeout=30, what="new one")
    assert len(sandbox.ledger()) == 5, "the copies were not converted"
