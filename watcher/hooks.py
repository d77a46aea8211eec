"""A command of the user's after each result: `on_success` and `on_failure` of an [[inbox]].

Print the result, sync it somewhere, tell another program. The command is an argument list,
run without a shell: a value put into it (a file name from the inbox above all) is always one
argument, whatever it holds, and can never become a second command. It runs after the job's
end is journaled, on a thread of its own, one command at a time, so it can never delay a
conversion nor undo one. It has a time limit (`hook_seconds`), after which it is stopped. Its
failure (an exit status other than 0, the time limit, a program that cannot be started) is
logged with the end of what it printed, kept in the journal for `status`, and told to the
tray; the conversion stays done (or failed) as it was.

A hook runs at most once per result: one still queued or running when the daemon stops is
not run again at the next start (the result is in the outbox; the user can run it by hand).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import string
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watcher.cores import anywhere
from watcher.jobs import ORIGINAL_DELETED, Job, JobState, readable

if TYPE_CHECKING:
    from watcher.config import Config
    from watcher.journal import Journal

log = logging.getLogger(__name__)

META_HOOK = "hook_problem"  # the last failed command, until one succeeds
STOP_GRACE_SECONDS = 2.0  # a command still running when the daemon stops gets this long
OUTPUT_TAIL_BYTES = 400  # of what a failed command printed, shown with its failure
_SECRET_ENV = ("PDFOCR_API_KEY",)  # never handed to the user's command

# The fields an argument may hold, for each kind of hook, and what each says.
COMMON_FIELDS: Mapping[str, str] = {
    "name": "the original's file name",
    "source": "where the original was, in the inbox",
    "original": "where the original is now (archive, failed folder or inbox; empty if deleted)",
    "inbox": "the inbox folder",
    "outformat": "the format converted to",
    "lang": "the document language",
    "job": "the job number (as in `pdfocr-watcher status`)",
}
SUCCESS_FIELDS: Mapping[str, str] = {**COMMON_FIELDS, "output": "the result's path"}
FAILURE_FIELDS: Mapping[str, str] = {**COMMON_FIELDS, "error": "why the file failed"}


def command_problem(argv: tuple[str, ...], fields: Mapping[str, str]) -> str | None:
    """Why an argument list cannot be used as a hook, or None. The program (the first item)
    holds no field: a file name from the inbox must never choose what is run."""
    for number, argument in enumerate(argv):
        try:
            pieces = list(string.Formatter().parse(argument))
        except ValueError as exc:
            return f"item {number + 1} is not valid ({exc}); write a literal brace twice"
        for _, field, spec, conversion in pieces:
            if field is None:
                continue
            if number == 0:
                return "the program (the first item) may not hold a field; name it plainly"
            if field not in fields:
                known = ", ".join(f"{{{name}}}" for name in fields)
                return f"item {number + 1} has the unknown field {{{field}}}; here: {known}"
            if spec or conversion:
                return f"item {number + 1} writes {{{field}}} with a format; write it plainly"
    return None


def find_program(program: str, base: Path) -> Path | None:
    """The program to run, absolute: a path (with ~, relative to the rules file's folder)
    or a bare name looked up on PATH; None when there is no such runnable file."""
    if os.sep in program or (os.altsep and os.altsep in program) or program.startswith("~"):
        path = (base / Path(program).expanduser()).resolve()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(program)
    return Path(found).resolve() if found else None


def render(argv: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    """The argument list with its fields filled in, each argument still one argument."""
    out = []
    for argument in argv:
        parts = []
        for literal, field, _, _ in string.Formatter().parse(argument):
            parts.append(literal)
            if field is not None:
                parts.append(values.get(field, ""))
        out.append("".join(parts))
    return out


def values_for(job: Job) -> dict[str, str]:
    """What a finished job fills into its hook's fields."""
    original = job.original_at or str(job.source)
    return {
        "name": job.display_name,
        "source": readable(str(job.source)),
        "original": "" if original == ORIGINAL_DELETED else readable(original),
        "inbox": readable(str(job.inbox)) if job.inbox else "",
        "outformat": job.rule.outformat,
        "lang": job.rule.lang,
        "job": str(job.id),
        "output": readable(str(job.output)) if job.output else "",
        "error": job.error or "",
    }


@dataclass(frozen=True)
class _Call:
    """One command to run for one result."""

    job: Job
    argv: list[str]
    seconds: float
    cwd: Path | None


class HookRunner:
    """Runs the hooks of finished jobs, in order, on a thread of its own (started on first
    use). The hooks are the current rules' (a reload applies at once, to results still to
    come); a job whose inbox is no longer in the rules runs none."""

    def __init__(
        self,
        config: Config,
        journal: Journal | None = None,
        *,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self._config = config
        self._journal = journal
        self._on_problem = on_problem or (lambda text: None)
        self._queue: queue.Queue[_Call | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def update_config(self, config: Config) -> None:
        self._config = config

    def after_result(self, job: Job) -> None:
        """A job has ended (journaled): queue its inbox's command, if it has one. Never
        waits, never raises: the caller is a worker that has more files to convert."""
        try:
            call = self._call_for(job)
        except Exception:
            log.exception("%s: could not prepare the command after it", job.display_name)
            return
        if call is None:
            return
        with self._lock:
            if self._stopping.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="hooks", daemon=True)
                self._thread.start()
        self._queue.put(call)

    def stop(self) -> None:
        """Stops the thread: commands still queued are not run, a running one is given
        STOP_GRACE_SECONDS and then stopped."""
        with self._lock:
            self._stopping.set()
            thread = self._thread
        self._queue.put(None)
        if thread is not None:
            thread.join(STOP_GRACE_SECONDS + 3.0)

    def _call_for(self, job: Job) -> _Call | None:
        if job.state not in (JobState.DONE, JobState.FAILED):
            return None
        rule = next((r for r in self._config.inboxes if r.path == job.inbox), None)
        if rule is None:
            return None
        argv = rule.on_success if job.state is JobState.DONE else rule.on_failure
        if not argv:
            return None
        folder = job.rule.outbox if job.state is JobState.DONE else job.rule.failed
        cwd = folder if folder.is_dir() else None
        return _Call(job, render(argv, values_for(job)), rule.hook_seconds, cwd)

    def _work(self) -> None:
        skipped = 0
        while (call := self._queue.get()) is not None:
            if self._stopping.is_set():
                skipped += 1
                continue
            try:
                problem = self._run(call)
            except Exception:
                log.exception("%s: the command after it could not be run", call.job.display_name)
                continue
            self._report(call, problem)
        if skipped:
            log.warning("%d command(s) after results were not run: the daemon stopped", skipped)

    def _run(self, call: _Call) -> str | None:
        """Runs one command to its end or its time limit; what went wrong, or None."""
        env = {key: value for key, value in os.environ.items() if key not in _SECRET_ENV}
        with tempfile.TemporaryFile() as output:
            try:
                with anywhere():  # the daemon may keep to one core: not the user's command
                    process = subprocess.Popen(
                        call.argv,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        cwd=call.cwd,
                        env=env,
                        start_new_session=os.name == "posix",  # its own group: stopped as one
                    )
            except OSError as exc:
                return f"could not be started: {exc.strerror or exc}"
            status = self._wait(process, call.seconds)
            if status == 0:
                return None
            output.seek(max(0, output.seek(0, os.SEEK_END) - OUTPUT_TAIL_BYTES))
            tail = " ".join(output.read().decode("utf-8", "replace").split())  # one line
        said = f"; it printed: {tail}" if tail else ""
        if status is None and self._stopping.is_set():
            return f"was stopped because the daemon stopped{said}"
        if status is None:
            return f"was stopped after {call.seconds:g} s (its time limit, hook_seconds){said}"
        return f"ended with exit status {status}{said}"

    def _wait(self, process: subprocess.Popen[bytes], seconds: float) -> int | None:
        """Its exit status, or None once it was stopped: at its time limit, or
        STOP_GRACE_SECONDS after the daemon began to stop, whichever comes first."""
        deadline = time.monotonic() + seconds
        stopping_noticed = False
        while True:
            now = time.monotonic()
            if self._stopping.is_set() and not stopping_noticed:
                stopping_noticed = True
                deadline = min(deadline, now + STOP_GRACE_SECONDS)
            if now >= deadline:
                _kill(process)
                return None
            try:
                return process.wait(timeout=min(deadline - now, 0.5))
            except subprocess.TimeoutExpired:
                continue

    def _report(self, call: _Call, problem: str | None) -> None:
        program = Path(call.argv[0]).name
        job = call.job
        if problem is None:
            log.info("%s: ran %s after it", job.display_name, program)
            self._remember(None)
            return
        text = f"{program}, run after {job.display_name} (job {job.id}), {problem}"
        log.warning("the command %s; the conversion itself is kept as it is", text)
        self._remember(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {text}")
        try:
            self._on_problem(text)
        except Exception:
            log.exception("telling of a failed command failed")

    def _remember(self, text: str | None) -> None:
        if self._journal is None:
            return
        try:
            self._journal.set_meta(META_HOOK, text)
        except Exception as exc:  # a journal that cannot be written says so where it matters
            log.debug("could not journal the command's outcome: %s", exc)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Stops a command and whatever it started (its process group, on POSIX)."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except OSError:
        pass
    process.wait()
