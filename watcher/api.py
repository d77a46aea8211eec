"""The pdfocr.org client: upload, submit by URL, poll by name, download.

It knows the wire contract (shared/API.md) and nothing about folders, journals or retries:
it turns every reply, page or network failure into either a result or one exception from
`watcher.errors`, whose type tells the caller what to do next. Where the documentation is
vague the client is tolerant, and where a wrong guess costs money (was the upload received?)
it answers `ConversionCut`, so the caller polls before it ever uploads again.

The bytes travel on urllib3 itself, not through requests' Session: the Session's cookie
jar, hooks and settings merging cost 1.9 ms of CPU per upload + download, half the client's
work and, with several workers, time every other thread waits for (benchmarks/README.md).
requests still reads the environment's proxy rules, as it always did for us.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from requests.utils import get_auth_from_url, get_environ_proxies
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from watcher import __version__
from watcher.config import ApiSettings
from watcher.errors import (
    AccountError,
    ApiError,
    BadDownload,
    ConversionCut,
    CreditError,
    CutBeforeSent,
    EndpointMoved,
    FileRejected,
    NotConnected,
    TransientError,
    UnknownRemoteName,
)
from watcher.filing import written_whole
from watcher.preflight import EOF_SEARCH_BYTES, PDF_MAGIC, is_whole_pdf, open_small_in_memory

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
POLL_TIMEOUT = 30.0
DOWNLOAD_CHUNK = 256 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Polls follow redirects (asking again costs nothing); nothing is retried, and a reply such
# as a 429 with Retry-After comes back to us instead of being waited for inside urllib3.
_FOLLOW_REDIRECTS = urllib3.Retry(
    total=MAX_REDIRECTS,
    connect=0,
    read=0,
    status=0,
    other=0,
    redirect=MAX_REDIRECTS,
    respect_retry_after_header=False,
    raise_on_status=False,
)
ZIP_FORMATS = frozenset({"docx", "xlsx", "pptx"})

# How a failure's `msg` is read (API.md, "our interpretation"): the retcode alone does not
# tell a bad key (documented as 404) from an unknown file name (also a 4xx).
_ACCOUNT_WORDS = re.compile(r"api\s*-?key|apikey|\bkey\b|sign\s*up", re.IGNORECASE)
_CREDIT_WORDS = re.compile(
    r"credit|balance|available pages|not enough pages|insufficient|buy more", re.IGNORECASE
)
_NOT_FOUND_WORDS = re.compile(
    r"not found|does not exist|doesn't exist|no such|unknown file|no upload", re.IGNORECASE
)


@dataclass(frozen=True)
class RemoteJob:
    """What the service needs to know about one conversion, under a name safe to send."""

    remote_name: str
    outformat: str
    lang: str
    ocr: bool


@dataclass(frozen=True)
class ConversionResult:
    link: str
    remote_filename: str
    available_pages: int | None


@dataclass(frozen=True)
class Reply:
    """A reply as far as it could be read: `retcode` is None when it was not the service's JSON."""

    http_status: int
    retcode: str | None
    msg: str
    data: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.retcode == "200"


def remote_name(original_name: str, token: str) -> str:
    """A name the service accepts (letters, digits, hyphens, extension), unique per token.

    The user's own name stays recognisable in the service's logs; the token, which is only
    alphanumeric, makes it unique, since polling after a cut finds the conversion by name.
    """
    stem, dot, suffix = original_name.rpartition(".")
    if not dot:
        stem, suffix = original_name, ""
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_stem).strip("-")[:40].strip("-") or "file"
    extension = re.sub(r"[^a-z0-9]", "", suffix.lower())[:10] or "pdf"
    safe_token = re.sub(r"[^A-Za-z0-9]", "", token)[:32] or secrets.token_hex(5)
    return f"{slug}-{safe_token}.{extension}"


def new_token() -> str:
    return secrets.token_hex(5)


def renamed(name: str) -> str:
    """The same remote name with a new token: a file sent again after the service lost it
    must not be confused with the lost one, should that one turn up late."""
    stem, _, extension = name.rpartition(".")
    slug = stem.rpartition("-")[0] or stem
    return f"{slug}-{new_token()}.{extension}"


