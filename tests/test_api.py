"""The pdfocr client against a real sandbox on 127.0.0.1: results, cuts, refusals, bad links."""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.api import (
    ClientSettings,
    PdfOcrClient,
    RemoteJob,
    failure_from,
    parse_available_pages,
    parse_reply,
    remote_name,
    retry_after_seconds,
)
from watcher.config import parse_config
from watcher.contract import OUTFORMATS, REMOTE_NAME_RE
from watcher.errors import (
    AccountError,
    BadDownload,
    ConversionCut,
    CreditError,
    FileRejected,
    TransientError,
    UnknownRemoteName,
)
from watcher.sandbox import Sandbox


def client_for(box: Sandbox, *, key: str | None = None, **settings: object) -> PdfOcrClient:
    return PdfOcrClient(replace(ClientSettings(box.url, key or box.key), **settings))


def job(name: str = "scan-abc123.pdf", outformat: str = "txt", lang: str = "English") -> RemoteJob:
    return RemoteJob(name, outformat, lang, True)


@pytest.mark.parametrize("outformat", OUTFORMATS)
def test_upload_and_download_each_format(
    sandbox: Sandbox, make_pdf_file, tmp_path: Path, outformat: str
) -> None:
    source = make_pdf_file("in.pdf", pages=["Quarterly report", "Page two"])
    client = client_for(sandbox)
    result = client.upload(source, job(outformat=outformat))
    assert result.available_pages == 1000 - 2
    dest = tmp_path / f"out.{outformat}"
    written = client.download(result.link, dest, outformat)
    assert dest.stat().st_size == written.size > 0
    assert written.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    if outformat == "txt":
        assert "Quarterly report" in dest.read_text()
    if outformat == "pdf":
        assert dest.read_bytes() == source.read_bytes()
    assert [c.pages for c in sandbox.ledger()] == [2]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_cut_upload_is_polled_to_its_result_with_one_charge(
    make_sandbox, make_pdf_file, tmp_path: Path
) -> None:
    box = make_sandbox(seconds_per_page=0.6, cut_after=0.2)
    client = client_for(box)
    with pytest.raises(ConversionCut):
        client.upload(make_pdf_file(), job())
    assert client.poll(job()) is None  # still converting: "not ready", not an error
    deadline = time.monotonic() + 10
    result = None
    while result is None and time.monotonic() < deadline:
        time.sleep(0.1)
        result = client.poll(job())
    assert result is not None
    client.download(result.link, tmp_path / "out.txt", "txt")
    assert "Hello" in (tmp_path / "out.txt").read_text()
    assert len(box.ledger()) == 1


def test_a_reset_after_the_upload_is_a_cut_not_a_retry(sandbox: Sandbox, make_pdf_file) -> None:
    sandbox.inject("reset_after_upload")
    with pytest.raises(ConversionCut):
        client_for(sandbox).upload(make_pdf_file(), job())
    assert len(sandbox.ledger()) == 1


def test_polling_a_name_never_sent_says_so(sandbox: Sandbox) -> None:
    with pytest.raises(UnknownRemoteName):
        client_for(sandbox).poll(job("never-sent-1.pdf"))


def test_bad_key_is_an_account_error_with_the_service_message(
    sandbox: Sandbox, make_pdf_file
) -> None:
    client = client_for(sandbox, key="wrong-key")
    with pytest.raises(AccountError) as caught:
        client.upload(make_pdf_file(), job())
    assert "API key does not exist" in caught.value.message
    with pytest.raises(AccountError):
        client.poll(job())
    assert sandbox.ledger() == []


def test_no_credit_is_a_credit_error(make_sandbox, make_pdf_file) -> None:
    box = make_sandbox(credits=1)
    with pytest.raises(CreditError) as caught:
        client_for(box).upload(make_pdf_file(pages=["1", "2", "3"]), job())
    assert "Not enough available pages" in caught.value.message
    assert box.ledger() == []


def test_bad_language_is_refused_with_the_service_message(sandbox: Sandbox, make_pdf_file) -> None:
    with pytest.raises(FileRejected) as caught:
        client_for(sandbox).upload(make_pdf_file(), job(lang="Klingon"))
    assert "language" in caught.value.message.lower()
    assert sandbox.ledger() == []


