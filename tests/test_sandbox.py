"""The sandbox, exercised as the client sees it: real HTTP on 127.0.0.1 with requests."""

from __future__ import annotations

import io
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import urllib3
from PIL import Image
from pypdf import PdfReader
from pypdf.constants import UserAccessPermissions

import watcher.sandbox
from watcher import cli, samplepdf
from watcher.sandbox import FAULT_KINDS, PROTECTED_MSG, Charge, FaultRates, Sandbox
from watcher.sandbox import converters as sandbox_converters
from watcher.sandbox import faults as sandbox_faults
from watcher.sandbox import http as sandbox_http
from watcher.sandbox import service as sandbox_service

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KEY = "sandbox-key"
TWO_PAGES = ["Invoice 42 (paid)\nTotal: 100 EUR", "Second page"]
MakeSandbox = Callable[..., Sandbox]


def submit(
    box: Sandbox,
    data: bytes,
    *,
    filename: str | None = "scan-1.pdf",
    outformat: str = "txt",
    lang: str | None = "English",
    ocr: str = "1",
    key: str | None = KEY,
) -> requests.Response:
    fields = {"apikey": key, "lang": lang, "outformat": outformat, "ocr": ocr, "filename": filename}
    form = {name: value for name, value in fields.items() if value is not None}
    files = {"file": (filename or "upload.pdf", data, "application/octet-stream")}
    return requests.post(box.url, data=form, files=files, timeout=10)


def poll(box: Sandbox, filename: str, outformat: str = "txt", key: str = KEY) -> requests.Response:
    params = {"apikey": key, "filename": filename, "outformat": outformat}
    return requests.get(box.url, params=params, timeout=10)


def retcode(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()["retcode"]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), "white").save(out, format="PNG")
    return out.getvalue()


# -- conversions ------------------------------------------------------------------------


def check_txt(content: bytes, original: bytes) -> None:
    assert content.decode() == "Invoice 42 (paid)\nTotal: 100 EUR\n\f\nSecond page"


def check_pdf(content: bytes, original: bytes) -> None:
    assert content == original


def check_docx(content: bytes, original: bytes) -> None:
    from docx import Document

    document = Document(io.BytesIO(content))
    texts = [paragraph.text for paragraph in document.paragraphs]
    assert [text for text in texts if text] == [
        "Invoice 42 (paid)",
        "Total: 100 EUR",
        "Second page",
    ]
    assert 'w:type="page"' in document.element.xml  # a page break between the pages


def check_xlsx(content: bytes, original: bytes) -> None:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(content))
    assert workbook.sheetnames == ["Page 1", "Page 2"]
    assert [row[0] for row in workbook["Page 1"].iter_rows(values_only=True)] == [
        "Invoice 42 (paid)",
        "Total: 100 EUR",
    ]
    assert workbook["Page 2"]["A1"].value == "Second page"


def check_pptx(content: bytes, original: bytes) -> None:
    from pptx import Presentation

    slides = list(Presentation(io.BytesIO(content)).slides)
    texts = [
        " | ".join(s.text_frame.text for s in slide.shapes if s.has_text_frame) for slide in slides
    ]
    assert texts == ["Invoice 42 (paid)\nTotal: 100 EUR", "Second page"]


CHECKS = {
    "txt": check_txt,
    "pdf": check_pdf,
    "docx": check_docx,
    "xlsx": check_xlsx,
    "pptx": check_pptx,
}
CONTENT_TYPES = {
    "txt": "text/plain",
    "pdf": "application/pdf",
    "docx": "word",
    "xlsx": "sheet",
    "pptx": "presentation",
}


@pytest.mark.parametrize("outformat", sorted(CHECKS))
def test_each_outformat_is_converted_for_real(sandbox: Sandbox, outformat: str) -> None:
    original = samplepdf.make_pdf(TWO_PAGES)
    reply = submit(sandbox, original, outformat=outformat)
    assert retcode(reply) == "200"
    body = reply.json()
    assert "sandbox" in body["msg"]
    data = body["data"]
    assert data["filename"] == f"scan-1.{outformat}"
    assert data["available pages"] == 998
    assert data["link"].startswith(sandbox.base_url + "/doc/")
    assert data["link"].endswith(f"/scan-1.{outformat}")
    download = requests.get(data["link"], timeout=10)
    assert download.status_code == 200
    assert CONTENT_TYPES[outformat] in download.headers["Content-Type"]
    assert int(download.headers["Content-Length"]) == len(download.content)
    CHECKS[outformat](download.content, original)
    assert sandbox.ledger() == [Charge("scan-1.pdf", outformat, "English", True, 2, "upload")]


