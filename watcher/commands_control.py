"""`pause`, `resume`, `stop`, `retry` and the live part of `status`: the command line's hand on
the running daemon. Each command asks the daemon of the rules' state folder through
`watcher.control`; without a running daemon it says so, and what it did instead.

The daemon's side of each command is here too (`answer`), next to the words the command
prints, so that a command and its effect are read together.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.control import ControlError, ControlServer, Message, ask
from watcher.errors import EXIT_OK, WatcherError
from watcher.instance import daemon_running
from watcher.jobs import HoldKind, Job, JobState
from watcher.journal import JOURNAL_FILE_NAME, META_BREAKER, META_HOLD, Journal
from watcher.wording import count
from watcher.world import journal_world

if TYPE_CHECKING:
    from watcher.config import Config
    from watcher.daemon import Daemon

log = logging.getLogger(__name__)

EXIT_FAILED, EXIT_USAGE = 1, 2  # as in cli
STOP_WAIT_SECONDS = 60.0  # the daemon lets a request in the middle finish (up to a few s)
IN_PROGRESS = {
    JobState.UPLOADING: "uploading",
    JobState.WAITING_FOR_RESULT: "converting at the service",
    JobState.DOWNLOADING: "downloading the result",
    JobState.FILING: "filing the result",
}
LIVE_JOBS_SHOWN = 20
STATUS_SECONDS = 10.0  # `status` still prints the journal's report if the daemon is slow
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds `pause`, `resume`, `stop` and `retry` to the command line (cli.py calls this)."""
    pause = commands.add_parser(
        "pause",
        parents=[common],
        help="stop sending new files for a while (the daemon runs on)",
        description="The running daemon sends no new file: for DURATION, until tomorrow "
        "08:00, or, with neither, until `pdfocr-watcher resume`. What the service has already "
        "is finished and filed.",
    )
    how_long = pause.add_mutually_exclusive_group()
    how_long.add_argument(
        "--for", dest="duration", type=duration, metavar="DURATION", help="e.g. 30m, 2h, 1h30m"
    )
    how_long.add_argument(
        "--until-tomorrow", action="store_true", help="until tomorrow 08:00 (local time)"
    )
    pause.set_defaults(handler=command_pause)
    resume = commands.add_parser(
        "resume",
        parents=[common],
        help="end a pause and release a held queue (as the tray's Resume and Resume queue)",
    )
    resume.set_defaults(handler=command_resume)
    stop = commands.add_parser(
        "stop", parents=[common], help="stop the running daemon (what is under way goes on later)"
    )
    stop.set_defaults(handler=command_stop)
    retry = commands.add_parser("retry", parents=[common], help="queue failed or held jobs again")
    retry.add_argument("jobs", nargs="*", type=int, metavar="JOB")
    retry.add_argument("--failed", action="store_true", help="every failed job")
    retry.add_argument("--sandbox", action="store_true", help="jobs of the sandbox's own journal")
    retry.set_defaults(handler=command_retry)


