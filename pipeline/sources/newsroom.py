"""A member's website -> where it publishes its news (`veille members newsrooms`), found politely.

Discovery goes in a fixed order, as miniflux's subscription finder does; each step is a
small function that returns what it found with the reason, and the first step that
finds something wins:

0. robots.txt: a site whose robots.txt forbids its home page to veille is left alone
   (kind ``robots``); one whose robots.txt cannot be read is off (``unreachable``, RFC
   9309: a robots.txt that cannot be fetched disallows everything).
1. the home page (``unreachable`` when it cannot be read); a website address that is
   itself a feed is the feed.
2. the feeds the home page advertises (``<link rel=alternate>``: RSS, Atom, JSON Feed),
   comment feeds aside, news-named ones first.
3. the pages its navigation calls news, actualités, presse, communiqués, newsroom (and
   from those, one level down, the press-release pages), and the feeds they advertise.
4. the usual feed paths (WordPress's ``/feed/``, ``/rss.xml`` ... and each news page's
   ``feed/``), asked without following redirects: a site that answers every path with
   its home page, or redirects there, has no feed at that path.
5. news sitemaps named in robots.txt: a Google News sitemap, or one named news,
   actualités, presse, communiqués (a sitemap index: its children so named).
6. last, a press listing page: the CSS selector that picks its article links, tried on
   the page with the listing parser a run uses before it is proposed.

A feed is read before it is proposed: it must parse, hold at least one entry with a
link, and not be a comment feed. Nothing found is ``none``, with what was tried.

Bounds, per site: every request is counted (robots.txt and each redirect hop too) and
the site stops at ``max_requests``; its whole discovery stops at its time ``budget``; no
request is retried; bodies are capped; robots.txt is read for every host asked and
checked before every request and every redirect hop; every address goes through the
address policy (a directory's website is data, not the operator's word: no trusted
first hop). Pages, feeds and sitemaps are read in bounded child processes. The stage
below it (the CLI) writes what was found with :func:`add_newsrooms`: spliced into
sources.yaml, validated, atomic, nothing written on a problem.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from protego import Protego

from pipeline.errors import FetchError, ParseError
from pipeline.models import Fetched, ParsedFeed
from pipeline.settings.config import (
    Config,
    Network,
    load_config,
    slugify,
)
from pipeline.sources.fetch import ACCEPT_FEEDS, ACCEPT_HTML, Fetcher, HopRefused
from pipeline.sources.opml import feed_key, splice_sources
from pipeline.sources.parse import parse_feed_guarded
from pipeline.sources.parse.listing import ListingSpec, parse_listing_guarded
from pipeline.sources.parse.site import (
    COMMENT_ENTRY,
    COMMENT_WORDS,
    MIN_LISTING_LINKS,
    Alternate,
    PageFacts,
    fold,
    news_score,
    read_page_guarded,
    same_site,
)
from pipeline.sources.parse.sitemap import Sitemap, SitemapRequest, parse_sitemap_guarded
from pipeline.sources.robots import AGENT_TOKEN, MAX_CRAWL_DELAY, MAX_ROBOTS_BYTES
from pipeline.sources.sandbox import Limits

logger = logging.getLogger(__name__)

MAX_REQUESTS = 30  # a site's requests, robots.txt and redirect hops included
DEFAULT_BUDGET = 90.0  # seconds for one site's whole discovery
SITES_AT_ONCE = 8
MAX_ALTERNATES_TRIED = 3  # advertised feeds read per page
MAX_NEWS_PAGES = 3  # news pages read per site
MAX_SITEMAPS = 3  # sitemaps named in robots.txt read per site
MAX_SITEMAP_CHILDREN = 2  # news-named children read per sitemap index
MAX_PAGE_BYTES = 2_000_000  # a home or news page
MAX_FEED_BYTES = 5_000_000  # a candidate feed or sitemap
# the usual feed paths, most common first (WordPress, then static generators and CMSs)
FEED_PATHS = (
    "/feed/",
    "/rss.xml",
    "/feed.xml",
    "/atom.xml",
    "/rss/",
    "/rss",
    "/index.xml",
    "/feed",
)
MAX_GUESSES = 10  # usual paths and news pages' feed/ asked per site
# alternates whose title says they are about something else than news come last
_OTHER_FEEDS = (
    "agenda",
    "event",
    "evenement",
    "job",
    "emploi",
    "offre",
    "career",
    "carriere",
    "podcast",
)


class Kind(StrEnum):
    """What discovery found for a site."""

    FEED = "feed"
    SITEMAP = "sitemap"
    PAGE = "page"
    NONE = "none"  # reachable, no news found
    UNREACHABLE = "unreachable"  # the home page (or robots.txt) could not be read
    ROBOTS = "robots"  # robots.txt forbids the home page to veille

    @property
    def found(self) -> bool:
        return self in (Kind.FEED, Kind.SITEMAP, Kind.PAGE)


@dataclass(frozen=True, slots=True)
class Website:
    """A member (or the cluster) and its website, as the directory gives it."""

    member: str  # its id
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class Newsroom:
    """Where a member publishes its news, or why nothing was proposed."""

    member: str
    kind: Kind
    url: str | None = None  # the source to add (feed, sitemap or page); None otherwise
    selector: str | None = None  # for a page: the CSS selector of its article links
    reason: str = ""
    requests: int = 0  # requests this site cost

    def as_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "kind": str(self.kind),
            "url": self.url,
            "selector": self.selector,
            "reason": self.reason,
        }


# ---------------------------------------------------------------- readers (bounded children)


@dataclass(frozen=True, slots=True)
class Readers:
    """How fetched bytes are read: blocking functions, by default each in a bounded child
    process. Passed in, so the order of discovery can be tested apart from the parsers."""

    page: Callable[[bytes, str], PageFacts]
    feed: Callable[[bytes, dict[str, str], str], ParsedFeed]
    sitemap: Callable[[bytes, str], Sitemap]
    listing: Callable[[bytes, str, str], int]  # how many article links the selector gives

    @classmethod
    def bounded(cls, network: Network) -> Readers:
        limits = Limits(timeout=network.parse_timeout, memory_mb=network.parse_memory_mb)

        def page(html: bytes, url: str) -> PageFacts:
            return read_page_guarded(html, url=url, limits=limits)

        def feed(data: bytes, headers: dict[str, str], url: str) -> ParsedFeed:
            return parse_feed_guarded(data, headers=headers, url=url, limits=limits)

        def sitemap(data: bytes, url: str) -> Sitemap:
            from datetime import UTC, datetime

            request = SitemapRequest(
                data=data,
                url=url,
                max_bytes=MAX_FEED_BYTES * 4,
                max_age_days=366,
                now=datetime.now(UTC),
                canonical=str.strip,
            )
            return parse_sitemap_guarded(request, limits=limits)

        def listing(html: bytes, url: str, selector: str) -> int:
            spec = ListingSpec(selector=selector)
            return len(parse_listing_guarded(html, url=url, spec=spec, limits=limits).entries)

        return cls(page=page, feed=feed, sitemap=sitemap, listing=listing)


# ---------------------------------------------------------------- one site


class _OutOfRequests(Exception):
    """The site's request budget is spent."""