def test_url_submission_downloads_the_file_and_names_it_from_the_url(sandbox: Sandbox) -> None:
    original = samplepdf.make_pdf(TWO_PAGES)
    link = submit(sandbox, original, filename="source-doc.pdf", outformat="pdf").json()["data"][
        "link"
    ]
    params = {"apikey": KEY, "lang": "French", "outformat": "txt", "ocr": "0", "url": link}
    reply = requests.get(sandbox.url, params=params, timeout=10)
    assert retcode(reply) == "200"
    assert reply.json()["data"]["filename"] == "source-doc.txt"
    text = requests.get(reply.json()["data"]["link"], timeout=10).text
    assert "Second page" in text
    assert sandbox.ledger()[-1] == Charge("source-doc.pdf", "txt", "French", False, 2, "url")


def test_url_submission_refuses_a_non_http_url(sandbox: Sandbox) -> None:
    params = {"apikey": KEY, "lang": "English", "outformat": "txt", "ocr": "1"}
    params["url"] = "ftp://example.org/scan.pdf"
    reply = requests.get(sandbox.url, params=params, timeout=10)
    assert retcode(reply) == "400"
    assert sandbox.ledger() == []


def test_an_image_is_one_page_and_cannot_become_a_pdf(sandbox: Sandbox) -> None:
    assert retcode(submit(sandbox, png_bytes(), filename="photo.png", outformat="pdf")) == "400"
    reply = submit(sandbox, png_bytes(), filename="photo.png", outformat="txt")
    assert retcode(reply) == "200"
    assert requests.get(reply.json()["data"]["link"], timeout=10).content == b""
    assert sandbox.ledger() == [Charge("photo.png", "txt", "English", True, 1, "upload")]


def test_a_missing_filename_field_falls_back_to_the_file_part_name(sandbox: Sandbox) -> None:
    files = {"file": ("from-part.pdf", samplepdf.make_pdf(["x"]))}
    form = {"apikey": KEY, "lang": "English", "outformat": "txt", "ocr": "1"}
    reply = requests.post(sandbox.url, data=form, files=files, timeout=10)
    assert reply.json()["data"]["filename"] == "from-part.txt"


def test_a_chunked_upload_is_read_whole(sandbox: Sandbox) -> None:
    fields = {"apikey": KEY, "lang": "English", "outformat": "txt", "ocr": "1"}
    fields["filename"] = "chunky.pdf"
    form = {**fields, "file": ("chunky.pdf", samplepdf.make_pdf(["chunked body"]))}
    body, content_type = urllib3.encode_multipart_formdata(form)
    parts = iter([body[:100], body[100:]])  # a generator makes requests send it chunked
    reply = requests.post(
        sandbox.url, data=parts, headers={"Content-Type": content_type}, timeout=10
    )
    assert retcode(reply) == "200"
    assert requests.get(reply.json()["data"]["link"], timeout=10).text == "chunked body"