def duration(text: str) -> float:
    """Seconds from "30m", "2h", "1h30m", "90s" or "1d" (argparse says "invalid duration")."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise ValueError(text)
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(text)
    return seconds


# -- the commands ----------------------------------------------------------------------------


def command_pause(args: argparse.Namespace) -> int:
    state_dir = _config(args).files.state_dir
    request = {"command": "pause", "seconds": args.duration, "tomorrow": args.until_tomorrow}
    reply = _ask(state_dir, request)
    if reply is None:
        _none_running(state_dir, "there is nothing to pause.")
        return EXIT_FAILED
    return _said(reply)


def command_resume(args: argparse.Namespace) -> int:
    state_dir = _config(args).files.state_dir
    reply = _ask(state_dir, {"command": "resume"})
    if reply is None:
        _none_running(
            state_dir,
            "there is nothing to resume (a pause ends with the daemon). Held files wait for "
            "`pdfocr-watcher retry JOB`.",
        )
        return EXIT_OK
    return _said(reply)


def command_stop(args: argparse.Namespace) -> int:
    state_dir = _config(args).files.state_dir
    reply = _ask(state_dir, {"command": "stop"})
    if reply is None:
        _none_running(state_dir, "there is nothing to stop.")
        return EXIT_OK
    if _said(reply) != EXIT_OK:
        return EXIT_FAILED
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while daemon_running(state_dir):
        if time.monotonic() > deadline:
            print(f"It is still stopping after {STOP_WAIT_SECONDS:.0f} s; see its log.")
            return EXIT_FAILED
        time.sleep(0.1)
    print(
        "Stopped. What was under way goes on at the next start (`pdfocr-watcher run`); "
        "nothing is sent twice."
    )
    return EXIT_OK


def command_retry(args: argparse.Namespace) -> int:
    """Job numbers are those `status` shows: of the live journal, or of the sandbox's (with
    --sandbox, or when only it has a journal), so the running daemon is asked only when it
    runs in that world."""
    if not args.jobs and not args.failed:
        print(
            "pdfocr-watcher: name job numbers (see `pdfocr-watcher status`) or use --failed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    state_dir = _config(args).files.state_dir
    folder, sandbox = journal_world(state_dir, sandbox=args.sandbox)
    request = {"command": "retry", "jobs": args.jobs, "failed": args.failed, "sandbox": sandbox}
    reply = ask(state_dir, request)
    if reply is not None:
        return _said(reply)
    world = "SANDBOX journal" if sandbox else "journal"
    if not (folder / JOURNAL_FILE_NAME).exists():
        print(f"No {world} yet at {folder}: there is nothing to retry.")
        return EXIT_FAILED
    running = daemon_running(state_dir)
    journal = Journal.in_folder(folder)
    try:
        outcome = requeue_jobs(journal, args.jobs, every_failed=args.failed)
        if outcome.approved and journal.get_meta(META_BREAKER) is not None:
            # The user has looked at what the service lost: the circuit breaker is theirs.
            journal.set_meta(META_BREAKER, None)
            outcome.lines.append(
                "The queue stopped because the service lost files goes on at the next start."
            )
    finally:
        journal.close()
    if outcome.queued:
        outcome.lines.append(
            f"{count(outcome.queued, 'job')} queued again in the {world}; "
            + (
                "the running pdfocr-watcher, which does not answer on its control channel, "
                "takes them within 30 seconds if it runs in that world."
                if running
                else "they are sent when pdfocr-watcher starts (`pdfocr-watcher run`)."
            )
        )
    return _said(outcome.reply())


# -- what they share ---------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Config:
    from watcher.cli import load_optional_config  # cli imports this module to register it

    return load_optional_config(args)


def _ask(state_dir: Path, request: Message) -> Message | None:
    """The running daemon's reply, or None when no daemon runs on `state_dir`."""
    reply = ask(state_dir, request)
    if reply is None and daemon_running(state_dir):
        raise WatcherError(
            f"pdfocr-watcher runs with the state folder {state_dir} but does not answer on its "
            "control channel "
            "(it may be starting: try again in a moment; its log says why otherwise)"
        )
    return reply


def _none_running(state_dir: Path, then: str) -> None:
    print(f"No pdfocr-watcher is running with the state folder {state_dir}: {then}")


def _said(reply: Message) -> int:
    """Prints a daemon's reply; its exit code."""
    if not reply.get("ok"):
        print(f"pdfocr-watcher: {reply.get('error', 'the daemon refused it')}", file=sys.stderr)
        return EXIT_FAILED
    for line in reply.get("lines", []):
        print(line)
    return EXIT_OK if reply.get("complete", True) else EXIT_FAILED


@dataclass
class Requeued:
    """What a retry did, per job, in words."""

    lines: list[str] = field(default_factory=list)
    queued: int = 0
    complete: bool = True  # every job named was queued
    approved: bool = False  # a job held as maybe at the service is sent again

    def reply(self) -> Message:
        return {"ok": True, "lines": self.lines, "queued": self.queued, "complete": self.complete}


