"""Rules for real offices (issue 17): subfolders kept, per-inbox settings, result names from
a template. Real folders, a real sandbox on 127.0.0.1, a real daemon with its observer."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from test_daemon import MakeDaemon, wait_for

from watcher import samplepdf
from watcher.cli import EXIT_FILE, main
from watcher.config import InboxRule, load_config
from watcher.daemon import Daemon
from watcher.errors import ConfigError
from watcher.filing import result_name
from watcher.hooks import META_HOOK
from watcher.inbox import InboxWatcher
from watcher.jobs import HoldKind, JobState, Rule, SourceKind
from watcher.journal import Journal, NewJob
from watcher.sandbox import Sandbox
from watcher.schedule import parse_window
from watcher.settle import FileState, Inspect, SettleTracker, Wait


def refusal(source: Path, text: str) -> ConfigError:
    """What load_config refuses a rules file of `text` with (the test fails if it loads)."""
    source.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(source, env={})
    return caught.value


def tree(folder: Path) -> list[str]:
    """Every file below `folder`, as relative paths (hidden files left out)."""
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def rules(root: Path, box: Sandbox, inboxes: str, *, watch: str = "") -> Path:
    path = root / "config.toml"
    path.write_text(
        f"""
[api]
key = "{box.key}"
endpoint = "{box.url}"
poll_interval = 0.1

[watch]
settle_seconds = 0.3
{watch}

