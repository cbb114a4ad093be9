"""robots.txt verdicts as kinds, and a refused redirect hop told apart by its error's kind,
never by the end of its message. Against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pipeline.errors import FetchError
from pipeline.run import run
from pipeline.settings.config import Network
from pipeline.sources.fetch import Fetcher, HopRefused
from pipeline.sources.robots import ALLOWED, FORBIDDEN, Access, RobotsCache, Verdict
from tests.conftest import FAST_NETWORK, WriteConfig
from tests.fixture_server import FixtureServer, closed_port
from tests.sqlite_rows import rows as query
from tests.test_web import PARAGRAPHS, article_page, feed, source, write


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FixtureServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "robots.txt").write_text(
        "User-agent: *\nDisallow: /abonnes/\n\n"
        "User-agent: veille\nDisallow: /brouillons/\nDisallow: /abonnes/prive/\n",
        encoding="utf-8",
    )
    with FixtureServer(root) as server:
        yield server


def verdicts(urls: list[str], **network: Any) -> list[Verdict]:
    async def go() -> list[Verdict]:
        async with Fetcher(Network(**{**FAST_NETWORK, **network})) as fetcher:
            robots = RobotsCache(fetcher)
            return [await robots.verdict(url) for url in urls]

    return asyncio.run(go())


def test_each_verdict_has_its_kind_and_says_why_a_host_is_off(site: FixtureServer) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/actu/a.html"
    allowed, members_only, drafts, unreachable = verdicts(
        [
            site.url("actu/valneva.html"),
            site.url("abonnes/xenothera.html"),
            site.url("brouillons/goliver.html"),
            dead,
        ]
    )
    assert allowed == ALLOWED and allowed.allowed
    # veille has a group of its own: the `*` group's rules are not veille's (RFC 9309)
    assert members_only == ALLOWED
    assert drafts == FORBIDDEN and drafts.kind is Access.DISALLOWED and not drafts.allowed
    assert unreachable.kind is Access.UNREACHABLE and not unreachable.allowed
    assert unreachable.reason.startswith("robots.txt unreachable, host skipped for this run: ")
    assert len(site.requests_for("robots.txt")) == 1  # once per host and run


def test_a_host_the_address_policy_refuses_is_refused_not_disallowed(
    site: FixtureServer,
) -> None:
    (refused,) = verdicts([site.url("actu/valneva.html")], allow_private=False)
    assert refused.kind is Access.REFUSED and "127.0.0.1" in refused.reason
    assert site.requests_for("robots.txt") == []


def test_a_hop_refusal_gives_the_error_its_kind_and_keeps_the_message(
    site: FixtureServer,
) -> None:
    write(site, "abonnes/prive/a.html", article_page("Réservé", PARAGRAPHS))
    target = site.url("abonnes/prive/a.html")

    async def fetch(refusal: HopRefused) -> FetchError:
        async def check(url: str) -> HopRefused | None:
            return refusal if url == target else None

        async with Fetcher(Network(**FAST_NETWORK)) as fetcher:
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(site.url("_/redirect/1/abonnes/prive/a.html"), hop_check=check)
        return info.value

    robots = asyncio.run(fetch(HopRefused("disallowed by the site's robots.txt", kind="robots")))
    other = asyncio.run(fetch(HopRefused("robots.txt unreachable, host skipped for this run")))
    assert (robots.kind, other.kind) == ("robots", "refused")
    assert str(robots) == f"redirect to {target}: disallowed by the site's robots.txt"
    assert site.requests_for("abonnes/prive/a.html") == []  # never followed


def test_a_redirect_to_a_host_whose_robots_txt_is_unreachable_is_an_error_not_robots(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/eco/a.html"
    write(
        site,
        "feed.rss",
        feed(site.base, [("Déplacé", f"/_/redirect-to?url={quote(dead, safe='')}", "Lien.")]),
    )
    run(write_config(sources=[source(site, "press", "feed.rss")]), db_path=db_path)
    ((text, status),) = query(db_path, "SELECT text, text_status FROM articles")
    assert text is None and status.startswith("error: ")
    assert f"redirect to {dead}: robots.txt unreachable" in status
