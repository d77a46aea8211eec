"""The client's transports (watcher.transport): the urllib3 pool to a sandbox on 127.0.0.1,
and the in-memory sandbox's (watcher.sandbox.memory) that the runner's unit tests use. The
same client over each must reach the same verdict for every fault the sandbox plays, or the
socket-free tests would prove something about a service that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from watcher import samplepdf
from watcher.api import ClientSettings, PdfOcrClient, RemoteJob
from watcher.errors import ApiError, NotConnected, TransientError
from watcher.sandbox import FAULT_KINDS, Sandbox, Service
from watcher.sandbox.memory import MemorySandbox
from watcher.transport import PoolTransport, Timeouts, TransportError

JOB = RemoteJob("scan-abc123.pdf", "txt", "English", True)


def story(box: Service, client: PdfOcrClient, pdf: Path, out: Path) -> list[str]:
    """What the client makes of an upload, a poll and a download, step by step, and what
    the sandbox charged."""
    said: list[str] = []

    def step(action: Callable[[], object]) -> object:
        try:
            outcome = action()
        except ApiError as exc:
            said.append(type(exc).__name__)
            return None
        said.append("ok" if outcome is not None else "none")
        return outcome

    result = step(lambda: client.upload(pdf, JOB))
    assert box.wait_idle()
    polled = step(lambda: client.poll(JOB))
    link = getattr(result or polled, "link", None)
    if link:
        step(lambda: client.download(link, out, "txt"))
    said.append(f"charged {len(box.ledger())}")
    return said


# A reset before the upload is read differs by nature: in memory the body was surely not
# taken (CutBeforeSent), while over a socket a small body may have left whole before the
# reset came (ConversionCut: the client must assume it may have arrived).
SAME_ON_BOTH = [kind for kind in FAULT_KINDS if kind not in ("reset_before_upload", "lose_job")]


@pytest.mark.parametrize("fault", [None, *SAME_ON_BOTH])
def test_the_client_reads_the_port_and_the_memory_sandbox_alike(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, fault: str | None
) -> None:
    pdf = samplepdf.write_pdf(tmp_path / "scan.pdf", ["page one"])
    stories = []
    with MemorySandbox() as memory:
        port = make_sandbox()
        for box, transport in ((port, None), (memory, memory.transport)):
            if fault:
                box.inject(fault)
            client = PdfOcrClient(
                ClientSettings(box.base_url + "/ocrapiv1.html", box.key), transport
            )
            stories.append(story(box, client, pdf, tmp_path / f"out-{len(stories)}.txt"))
            client.close()
            assert fault is None or box.fired[fault] == 1
    assert stories[0] == stories[1]
    assert fault is not None or stories[0] == ["ok", "ok", "ok", "charged 1"]


def test_a_cut_before_the_body_was_taken_is_cut_before_sent_in_memory(tmp_path: Path) -> None:
    pdf = samplepdf.write_pdf(tmp_path / "scan.pdf", ["page one"])
    with MemorySandbox() as box:
        box.inject("reset_before_upload")
        client = PdfOcrClient(ClientSettings(box.url, box.key), box.transport)
        with pytest.raises(TransientError, match="before the file was sent"):
            client.upload(pdf, JOB)
        assert box.ledger() == []


def test_an_outage_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    pdf = samplepdf.write_pdf(tmp_path / "scan.pdf", ["page one"])
    with MemorySandbox() as box:
        box.reachable = False
        client = PdfOcrClient(ClientSettings(box.url, box.key), box.transport)
        with pytest.raises(NotConnected, match="nothing was sent"):
            client.upload(pdf, JOB)
        with pytest.raises(TransientError, match="refused"):
            client.poll(JOB)
        assert box.ledger() == []


def test_the_pool_says_when_no_connection_was_made(sandbox: Sandbox) -> None:
    transport = PoolTransport()
    sandbox.go_away()
    with pytest.raises(TransportError) as refused:
        transport.request("GET", sandbox.url, headers={}, timeout=Timeouts(connect=5.0, read=5.0))
    assert not refused.value.connected and refused.value.reason == "the connection was refused"
    sandbox.come_back()
    response = transport.request("GET", sandbox.url, headers={}, timeout=Timeouts(5.0, 5.0))
    assert response.status == 200 and b"retcode" in response.read()
    transport.close()


def test_the_memory_transport_serves_only_its_sandbox(tmp_path: Path) -> None:
    with MemorySandbox() as box:
        client = PdfOcrClient(ClientSettings("https://pdfocr.org/ocrapiv1.html"), box.transport)
        with pytest.raises(TransientError, match="refused"):
            client.poll(JOB)
