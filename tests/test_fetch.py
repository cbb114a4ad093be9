"""The fetch stage against a real server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.errors import FetchError
from pipeline.models import Fetched
from pipeline.settings.config import Network
from pipeline.sources.fetch import Fetcher, parse_retry_after
from tests.conftest import FAST_NETWORK
from tests.fixture_server import FixtureServer, closed_port


def network(**overrides: Any) -> Network:
    return Network(**{**FAST_NETWORK, **overrides})


def fetch(url: str, net: Network | None = None, **kwargs: Any) -> Fetched:
    async def go() -> Fetched:
        async with Fetcher(net or network()) as fetcher:
            return await fetcher.fetch(url, **kwargs)

    return asyncio.run(go())


def fetch_error(url: str, net: Network | None = None, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, net, **kwargs)
    return info.value


def test_a_feed_is_fetched_with_validators_and_a_user_agent(server: FixtureServer) -> None:
    fetched = fetch(server.url("ouest-sante.rss"))
    assert fetched.status == 200 and fetched.body.startswith(b"<?xml")
    assert fetched.etag and fetched.last_modified
    (request,) = server.requests_for("ouest-sante.rss")
    assert request.headers["user-agent"].startswith("veille/")
    assert "https://www.atlanpolebiotherapies.com" in request.headers["user-agent"]
    assert "gzip" in request.headers["accept-encoding"]


def test_validators_are_sent_back_and_304_means_nothing_to_read(server: FixtureServer) -> None:
    first = fetch(server.url("ouest-sante.rss"))
    second = fetch(
        server.url("ouest-sante.rss"), etag=first.etag, last_modified=first.last_modified
    )
    assert second.not_modified and second.body == b""
    request = server.requests_for("ouest-sante.rss")[-1]
    assert request.headers["if-none-match"] == first.etag
    assert request.headers["if-modified-since"] == first.last_modified


def test_gzip_bodies_are_decoded(server: FixtureServer) -> None:
    payload = (server.root / "labnews-fr.rdf").read_bytes()
    import gzip

    def gzipped(handler: Any) -> None:
        FixtureServer.send(handler, 200, gzip.compress(payload), {"Content-Encoding": "gzip"})

    server.routes["gz.rdf"] = gzipped
    assert fetch(server.url("gz.rdf")).body == payload


def test_gzip_bomb_is_stopped_at_the_decompressed_limit(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/gzip-bomb"), network(max_body_bytes=5_000_000))
    assert error.kind == "too-large"
    assert "after decompression" in str(error)


def test_truncated_gzip_is_an_error(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/truncated-gzip"))
    assert error.kind == "encoding" and "truncated" in str(error)


def test_oversize_body_is_refused_while_streaming(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/big/50000000"), network(max_body_bytes=1_000_000))
    assert error.kind == "too-large" and "1,000,000" in str(error)


def test_declared_oversize_body_is_refused_before_reading(server: FixtureServer) -> None:
    (server.root / "large.rss").write_bytes(b"<rss>" + b" " * 2_000_000 + b"</rss>")
    error = fetch_error(server.url("large.rss"), network(max_body_bytes=1_000_000))
    assert error.kind == "too-large" and "2,000,011 bytes" in str(error)


def test_redirects_are_followed_up_to_the_limit(server: FixtureServer) -> None:
    fetched = fetch(server.url("_/redirect/3/ouest-sante.rss"), network(max_redirects=3))
    assert fetched.status == 200 and fetched.final_url == server.url("ouest-sante.rss")
    error = fetch_error(server.url("_/redirect/4/ouest-sante.rss"), network(max_redirects=3))
    assert error.kind == "redirect" and "more than 3 redirects" in str(error)


def test_redirect_loop_is_an_error(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/redirect-loop"))
    assert error.kind == "redirect"


def test_redirect_to_a_non_http_scheme_is_refused(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/redirect-to?url=file:///etc/passwd"))
    assert error.kind == "refused" and "file" in str(error)


def test_http_errors_name_the_status(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/status/404"))
    assert (error.kind, error.status, str(error)) == ("status", 404, "HTTP 404 Not Found")
    assert len(server.requests_for("_/status/404")) == 1  # a 404 is not retried


def test_5xx_is_retried_within_the_run(server: FixtureServer) -> None:
    fetched = fetch(server.url("_/flaky/2/ouest-sante.rss"), network(retries=2))
    assert fetched.status == 200 and fetched.attempts == 3
    error = fetch_error(server.url("_/status/502"), network(retries=1))
    assert error.status == 502 and len(server.requests_for("_/status/502")) == 2


def test_short_retry_after_is_waited_for_and_long_one_is_returned(server: FixtureServer) -> None:
    error = fetch_error(server.url("_/retry-after/429/3600"), network(retries=2, max_retry_after=2))
    assert error.status == 429 and error.retry_after == 3600
    assert (
        len(server.requests_for("_/retry-after/429/3600")) == 1
    )  # not worth waiting an hour in a run
    error = fetch_error(server.url("_/retry-after/503/1"), network(retries=1, max_retry_after=2))
    assert len(server.requests_for("_/retry-after/503/1")) == 2  # waited one second, tried again


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120
    later = email.utils.format_datetime(datetime(2026, 11, 28, 7, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == 3600
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None


def test_connection_refused_is_a_clear_error() -> None:
    error = fetch_error(f"http://127.0.0.1:{closed_port()}/feed.rss", network(retries=0))
    assert error.kind == "connect" and str(error) == "cannot connect: connection refused"


def test_a_silent_server_times_out(server: FixtureServer) -> None:
    error = fetch_error(
        server.url("_/slow/3/ouest-sante.rss"), network(read_timeout=0.5, retries=0)
    )
    assert error.kind == "timeout" and "silent for more than 0.5 s" in str(error)


def test_a_trickling_body_is_cut_by_the_total_timeout(server: FixtureServer) -> None:
    started = time.monotonic()
    error = fetch_error(
        server.url("_/trickle"), network(read_timeout=5, total_timeout=2, retries=0)
    )
    assert error.kind == "slow" and "within 2 s" in str(error)
    assert not error.transient  # a trickling server would trickle again: no retry in the run
    assert time.monotonic() - started < 30  # bounded; the figure itself belongs to `make bench`


def test_requests_to_one_host_are_spaced_by_the_politeness_delay(server: FixtureServer) -> None:
    async def go() -> None:
        async with Fetcher(network(per_host_delay=0.5, per_host_concurrency=2)) as fetcher:
            await asyncio.gather(
                *(fetcher.fetch(server.url(f"ouest-sante.rss?n={i}")) for i in range(3))
            )

    asyncio.run(go())
    starts = sorted(r.at for r in server.requests)
    assert len(starts) == 3
    # a lower bound, not a speed target: two delays of 0.5 s separate the three starts.
    # Arrival times carry connection jitter, so the bound is on the whole span, with slack.
    assert starts[-1] - starts[0] >= 0.8


# ------------------------------------------------------------- the address policy (SSRF)


def test_configured_loopback_url_is_trusted_but_its_redirect_to_loopback_is_not(
    server: FixtureServer,
) -> None:
    strict = network(allow_private=False)
    assert fetch(server.url("ouest-sante.rss"), strict, trusted=True).status == 200
    secret = server.url("secret.rss")
    error = fetch_error(server.url(f"_/redirect-to?url={secret}"), strict, trusted=True)
    assert error.kind == "refused" and "127.0.0.1 is loopback" in str(error)
    assert server.requests_for("secret.rss") == []


def test_discovered_loopback_url_is_never_requested(server: FixtureServer) -> None:
    error = fetch_error(server.url("secret.rss"), network(allow_private=False))
    assert error.kind == "refused" and "loopback" in str(error)
    assert server.requests == []


@pytest.mark.parametrize(
    "spelling", ["localhost", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1"]
)
def test_odd_spellings_of_loopback_are_refused_without_a_request(
    server: FixtureServer, spelling: str
) -> None:
    error = fetch_error(f"http://{spelling}:{server.port}/secret.rss", network(allow_private=False))
    assert error.kind == "refused"
    assert server.requests == []


def test_allow_private_lifts_the_policy(server: FixtureServer) -> None:
    secret = server.url("ouest-sante.rss")
    fetched = fetch(server.url(f"_/redirect-to?url={secret}"), network(allow_private=True))
    assert fetched.status == 200 and len(server.requests_for("ouest-sante.rss")) == 1


def test_the_suite_resolves_no_name_but_loopback() -> None:
    """The autouse guard of conftest.py: a test that reached for a real host fails here."""
    import socket

    with pytest.raises(socket.gaierror, match="loopback only"):
        socket.getaddrinfo("www.ouest-sante.example", 443)
    error = fetch_error("https://www.ouest-sante.example/feed.rss", network(retries=0))
    assert error.kind == "connect" and "host name not found" in str(error)
