"""`pdfocr-watcher`: the commands a user types. Each command is one small function; the work
itself lives in the modules they call."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from watcher import __version__, autostart, commands_control, doctor
from watcher.config import (
    API_KEY_ENV,
    Config,
    all_folders,
    check_runnable,
    config_permission_warning,
    default_config_path,
    load_config,
    parse_config,
    write_starter_config,
)
from watcher.contract import LANGUAGES, OUTFORMATS, canonical_language, estimated_cost
from watcher.errors import EXIT_OK, AccountError, ConfigError, WatcherError
from watcher.hooks import META_HOOK
from watcher.instance import AlreadyRunning, InstanceLock, daemon_running
from watcher.jobs import HoldKind, Job, JobState, Rule
from watcher.journal import (
    JOURNAL_FILE_NAME,
    META_HOLD,
    META_MODE,
    META_PAGES,
    META_PAGES_AT,
    META_SERVICE,
    Journal,
    local_day,
)
from watcher.keys import KeySource, check_key_text, key_source, save_key, with_key
from watcher.logs import register_secret, setup_logging
from watcher.wording import count
from watcher.world import (
    SANDBOX_SERVICE_FOLDER,
    has_sandbox_journal,
    journal_world,
    sandbox_state_dir,
    set_apart_old_sandbox_journal,
)

EXIT_FAILED = 1
EXIT_USAGE = 2  # bad command line or rules file
EXIT_FILE = 3  # a file was refused (by us or the service)
EXIT_ACCOUNT = 4  # key unknown or credit exhausted
EXIT_SERVICE = 5  # the service could not be reached or gave no result in time
EXIT_BROKEN_PIPE = 141  # the reader of our output went away: as a tool killed by SIGPIPE

NO_KEY_ADVICE = (
    "No API key is configured. Set it with `pdfocr-watcher init --api-key KEY` (it goes to "
    "your OS keyring, else into {path}) or in the PDFOCR_API_KEY environment variable, or try "
    "the built-in sandbox first with --sandbox."
)
CONVERT_GIVE_UP_ATTEMPTS = 4
DAY = 24 * 3600

if TYPE_CHECKING:
    from watcher.runner import JobRunner

log = logging.getLogger("watcher")

# Commands import what they need (requests, pypdf, watchdog, pystray) inside themselves:
# `status` and `check` are typed often and should answer at once.


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a reader that went away shows here, not in Python's exit
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as exc:
        print(f"pdfocr-watcher: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AlreadyRunning as exc:
        print(f"pdfocr-watcher: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except WatcherError as exc:
        print(f"pdfocr-watcher: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _reader_went_away() -> int:
    """The reader of our output stopped reading (`status | head`): no error of ours, and
    nothing to say about it. What is left to write (Python's own flush at exit) goes nowhere."""
    with suppress(OSError, ValueError):  # no real stdout (a test's capture): nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdfocr-watcher",
        description="Drop PDFs into watched folders, get Word/Excel/text files in the outbox "
        "(through the pdfocr.org API).",
    )
    parser.add_argument("--version", action="version", version=f"pdfocr-watcher {__version__}")
    # --config and -v go before the command or after it. After it, they default to nothing
    # at all (SUPPRESS), or the command's default would overwrite what came before.
    config_help = f"rules file (default: {default_config_path()})"
    parser.add_argument("--config", type=Path, metavar="PATH", help=config_help)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help=config_help
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="watch the inboxes and convert")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in local sandbox instead of pdfocr.org (no key needed)",
    )
    run.add_argument("--no-tray", action="store_true", help="run without a tray icon")
    run.set_defaults(handler=command_run)

    init = commands.add_parser(
        "init", parents=[common], help="create a starter rules file and its folders"
    )
    init.add_argument(
        "--api-key",
        metavar="KEY",
        default="",
        help="your pdfocr.org API key ('-' reads it from standard input); on an existing rules "
        "file only the key is set. Kept in the OS keyring when there is one.",
    )
    init.set_defaults(handler=command_init)

    check = commands.add_parser(
        "check", parents=[common], help="validate the rules file and show what would be watched"
    )
    check.add_argument(
        "--explain",
        type=Path,
        metavar="PATH",
        help="a dry run: say what the daemon would do with this file (or each file in this "
        "folder) and why, with its pages and cost; nothing is sent",
    )
    check.set_defaults(handler=command_check)

    convert = commands.add_parser("convert", parents=[common], help="convert files once")
    convert.add_argument("files", nargs="+", type=Path, metavar="FILE")
    convert.add_argument(
        "--to", required=True, type=str.lower, choices=OUTFORMATS, dest="outformat"
    )
    convert.add_argument(
        "--lang", default="English", help=f"document language, one of: {', '.join(LANGUAGES)}"
    )
    convert.add_argument(
        "--ocr",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="recognise text in scans (default: on)",
    )
    convert.add_argument("--outdir", type=Path, help="where results go (default: beside each file)")
    convert.add_argument("--sandbox", action="store_true", help="use the built-in local sandbox")
    convert.set_defaults(handler=command_convert)

    status = commands.add_parser(
        "status", parents=[common], help="what the daemon did and is doing (from its journal)"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--sandbox",
        action="store_true",
        help="the sandbox's own journal (play money), kept apart from the real one",
    )
    status.add_argument("--last", type=int, default=10, metavar="N", help="recent jobs to show")
    status.set_defaults(handler=command_status)

    sandbox = commands.add_parser("sandbox", help="serve the local stand-in of the pdfocr.org API")

    def seconds(text: str) -> float:  # argparse names it: "invalid seconds value: '-1'"
        value = float(text)
        if not 0 <= value < float("inf"):
            raise ValueError(text)
        return value

    def rate(text: str) -> float:  # "invalid rate value"
        value = float(text)
        if not 0 <= value <= 1:
            raise ValueError(text)
        return value

    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--key", default="sandbox-key")
    sandbox.add_argument("--credits", type=int, default=1000)
    sandbox.add_argument("--seconds-per-page", type=seconds, default=0.0, metavar="S")
    sandbox.add_argument(
        "--cut-after",
        type=seconds,
        default=100.0,
        metavar="S",
        help="answer 524 after this many seconds, as the real front end does",
    )
    for fault in ("reset", "http502", "http429", "truncate"):
        sandbox.add_argument(
            f"--fault-{fault}",
            type=rate,
            default=0.0,
            metavar="RATE",
            help=f"probability of a random {fault} fault per request",
        )
    sandbox.add_argument(
        "--late-names",
        type=seconds,
        default=0.0,
        metavar="S",
        help="status polls find a job only this many seconds after its upload",
    )
    sandbox.add_argument(
        "--lose-after-cut",
        type=rate,
        default=0.0,
        metavar="RATE",
        help="probability that a job whose reply was cut (524 or reset) is lost, still charged",
    )
    sandbox.add_argument(
        "--reply-delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="wait this long before every API reply (submissions and polls)",
    )
    sandbox.add_argument(
        "--poll-delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="wait this long more before each status poll reply",
    )
    sandbox.add_argument("--seed", type=int, help="seed of the random faults and lost jobs")
    sandbox.set_defaults(handler=command_sandbox)
    commands_control.register(commands, common)
    autostart.register(commands, common)
    doctor.register(commands, common)
    return parser