def requeue_jobs(journal: Journal, numbers: Sequence[int], *, every_failed: bool) -> Requeued:
    """Puts the jobs named (or every failed one) back in line, in whichever journal: the
    running daemon's, or the state folder's when none runs. `--failed` leaves alone the files
    the service may already have: sending those again may be charged twice, so each is
    named by the user."""
    from watcher.runner import requeue

    outcome = Requeued()
    jobs: list[Job] = []
    if every_failed:
        held = journal.jobs(states=(JobState.HELD,))
        unsure = [job for job in held if job.hold is HoldKind.UNCERTAIN]
        jobs = journal.jobs(states=(JobState.FAILED,))
        jobs += [job for job in held if job.hold is not HoldKind.UNCERTAIN]
        if unsure:
            numbers_left = " ".join(str(job.id) for job in unsure)
            outcome.lines.append(
                f"{count(len(unsure), 'held file')} the service may already have "
                f"{'is' if len(unsure) == 1 else 'are'} left alone; "
                f"to send them again (which may be charged twice): pdfocr-watcher retry "
                f"{numbers_left}"
            )
        if not jobs:
            outcome.lines.append("No failed job to retry.")
    for number in numbers:
        job = journal.get(number)
        if job is None:
            outcome.lines.append(f"#{number}: no job {number} (see `pdfocr-watcher status`)")
            outcome.complete = False
        else:
            jobs.append(job)
    for job in {job.id: job for job in jobs}.values():  # a job named twice is queued once
        problem = requeue(journal, job)
        if problem is not None:
            outcome.lines.append(f"#{job.id} {job.display_name}: {problem}")
            outcome.complete = False
            continue
        outcome.queued += 1
        if job.hold is HoldKind.UNCERTAIN:
            outcome.approved = True
            outcome.lines.append(
                f"#{job.id} {job.display_name}: queued again; the service is asked for it by "
                "name first, and it is sent again (which may be charged twice) only if the "
                "service still does not know it"
            )
        else:
            outcome.lines.append(f"#{job.id} {job.display_name}: queued again")
    return outcome


# -- status: what the daemon is doing right now ------------------------------------------------


def live_report(state_dir: Path) -> dict[str, Any] | None:
    """The running daemon's own account of this moment, for `status` (None: none runs)."""
    if not daemon_running(state_dir):
        return None
    try:
        reply = ask(state_dir, {"command": "status"}, timeout=STATUS_SECONDS)
    except ControlError as exc:
        return {"error": str(exc)}
    if reply is None:
        return {"error": "it does not answer on its control channel (it may be starting)"}
    live = reply.get("live")
    return live if isinstance(live, dict) else {"error": "its answer has no status"}


def print_live(live: object) -> None:
    """The lines `status` prints under "Daemon: running" (`live` from live_report)."""
    if not isinstance(live, dict):
        return
    if "error" in live:
        print(f"Now: unknown: {live['error']}")
        return
    print(f"Now: {live['now']}")
    for job in live["jobs"]:
        print(f"  #{job['id']:<5} {job['doing']:<26} {job['file']}")


# -- the daemon's side ---------------------------------------------------------------------


@contextmanager
def serving(daemon: Daemon, state_dir: Path) -> Iterator[None]:
    """The control channel is open while the block runs. A daemon whose channel cannot be
    opened runs on without it, and says so."""
    server = ControlServer(state_dir, lambda request: answer(daemon, request))
    try:
        server.start()
    except ControlError as exc:
        log.warning(
            "%s; `pdfocr-watcher pause`, `resume`, `retry` and `stop` cannot reach this daemon",
            exc,
        )
        yield
        return
    try:
        yield
    finally:
        server.close()


def answer(daemon: Daemon, request: Message) -> Message:
    """The daemon's reply to one request from the command line."""
    command = request.get("command")
    if command == "status":
        return {"ok": True, "live": _live(daemon)}
    log.info("`%s` asked from the command line", command)
    if command == "pause":
        return _pause(daemon, request)
    if command == "resume":
        return _resume(daemon)
    if command == "retry":
        return _retry(daemon, request)
    if command == "stop":
        daemon.request_stop()
        return {"ok": True, "lines": ["Stopping: nothing new is started."]}
    return {"ok": False, "error": f"this daemon does not know the command {command!r}"}


