"""SSRF matrix: links discovered in a trusted feed never reach a private address.

A configured feed on 127.0.0.1 (trusted: the operator wrote its URL) carries an entry
that links to a private address, directly or through a redirect. The sources fetch
article pages (``fetch_articles: true``) under the default policy
(``allow_private: false``). For every address the test asserts that

- nothing but the feed was requested from the server on 127.0.0.1 (which answers on
  every loopback spelling's port, so a regression would show in its log);
- no connection was attempted to a non-loopback address at all: a guard beneath
  asyncio and httpx (``loopback_connections_only``) fails the connect and records it,
  so a regression fails the test instead of sending packets to 10/8 or 169.254/16;
- the article is kept, without text, and ``articles.text_status`` says it was refused.

Redirect hops need a first hop that is allowed: a second server on 127.0.0.2 stands
in for a public site (the policy is told that this one address is public); its
``/_/redirect-to`` route sends veille to each private address in turn.

A run fetches in processes of its own (``network.fetch_processes``). The links are
followed both ways: through those processes, whose sockets conftest's child guard
(tests/childguard) holds to loopback, and in the run's own process
(``fetch_processes: 0``). The stand-ins (127.0.0.2 taken for public, a name resolving
to 127.0.0.1) are monkeypatches of this process, so what needs them runs in it.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import pipeline.sources.fetch
from pipeline.run import run
from pipeline.sources.dedupe import canonical_url
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer, loopback_connections_only

PUBLIC_STAND_IN = "127.0.0.2"  # treated as a public address by these tests only
RESOLVES_TO_LOOPBACK = "intranet.veille-test.example"

# host as written in the link -> a word of the refusal (the address as veille reads it)
TARGETS: dict[str, str] = {
    "127.0.0.1": "127.0.0.1 is loopback",
    "localhost": "localhost is loopback",
    "0.0.0.0": "0.0.0.0 is 'this network'",
    "10.0.0.1": "10.0.0.1 is private",
    "172.16.0.1": "172.16.0.1 is private",
    "192.168.1.1": "192.168.1.1 is private",
    "169.254.169.254": "169.254.169.254 is link-local",
    "100.64.0.1": "100.64.0.1 is shared carrier-grade NAT",
    "[::1]": "::1 is loopback",
    "[fc00::1]": "fc00::1 is unique local",
    "[fe80::1]": "fe80::1 is link-local",
    "[::ffff:127.0.0.1]": "127.0.0.1 is loopback (inside the IPv6 address",
    "2130706433": "127.0.0.1 is loopback",
    "0x7f.0.0.1": "127.0.0.1 is loopback",
    # httpx refuses this spelling as an invalid URL before the policy sees it (in a link,
    # or in a Location header): no connection either
    "0177.0.0.1": "Invalid IPv4 address: '0177.0.0.1'",
    RESOLVES_TO_LOOPBACK: f"{RESOLVES_TO_LOOPBACK} resolves to 127.0.0.1 is loopback",
}


def feed(links: list[tuple[str, str]]) -> str:
    items = "".join(
        f"<item><title>{title}</title><link>{link.replace('&', '&amp;')}</link>"
        "<description>Un lien vers une adresse interne.</description></item>"
        for title, link in links
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Trusted feed</title>{items}</channel></rss>"
    )


@pytest.fixture
def internal(tmp_path: Path) -> Iterator[FixtureServer]:
    """127.0.0.1: serves the trusted feed, and the 'internal' page no link may reach."""
    root = tmp_path / "internal"
    root.mkdir()
    (root / "secret.html").write_text("<html><body><p>secret</p></body></html>", "utf-8")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n", "utf-8")
    with FixtureServer(root) as server:
        yield server


@pytest.fixture
def public(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    """127.0.0.2 standing in for a public site: the address policy lets this one through."""
    root = tmp_path / "public"
    root.mkdir()
    real = pipeline.sources.fetch.host_problem
    monkeypatch.setattr(
        pipeline.sources.fetch,
        "host_problem",
        lambda host: None if host == PUBLIC_STAND_IN else real(host),
    )
    with FixtureServer(root, host=PUBLIC_STAND_IN) as server:
        yield server


@pytest.fixture(autouse=True)
def name_resolving_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """One host name whose DNS answer is 127.0.0.1 (a rebinding or internal name)."""
    guarded = socket.getaddrinfo  # conftest's loopback-only guard

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (RESOLVES_TO_LOOPBACK, RESOLVES_TO_LOOPBACK.encode()):
            return guarded("127.0.0.1", *args, **kwargs)
        return guarded(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def connected() -> list[tuple[str, int]]:
    """Every (address, port) a TCP connection was made to during the test."""
    return []


@pytest.fixture(autouse=True)
def no_traffic_beyond_loopback(connected: list[tuple[str, int]]) -> Iterator[list[str]]:
    with loopback_connections_only(connected) as attempts:
        yield attempts
    assert attempts == [], f"connections attempted beyond loopback: {attempts}"


def assert_connected_only_to(connected: list[tuple[str, int]], *servers: FixtureServer) -> None:
    """Loopback has many spellings (::1, ::ffff:127.0.0.1): only the servers' own count."""
    allowed = {(server.host, server.port) for server in servers}
    assert set(connected) <= allowed, set(connected) - allowed


