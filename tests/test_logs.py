"""The daemon's own log file: it rotates by size, counting what it writes; it holds no form of
the key and no library's query string; it is readable by its owner only."""

from __future__ import annotations

import http.server
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import urllib3
from conftest import umask

from watcher.logs import (
    FORMAT,
    LOG_FILE_NAME,
    LogFile,
    RedactingFormatter,
    log_path,
    register_secret,
    setup_logging,
)
from watcher.sandbox import Sandbox


def test_the_log_file_rotates_at_its_size_and_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "watcher.log"
    path.write_text("x" * 700 + "\n")  # left by an earlier run: counted from the start
    handler = LogFile(path, maxBytes=1000, backupCount=9, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(FORMAT))
    logger = logging.getLogger("test-log-rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for number in range(40):
            logger.warning("line %02d %s", number, "ä" * 20)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.glob("watcher.log*"))
    assert len(files) > 3  # it rotated, more than once
    assert all(len(f.read_text(encoding="utf-8")) <= 1000 for f in files)
    lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    assert sorted(line[-26:-21] for line in lines if "line " in line) == [
        f"ne {n:02d}" for n in range(40)
    ]
    oldest = max(files, key=lambda f: int(f.suffix[1:]) if f.suffix[1:].isdigit() else 0)
    assert oldest.read_text(encoding="utf-8").startswith("x" * 700)


# -- the key, in none of its forms; no library's query string; the file is the user's alone ----

KEY = "k+/=&é y"  # reserved characters, a space and a non-ASCII letter: every encoder differs
# Written out, not computed by the module under test: each is a form some encoder gives KEY.
KEY_FORMS = [
    "k+/=&é y",  # raw
    "k%2B%2F%3D%26%C3%A9%20y",  # quote(safe="")
    "k%2B/%3D%26%C3%A9%20y",  # quote()
    "k%2B%2F%3D%26%C3%A9+y",  # quote_plus(), urlencode(), urllib3's fields=
    "k%2b%2f%3d%26%c3%a9%20y",  # lower-case hex
    "k%2b%2f%3d%26%c3%a9+y",
    "k+/=&%C3%A9%20y",  # requests' requote_uri: reserved characters left raw
    "k+/=&\\u00e9 y",  # json.dumps()[1:-1]
    "k+/=&\\u00E9 y",  # upper-case JSON hex
    "k+\\/=&\\u00e9 y",  # JSON with "/" escaped
]


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 answering every GET with "ok"; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def log_text(state: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return log_path(state).read_text(encoding="utf-8")


@pytest.mark.parametrize("form", KEY_FORMS)
def test_every_encoded_form_of_the_key_is_redacted(tmp_path: Path, form: str) -> None:
    setup_logging(tmp_path, verbose=True)
    register_secret(KEY)
    logging.getLogger("watcher.test").info(
        "sent to https://pdfocr.org/ocrapiv1.html?apikey=%s", form
    )
    text = log_text(tmp_path)
    assert form not in text
    # Our own lines keep their URLs' queries: only the key is gone.
    assert "ocrapiv1.html?apikey=[redacted]" in text


def test_a_real_urllib3_request_line_holds_neither_the_key_nor_the_query(
    tmp_path: Path, local_server: str
) -> None:
    setup_logging(tmp_path, verbose=True)  # -v: urllib3's debug lines reach the file
    register_secret(KEY)
    logging.getLogger("watcher.test").warning("the key is %s, it says", KEY)
    with urllib3.PoolManager() as pool:
        fields = {"apikey": KEY, "filename": "Invoice-March.pdf", "outformat": "docx"}
        assert pool.request("GET", f"{local_server}/ocrapiv1.html", fields=fields).status == 200
        hand_made = f"{local_server}/ocrapiv1.html?apikey={quote(KEY, safe='')}&filename=x.pdf"
        assert pool.request("GET", hand_made).status == 200
    text = log_text(tmp_path)
    assert "the key is [redacted], it says" in text
    # urllib3 really logged both requests, without their queries.
    assert text.count(f'{local_server} "GET /ocrapiv1.html HTTP/1.1" 200') == 2, text
    assert not [form for form in KEY_FORMS if form in text], text
    assert "apikey=" not in text and "Invoice-March" not in text


def test_a_library_line_loses_its_query_whatever_the_key(tmp_path: Path) -> None:
    setup_logging(tmp_path, verbose=True)
    unregistered = "never-registered-Zq81"
    logging.getLogger("urllib3.connectionpool").debug(
        "%s \"GET /ocrapiv1.html?apikey=%s&filename=a.pdf HTTP/1.1\" 200 2 (url='/x?apikey=%s')",
        "http://127.0.0.1:1",
        unregistered,
        unregistered,
    )
    logging.getLogger("watcher").info("ours: /ocrapiv1.html?filename=b.pdf")
    text = log_text(tmp_path)
    assert unregistered not in text and "a.pdf" not in text
    assert "\"GET /ocrapiv1.html HTTP/1.1\" 200 2 (url='/x')" in text
    assert "ours: /ocrapiv1.html?filename=b.pdf" in text  # our own line, unchanged


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_the_log_file_is_the_users_alone_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        setup_logging(tmp_path)
        logging.getLogger("watcher.test").warning("Invoice.pdf: result at https://x/y")
    assert file_mode(log_path(tmp_path)) == 0o600


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_rotated_logs_and_an_older_versions_log_are_made_the_users_alone(tmp_path: Path) -> None:
    path = tmp_path / "watcher.log"
    with umask(0):
        for old in (path, tmp_path / "watcher.log.2"):  # an older version's, open to all
            old.write_text("older\n")
            old.chmod(0o666)
        handler = LogFile(path, maxBytes=300, backupCount=3, encoding="utf-8")
        handler.setFormatter(RedactingFormatter(FORMAT))
        logger = logging.getLogger("test-log-modes")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            # Tightened when opened, before any line or rollover.
            assert (file_mode(path), file_mode(tmp_path / "watcher.log.2")) == (0o600, 0o600)
            for number in range(30):
                logger.warning("line %02d of a log that rotates", number)
        finally:
            logger.removeHandler(handler)
            handler.close()
    files = sorted(tmp_path.glob("watcher.log*"))
    assert len(files) == 4  # the log and its three backups
    assert {f.name: file_mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_a_verbose_log_beside_the_rules_file_does_not_feed_itself(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The state folder (and so the log) in the folder of the rules file, which the daemon
    watches for edits: with -v, the watcher's own debug line about each write to the log
    was once the cause of the next write, a core busy for ever."""
    rules = tmp_path / "config.toml"
    rules.write_text(
        f'[api]\nkey = "{sandbox.key}"\nendpoint = "{sandbox.url}"\n\n'
        f'[files]\nstate_dir = "{tmp_path}"\noutbox = "{tmp_path / "out"}"\n'
        f'archive = "{tmp_path / "archive"}"\nfailed = "{tmp_path / "failed"}"\n\n'
        f'[[inbox]]\npath = "{tmp_path / "in"}"\noutformat = "txt"\n'
    )
    (tmp_path / "in").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(rules), "--no-tray", "-v"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / LOG_FILE_NAME
    try:
        deadline = time.monotonic() + 60
        while "watching" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)
        time.sleep(1.0)
        before = len(log.read_text().splitlines())
        time.sleep(2.0)
        grown = len(log.read_text().splitlines()) - before
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert grown < 20, f"{grown} lines in 2 s of doing nothing"
