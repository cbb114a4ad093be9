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
    /_/silence/<seconds>              read the request, then say nothing for that long
    /_/stall/<seconds>                headers and half a feed, then silence
    /_/reset                          close the connection without answering
    /_/short-body                     a Content-Length longer than the body sent
    /_/encoding/<name>                a feed with Content-Encoding <name> (e.g. br)
    /_/retry-once/<code>/<value>/<path>  <code> with Retry-After <value> once, then <path>
    /_/feed/<kind>                    a hostile or odd feed, see ``hostile_feed``
    /_/smuggle                        a feed with a second HTTP response hidden after its body
    /_/trickle-page/<n>               an article page sent one byte a second
    /_/bomb-page/<n>                  an article page whose text is "000 000 000 ..." (180 KB)
    /_/hostile-page/<kind>            a heavy article page: big, nested, wide, attributes, links

With ``rewrite_hosts=True`` the server stands in for every ``*.example`` site named
in the fixtures: links to ``https://www.ouest-sante.example/a.html`` (plain or
percent-encoded) are rewritten to ``<base>/sites/www.ouest-sante.example/a.html``,
served from ``sites/<host>/<path>`` under a root (or ``<path>`` when that is absent).
A ``.gz`` path is served gzipped from the file without the suffix.

Every request is recorded (method, path, headers, client address) for assertions.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import gzip
import hashlib
import ipaddress
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
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
    client: tuple[str, int] = ("", 0)  # the connection it came on


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


def _rss(items: str, *, channel: str = "Hostile", head: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{head}\n<rss version="2.0"><channel>'
        f"<title>{channel}</title>\n{items}</channel></rss>\n"
    )


def _item(title: str, link: str | None = None, *, extra: str = "") -> str:
    link_tag = f"<link>{link}</link>" if link is not None else ""
    return f"<item><title>{title}</title>{link_tag}{extra}</item>\n"


HOSTILE_FEEDS = (
    "invalid-xml",
    "not-xml",
    "billion-laughs",
    "external-entity",
    "parameter-entity",
    "wrong-charset",
    "utf16",
    "nul",
    "many",
    "dup-guid",
    "no-link",
    "relative",
    "bad-schemes",
    "dates",
    "huge-title",
    "markup",
    "regex-bomb",
    "trickling-pages",
    "control-chars",
    "hostile-pages",
)

HOSTILE_PAGES = ("big", "nested", "wide", "attributes", "links")


def hostile_page(kind: str) -> bytes:
    """Article pages that cost a parser memory and time, each under max_page_bytes (5 MB)."""
    head = "<!doctype html><html lang='fr'><head><title>Page lourde</title></head><body>"
    if kind == "big":  # 4.8 MB of paragraphs
        body = "<article>" + "<p>Xenothera développe des anticorps polyclonaux. </p>" * 90_000
    elif kind == "nested":  # 200,000 nested elements
        body = "<div>" * 200_000 + "Xenothera" + "</div>" * 200_000
    elif kind == "wide":  # a table of 250,000 cells
        body = "<table>" + ("<tr>" + "<td>Valneva</td>" * 50 + "</tr>") * 5_000 + "</table>"
    elif kind == "attributes":  # a few elements with megabyte attributes
        body = "".join(f'<p data-x="{"a" * 1_000_000}">Valneva {i}</p>' for i in range(4))
    elif kind == "links":  # 150,000 links
        body = "".join(f'<a href="/l/{i}">Lien {i}</a> ' for i in range(150_000))
    else:
        raise KeyError(kind)
    return (head + body + "</body></html>").encode()


SMUGGLED_TITLE = "Smuggled article"  # what the response hidden after /_/smuggle announces


def smuggling_response() -> bytes:
    """A feed answered with its exact Content-Length, then, in the same write, a complete
    second response that a desynchronised keep-alive connection would take as the answer
    to the next request."""
    feed = _rss(_item("The smuggling feed's own entry", "https://hostile.example/own")).encode()
    hidden = _rss(
        _item(SMUGGLED_TITLE, "https://hostile.example/smuggled"), channel="Hidden"
    ).encode()
    hidden_response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
        + f"Content-Length: {len(hidden)}\r\n\r\n".encode()
        + hidden
    )
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
        + f"Content-Length: {len(feed)}\r\n\r\n".encode()
    )
    return head + feed + hidden_response