class _Forbidden(Exception):
    """robots.txt forbids the URL (nothing was sent to it)."""


@dataclass
class _Page:
    url: str  # after redirects
    body: bytes
    facts: PageFacts
    label: str  # how a person names it: "the home page", "the news page /actualites/"


@dataclass
class _Visit:
    """One site's discovery: its requests, robots.txt rules and what each step noted."""

    site: Website
    fetcher: Fetcher
    readers: Readers
    max_requests: int
    requests: int = 0
    reached: bool = False  # the home page answered
    robots: dict[str, Protego | str] = field(default_factory=dict)  # origin -> rules or why off
    asked: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ requests

    def _spend(self) -> None:
        if self.requests >= self.max_requests:
            raise _OutOfRequests
        self.requests += 1

    async def rules(self, url: str) -> Protego | str:
        """The robots.txt of the URL's origin (read once), or why the host is off."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if origin not in self.robots:
            self._spend()

            async def hop(target: str) -> HopRefused | None:
                if self.requests >= self.max_requests:
                    return HopRefused("the site's request budget is spent")
                self.requests += 1
                return None

            try:
                fetched = await self.fetcher.fetch(
                    f"{origin}/robots.txt",
                    accept="text/plain",
                    max_bytes=MAX_ROBOTS_BYTES,
                    hop_check=hop,
                )
                rules: Protego | str = Protego.parse(fetched.body.decode("utf-8", "replace"))
                assert isinstance(rules, Protego)
                delay = rules.crawl_delay(AGENT_TOKEN)
                if delay:
                    self.fetcher.slow_down(origin, min(float(delay), MAX_CRAWL_DELAY))
            except FetchError as exc:
                if exc.kind == "status" and exc.status is not None and 400 <= exc.status < 500:
                    rules = Protego.parse("")  # no robots.txt: everything is allowed
                else:
                    rules = f"robots.txt unreachable ({exc}): the site is off (RFC 9309)"
            self.robots[origin] = rules
        return self.robots[origin]

    async def allowed(self, url: str) -> bool:
        rules = await self.rules(url)
        return isinstance(rules, Protego) and bool(rules.can_fetch(url, AGENT_TOKEN))

    async def get(self, url: str, *, accept: str, max_bytes: int, follow: bool = True) -> Fetched:
        """One GET, counted, after robots.txt said yes; every redirect hop is counted and
        checked against robots.txt too (``follow=False``: none is followed). Raises
        FetchError, _Forbidden, _OutOfRequests."""
        if not await self.allowed(url):
            raise _Forbidden(url)
        self._spend()
        self.asked.add(url)

        async def hop(target: str) -> HopRefused | None:
            if not follow:
                return HopRefused("a guessed path that redirects is not a feed", kind="redirect")
            if self.requests >= self.max_requests:
                return HopRefused("the site's request budget is spent")
            if not await self.allowed(target):
                return HopRefused("robots.txt disallows the redirect target", kind="robots")
            self.requests += 1
            return None

        return await self.fetcher.fetch(url, accept=accept, max_bytes=max_bytes, hop_check=hop)

    # ------------------------------------------------------------ reading what was fetched

    async def page(self, url: str, label: str) -> _Page | None:
        """A page fetched and read; None (with a note) when it cannot be."""
        try:
            fetched = await self.get(url, accept=ACCEPT_HTML, max_bytes=MAX_PAGE_BYTES)
            facts = await asyncio.to_thread(self.readers.page, fetched.body, fetched.final_url)
        except _Forbidden:
            self.notes.append(f"{label} {url}: disallowed by robots.txt, not asked")
            return None
        except (FetchError, ParseError) as exc:
            self.notes.append(f"{label} {url}: {exc}")
            return None
        return _Page(url=fetched.final_url, body=fetched.body, facts=facts, label=label)

    async def feed(self, url: str, why: str, *, follow: bool = True) -> Newsroom | None:
        """The URL when it is a feed with entries (and not of comments); else None."""
        if url in self.asked:
            return None
        try:
            fetched = await self.get(
                url, accept=ACCEPT_FEEDS, max_bytes=MAX_FEED_BYTES, follow=follow
            )
            parsed = await asyncio.to_thread(
                self.readers.feed, fetched.body, fetched.headers, fetched.final_url
            )
        except _Forbidden:
            self.notes.append(f"{url}: disallowed by robots.txt, not asked")
            return None
        except (FetchError, ParseError) as exc:
            if follow:  # a guessed path that is not there is no news: not worth a note
                self.notes.append(f"{url}: {exc}")
            return None
        with_links = sum(1 for entry in parsed.entries if entry.link)
        comments = sum(1 for entry in parsed.entries if COMMENT_ENTRY.match(fold(entry.title)))
        if COMMENT_WORDS.search(fold(parsed.title)) or (
            comments and comments * 2 >= len(parsed.entries)
        ):
            self.notes.append(f"{url}: a comment feed ({parsed.title!r})")
            return None
        if not with_links:
            self.notes.append(f"{url}: a feed without any entry")
            return None
        return Newsroom(
            self.site.member,
            Kind.FEED,
            url=fetched.final_url,
            reason=f"{why}; {with_links} entries",
        )

    async def advertised(self, page: _Page) -> Newsroom | None:
        """Step 2 (and 3): the feeds a page advertises, comment feeds aside."""
        candidates = [a for a in page.facts.alternates if not a.comments]
        skipped = len(page.facts.alternates) - len(candidates)
        if skipped:
            self.notes.append(f"{page.label}: {skipped} comment feed(s) left aside")
        for alternate in sorted(candidates, key=_alternate_rank)[:MAX_ALTERNATES_TRIED]:
            named = f" as {alternate.title!r}" if alternate.title else ""
            found = await self.feed(alternate.url, f"advertised by {page.label}{named}")
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------ the steps, in order

    async def run(self) -> Newsroom:
        home = self.site.url
        # 0. robots.txt: may veille read this site at all?
        rules = await self.rules(home)
        if isinstance(rules, str):
            return self.result(Kind.UNREACHABLE, reason=rules)
        if not rules.can_fetch(home, AGENT_TOKEN):
            return self.result(Kind.ROBOTS, reason="robots.txt forbids the home page to veille")
        # 1. the home page (a website address may be a feed itself)
        try:
            fetched = await self.get(home, accept=ACCEPT_HTML, max_bytes=MAX_PAGE_BYTES)
        except FetchError as exc:
            if exc.kind == "robots":  # it redirects where robots.txt keeps veille out
                return self.result(Kind.ROBOTS, reason=f"the home page: {exc}")
            return self.result(Kind.UNREACHABLE, reason=f"the home page: {exc}")
        except _Forbidden:  # a redirect target robots.txt forbids
            return self.result(Kind.ROBOTS, reason="robots.txt forbids the home page to veille")
        self.reached = True
        if _looks_like_feed(fetched):
            found = await self._self_feed(fetched)
            if found is not None:
                return found
        try:
            facts = await asyncio.to_thread(self.readers.page, fetched.body, fetched.final_url)
        except ParseError as exc:
            return self.result(Kind.NONE, reason=f"the home page cannot be read: {exc}")
        homepage = _Page(fetched.final_url, fetched.body, facts, "the home page")
        # 2. the feeds the home page advertises
        if found := await self.advertised(homepage):
            return self.result(found.kind, url=found.url, reason=found.reason)
        # 3. the pages the navigation calls news, and the feeds they advertise (a website
        # given as its news page, "https://acme.example/fr/actualites/", is one already)
        pages: list[tuple[int, _Page]] = []
        if score := news_score("", homepage.url):
            pages.append((score, homepage))
        queue = list(facts.news_links)
        seen = {homepage.url.rstrip("/")}
        while queue and len(pages) < MAX_NEWS_PAGES:
            link = queue.pop(0)
            if link.url.rstrip("/") in seen:
                continue
            seen.add(link.url.rstrip("/"))
            page = await self.page(
                link.url, f"the news page {link.text!r}" if link.text else "a news page"
            )
            if page is None:
                continue
            pages.append((link.score, page))
            if found := await self.advertised(page):
                return self.result(found.kind, url=found.url, reason=found.reason)
            # one level down: the press releases of a "Presse" page
            deeper = [n for n in page.facts.news_links if n.score > link.score]
            queue = sorted(deeper + queue, key=lambda n: -n.score)
        if not pages:
            self.notes.append("no link of the home page reads as news")
        # 4. the usual feed paths, no redirect followed
        for url, why in _guesses(homepage.url, [p for _, p in pages]):
            if found := await self.feed(url, why, follow=False):
                return self.result(found.kind, url=found.url, reason=found.reason)
        # 5. news sitemaps named in robots.txt
        if found := await self.sitemaps(rules, homepage.url):
            return found
        # 6. a press listing page: its article links' selector, tried on the page
        for _, page in sorted(pages, key=lambda item: -item[0]):
            if found := await self.listing(page):
                return found
        tried = "; ".join(self.notes[-4:])
        return self.result(
            Kind.NONE,
            reason="no feed, news sitemap or press listing found"
            + (f" ({tried})" if tried else ""),
        )

    async def _self_feed(self, fetched: Fetched) -> Newsroom | None:
        try:
            parsed = await asyncio.to_thread(
                self.readers.feed, fetched.body, fetched.headers, fetched.final_url
            )
        except ParseError:
            return None
        if not any(entry.link for entry in parsed.entries):
            return None
        return self.result(
            Kind.FEED, url=fetched.final_url, reason="the website's address is itself a feed"
        )

    async def sitemaps(self, rules: Protego, base: str) -> Newsroom | None:
        """Step 5: a news sitemap among those robots.txt names (on the site itself)."""
        named = [urljoin(base, str(u).strip()) for u in rules.sitemaps]
        named = [u for u in dict.fromkeys(named) if same_site(u, base)][:MAX_SITEMAPS]
        if not named:
            self.notes.append("robots.txt names no sitemap")
        for url in named:
            sitemap = await self._sitemap(url)
            if sitemap is None:
                continue
            if not sitemap.is_index:
                if _news_sitemap(url, sitemap):
                    return self._sitemap_found(url, sitemap, "named in robots.txt")
                continue
            children = [
                link.url
                for link in sitemap.links
                if same_site(link.url, base) and _news_path(link.url)
            ][:MAX_SITEMAP_CHILDREN]
            for child in children:
                found = await self._sitemap(child)
                if found is not None and not found.is_index and _news_sitemap(child, found):
                    return self._sitemap_found(child, found, f"in the sitemap index {url}")
        return None

    async def _sitemap(self, url: str) -> Sitemap | None:
        if url in self.asked:
            return None
        try:
            fetched = await self.get(url, accept="application/xml", max_bytes=MAX_FEED_BYTES)
            return await asyncio.to_thread(self.readers.sitemap, fetched.body, fetched.final_url)
        except _Forbidden:
            self.notes.append(f"the sitemap {url}: disallowed by robots.txt, not asked")
        except (FetchError, ParseError) as exc:
            self.notes.append(f"the sitemap {url}: {exc}")
        return None

    def _sitemap_found(self, url: str, sitemap: Sitemap, where: str) -> Newsroom:
        kind = (
            "a Google News sitemap" if any(lk.title for lk in sitemap.links) else "a news sitemap"
        )
        return self.result(
            Kind.SITEMAP, url=url, reason=f"{kind} {where}; {len(sitemap.links)} URLs"
        )

    async def listing(self, page: _Page) -> Newsroom | None:
        """Step 6: the page's article links, by a selector the listing parser confirms."""
        guess = page.facts.listing
        if guess is None:
            self.notes.append(f"{page.label}: no list of article links")
            return None
        try:
            count = await asyncio.to_thread(
                self.readers.listing, page.body, page.url, guess.selector
            )
        except ParseError as exc:
            self.notes.append(f"{page.label}: the selector {guess.selector!r} fails: {exc}")
            return None
        if count < MIN_LISTING_LINKS:
            self.notes.append(f"{page.label}: the selector {guess.selector!r} gives {count} links")
            return None
        return self.result(
            Kind.PAGE,
            url=page.url,
            selector=guess.selector,
            reason=f"{page.label}, a press listing without a feed; {count} article links",
        )

    def result(
        self, kind: Kind, *, url: str | None = None, selector: str | None = None, reason: str = ""
    ) -> Newsroom:
        return Newsroom(
            self.site.member,
            kind,
            url=url,
            selector=selector,
            reason=reason,
            requests=self.requests,
        )

    def gave_up(self, why: str) -> Newsroom:
        kind = Kind.NONE if self.reached else Kind.UNREACHABLE
        tried = "; ".join(self.notes[-3:])
        return self.result(kind, reason=why + (f" ({tried})" if tried else ""))


