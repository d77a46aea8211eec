"""A hostile or broken service: every strange reply is classified, none crashes a worker or
writes outside the configured folders. The service here is a scripted HTTP server on
127.0.0.1 that answers whatever the test tells it to."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from watcher import samplepdf
from watcher.api import ClientSettings, PdfOcrClient, RemoteJob
from watcher.errors import (
    AccountError,
    BadDownload,
    ConversionCut,
    EndpointMoved,
    FileRejected,
    TransientError,
)
from watcher.jobs import JobState, NewJob, Rule, SourceKind
from watcher.journal import Journal
from watcher.runner import JobRunner, Timing

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class ScriptedService:
    """Answers API requests with `on_api` and everything else (downloads) with `on_other`."""

    def __init__(self) -> None:
        self.on_api: Handler = lambda request: reply_json(request, {"retcode": "500"})
        self.on_other: Handler = lambda request: request.send_error(404)
        service = self

        class RequestHandler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._dispatch()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length)
                self._dispatch()

            def _dispatch(self) -> None:
                if self.path.startswith("/ocrapiv1.html"):
                    service.on_api(self)
                else:
                    service.on_other(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = self.base + "/ocrapiv1.html"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply_json(request: http.server.BaseHTTPRequestHandler, document: object) -> None:
    body = json.dumps(document).encode()
    request.send_response(200)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def redirect(request: http.server.BaseHTTPRequestHandler, location: str, status: int = 302) -> None:
    request.send_response(status)
    request.send_header("Location", location)
    request.send_header("Content-Length", "0")
    request.end_headers()


def success(
    service: ScriptedService,
    *,
    link: str | None = None,
    filename: str = "r.txt",
) -> Handler:
    def handler(request: http.server.BaseHTTPRequestHandler) -> None:
        reply_json(
            request,
            {
                "retcode": "200",
                "msg": "ok",
                "data": {
                    "filename": filename,
                    "link": link or f"{service.base}/doc/r.txt",
                    "available pages": 10,
                },
            },
        )

    return handler


@pytest.fixture
def service() -> Iterator[ScriptedService]:
    scripted = ScriptedService()
    yield scripted
    scripted.close()


def file_job(source: Path, inbox: Path | None, rule: Rule, remote_name: str) -> NewJob:
    stat = source.stat()
    return NewJob(
        source, inbox, SourceKind.FILE, None, "h", stat.st_size, stat.st_mtime_ns, rule, remote_name
    )


def client_for(service: ScriptedService, **settings: object) -> PdfOcrClient:
    plain = ClientSettings(service.url, "k-123456", request_timeout=1.0)
    return PdfOcrClient(replace(plain, **settings))


JOB = RemoteJob("scan-abc.pdf", "txt", "English", True)


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return samplepdf.write_pdf(tmp_path / "in.pdf", ["text"])


@pytest.mark.parametrize(
    "document",
    [
        {"foo": 1},
        [],
        "retcode",
        {"retcode": None},
        {"retcode": "200", "data": "x"},
        {"retcode": "200", "data": {"link": 42}},
    ],
)
def test_json_without_the_expected_keys_is_a_cut(service, pdf, document) -> None:
    service.on_api = lambda request: reply_json(request, document)
    with pytest.raises(ConversionCut):
        client_for(service).upload(pdf, JOB)
    assert client_for(service).poll(JOB) is None  # and while polling: "not ready yet"


def test_a_reply_that_never_ends_is_a_cut_after_the_timeout(service, pdf) -> None:
    def hang(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "100")
        request.end_headers()
        request.wfile.write(b'{"retcode"')
        time.sleep(3)

    service.on_api = hang
    started = time.monotonic()
    with pytest.raises(ConversionCut):
        client_for(service).upload(pdf, JOB)
    assert time.monotonic() - started < 2.9


@pytest.mark.parametrize(
    "link",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/r.txt",
        "http://downloads.invalid/r.txt",
        "javascript:alert(1)",
        "http://127.0.0.1:1/r.txt",
        "//127.0.0.1/r.txt",
        "",
    ],
)
def test_links_elsewhere_are_refused(service, pdf, tmp_path, link) -> None:
    client = client_for(service)
    assert not client.is_trusted_link(link)
    with pytest.raises(FileRejected):
        client.download(link, tmp_path / "out.txt", "txt")
    assert not (tmp_path / "out.txt").exists()


def test_a_redirect_loop_is_a_bad_download(service, tmp_path) -> None:
    service.on_other = lambda request: redirect(request, request.path)
    with pytest.raises(BadDownload, match="loop"):
        client_for(service).download(f"{service.base}/doc/r.txt", tmp_path / "o.txt", "txt")


def test_a_redirect_to_another_host_is_not_followed(service, tmp_path) -> None:
    service.on_other = lambda request: redirect(request, "http://downloads.invalid/r.txt")
    with pytest.raises(FileRejected, match="unexpected place"):
        client_for(service).download(f"{service.base}/doc/r.txt", tmp_path / "o.txt", "txt")


def test_a_download_beyond_the_cap_is_refused_and_removed(service, tmp_path) -> None:
    def huge(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.end_headers()  # no Content-Length: the cap must count the bytes
        chunk = b"x" * 65536
        try:
            for _ in range(64):  # 4 MiB
                request.wfile.write(chunk)
        except OSError:
            pass

    service.on_other = huge
    client = client_for(service, max_result_bytes=1024 * 1024)
    with pytest.raises(FileRejected, match="larger"):
        client.download(f"{service.base}/doc/r.txt", tmp_path / "o.txt", "txt")
    assert list(tmp_path.iterdir()) == []


def test_a_hostile_reply_never_writes_outside_the_folders(service, tmp_path) -> None:
    """The service's filename (`../` or absolute) is never used as a local path."""
    content = b"converted text"

    def serve(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    for evil in ("../../escaped.txt", "/tmp/escaped-absolute.txt", "..\\..\\escaped.txt"):
        service.on_api = success(service, filename=evil)
        service.on_other = serve
        outbox = tmp_path / f"outbox-{len(list(tmp_path.iterdir()))}"
        inbox = tmp_path / "inbox"
        source = samplepdf.write_pdf(inbox / "Report.pdf", ["x"])
        journal = Journal(":memory:")
        runner = JobRunner(journal, client_for(service), Timing(0.1, 5), file_originals=False)
        rule = Rule("txt", "English", True, outbox, outbox, outbox, "keep")
        job = journal.add(file_job(source, None, rule, "Report-abc.pdf"))
        assert job is not None
        job = runner.advance(job)
        assert job.state is JobState.DONE
        assert sorted(p.name for p in outbox.iterdir()) == ["Report.txt"]
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not Path("/tmp/escaped-absolute.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("outbox")) == [
        "inbox"
    ]


@pytest.mark.parametrize(
    "status, body, expected",
    [
        (200, b"<html>maintenance</html>", ConversionCut),
        (502, b"<html>Bad gateway</html>", ConversionCut),
        (524, b"<html>A timeout occurred</html>", ConversionCut),
        (413, b"<html>Too large</html>", FileRejected),
    ],
)
def test_pages_instead_of_json_are_classified(service, pdf, status, body, expected) -> None:
    def page(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "text/html")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    service.on_api = page
    with pytest.raises(expected):
        client_for(service).upload(pdf, JOB)


def test_a_staged_result_removed_by_hand_fails_the_job_with_a_way_back(
    service, tmp_path: Path
) -> None:
    """Someone (a cleaner, a sync tool) deletes our hidden result before it is filed (here
    the copy of an identical earlier result): the job fails in words that say how to get it
    without paying twice, instead of retrying forever; a file under the name the result
    would have had is left alone."""
    asked: list[str] = []
    service.on_api = service.on_other = lambda request: asked.append(request.path)
    inbox, outbox, failed = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "failed"
    source = samplepdf.write_pdf(inbox / "Invoice.pdf", ["x"])
    outbox.mkdir()
    (outbox / "Invoice.txt").write_text("somebody else's file, under the name we would use")
    journal = Journal(tmp_path / "journal.sqlite3")
    runner = JobRunner(journal, client_for(service), Timing(0.1, 5))
    rule = Rule("txt", "English", True, outbox, tmp_path / "archive", failed, "archive")
    job = journal.add(file_job(source, inbox, rule, "Invoice-abc.pdf"))
    assert job is not None
    job = journal.move(job, JobState.FILING, pages=0)
    job = runner.advance(job)
    assert job.state is JobState.FAILED
    assert "removed from the outbox before it was filed" in (job.error or "")
    reason = (failed / "Invoice.pdf.error.txt").read_text()
    assert "pdfocr-watcher retry --failed" in reason and "paid" in reason
    assert (outbox / "Invoice.txt").read_text().startswith("somebody else's")
    assert asked == []  # nothing was asked of the service
    journal.close()


@pytest.mark.parametrize("placed_as", ["nowhere yet", "link", "copy"])
def test_filing_again_after_a_kill_neither_fetches_nor_files_twice(
    service, tmp_path: Path, placed_as: str
) -> None:
    """A kill after the download was staged, before DONE was journaled: the next try files
    the staged result without asking the service again, and where it had already given it
    its name (a hard link, or a byte copy where an outbox cannot link) keeps that name
    instead of filing "Invoice (3).txt". A different file under the result's name is left
    alone."""
    asked: list[str] = []
    service.on_api = service.on_other = lambda request: asked.append(request.path)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    source = samplepdf.write_pdf(inbox / "Invoice.pdf", ["x"])
    outbox.mkdir()
    (outbox / "Invoice.txt").write_text("somebody else's file")
    staged = outbox / ".pdfocr-job1-Invoice-abc.txt"
    staged.write_text("the converted text")
    placed = outbox / "Invoice (2).txt"
    if placed_as == "link":
        placed.hardlink_to(staged)
    elif placed_as == "copy":
        placed.write_bytes(staged.read_bytes())
    journal = Journal(tmp_path / "journal.sqlite3")
    runner = JobRunner(journal, client_for(service), Timing(0.1, 5))
    rule = Rule("txt", "English", True, outbox, tmp_path / "archive", tmp_path / "f", "archive")
    job = journal.add(file_job(source, inbox, rule, "Invoice-abc.pdf"))
    assert job is not None
    job = journal.move(job, JobState.UPLOADING, sent_at=time.time(), pages=1)
    job = journal.move(job, JobState.DOWNLOADING, link=f"{service.base}/doc/r.txt")
    assert job.staged == staged
    job = runner.advance(job)
    assert job.state is JobState.DONE and job.output == placed
    assert sorted(p.name for p in outbox.iterdir()) == ["Invoice (2).txt", "Invoice.txt"]
    assert placed.read_text() == "the converted text"
    assert (outbox / "Invoice.txt").read_text() == "somebody else's file"
    assert [p.name for p in (tmp_path / "archive").iterdir()] == ["Invoice.pdf"]
    assert asked == []
    journal.close()


def test_an_upload_says_its_length_instead_of_being_sent_in_chunks(service, pdf) -> None:
    """A streamed body without a length goes out chunked, which front ends may refuse."""
    seen: list[tuple[str | None, str | None, bytes]] = []

    def record(request: http.server.BaseHTTPRequestHandler) -> None:
        headers = request.headers
        seen.append((headers["Content-Length"], headers["Transfer-Encoding"], request.body))
        success(service)(request)

    service.on_api = record
    assert client_for(service).upload(pdf, JOB).available_pages == 10
    [(length, chunked, body)] = seen
    assert chunked is None and int(length or 0) == len(body) > pdf.stat().st_size
    assert pdf.read_bytes() in body


def test_a_redirected_upload_is_not_followed_and_holds_the_queue(service, pdf) -> None:
    """An endpoint that moved answers uploads with a redirect: the file is not sent after it
    (a stream goes once; a POST turned GET would lose it); the user is told what to change.
    Polls, being GETs, do follow a redirect."""
    asked: list[str] = []

    def moved(request: http.server.BaseHTTPRequestHandler) -> None:
        asked.append(f"{request.command} {request.path.partition('?')[0]}")
        redirect(request, f"{service.base}/v2/ocrapiv1", 301)

    service.on_api = moved
    service.on_other = success(service)
    with pytest.raises(AccountError, match=r"\[api\] endpoint"):
        client_for(service).upload(pdf, JOB)
    assert asked == ["POST /ocrapiv1.html"]
    assert client_for(service).poll(JOB) is not None


def test_a_redirected_upload_is_asked_about_before_it_is_sent_again(
    service, tmp_path: Path
) -> None:
    """The file went out whole before the redirect came: the job waits for the user (the
    queue is held) as one that may be at the service, so it is polled before any resend."""

    service.on_api = lambda request: redirect(request, "https://elsewhere.invalid/x.html", 308)
    inbox = tmp_path / "inbox"
    source = samplepdf.write_pdf(inbox / "Invoice.pdf", ["x"])
    journal = Journal(tmp_path / "journal.sqlite3")
    runner = JobRunner(journal, client_for(service), Timing(0.1, 5))
    rule = Rule("txt", "English", True, tmp_path / "out", tmp_path / "a", tmp_path / "f", "archive")
    job = journal.add(file_job(source, inbox, rule, "Invoice-abc.pdf"))
    assert job is not None
    with pytest.raises(EndpointMoved):
        runner.advance(job)
    after = journal.get(job.id)
    assert after is not None and after.state is JobState.WAITING_FOR_RESULT
    assert after.may_be_at_service
    journal.close()


def test_a_poll_told_to_slow_down_says_how_long(service) -> None:
    """A 429 to a poll comes back as such, with its Retry-After, not as a broken line."""

    def slow_down(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(429)
        request.send_header("Retry-After", "7")
        request.send_header("Content-Length", "0")
        request.end_headers()

    service.on_api = slow_down
    with pytest.raises(TransientError) as caught:
        client_for(service).poll(JOB)
    assert caught.value.retry_after == 7.0 and "429" in caught.value.message


def test_a_leftover_under_the_same_job_number_is_not_taken_for_the_result(
    service, tmp_path: Path
) -> None:
    """Job numbers repeat (each one-shot `convert` starts at 1): a hidden result left by
    another job 1 is neither filed nor overwritten; this job's own result is fetched."""
    service.on_other = lambda request: reply_bytes(request, b"this job's result")
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    source = samplepdf.write_pdf(inbox / "Invoice.pdf", ["x"])
    outbox.mkdir()
    leftovers = [outbox / ".pdfocr-job1.txt", outbox / ".pdfocr-job1-Other-0123456789.txt"]
    for leftover in leftovers:
        leftover.write_text("another job's result")
    journal = Journal(tmp_path / "journal.sqlite3")
    runner = JobRunner(journal, client_for(service), Timing(0.1, 5))
    rule = Rule("txt", "English", True, outbox, tmp_path / "archive", tmp_path / "f", "archive")
    job = journal.add(file_job(source, inbox, rule, "Invoice-abc.pdf"))
    assert job is not None and job.id == 1 and job.staged not in leftovers
    job = journal.move(job, JobState.UPLOADING, sent_at=time.time(), pages=1)
    job = journal.move(job, JobState.DOWNLOADING, link=f"{service.base}/doc/r.txt")
    job = runner.advance(job)
    assert job.state is JobState.DONE
    assert (outbox / "Invoice.txt").read_text() == "this job's result"
    assert all(leftover.read_text() == "another job's result" for leftover in leftovers)
    journal.close()


def reply_bytes(request: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    request.send_response(200)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


@pytest.mark.parametrize("body_kind", ["small", "several chunks", "cut short"])
def test_a_pdf_result_is_filed_only_whole(service, tmp_path: Path, body_kind: str) -> None:
    """The end marker is looked for in the bytes as they arrive, across chunk borders."""
    whole = samplepdf.make_pdf(["result"])
    if body_kind == "several chunks":  # a comment line pads it past two download chunks
        whole = whole.replace(b"\n", b"\n%" + b"x" * 600_000 + b"\n", 1)
    body = whole[: len(whole) // 2] if body_kind == "cut short" else whole

    def serve(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    service.on_other = serve
    dest = tmp_path / "r.pdf"
    client = client_for(service)
    if body_kind == "cut short":
        with pytest.raises(BadDownload, match="damaged"):
            client.download(f"{service.base}/doc/r.pdf", dest, "pdf")
        assert list(tmp_path.iterdir()) == []
    else:
        assert client.download(f"{service.base}/doc/r.pdf", dest, "pdf").size == len(body)
        assert dest.read_bytes() == body