def bomb_page(number: int) -> bytes:
    """An article page whose text backtracks a naive money-amount pattern: a real amount,
    then 180 KB of "000 " after a member's name."""
    zeros = "000 " * 45_000
    return (
        f"<html lang='fr'><head><title>Levée {number}</title></head><body><article>"
        f"<h1>Levée de fonds numéro {number}</h1>"
        f"<p>Valneva lève 12 millions d'euros pour son vaccin, annonce la société nantaise.</p>"
        f"<p>Valneva publie ses chiffres : {zeros}</p>"
        "</article></body></html>"
    ).encode()


def hostile_feed(kind: str, *, entries: int = 20_000) -> bytes:
    """The body served at ``/_/feed/<kind>`` (links on ``https://hostile.example``)."""
    site = "https://hostile.example"
    if kind == "invalid-xml":  # unclosed tags, a bare ampersand, a stray close tag
        return (
            b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Broken & co'
            b"</title><item><title>Usable & entry</title><link>https://hostile.example/usable</link>"
            b"<description><b>unclosed</description></item></chanel><item><title>After"
        )
    if kind == "not-xml":
        return b'{"items": [{"title": "JSON, not a feed"}]}'
    if kind == "billion-laughs":  # nested references: each level ten times the last
        lol = "\n".join(f'  <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
        return _rss(
            _item("&lol9;", f"{site}/laughs"),
            head=f'\n<!DOCTYPE rss [\n  <!ENTITY lol0 "lol">\n{lol}\n]>',
        ).encode()
    if kind == "external-entity":  # XXE: read a local file into the feed
        return _rss(
            _item("&xxe;", f"{site}/xxe"),
            head='\n<!DOCTYPE rss [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>',
        ).encode()
    if kind == "parameter-entity":
        return _rss(
            _item("pe", f"{site}/pe"),
            head='\n<!DOCTYPE rss [\n  <!ENTITY % pe SYSTEM "http://127.0.0.1:9/x.dtd">\n  %pe;\n]>',
        ).encode()
    if kind == "wrong-charset":  # declared UTF-8 (prolog and header), written in Latin-1
        return _rss(
            _item("Atlanpole Biothérapies à Nantes", f"{site}/latin1"),
            channel="Santé",
        ).encode("latin-1")
    if kind == "utf16":
        text = _rss(_item("Biothérapies en Pays de la Loire", f"{site}/utf16"))
        return b"\xff\xfe" + text.replace('encoding="utf-8"', 'encoding="utf-16"').encode(
            "utf-16-le"
        )
    if kind == "nul":
        return _rss(
            _item("Nul\x00 bytes\x00 here", f"{site}/nul")
            + "\x00"
            + _item("Second\x00 entry", f"{site}/nul-2", extra="<description>a\x00b</description>")
        ).encode()
    if kind == "many":
        return _rss(
            "".join(_item(f"Entry {i}", f"{site}/many/{i}") for i in range(entries))
        ).encode()
    if kind == "dup-guid":
        guid = '<guid isPermaLink="false">same-guid</guid>'
        return _rss(
            _item("Duplicate, first", f"{site}/dup", extra=guid)
            + _item("Duplicate, second", f"{site}/dup", extra=guid)
            + _item("Duplicate, third", f"{site}/dup?utm_source=rss#again", extra=guid)
            + _item("Linkless twin", extra='<guid isPermaLink="false">twin</guid>')
            + _item("Linkless twin", extra='<guid isPermaLink="false">twin</guid>')
        ).encode()
    if kind == "no-link":
        return _rss(
            _item("No link at all", extra="<description>Only words.</description>")
            + _item("A GUID that is not a URL", extra="<guid>20261125-0042</guid>")
            + _item("Empty link", "")
        ).encode()
    if kind == "relative":
        return _rss(
            _item("Root-relative", "/actualites/root-relative.html")
            + _item("Path-relative", "path-relative.html")
            + _item("Protocol-relative", "//other.example/protocol-relative.html")
        ).encode()
    if kind == "bad-schemes":
        return _rss(
            _item("Javascript link", "javascript:alert(document.cookie)")
            + _item("Data link", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==")
            + _item("Vbscript link", "vbscript:msgbox(1)")
            + _item("File link", "file:///etc/passwd")
            + _item("Good link", f"{site}/good")
        ).encode()
    if kind == "dates":
        return _rss(
            _item(
                "Year 9999",
                f"{site}/y9999",
                extra="<pubDate>Fri, 31 Dec 9999 23:59:59 GMT</pubDate>",
            )
            + _item(
                "Year 1900",
                f"{site}/y1900",
                extra="<pubDate>Mon, 01 Jan 1900 00:00:00 GMT</pubDate>",
            )
            + _item(
                "Unparseable", f"{site}/never", extra="<pubDate>the day after tomorrow</pubDate>"
            )
            + _item(
                "Sane", f"{site}/sane", extra="<pubDate>Tue, 05 Mar 2024 08:30:00 +0100</pubDate>"
            )
        ).encode()
    if kind == "regex-bomb":  # summaries that backtrack a naive amount pattern
        zeros = "000 " * 1_200
        return _rss(
            "".join(
                _item(
                    f"Valneva, levée {i}",
                    f"/_/bomb-page/{i}",
                    extra=f"<description>Valneva {zeros}</description>",
                )
                for i in range(5)
            )
        ).encode()
    if kind == "trickling-pages":  # 50 article pages, each sent one byte a second
        items = "".join(_item(f"Article lent {i}", f"/_/trickle-page/{i}") for i in range(50))
        return _rss(items).encode()
    if kind == "hostile-pages":  # heavy article pages, and the regex bombs
        links = [f"/_/hostile-page/{k}" for k in HOSTILE_PAGES] + [
            f"/_/bomb-page/{i}" for i in range(3)
        ]
        return _rss(
            "".join(_item(f"Page lourde {i}", link) for i, link in enumerate(links))
        ).encode()
    if kind == "control-chars":  # ESC sequences, BEL, DEL and C1 controls in text fields
        return _rss(
            _item(
                "\x1b[31mAlerte\x1b[0m Xenothera\x07 en rouge\x7f",
                f"{site}/esc",
                extra="<description>Texte\x1b]8;;https://evil.example\x1b\\lien\x1b]8;;"
                "\x1b\\ \x85fin\x9b2J\ttabulé</description>"
                "<author>a\x08b@example.org (Au\x00teur)</author>",
            )
        ).encode()
    if kind == "huge-title":
        words = ("Xenothera " + "mot " * 262_144)[:1_048_576]
        return _rss(
            _item(words, f"{site}/huge", extra=f"<description>{words}</description>")
        ).encode()
    if kind == "markup":
        return _rss(
            _item(
                "&lt;script&gt;alert('t')&lt;/script&gt;&lt;b&gt;Bold&lt;/b&gt; &lt;i&gt;title&lt;/i&gt;",
                f"{site}/markup",
                extra='<description><![CDATA[<p onclick="steal()">Hello <img src=x onerror=alert(1)>'
                '<script>evil()</script><style>p{}</style><iframe src="https://evil.example"></iframe>'
                '<a href="javascript:alert(1)">link</a></p>]]></description>',
            )
            + _item(
                "<![CDATA[<svg onload=alert(2)>Raw</svg> <script>x()</script>CDATA title]]>",
                f"{site}/cdata",
            )
        ).encode()
    raise KeyError(kind)


class FixtureServer:
    """``with FixtureServer(root) as server: server.url("feed.rss")``."""

    def __init__(
        self,
        *roots: str | Path,
        host: str = "127.0.0.1",
        rewrite_hosts: bool = False,
        conditional: bool = True,
    ) -> None:
        self.roots = [Path(root) for root in roots]
        self.root = self.roots[0]
        self.host = host
        self.rewrite_hosts = rewrite_hosts
        self.conditional = conditional  # False: never 304, every request reads the whole file
        self.requests: list[Request] = []
        self.routes: dict[str, Handler] = {}
        self.not_found: Handler | None = None  # answers paths no file or route serves
        # with rewrite_hosts: a host served elsewhere (its base URL) instead of under sites/
        self.hosts: dict[str, str] = {}
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
                            (str(self.client_address[0]), int(self.client_address[1])),
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

    def _target(self, host: bytes) -> str:
        elsewhere = self.hosts.get(host.decode().lower())
        return elsewhere.rstrip("/") if elsewhere else f"{self.base}/sites/{host.decode()}"

    def _rewrite(self, body: bytes) -> bytes:
        body = _SITE_URL.sub(lambda m: self._target(m.group(1)).encode(), body)
        return _ENCODED_SITE_URL.sub(
            lambda m: quote(self._target(m.group(1)), safe="").encode(), body
        )

    def _serve_file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        gzipped = path.endswith(".gz") and self._find(path) is None
        target = self._find(path[:-3] if gzipped else path)
        if target is None:
            if self.not_found is not None:
                self.not_found(handler)
                return
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
        if self.conditional and (
            handler.headers.get("If-None-Match") == etag
            or (
                handler.headers.get("If-None-Match") is None
                and handler.headers.get("If-Modified-Since") == LAST_MODIFIED
            )
        ):
            self.send(handler, 304, headers={"ETag": etag, "Last-Modified": LAST_MODIFIED})
            return
        self.send(
            handler,
            200,
            body,
            {"Content-Type": content_type, "ETag": etag, "Last-Modified": LAST_MODIFIED},
        )

    @staticmethod
    def _trickle(
        handler: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """A 200 whose body is sent one byte a second (its Content-Length is honest)."""
        handler.send_response(200)
        for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(1)

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
            self._trickle(handler, body)
        elif action == "smuggle":
            handler.wfile.write(smuggling_response())
            handler.wfile.flush()
        elif action == "trickle-page":
            body = (
                "<html><head><title>Article lent</title></head><body><article><p>"
                + "Un texte qui arrive très lentement. " * 60
                + "</p></article></body></html>"
            ).encode()
            self._trickle(handler, body, {"Content-Type": "text/html; charset=utf-8"})
        elif action == "bomb-page":
            send(
                handler,
                200,
                self._cached("bomb-page/" + args[0], lambda: bomb_page(int(args[0]))),
                {"Content-Type": "text/html; charset=utf-8"},
            )
        elif action == "hostile-page":
            send(
                handler,
                200,
                self._cached("hostile-page/" + args[0], lambda: hostile_page(args[0])),
                {"Content-Type": "text/html; charset=utf-8"},
            )
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
        elif action == "silence":
            time.sleep(float(args[0]))
            handler.close_connection = True
        elif action == "stall":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.send_header("Content-Length", "10000")
            handler.end_headers()
            handler.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
            handler.wfile.flush()
            time.sleep(float(args[0]))
            handler.close_connection = True
        elif action == "reset":
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
        elif action == "short-body":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.send_header("Content-Length", "5000")
            handler.end_headers()
            handler.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
            handler.close_connection = True
        elif action == "encoding":
            send(
                handler,
                200,
                b"\x0b\x02\x80not really brotli",
                {"Content-Type": "application/rss+xml", "Content-Encoding": args[0]},
            )
        elif action == "retry-once":
            key = handler.path
            with self._lock:
                self._counters[key] = self._counters.get(key, 0) + 1
                count = self._counters[key]
            if count == 1:
                value = args[1].replace("_", " ")
                send(handler, int(args[0]), b"slow down", {"Retry-After": value})
            else:
                self._serve_file(handler, "/".join(args[2:]))
        elif action == "feed":
            kind = args[0]
            if kind not in HOSTILE_FEEDS:
                send(handler, 404, b"unknown feed")
                return
            body = self._cached(f"feed/{kind}", lambda: hostile_feed(kind))
            content_type = {
                "utf16": "application/rss+xml",
                "wrong-charset": "application/rss+xml; charset=utf-8",
                "not-xml": "application/json",
            }.get(kind, "application/rss+xml")
            send(handler, 200, body, {"Content-Type": content_type})
        else:
            send(handler, 404, b"unknown fault")


@contextlib.contextmanager
def loopback_connections_only(
    connected: list[tuple[str, int]] | None = None,
) -> Iterator[list[str]]:
    """Within the block, a socket of this process may connect to loopback (and to Unix
    sockets) only: any other address fails at once with ENETUNREACH and is recorded in
    the yielded list, so a regression in the address policy fails the test rather than
    sending a packet to 10/8, 169.254.169.254 or fc00::/7. asyncio connects through
    ``socket.connect`` too, so the guard sits beneath httpx, httpcore and anyio.
    ``connected``, when given, receives every (address, port) a TCP connection was
    allowed to, so a test can tell 127.0.0.1 from ::1 or ::ffff:127.0.0.1."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(address: Any) -> bool:
        if not isinstance(address, tuple):
            return True  # AF_UNIX: multiprocessing's forkserver
        try:
            ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        except ValueError:
            return False  # a name here would bypass the resolver: refuse it too
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    def note(address: Any) -> None:
        if connected is not None and isinstance(address, tuple):
            connected.append((str(address[0]), int(address[1])))

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(address):
            attempts.append(str(address[0]))
            raise OSError(errno.ENETUNREACH, f"test guard: no connection to {address[0]}")
        note(address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(address):
            attempts.append(str(address[0]))
            return errno.ENETUNREACH
        note(address)
        return real_connect_ex(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on which nothing listens (bound then released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
