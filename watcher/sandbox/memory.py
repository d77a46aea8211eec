"""The sandbox without a port: the real client talks to it through an in-memory transport.

Why a module of its own: the runner's unit tests want the real client (its reading of every
reply) and the real service rules (charges, ledger, 524 cuts, lost jobs, resets, truncated
downloads) but no socket, so that each money path is cheap to try over and over. The answers
are those of the HTTP front (`http.answer`), so the port and this transport agree (tests/
test_transport.py compares them fault by fault); the wire itself is not played (no timeouts,
no redirects: the sandbox sends none). One difference is the wire's: a reset before the upload
is read is, here, surely before it was sent (CutBeforeSent), while over a socket a small body
may have left whole before the reset came, and the client must assume it may have arrived.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any
from urllib.parse import urlsplit

from urllib3 import HTTPHeaderDict

from watcher.sandbox.http import API_PATH, _Reply, answer, halves
from watcher.sandbox.service import Service
from watcher.transport import Response, Timeouts, TransportError

HOST = "sandbox.invalid"  # .invalid: a client given the wrong transport reaches nothing


class MemorySandbox(Service):
    """A Service answering `transport` instead of a port. `reachable = False` plays an
    outage: every request is refused before anything is sent."""

    def __init__(self, **options: Any):
        super().__init__(host=HOST, port=80, **options)
        self.reachable = True
        self.transport = MemoryTransport(self)

    @property
    def url(self) -> str:
        return self.base_url + API_PATH

    def start(self) -> MemorySandbox:
        self._open()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._close()

    def __enter__(self) -> MemorySandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MemoryTransport:
    """A `watcher.transport.Transport` whose requests the sandbox answers in this process."""

    def __init__(self, sandbox: MemorySandbox):
        self._sandbox = sandbox

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: Timeouts,
        body: IO[bytes] | None = None,
        follow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(url)
        if not self._sandbox.reachable or parts.hostname != HOST:
            raise TransportError("the connection was refused", connected=False)
        reply = answer(
            self._sandbox,
            method,
            f"{parts.path}?{parts.query}",
            headers.get("Content-Type", ""),
            lambda: body.read() if body is not None else b"",
        )
        if reply is None:
            raise TransportError("the connection was cut")
        return _MemoryResponse(self._sandbox, reply)

    def close(self) -> None:
        return None


class _MemoryResponse:
    def __init__(self, sandbox: Service, reply: _Reply):
        self._sandbox = sandbox
        self._reply = reply
        self.status = reply.status
        self.headers = HTTPHeaderDict(
            {"Content-Type": reply.content_type, "Content-Length": str(len(reply.body))}
        )
        for name, value in reply.headers:
            self.headers[name] = value

    def read(self) -> bytes:
        return b"".join(self.stream(0))

    def stream(self, chunk_size: int) -> Iterator[bytes]:
        if not self._reply.halves:
            yield self._reply.body
            return
        yield from halves(self._sandbox, self._reply)

    def close(self, *, whole: bool) -> None:
        return None