def parse_reply(status: int, body: bytes) -> Reply:
    """Reads a reply tolerantly: retcode as string or number, HTML or junk where JSON was due."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Reply(status, None, "", {})
    if not isinstance(document, dict) or "retcode" not in document:
        return Reply(status, None, "", {})
    retcode = document.get("retcode")
    if isinstance(retcode, bool) or not isinstance(retcode, (str, int, float)):
        return Reply(status, None, "", {})
    code = str(int(retcode)) if isinstance(retcode, (int, float)) else retcode.strip()
    msg = document.get("msg")
    data = document.get("data")
    return Reply(
        status,
        code,
        msg.strip()[:500] if isinstance(msg, str) else "",
        data if isinstance(data, dict) else {},
    )


def parse_available_pages(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        digits = value.strip().replace(",", "").replace("_", "")
        if digits.isdigit():
            return int(digits)
    return None


def result_from(reply: Reply) -> ConversionResult | None:
    """The result a success reply carries, or None when it carries no usable link."""
    link = reply.data.get("link")
    if not reply.succeeded or not isinstance(link, str) or not link.strip():
        return None
    filename = reply.data.get("filename")
    return ConversionResult(
        link=link.strip(),
        remote_filename=filename if isinstance(filename, str) else "",
        available_pages=parse_available_pages(reply.data.get("available pages")),
    )


def failure_from(reply: Reply) -> ApiError:
    """The exception a failure reply stands for; the service's own words are kept for the user."""
    msg = reply.msg or f"the service refused the request (retcode {reply.retcode})"
    if _ACCOUNT_WORDS.search(msg):
        return AccountError(msg, retcode=reply.retcode or "")
    if _CREDIT_WORDS.search(msg):
        return CreditError(msg, retcode=reply.retcode or "")
    if _NOT_FOUND_WORDS.search(msg):
        return UnknownRemoteName(msg, retcode=reply.retcode or "")
    return FileRejected(msg, retcode=reply.retcode or "")


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _root_cause(exc: BaseException) -> BaseException:
    """The network failure behind urllib3's wrappers (retries used up, proxy trouble)."""
    for _ in range(10):  # wrappers nest shallowly; the bound only guards against cycles
        if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        elif isinstance(exc, urllib3.exceptions.ProxyError) and exc.original_error:
            exc = exc.original_error
        else:
            break
    return exc


