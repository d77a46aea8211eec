"""The HTTP front of the sandbox: the port, the requests, and the replies pdfocr.org sends.

Why a module of its own: the wire is where the CDN and the network misbehave (524 pages,
resets, 5xx and 429 pages, truncated downloads, slow replies, a port that stops listening), and
where the service's verdicts become what pdfocr.org sends: HTTP 200 with a JSON retcode string
for every verdict, HTML pages for what the CDN says. It holds `Sandbox`, the service of
service.py listening on a local port (start, stop, go_away, come_back), the /_sandbox/ control
hooks for a sandbox in another process, and `serve`, the foreground run behind
`pdfocr-watcher sandbox`.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import json
import logging
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from watcher.sandbox.faults import FaultRates, percent
from watcher.sandbox.service import DOC_PATH, Service, Verdict, _Job, _Refused

log = logging.getLogger(__name__)

API_PATH = "/ocrapiv1.html"
_CONTROL_PATH = "/_sandbox/"
_CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


@dataclass(frozen=True)
class _Reply:
    """What to send. A download (`halves`) sends half its body, pauses download_delay, then
    the rest, unless `truncated`: then it stops at half, although Content-Length promised all."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None
    halves: bool = False
    truncated: bool = False


def _json(payload: dict[str, Any], status: int = 200) -> _Reply:
    return _Reply(status, json.dumps(payload).encode())


def _verdict(verdict: Verdict) -> _Reply:
    """A verdict as pdfocr.org sends it: HTTP 200, JSON with a retcode string."""
    payload: dict[str, Any] = {"retcode": verdict.retcode, "msg": verdict.msg}
    if verdict.data is not None:
        payload["data"] = verdict.data
    return _json(payload)


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