def test_slow_conversion_is_cut_with_524_then_polled_to_success(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(seconds_per_page=1.0, cut_after=0.2)
    started = time.monotonic()
    reply = submit(box, samplepdf.make_pdf(["slow page"]))
    assert reply.status_code == 524
    assert 0.15 < time.monotonic() - started < 0.9  # cut at cut_after, not at once nor at the end
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "A timeout occurred" in reply.text
    assert poll(box, "scan-1.pdf").json() == {
        "retcode": "202",
        "msg": "Conversion in progress (sandbox).",
    }
    assert box.wait_idle(timeout=5)
    done = poll(box, "scan-1.pdf")
    assert retcode(done) == "200"
    assert requests.get(done.json()["data"]["link"], timeout=10).text == "slow page"
    assert len(box.ledger()) == 1
    assert box.available_pages == 999


def test_wait_idle_is_false_while_a_conversion_runs(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(seconds_per_page=0.4, cut_after=0.05)
    assert submit(box, samplepdf.make_pdf(["x"])).status_code == 524
    assert box.wait_idle(timeout=0.05) is False
    assert box.wait_idle(timeout=5) is True


REFUSALS = {
    "bad key": ({"key": "wrong"}, None, "404", "API key does not exist"),
    "missing key": ({"key": None}, None, "404", "API key does not exist"),
    "bad filename": ({"filename": "my scan.pdf"}, None, "400", "letters, digits and hyphens"),
    "bad language": ({"lang": "english"}, None, "400", "Unsupported language"),
    "bad outformat": ({"outformat": "png"}, None, "400", "output format"),
    "bad ocr": ({"ocr": "yes"}, None, "400", "ocr"),
    "empty file": ({}, b"", "400", "empty"),
    "encrypted": ({}, samplepdf.make_encrypted_pdf(["x"]), "400", PROTECTED_MSG),
    "permission-locked": ({}, samplepdf.make_permission_locked_pdf(["x"]), "400", PROTECTED_MSG),
    "not a PDF": ({}, b"just some plain text", "400", "Unsupported file type"),
    "broken PDF": ({}, b"%PDF-1.4\nnot really a pdf", "400", "could not be read"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_charge_nothing(sandbox: Sandbox, case: str) -> None:
    overrides, data, expected_code, fragment = REFUSALS[case]
    reply = submit(sandbox, samplepdf.make_pdf(["x"]) if data is None else data, **overrides)
    assert retcode(reply) == expected_code
    assert fragment in reply.json()["msg"]
    assert "data" not in reply.json()
    assert sandbox.ledger() == []
    assert sandbox.available_pages == 1000


def test_not_enough_credit_is_402_and_charges_nothing(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(credits=2)
    reply = submit(box, samplepdf.make_pdf(["a", "b", "c"]))
    assert reply.json() == {
        "retcode": "402",
        "msg": "Not enough available pages: this file has 3 pages and your account has 2. "
        "Buy more credits.",
    }
    assert box.ledger() == []
    assert box.available_pages == 2
    assert submit(box, samplepdf.make_pdf(["a", "b"])).json()["data"]["available pages"] == 0


def test_a_second_upload_of_the_same_name_charges_again(sandbox: Sandbox) -> None:
    first = submit(sandbox, samplepdf.make_pdf(["one"])).json()["data"]["link"]
    second = submit(sandbox, samplepdf.make_pdf(["two"])).json()["data"]["link"]
    assert first != second
    assert [charge.filename for charge in sandbox.ledger()] == ["scan-1.pdf", "scan-1.pdf"]
    assert sandbox.available_pages == 998
    assert poll(sandbox, "scan-1.pdf").json()["data"]["link"] == second  # the job was replaced


def test_status_poll_of_an_unknown_name_or_with_a_bad_key(sandbox: Sandbox) -> None:
    assert poll(sandbox, "never-sent.pdf").json() == {
        "retcode": "404",
        "msg": "File not found: no upload named never-sent.pdf (sandbox).",
    }
    submit(sandbox, samplepdf.make_pdf(["x"]))
    assert poll(sandbox, "scan-1.pdf", outformat="docx").json()["retcode"] == "404"
    assert poll(sandbox, "scan-1.pdf", key="wrong").json() == {
        "retcode": "404",
        "msg": "API key does not exist, please sign up.",
    }


# -- faults ---------------------------------------------------------------------------------


def test_reset_before_upload_charges_nothing_and_fires_once(sandbox: Sandbox) -> None:
    sandbox.inject("reset_before_upload")
    with pytest.raises(requests.ConnectionError):
        submit(sandbox, samplepdf.make_pdf(["x"]))
    assert sandbox.ledger() == []
    assert retcode(submit(sandbox, samplepdf.make_pdf(["x"]))) == "200"
    assert len(sandbox.ledger()) == 1


def test_reset_after_upload_charges_and_the_result_can_be_polled(sandbox: Sandbox) -> None:
    sandbox.inject("reset_after_upload")
    with pytest.raises(requests.ConnectionError):
        submit(sandbox, samplepdf.make_pdf(["paid for"]))
    assert len(sandbox.ledger()) == 1
    assert sandbox.wait_idle()
    reply = poll(sandbox, "scan-1.pdf")
    assert retcode(reply) == "200"
    assert requests.get(reply.json()["data"]["link"], timeout=10).text == "paid for"


def test_http524_fault_cuts_at_once_after_charging(sandbox: Sandbox) -> None:
    sandbox.inject("http524")
    reply = submit(sandbox, samplepdf.make_pdf(["x"]))
    assert reply.status_code == 524
    assert "A timeout occurred" in reply.text
    assert len(sandbox.ledger()) == 1
    assert sandbox.wait_idle()
    assert retcode(poll(sandbox, "scan-1.pdf")) == "200"


@pytest.mark.parametrize(
    ("kind", "status"), [("http502", 502), ("http503", 503), ("http429", 429), ("html_reply", 200)]
)
def test_page_faults_hit_any_api_request_and_charge_nothing(
    sandbox: Sandbox, kind: str, status: int
) -> None:
    sandbox.inject(kind, times=2)
    for reply in (submit(sandbox, samplepdf.make_pdf(["x"])), poll(sandbox, "scan-1.pdf")):
        assert reply.status_code == status
        assert reply.headers["Content-Type"].startswith("text/html")
        with pytest.raises(ValueError):
            reply.json()
        if kind == "http429":
            assert reply.headers["Retry-After"] == "1"
    assert sandbox.ledger() == []
    assert retcode(poll(sandbox, "scan-1.pdf")) == "404"  # used up: back to normal


def test_truncated_download_then_a_whole_one(sandbox: Sandbox) -> None:
    link = submit(sandbox, samplepdf.make_pdf(TWO_PAGES), outformat="docx").json()["data"]["link"]
    sandbox.inject("truncate_download")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(link, timeout=10).content  # noqa: B018
    whole = requests.get(link, timeout=10)
    assert len(whole.content) == int(whole.headers["Content-Length"])
    check_docx(whole.content, b"")


def test_download_delay_pauses_mid_body(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(download_delay=0.5)
    link = submit(box, samplepdf.make_pdf(["slow download"])).json()["data"]["link"]
    started = time.monotonic()
    response = requests.get(link, stream=True, timeout=10)
    assert time.monotonic() - started < 0.4  # the headers come at once
    assert response.raw.read(5) == b"slow "  # and so does the first half of the body
    assert response.raw.read() == b"download"
    assert time.monotonic() - started >= 0.5


def test_foreign_and_missing_link_affect_one_success_reply(sandbox: Sandbox) -> None:
    sandbox.inject("foreign_link")
    data = submit(sandbox, samplepdf.make_pdf(["x"])).json()["data"]
    assert urlsplit(data["link"]).hostname == "downloads.invalid"
    sandbox.inject("missing_link")
    reply = poll(sandbox, "scan-1.pdf").json()
    assert reply["retcode"] == "200"
    assert "link" not in reply["data"]
    assert poll(sandbox, "scan-1.pdf").json()["data"]["link"].startswith(sandbox.base_url)
    assert len(sandbox.ledger()) == 1


def test_queued_faults_fire_in_listed_order_each_as_often_as_asked(sandbox: Sandbox) -> None:
    sandbox.inject("http429")
    sandbox.inject("http502", times=2)
    statuses = [poll(sandbox, "scan-1.pdf").status_code for _ in range(4)]
    assert statuses == [502, 502, 429, 200]


def test_inject_refuses_unknown_kinds(sandbox: Sandbox) -> None:
    assert "reset_after_upload" in FAULT_KINDS
    with pytest.raises(ValueError, match="unknown fault"):
        sandbox.inject("http500")


def test_random_faults_follow_rates_unless_a_fault_is_queued(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(faults=FaultRates(http502=1.0), seed=3)
    assert submit(box, samplepdf.make_pdf(["x"])).status_code == 502
    assert poll(box, "scan-1.pdf").status_code == 502
    box.inject("html_reply")
    assert poll(box, "scan-1.pdf").headers["Content-Type"].startswith("text/html")
    assert poll(box, "scan-1.pdf").status_code == 502
    box.inject("truncate_download")  # queued, though it cannot fire on a poll: no random fault
    assert retcode(poll(box, "scan-1.pdf")) == "404"
    assert box.ledger() == []
    calm = make_sandbox(faults=FaultRates(truncate=1.0), seed=3)
    link = submit(calm, samplepdf.make_pdf(["x"])).json()["data"]["link"]
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(link, timeout=10).content  # noqa: B018


# -- determinism, control endpoints, lifecycle ----------------------------------------------


def test_office_outputs_are_byte_identical_across_conversions(sandbox: Sandbox) -> None:
    original = samplepdf.make_pdf(TWO_PAGES)

    def convert_all() -> dict[str, bytes]:
        links = {f: submit(sandbox, original, outformat=f).json()["data"]["link"] for f in CHECKS}
        return {f: requests.get(link, timeout=10).content for f, link in links.items()}

    first = convert_all()
    time.sleep(1.1)  # core.xml dates have one-second resolution: make "now" differ
    assert convert_all() == first
    with zipfile.ZipFile(io.BytesIO(first["docx"])) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"2000-01-01T00:00:00Z" in archive.read("docProps/core.xml")


def test_control_endpoints(sandbox: Sandbox) -> None:
    control = sandbox.base_url + "/_sandbox/"
    assert requests.post(control + "credits", json={"available": 5}, timeout=10).ok
    assert sandbox.available_pages == 5
    submit(sandbox, samplepdf.make_pdf(["x"]), lang="German", ocr="0")
    ledger = requests.get(control + "ledger", timeout=10).json()
    assert ledger == {
        "charges": [
            {
                "filename": "scan-1.pdf",
                "outformat": "txt",
                "lang": "German",
                "ocr": False,
                "pages": 1,
                "via": "upload",
            }
        ],
        "pages_charged": 1,
        "available pages": 4,
    }
    assert requests.post(control + "inject", json={"kind": "http503"}, timeout=10).ok
    assert requests.get(control + "ledger", timeout=10).ok  # control requests are never faulted
    assert poll(sandbox, "scan-1.pdf").status_code == 503
    refused = requests.post(control + "inject", json={"kind": "nonsense"}, timeout=10)
    assert refused.status_code == 400
    assert requests.post(control + "credits", json={}, timeout=10).status_code == 400


def test_unknown_paths_and_downloads_are_404_html(sandbox: Sandbox) -> None:
    for path in ("/doc/0123/nothing.txt", "/doc/x", "/elsewhere"):
        reply = requests.get(sandbox.base_url + path, timeout=10)
        assert reply.status_code == 404
        assert reply.headers["Content-Type"].startswith("text/html")


def test_stop_is_quick_even_mid_conversion_and_idempotent(tmp_path) -> None:
    box = Sandbox(seconds_per_page=30, cut_after=0.1, workdir=tmp_path / "box").start()
    assert submit(box, samplepdf.make_pdf(["x"])).status_code == 524
    started = time.monotonic()
    box.stop()
    assert time.monotonic() - started < 2
    assert box.wait_idle(timeout=0)
    box.stop()
    with pytest.raises(requests.ConnectionError):
        poll(box, "scan-1.pdf")


def test_context_manager_and_own_workdir_cleanup() -> None:
    with Sandbox() as box:
        submit(box, samplepdf.make_pdf(["x"]))
        workdir = box._workdir
        assert workdir is not None
        assert any(workdir.rglob("scan-1.txt"))
    assert not workdir.exists()


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_requests_are_logged_through_logging_never_to_stderr(
    sandbox: Sandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    logger, handler = logging.getLogger("watcher.sandbox"), ListHandler()
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # handlers other tests left behind must not print our records
    logger.addHandler(handler)
    try:
        submit(sandbox, samplepdf.make_pdf(["x"]))
        sandbox.inject("reset_after_upload")
        with pytest.raises(requests.ConnectionError):
            submit(sandbox, samplepdf.make_pdf(["x"]))
        with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw:
            raw.sendall(b"POST /ocrapiv1.html HTTP/1.0\r\nContent-Length: nonsense\r\n\r\n")
            assert raw.recv(1000) == b""  # the handler failed: no reply, the error is logged
        assert sandbox.wait_idle()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    assert any("POST /ocrapiv1.html" in record.getMessage() for record in handler.records)
    assert any(record.exc_info for record in handler.records)
    err = capfd.readouterr().err  # what http.server and socketserver print by default:
    assert "/ocrapiv1.html HTTP" not in err
    assert "during processing of request" not in err


def read_banner(process: subprocess.Popen[str]) -> dict[str, str]:
    """The banner of a sandbox being served in `process`, as {label: text} (plus "text")."""
    assert process.stdout is not None and process.stderr is not None
    banner: list[str] = []
    while not any("Ctrl-C" in line for line in banner):
        line = process.stdout.readline()
        assert line, f"serve exited early: {process.stderr.read()}"
        banner.append(line)
    lines = {"text": "".join(banner)}
    for line in banner[2:-1]:
        label, _, text = line.strip().partition(":")
        lines[label] = text.strip()
    return lines


def stop_served(process: subprocess.Popen[str]) -> str:
    """SIGTERM, a clean exit, and what it printed after the banner."""
    assert process.stdout is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    return process.stdout.read()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_serve_prints_a_sandbox_banner_and_stops_on_sigterm() -> None:
    code = "from watcher.sandbox import serve; raise SystemExit(serve(port=0, key='demo-key'))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        banner = read_banner(process)
        text = banner["text"]
        assert "SANDBOX" in text
        assert "NOT pdfocr.org" in text
        assert banner["API key"] == "demo-key"
        assert "FaultRates(" not in text  # plain words, not a dataclass repr
        assert banner["faults"] == "none"
        assert banner["late names"] == banner["lost jobs"] == banner["slow replies"] == "none"
        assert banner["conversion"] == "0 s per page; replies cut with a 524 page after 100 s"
        params = {"apikey": "demo-key", "filename": "a.pdf", "outformat": "txt"}
        assert (
            requests.get(banner["endpoint"], params=params, timeout=10).json()["retcode"] == "404"
        )
        assert "stopped" in stop_served(process)
    finally:
        process.kill()
        process.wait()


# -- misbehaviours: late names, lost jobs, slow answers, going away ---------------------------


def not_found(box: Sandbox, filename: str) -> dict[str, str]:
    """The reply for a name the service never received (the same name, another outformat)."""
    reply = poll(box, filename, outformat="docx")
    assert retcode(reply) == "404"
    return reply.json()


def test_a_late_name_is_not_found_until_late_names_seconds_passed(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(late_names=0.6)
    box.inject("http524")
    assert submit(box, samplepdf.make_pdf(["late"])).status_code == 524
    cut_at = time.monotonic()  # the charge was before this
    early = poll(box, "scan-1.pdf")
    assert retcode(early) == "404"
    assert (
        early.json()
        == not_found(box, "scan-1.pdf")
        == {
            "retcode": "404",
            "msg": "File not found: no upload named scan-1.pdf (sandbox).",
        }
    )
    assert len(box.ledger()) == 1  # charged all the same
    time.sleep(max(0.0, cut_at + 0.6 - time.monotonic()) + 0.05)
    assert box.wait_idle()
    found = poll(box, "scan-1.pdf")
    assert retcode(found) == "200"
    assert requests.get(found.json()["data"]["link"], timeout=10).text == "late"


def test_late_names_hide_polls_not_the_submission_reply_and_apply_live(sandbox: Sandbox) -> None:
    sandbox.late_names = 30.0  # on a running sandbox
    answered = submit(sandbox, samplepdf.make_pdf(["on time"]), filename="on-time.pdf")
    assert retcode(answered) == "200"  # the submission's own reply is not late
    assert poll(sandbox, "on-time.pdf").json() == not_found(sandbox, "on-time.pdf")
    sandbox.late_names = 0.0  # read at poll time: the job is seen at once
    assert poll(sandbox, "on-time.pdf").json()["data"] == answered.json()["data"]


def test_a_cut_job_is_lost_at_lose_after_cut_one_charged_and_never_found(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(lose_after_cut=1.0, seconds_per_page=0.2, cut_after=0.05)
    assert submit(box, samplepdf.make_pdf(["lost"])).status_code == 524
    assert box.wait_idle(timeout=5)  # the conversion time is over
    time.sleep(0.1)
    for _ in range(3):
        assert poll(box, "scan-1.pdf").json() == not_found(box, "scan-1.pdf")
    assert box.ledger() == [Charge("scan-1.pdf", "txt", "English", True, 1, "upload")]
    assert box.available_pages == 999
    assert box.fired["lose_job"] == 1
    assert box._workdir is not None and not any(box._workdir.rglob("scan-1.txt"))

    box.inject("reset_after_upload")  # a reset after the upload is a cut too
    with pytest.raises(requests.ConnectionError):
        submit(box, samplepdf.make_pdf(["reset"]), filename="reset-1.pdf")
    assert box.wait_idle(timeout=5)
    assert retcode(poll(box, "reset-1.pdf")) == "404"
    assert len(box.ledger()) == 2

    box.cut_after = 5.0  # an answered submission is never lost
    assert retcode(submit(box, samplepdf.make_pdf(["kept"]), filename="kept-1.pdf")) == "200"
    assert retcode(poll(box, "kept-1.pdf")) == "200"
    again = submit(box, samplepdf.make_pdf(["again"]))  # the lost name, uploaded and paid again
    assert retcode(again) == "200"
    assert poll(box, "scan-1.pdf").json()["data"]["link"] == again.json()["data"]["link"]
    assert len(box.ledger()) == 4
    assert box.fired["lose_job"] == 2


def test_inject_lose_job_waits_for_the_next_cut_job_and_loses_only_it(sandbox: Sandbox) -> None:
    assert "lose_job" in FAULT_KINDS
    sandbox.inject("lose_job")
    assert retcode(submit(sandbox, samplepdf.make_pdf(["x"]), filename="answered.pdf")) == "200"
    assert retcode(poll(sandbox, "answered.pdf")) == "200"
    sandbox.inject("http524", times=2)
    for name in ("first-cut.pdf", "second-cut.pdf"):
        assert submit(sandbox, samplepdf.make_pdf(["x"]), filename=name).status_code == 524
    assert sandbox.wait_idle()
    assert retcode(poll(sandbox, "answered.pdf")) == "200"
    assert retcode(poll(sandbox, "first-cut.pdf")) == "404"
    assert retcode(poll(sandbox, "second-cut.pdf")) == "200"
    assert sandbox.fired["lose_job"] == 1
    assert len(sandbox.ledger()) == 3


def lost_pattern(make_sandbox: MakeSandbox, seed: int) -> list[str]:
    box = make_sandbox(lose_after_cut=0.5, seed=seed)
    box.inject("http524", times=8)
    for number in range(8):
        name = f"cut-{number}.pdf"
        assert submit(box, samplepdf.make_pdf(["x"]), filename=name).status_code == 524
    assert box.wait_idle()
    return [retcode(poll(box, f"cut-{number}.pdf")) for number in range(8)]


def test_lose_after_cut_draws_from_the_seeded_rng(make_sandbox: MakeSandbox) -> None:
    pattern = lost_pattern(make_sandbox, seed=7)
    assert set(pattern) == {"200", "404"}  # some lost, some not
    assert lost_pattern(make_sandbox, seed=7) == pattern  # and the same again with the seed


def elapsed(call: Callable[[], requests.Response]) -> tuple[float, requests.Response]:
    started = time.monotonic()
    reply = call()
    return time.monotonic() - started, reply


def test_reply_delay_slows_every_api_reply_and_poll_delay_adds_to_polls(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(reply_delay=0.2)
    took, reply = elapsed(lambda: submit(box, samplepdf.make_pdf(["x"])))
    assert retcode(reply) == "200"
    assert took >= 0.2
    took, reply = elapsed(lambda: poll(box, "scan-1.pdf"))
    assert retcode(reply) == "200"
    assert took >= 0.2
    box.inject("http502")  # a fault page is a reply too
    took, reply = elapsed(lambda: poll(box, "scan-1.pdf"))
    assert reply.status_code == 502
    assert took >= 0.2
    box.reply_delay, box.poll_delay = 0.0, 0.2
    took, reply = elapsed(lambda: poll(box, "scan-1.pdf"))
    assert retcode(reply) == "200"
    assert took >= 0.2
    box.reply_delay = 0.2  # both, for a poll
    took, reply = elapsed(lambda: poll(box, "scan-1.pdf"))
    assert retcode(reply) == "200"
    assert took >= 0.4


def test_stop_ends_a_reply_delay_early(tmp_path: Path) -> None:
    box = Sandbox(reply_delay=120.0, workdir=tmp_path / "box").start()
    outcome: list[object] = []

    def slow_poll() -> None:
        params = {"apikey": KEY, "filename": "scan-1.pdf", "outformat": "txt"}
        try:
            outcome.append(requests.get(box.url, params=params, timeout=120).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=slow_poll, daemon=True)
    waiter.start()
    time.sleep(0.2)  # the poll is now waiting its reply_delay
    assert not outcome
    box.stop()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert outcome


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_go_away_refuses_connections_and_come_back_remembers(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox()
    link = submit(box, samplepdf.make_pdf(["remembered"])).json()["data"]["link"]
    port, url = box.port, box.url
    for _ in range(3):  # again and again
        box.go_away()
        assert not box.listening
        assert refused(port)
        with pytest.raises(requests.ConnectionError):
            poll(box, "scan-1.pdf")
        assert box.ledger() and box.available_pages == 999  # state kept while away
        assert box.come_back() is box
        assert box.listening
        assert (box.port, box.url) == (port, url)
        assert retcode(poll(box, "scan-1.pdf")) == "200"
        assert requests.get(link, timeout=10).text == "remembered"
    assert len(box.ledger()) == 1


def test_come_back_without_memory_forgets_jobs_but_keeps_the_ledger(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox()
    for round_number in range(1, 3):
        link = submit(box, samplepdf.make_pdf(["x"])).json()["data"]["link"]
        assert requests.get(link, timeout=10).status_code == 200
        box.go_away()
        assert refused(box.port)
        box.come_back(keep_memory=False)
        assert poll(box, "scan-1.pdf").json() == not_found(box, "scan-1.pdf")
        assert requests.get(link, timeout=10).status_code == 404  # the result file is gone
        assert box._workdir is not None and not any(box._workdir.rglob("scan-1.txt"))
        assert len(box.ledger()) == round_number  # the bank's records stay
        assert box.available_pages == 1000 - round_number


def test_conversions_go_on_while_away_and_a_forgotten_one_keeps_no_result(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(seconds_per_page=0.3, cut_after=0.05)
    assert submit(box, samplepdf.make_pdf(["while away"])).status_code == 524
    box.go_away()
    assert box.wait_idle(timeout=5)
    box.come_back()
    assert requests.get(poll(box, "scan-1.pdf").json()["data"]["link"], timeout=10).ok
    assert submit(box, samplepdf.make_pdf(["x"]), filename="second.pdf").status_code == 524
    assert box.forget() == 2  # while "second" still converts
    assert box.wait_idle(timeout=5)
    assert retcode(poll(box, "second.pdf")) == "404"
    assert box._workdir is not None and not any(box._workdir.rglob("*.txt"))
    assert len(box.ledger()) == 2


def test_stop_after_go_away_still_ends_everything() -> None:
    box = Sandbox().start()
    workdir = box._workdir
    assert workdir is not None and workdir.exists()
    box.go_away()
    box.stop()
    assert not workdir.exists()
    box.stop()  # still safe twice


def test_misbehaviour_arguments_are_checked() -> None:
    for bad in (
        {"late_names": -1.0},
        {"lose_after_cut": 1.5},
        {"reply_delay": float("nan")},
        {"poll_delay": float("inf")},
    ):
        with pytest.raises(ValueError):
            Sandbox(**bad)  # type: ignore[arg-type]
    box = Sandbox(late_names=1, lose_after_cut=0.5, reply_delay=2, poll_delay=3)
    assert (box.late_names, box.lose_after_cut, box.reply_delay, box.poll_delay) == (1, 0.5, 2, 3)


def test_behaviour_hook_sets_all_or_nothing(sandbox: Sandbox) -> None:
    hook = sandbox.base_url + "/_sandbox/behaviour"
    settings = {
        "late_names": 0.5,
        "lose_after_cut": 1,
        "reply_delay": 0.01,
        "poll_delay": 0.02,
        "cut_after": 7,
        "seconds_per_page": 0.001,
    }
    reply = requests.post(hook, json=settings, timeout=10)
    assert reply.status_code == 200
    assert reply.json()["ok"] is True
    assert reply.json()["behaviour"] == sandbox.behaviour()
    for name, value in settings.items():
        assert getattr(sandbox, name) == value
    assert requests.get(hook, timeout=10).json()["behaviour"]["late_names"] == 0.5
    before = sandbox.behaviour()
    for bad in (
        {"late_names": -1},
        {"lose_after_cut": 1.5},
        {"reply_delay": "slow"},
        {"poll_delay": True},
        {"cut_after": None},
        {"colour": 1},
        [1, 2],
        {"late_names": 2, "lose_after_cut": 2},  # one bad value: none is set
    ):
        refusal = requests.post(hook, json=bad, timeout=10)
        assert refusal.status_code == 400, bad
        assert refusal.json()["ok"] is False
        assert refusal.json()["error"]
    for raw in (b"{not json", b'{"reply_delay": NaN}'):
        assert requests.post(hook, data=raw, timeout=10).status_code == 400
    assert sandbox.behaviour() == before


def test_forget_hook_and_lose_job_through_the_inject_hook(sandbox: Sandbox) -> None:
    control = sandbox.base_url + "/_sandbox/"
    link = submit(sandbox, samplepdf.make_pdf(["x"])).json()["data"]["link"]
    forgotten = requests.post(control + "forget", timeout=10)
    assert forgotten.json() == {"ok": True, "forgotten": 1}
    assert retcode(poll(sandbox, "scan-1.pdf")) == "404"
    assert requests.get(link, timeout=10).status_code == 404
    assert requests.get(control + "ledger", timeout=10).json()["pages_charged"] == 1
    assert requests.post(control + "inject", json={"kind": "lose_job"}, timeout=10).ok
    sandbox.inject("http524")
    assert submit(sandbox, samplepdf.make_pdf(["x"])).status_code == 524
    assert sandbox.wait_idle()
    assert retcode(poll(sandbox, "scan-1.pdf")) == "404"
    assert sandbox.fired["lose_job"] == 1


def test_cli_sandbox_flags_are_listed_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "watcher", "sandbox", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in ("--late-names S", "--lose-after-cut RATE", "--reply-delay S", "--poll-delay S"):
        assert flag in helped.stdout
    parser = cli.build_parser()
    args = parser.parse_args(["sandbox", "--late-names", "5", "--lose-after-cut", "0.25"])
    assert (args.late_names, args.lose_after_cut, args.reply_delay, args.poll_delay) == (
        5.0,
        0.25,
        0.0,
        0.0,
    )
    for flag, value, word in (
        ("--lose-after-cut", "1.5", "rate"),
        ("--late-names", "-1", "seconds"),
        ("--reply-delay", "soon", "seconds"),
        ("--poll-delay", "inf", "seconds"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["sandbox", flag, value])
        assert exit_info.value.code == 2
        assert f"argument {flag}: invalid {word} value" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_cli_sandbox_serves_with_the_misbehaviours_and_says_them_in_words() -> None:
    flags = ["--port", "0", "--late-names", "5", "--lose-after-cut", "0.25", "--seed", "1"]
    flags += ["--reply-delay", "0.05", "--poll-delay", "1.5", "--fault-reset", "0.1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "sandbox", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = read_banner(process)
        assert banner["faults"] == "10% of submissions reset"
        assert banner["late names"] == "polls find a job 5 s after its upload"
        assert banner["lost jobs"] == "25% of jobs whose reply was cut"
        assert banner["slow replies"] == (
            "0.05 s before every API reply, 1.5 s more before each status poll reply"
        )
        hook = banner["endpoint"].replace("/ocrapiv1.html", "/_sandbox/behaviour")
        behaviour = requests.get(hook, timeout=10).json()["behaviour"]
        assert behaviour["late_names"] == 5
        assert behaviour["lose_after_cut"] == 0.25
        assert behaviour["reply_delay"] == 0.05
        assert behaviour["poll_delay"] == 1.5
        assert "stopped" in stop_served(process)
    finally:
        process.kill()
        process.wait()


def test_the_sandbox_package_keeps_its_names_and_each_module_says_why() -> None:
    used = ["Sandbox", "Charge", "FaultRates", "FAULT_KINDS", "TIMEOUT_PAGE", "PROTECTED_MSG"]
    for name in [*used, "API_PATH", "convert", "serve"]:
        assert name in watcher.sandbox.__all__
        assert getattr(watcher.sandbox, name) is not None
    modules = (
        watcher.sandbox,
        sandbox_converters,
        sandbox_faults,
        sandbox_http,
        sandbox_service,
    )
    for module in modules:
        assert module.__doc__ and len(module.__doc__) > 200, module.__name__
    root = Path(__file__).resolve().parent.parent
    assert not (root / "watcher" / "sandbox.py").exists()
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert "watcher.sandbox" in project["tool"]["setuptools"]["packages"]


# -- the sample PDF writer ------------------------------------------------------------------


def test_sample_pdf_round_trips_text_with_escapes_and_replaces_non_latin1(tmp_path) -> None:
    data = samplepdf.make_pdf(["Paren (x) back\\slash", "café\nnot 中文", ""])
    assert data.startswith(b"%PDF-1.4")
    assert data.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(data), strict=True)  # strict: the xref must be exact
    texts = [page.extract_text() for page in reader.pages]
    assert texts == ["Paren (x) back\\slash", "café\nnot ??", ""]
    path = samplepdf.write_pdf(tmp_path / "deep" / "out.pdf", ["x"])
    assert path.read_bytes() == samplepdf.make_pdf(["x"])
    with pytest.raises(TypeError):
        samplepdf.make_pdf("one string")  # type: ignore[arg-type]


def test_protected_sample_pdfs() -> None:
    encrypted = PdfReader(io.BytesIO(samplepdf.make_encrypted_pdf(["hidden"], "pw")))
    assert encrypted.is_encrypted
    assert encrypted.decrypt("pw")
    assert encrypted.pages[0].extract_text() == "hidden"
    locked = PdfReader(io.BytesIO(samplepdf.make_permission_locked_pdf(["visible"])))
    assert locked.is_encrypted
    assert locked.pages[0].extract_text() == "visible"  # the empty user password opens it
    assert not locked.user_access_permissions & UserAccessPermissions.EXTRACT
    assert not locked.user_access_permissions & UserAccessPermissions.PRINT
