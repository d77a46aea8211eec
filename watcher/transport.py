"""How the API client's requests travel: the seam between the wire contract and the wire.

The client (watcher.api) decides what to ask and what an answer means; a `Transport` only
carries one request and hands back status, headers and the body. That split lets tests give
the real client an in-memory transport (watcher.sandbox.memory) and so run the runner's money
paths without a socket, while the daemon uses `PoolTransport`.

`PoolTransport` carries the bytes on urllib3 itself, not through requests' Session: the
Session's cookie jar, hooks and settings merging cost 1.9 ms of CPU per upload + download,
half the client's work and, with several workers, time every other thread waits for
(benchmarks/README.md). requests still reads the environment's proxy rules, as it always did.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import certifi
import urllib3
from requests.utils import get_auth_from_url, get_environ_proxies

from watcher.errors import AccountError

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
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


class TransportError(Exception):
    """A request that got no (whole) answer. `reason` is in plain words and never holds the
    URL (it may hold the key); `connected` is False only when no connection was ever made,
    so nothing of the request can have reached the service."""

    def __init__(self, reason: str, *, connected: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.connected = connected


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


class Response(Protocol):
    """An answer whose body has not been read yet; `headers` looks names up in any case."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def read(self) -> bytes:
        """The whole body (then the connection is free again), or TransportError."""
        ...

    def stream(self, chunk_size: int) -> Iterator[bytes]:
        """The body piece by piece; TransportError when it is cut."""
        ...

    def close(self, *, whole: bool) -> None:
        """Done with it: `whole` when the body was read to its end."""
        ...


class Transport(Protocol):
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
        """Sends one request, never retried; TransportError when no answer came."""
        ...

    def close(self) -> None: ...


class _PoolResponse:
    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    def read(self) -> bytes:
        try:
            data = self._response.read(decode_content=True)
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            self.close(whole=False)
            raise TransportError(describe_network_error(exc)) from None
        self._response.release_conn()
        return data

    def stream(self, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from self._response.stream(chunk_size, decode_content=True)
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise TransportError(describe_network_error(exc)) from None

    def close(self, *, whole: bool) -> None:
        """Gives the connection back to the pool: as it is when the body was read to the end,
        closed first when it was not (unread bytes would garble the next reply on it)."""
        if not whole:
            self._response.close()
        self._response.release_conn()


class PoolTransport:
    """urllib3's pools, direct or through the environment's proxy, one per daemon and shared
    by its workers: the pools are thread-safe and keep one connection per busy worker open."""

    def __init__(self, *, verify_tls: bool = True, pool_size: int = 4):
        if verify_tls:
            # The bundle requests would use: a TLS-inspecting network's, else certifi's.
            bundle = _ca_bundle_from_environment() or certifi.where()
            where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
            tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", where: bundle}
        else:
            tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        self._pool_options: dict[str, Any] = {"maxsize": max(4, pool_size), **tls}
        self._direct = urllib3.PoolManager(**self._pool_options)
        # The environment's proxy rules are read once per host, not per request.
        self._routes: dict[tuple[str, str], urllib3.PoolManager] = {}
        self._proxies: dict[str, urllib3.PoolManager] = {}

    def close(self) -> None:
        for manager in (self._direct, *self._proxies.values()):
            manager.clear()

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
        try:
            response = self._route(url).request(
                method,
                url,
                headers=dict(headers),
                body=body,
                timeout=urllib3.Timeout(connect=timeout.connect, read=timeout.read),
                retries=_FOLLOW_REDIRECTS if follow_redirects else False,
                redirect=follow_redirects,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(
                describe_network_error(exc), connected=not _never_sent(exc)
            ) from None
        return _PoolResponse(response)

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
                f"the proxy {describe_link(url)} named in this computer's settings "
                "(HTTP_PROXY, HTTPS_PROXY or ALL_PROXY) cannot be used: a SOCKS proxy needs "
                "the PySocks package, other kinds must be http:// or https://. Install "
                "PySocks, or change the proxy setting, then restart pdfocr-watcher."
            ) from None


def describe_link(url: str) -> str:
    """Enough of a link to tell the user where it pointed, without echoing it whole."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme or '?'}://{parts.hostname or '?'}"
    except ValueError:
        return "an unreadable address"


def _ca_bundle_from_environment() -> str | None:
    """The certificate bundle a TLS-inspecting network asks for, as requests would read it."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


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
