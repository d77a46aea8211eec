"""The pdfocr.org client: upload, submit by URL, poll by name, download.

It knows the wire contract (shared/API.md) and nothing about folders, journals or retries:
it turns every reply, page or network failure into either a result or one exception from
`watcher.errors`, whose type tells the caller what to do next. Where the documentation is
vague the client is tolerant, and where a wrong guess costs money (was the upload received?)
it answers `ConversionCut`, so the caller polls before it ever uploads again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import unicodedata
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from watcher import __version__
from watcher.config import ApiSettings
from watcher.errors import (
    AccountError,
    ApiError,
    BadDownload,
    ConversionCut,
    CreditError,
    FileRejected,
    TransientError,
    UnknownRemoteName,
)
from watcher.preflight import pdf_looks_complete

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
POLL_TIMEOUT = 30.0
DOWNLOAD_CHUNK = 256 * 1024
MAX_REDIRECTS = 5
ZIP_FORMATS = frozenset({"docx", "xlsx", "pptx"})
# Downloads in progress are hidden files beside their destination; a start-up sweep removes
# those a killed process left behind.
DOWNLOAD_TEMP_PREFIX = ".pdfocr-download-"

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


def _never_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached the service (no connection was made)."""
    never_connected = (
        requests.ConnectTimeout,
        urllib3.exceptions.NewConnectionError,
        urllib3.exceptions.NameResolutionError,
        urllib3.exceptions.ConnectTimeoutError,
    )
    seen: BaseException | None = exc
    for _ in range(10):  # causes form a short chain; the bound only guards against cycles
        if seen is None:
            return False
        if isinstance(seen, never_connected):
            return True
        if isinstance(seen, urllib3.exceptions.MaxRetryError) and seen.reason is not None:
            seen = seen.reason
        elif seen.args and isinstance(seen.args[0], BaseException):
            seen = seen.args[0]
        else:
            seen = seen.__cause__ or seen.__context__
    return False


def describe_network_error(exc: requests.RequestException) -> str:
    """Plain words for a network failure. Never str(exc): it may hold the URL, and so the key."""
    if isinstance(exc, requests.ConnectTimeout):
        return "the service did not accept the connection in time"
    if isinstance(exc, requests.ReadTimeout):
        return "the service sent no reply in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the secure connection failed (certificate problem)"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "the service redirected in a loop"
    text = repr(exc).lower()
    if "nameresolution" in text or "name or service" in text or "getaddrinfo" in text:
        return "the service's address could not be looked up (offline?)"
    if "refused" in text:
        return "the connection was refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "the connection was cut"
    return "the connection failed"