def _alternate_rank(alternate: Alternate) -> tuple[int, int]:
    """News-named feeds first, feeds named for something else (events, jobs) last."""
    title = fold(alternate.title)
    other = any(word in title or word in alternate.url.lower() for word in _OTHER_FEEDS)
    return (1 if other else 0, -news_score(alternate.title, alternate.url))


def _looks_like_feed(fetched: Fetched) -> bool:
    kind = fetched.headers.get("content-type", "").lower()
    head = fetched.body[:200].lstrip().lower()
    return any(t in kind for t in ("rss", "atom", "xml", "json")) or head.startswith(
        (b"<?xml", b"<rss", b"<feed", b"{")
    )


def _news_path(url: str) -> bool:
    return news_score("", url) > 0 or "news" in urlsplit(url).path.lower()


def _news_sitemap(url: str, sitemap: Sitemap) -> bool:
    """A Google News sitemap (its URLs carry news titles), or a sitemap named for news."""
    if not sitemap.links:
        return False
    return any(link.title for link in sitemap.links) or _news_path(url)


def _guesses(home: str, pages: Sequence[_Page]) -> list[tuple[str, str]]:
    parts = urlsplit(home)
    origin = f"{parts.scheme}://{parts.netloc}"
    found = [(origin + path, f"the usual feed path {path}") for path in FEED_PATHS]
    for page in pages:
        if same_site(page.url, home):
            path = urlsplit(page.url).path.rstrip("/")
            if path:
                found.insert(0, (f"{origin}{path}/feed/", f"the feed path of {page.label}"))
    return list(dict(found).items())[:MAX_GUESSES]