[files]
outbox = "{root / "outbox"}"
archive = "{root / "archive"}"
failed = "{root / "failed"}"
state_dir = "{root / "state"}"
{inboxes}
""",
        encoding="utf-8",
    )
    for line in inboxes.splitlines():
        if line.startswith("path = "):
            Path(line.split('"')[1]).mkdir(parents=True, exist_ok=True)
    return path


def png(path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), "white").save(out, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())
    return path


# --- 1. Subfolders kept ------------------------------------------------------------------------


def test_subfolders_are_kept_in_the_outbox_archive_and_failed_folder(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    inbox = tmp_path / "inbox"
    make_daemon(
        rules(
            tmp_path,
            sandbox,
            f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\n',
            watch="recursive = true",
        )
    )
    samplepdf.write_pdf(inbox / "2026" / "March" / "x.pdf", ["March"])
    samplepdf.write_pdf(inbox / "top.pdf", ["top"])
    (inbox / "2026" / "March" / "broken.pdf").write_text("<html>not a pdf</html>")
    wait_for(lambda: tree(tmp_path / "archive") == ["2026/March/x.pdf", "top.pdf"], what="archived")
    assert tree(tmp_path / "outbox") == ["2026/March/x.txt", "top.txt"]
    assert (tmp_path / "outbox" / "2026" / "March" / "x.txt").read_text() == "March"
    wait_for(
        lambda: (
            tree(tmp_path / "failed")
            == ["2026/March/broken.pdf", "2026/March/broken.pdf.error.txt"]
        ),
        what="the failure set aside in its subfolder",
    )
    assert tree(inbox) == []


def test_a_retried_failure_goes_back_to_its_subfolder_and_lands_in_the_same_one(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    inbox = tmp_path / "inbox"
    path = rules(
        tmp_path,
        sandbox,
        f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\nrecursive = true\n',
    )
    (inbox / "a" / "b").mkdir(parents=True)
    daemon = make_daemon(path)
    (inbox / "a" / "b" / "late.pdf").write_bytes(b"")

    def set_aside() -> bool:  # moved, and where to journaled (a retry looks there)
        failed = daemon.journal.jobs(states=(JobState.FAILED,))
        return bool(failed) and failed[0].original_at is not None

    wait_for(set_aside, what="set aside")
    failed = daemon.journal.jobs(states=(JobState.FAILED,))[0]
    assert failed.original_at == str(tmp_path / "failed" / "a" / "b" / "late.pdf")
    samplepdf.write_pdf(tmp_path / "failed" / "a" / "b" / "late.pdf", ["fixed"])
    daemon.retry_failed()
    wait_for(lambda: tree(tmp_path / "outbox") == ["a/b/late.txt"], what="converted on retry")
    assert daemon.journal.get(failed.id).source == inbox / "a" / "b" / "late.pdf"
    wait_for(lambda: tree(tmp_path / "archive") == ["a/b/late.pdf"], what="archived")


# --- 2. Per-inbox settings ---------------------------------------------------------------------


def test_each_inbox_has_its_own_patterns_settle_time_and_after_success(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    scans, letters = tmp_path / "scans", tmp_path / "letters"
    inboxes = (
        f'[[inbox]]\npath = "{scans}"\noutformat = "txt"\n'
        'patterns = ["*.png", "*.jpg"]\nsettle_seconds = 0.5\nafter_success = "keep"\n'
        f'[[inbox]]\npath = "{letters}"\noutformat = "txt"\nafter_success = "delete"\n'
    )
    make_daemon(rules(tmp_path, sandbox, inboxes))
    png(scans / "receipt.png")
    samplepdf.write_pdf(scans / "ignored.pdf", ["not a scan"])
    samplepdf.write_pdf(letters / "letter.pdf", ["Dear"])
    png(letters / "photo.png")
    wait_for(lambda: tree(tmp_path / "outbox") == ["letter.txt", "receipt.txt"], what="both")
    wait_for(lambda: tree(letters) == ["photo.png"], what="the letter deleted")
    assert tree(scans) == ["ignored.pdf", "receipt.png"]  # kept; a PDF is not its pattern
    assert tree(tmp_path / "archive") == []
    assert sorted(charge.filename.rpartition(".")[2] for charge in sandbox.ledger()) == [
        "pdf",
        "png",
    ]


def test_per_inbox_settings_are_applied_on_live_reload(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    inbox = tmp_path / "inbox"
    path = rules(tmp_path, sandbox, f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\n')
    daemon = make_daemon(path)
    png(inbox / "scan.png")
    samplepdf.write_pdf(inbox / "first.pdf", ["first"])
    wait_for(lambda: tree(tmp_path / "outbox") == ["first.txt"], what="the PDF converted")
    assert tree(inbox) == ["scan.png"]
    path.write_text(
        path.read_text().replace(
            'outformat = "txt"\n',
            'outformat = "txt"\npatterns = ["*.png"]\nname = "{stem} ({lang}).{ext}"\n',
        )
    )
    wait_for(lambda: daemon.config.inboxes[0].patterns == ("*.png",), what="reloaded")
    daemon.inbox.rescan()
    wait_for(lambda: "scan (English).txt" in tree(tmp_path / "outbox"), what="the scan converted")


# --- 3. Output names from a template -----------------------------------------------------------


def test_results_are_named_by_the_template_and_never_overwrite(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    german, dated = tmp_path / "german", tmp_path / "dated"
    inboxes = (
        f'[[inbox]]\npath = "{german}"\noutformat = "docx"\nlang = "German"\n'
        'name = "{stem} ({lang}).{ext}"\n'
        f'[[inbox]]\npath = "{dated}"\noutformat = "txt"\n'
        'name = "{date:%Y-%m-%d} {inbox} {stem}.{ext}"\n'
    )
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "Brief (German).docx").write_text("someone else's file")
    make_daemon(rules(tmp_path, sandbox, inboxes))
    samplepdf.write_pdf(german / "Brief.pdf", ["Guten Tag"])
    samplepdf.write_pdf(dated / "note.pdf", ["a note"])
    today = datetime.now().strftime("%Y-%m-%d")
    wait_for(lambda: len(tree(outbox)) == 3, what="two results")
    assert tree(outbox) == sorted(
        ["Brief (German).docx", "Brief (German) (2).docx", f"{today} dated note.txt"]
    )
    assert (outbox / "Brief (German).docx").read_text() == "someone else's file"


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{stem}/{ext}", "names a folder"),
        ("../{stem}.{ext}", "names a folder"),
        ("/tmp/{stem}.{ext}", "names a folder"),
        ("..\\\\{stem}.{ext}", "names a folder"),
        ("{date:%Y/%m} {stem}.{ext}", "date format"),
        ("{stem.__class__}.{ext}", "unknown field"),
        ("{stem[0]}.{ext}", "unknown field"),
        ("{name}.{ext}", "unknown field"),
        ("{stem!r}.{ext}", "format or conversion"),
        ("{stem:>300}.{ext}", "format or conversion"),
        ("{date:{stem}}.{ext}", "format or conversion"),
        ("{stem}", "must contain {ext}"),
        (".{stem}.{ext}", "hidden"),
        ("{stem.{ext}", "not a valid template"),
    ],
)
def test_an_unsafe_name_template_is_refused_with_file_line_and_key(
    tmp_path: Path, template: str, words: str
) -> None:
    source = tmp_path / "config.toml"
    error = refusal(
        source,
        f'[[inbox]]\npath = "in"\noutformat = "txt"\n\n[[inbox]]\npath = "in2"\noutformat = "txt"\n'
        f'lang = "German"\nname = "{template}"\n',
    )
    assert (error.key, error.line) == ("inbox[2].name", 9)
    assert str(error).startswith(f"{source}:9: inbox[2].name: ")
    assert words in error.message


def test_values_put_into_a_name_bring_no_separator() -> None:
    when = datetime(2026, 3, 1)
    template = "{date:%d.%m.%Y} {inbox} {stem}.{ext}"
    assert result_name("a/b.pdf", "txt", template=template, inbox="x/y", when=when) == (
        "01.03.2026 x_y b.txt"
    )
    assert result_name("pay\x00slip.pdf", "docx") == "pay_slip.docx"
    long = "é" * 200 + ".pdf"
    named = result_name(long, "docx", template="{stem} ({lang}).{ext}", lang="German")
    assert named.endswith("é (German).docx") and len(named.encode()) <= 255


def test_a_bad_per_inbox_setting_is_refused_with_its_line(tmp_path: Path) -> None:
    source = tmp_path / "config.toml"
    error = refusal(source, '[[inbox]]\npath = "in"\noutformat = "txt"\npatterns = []\n')
    assert (error.key, error.line) == ("inbox[1].patterns", 4)
    error = refusal(
        source,
        '[[inbox]]\npath = "in"\noutformat = "txt"\nsettle_seconds = -1\nafter_success = "x"\n',
    )
    assert (error.key, error.line) == ("inbox[1].settle_seconds", 4)


def test_check_shows_each_inbox_and_explain_says_where_the_result_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "config.toml"
    source.write_text(
        f'[files]\noutbox = "{tmp_path / "out"}"\narchive = "{tmp_path / "arch"}"\n'
        f'failed = "{tmp_path / "fail"}"\n'
        f'[[inbox]]\npath = "{tmp_path / "in"}"\noutformat = "docx"\nrecursive = true\n'
        'patterns = ["*.pdf", "*.tif"]\nsettle_seconds = 5\nname = "{stem} ({lang}).{ext}"\n',
        encoding="utf-8",
    )
    assert main(["check", "--config", str(source)]) == 0
    shown = capsys.readouterr().out
    assert "takes *.pdf, *.tif (subfolders too, kept in the output folders; settled after 5 s)" in (
        shown
    )
    assert "named '{stem} ({lang}).{ext}'" in shown
    scan = tmp_path / "in" / "2026" / "March" / "x.pdf"
    samplepdf.write_pdf(scan, ["x"])
    assert main(["check", "--config", str(source), "--explain", str(scan)]) == 0
    said = capsys.readouterr().out
    assert f"The result would be {tmp_path / 'out' / '2026' / 'March' / 'x (English).docx'}" in said
    assert f"moves to {tmp_path / 'arch' / '2026' / 'March'}" in said
    assert f"goes to {tmp_path / 'fail' / '2026' / 'March'}" in said


# --- 5. A command after each result ------------------------------------------------------------


def script(path: Path, body: str) -> Path:
    """An executable Python script (run directly, no shell), `body` after `import sys, os`."""
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_a_command_runs_after_each_result_with_its_values_as_single_arguments(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDFOCR_API_KEY", sandbox.key)  # must not reach the user's command
    said = tmp_path / "said.jsonl"
    record = script(
        tmp_path / "record.py",
        f"import json\nopen({str(said)!r}, 'a').write(json.dumps("
        "[sys.argv[1:], 'PDFOCR_API_KEY' in os.environ, os.getcwd()]) + '\\n')",
    )
    inbox = tmp_path / "inbox"
    inboxes = (
        f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\n'
        f'on_success = ["{record}", "{{output}}", "name: {{name}}", "{{job}}"]\n'
        f'on_failure = ["{record}", "failed", "{{original}}", "{{error}}"]\n'
    )
    make_daemon(rules(tmp_path, sandbox, inboxes))
    odd = "a; rm -rf x $(id) `id`.pdf"
    samplepdf.write_pdf(inbox / odd, ["odd"])
    (inbox / "empty.pdf").write_bytes(b"")
    wait_for(lambda: said.exists() and len(said.read_text().splitlines()) == 2, what="2 runs")
    runs = sorted((json.loads(line) for line in said.read_text().splitlines()), reverse=True)
    assert runs[0][0][0] == "failed"
    (failed_args, failed_env, failed_cwd), (done_args, done_env, done_cwd) = runs
    output = tmp_path / "outbox" / "a; rm -rf x $(id) `id`.txt"
    assert done_args[:2] == [str(output), f"name: {odd}"] and done_args[2].isdigit()
    assert done_cwd == str(tmp_path / "outbox")
    assert failed_args[:2] == ["failed", str(tmp_path / "failed" / "empty.pdf")]
    assert "empty" in failed_args[2] and failed_cwd == str(tmp_path / "failed")
    assert not done_env and not failed_env
    assert output.read_text() == "odd"


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="Linux with 2 cores or more",
)
def test_the_command_after_a_result_may_use_every_core(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, make_daemon: MakeDaemon
) -> None:
    """The daemon keeps to one core while a batch runs (watcher.cores); a program it starts
    would inherit that, and the user's command must not. Its command runs while a slower
    file is still at the service, the batch still running."""
    box = make_sandbox(seconds_per_page=0.5)
    allowed = repr(sorted(os.sched_getaffinity(0)))  # before a batch keeps this process too
    said = tmp_path / "cores.txt"
    record = script(
        tmp_path / "cores.py",
        f"open({str(said)!r}, 'a').write(repr(sorted(os.sched_getaffinity(0))) + '\\n')",
    )
    inbox = tmp_path / "inbox"
    daemon = make_daemon(
        rules(
            tmp_path,
            box,
            f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\n'
            f'on_success = ["{record}", "{{name}}"]\n',
        )
    )
    samplepdf.write_pdf(inbox / "slow.pdf", ["slow"] * 8)
    samplepdf.write_pdf(inbox / "quick.pdf", ["quick"])
    wait_for(lambda: said.exists() and said.read_text(), what="the command after quick.pdf")
    assert daemon.pool.busy == 1  # slow.pdf is still at the service: the batch runs
    assert said.read_text().splitlines()[0] == allowed


def test_a_failing_or_hanging_command_is_logged_and_shown_and_the_result_stays(
    sandbox: Sandbox, tmp_path: Path, make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "hang.pid"
    failing = script(tmp_path / "print.py", "print('printer offline'); sys.exit(3)")
    hanging = script(
        tmp_path / "hang.py",
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)",
    )
    first, second = tmp_path / "first", tmp_path / "second"
    inboxes = (
        f'[[inbox]]\npath = "{first}"\noutformat = "txt"\non_success = ["{failing}"]\n'
        f'[[inbox]]\npath = "{second}"\noutformat = "txt"\non_success = ["{hanging}"]\n'
        "hook_seconds = 0.5\n"
    )
    path = rules(tmp_path, sandbox, inboxes)
    daemon = make_daemon(path)
    notices: list[str] = []
    daemon.add_notice_listener(lambda notice: notices.append(notice.message))
    samplepdf.write_pdf(first / "one.pdf", ["one"])
    wait_for(lambda: daemon.journal.get_meta(META_HOOK), what="the failure journaled")
    problem = daemon.journal.get_meta(META_HOOK) or ""
    assert "print.py, run after one.pdf" in problem and "exit status 3" in problem
    assert "printer offline" in problem
    assert tree(tmp_path / "outbox") == ["one.txt"] and tree(tmp_path / "archive") == ["one.pdf"]
    assert daemon.journal.jobs()[0].state is JobState.DONE
    assert main(["status", "--config", str(path)]) == 0
    assert "A command after a result failed:" in capsys.readouterr().out
    samplepdf.write_pdf(second / "two.pdf", ["two"])
    wait_for(
        lambda: "stopped after 0.5 s" in (daemon.journal.get_meta(META_HOOK) or ""),
        what="the hanging command stopped at its time limit",
    )
    hung = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(hung, 0)
    assert tree(tmp_path / "outbox") == ["one.txt", "two.txt"]
    assert any("exit status 3" in message for message in notices)
    assert any("stopped after 0.5 s" in message for message in notices)


@pytest.mark.parametrize(
    ("hook", "words"),
    [
        ('on_success = "lp {output}"', "must be a list"),
        ('on_success = ["/no/such/program", "{output}"]', "no program '/no/such/program'"),
        ('on_success = ["{output}"]', "the program (the first item) may not hold a field"),
        ('on_failure = ["/bin/echo", "{output}"]', "unknown field {output}"),
        ('on_success = ["/bin/echo", "{output!r}"]', "with a format"),
        ("hook_seconds = 0", "more than 0"),
    ],
)
def test_a_bad_command_is_refused_with_file_line_and_key(
    tmp_path: Path, hook: str, words: str
) -> None:
    error = refusal(
        tmp_path / "config.toml", f'[[inbox]]\npath = "in"\noutformat = "txt"\n{hook}\n'
    )
    key = hook.split(" ")[0]
    assert (error.key, error.line) == (f"inbox[1].{key}", 4)
    assert words in error.message


def test_a_command_named_plainly_is_found_on_path_and_shown_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "config.toml"
    source.write_text(
        '[[inbox]]\npath = "in"\noutformat = "txt"\non_success = ["echo", "{output}"]\n'
        "hook_seconds = 5\n",
        encoding="utf-8",
    )
    rule = load_config(source, env={}).inboxes[0]
    assert Path(rule.on_success[0]).is_absolute() and Path(rule.on_success[0]).name == "echo"
    assert main(["check", "--config", str(source)]) == 0
    assert f"after each result: {rule.on_success[0]} '{{output}}' (stopped after 5 s)" in (
        capsys.readouterr().out
    )


# --- 4. Sending hours --------------------------------------------------------------------------


def hours_from_now(start: float, end: float) -> str:
    """A send_between window from `start` to `end` hours from now (local time)."""
    now = datetime.now()
    return f"{now + timedelta(hours=start):%H:%M}-{now + timedelta(hours=end):%H:%M}"


def test_outside_its_hours_a_file_waits_as_scheduled_and_goes_when_they_begin(
    make_sandbox: Callable[..., Sandbox],
    tmp_path: Path,
    make_daemon: MakeDaemon,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box = make_sandbox(seconds_per_page=3.0, cut_after=0.3)  # the first one waits at the service
    inbox = tmp_path / "inbox"
    path = rules(tmp_path, box, f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\n')
    daemon = make_daemon(path)
    samplepdf.write_pdf(inbox / "sent.pdf", ["sent before"])
    wait_for(lambda: len(box.ledger()) == 1, what="the first file sent")
    later = hours_from_now(2, 3)
    text = path.read_text().replace('"txt"\n', f'"txt"\nsend_between = "{later}"\n')
    path.write_text(text)
    daemon.reload_rules()
    assert str(daemon.config.inboxes[0].send_between) == later
    samplepdf.write_pdf(inbox / "night.pdf", ["sent later"])
    # The file already at the service is finished, whatever the hour...
    wait_for(lambda: tree(tmp_path / "outbox") == ["sent.txt"], what="the sent one filed")
    # ...and the new one waits, unsent, with the time it goes.
    wait_for(
        lambda: any(job.hold is HoldKind.SCHEDULED for job in daemon.journal.jobs()),
        what="the new file scheduled",
    )
    waiting = next(job for job in daemon.journal.jobs() if job.hold is HoldKind.SCHEDULED)
    assert waiting.source.name == "night.pdf" and waiting.sent_at is None
    assert waiting.held_until is not None and waiting.held_until > time.time() + 3600
    assert f"sent at {later[:5]}" in (waiting.error or "")
    assert len(box.ledger()) == 1
    assert main(["status", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "scheduled" in shown and f"sent at {later[:5]}" in shown
    assert f"sent at {later[:5]}" in (daemon.snapshot().held or "")
    # The hours changed to include now: judged again at once, and sent.
    path.write_text(text.replace(later, hours_from_now(-1, 1)))
    daemon.reload_rules()
    wait_for(lambda: "night.txt" in tree(tmp_path / "outbox"), what="sent in its new hours")
    assert sorted(charge.pages for charge in box.ledger()) == [1, 1]


def test_a_scheduled_file_is_released_when_its_hours_begin(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    (tmp_path / "x.pdf").write_bytes(b"%PDF-1.4")
    rule = Rule("txt", "English", True, tmp_path / "o", tmp_path / "a", tmp_path / "f", "keep")
    new = NewJob(tmp_path / "x.pdf", tmp_path, SourceKind.FILE, None, "h", 1, 1, rule, "x-1.pdf")
    job = journal.add(new)
    assert job is not None
    opening = time.time() + 600
    journal.move(job, JobState.HELD, held_until=opening, hold=HoldKind.SCHEDULED, error="later")
    assert journal.release_held(approve=False, due_before=opening - 1) == 0
    assert journal.release_held(approve=False, due_before=opening) == 1
    released = journal.get(job.id)
    assert released is not None and released.state is JobState.QUEUED
    assert (released.held_until, released.not_before, released.approved) == (None, 0.0, False)
    journal.close()


@pytest.mark.parametrize(
    ("moment", "window", "inside", "opens"),
    [
        ("2026-12-01 23:30", "22:00-06:00", True, None),
        ("2026-12-01 05:59", "22:00-06:00", True, None),
        ("2026-12-01 06:00", "22:00-06:00", False, "2026-12-01 22:00"),
        ("2026-12-01 12:00", "22:00-06:00", False, "2026-12-01 22:00"),
        ("2026-12-01 12:00", "08:00-18:00", True, None),
        ("2026-12-01 18:00", "08:00-18:00", False, "2026-12-02 08:00"),
        ("2026-12-01 07:59", "08:00-18:00", False, "2026-12-01 08:00"),
    ],
)
def test_a_window_says_whether_now_is_inside_and_when_it_opens(
    moment: str, window: str, inside: bool, opens: str | None
) -> None:
    parsed = parse_window(window)
    assert parsed is not None
    at = datetime.strptime(moment, "%Y-%m-%d %H:%M")
    assert parsed.contains(at) is inside
    if opens is not None:
        assert parsed.next_opening(at) == datetime.strptime(opens, "%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("table", "value", "words"),
    [
        ("inbox", "22:00", "two times of day"),
        ("inbox", "25:00-06:00", "does not exist"),
        ("inbox", "06:00-06:00", "same time"),
        ("watch", "night", "two times of day"),
    ],
)
def test_bad_sending_hours_are_refused_with_file_line_and_key(
    tmp_path: Path, table: str, value: str, words: str
) -> None:
    inbox = '[[inbox]]\npath = "in"\noutformat = "txt"\n'
    setting = f'send_between = "{value}"\n'
    text = inbox + setting if table == "inbox" else f"[watch]\n{setting}\n{inbox}"
    error = refusal(tmp_path / "config.toml", text)
    key, line = ("inbox[1].send_between", 4) if table == "inbox" else ("watch.send_between", 2)
    assert (error.key, error.line) == (key, line)
    assert words in error.message


def test_sending_hours_from_watch_apply_to_every_inbox_unless_it_sets_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "config.toml"
    source.write_text(
        '[watch]\nsend_between = "22:00-06:00"\n[[inbox]]\npath = "in"\noutformat = "txt"\n'
        '[[inbox]]\npath = "day"\noutformat = "txt"\nsend_between = ""\n',
        encoding="utf-8",
    )
    night, day = load_config(source, env={}).inboxes
    assert str(night.send_between) == "22:00-06:00" and day.send_between is None
    assert main(["check", "--config", str(source)]) == 0
    assert capsys.readouterr().out.count("sends only between 22:00-06:00") == 1


def test_a_command_still_running_when_the_daemon_stops_is_stopped_with_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pid_file = tmp_path / "slow.pid"
    slow = script(
        tmp_path / "slow.py",
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)",
    )
    inbox = tmp_path / "inbox"
    inboxes = (
        f'[[inbox]]\npath = "{inbox}"\noutformat = "txt"\non_success = ["{slow}"]\n'
        "hook_seconds = 3600\n"
    )
    daemon = Daemon(load_config(rules(tmp_path, sandbox, inboxes)))
    daemon.start()
    try:
        samplepdf.write_pdf(inbox / "one.pdf", ["one"])
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the command started")
    finally:
        daemon.stop()
        daemon.close()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert tree(tmp_path / "outbox") == ["one.txt"]


def test_a_file_waits_for_its_own_inbox_settle_time() -> None:
    """The tracker alone, on given clocks: a slow scanner's inbox (10 s) next to the
    default (0.3 s)."""
    tracker: SettleTracker[str] = SettleTracker(0.3)
    wall = 1000.0
    state = FileState(10, int(wall * 1e9))  # written at the moment it is seen
    fast, slow = Path("/in/fast.pdf"), Path("/scans/slow.pdf")
    assert tracker.seen(fast, state, 0.0, wall, "fast") == Wait(0.3)
    assert tracker.seen(slow, state, 0.0, wall, "slow", settle_seconds=10.0) == Wait(10.0)
    looks = {look.path: look for look in tracker.due(0.3)}
    assert list(looks) == [fast]
    assert isinstance(tracker.looked(looks[fast], state, 0.3, wall + 0.3), Inspect)
    assert tracker.due(9.9) == []
    (late,) = tracker.due(10.0)
    assert late.path == slow and isinstance(tracker.looked(late, state, 10.0, wall + 10), Inspect)


def test_the_watcher_gives_each_inbox_its_own_patterns_and_settle_time(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    source = tmp_path / "config.toml"
    source.write_text(
        f'[watch]\nsettle_seconds = 0.2\n[files]\noutbox = "{tmp_path / "out"}"\n'
        f'archive = "{tmp_path / "arch"}"\nfailed = "{tmp_path / "fail"}"\n'
        f'[[inbox]]\npath = "{fast}"\noutformat = "txt"\npatterns = ["*.png"]\n'
        f'[[inbox]]\npath = "{slow}"\noutformat = "txt"\nsettle_seconds = 3600\n',
        encoding="utf-8",
    )
    fast.mkdir()
    slow.mkdir()
    handed: list[Path] = []

    def on_ready(files: Sequence[tuple[Path, InboxRule]]) -> list[Path]:
        handed.extend(path for path, _ in files)
        return []

    watcher = InboxWatcher(load_config(source, env={}), on_ready)
    watcher.start()
    try:
        samplepdf.write_pdf(slow / "slow.pdf", ["slow"])
        samplepdf.write_pdf(fast / "not-a-scan.pdf", ["pdf"])
        png(fast / "scan.png")
        wait_for(lambda: handed == [fast / "scan.png"], what="the scan handed on")
        wait_for(lambda: watcher.pending_count == 1, what="only the slow one still settling")
        assert handed == [fast / "scan.png"]
    finally:
        watcher.stop()


def test_a_command_given_by_a_relative_path_is_taken_from_the_rules_file_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "scripts").mkdir()
    printer = script(tmp_path / "scripts" / "print.py", "pass")
    source = tmp_path / "config.toml"
    source.write_text(
        '[[inbox]]\npath = "in"\noutformat = "txt"\n'
        'on_success = ["scripts/print.py", "{output}"]\n',
        encoding="utf-8",
    )
    assert load_config(source, env={}).inboxes[0].on_success == (str(printer), "{output}")
    printer.chmod(0o644)  # no longer runnable: refused, with the line
    with pytest.raises(ConfigError) as caught:
        load_config(source, env={})
    assert (caught.value.key, caught.value.line) == ("inbox[1].on_success", 4)


def test_the_dry_run_says_a_file_waits_for_its_hours_as_the_daemon_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = hours_from_now(2, 3)
    source = tmp_path / "config.toml"
    source.write_text(
        f'[files]\nstate_dir = "{tmp_path / "state"}"\noutbox = "{tmp_path / "out"}"\n'
        f'[[inbox]]\npath = "{tmp_path / "in"}"\noutformat = "txt"\nsend_between = "{later}"\n',
        encoding="utf-8",
    )
    scan = samplepdf.write_pdf(tmp_path / "in" / "x.pdf", ["x"])
    assert main(["check", "--config", str(source), "--explain", str(scan)]) == EXIT_FILE
    said = capsys.readouterr().out
    assert "x.pdf: would be held, not sent" in said and f"sent at {later[:5]}" in said
    now = hours_from_now(-1, 1)
    source.write_text(source.read_text().replace(later, now))
    assert main(["check", "--config", str(source), "--explain", str(scan)]) == 0
    said = capsys.readouterr().out
    assert "x.pdf: would be converted" in said
    assert f"It is sent only between {now}." in said
    assert f"The result would be {tmp_path / 'out' / 'x.txt'}" in said