class PdfOcrClient:
    """One client per daemon; thread-safe as far as requests' Session is (one per thread is
    not needed for our call pattern: each call is independent and the pool is shared)."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        session: requests.Session | None = None,
    ):
        self._settings = settings
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"pdfocr-watcher/{__version__}"
        self._max_result_bytes = settings.max_result_mb * 1024 * 1024
        # The environment's proxy and certificate settings are read once, here: requests
        # would otherwise scan the whole environment (twice) for every request it makes.
        self._session.trust_env = False
        self._session.verify = settings.verify_tls and (_ca_bundle_from_environment() or True)
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        if not settings.verify_tls:
            log.warning(
                "TLS CERTIFICATE CHECKS ARE OFF ([api] verify_tls = false): anyone on the way "
                "to %s can read your documents and your API key. Turn it back on unless you "
                "are debugging a proxy.",
                urlsplit(settings.endpoint).hostname,
            )
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
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
        self._session.close()

    def _request(self, method: str, url: str, **options: Any) -> requests.Response:
        return self._session.request(method, url, proxies=self._proxies_for(url), **options)

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The proxies the environment names for this URL's host (none when NO_PROXY
        exempts it), worked out once per host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        proxies = self._proxies.get(key)
        if proxies is None:
            proxies = self._proxies[key] = requests.utils.get_environ_proxies(url)
        return proxies

    def _fields(self, job: RemoteJob) -> dict[str, str]:
        return {
            "apikey": self._settings.key,
            "lang": job.lang,
            "outformat": job.outformat,
            "ocr": "1" if job.ocr else "0",
            "filename": job.remote_name,
        }

    def upload(
        self,
        path: Path,
        job: RemoteJob,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ConversionResult:
        """Streams the file (never read whole) and returns the result, or raises.

        A streaming body can be sent only once, so every call builds its own encoder.
        """
        with path.open("rb") as handle:
            encoder = MultipartEncoder(
                fields={
                    **self._fields(job),
                    "file": (job.remote_name, handle, "application/octet-stream"),
                }
            )
            monitor = MultipartEncoderMonitor(
                encoder,
                (lambda m: on_progress(m.bytes_read, m.len)) if on_progress else None,
            )
            try:
                response = self._request(
                    "POST",
                    self._settings.endpoint,
                    data=monitor,
                    headers={"Content-Type": monitor.content_type},
                    timeout=(CONNECT_TIMEOUT, self._settings.request_timeout),
                )
            except requests.RequestException as exc:
                sent_whole = monitor.bytes_read >= monitor.len and not _never_sent(exc)
                raise self._lost_reply(exc, sent_whole=sent_whole) from None
        return self._submission_result(response)

    def submit_url(self, url: str, job: RemoteJob) -> ConversionResult:
        """Asks the service to fetch `url` itself (GET); same outcomes as `upload`."""
        try:
            response = self._request(
                "GET",
                self._settings.endpoint,
                params={**self._fields(job), "url": url},
                timeout=(CONNECT_TIMEOUT, self._settings.request_timeout),
            )
        except requests.RequestException as exc:
            raise self._lost_reply(exc, sent_whole=not _never_sent(exc)) from None
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
                params={
                    "apikey": self._settings.key,
                    "filename": job.remote_name,
                    "outformat": job.outformat,
                },
                timeout=(CONNECT_TIMEOUT, POLL_TIMEOUT),
            )
        except requests.RequestException as exc:
            raise TransientError(describe_network_error(exc)) from None
        if response.status_code == 429:
            raise _rate_limited(response)
        reply = parse_reply(response.status_code, response.content)
        result = result_from(reply)
        if result or reply.retcode is None or reply.succeeded:
            return result
        failure = failure_from(reply)
        if isinstance(failure, (AccountError, UnknownRemoteName)):
            raise failure
        return None

    def _lost_reply(self, exc: requests.RequestException, *, sent_whole: bool) -> ApiError:
        reason = describe_network_error(exc)
        if sent_whole:
            return ConversionCut(f"{reason} after the file was sent")
        return TransientError(f"{reason} before the file was sent")

    def _submission_result(self, response: requests.Response) -> ConversionResult:
        if response.status_code == 429:
            raise _rate_limited(response)
        reply = parse_reply(response.status_code, response.content)
        if reply.retcode is None:
            if response.status_code == 413:
                raise FileRejected("the file is larger than the service accepts")
            raise ConversionCut(
                f"the service's front end answered HTTP {response.status_code} instead of a result"
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
        temp = dest.with_name(f"{DOWNLOAD_TEMP_PREFIX}{new_token()}.part")
        try:
            written = self._stream_to(response, temp)
            _check_result(temp, outformat)
            os.replace(temp, dest)
        finally:
            response.close()
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return written

    def _open_download(self, link: str) -> requests.Response:
        url = link
        for _ in range(MAX_REDIRECTS + 1):
            if not self.is_trusted_link(url):
                raise FileRejected(
                    "the service sent a download link to an unexpected place "
                    f"({_describe_link(url)}); it was not followed"
                )
            try:
                response = self._request(
                    "GET",
                    url,
                    stream=True,
                    allow_redirects=False,
                    timeout=(CONNECT_TIMEOUT, self._settings.request_timeout),
                )
            except requests.RequestException as exc:
                reason = describe_network_error(exc)
                raise BadDownload(f"downloading the result failed: {reason}") from None
            if not response.is_redirect:
                if response.status_code != 200:
                    response.close()
                    raise BadDownload(f"downloading the result failed: HTTP {response.status_code}")
                return response
            url = urljoin(url, response.headers.get("location", ""))
            response.close()
        raise BadDownload("downloading the result failed: the service redirected in a loop")

    def _stream_to(self, response: requests.Response, temp: Path) -> int:
        announced = response.headers.get("content-length", "")
        expected = int(announced) if announced.isdigit() else None
        limit = self._max_result_bytes
        if expected is not None and expected > limit:
            raise FileRejected(f"the result is larger ({expected:,} bytes) than the cap")
        written = 0
        try:
            with temp.open("wb") as out:
                for chunk in response.raw.stream(DOWNLOAD_CHUNK, decode_content=True):
                    written += len(chunk)
                    if written > limit:
                        raise FileRejected(f"the result is larger than the cap ({limit:,} bytes)")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                raise
            raise BadDownload("the download was cut before the end") from None
        if expected is not None and written != expected:
            raise BadDownload(f"the download was cut: {written:,} of {expected:,} bytes arrived")
        return written


def _ca_bundle_from_environment() -> str | None:
    """The certificate bundle a TLS-inspecting network asks for, as requests would read it."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _rate_limited(response: requests.Response) -> TransientError:
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


def _check_result(path: Path, outformat: str) -> None:
    """A result that is not a whole file of its format was damaged on the way."""
    if outformat in ZIP_FORMATS:
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    raise BadDownload(f"the {outformat} result arrived damaged")
        except (zipfile.BadZipFile, OSError, EOFError):
            raise BadDownload(f"the {outformat} result arrived damaged") from None
    elif outformat == "pdf" and not pdf_looks_complete(path):
        raise BadDownload("the pdf result arrived damaged")