async def discover(
    site: Website,
    *,
    fetcher: Fetcher,
    readers: Readers,
    budget: float = DEFAULT_BUDGET,
    max_requests: int = MAX_REQUESTS,
) -> Newsroom:
    """Where one site publishes its news (see the module). Never raises for the site's
    sake: every failure is a kind with its reason."""
    visit = _Visit(site, fetcher, readers, max_requests)
    try:
        async with asyncio.timeout(budget):
            found = await visit.run()
    except TimeoutError:
        found = visit.gave_up(f"the site's {budget:g} s ran out")
    except _OutOfRequests:
        found = visit.gave_up(f"the site's {max_requests} requests were spent")
    logger.info(
        "newsroom member=%s kind=%s url=%s requests=%d",
        site.member,
        found.kind,
        found.url,
        found.requests,
    )
    return found


async def discover_all(
    sites: Sequence[Website],
    network: Network,
    *,
    budget: float = DEFAULT_BUDGET,
    max_requests: int = MAX_REQUESTS,
    readers: Readers | None = None,
    progress: Callable[[Newsroom], None] | None = None,
) -> list[Newsroom]:
    """Every site's newsroom, several sites at once, in the order given. No request is
    retried (a site that fails fails once, within its budget)."""
    quiet = network.model_copy(update={"retries": 0})
    readers = readers or Readers.bounded(network)
    at_once = asyncio.Semaphore(max(1, min(SITES_AT_ONCE, network.concurrency)))
    async with Fetcher(quiet) as fetcher:

        async def one(site: Website) -> Newsroom:
            async with at_once:
                found = await discover(
                    site, fetcher=fetcher, readers=readers, budget=budget, max_requests=max_requests
                )
            if progress:
                progress(found)
            return found

        return list(await asyncio.gather(*(one(site) for site in sites)))