def _never_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached the service (no connection was made).

    urllib3 raises ConnectTimeoutError, or its subclass NewConnectionError (refused, no
    route, unknown name), only before a connection exists."""
    return isinstance(_root_cause(exc), urllib3.exceptions.ConnectTimeoutError)


def describe_network_error(exc: BaseException) -> str:
    """Plain words for a network failure. Never str(exc): it may hold the URL, and so the key."""
    cause = _root_cause(exc)
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return "the service's address could not be looked up (offline?)"
    if isinstance(cause, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    ):
        return "the service did not accept the connection in time"
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        return "the service sent no reply in time"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "the secure connection failed (certificate problem)"
    if isinstance(cause, urllib3.exceptions.ResponseError) and "redirect" in str(cause):
        return "the service redirected in a loop"
    text = repr(cause).lower()
    if "name or service" in text or "getaddrinfo" in text:
        return "the service's address could not be looked up (offline?)"
    if "refused" in text:
        return "the connection was refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "the connection was cut"
    return "the connection failed"


class ConversionService(Protocol):
    """What the runner needs of the service: the seam its unit tests replace (PdfOcrClient
    is the real one). Each call returns a result or raises one of watcher.errors."""

    def upload(
        self, path: Path, job: RemoteJob, content: bytes | None = None
    ) -> ConversionResult: ...

    def submit_url(self, url: str, job: RemoteJob) -> ConversionResult: ...

    def poll(self, job: RemoteJob) -> ConversionResult | None: ...

    def download(self, link: str, dest: Path, outformat: str) -> int: ...


class PdfOcrClient:
    """One client per daemon, shared by its workers: urllib3's pools are thread-safe and
    keep one connection per busy worker open between requests."""

    def __init__(self, settings: ApiSettings):
        self._settings = settings
        self._headers = {"User-Agent": f"pdfocr-watcher/{__version__}"}
        self._max_result_bytes = settings.max_result_mb * 1024 * 1024
        if settings.verify_tls:
            # The bundle requests would use: a TLS-inspecting network's, else certifi's.
            bundle = _ca_bundle_from_environment() or certifi.where()
            where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
            tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", where: bundle}
        else:
            tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
            log.warning(
                "TLS CERTIFICATE CHECKS ARE OFF ([api] verify_tls = false): anyone on the way "
                "to %s can read your documents and your API key. Turn it back on unless you "
                "are debugging a proxy.",
                urlsplit(settings.endpoint).hostname,
            )
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        self._pool_options: dict[str, Any] = {"maxsize": max(4, settings.concurrency), **tls}
        self._direct = urllib3.PoolManager(**self._pool_options)
        # The environment's proxy rules are read once per host, not per request.
        self._routes: dict[tuple[str, str], urllib3.PoolManager] = {}
        self._proxies: dict[str, urllib3.PoolManager] = {}
        endpoint = urlsplit(settings.endpoint)
        self._trusted_hosts = {(endpoint.hostname or "").lower()} | {
            host.lower() for host in settings.download_hosts
        }
        self._endpoint_port = endpoint.port

    def __repr__(self) -> str:
        return f"PdfOcrClient(endpoint={self._settings.endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._settings.endpoint

    def close(self) -> None:
        for manager in (self._direct, *self._proxies.values()):
            manager.clear()

    def _request(
        self,
        method: str,
        url: str,
        *,
        read_timeout: float,
        connect_timeout: float = CONNECT_TIMEOUT,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
        **options: Any,
    ) -> urllib3.BaseHTTPResponse:
        """One request, never retried; urllib3's errors propagate for the caller to word."""
        return self._route(url).request(
            method,
            url,
            headers={**self._headers, **(headers or {})},
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=_FOLLOW_REDIRECTS if follow_redirects else False,
            redirect=follow_redirects,
            preload_content=not stream,
            **options,
        )

    def _route(self, url: str) -> urllib3.PoolManager:
        """Direct, or through the proxy the environment names for this URL's host (none
        when NO_PROXY exempts it), worked out once per host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        route = self._routes.get(key)
        if route is None:
            proxies = get_environ_proxies(url)
            proxy = proxies.get(parts.scheme) or proxies.get("all")
            route = self._routes[key] = self._through(proxy) if proxy else self._direct
        return route

    def _through(self, proxy: str) -> urllib3.PoolManager:
        manager = self._proxies.get(proxy)
        if manager is None:
            manager = self._proxies[proxy] = self._proxy_manager(proxy)
        return manager

    def _proxy_manager(self, proxy: str) -> urllib3.PoolManager:
        """A pool through `proxy` ("host:port" means http), or AccountError in words: a
        proxy the environment names but we cannot use fails every request the same way."""
        url = proxy if "://" in proxy else f"http://{proxy}"
        try:
            scheme = urllib3.util.parse_url(url).scheme or ""
            user, password = get_auth_from_url(url)  # "%40" in a password means "@"
            if scheme.startswith("socks"):
                with warnings.catch_warnings():  # our own words say it, below
                    warnings.simplefilter("ignore", urllib3.exceptions.DependencyWarning)
                    from urllib3.contrib.socks import SOCKSProxyManager
                return SOCKSProxyManager(
                    url, username=user or None, password=password or None, **self._pool_options
                )
            credentials = f"{user}:{password}" if user or password else None
            return urllib3.ProxyManager(
                url,
                proxy_headers=urllib3.make_headers(proxy_basic_auth=credentials),
                **self._pool_options,
            )
        except (ImportError, ValueError, urllib3.exceptions.HTTPError):
            raise AccountError(
                f"the proxy {_describe_link(url)} named in this computer's settings "
                "(HTTP_PROXY, HTTPS_PROXY or ALL_PROXY) cannot be used: a SOCKS proxy needs "
                "the PySocks package, other kinds must be http:// or https://. Install "
                "PySocks, or change the proxy setting, then restart pdfocr-watcher."
            ) from None

    def _fields(self, job: RemoteJob) -> dict[str, str]:
        return {
            "apikey": self._settings.key,
            "lang": job.lang,
            "outformat": job.outformat,
            "ocr": "1" if job.ocr else "0",
            "filename": job.remote_name,
        }

    def upload(self, path: Path, job: RemoteJob, content: bytes | None = None) -> ConversionResult:
        """Sends the file (or `content`, its bytes as already read) and returns the result,
        or raises. A big file is streamed (never read whole); a small one is read at once,
        because the encoder asks a real file for its size and position some twenty times.

        A streaming body can be sent only once, so every call builds its own encoder.
        """
        with contextlib.ExitStack() as stack:
            if content is None:
                source, _, _ = stack.enter_context(open_small_in_memory(path))
            else:
                source = io.BytesIO(content)
            encoder = MultipartEncoder(
                fields={
                    **self._fields(job),
                    "file": (job.remote_name, source, "application/octet-stream"),
                }
            )
            monitor = MultipartEncoderMonitor(encoder)
            try:
                response = self._request(
                    "POST",
                    self._settings.endpoint,
                    body=monitor,
                    # A length, or urllib3 would send the stream chunked.
                    headers={
                        "Content-Type": monitor.content_type,
                        "Content-Length": str(monitor.len),
                    },
                    read_timeout=self._settings.request_timeout,
                )
            except urllib3.exceptions.HTTPError as exc:
                raise self._lost_reply(exc, sent_whole=monitor.bytes_read >= monitor.len) from None
        return self._submission_result(response)

    def submit_url(self, url: str, job: RemoteJob) -> ConversionResult:
        """Asks the service to fetch `url` itself (GET); same outcomes as `upload`."""
        try:
            response = self._request(
                "GET",
                self._settings.endpoint,
                fields={**self._fields(job), "url": url},
                read_timeout=self._settings.request_timeout,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._lost_reply(exc, sent_whole=True) from None
        return self._submission_result(response)

    def poll(self, job: RemoteJob) -> ConversionResult | None:
        """The result if ready, None if not (yet), or an exception the caller must act on.

        Per API.md everything that is neither a result nor a clear refusal means "not ready":
        a 524 page, an in-progress reply, a page from the CDN.
        """
        try:
            response = self._request(
                "GET",
                self._settings.endpoint,
                fields={
                    "apikey": self._settings.key,
                    "filename": job.remote_name,
                    "outformat": job.outformat,
                },
                read_timeout=POLL_TIMEOUT,
                follow_redirects=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(describe_network_error(exc)) from None
        if response.status == 429:
            raise _rate_limited(response)
        reply = parse_reply(response.status, response.data)
        result = result_from(reply)
        if result or reply.retcode is None or reply.succeeded:
            return result
        failure = failure_from(reply)
        if isinstance(failure, (AccountError, UnknownRemoteName)):
            raise failure
        return None

    def reach(self, url: str, connect_timeout: float, read_timeout: float) -> int:
        """The HTTP status a plain GET of `url` gets (the way the daemon connects: same
        proxy and certificates); TransientError in plain words when nothing answers."""
        try:
            response = self._request(
                "GET",
                url,
                read_timeout=read_timeout,
                connect_timeout=connect_timeout,
                stream=True,
                follow_redirects=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(describe_network_error(exc)) from None
        _let_go(response, whole=False)
        return response.status

    def _lost_reply(self, exc: urllib3.exceptions.HTTPError, *, sent_whole: bool) -> ApiError:
        """What a submission's network failure means for the money: sure it never arrived
        (NotConnected, CutBeforeSent), or it may have (ConversionCut: poll, never resend)."""
        reason = describe_network_error(exc)
        if _never_sent(exc):
            return NotConnected(f"{reason}; nothing was sent")
        if sent_whole:
            return ConversionCut(f"{reason} after the file was sent")
        return CutBeforeSent(f"{reason} before the file was sent")

    def _submission_result(self, response: urllib3.BaseHTTPResponse) -> ConversionResult:
        if response.status == 429:
            raise _rate_limited(response)
        if response.status in REDIRECT_STATUSES:
            # Not followed: a submission is paid, and a moved address needs the user's rules
            # file changed, not a second submission somewhere else.
            raise EndpointMoved(
                f"the service's address {_describe_link(self._settings.endpoint)} sends "
                f"uploads elsewhere ({_describe_link(response.headers.get('location', ''))});"
                " check [api] endpoint in the rules file"
            )
        reply = parse_reply(response.status, response.data)
        if reply.retcode is None:
            if response.status == 413:
                raise FileRejected("the file is larger than the service accepts")
            raise ConversionCut(
                f"the service's front end answered HTTP {response.status} instead of a result"
            )
        result = result_from(reply)
        if result:
            return result
        if reply.succeeded:
            raise ConversionCut("the service reported success but sent no download link")
        if reply.retcode.isdigit() and int(reply.retcode) >= 500:
            raise ConversionCut(f"the service reported trouble (retcode {reply.retcode})")
        failure = failure_from(reply)
        if isinstance(failure, UnknownRemoteName):
            # "not found" in reply to an upload speaks of the file, not of a poll.
            raise FileRejected(failure.message, retcode=failure.retcode)
        raise failure

    def is_trusted_link(self, url: str) -> bool:
        """Results come only from the endpoint's host (or the configured extra hosts)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.username or parts.password:
            return False
        if (parts.hostname or "").lower() not in self._trusted_hosts:
            return False
        return port is None or port == self._endpoint_port

    def download(self, link: str, dest: Path, outformat: str) -> int:
        """Fetches the result to `dest` through a temporary file and an atomic rename.

        A body shorter than announced, larger than the cap, or not a valid file of the
        expected format never reaches `dest`. Returns the number of bytes written.
        """
        response = self._open_download(link)
        whole = False
        try:
            with written_whole(dest) as out:
                written, head, tail = self._stream_to(response, out)
                whole = True
                out.flush()  # the format check reads it by name
                _check_result(Path(out.name), outformat, head, tail)
        finally:
            _let_go(response, whole=whole)
        return written

    def _open_download(self, link: str) -> urllib3.BaseHTTPResponse:
        """The result's response, its body not yet read; redirects are followed here, one
        by one, because each must lead to a trusted host."""
        url = link
        for _ in range(MAX_REDIRECTS + 1):
            if not self.is_trusted_link(url):
                raise FileRejected(
                    "the service sent a download link to an unexpected place "
                    f"({_describe_link(url)}); it was not followed"
                )
            try:
                response = self._request(
                    "GET", url, stream=True, read_timeout=self._settings.request_timeout
                )
            except urllib3.exceptions.HTTPError as exc:
                reason = describe_network_error(exc)
                raise BadDownload(f"downloading the result failed: {reason}") from None
            if response.status == 200:
                return response
            _let_go(response, whole=False)
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location:
                raise BadDownload(f"downloading the result failed: HTTP {response.status}")
            url = urljoin(url, location)
        raise BadDownload("downloading the result failed: the service redirected in a loop")

    def _stream_to(
        self, response: urllib3.BaseHTTPResponse, out: IO[bytes]
    ) -> tuple[int, bytes, bytes]:
        """Writes the body to `out`; returns its size and its first and last bytes, so that
        the format check need not read the file again."""
        announced = response.headers.get("content-length", "")
        expected = int(announced) if announced.isdigit() else None
        limit = self._max_result_bytes
        if expected is not None and expected > limit:
            raise FileRejected(f"the result is larger ({expected:,} bytes) than the cap")
        written = 0
        head = tail = b""
        try:
            for chunk in response.stream(DOWNLOAD_CHUNK, decode_content=True):
                written += len(chunk)
                if written > limit:
                    raise FileRejected(f"the result is larger than the cap ({limit:,} bytes)")
                out.write(chunk)
                if len(head) < len(PDF_MAGIC):
                    head += chunk[: len(PDF_MAGIC) - len(head)]
                tail = (tail + chunk[-EOF_SEARCH_BYTES:])[-EOF_SEARCH_BYTES:]
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                raise
            raise BadDownload("the download was cut before the end") from None
        if expected is not None and written != expected:
            raise BadDownload(f"the download was cut: {written:,} of {expected:,} bytes arrived")
        return written, head, tail


