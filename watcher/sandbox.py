"""A local stand-in for the pdfocr.org API (shared/API.md), for tests and the first-run demo.

It converts for real, so tests can check what comes back; it keeps a ledger of every charge, so
tests can catch a client that pays twice for one file; and it misbehaves on request (resets,
524 cuts, 5xx pages, truncated downloads...), so tests can prove the client survives the
failures the real service and its CDN produce. Replies copy the service: HTTP 200 with a JSON
retcode string for every verdict, HTML pages for what the CDN says.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import io
import json
import logging
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

from watcher import contract

log = logging.getLogger("watcher.sandbox")

API_PATH = "/ocrapiv1.html"
FAULT_KINDS: tuple[str, ...] = (
    "reset_before_upload",
    "reset_after_upload",
    "http524",
    "http502",
    "http503",
    "http429",
    "truncate_download",
    "foreign_link",
    "missing_link",
    "html_reply",
)
# Which queued faults may fire on which kind of request, in FAULT_KINDS order.
_SCOPES: dict[str, tuple[str, ...]] = {
    "submission": (*FAULT_KINDS[:6], "html_reply"),
    "poll": ("http502", "http503", "http429", "html_reply"),
    "download": ("truncate_download",),
    "reply": ("foreign_link", "missing_link"),
}
PROTECTED_MSG = "The PDF is password or permission protected; unlock it before uploading."
_KEY_MSG = "API key does not exist, please sign up."
_FIXED_DATE = b"2000-01-01T00:00:00Z"
_CORE_DATES = re.compile(
    rb"(<(dcterms:created|dcterms:modified|cp:lastPrinted)\b[^>]*>)[^<]*(</\2>)"
)
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per request of random misbehaviour, for chaos runs of the CLI sandbox."""

    reset: float = 0.0
    http502: float = 0.0
    http429: float = 0.0
    truncate: float = 0.0


@dataclass(frozen=True)
class Charge:
    """One paid conversion: what a test inspects to prove a file was paid for exactly once."""

    filename: str
    outformat: str
    lang: str
    ocr: bool
    pages: int
    via: str  # "upload" or "url"


@dataclass
class _Job:
    """A conversion, findable by (filename, outformat) for status polls after a cut."""

    name: str  # the result's name, "<stem>.<outformat>"
    token: str
    link: str
    done: threading.Event = field(default_factory=threading.Event)
    error: str = ""


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None


class _Refused(Exception):
    """A verdict of the service: sent as HTTP 200 with a JSON retcode, like pdfocr.org does."""

    def __init__(self, retcode: str, msg: str):
        super().__init__(msg)
        self.reply = _api_json(retcode, msg)


def _api_json(retcode: str, msg: str, data: dict | None = None) -> _Reply:
    payload: dict = {"retcode": retcode, "msg": msg}
    if data is not None:
        payload["data"] = data
    return _Reply(200, json.dumps(payload).encode())


def _html(status: int, title: str, text: str, reason: str | None = None, **headers: str) -> _Reply:
    body = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
    body += f"<p>{text}</p><p>(pdfocr-watcher sandbox)</p></body></html>"
    return _Reply(status, body.encode(), "text/html; charset=UTF-8", tuple(headers.items()), reason)


TIMEOUT_PAGE = _html(
    524,
    "pdfocr.org | 524: A timeout occurred",
    "Error code 524. The origin web server timed out responding to this request.",
    "A Timeout Occurred",
)
_FAULT_PAGES = {
    "http502": _html(502, "502 Bad Gateway", "The web server reported a bad gateway error."),
    "http503": _html(503, "503 Service Unavailable", "The service is temporarily unavailable."),
    "http429": _html(429, "429 Too Many Requests", "Slow down.", **{"Retry-After": "1"}),
    "html_reply": _html(200, "Maintenance", "pdfocr.org is down for maintenance."),
}
_NOT_FOUND = _html(404, "404 Not Found", "Nothing here.")


