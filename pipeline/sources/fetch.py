"""URL + stored validators -> Fetched bytes, politely and within bounds (the only httpx user).

A few small AsyncClients per run (httpx spends CPU per request in proportion to its
pool's size: one pool of 50 connections cost several times the CPU of five pools of
10). Limits: a global concurrency cap, a per-host cap with a delay between request starts, connect/read/total timeouts, a cap on the body that
also holds after decompression (we decode gzip/deflate ourselves, bounded), and a
redirect limit with every hop checked. Transient failures are retried with
exponential backoff; 429/503 honour Retry-After when it is short enough to wait.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import errno
import importlib.util
import logging
import re
import select
import socket
import ssl
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from pipeline.errors import FetchError
from pipeline.models import Fetched
from pipeline.settings.config import Network
from pipeline.sources.netpolicy import address_problem, host_problem, parse_ip

logger = logging.getLogger(__name__)

# httpcore asks which async library runs by importing sniffio on every request, and
# anyio 4 no longer installs it: each failed import searches the whole sys.path (about
# a third of httpx's CPU per request here). Without sniffio httpcore assumes asyncio,
# which is what veille runs; a None entry makes the failed import immediate.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


def _readable(sock: socket.socket) -> bool:
    """Data or end of stream waiting on an idle connection (the server closed it)."""
    if sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


ACCEPT_FEEDS = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
READ_CHUNK = 64 * 1024
SHARD_CONNECTIONS = 10  # connections per client: httpx's per-request cost grows with its pool
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Returns a reason to refuse the URL, or None to allow it. Called on every redirect hop.
UrlPolicy = Callable[[str], str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class HopRefused:
    """Why a redirect target may not be followed: ``reason`` for the message, ``kind`` for
    the FetchError (robots: robots.txt disallows the target; refused: anything else)."""

    reason: str
    kind: str = "refused"


# The same, asynchronous, given per request (robots.txt for article pages).
HopCheck = Callable[[str], Awaitable[HopRefused | None]]


class Fetches(Protocol):
    """What the pass fetches with: a Fetcher, or a fetchpool.FetchPool (the same
    requests in processes of their own)."""

    network: Network
    bytes_received: int

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        trusted: bool = False,
        accept: str | None = None,
        max_bytes: int | None = None,
        hop_check: HopCheck | None = None,
    ) -> Fetched: ...

    def slow_down(self, url: str, delay: float) -> None: ...


def _http_date(value: str) -> datetime | None:
    """An HTTP-date (RFC 9110 5.6.7) as an aware datetime; None when it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    when = _http_date(value)
    if when is None:
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


# A cache hint longer than this many digits is "forever": capped by next_check anyway, and
# int() refuses strings of more than 4300 digits
_MAX_DELTA_DIGITS = 12


def _delta_seconds(value: str | None) -> int | None:
    """An RFC 9111 delta-seconds (a non-negative integer), or None when it is not one."""
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]  # max-age="600": the quoted form, tolerated (RFC 9111 5.2)
    if not value.isascii() or not value.isdigit():
        return None
    return int(value) if len(value) <= _MAX_DELTA_DIGITS else 10**_MAX_DELTA_DIGITS


def _directives(lines: list[str]) -> dict[str, list[str | None]]:
    """Cache-Control field lines -> directive name -> its values (None: no argument), in order.
    Commas inside a quoted argument do not split."""
    found: dict[str, list[str | None]] = {}
    for line in lines:
        for part in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', line):
            name, equals, value = part.partition("=")
            name = name.strip().lower()
            if name:
                found.setdefault(name, []).append(value.strip() if equals else None)
    return found