class Sandbox(Service):
    """The pdfocr.org endpoint on a local port, with its credit, ledger and fault switches.

    The service's attributes (see Service: seconds_per_page, cut_after, download_delay,
    late_names, lose_after_cut, reply_delay, poll_delay) may be changed while it serves.
    start() listens (port 0: a free port, kept from then on), stop() ends everything;
    go_away() and come_back() play an outage in between, as often as wanted.
    """

    _server: _Server | None = None
    _thread: threading.Thread | None = None
    _started = False

    @property
    def url(self) -> str:
        return self.base_url + API_PATH

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> Sandbox:
        """Serve on host:port; a no-op while serving, a come_back() after go_away()."""
        if not self._started:
            self._open()
            self._started = True
        if self._server is None:
            self._listen()
        return self

    def stop(self) -> None:
        """Stop serving and end sleeping conversions and delays; safe to call twice."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self._unlisten()
        self._close()

    def go_away(self) -> None:
        """Stop listening, as an outage does: connections to the port are refused.

        Everything else goes on until come_back(): conversions run, jobs, ledger, credit and
        queued faults stay, and a request already being served is still answered. A no-op
        when not listening.
        """
        self._unlisten()
        log.debug("sandbox went away from port %d", self.port)

    def come_back(self, keep_memory: bool = True) -> Sandbox:
        """Listen again on the same port (OSError if something else took it meanwhile).

        keep_memory=False: first forget every job (see forget()), as a service restarted
        without its memory; the ledger and the credit balance are kept.
        """
        if not keep_memory:
            self.forget()
        return self.start()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _listen(self) -> None:
        server = _Server((self.host, self.port), _Handler)  # _Handler looked up now: patchable
        server.sandbox = self
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        log.debug("sandbox serving at %s", self.url)

    def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()  # from now on, connections to the port are refused
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # come_back() binds the same port again at once
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
        if path.startswith(_CONTROL_PATH):
            return self._control(method, path[len(_CONTROL_PATH) :])
        body: list[bytes] = []

        def read_body() -> bytes:
            if not body:
                body.append(self._read_body())
            return body[0]

        reply = answer(
            self.server.sandbox, method, self.path, self.headers.get("Content-Type", ""), read_body
        )
        if reply is None:
            return self._reset()
        self._send(reply)
        if method == "POST" and not body:
            self._drain()  # a page sent before the upload was read

    def _control(self, method: str, hook: str) -> None:
        """Test hooks for a sandbox running in another process; never faulted nor delayed.

        GET ledger, GET behaviour; POST inject {"kind", "times"}, credits {"available"},
        behaviour {any of BEHAVIOURS: value}, forget. A bad request is HTTP 400 JSON.
        """
        sandbox = self.server.sandbox
        try:
            if method == "GET" and hook == "ledger":
                return self._send(_json(sandbox._ledger_json()))
            if method == "GET" and hook == "behaviour":
                return self._send(_json({"ok": True, "behaviour": sandbox.behaviour()}))
            if method == "POST" and hook in ("inject", "credits", "behaviour", "forget"):
                body = json.loads(self._read_body() or b"{}")
                if not isinstance(body, dict):
                    raise TypeError(f"send a JSON object, not {type(body).__name__}")
                answer: dict[str, Any] = {"ok": True}
                if hook == "inject":
                    sandbox.inject(str(body["kind"]), int(body.get("times", 1)))
                elif hook == "credits":
                    sandbox.available_pages = int(body["available"])
                elif hook == "behaviour":
                    answer["behaviour"] = sandbox.set_behaviour(body)
                else:
                    answer["forgotten"] = sandbox.forget()
                return self._send(_json(answer))
        except (ValueError, KeyError, TypeError) as exc:
            return self._send(_json({"ok": False, "error": str(exc)}, status=400))
        self._send(_NOT_FOUND)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status, reply.reason)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if not reply.halves:
            self.wfile.write(reply.body)
            return
        for part in halves(self.server.sandbox, reply):
            self.wfile.write(part)
        self.close_connection = True

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


# -- the answers, without a socket: the port above and the in-memory transport (memory.py) --


def answer(
    sandbox: Service,
    method: str,
    target: str,
    content_type: str,
    read_body: Callable[[], bytes],
) -> _Reply | None:
    """The reply to one request for the API or a download (`target`: path and query), or
    None when the connection is to be reset. `read_body` is called only when the upload is
    read: a fault that strikes before (a reset, a 5xx page) leaves it unread."""
    path = urlsplit(target).path
    if path == API_PATH:
        return _api(sandbox, method, target, content_type, read_body)
    if method == "GET" and path.startswith(DOC_PATH):
        return _download(sandbox, path)
    return _NOT_FOUND


def halves(sandbox: Service, reply: _Reply) -> Iterator[bytes]:
    """A download's body as it is sent: half, a pause of download_delay, then the rest
    (stop() ends the pause), or only the half when it is truncated."""
    half = len(reply.body) // 2
    yield reply.body[:half]
    if not reply.truncated:
        sandbox._stopping.wait(sandbox.download_delay)
        yield reply.body[half:]


def _api(
    sandbox: Service,
    method: str,
    target: str,
    content_type: str,
    read_body: Callable[[], bytes],
) -> _Reply | None:
    fields = {k: v[0] for k, v in parse_qs(urlsplit(target).query, True).items()}
    submission = method == "POST" or "url" in fields
    fault = sandbox._next_fault("submission" if submission else "poll")
    if fault == "reset_before_upload":
        return None
    if fault in _FAULT_PAGES:
        sandbox._pause(poll=not submission)
        return _FAULT_PAGES[fault]
    if not submission:
        sandbox._pause(poll=True)  # before answering, so the answer is as fresh as the reply
        try:
            return _verdict(sandbox._poll(fields))
        except _Refused as refused:
            return _verdict(refused.verdict)
    reply = _submit(sandbox, method, fields, content_type, read_body, fault)
    if reply is not None:
        sandbox._pause(poll=False)
    return reply


def _submit(
    sandbox: Service,
    method: str,
    fields: dict[str, str],
    content_type: str,
    read_body: Callable[[], bytes],
    fault: str | None,
) -> _Reply | None:
    """Read, charge and answer a submission: its reply, or None to reset the connection.

    A reply cut (a 524 page, injected or at cut_after, or a reset after the upload) is
    reported to the service, which may lose the job then.
    """
    verdict: Verdict | None
    try:
        data, url = None, (fields.get("url") if method == "GET" else None)
        if method == "POST":
            form, data = _parse_form(content_type, read_body())
            fields.update(form)
        elif "filename" not in fields:
            fields["filename"] = PurePosixPath(urlsplit(url or "").path).name
        received = time.monotonic()
        job: _Job = sandbox._accept(fields, data, url)
    except _Refused as refused:
        verdict = refused.verdict
    else:
        verdict = None
        if fault is None and job.done.wait(
            max(0.0, received + sandbox.cut_after - time.monotonic())
        ):
            verdict = sandbox._success(job)
        if verdict is None:
            sandbox._cut(job)
    if fault == "reset_after_upload":
        return None
    return TIMEOUT_PAGE if fault == "http524" or verdict is None else _verdict(verdict)


def _download(sandbox: Service, path: str) -> _Reply:
    parts = path.split("/")  # "", "doc", token, name
    found = sandbox._result_file(parts[2], parts[3]) if len(parts) == 4 else None
    if found is None:
        return _NOT_FOUND
    return _Reply(
        200,
        found.read_bytes(),
        _CONTENT_TYPES.get(found.suffix[1:], "application/octet-stream"),
        (("Content-Disposition", f'attachment; filename="{found.name}"'),),
        halves=True,
        truncated=sandbox._next_fault("download") == "truncate_download",
    )


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


# -- the foreground run of `pdfocr-watcher sandbox` ----------------------------------------


def describe(sandbox: Service) -> list[tuple[str, str]]:
    """The sandbox's behaviour in plain words, as (label, text) lines for the banner."""
    slow = []
    if sandbox.reply_delay > 0:
        slow.append(f"{_seconds(sandbox.reply_delay)} before every API reply")
    if sandbox.poll_delay > 0:
        more = " more" if slow else ""
        slow.append(f"{_seconds(sandbox.poll_delay)}{more} before each status poll reply")
    late = sandbox.late_names
    lost = sandbox.lose_after_cut
    return [
        (
            "conversion",
            f"{_seconds(sandbox.seconds_per_page)} per page; replies cut with a 524 page "
            f"after {_seconds(sandbox.cut_after)}",
        ),
        ("faults", sandbox.faults.describe()),
        ("late names", f"polls find a job {_seconds(late)} after its upload" if late else "none"),
        ("lost jobs", f"{percent(lost)} of jobs whose reply was cut" if lost else "none"),
        ("slow replies", ", ".join(slow) or "none"),
    ]


def _seconds(value: float) -> str:
    return f"{value:g} s"


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
    late_names: float = 0.0,
    lose_after_cut: float = 0.0,
    reply_delay: float = 0.0,
    poll_delay: float = 0.0,
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
        late_names=late_names,
        lose_after_cut=lose_after_cut,
        reply_delay=reply_delay,
        poll_delay=poll_delay,
    ).start()
    lines = [
        ("endpoint", sandbox.url),
        ("API key", sandbox.key),
        ("credit", f"{credits} pages (play money)"),
        *describe(sandbox),
    ]
    width = max(len(label) for label, _ in lines) + 2
    print(
        "pdfocr-watcher SANDBOX: a local stand-in for trying the watcher out.\n"
        "This is NOT pdfocr.org: nothing is sent there and nothing real is charged.\n"
        + "".join(f"  {label + ':':<{width}}{text}\n" for label, text in lines)
        + "Press Ctrl-C to stop.",
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
