"""Collecting: one source (feed, listing page or sitemap) -> its entries, before any
article page is fetched.

The collector fetches conditionally and parses in bounded workers; of the store it knows
only a ``known_urls`` function (a sitemap's candidates already stored are not news), so
`veille probe` collects without any database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.analysis.analyse import Analysis, EntryKey, parse_and_analyse_guarded
from pipeline.analysis.stories import StoryKey
from pipeline.errors import FetchError, ParseError
from pipeline.flow import KnownUrls, Slots
from pipeline.models import Entry, Fetched, ParsedFeed
from pipeline.settings.config import Config, Source
from pipeline.sources.dedupe import canonical_url
from pipeline.sources.fetch import ACCEPT_HTML, Fetches
from pipeline.sources.parse import parse_feed_guarded
from pipeline.sources.parse.listing import Listing, ListingSpec, parse_listing_guarded
from pipeline.sources.parse.sitemap import (
    SitemapLink,
    SitemapRequest,
    parse_sitemap_guarded,
    recent,
    to_entries,
)
from pipeline.sources.robots import Access, RobotsCache
from pipeline.sources.sandbox import Limits, Setup
from pipeline.storage.store import utcnow

MAX_CHILD_SITEMAPS = 10  # newest child sitemaps read from one index
SITEMAP_CHUNK = 500  # sitemap URLs looked up in the store at a time


@dataclass
class Collected:
    """What a source gave before any article page is fetched."""

    status: int
    entries: list[Entry] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    lang: str | None = None
    warnings: list[str] = field(default_factory=list)
    fresh_for: float | None = None  # a feed's cache hint (Cache-Control max-age, Expires)
    # the entries' analyses, when the feed was analysed as it was parsed (collect's setup)
    analyses: dict[EntryKey, tuple[Analysis, StoryKey]] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def canonical_or_same(url: str) -> str:
    try:
        return canonical_url(url)
    except ValueError:
        return url


async def require_robots(robots: RobotsCache, url: str, *, trusted: bool = False) -> None:
    """Raise FetchError unless robots.txt lets veille fetch ``url``."""
    verdict = await robots.verdict(url, trusted=trusted)
    if verdict.kind is Access.DISALLOWED:
        raise FetchError(f"{verdict.reason} ({url})", url=url, kind="robots")
    if not verdict.allowed:
        raise FetchError(verdict.reason, url=url, kind="robots")


class Collector:
    """Fetches and reads sources; parsing runs in bounded workers through ``slots``."""

    def __init__(
        self,
        config: Config,
        fetcher: Fetches,
        robots: RobotsCache,
        slots: Slots,
        *,
        known_urls: KnownUrls,
    ) -> None:
        self.config = config
        self.fetcher = fetcher
        self.robots = robots
        self.slots = slots
        self.known_urls = known_urls
        net = config.network
        self.parse_limits = Limits(timeout=net.parse_timeout, memory_mb=net.parse_memory_mb)

    async def collect(
        self, source: Source, state: dict[str, Any], *, setup: Setup | None = None
    ) -> Collected:
        """Raises FetchError or ParseError for the source as a whole. With the analysis
        ``setup``, a feed's entries are analysed in the worker that parses it."""
        if source.kind in ("page", "sitemap"):
            await require_robots(self.robots, source.url, trusted=True)
        fetched = await self.fetcher.fetch(
            source.url,
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            trusted=True,
            accept=ACCEPT_HTML if source.kind == "page" else None,
        )
        collected = Collected(
            fetched.status, etag=fetched.etag, last_modified=fetched.last_modified
        )
        if source.kind in ("feed", "search"):
            # a feed's own word on how long its answer stays fresh (listing pages and
            # sitemaps are HTML and XML of sites whose caching is not about their news)
            collected.fresh_for = fetched.fresh_for
        if fetched.not_modified:
            return collected
        try:
            await self._read(source, fetched, collected, setup=setup)
        except ParseError as exc:
            exc.status = fetched.status  # the row says what the server really answered
            raise
        return collected

    async def _read(
        self, source: Source, fetched: Fetched, collected: Collected, *, setup: Setup | None
    ) -> None:
        if not fetched.body:
            raise ParseError(f"empty body: the server answered {fetched.status} with nothing in it")
        if source.kind == "page":
            await self._read_pages(source, fetched, collected)
        elif source.kind == "sitemap":
            await self._read_sitemap(source, fetched, collected)
        else:
            parsed = await self._parse_feed(fetched, collected, setup=setup)
            collected.entries = list(parsed.entries)
            collected.lang = parsed.lang
            if parsed.bozo:
                collected.warnings.append(f"feed is malformed but usable: {parsed.bozo}")
            if parsed.skipped:
                collected.warnings.append(f"{parsed.skipped} entries skipped")

    async def _parse_feed(
        self, fetched: Fetched, collected: Collected, *, setup: Setup | None
    ) -> ParsedFeed:
        """The feed parsed in a bounded worker, its entries analysed there too with a setup."""
        common: dict[str, Any] = {
            "size": len(fetched.body),
            "headers": fetched.headers,
            "url": fetched.final_url,
            "limits": self.parse_limits,
        }
        if setup is None:
            return await self.slots.run(parse_feed_guarded, fetched.body, **common)
        parsed, collected.analyses = await self.slots.run(
            parse_and_analyse_guarded, fetched.body, setup=setup, **common
        )
        return parsed

    async def _listing(self, fetched: Fetched, spec: ListingSpec) -> Listing:
        """One listing page read in a bounded worker."""
        return await self.slots.run(
            parse_listing_guarded,
            fetched.body,
            size=len(fetched.body),
            url=fetched.final_url,
            spec=spec,
            limits=self.parse_limits,
        )

    async def _read_pages(self, source: Source, fetched: Fetched, collected: Collected) -> None:
        spec = ListingSpec(
            selector=source.selector or "a",
            item_selector=source.item_selector,
            title_selector=source.title_selector,
            date_selector=source.date_selector,
            next_selector=source.next_selector,
        )
        listing = await self._listing(fetched, spec)
        collected.entries = list(listing.entries)
        next_url, page = listing.next_url, 1
        while next_url and page < source.max_pages:
            page += 1
            try:
                await require_robots(self.robots, next_url)
                more = await self.fetcher.fetch(next_url, accept=ACCEPT_HTML)
                listing = await self._listing(more, spec)
            except (FetchError, ParseError) as exc:
                collected.warnings.append(f"listing page {page} ({next_url}): {exc}")
                break
            collected.entries += listing.entries
            next_url = listing.next_url

    def _sitemap_request(self, source: Source, fetched: Fetched, now: datetime) -> SitemapRequest:
        return SitemapRequest(
            data=fetched.body,
            url=fetched.final_url,
            max_bytes=self.config.network.max_body_bytes,
            max_age_days=source.max_age_days,
            now=now,
            canonical=canonical_or_same,
        )

    async def _read_sitemap(self, source: Source, fetched: Fetched, collected: Collected) -> None:
        """Parsing, the age limit, sorting and canonical URLs happen in the bounded worker;
        the collector only asks which of the candidates are known."""
        now = utcnow()
        sitemap = await self.slots.run(
            parse_sitemap_guarded,
            self._sitemap_request(source, fetched, now),
            size=len(fetched.body),
            limits=self.parse_limits,
        )
        links = list(sitemap.links)
        if sitemap.is_index:
            # an unchanged index says nothing of its children: read them on every run
            collected.etag = collected.last_modified = None
            links = []
            children = recent(
                sitemap.links, max_age_days=source.max_age_days, limit=MAX_CHILD_SITEMAPS, now=now
            )
            for child in children:
                try:
                    await require_robots(self.robots, child.url)
                    body = await self.fetcher.fetch(child.url)
                    part = await self.slots.run(
                        parse_sitemap_guarded,
                        self._sitemap_request(source, body, now),
                        size=len(body.body),
                        limits=self.parse_limits,
                    )
                except (FetchError, ParseError) as exc:
                    collected.warnings.append(f"sitemap {child.url}: {exc}")
                    continue
                if part.is_index:
                    collected.warnings.append(f"sitemap {child.url}: nested index skipped")
                    continue
                links += part.links
        collected.entries = to_entries(
            choose_sitemap_links(
                links,
                self.known_urls,
                max_age_days=source.max_age_days,
                max_urls=source.max_urls,
                now=now,
            )
        )


def choose_sitemap_links(
    links: list[SitemapLink],
    known_urls: KnownUrls,
    *,
    max_age_days: int,
    max_urls: int,
    now: datetime,
) -> list[SitemapLink]:
    """URLs already stored are not news: leave the room under max_urls to the others,
    asking about the newest candidates first, a chunk at a time."""
    ordered = recent(tuple(links), max_age_days=max_age_days, limit=len(links), now=now)
    chosen: list[SitemapLink] = []
    seen: set[str] = set()
    for start in range(0, len(ordered), SITEMAP_CHUNK):
        chunk = []
        for link in ordered[start : start + SITEMAP_CHUNK]:
            if link.key not in seen:
                seen.add(link.key)
                chunk.append(link)
        known = known_urls([lk.key for lk in chunk])
        chosen += [lk for lk in chunk if lk.key not in known][: max_urls - len(chosen)]
        if len(chosen) >= max_urls:
            break
    return chosen