# -- helpers shared by commands ----------------------------------------------------------------


def config_path(args: argparse.Namespace) -> Path:
    return (args.config or default_config_path()).expanduser()


def load_optional_config(args: argparse.Namespace) -> Config:
    """The rules file if there is one; defaults otherwise (for commands that need no inbox)."""
    path = config_path(args)
    if args.config is None and not path.exists():
        return parse_config("", None)
    return load_config(path)


@contextmanager
def service(
    config: Config, use_sandbox: bool, sandbox_files: Path | None = None
) -> Iterator[tuple[str, str]]:
    """(endpoint, key) to talk to: the configured service, or a sandbox started here, which
    keeps its results in `sandbox_files` (emptied first: a new sandbox knows none of the last
    one's jobs) or in a temporary folder of its own."""
    if not use_sandbox:
        if not config.api.key:
            raise ConfigError(
                str(config.path or default_config_path()),
                NO_KEY_ADVICE.format(path=config.path or default_config_path()),
                key="api.key",
            )
        register_secret(config.api.key)
        yield config.api.endpoint, config.api.key
        return
    from watcher.sandbox import Sandbox

    if sandbox_files is not None:
        shutil.rmtree(sandbox_files, ignore_errors=True)
    with Sandbox(workdir=sandbox_files).start() as sandbox:
        log.warning(
            "SANDBOX MODE: conversions are simulated on this computer by the built-in "
            "sandbox at %s; nothing is sent to pdfocr.org and nothing is charged.",
            sandbox.url,
        )
        yield sandbox.url, sandbox.key


