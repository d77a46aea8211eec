"""The command line's hand on the running daemon: a real daemon process, the commands in
their own processes, the control socket on the disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_daemon import (
    MakeDaemon,
    files_in,
    journal_states,
    start_daemon_process,
    stop_process,
    wait_for,
    write_rules,
)

from watcher import control, samplepdf
from watcher.cli import main
from watcher.commands_control import duration, serving
from watcher.control import ControlError, ControlServer, ask, socket_path
from watcher.daemon import Daemon
from watcher.instance import InstanceLock
from watcher.jobs import HoldKind, JobState
from watcher.sandbox import Sandbox
from watcher.tray import next_morning

# A job re-queued in the journal by another process waits for a worker's idle check (30 s):
# a retry that "acts at once" must beat it by far, even on a loaded machine.
WELL_BEFORE_THE_IDLE_CHECK = 20.0


def cli(rules: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *words, "--config", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def answers(state_dir: Path) -> bool:
    try:
        return ask(state_dir, {"command": "status"}, timeout=5) is not None
    except ControlError:
        return False


@contextmanager
def daemon_process(rules: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_daemon_process(rules)
    try:
        wait_for(lambda: answers(rules.parent / "state"), timeout=60, what="the control channel")
        yield process
    finally:
        stop_process(process)


@contextmanager
def controlled(daemon: Daemon) -> Iterator[None]:
    """An in-process daemon with its channel and lock, as `run` has them."""
    state_dir = daemon.config.files.state_dir
    with InstanceLock(state_dir), serving(daemon, state_dir):
        yield


def test_pause_keeps_a_dropped_file_queued_until_resume_and_status_shows_it_under_way(
    make_sandbox, tmp_path: Path
) -> None:
    box = make_sandbox(seconds_per_page=6.0, cut_after=0.2)  # time for two `status` calls
    rules = write_rules(tmp_path, box)
    with daemon_process(rules):
        sock = tmp_path / "state" / "control.sock"
        mode = sock.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        paused = cli(rules, "pause")
        assert paused.returncode == 0, paused.stderr
        assert "Paused until you resume it" in paused.stdout
        samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "memo.pdf", ["memo"])
        wait_for(lambda: journal_states(tmp_path / "state") == ["queued"], what="queued")
        time.sleep(1.5)  # settled and queued: it stays so while paused
        assert journal_states(tmp_path / "state") == ["queued"] and box.ledger() == []
        assert "paused until resumed" in cli(rules, "status").stdout.lower()
        resumed = cli(rules, "resume")
        assert resumed.returncode == 0 and "Pause ended" in resumed.stdout
        wait_for(
            lambda: journal_states(tmp_path / "state") == ["waiting_for_result"],
            what="at the service",
        )
        status = cli(rules, "status")
        assert "converting at the service" in status.stdout and "memo.pdf" in status.stdout
        live = json.loads(cli(rules, "status", "--json").stdout)["live"]
        assert live["paused"] is False
        assert [job["file"] for job in live["jobs"]] == ["memo.pdf"]
        wait_for(lambda: (tmp_path / "outbox" / "memo.txt").exists(), timeout=60, what="converted")
    assert len(box.ledger()) == 1


def test_retry_acts_at_once_in_the_running_daemon_and_names_unknown_jobs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path, sandbox, extra="\n[credits]\ndaily_page_limit = 1\n")
    samplepdf.write_pdf(tmp_path / "inbox" / "to-word" / "long.pdf", ["one", "two"])
    with daemon_process(rules):
        wait_for(lambda: journal_states(tmp_path / "state") == ["held"], what="held by the limit")
        unknown = cli(rules, "retry", "99")
        assert unknown.returncode == 1 and "no job 99" in unknown.stdout
        retried = cli(rules, "retry", "1")
        assert retried.returncode == 0, retried.stderr
        assert "#1 long.pdf: queued again" in retried.stdout
        assert "the running pdfocr-watcher is on them now" in retried.stdout
        wait_for(
            lambda: (tmp_path / "outbox" / "long.docx").exists(),
            timeout=WELL_BEFORE_THE_IDLE_CHECK,
            what="converted without waiting for the idle check",
        )
    assert [charge.pages for charge in sandbox.ledger()] == [2]


def test_stop_ends_the_daemon_cleanly_and_without_one_each_command_says_so(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path, sandbox)
    (tmp_path / "inbox" / "to-text" / "empty.pdf").write_bytes(b"")
    with daemon_process(rules) as process:
        wait_for(lambda: journal_states(tmp_path / "state") == ["failed"], what="failed")
        stopped = cli(rules, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "Stopped." in stopped.stdout
        assert process.wait(timeout=30) == 0
    assert not (tmp_path / "state" / "control.sock").exists()
    assert "nothing to stop" in cli(rules, "stop").stdout
    pause = cli(rules, "pause", "--for", "1h")
    assert pause.returncode == 1 and "nothing to pause" in pause.stdout
    assert "nothing to resume" in cli(rules, "resume").stdout
    assert "Now:" not in cli(rules, "status").stdout
    retried = cli(rules, "retry", "--failed")
    assert "#1 empty.pdf: queued again" in retried.stdout
    assert "sent when pdfocr-watcher starts" in retried.stdout
    assert journal_states(tmp_path / "state") == ["queued"]
    assert files_in(tmp_path / "failed") == []  # the original is back in its inbox
    assert files_in(tmp_path / "inbox" / "to-text") == ["empty.pdf"]


def test_pause_for_a_while_or_until_tomorrow_morning(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    with controlled(daemon):
        before = time.time()
        assert main(["pause", "--for", "1h30m", "--config", str(rules)]) == 0
        after = time.time()
        paused_until = daemon.snapshot().paused_until
        assert paused_until is not None and before + 5400 <= paused_until <= after + 5400
        assert "Paused until" in capsys.readouterr().out
        assert main(["pause", "--until-tomorrow", "--config", str(rules)]) == 0
        assert daemon.snapshot().paused_until in {next_morning(before), next_morning(after)}
        assert main(["resume", "--config", str(rules)]) == 0
        assert daemon.snapshot().paused_until is None
        assert main(["resume", "--config", str(rules)]) == 0
        assert "nothing changed" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1h30m", 5400)])
def test_durations_in_the_words_people_use(text: str, seconds: float) -> None:
    assert duration(text) == seconds


def test_a_duration_without_a_unit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("30", "0m", "soon"):
        with pytest.raises(SystemExit) as exit_:
            main(["pause", "--for", bad])
        assert exit_.value.code == 2
        assert "invalid duration value" in capsys.readouterr().err


def test_resume_says_which_held_files_it_sends_again(
    make_sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resume is the user's say on files the service lost after it was sent them: they are
    sent again (maybe paid again), and the command names each."""
    box = make_sandbox(seconds_per_page=0.2, cut_after=0.1, lose_after_cut=1.0)
    rules = write_rules(tmp_path, box)
    rules.write_text(
        rules.read_text().replace("concurrency = 2", "concurrency = 2\nlost_after = 0.3")
    )
    daemon = make_daemon(rules)
    samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "lost.pdf", ["lost"])
    wait_for(lambda: daemon.journal.counts().get(JobState.HELD) == 1, what="held")
    assert daemon.journal.jobs()[0].hold is HoldKind.UNCERTAIN
    box.lose_after_cut = 0.0
    with controlled(daemon):
        assert main(["resume", "--config", str(rules)]) == 0
        said = capsys.readouterr().out
        assert "may be charged twice" in said and "#1 lost.pdf" in said
        wait_for(lambda: (tmp_path / "outbox" / "lost.txt").exists(), what="sent again")
    assert len(box.ledger()) == 2


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path: Path) -> None:
    def echo(request: control.Message) -> control.Message:
        return {"ok": True, "echo": request}

    stale_dir, live_dir = tmp_path / "stale", tmp_path / "live"
    for folder in (stale_dir, live_dir):
        folder.mkdir()
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(socket_path(stale_dir)))  # a killed daemon's: bound, never removed
    left.close()
    server = ControlServer(stale_dir, echo).start()
    try:
        assert ask(stale_dir, {"command": "hello"}) == {"ok": True, "echo": {"command": "hello"}}
        assert stat.S_IMODE(socket_path(stale_dir).lstat().st_mode) == 0o600
    finally:
        server.close()
    assert not socket_path(stale_dir).exists()

    other = socket.socket(socket.AF_UNIX)
    other.bind(str(socket_path(live_dir)))
    other.listen(1)
    try:
        inode = socket_path(live_dir).lstat().st_ino
        with pytest.raises(ControlError, match="another process answers"):
            ControlServer(live_dir, echo).start()
        assert socket_path(live_dir).lstat().st_ino == inode
    finally:
        other.close()