def articles(db_path: Path) -> list[tuple[str, str | None, str | None]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT url, text, text_status FROM articles ORDER BY id").fetchall()
    finally:
        conn.close()


def target_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/secret.html"


def configure(
    write_config: WriteConfig,
    internal: FixtureServer,
    links: list[tuple[str, str]],
    *,
    processes: int | None = 0,
) -> Any:
    (internal.root / "feed.rss").write_text(feed(links), encoding="utf-8")
    return write_config(
        sources=[
            {
                "id": "trusted",
                "kind": "feed",
                "url": internal.url("feed.rss"),
                "fetch_articles": True,
            }
        ],
        network={"allow_private": False, "fetch_processes": processes},
    )


# fetched in the run's own process (0), or in a fetch process (None: the default); the
# name that resolves to 127.0.0.1 does so only in this process
WAYS = [(host, 0) for host in TARGETS] + [
    (host, None) for host in TARGETS if host != RESOLVES_TO_LOOPBACK
]


@pytest.mark.parametrize(("host", "processes"), WAYS)
def test_a_link_to_a_private_address_is_never_requested(
    host: str,
    processes: int | None,
    internal: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
    connected: list[tuple[str, int]],
) -> None:
    link = target_url(host, internal.port)
    config = configure(write_config, internal, [("Lien piégé", link)], processes=processes)
    report = run(config, db_path=db_path)
    assert report.status == "ok"  # the feed itself is fine: only the page is refused
    assert [r.path for r in internal.requests] == ["/feed.rss"]
    assert_connected_only_to(connected, internal)
    ((url, text, status),) = articles(db_path)
    assert url == canonical_url(link)  # the entry is kept, under its own URL
    assert text is None
    assert status and status.startswith("error:"), status
    assert TARGETS[host] in status, status
    assert "refused to connect" in status or "Invalid IPv4" in status


@pytest.mark.parametrize("host", list(TARGETS))
def test_a_redirect_hop_to_a_private_address_is_never_followed(
    host: str,
    internal: FixtureServer,
    public: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
    connected: list[tuple[str, int]],
) -> None:
    redirect = public.url("_/redirect-to?url=" + quote(target_url(host, internal.port), safe=""))
    report = run(configure(write_config, internal, [("Lien redirigé", redirect)]), db_path=db_path)
    assert report.status == "ok"
    assert [r.path for r in internal.requests] == ["/feed.rss"]
    assert_connected_only_to(connected, internal, public)
    # the public stand-in saw its robots.txt asked for and the redirecting page once: a
    # refused hop is not retried (0177.0.0.1's Location, which httpx rejects, included)
    assert sorted(r.path.split("?")[0] for r in public.requests) == [
        "/_/redirect-to",
        "/robots.txt",
    ]
    ((url, text, status),) = articles(db_path)
    assert url == canonical_url(redirect)
    assert text is None
    # recorded as a refusal, not mistaken for a robots.txt verdict
    assert status and status.startswith("error:"), status
    assert TARGETS[host] in status, status
    assert "refused to connect" in status or "Invalid IPv4" in status


def test_one_feed_linking_to_every_private_address_at_once(
    internal: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    hosts = [host for host in TARGETS if host != RESOLVES_TO_LOOPBACK]
    links = [(f"Lien {i}", target_url(host, internal.port)) for i, host in enumerate(hosts)]
    run(configure(write_config, internal, links, processes=None), db_path=db_path)
    assert [r.path for r in internal.requests] == ["/feed.rss"]
    stored = articles(db_path)
    assert len(stored) == len(hosts)
    assert all(s and ("refused to connect" in s or "Invalid IPv4" in s) for _, _, s in stored)


def test_allow_private_is_what_lets_the_same_link_through(
    internal: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    """The control: the refusals above come from the policy, not from a broken fixture."""
    (internal.root / "feed.rss").write_text(
        feed([("Lien", target_url("127.0.0.1", internal.port))]), encoding="utf-8"
    )
    config = write_config(
        sources=[
            {
                "id": "trusted",
                "kind": "feed",
                "url": internal.url("feed.rss"),
                "fetch_articles": True,
            }
        ],
        network={"allow_private": True},
    )
    run(config, db_path=db_path)
    assert "/secret.html" in [r.path for r in internal.requests]


def test_the_connect_guard_refuses_and_records_private_addresses() -> None:
    """The guard itself: what a regression would meet instead of the network."""
    import asyncio

    with loopback_connections_only() as attempts:
        for address in (("10.0.0.1", 80), ("169.254.169.254", 80), ("fc00::1", 80, 0, 0)):
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            with socket.socket(family) as sock, pytest.raises(OSError, match="test guard"):
                sock.connect(address)

        async def via_asyncio() -> None:
            with pytest.raises(OSError, match="test guard"):
                await asyncio.open_connection("192.168.1.1", 80)

        asyncio.run(via_asyncio())
    assert attempts == ["10.0.0.1", "169.254.169.254", "fc00::1", "192.168.1.1"]


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://[::1]:8080/a/", "http://[::1]:8080/a"),
        ("http://[FC00::1]/a?utm_source=x", "http://[fc00::1]/a"),
        ("https://[2001:db8::1]:443/a", "https://[2001:db8::1]/a"),
    ],
)
def test_canonical_urls_keep_the_brackets_of_ipv6_literals(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_the_child_guard_refuses_and_records_private_addresses(
    children_loopback_only: Path,
) -> None:
    """The guard of the processes the tests start: a child's connection to 10.0.0.1 fails
    with ENETUNREACH and is logged (then taken out of the log, which fails any test that
    leaves a line in it)."""
    import subprocess
    import sys

    before = children_loopback_only.stat().st_size
    probe = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('10.0.0.1', 80))\n"
        "except OSError as exc:\n    print(exc.errno)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == str(errno.ENETUNREACH), done.stderr
    with children_loopback_only.open("r+", encoding="utf-8") as log:
        log.seek(before)
        assert log.read().split()[1:] == ["10.0.0.1"]
        log.truncate(before)