def test_rate_limit_and_unreachable_are_transient(sandbox: Sandbox, make_pdf_file) -> None:
    sandbox.inject("http429")
    with pytest.raises(TransientError) as caught:
        client_for(sandbox).upload(make_pdf_file(), job())
    assert caught.value.retry_after == 1.0
    dead = PdfOcrClient(ClientSettings("http://127.0.0.1:9/x", sandbox.key))
    with pytest.raises(TransientError) as unreachable:
        dead.upload(make_pdf_file(), job())
    assert not isinstance(unreachable.value, ConversionCut)
    assert "refused" in unreachable.value.message
    assert sandbox.ledger() == []


def test_a_truncated_download_is_detected_and_leaves_nothing(
    sandbox: Sandbox, make_pdf_file, tmp_path: Path
) -> None:
    client = client_for(sandbox)
    result = client.upload(make_pdf_file(), job(outformat="docx"))
    sandbox.inject("truncate_download")
    dest = tmp_path / "out" / "r.docx"
    dest.parent.mkdir()
    with pytest.raises(BadDownload):
        client.download(result.link, dest, "docx")
    assert list(dest.parent.iterdir()) == []
    client.download(result.link, dest, "docx")  # the next try gets it whole
    assert dest.stat().st_size > 0


def test_a_link_to_another_host_is_not_followed(
    sandbox: Sandbox, make_pdf_file, tmp_path: Path
) -> None:
    sandbox.inject("foreign_link")
    client = client_for(sandbox)
    result = client.upload(make_pdf_file(), job())
    with pytest.raises(FileRejected) as caught:
        client.download(result.link, tmp_path / "x.txt", "txt")
    assert "unexpected place" in caught.value.message
    assert not (tmp_path / "x.txt").exists()


def test_link_trust_rules(sandbox: Sandbox) -> None:
    client = client_for(sandbox, download_hosts=("files.pdfocr.org",))
    port = sandbox.url.split(":")[2].split("/")[0]
    assert client.is_trusted_link(f"http://127.0.0.1:{port}/doc/a.docx")
    assert client.is_trusted_link("https://files.pdfocr.org/doc/a.docx")
    assert not client.is_trusted_link("http://127.0.0.1:1/doc/a.docx")  # another port
    assert not client.is_trusted_link("file:///etc/passwd")
    assert not client.is_trusted_link("http://user:pw@127.0.0.1/doc")
    assert not client.is_trusted_link("http://evil.example/doc")
    assert not client.is_trusted_link("http://[::1")


def test_success_without_link_or_html_reply_is_a_cut(sandbox: Sandbox, make_pdf_file) -> None:
    client = client_for(sandbox)
    for fault in ("missing_link", "html_reply"):
        sandbox.inject(fault)
        with pytest.raises(ConversionCut):
            client.upload(make_pdf_file(), job(f"scan-{fault.replace('_', '')}.pdf"))


def test_the_settings_are_read_from_the_rules_files_api_table() -> None:
    rules = parse_config(
        '[api]\nkey = "sk-1"\nendpoint = "https://example.org/api"\nconcurrency = 6\n'
        'request_timeout = 30\nmax_result_mb = 3\ndownload_hosts = ["cdn.example.org"]\n'
        "verify_tls = false\n",
        None,
        env={},
    )
    assert ClientSettings.from_rules(rules.api) == ClientSettings(
        "https://example.org/api",
        "sk-1",
        request_timeout=30.0,
        max_result_bytes=3 * 1024 * 1024,
        download_hosts=("cdn.example.org",),
        verify_tls=False,
        pool_size=6,
    )


def test_key_is_not_in_repr_or_errors(sandbox: Sandbox) -> None:
    client = client_for(sandbox, key="sk-very-secret-123")
    assert "sk-very-secret" not in repr(client)
    assert "sk-very-secret" not in repr(ClientSettings(sandbox.url, "sk-very-secret-123"))
    dead = client_for(sandbox, key="sk-very-secret-123", endpoint="http://127.0.0.1:9/x")
    with pytest.raises(TransientError) as caught:
        dead.poll(job())
    assert "sk-very-secret" not in str(caught.value)


# -- pure functions --------------------------------------------------------------------------


def test_reply_parsing_is_tolerant() -> None:
    reply = parse_reply(b'{"retcode":200,"msg":"ok","data":{"link":"x","available pages":"1,960"}}')
    assert reply.succeeded and parse_available_pages(reply.data["available pages"]) == 1960
    assert parse_reply(b"<html>timeout</html>").retcode is None
    assert parse_reply(b"[1,2]").retcode is None
    assert parse_reply(b'{"retcode": true}').retcode is None