def websites(config: Config, *, member: str | None = None) -> list[Website]:
    """The cluster and the members with a website (one member: ``member``)."""
    found = (
        [Website(config.cluster.id, config.cluster.name, config.cluster.website)]
        if (config.cluster.website)
        else []
    )
    found += [
        Website(m.slug, m.name, m.website)
        for m in config.members
        if m.website and m.kind == "member"
    ]
    return [w for w in found if member is None or w.member == member]


# ---------------------------------------------------------------- writing sources.yaml


@dataclass(frozen=True, slots=True)
class Proposal:
    """A source to add to sources.yaml: where it was found, how to name it, whose it is."""

    found: Newsroom  # a feed, sitemap or page
    base_id: str  # its id, before -2, -3 make it unique
    name: str
    owner: str | None = None  # a member's own newsroom
    site: str | None = None  # the web site it belongs to (an outlet's home page)


@dataclass
class SourcesWritten:
    config_path: str
    added: list[tuple[str, Proposal]] = field(default_factory=list)  # (new id, proposal)
    already: list[tuple[Proposal, str]] = field(default_factory=list)  # (proposal, whose copy)
    wrote: bool = False

    def summary(self, *, dry_run: bool = False, what: str = "newsroom(s)") -> str:
        lines = [f"{len(self.added)} {what} to add, {len(self.already)} already sources"]
        lines += [f"  + {sid}: {p.found.kind} {p.found.url}" for sid, p in self.added]
        lines += [f"  = {p.base_id}: {p.found.url} {whose}" for p, whose in self.already]
        if self.wrote:
            lines.append(f"  wrote {self.config_path}; the next `veille run` reads them")
        elif self.added and dry_run:
            lines.append("  dry run: nothing written")
        elif not self.added:
            lines.append("  nothing to change")
        return "\n".join(lines)