def freshness(
    *,
    cache_control: list[str],
    expires: list[str],
    date: list[str],
    age: list[str],
    now: datetime | None = None,
) -> float | None:
    """How many more seconds a response stays fresh for a private cache, from its
    Cache-Control, Expires, Date and Age field lines (RFC 9111 4.2); None: no usable hint.

    max-age wins over Expires; Expires counts from the response's Date (the server's own
    clock) when it has a valid one; Age is subtracted. s-maxage is for shared caches: not
    us. ``no-cache`` (unqualified) and ``no-store`` say nothing may be reused: no hint.
    Conflicting repeats, invalid values and dates are no hint, never an error (RFC 9111
    4.2.1: "consider responses that have invalid freshness information to be stale").
    """
    directives = _directives(cache_control)
    if None in directives.get("no-cache", ()) or "no-store" in directives:
        return None
    if "max-age" in directives:
        values = set(directives["max-age"])
        lifetime = _delta_seconds(values.pop()) if len(values) == 1 else None
        if lifetime is None:
            return None
        remaining = float(lifetime)
    elif expires:
        if len(set(expires)) != 1:
            return None
        until = _http_date(expires[0])
        if until is None:
            return None  # an invalid Expires ("0", "-1") means already expired
        dated = _http_date(date[0]) if len(set(date)) == 1 else None
        remaining = (until - (dated or now or datetime.now(UTC))).total_seconds()
    else:
        return None
    ages = set(age)
    current_age = _delta_seconds(ages.pop()) if len(ages) == 1 else None
    remaining -= current_age or 0
    return remaining if remaining > 0 else None


def _freshness_of(response: httpx.Response) -> float | None:
    headers = response.headers
    return freshness(
        cache_control=headers.get_list("cache-control"),
        expires=headers.get_list("expires"),
        date=headers.get_list("date"),
        age=headers.get_list("age"),
    )


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def scheme_policy(url: str) -> str | None:
    """The minimum policy for followed URLs: http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"refused to follow a {parts.scheme or 'scheme-less'} URL"
    if not parts.hostname:
        return "refused to follow a URL without a host"
    return None


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's anyio stream with the raw socket looked up once.

    httpcore asks every idle connection of a pool whether it is readable before each
    request it places; anyio rebuilds a table of socket attributes (and calls
    getpeername) on every such question. Same answers, a fraction of the CPU.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "socket" and self._socket is not None:
            return self._socket
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AnyIOBackend):
    """httpcore's anyio backend, its streams wrapped in _Stream."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(
            await super().connect_tcp(
                host,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        )