def test_failure_classification_reads_the_message() -> None:
    def kind(msg: str) -> type:
        return type(failure_from(parse_reply(f'{{"retcode":"404","msg":"{msg}"}}'.encode())))

    assert kind("API key does not exist, please sign up.") is AccountError
    assert kind("Not enough available pages") is CreditError
    assert kind("File not found") is UnknownRemoteName
    assert kind("Unsupported language") is FileRejected


def test_retry_after_accepts_seconds_and_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


def test_remote_names_keep_the_user_name_recognisable() -> None:
    assert remote_name("Mon reçu (1).PDF", "ab12") == "Mon-recu-1-ab12.pdf"
    assert remote_name("....", "ab12") == "file-ab12.pdf"
    assert remote_name("📄 نص.jpeg", "x9") == "file-x9.jpeg"


@given(st.text(max_size=300), st.text(alphabet="abcdef0123456789", min_size=1, max_size=12))
def test_remote_names_are_always_safe(name: str, token: str) -> None:
    assert REMOTE_NAME_RE.match(remote_name(name, token))


@given(
    st.text(max_size=80),
    st.text(max_size=80),
    st.text(alphabet="0123456789abcdef", min_size=10, max_size=10),
    st.text(alphabet="0123456789abcdef", min_size=10, max_size=10),
)
def test_remote_names_are_unique_per_token(a: str, b: str, token_a: str, token_b: str) -> None:
    if token_a != token_b:
        assert remote_name(a, token_a) != remote_name(b, token_b)


@given(st.binary(max_size=400))
def test_any_reply_body_is_classified_without_crashing(body: bytes) -> None:
    reply = parse_reply(body)
    if reply.retcode is not None and not reply.succeeded:
        assert isinstance(failure_from(reply), Exception)


class _RecordingProxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy that notes what it is asked for and answers 502 (the test needs only
    to know whether a request went through it)."""

    seen: ClassVar[list[str]] = []
    credentials: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.credentials.append(self.headers["Proxy-Authorization"])
        body = b"<html>proxy says no</html>"
        self.send_response(502)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.mark.parametrize("scheme", ["http://", ""])  # "host:port" alone means http
def test_proxies_from_the_environment_are_used_except_for_no_proxy_hosts(
    sandbox: Sandbox, no_proxies: pytest.MonkeyPatch, scheme: str
) -> None:
    """The environment is read once per client, but still obeyed: a proxy for everything
    but the hosts NO_PROXY exempts (a TLS-inspecting office network needs this)."""
    monkeypatch = no_proxies
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"{scheme}127.0.0.1:{proxy.server_address[1]}")
        _RecordingProxy.seen = []
        assert client_for(sandbox).poll(job()) is None  # the proxy's 502 page: "not ready"
        assert len(_RecordingProxy.seen) == 1
        assert _RecordingProxy.seen[0].startswith(sandbox.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with pytest.raises(UnknownRemoteName):  # the sandbox itself answered
            client_for(sandbox).poll(job())
        assert len(_RecordingProxy.seen) == 1
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.skipif(importlib.util.find_spec("socks") is not None, reason="PySocks is here")
def test_a_proxy_that_cannot_be_used_holds_the_queue_in_words(
    sandbox: Sandbox, no_proxies: pytest.MonkeyPatch
) -> None:
    no_proxies.setenv("ALL_PROXY", "socks5://127.0.0.1:9")
    with pytest.raises(AccountError, match="PySocks"):
        client_for(sandbox).poll(job())
    assert sandbox.ledger() == []


def test_proxy_credentials_are_sent_decoded(
    sandbox: Sandbox, no_proxies: pytest.MonkeyPatch
) -> None:
    """A password with an "@" is written "%40" in a proxy URL; the proxy must get "@"."""
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        port = proxy.server_address[1]
        no_proxies.setenv("HTTP_PROXY", f"http://office%5Cann:p%40ss@127.0.0.1:{port}")
        _RecordingProxy.seen, _RecordingProxy.credentials = [], []
        assert client_for(sandbox).poll(job()) is None
    finally:
        proxy.shutdown()
        proxy.server_close()
    expected = "Basic " + base64.b64encode(b"office\\ann:p@ss").decode()
    assert _RecordingProxy.credentials == [expected]