def _let_go(response: urllib3.BaseHTTPResponse, *, whole: bool) -> None:
    """Gives the connection back to the pool: as it is when the body was read to the end,
    closed first when it was not (unread bytes would garble the next reply on it)."""
    if not whole:
        response.close()
    response.release_conn()


def _ca_bundle_from_environment() -> str | None:
    """The certificate bundle a TLS-inspecting network asks for, as requests would read it."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _rate_limited(response: urllib3.BaseHTTPResponse) -> TransientError:
    return TransientError(
        "the service asked us to slow down (HTTP 429)",
        retcode="429",
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


def _describe_link(url: str) -> str:
    """Enough of a link to tell the user where it pointed, without echoing it whole."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme or '?'}://{parts.hostname or '?'}"
    except ValueError:
        return "an unreadable address"


def _check_result(path: Path, outformat: str, head: bytes, tail: bytes) -> None:
    """A result that is not a whole file of its format was damaged on the way."""
    if outformat in ZIP_FORMATS:
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    raise BadDownload(f"the {outformat} result arrived damaged")
        except (zipfile.BadZipFile, OSError, EOFError):
            raise BadDownload(f"the {outformat} result arrived damaged") from None
    elif outformat == "pdf" and not is_whole_pdf(head, tail):
        raise BadDownload("the pdf result arrived damaged")
