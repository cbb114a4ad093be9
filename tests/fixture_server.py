"""A real HTTP server on 127.0.0.1 for tests and the demo: serves fixture files and misbehaves on demand.

Files under ``root`` are served with an ETag and a Last-Modified date, and
conditional requests get 304. Paths under ``/_/`` misbehave on purpose:

    /_/status/<code>                  answer with that status
    /_/retry-after/<code>/<value>     429 or 503 with a Retry-After header
    /_/redirect-loop                  302 to itself
    /_/redirect/<n>/<path>            n redirects, then <path>
    /_/redirect-to?url=<url>          302 to any URL
    /_/slow/<seconds>/<path>          wait, then serve <path>
    /_/trickle                        a feed sent one byte a second
    /_/big/<bytes>                    a body of that size (streamed, no Content-Length)
    /_/gzip-bomb                      100 MB of zeros in a ~100 KB gzip body
    /_/truncated-gzip                 a gzip body cut in the middle
    /_/entity-bomb                    a 100 KB entity referenced 20,000 times, multi-line DOCTYPE
    /_/flaky/<n>/<path>               503 for the first n requests, then <path>
    /_/empty                          200 with no body

With ``rewrite_hosts=True`` the server stands in for every ``*.example`` site named
in the fixtures: links to ``https://www.ouest-sante.example/a.html`` (plain or
percent-encoded) are rewritten to ``<base>/sites/www.ouest-sante.example/a.html``,
served from ``sites/<host>/<path>`` under a root (or ``<path>`` when that is absent).
A ``.gz`` path is served gzipped from the file without the suffix.

Every request is recorded (method, path, headers) for assertions.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

CONTENT_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".xml": "application/xml",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".gz": "application/gzip",
}
_SITE_URL = re.compile(rb"https?://([a-z0-9][a-z0-9.-]*\.example)(?![a-z0-9.-])", re.IGNORECASE)
_ENCODED_SITE_URL = re.compile(
    rb"https?%3A%2F%2F([a-z0-9][a-z0-9.-]*\.example)(?![a-z0-9.-])", re.IGNORECASE
)
LAST_MODIFIED = email.utils.formatdate(time.mktime((2026, 11, 27, 12, 0, 0, 0, 0, 0)), usegmt=True)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


Handler = Callable[[BaseHTTPRequestHandler], None]


def entity_bomb() -> bytes:
    """The billion-laughs cousin: one large internal entity referenced many times."""
    value = "A" * 100_000
    items = "".join(
        f"<item><title>t{i} &big;</title><link>https://x.example/{i}</link></item>\n"
        for i in range(20_000)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<!DOCTYPE rss [\n"
        "  <!ELEMENT rss ANY>\n"
        "  <!ENTITY big\n"
        f'    "{value}">\n'
        "]>\n"
        f'<rss version="2.0"><channel><title>bomb</title>\n{items}</channel></rss>\n'
    ).encode()


class FixtureServer:
    """``with FixtureServer(root) as server: server.url("feed.rss")``."""

    def __init__(
        self, *roots: str | Path, host: str = "127.0.0.1", rewrite_hosts: bool = False
    ) -> None:
        self.roots = [Path(root) for root in roots]
        self.root = self.roots[0]
        self.host = host
        self.rewrite_hosts = rewrite_hosts
        self.requests: list[Request] = []
        self.routes: dict[str, Handler] = {}
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client hung up between requests
                    super().handle()

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(
                        Request(
                            "GET",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            time.monotonic(),
                        )
                    )
                try:
                    server._dispatch(self)
                except OSError:  # the client gave up (timeouts under test): nothing to answer
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def start(self) -> FixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if urlsplit(r.path).path == "/" + path.lstrip("/")]

    # -------------------------------------------------------------- responses

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if body:
            handler.wfile.write(body)

    def _find(self, path: str) -> Path | None:
        candidates = [path]
        if path.startswith("sites/"):
            parts = path.split("/", 2)
            if len(parts) == 3:
                candidates.append(parts[2])  # a site's file kept at the top of a root
        for root in self.roots:
            for candidate in candidates:
                target = (root / candidate).resolve()
                if target.is_file() and root.resolve() in target.parents:
                    return target
        return None

    def _rewrite(self, body: bytes) -> bytes:
        base = self.base.encode()
        body = _SITE_URL.sub(lambda m: base + b"/sites/" + m.group(1), body)
        encoded = quote(f"{self.base}/sites/", safe="").encode()
        return _ENCODED_SITE_URL.sub(lambda m: encoded + m.group(1), body)

    def _serve_file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        gzipped = path.endswith(".gz") and self._find(path) is None
        target = self._find(path[:-3] if gzipped else path)
        if target is None:
            self.send(handler, 404, b"not found", {"Content-Type": "text/plain"})
            return
        body = target.read_bytes()
        content_type = CONTENT_TYPES.get(target.suffix, "text/html; charset=utf-8")
        if self.rewrite_hosts and (
            content_type.startswith(("text/", "application/")) or not target.suffix
        ):
            body = self._rewrite(body)
        if gzipped:
            body, content_type = gzip.compress(body), "application/gzip"
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if handler.headers.get("If-None-Match") == etag or (
            handler.headers.get("If-None-Match") is None
            and handler.headers.get("If-Modified-Since") == LAST_MODIFIED
        ):
            self.send(handler, 304, headers={"ETag": etag, "Last-Modified": LAST_MODIFIED})
            return
        self.send(
            handler,
            200,
            body,
            {"Content-Type": content_type, "ETag": etag, "Last-Modified": LAST_MODIFIED},
        )

    def _cached(self, key: str, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.lstrip("/")
        if path in self.routes:
            self.routes[path](handler)
            return
        if not path.startswith("_/"):
            self._serve_file(handler, path)
            return
        segments = path.split("/")[1:]
        action, args = segments[0], segments[1:]
        send = self.send
        if action == "status":
            send(
                handler,
                int(args[0]),
                b"<html><body>error page</body></html>",
                {"Content-Type": "text/html"},
            )
        elif action == "retry-after":
            send(
                handler,
                int(args[0]),
                b"slow down",
                {"Retry-After": "/".join(args[1:]).replace("_", " ")},
            )
        elif action == "redirect-loop":
            send(handler, 302, headers={"Location": handler.path})
        elif action == "redirect":
            hops = int(args[0])
            rest = "/".join(args[1:])
            location = f"/_/redirect/{hops - 1}/{rest}" if hops > 1 else f"/{rest}"
            send(handler, 302, headers={"Location": location})
        elif action == "redirect-to":
            send(handler, 302, headers={"Location": parse_qs(parts.query)["url"][0]})
        elif action == "slow":
            time.sleep(float(args[0]))
            self._serve_file(handler, "/".join(args[1:]))
        elif action == "trickle":
            body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title></channel></rss>'
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(1)
        elif action == "big":
            size = int(args[0])
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.send_header("Connection", "close")
            handler.end_headers()
            chunk = b"<!-- padding -->" * 4096
            sent = 0
            while sent < size:
                handler.wfile.write(chunk)
                sent += len(chunk)
            handler.close_connection = True
        elif action == "gzip-bomb":
            body = self._cached("gzip-bomb", lambda: gzip.compress(b"\0" * 100_000_000, 9))
            send(
                handler,
                200,
                body,
                {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"},
            )
        elif action == "truncated-gzip":
            feed = (
                (self.root / "ouest-sante.rss").read_bytes()
                if (self.root / "ouest-sante.rss").exists()
                else b"<rss version='2.0'><channel><title>x</title></channel></rss>" * 50
            )
            body = gzip.compress(feed)
            body = body[: len(body) // 2]
            send(
                handler,
                200,
                body,
                {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"},
            )
        elif action == "entity-bomb":
            send(
                handler,
                200,
                self._cached("entity-bomb", entity_bomb),
                {"Content-Type": "application/rss+xml"},
            )
        elif action == "flaky":
            key = handler.path
            with self._lock:
                self._counters[key] = self._counters.get(key, 0) + 1
                count = self._counters[key]
            if count <= int(args[0]):
                send(handler, 503, b"try again")
            else:
                self._serve_file(handler, "/".join(args[1:]))
        elif action == "empty":
            send(handler, 200, b"", {"Content-Type": "application/rss+xml"})
        else:
            send(handler, 404, b"unknown fault")


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on which nothing listens (bound then released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