class Sandbox:
    """The pdfocr.org endpoint on a local port, with its credit, ledger and fault switches.

    seconds_per_page, cut_after and download_delay are plain attributes read per request, so
    tests may change them on a running sandbox. download_delay (seconds) pauses every download
    halfway through its body, so a test can kill a client mid-download.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = "sandbox-key",
        credits: int = 1000,
        seconds_per_page: float = 0.0,
        cut_after: float = 100.0,
        workdir: Path | None = None,
        faults: FaultRates | None = None,
        seed: int | None = None,
        download_delay: float = 0.0,
    ):
        self.host, self.port, self.key = host, port, key
        self.seconds_per_page, self.cut_after = seconds_per_page, cut_after
        self.download_delay = download_delay
        self.faults = faults or FaultRates()
        self._workdir, self._own_workdir = workdir, workdir is None
        self._rng = random.Random(seed)
        self._lock = threading.Condition()  # guards everything below; notified when idle
        self._available = credits
        self._ledger: list[Charge] = []
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._files: dict[str, Path] = {}
        self._queued: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()  # faults that happened, by kind
        self._running = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- the contract --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + API_PATH

    @property
    def available_pages(self) -> int:
        with self._lock:
            return self._available

    @available_pages.setter
    def available_pages(self, value: int) -> None:
        with self._lock:
            self._available = int(value)

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pdfocr-sandbox-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        log.debug("sandbox serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and end sleeping conversions; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wait_idle(timeout=2)
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def ledger(self) -> list[Charge]:
        with self._lock:
            return list(self._ledger)

    def inject(self, kind: str, times: int = 1) -> None:
        """Queue a deterministic fault for the next `times` requests it applies to."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if times < 0:
            raise ValueError("times must be >= 0")
        with self._lock:
            self._queued[kind] += times

    def wait_idle(self, timeout: float = 10.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._running == 0, timeout)

    # -- used by the request handler -----------------------------------------------------

    def _next_fault(self, scope: str) -> str | None:
        """The fault for this request, counted in `fired` (chaos runs report them)."""
        kind = self._pick_fault(scope)
        if kind is not None:
            with self._lock:
                self.fired[kind] += 1
        return kind

    def _pick_fault(self, scope: str) -> str | None:
        """A queued fault first, else a random one if none is queued."""
        with self._lock:
            for kind in _SCOPES[scope]:
                if self._queued[kind] > 0:
                    self._queued[kind] -= 1
                    log.debug("injected fault fires: %s", kind)
                    return kind
            return None if any(self._queued.values()) else self._random_fault(scope)

    def _random_fault(self, scope: str) -> str | None:
        rates, rng = self.faults, self._rng
        if scope == "submission" and rng.random() < rates.reset:
            return rng.choice(("reset_after_upload", "reset_before_upload"))
        if scope in ("submission", "poll"):
            if rng.random() < rates.http502:
                return "http502"
            if rng.random() < rates.http429:
                return "http429"
        if scope == "download" and rng.random() < rates.truncate:
            return "truncate_download"
        return None

    def _check_key(self, fields: dict[str, str]) -> None:
        if fields.get("apikey") != self.key:
            raise _Refused("404", _KEY_MSG)

    def _accept(self, fields: dict[str, str], data: bytes | None, url: str | None) -> _Job:
        """Validate in the service's order, then charge and start converting, or raise _Refused."""
        self._check_key(fields)
        filename = fields.get("filename", "")
        if not contract.REMOTE_NAME_RE.match(filename):
            raise _Refused(
                "400",
                f"Invalid file name {filename!r} (sandbox): file names may contain only "
                "letters, digits and hyphens, plus the extension.",
            )
        lang = fields.get("lang", "English")  # the documented default
        if lang not in contract.LANGUAGES:
            raise _Refused("400", f"Unsupported language {lang!r} (sandbox).")
        outformat = fields.get("outformat", "")
        if outformat not in contract.OUTFORMATS:
            raise _Refused("400", f"Unsupported output format {outformat!r} (sandbox).")
        ocr = fields.get("ocr")
        if ocr not in ("0", "1"):
            raise _Refused("400", "ocr must be 1 (OCR required) or 0 (sandbox).")
        data = _fetch(url) if url is not None else data or b""
        kind, pages = _inspect(data)
        if kind == "image" and outformat == "pdf":
            raise _Refused("400", "Converting images to PDF is not supported (sandbox).")
        token = secrets.token_hex(8)
        name = f"{filename.rsplit('.', 1)[0]}.{outformat}"
        job = _Job(name, token, f"{self.base_url}/doc/{token}/{name}")
        charge = Charge(filename, outformat, lang, ocr == "1", pages, "url" if url else "upload")
        with self._lock:
            if pages > self._available:
                raise _Refused(
                    "402",
                    f"Not enough available pages: this file has {pages} pages and your "
                    f"account has {self._available}. Buy more credits.",
                )
            self._available -= pages
            self._ledger.append(charge)
            self._jobs[(filename, outformat)] = job
            self._running += 1
        log.debug("charged %d page(s) for %s -> %s", pages, filename, outformat)
        worker = threading.Thread(target=self._convert, args=(job, data, kind, pages), daemon=True)
        worker.start()
        return job

    def _convert(self, job: _Job, data: bytes, kind: str, pages: int) -> None:
        """Take seconds_per_page per page like a slow OCR run, then store the real result."""
        try:
            if self._stopping.wait(self.seconds_per_page * pages):
                job.error = "the sandbox was stopped"
                return
            output = convert(data, kind, job.name.rsplit(".", 1)[1])
            assert self._workdir is not None
            path = self._workdir / job.token / job.name
            path.parent.mkdir(parents=True)
            path.write_bytes(output)
            with self._lock:
                self._files[job.token] = path
        except Exception as exc:  # a bug or a full disk: report it on the next poll
            log.debug("conversion of %s failed", job.name, exc_info=True)
            job.error = str(exc) or type(exc).__name__
        finally:
            job.done.set()
            with self._lock:
                self._running -= 1
                self._lock.notify_all()

    def _await(self, job: _Job, deadline: float) -> _Reply:
        """Hold the reply until the conversion ends, or cut it at the deadline as the CDN does."""
        if job.done.wait(max(0.0, deadline - time.monotonic())):
            return self._success(job)
        return TIMEOUT_PAGE

    def _poll(self, fields: dict[str, str]) -> _Reply:
        self._check_key(fields)
        filename, outformat = fields.get("filename", ""), fields.get("outformat", "")
        if not filename or not outformat:
            raise _Refused("400", "Give filename and outformat for a status, or url (sandbox).")
        with self._lock:
            job = self._jobs.get((filename, outformat))
        if job is None:
            raise _Refused("404", f"File not found: no upload named {filename} (sandbox).")
        if not job.done.is_set():
            return _api_json("202", "Conversion in progress (sandbox).")
        return self._success(job)

    def _success(self, job: _Job) -> _Reply:
        if job.error:
            return _api_json("500", f"Conversion failed (sandbox): {job.error}")
        data = {"filename": job.name, "link": job.link, "available pages": self.available_pages}
        fault = self._next_fault("reply")
        if fault == "foreign_link":
            data["link"] = "http://downloads.invalid" + urlsplit(job.link).path
        elif fault == "missing_link":
            del data["link"]
        return _api_json("200", "Conversion success (sandbox).", data)

    def _result_file(self, token: str, name: str) -> Path | None:
        with self._lock:
            path = self._files.get(token)
        return path if path is not None and path.name == name else None

    def _ledger_json(self) -> dict:
        with self._lock:
            charges = [asdict(charge) for charge in self._ledger]
            return {
                "charges": charges,
                "pages_charged": sum(charge["pages"] for charge in charges),
                "available pages": self._available,
            }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: Sandbox

    def handle_error(self, request: object, client_address: object) -> None:
        """Log through logging, never to stderr; a client hanging up is routine, not a warning."""
        routine = isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError))
        level = logging.DEBUG if routine else logging.WARNING
        log.log(level, "error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "pdfocr-sandbox/1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path == API_PATH:
            self._api(method)
        elif method == "GET" and path.startswith("/doc/"):
            self._download(path)
        elif path.startswith("/_sandbox/"):
            self._control(method, path)
        else:
            self._send(_NOT_FOUND)

    def _api(self, method: str) -> None:
        sandbox = self.server.sandbox
        fields = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, True).items()}
        submission = method == "POST" or "url" in fields
        fault = sandbox._next_fault("submission" if submission else "poll")
        if fault == "reset_before_upload":
            return self._reset()
        if fault in _FAULT_PAGES:
            self._send(_FAULT_PAGES[fault])
            return self._drain()
        try:
            if not submission:
                return self._send(sandbox._poll(fields))
            data, url = None, (fields.get("url") if method == "GET" else None)
            if method == "POST":
                form, data = _parse_form(self.headers.get("Content-Type", ""), self._read_body())
                fields.update(form)
            elif "filename" not in fields:
                fields["filename"] = PurePosixPath(urlsplit(url or "").path).name
            received = time.monotonic()
            job = sandbox._accept(fields, data, url)
            reply = None if fault else sandbox._await(job, received + sandbox.cut_after)
        except _Refused as refused:
            reply = refused.reply
        if fault == "reset_after_upload":
            return self._reset()
        self._send(TIMEOUT_PAGE if fault == "http524" or reply is None else reply)

    def _download(self, path: str) -> None:
        parts = path.split("/")  # "", "doc", token, name
        found = self.server.sandbox._result_file(parts[2], parts[3]) if len(parts) == 4 else None
        if found is None:
            return self._send(_NOT_FOUND)
        sandbox, body = self.server.sandbox, found.read_bytes()
        truncate = sandbox._next_fault("download") == "truncate_download"
        content_type = _CONTENT_TYPES.get(found.suffix[1:], "application/octet-stream")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Disposition", f'attachment; filename="{found.name}"')
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        if not truncate:  # truncated: stop at half, although Content-Length promised it all
            sandbox._stopping.wait(sandbox.download_delay)
            self.wfile.write(body[len(body) // 2 :])
        self.close_connection = True

    def _control(self, method: str, path: str) -> None:
        """Test hooks for a sandbox running in another process."""
        sandbox = self.server.sandbox
        try:
            if method == "GET" and path == "/_sandbox/ledger":
                return self._send(_Reply(200, json.dumps(sandbox._ledger_json()).encode()))
            if method == "POST" and path in ("/_sandbox/inject", "/_sandbox/credits"):
                body = json.loads(self._read_body() or b"{}")
                if path.endswith("inject"):
                    sandbox.inject(str(body["kind"]), int(body.get("times", 1)))
                else:
                    sandbox.available_pages = int(body["available"])
                return self._send(_Reply(200, b'{"ok": true}'))
        except (ValueError, KeyError, TypeError) as exc:
            error = json.dumps({"ok": False, "error": str(exc)}).encode()
            return self._send(_Reply(400, error))
        self._send(_NOT_FOUND)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status, reply.reason)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _drain(self) -> None:
        """Read the unread body after replying, so closing does not turn the reply into a reset."""
        self.connection.settimeout(5)
        with contextlib.suppress(OSError, ValueError):
            self._read_body()

    def _reset(self) -> None:
        """Abort the connection with a TCP reset and no reply, as a crashing proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.rfile.close()  # drops the last reference, so the socket really closes now


def _parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """Text fields of a multipart/form-data body, and the bytes of its `file` part.

    A missing `filename` field falls back to the file part's own name.
    """
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise _Refused("400", "Send the file as multipart/form-data (sandbox).")
    fields: dict[str, str] = {}
    data, part_name = b"", ""
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.partition(b"\r\n\r\n")
        headers = email.message_from_bytes(head.strip() + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if name == "file":
            data, part_name = value, headers.get_filename() or ""
        elif isinstance(name, str):
            fields[name] = value.decode("utf-8", "replace")
    if part_name and "filename" not in fields:
        fields["filename"] = part_name
    return fields, data


def _fetch(url: str) -> bytes:
    """Download a GET submission's file, as the service does with `url`."""
    import requests

    if urlsplit(url).scheme not in ("http", "https"):
        raise _Refused("400", "The url must be an http or https address (sandbox).")
    try:
        response = requests.get(url, timeout=30)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise _Refused("400", f"Could not download the file from url (sandbox): {exc}") from exc
    return response.content


def _inspect(data: bytes) -> tuple[str, int]:
    """("pdf" or "image", page count) of an upload, or _Refused as the service would refuse it."""
    if not data:
        raise _Refused("400", "The uploaded file is empty (sandbox).")
    if b"%PDF" in data[:1024]:
        from pypdf import PdfReader

        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise _Refused("400", PROTECTED_MSG)
            pages = len(reader.pages)
        except _Refused:
            raise
        except Exception as exc:
            raise _Refused("400", f"The PDF could not be read (sandbox): {exc}") from exc
        if pages == 0:
            raise _Refused("400", "The PDF could not be read (sandbox): it has no pages.")
        return "pdf", pages
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as exc:
        raise _Refused("400", "Unsupported file type (sandbox): send a PDF or an image.") from exc
    return "image", 1


def convert(data: bytes, kind: str, outformat: str) -> bytes:
    """The real, deterministic conversion of a validated upload: same input, same bytes."""
    if outformat == "pdf":
        return data
    if kind == "pdf":
        from pypdf import PdfReader

        texts = [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
    else:
        texts = [""]  # the sandbox does no real OCR of images
    if outformat == "txt":
        return "\n\f\n".join(texts).encode("utf-8")
    lines = [_XML_UNSAFE.sub("", text).splitlines() for text in texts]
    writers = {"docx": _write_docx, "xlsx": _write_xlsx, "pptx": _write_pptx}
    out = io.BytesIO()
    writers[outformat](lines, out)
    return _normalize_zip(out.getvalue())


def _write_docx(pages: list[list[str]], out: io.BytesIO) -> None:
    from docx import Document

    document = Document()
    for number, lines in enumerate(pages):
        if number:
            document.add_page_break()
        for line in lines:
            document.add_paragraph(line)
    document.save(out)


def _write_xlsx(pages: list[list[str]], out: io.BytesIO) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for number, lines in enumerate(pages, start=1):
        sheet = workbook.create_sheet(f"Page {number}")
        for row, line in enumerate(lines, start=1):
            sheet.cell(row=row, column=1, value=line).data_type = "s"  # "=x" stays text
    workbook.save(out)


def _write_pptx(pages: list[list[str]], out: io.BytesIO) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    for lines in pages:
        slide = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank
        box = slide.shapes.add_textbox(Inches(0.5), Inches(0.5), Inches(9), Inches(6.5))
        box.text_frame.word_wrap = True
        box.text_frame.text = "\n".join(lines)
    presentation.save(out)


def _normalize_zip(blob: bytes) -> bytes:
    """Rewrite an Office zip with fixed timestamps, so equal inputs give byte-identical files."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename == "docProps/core.xml":
                payload = _CORE_DATES.sub(rb"\g<1>" + _FIXED_DATE + rb"\g<3>", payload)
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            target.writestr(entry, payload, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    key: str = "sandbox-key",
    credits: int = 1000,
    seconds_per_page: float = 0.0,
    cut_after: float = 100.0,
    faults: FaultRates | None = None,
    seed: int | None = None,
) -> int:
    """Run a sandbox in the foreground for `pdfocr-watcher sandbox` until Ctrl-C or SIGTERM."""
    sandbox = Sandbox(
        host=host,
        port=port,
        key=key,
        credits=credits,
        seconds_per_page=seconds_per_page,
        cut_after=cut_after,
        faults=faults,
        seed=seed,
    ).start()
    print(
        "pdfocr-watcher SANDBOX: a local stand-in for trying the watcher out.\n"
        "This is NOT pdfocr.org: nothing is sent there and nothing real is charged.\n"
        f"  endpoint: {sandbox.url}\n"
        f"  API key:  {sandbox.key}\n"
        f"  credit:   {credits} pages (play money)\n"
        f"  faults:   {sandbox.faults}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("Sandbox stopped.", flush=True)
    return 0