class AddressRefused(httpcore.ConnectError):
    """A connection refused by the address policy (raised inside httpcore, found in the chain)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves host names itself and connects only to public addresses.

    The check happens at connect time on every address the name resolves to, so it
    holds on every redirect hop and against DNS answers that change between a check
    and the connection. The connection goes to the address that was checked; TLS
    still verifies the certificate against the host name (httpcore passes the
    origin's name for SNI).
    """

    def __init__(self) -> None:
        self._inner = _Backend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        problem = host_problem(host)
        if problem:
            raise AddressRefused(f"refused to connect: {problem}")
        if parse_ip(host) is not None:
            targets = [host]
        else:
            targets = await self._resolve_public(host, port, timeout)
        failure: Exception | None = None
        for target in targets:  # every address was checked: try each in turn (IPv6, then IPv4 ...)
            try:
                return await self._inner.connect_tcp(
                    target,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _resolve_public(self, host: str, port: int, timeout: float | None) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        for text in addresses:
            address = parse_ip(text)
            problem = (
                address_problem(address) if address is not None else f"{text} is not an address"
            )
            if problem:
                raise AddressRefused(f"refused to connect: {host} resolves to {problem}")
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        return list(dict.fromkeys(addresses))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("refused to connect: unix sockets are never used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _FramedConnection(httpcore.AsyncConnectionInterface):
    """A pooled connection that is never reused once a response has overrun its framing.

    h11 keeps whatever the server sent after the end of a response (its Content-Length,
    or its last chunk) and would read it as the answer to the next request on the same
    connection: a feed could hide a second response there and have it taken for
    another source's feed or sitemap. httpcore already drops an idle connection whose
    socket has more to read; this also drops one whose parser holds unread bytes.
    """

    def __init__(self, inner: httpcore.AsyncConnectionInterface) -> None:
        self._inner = inner
        self._reported = False

    def _overrun(self) -> bool:
        # httpcore's HTTP/1.1 connection and its h11 state are private: read defensively;
        # tests/test_faults.py fails if a new httpcore hides them from this check
        http11 = getattr(self._inner, "_connection", None)
        state = getattr(http11, "_h11_state", None)
        trailing = getattr(state, "trailing_data", (b"", False))
        if trailing[0] and not self._reported:
            self._reported = True
            logger.info(
                "closing a connection (%s): %d bytes after the end of a response",
                self._inner.info(),
                len(trailing[0]),
            )
        return bool(trailing[0])

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def info(self) -> str:
        return self._inner.info()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._inner.can_handle_request(origin)

    def is_available(self) -> bool:
        return self._inner.is_available() and not self._overrun()

    def has_expired(self) -> bool:
        return self._overrun() or self._inner.has_expired()

    def is_idle(self) -> bool:
        return self._inner.is_idle()

    def is_closed(self) -> bool:
        return self._inner.is_closed()


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool, each connection wrapped in _FramedConnection."""

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return _FramedConnection(super().create_connection(origin))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool with our network backend (GuardedBackend
    for everything not written by the operator, _Backend for the rest) and connections
    that are closed rather than reused when a response overruns its framing."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx builds its pool without a way to pass a network backend: build the same
        # pool (public httpcore API) with ours. Tests prove the guard is in the path.
        self._pool = _Pool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class _Decoder:
    """Content-Encoding decoder that never produces more than ``limit`` bytes."""

    def __init__(self, encoding: str, *, limit: int, url: str) -> None:
        self.url = url
        self.limit = limit
        self.out = bytearray()
        encoding = encoding.strip().lower()
        self._zlib: zlib._Decompress | None = None
        self._deflate_first = b""
        if encoding in ("", "identity", "none"):
            self.kind = "identity"
        elif encoding in ("gzip", "x-gzip"):
            self.kind = "gzip"
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.kind = "deflate"  # zlib-wrapped per the RFC, raw deflate in practice: sniff below
        else:
            raise FetchError(
                f"unsupported Content-Encoding {encoding!r} (veille asks for gzip or deflate)",
                url=url,
                kind="encoding",
            )

    def _too_large(self) -> FetchError:
        return FetchError(
            f"body larger than {self.limit:,} bytes after decompression",
            url=self.url,
            kind="too-large",
        )

    def feed(self, chunk: bytes) -> None:
        if self.kind == "identity":
            self.out += chunk
            if len(self.out) > self.limit:
                raise self._too_large()
            return
        if self._zlib is None:  # first deflate bytes: zlib header or raw stream?
            wbits = zlib.MAX_WBITS if chunk[:1] and (chunk[0] & 0x0F) == 8 else -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(wbits)
        data = chunk
        try:
            while data:
                # max_length bounds memory: a 10 KB gzip bomb cannot expand past the limit
                self.out += self._zlib.decompress(data, self.limit - len(self.out) + 1)
                if len(self.out) > self.limit:
                    raise self._too_large()
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(
                f"corrupt {self.kind} body: {exc}", url=self.url, kind="encoding"
            ) from None

    def finish(self) -> bytes:
        if self._zlib is not None:
            try:
                self.out += self._zlib.flush()
            except zlib.error as exc:
                raise FetchError(
                    f"corrupt {self.kind} body: {exc}", url=self.url, kind="encoding"
                ) from None
            if not self._zlib.eof:
                raise FetchError(
                    f"{self.kind} body is truncated (the stream ends before its end marker)",
                    url=self.url,
                    kind="encoding",
                )
            if len(self.out) > self.limit:
                raise self._too_large()
        return bytes(self.out)


@dataclass
class _Host:
    semaphore: asyncio.Semaphore
    delay: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_start: float = 0.0


class Fetcher:
    """One per run: ``async with Fetcher(network) as f: await f.fetch(url, etag=...)``.

    Two sets of connection pools: URLs the operator wrote in sources.yaml are fetched
    as they are (``trusted=True``, first hop only); everything else, every redirect hop
    included, goes through pools whose connections are guarded by GuardedBackend,
    unless ``network.allow_private`` is set. Keeping the sets apart means a
    keep-alive connection opened for a trusted URL is never reused for a hostile one.
    Each set is a few small clients (SHARD_CONNECTIONS each), an origin always served
    by the same one.
    """

    def __init__(
        self,
        network: Network,
        *,
        policy: UrlPolicy = scheme_policy,
    ) -> None:
        self.network = network
        self.policy = policy
        self._global = asyncio.Semaphore(network.concurrency)
        self._hosts: dict[str, _Host] = {}
        self._shard_of: dict[str, int] = {}  # origin -> index of the client that serves it
        self.bytes_received = 0
        # Each origin is served by one small client (its keep-alive connections stay
        # together), origins dealt to the clients in turn. A client holds at least the
        # per-host cap, so one busy host never waits on its own client's pool.
        shards = max(1, -(-network.concurrency // SHARD_CONNECTIONS))
        size = max(-(-network.concurrency // shards), network.per_host_concurrency)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        common: dict[str, Any] = {
            "timeout": httpx.Timeout(
                connect=network.connect_timeout,
                read=network.read_timeout,
                write=network.read_timeout,
                pool=network.total_timeout,
            ),
            "limits": limits,
            "headers": {
                "User-Agent": network.agent,
                "Accept": ACCEPT_FEEDS,
                "Accept-Encoding": "gzip, deflate",
            },
            "follow_redirects": False,  # every hop is checked by _request
            "trust_env": False,  # no proxy or netrc picked up behind the operator's back
        }
        self._trusted = [
            httpx.AsyncClient(**common, transport=GuardedTransport(_Backend(), limits=limits))
            for _ in range(shards)
        ]
        if network.allow_private:
            self._guarded = self._trusted
        else:
            backend = GuardedBackend()
            self._guarded = [
                httpx.AsyncClient(**common, transport=GuardedTransport(backend, limits=limits))
                for _ in range(shards)
            ]

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients = self._trusted + ([] if self._guarded is self._trusted else self._guarded)
        for client in clients:
            await client.aclose()

    def _client(self, url: str, *, trusted: bool) -> httpx.AsyncClient:
        """The client for ``url``'s origin, from the trusted or the guarded set.

        The two sets never share a connection: a keep-alive connection opened for a
        trusted URL is never reused for a hostile one.
        """
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        shard = self._shard_of.get(origin)
        if shard is None:
            shard = self._shard_of[origin] = len(self._shard_of) % len(self._trusted)
        return (self._trusted if trusted else self._guarded)[shard]

    def _host(self, url: str) -> _Host:
        key = (urlsplit(url).hostname or "").lower()
        if key not in self._hosts:
            self._hosts[key] = _Host(
                asyncio.Semaphore(self.network.per_host_concurrency), self.network.per_host_delay
            )
        return self._hosts[key]

    def slow_down(self, url: str, delay: float) -> None:
        """A host asked for more time between requests (robots.txt Crawl-delay)."""
        host = self._host(url)
        host.delay = max(host.delay, delay)

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        trusted: bool = False,
        accept: str | None = None,
        max_bytes: int | None = None,
        hop_check: HopCheck | None = None,
    ) -> Fetched:
        """GET ``url`` with conditional headers; retry what is transient. Raises FetchError.

        ``trusted``: the URL comes from sources.yaml (its first hop skips the address check).
        ``hop_check``: called on every redirect target; a HopRefused it returns stops the
        fetch with a FetchError of the HopRefused's kind.
        """
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        # Send both validators; a server that understands ETag lets it win (RFC 9110 13.2.2)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        net = self.network
        attempt = 0
        while True:
            attempt += 1
            try:
                fetched = await self._polite(
                    url, headers, trusted=trusted, max_bytes=max_bytes, hop_check=hop_check
                )
                return dataclasses.replace(fetched, attempts=attempt)
            except FetchError as exc:
                if not exc.transient or attempt > net.retries:
                    raise
                wait = net.retry_backoff * (2 ** (attempt - 1))
                if exc.retry_after is not None:
                    if exc.retry_after > net.max_retry_after:
                        raise  # too long to wait inside a run: the source row keeps the date
                    wait = max(wait, exc.retry_after)
                logger.info("retry url=%s attempt=%d wait=%.1fs reason=%s", url, attempt, wait, exc)
                await asyncio.sleep(wait)

    async def _polite(
        self,
        url: str,
        headers: dict[str, str],
        *,
        trusted: bool,
        max_bytes: int | None,
        hop_check: HopCheck | None,
    ) -> Fetched:
        host = self._host(url)
        # the host's turn first, then a global slot: a request waiting out one host's
        # delay never holds a slot another host could use
        async with host.semaphore:
            async with host.lock:  # space request starts to the same host
                wait = host.last_start + host.delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                host.last_start = time.monotonic()
            try:
                async with self._global, asyncio.timeout(self.network.total_timeout):
                    return await self._request(
                        url, headers, trusted=trusted, max_bytes=max_bytes, hop_check=hop_check
                    )
            except TimeoutError:
                raise FetchError(
                    f"no complete answer within {self.network.total_timeout:g} s",
                    url=url,
                    kind="slow",
                ) from None

    async def _request(
        self,
        url: str,
        headers: dict[str, str],
        *,
        trusted: bool,
        max_bytes: int | None,
        hop_check: HopCheck | None,
    ) -> Fetched:
        started = time.monotonic()
        current = url
        for hop in range(self.network.max_redirects + 1):
            client = self._client(current, trusted=trusted and hop == 0)
            try:
                async with client.stream("GET", current, headers=headers) as response:
                    status = response.status_code
                    if status in REDIRECT_STATUSES and "location" in response.headers:
                        target = urljoin(current, response.headers["location"].strip())
                        reason = self.policy(target)
                        if reason:
                            raise FetchError(
                                f"redirect to {target}: {reason}", url=url, kind="refused"
                            )
                        if hop_check is not None and (why := await hop_check(target)):
                            raise FetchError(
                                f"redirect to {target}: {why.reason}", url=url, kind=why.kind
                            )
                        current = target
                        continue
                    lower = {k.lower(): v for k, v in response.headers.items()}
                    if status != 304 and not 200 <= status < 300:
                        raise FetchError(
                            _status_text(status),
                            url=url,
                            kind="status",
                            status=status,
                            retry_after=parse_retry_after(lower.get("retry-after"))
                            if status in (429, 503)
                            else None,
                        )
                    # 304: nothing to read, the validators may have been refreshed
                    body = (
                        b""
                        if status == 304
                        else await self._read_body(response, current, max_bytes)
                    )
                    return Fetched(
                        url=url,
                        final_url=current,
                        status=status,
                        body=body,
                        headers=lower,
                        etag=lower.get("etag"),
                        last_modified=lower.get("last-modified"),
                        elapsed=time.monotonic() - started,
                        fresh_for=_freshness_of(response),  # a 304 carries its hints too
                    )
            except httpx.TimeoutException as exc:
                what = {
                    httpx.ConnectTimeout: f"connection not established within {self.network.connect_timeout:g} s",
                    httpx.ReadTimeout: f"server silent for more than {self.network.read_timeout:g} s",
                }.get(type(exc), f"timed out ({type(exc).__name__})")
                raise FetchError(what, url=url, kind="timeout") from None
            except httpx.ConnectError as exc:
                refused = _find(exc, AddressRefused)
                if refused is not None:
                    raise FetchError(f"{refused} ({current})", url=url, kind="refused") from None
                raise FetchError(
                    f"cannot connect: {_reason(exc)}", url=url, kind="connect"
                ) from None
            except httpx.RemoteProtocolError as exc:
                if "location header" in str(exc).lower():
                    # httpx rejects the Location before we see it (http://0177.0.0.1/...):
                    # nothing was sent there, and asking again would get the same answer
                    raise FetchError(
                        f"redirect to an invalid URL: {_reason(exc)}", url=url, kind="refused"
                    ) from None
                raise FetchError(
                    f"connection broken: {_reason(exc)}", url=url, kind="protocol"
                ) from None
            except (httpx.ReadError, httpx.WriteError) as exc:
                raise FetchError(
                    f"connection broken: {_reason(exc)}", url=url, kind="protocol"
                ) from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise FetchError(f"invalid URL: {_reason(exc)}", url=url, kind="refused") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"HTTP error: {_reason(exc)}", url=url, kind="protocol") from None
        raise FetchError(
            f"more than {self.network.max_redirects} redirects (last: {current})",
            url=url,
            kind="redirect",
        )

    async def _read_body(self, response: httpx.Response, url: str, max_bytes: int | None) -> bytes:
        limit = min(max_bytes or self.network.max_body_bytes, self.network.max_body_bytes)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(
                f"body of {int(declared):,} bytes is over the {limit:,}-byte limit",
                url=url,
                kind="too-large",
            )
        decoder = _Decoder(response.headers.get("content-encoding", ""), limit=limit, url=url)
        raw_total = 0
        async for chunk in response.aiter_raw(READ_CHUNK):
            raw_total += len(chunk)
            self.bytes_received += len(chunk)
            if raw_total > limit:
                raise FetchError(f"body larger than {limit:,} bytes", url=url, kind="too-large")
            decoder.feed(chunk)
        return decoder.finish()


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    """The cause a person can act on, found in the exception chain (httpx hides it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "host name not found"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.errno == errno.ENETUNREACH:
            return "network unreachable"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip()
    return text or type(exc).__name__