# -- commands ---------------------------------------------------------------------------------


def command_init(args: argparse.Namespace) -> int:
    path = config_path(args)
    try:
        key = _key_argument(args.api_key)
    except ValueError as exc:
        print(f"pdfocr-watcher: --api-key: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if path.exists():
        if not key:
            message = (
                "already exists; to set the API key in it (the rest is kept as it is): "
                "pdfocr-watcher init --api-key KEY. To start afresh, move it away first."
            )
            raise ConfigError(str(path), message)
        _save_key(path, key, kept="; the rest of the file is as it was")
        return EXIT_OK
    config = write_starter_config(path)
    print(f"Created {path} (readable by you only).")
    for rule in config.inboxes:
        print(f"  inbox {rule.path} → {rule.outformat}")
    print(f"  results go to {config.files.outbox}")
    if key:
        _save_key(path, key, kept="")
    print("\nNext:")
    step = 1
    keyless = not key and not os.environ.get(API_KEY_ENV, "").strip()
    if keyless:
        print(f"  {step}. Set your pdfocr.org API key: pdfocr-watcher init --api-key KEY")
        step += 1
    sandbox = " (without a key: on the built-in SANDBOX, nothing sent or charged)"
    print(f"  {step}. Start the watcher: pdfocr-watcher run{sandbox if keyless else ''}")
    print(
        f"  {step + 1}. Drop a PDF into {config.inboxes[0].path} and find the result in "
        f"{config.inboxes[0].outbox}."
    )
    return EXIT_OK


def _key_argument(given: str) -> str:
    """The key from --api-key; "-" reads it from standard input (unseen at a terminal), so
    that it stays out of the shell's history and the process list."""
    if given != "-":
        return check_key_text(given) if given else ""
    if sys.stdin.isatty():
        return check_key_text(getpass.getpass("pdfocr.org API key: "))
    return check_key_text(sys.stdin.readline())


def _save_key(path: Path, key: str, *, kept: str) -> None:
    """Sets the key and says where it went (`kept`: what became of the rest of the file),
    and what that means for a running watcher."""
    saved = save_key(path, key)
    if saved.source is KeySource.KEYRING:
        print(
            f"Saved the API key in the OS keyring. {path} says `keyring = true` under [api] "
            f"instead of holding the key{kept}."
        )
    else:
        print(
            f"Saved the API key in {path} under [api], readable by you only{kept}. "
            f"No OS keyring could be used: {saved.why_not_keyring}."
        )
    if os.environ.get(API_KEY_ENV, "").strip():
        print(f"Note: {API_KEY_ENV} is set here, and is used before this key while it is.")
    print("Check it with the service (nothing is charged): pdfocr-watcher doctor")
    try:
        state_dir = load_config(path).files.state_dir
    except ConfigError:
        return  # the rules have another problem, which `check` and `run` will name
    if daemon_running(sandbox_state_dir(state_dir)):
        print(
            "The watcher running now runs on the SANDBOX: quit it (tray menu: Quit, or "
            "Ctrl-C) and start `pdfocr-watcher run` again to convert for real."
        )
    elif daemon_running(state_dir):
        print("The watcher running now uses the new key at once.")


def command_check(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    if args.explain is not None:
        return _explain(config, args.explain.expanduser().absolute())
    print(f"{config.path}: valid.")
    source = key_source(config)  # where from, without opening the keyring (`doctor` does)
    key = "NOT SET (`run` uses the SANDBOX)" if source is KeySource.NONE else f"in {source.value}"
    print(f"API key: {key}; endpoint {config.api.endpoint}")
    if not config.inboxes:
        print("No [[inbox]] yet: nothing would be watched.")
    for rule in config.inboxes:
        print(rule.summary())
    warning = config_permission_warning(config)
    if warning:
        print(f"Warning: {warning}")
    return EXIT_OK


def _explain(config: Config, path: Path) -> int:
    """The dry run: what the daemon would do with a file, or each file below a folder."""
    from watcher.explain import (
        Outcome,
        current_budget,
        explain,
        open_journal,
        render,
        touches_an_inbox,
    )

    if path.is_dir() and not touches_an_inbox(config, path):
        inboxes = ", ".join(str(rule.path) for rule in config.inboxes) or "none are configured"
        print(f"{path} is not an inbox, nor inside or above one (inboxes: {inboxes}).")
        return EXIT_FILE
    journal = open_journal(config)
    try:
        budget = current_budget(config, journal)
        explanations = explain(config, path, budget, journal)
    finally:
        if journal is not None:
            journal.close()
    journal_seen = journal is not None
    if not explanations:
        print(f"{path} holds no files.")
        return EXIT_OK
    base = path if path.is_dir() else None
    print("\n".join(render(explanations, budget, journal_seen, base)))
    converted = all(e.outcome is Outcome.CONVERTED for e in explanations)
    return EXIT_OK if converted else EXIT_FILE


def command_convert(args: argparse.Namespace) -> int:
    from watcher.api import ClientSettings, PdfOcrClient
    from watcher.runner import JobRunner, timing

    lang = canonical_language(args.lang)
    if lang is None:
        print(
            f"pdfocr-watcher: unknown language {args.lang!r}; use one of: {', '.join(LANGUAGES)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = with_key(load_optional_config(args))
    setup_logging(None, verbose=args.verbose)
    journal = Journal(":memory:")
    worst = EXIT_OK
    with service(config, args.sandbox) as (endpoint, key):
        client = PdfOcrClient(
            replace(ClientSettings.from_rules(config.api), endpoint=endpoint, key=key)
        )
        runner = JobRunner(
            journal,
            client,
            timing(config.api),
            on_change=_print_progress,
            file_originals=False,
        )
        for file in args.files:
            outdir = (args.outdir or file.parent).expanduser().absolute()
            rule = Rule(args.outformat, lang, args.ocr, outdir, outdir, outdir, "keep")
            try:
                code = _convert_one(journal, runner, file.expanduser().absolute(), rule)
            except AccountError as exc:
                print(
                    f"{file.name}: the service refused the account: {exc.message}", file=sys.stderr
                )
                return EXIT_ACCOUNT
            worst = max(worst, code)
        client.close()
    return worst


def _convert_one(journal: Journal, runner: JobRunner, path: Path, rule: Rule) -> int:
    from watcher.intake import new_job

    if not path.is_file():
        print(f"{path.name}: no such file", file=sys.stderr)
        return EXIT_FILE
    job = journal.add(new_job(path, rule, inbox=None))
    assert job is not None  # a fresh in-memory journal has no twin
    while True:
        job = runner.advance(job)
        if job.state is JobState.DONE:
            pages = (
                f"; {count(job.available_pages, 'page')} left"
                if job.available_pages is not None
                else ""
            )
            print(f"{path.name}: done → {job.output}{pages}")
            return EXIT_OK
        if job.state is JobState.FAILED:
            print(f"{path.name}: failed: {job.error}", file=sys.stderr)
            return EXIT_SERVICE if job.sent_at else EXIT_FILE
        if job.state is JobState.HELD:
            print(f"{path.name}: held: {job.error}", file=sys.stderr)
            return EXIT_ACCOUNT if job.hold is HoldKind.BUDGET else EXIT_SERVICE
        if job.attempts >= CONVERT_GIVE_UP_ATTEMPTS:
            print(
                f"{path.name}: gave up: {job.error or 'the service could not be reached'}",
                file=sys.stderr,
            )
            return EXIT_SERVICE
        now = time.time()
        time.sleep(0.0 if job.is_due(now) else job.not_before - now)


_PROGRESS = {
    JobState.UPLOADING: "uploading…",
    JobState.WAITING_FOR_RESULT: "waiting for the service…",
    JobState.DOWNLOADING: "downloading…",
}


def _print_progress(job: Job) -> None:
    words = _PROGRESS.get(job.state)
    if words:
        print(f"{job.display_name}: {words}", flush=True)


def command_run(args: argparse.Namespace) -> int:
    """Live with a key; on the sandbox with --sandbox, or when no key is configured (said
    loudly: in the log, the tray and `status`). Each in its own world (watcher.world)."""
    from watcher.daemon import Daemon
    from watcher.tray import present

    path = config_path(args)
    if not path.exists():
        if not args.sandbox and os.environ.get(API_KEY_ENV, "").strip():
            print(
                f"pdfocr-watcher: no rules file at {path}. Create one with `pdfocr-watcher "
                "init`, or try everything first with `pdfocr-watcher run --sandbox`.",
                file=sys.stderr,
            )
            return EXIT_USAGE
        _first_sandbox_run(path)
    config = load_config(path)
    if not args.sandbox:  # the sandbox needs no key: a locked keyring is not asked
        config = with_key(config)
    check_runnable(config)
    use_sandbox = args.sandbox or not config.api.key
    state_dir = config.files.state_dir
    world = sandbox_state_dir(state_dir) if use_sandbox else state_dir
    with contextlib.ExitStack() as held:
        held.enter_context(InstanceLock(state_dir))  # either world: they share the inboxes
        if use_sandbox:
            held.enter_context(InstanceLock(world))  # tells `status` which world runs
        setup_logging(world, verbose=args.verbose)
        moved = None if use_sandbox else set_apart_old_sandbox_journal(config)
        if moved is not None:
            log.warning(
                "the journal held only SANDBOX conversions (written by an earlier release, "
                "when the sandbox shared it): moved to %s, so that none of their made-up "
                "results is taken for a real one",
                moved,
            )
        if not args.sandbox and use_sandbox:
            log.warning(
                "SANDBOX: no API key is configured in %s, so this runs on the built-in "
                "sandbox. To convert for real: pdfocr-watcher init --api-key KEY, then run "
                "again.",
                path,
            )
        warning = config_permission_warning(config)
        if warning:
            log.warning("%s", warning)
        for folder in all_folders(config):
            folder.mkdir(parents=True, exist_ok=True)
        # Under the lock: no other sandbox of this state folder is using these files.
        with service(config, use_sandbox, world / SANDBOX_SERVICE_FOLDER) as (endpoint, key):
            daemon = Daemon(
                config,
                endpoint_override=endpoint if use_sandbox else None,
                key_override=key if use_sandbox else None,
            )
            _stop_on_signals(daemon.stop_event)
            try:
                daemon.start()
                with commands_control.serving(daemon, state_dir):
                    present(daemon, no_tray=args.no_tray)
            finally:
                daemon.stop()
                daemon.close()
    return EXIT_OK


def _first_sandbox_run(path: Path) -> None:
    """The demo needs no set-up: a starter rules file and a sample PDF in the first inbox."""
    from watcher.samplepdf import write_pdf

    config = write_starter_config(path)
    inbox = config.inboxes[0].path
    write_pdf(
        inbox / "welcome.pdf",
        ["Welcome to pdfocr-watcher.", "This page was converted by the local sandbox."],
    )
    print(
        f"Created {path} and a sample {inbox / 'welcome.pdf'} for this first sandbox run.",
        flush=True,  # before the log lines, also when the output is a file
    )


def _stop_on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, lambda *_: stop.set())


def command_status(args: argparse.Namespace) -> int:
    """The live world's journal; the sandbox's with --sandbox, or when only it has one (a
    first look after the demo). The two are never added together."""
    config = load_optional_config(args)
    folder, sandbox = journal_world(config.files.state_dir, sandbox=args.sandbox)
    journal_path = folder / JOURNAL_FILE_NAME
    if not journal_path.exists():
        world = "SANDBOX journal" if sandbox else "journal"
        print(f"No {world} yet at {journal_path}: the daemon has not run with these rules.")
        return EXIT_OK
    journal = Journal(journal_path)
    try:
        report = _status_report(journal, config, args.last, sandbox=sandbox)
    finally:
        journal.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_status(report)
    return EXIT_OK


def _status_report(
    journal: Journal, config: Config, last: int, *, sandbox: bool
) -> dict[str, object]:
    live_dir = config.files.state_dir
    sandbox_running = daemon_running(sandbox_state_dir(live_dir))
    running = sandbox_running if sandbox else daemon_running(live_dir) and not sandbox_running
    pages_at = journal.get_meta(META_PAGES_AT)
    pages = journal.get_meta(META_PAGES)
    return {
        "world": "sandbox" if sandbox else "live",
        "running": running,
        "live": commands_control.live_report(live_dir) if running else None,
        "other_world_running": not sandbox and sandbox_running,
        "other_world_journal": not sandbox and has_sandbox_journal(live_dir),
        "mode": journal.get_meta(META_MODE) or "unknown",
        "held": journal.get_meta(META_HOLD),
        "service_problem": journal.get_meta(META_SERVICE),
        "hook_problem": journal.get_meta(META_HOOK),
        "available_pages": int(pages) if pages else None,
        "available_pages_seen": _when(float(pages_at)) if pages_at else None,
        "counts": {state.value: count for state, count in journal.counts().items()},
        "compacted": {state.value: n for state, n in journal.history_counts().items()},
        "pages_sent": [
            {
                "day": day,
                "inbox": inbox,
                "pages": pages,
                # Play money has no price: the sandbox's pages are never costed.
                "estimated_cost_usd": None
                if sandbox
                else [round(cost, 2) for cost in estimated_cost(pages)],
            }
            for day, inbox, pages in journal.spend(since_day=local_day(time.time() - 30 * DAY))
        ],
        "recent": [
            {
                "id": job.id,
                "state": "scheduled" if job.hold is HoldKind.SCHEDULED else job.state.value,
                "file": job.display_name,
                "output": str(job.output) if job.output else None,
                "error": job.error,
                "updated": _when(job.updated_at),
            }
            for job in journal.jobs(limit=last)
        ],
    }


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _print_status(report: dict[str, object]) -> None:
    sandbox = report["world"] == "sandbox"
    mark = "SANDBOX " if sandbox else ""
    if sandbox:
        print(
            "SANDBOX: the built-in stand-in's own journal. Nothing here was sent to "
            "pdfocr.org or charged, and none of it counts in the real figures."
        )
    running = "running" if report["running"] else "not running"
    if report["other_world_running"]:
        running += " (a SANDBOX daemon is running: pdfocr-watcher status --sandbox)"
    print(f"{mark}Daemon: {running}")
    commands_control.print_live(report["live"])
    if report["held"]:
        print(f"{mark}QUEUE HELD: {report['held']}")
    if report["service_problem"]:
        print(f"{mark}Service trouble: {report['service_problem']}")
    if report["hook_problem"]:
        print(f"{mark}A command after a result failed: {report['hook_problem']}")
    pages = report["available_pages"]
    if isinstance(pages, int):
        money = " of play money" if sandbox else ""
        print(
            f"{mark}Credit: {count(pages, 'page')}{money} (seen {report['available_pages_seen']})"
        )
    counts = report["counts"]
    assert isinstance(counts, dict)
    print(
        f"{mark}Jobs: "
        + (", ".join(f"{count} {state}" for state, count in sorted(counts.items())) or "none yet")
    )
    spend = report["pages_sent"]
    assert isinstance(spend, list)
    if spend and sandbox:
        print("SANDBOX pages converted (last 30 days; play money, nothing charged):")
    elif spend:
        print("Pages sent (last 30 days, estimated cost at your pack's price):")
    for row in spend:
        where = row["inbox"] or "(convert)"
        if sandbox:
            print(f"  {row['day']}  {count(row['pages'], 'page'):>12}  SANDBOX  {where}")
            continue
        low, high = row["estimated_cost_usd"]
        pages_sent = count(row["pages"], "page")
        print(f"  {row['day']}  {pages_sent:>12}  ${low:,.2f} to ${high:,.2f}  {where}")
    recent = report["recent"]
    assert isinstance(recent, list)
    for job in recent:
        outcome = job["output"] or job["error"] or ""
        print(f"  {mark}#{job['id']:<5} {job['state']:<18} {job['file']}  {outcome}")
    if report["other_world_journal"]:
        print(
            "The SANDBOX keeps its own journal, not counted here: pdfocr-watcher status --sandbox"
        )


def command_sandbox(args: argparse.Namespace) -> int:
    from watcher.sandbox import FaultRates, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return serve(
        host=args.host,
        port=args.port,
        key=args.key,
        credits=args.credits,
        seconds_per_page=args.seconds_per_page,
        cut_after=args.cut_after,
        faults=FaultRates(
            reset=args.fault_reset,
            http502=args.fault_http502,
            http429=args.fault_http429,
            truncate=args.fault_truncate,
        ),
        seed=args.seed,
        late_names=args.late_names,
        lose_after_cut=args.lose_after_cut,
        reply_delay=args.reply_delay,
        poll_delay=args.poll_delay,
    )