def _live(daemon: Daemon) -> dict[str, Any]:
    from watcher.tray import status_line

    s = daemon.snapshot()
    under_way = daemon.journal.jobs(states=tuple(IN_PROGRESS), limit=LIVE_JOBS_SHOWN)
    paused = s.paused_until
    return {
        "now": ("SANDBOX · " if s.sandbox else "") + status_line(s),
        "sandbox": s.sandbox,
        "in_flight": s.in_flight,
        "queued": s.queued,
        "batch_done": s.batch_done,
        "batch_total": s.batch_total,
        "paused": paused is not None,
        "paused_until": None if paused is None or math.isinf(paused) else paused,
        "held": s.held,
        "service_problem": s.service_problem,
        "config_error": s.config_error,
        "unseen_failures": s.unseen_failures,
        "jobs": [
            {"id": job.id, "file": job.display_name, "doing": IN_PROGRESS[job.state]}
            for job in under_way
        ],
    }


def _pause(daemon: Daemon, request: Message) -> Message:
    from watcher.tray import next_morning, until

    seconds, now = request.get("seconds"), time.time()
    if request.get("tomorrow") is True:
        at: float | None = next_morning(now)
    elif seconds is None:
        at = None
    elif isinstance(seconds, (int, float)) and 0 < seconds < math.inf:
        at = now + seconds
    else:
        return {"ok": False, "error": f"a pause of {seconds!r} seconds makes no sense"}
    daemon.pause(at)
    how_long = (
        "until you resume it (`pdfocr-watcher resume`)" if at is None else f"until {until(at)}"
    )
    return {
        "ok": True,
        "lines": [
            f"Paused {how_long}: no new file is sent; what the service has already is "
            "finished and filed."
        ],
    }


def _resume(daemon: Daemon) -> Message:
    """The tray's Resume and Resume queue in one: the user's say to go on, which also sends
    again the files held because the service no longer knew them (it says which)."""
    paused = daemon.snapshot().paused_until is not None
    queue_hold = daemon.journal.get_meta(META_HOLD)
    held = daemon.journal.jobs(states=(JobState.HELD,))
    unsure = [job for job in held if job.hold is HoldKind.UNCERTAIN]
    budget = len(held) - len(unsure)
    daemon.unpause()
    daemon.resume(by_user=True)
    lines = []
    if paused:
        lines.append("Pause ended: new files are sent again.")
    if queue_hold:
        lines.append(f"The held queue goes on (it was held: {queue_hold.split(' — ')[0]}).")
    if budget:
        lines.append(
            f"{count(budget, 'file')} held by the credit guard or the daily page limit "
            f"{'is' if budget == 1 else 'are'} sent now."
        )
    if unsure:
        lines.append(
            "Sent again if the service still does not know them (each may be charged twice):"
        )
        lines += [f"  #{job.id} {job.display_name}" for job in unsure]
    return {"ok": True, "lines": lines or ["It was neither paused nor held: nothing changed."]}


def _retry(daemon: Daemon, request: Message) -> Message:
    from watcher.tray import until

    numbers, every_failed = request.get("jobs"), request.get("failed") is True
    if not isinstance(numbers, list) or not all(type(n) is int for n in numbers):
        return {"ok": False, "error": f"job numbers are whole numbers, not {numbers!r}"}
    if request.get("sandbox") is not daemon.sandbox:  # the numbers are another journal's
        if daemon.sandbox:
            error = (
                "the running pdfocr-watcher runs on the SANDBOX, and these are the live "
                "journal's jobs: add --sandbox for the sandbox's, or stop it first"
            )
        else:
            error = (
                "the running pdfocr-watcher runs live, and these are the SANDBOX journal's "
                "jobs: stop it first (`pdfocr-watcher stop`)"
            )
        return {"ok": False, "error": error}
    outcome = requeue_jobs(daemon.journal, numbers, every_failed=every_failed)
    if every_failed:
        daemon.acknowledge_failures()
    if outcome.queued:
        daemon.pool.wake()
        s = daemon.snapshot()
        queue_hold = daemon.journal.get_meta(META_HOLD)
        if queue_hold:
            after = f"the queue is held: {queue_hold}"
            if "Resume queue" in queue_hold:
                after += " (`pdfocr-watcher resume` is the tray's Resume queue)"
        elif s.paused_until is not None:
            after = f"they are sent when the pause ends ({until(s.paused_until)})"
        else:
            after = "the running pdfocr-watcher is on them now"
        outcome.lines.append(f"{count(outcome.queued, 'job')} queued again; {after}.")
    return outcome.reply()