def test_a_daemon_whose_socket_is_taken_runs_on_without_it(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(socket_path(tmp_path / "state")))
    other.listen(1)
    try:
        with serving(daemon, tmp_path / "state"):
            samplepdf.write_pdf(tmp_path / "inbox" / "to-text" / "a.pdf", ["a"])
            wait_for(lambda: (tmp_path / "outbox" / "a.txt").exists(), what="converted")
    finally:
        other.close()
    assert "cannot reach this daemon" in caplog.text


def test_a_state_folder_too_deep_for_a_socket_gets_one_in_the_runtime_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    runtime = Path(tempfile.mkdtemp())  # short: tmp_path may leave no room for a socket name
    request.addfinalizer(lambda: shutil.rmtree(runtime))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert socket_path(deep).parent == runtime
    server = ControlServer(deep, lambda message: {"ok": True}).start()
    try:
        assert ask(deep, {"command": "status"}) == {"ok": True}
    finally:
        server.close()
    runtime.chmod(0o755)  # another user could put a socket there: not trusted
    with pytest.raises(ControlError, match="not a folder that only you can open"):
        ControlServer(deep, lambda message: {"ok": True}).start()


def test_the_windows_channel_wants_the_key_from_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows' named pipe cannot be run here: the same keyed channel over a Unix socket
    (multiprocessing's other family) stands in for it."""
    address = str(tmp_path / "pipe")
    monkeypatch.setattr(control, "KEYED_FAMILY", "AF_UNIX")
    monkeypatch.setattr(control, "pipe_address", lambda state_dir: address)
    assert ask(tmp_path, {"command": "status"}) is None  # no key yet: no daemon
    server = ControlServer(tmp_path, lambda request: {"ok": True, "got": request}).start()
    try:
        key_file = tmp_path / control.KEY_FILE_NAME
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert ask(tmp_path, {"command": "x"}) == {"ok": True, "got": {"command": "x"}}
        key_file.write_text("00" * 32)
        with pytest.raises(ControlError, match="does not know the key"):
            ask(tmp_path, {"command": "x"})
    finally:
        server.close()


def test_a_message_that_is_not_json_is_not_answered(tmp_path: Path) -> None:
    server = ControlServer(tmp_path, lambda request: {"ok": True}).start()
    try:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(10)
            raw.connect(str(socket_path(tmp_path)))
            payload = b"\x80\x04K\x01."  # a pickle
            raw.sendall(len(payload).to_bytes(4, "big") + payload)
            assert raw.recv(100) == b""  # hung up, nothing run
        assert ask(tmp_path, {"command": "status"}) == {"ok": True}
    finally:
        server.close()


def test_the_socket_is_created_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        server = ControlServer(tmp_path, lambda request: {"ok": True}).start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(socket_path(tmp_path).lstat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["control.sock"]  # no staging left
    finally:
        server.close()


def test_after_a_kill_the_left_socket_answers_nothing_and_the_next_start_replaces_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path, sandbox)
    sock = tmp_path / "state" / "control.sock"
    with daemon_process(rules) as process:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert stat.S_ISSOCK(sock.lstat().st_mode)  # left behind by the kill
    assert "nothing to pause" in cli(rules, "pause").stdout
    with daemon_process(rules):
        assert "Paused until" in cli(rules, "pause", "--for", "10m").stdout


def test_retry_says_when_a_paused_daemon_will_send_and_unknown_requests_are_refused(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_rules(tmp_path, sandbox)
    daemon = make_daemon(rules)
    (tmp_path / "inbox" / "to-text" / "empty.pdf").write_bytes(b"")
    wait_for(lambda: daemon.journal.counts().get(JobState.FAILED) == 1, what="failed")
    with controlled(daemon):
        daemon.pause(None)
        assert main(["retry", "1", "1", "--config", str(rules)]) == 0
        said = capsys.readouterr().out
        assert said.count("#1 empty.pdf: queued again") == 1
        assert "1 job queued again; they are sent when the pause ends (resumed)" in said
        refused = ask(tmp_path / "state", {"command": "dance"})
        assert refused is not None and refused["ok"] is False
        assert "does not know the command 'dance'" in refused["error"]


NOBODY = 65534


def connect_as_nobody(path: Path) -> str:
    """Connects to `path` and sends a request from a forked child that has become another
    user; what happened, in a word."""
    pid = os.fork()
    if pid == 0:  # the child: only socket calls, then out
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(10)
                sock.connect(str(path))
                payload = json.dumps({"command": "stop"}).encode()
                sock.sendall(len(payload).to_bytes(4, "big") + payload)
                code = 0 if sock.recv(100) else 3
        except PermissionError:
            code = 2
        except ConnectionError:  # reset or broken pipe: closed on us with our request unread
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {0: "answered", 2: "refused by the file mode", 3: "hung up"}.get(
        os.waitstatus_to_exitcode(status), "failed"
    )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(socket, "SO_PEERCRED"),
    reason="becoming another user needs root; the user id check needs Linux",
)
def test_another_user_can_neither_open_the_socket_nor_be_answered_through_a_loose_one(
    request: pytest.FixtureRequest,
) -> None:
    state_dir = Path(tempfile.mkdtemp())  # /tmp: another user can reach the socket's folder
    request.addfinalizer(lambda: shutil.rmtree(state_dir))
    state_dir.chmod(0o755)
    asked: list[control.Message] = []

    def handle(message: control.Message) -> control.Message:
        asked.append(message)
        return {"ok": True}

    server = ControlServer(state_dir, handle).start()
    try:
        assert connect_as_nobody(socket_path(state_dir)) == "refused by the file mode"
        socket_path(state_dir).chmod(0o666)  # loosened by someone: the user id check remains
        assert connect_as_nobody(socket_path(state_dir)) == "hung up"
        assert asked == []
        assert ask(state_dir, {"command": "status"}) == {"ok": True}
        assert asked == [{"command": "status"}]
    finally:
        server.close()


def test_retry_takes_the_numbers_from_the_world_status_shows(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the demo only the sandbox has a journal: `retry` acts there, in the running
    sandbox daemon or in its journal, and never starts a live journal by asking."""
    rules = write_rules(tmp_path, sandbox)
    state = tmp_path / "state"
    (tmp_path / "inbox" / "to-text" / "empty.pdf").write_bytes(b"")
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--sandbox", "--no-tray", "--config", str(rules)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: journal_states(state / "sandbox") == ["failed"], timeout=60, what="failed")
        retried = cli(rules, "retry", "1")
        assert retried.returncode == 0, retried.stderr
        assert "#1 empty.pdf: queued again" in retried.stdout
        assert "is on them now" in retried.stdout
        wait_for(lambda: journal_states(state / "sandbox") == ["failed"], what="failed again")
        assert cli(rules, "stop").returncode == 0
        process.wait(timeout=30)
    finally:
        stop_process(process)
    offline = cli(rules, "retry", "--failed")
    assert "queued again in the SANDBOX journal" in offline.stdout
    assert not (state / "journal.sqlite3").exists()

    daemon = make_daemon(rules)  # a live one now: the sandbox's numbers are not its own
    with controlled(daemon):
        assert main(["retry", "--sandbox", "1", "--config", str(rules)]) == 1
        assert "runs live" in capsys.readouterr().err