def _entry(source_id: str, proposal: Proposal) -> dict[str, Any]:
    found = proposal.found
    entry: dict[str, Any] = {"id": source_id, "kind": str(found.kind), "name": proposal.name}
    entry["url"] = found.url
    if proposal.owner:
        entry["owner"] = proposal.owner
    if proposal.site:
        entry["site"] = proposal.site
    if found.kind is Kind.PAGE and found.selector:
        entry["selector"] = found.selector
    return entry


def add_sources(
    proposals: Sequence[Proposal],
    *,
    config_path: str | Path,
    comment: str,
    dry_run: bool = False,
) -> SourcesWritten:
    """Add the proposed sources to ``config_path``: spliced after the last source (the rest
    of the file as it was) under ``comment``, validated as a whole configuration, written
    atomically; one whose URL is already a source is skipped, so doing it twice adds
    nothing. Raises ConfigError, and then nothing is written."""
    config_path = Path(config_path)
    config = load_config(config_path)  # a broken configuration is refused before any change
    report = SourcesWritten(config_path=str(config_path))
    known = {
        feed_key(s.url): f'already the source "{s.id}"' for s in config.specs if s.kind != "search"
    }
    taken = {spec.id for spec in config.specs}
    entries: list[dict[str, Any]] = []
    for proposal in proposals:
        if not proposal.found.kind.found or proposal.found.url is None:
            continue
        key = feed_key(proposal.found.url)
        if key in known:
            report.already.append((proposal, known[key]))
            continue
        base = (slugify(proposal.base_id) or "source")[:72].rstrip("-")
        source_id, number = base, 2
        while source_id in taken:
            source_id, number = f"{base}-{number}", number + 1
        taken.add(source_id)
        known[key] = f'already the source "{source_id}"'
        report.added.append((source_id, proposal))
        entries.append(_entry(source_id, proposal))
    if not entries:
        return report
    report.wrote = splice_sources(
        config, entries, comments={0: comment}, what="sources", dry_run=dry_run
    )
    return report


def add_newsrooms(
    found: Sequence[Newsroom],
    *,
    config_path: str | Path,
    dry_run: bool = False,
    today: date | None = None,
) -> SourcesWritten:
    """Add the newsrooms found to the sources of ``config_path``, each with the ``owner`` it
    belongs to (see :func:`add_sources`)."""
    config = load_config(config_path)
    names = {config.cluster.id: config.cluster.name, **{m.slug: m.name for m in config.members}}
    label = "actualités" if config.digest.language == "fr" else "news"
    proposals = [
        Proposal(
            found=newsroom,
            base_id=f"{newsroom.member}-newsroom",
            name=f"{names.get(newsroom.member, newsroom.member)} – {label}",
            owner=newsroom.member,
        )
        for newsroom in found
    ]
    return add_sources(
        proposals,
        config_path=config_path,
        dry_run=dry_run,
        comment=(
            "newsrooms found on the members' websites "
            f"(veille members newsrooms, {today or date.today()})"
        ),
    )
