"""Article pages: which pages a source's new articles need (decided without I/O), fetching
and extracting them (I/O, in bounded workers), and what the pages add to the articles
(decided without I/O again).

:func:`choose_pages` and :func:`apply_pages` are pure; :class:`PageReader` carries out what
they decide, one task per URL in flight so that sources carrying the same new article
share its page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pipeline.analysis.extract import Extracted, extract_guarded
from pipeline.errors import FetchError, ParseError
from pipeline.flow import Item, Slots
from pipeline.models import Article, PageState
from pipeline.settings.config import Config
from pipeline.sources.dedupe import canonical_url, same_site
from pipeline.sources.fetch import ACCEPT_HTML, Fetches, HopRefused
from pipeline.sources.robots import Access, RobotsCache
from pipeline.sources.sandbox import Limits

MAX_PAGE_ATTEMPTS = 3  # an article page that keeps failing is given up after this many runs
PAGES_IN_FLIGHT = 16  # x network.max_page_bytes: the most page bodies held at once

# the page and its text_status (PageState.OK), or None and why (ROBOTS, or "error: <why>")
PageResult = tuple[Extracted | None, str]
ROBOTS = PageState.ROBOTS.status()


@dataclass(frozen=True, slots=True)
class PagePlan:
    """The pages to fetch now, and the items, those left for a later run marked pending."""

    items: list[Item]
    todo: list[str]  # canonical URLs of the pages to fetch


def choose_pages(
    items: Sequence[Item], *, known: set[str], retry: set[str], max_articles: int
) -> PagePlan:
    """New articles' pages, and pages to try again, at most ``max_articles`` of them."""
    wanted = [
        it.article.url
        for it in items
        if it.article.fetchable and (it.article.url not in known or it.article.url in retry)
    ]
    todo, later = wanted[:max_articles], set(wanted[max_articles:])
    pending = PageState.PENDING.status(f"more than {max_articles} new pages in one run")
    return PagePlan(
        items=[replace(it, text_status=pending) if it.article.url in later else it for it in items],
        todo=todo,
    )


@dataclass(frozen=True, slots=True)
class PagesApplied:
    items: list[Item]
    fetched: int  # pages fetched (those left unfinished are not counted)
    note: str | None  # the source's warning about its pages, if any


def apply_pages(
    plan: PagePlan,
    results: Mapping[str, PageResult | None],
    *,
    pending: str,
    source_url: str,
) -> PagesApplied:
    """The pages' text and metadata merged into their articles. ``results`` has every URL
    of ``plan.todo``: None for a page that did not finish in time (``pending``: why, the
    reason of its PageState.PENDING status)."""
    unfinished = {url for url in plan.todo if results.get(url) is None}
    pending_status = PageState.PENDING.status(pending)
    out: list[Item] = []
    failures: list[str] = []
    claimed: dict[str, str] = {}  # canonical URL -> the feed URL that led to it in this batch
    for item in plan.items:
        article = item.article
        if article.url in unfinished:
            out.append(replace(item, text_status=pending_status))
            continue
        result = results.get(article.url)
        if result is None:
            out.append(item)
            continue
        page, how = result
        if page is None:
            if PageState.of(how) is not PageState.ROBOTS:
                failures.append(how)
            out.append(replace(item, text_status=how))
            continue
        merged = merge_page(article, page, source_url=source_url)
        if merged.url != article.url and claimed.get(merged.url, article.url) != article.url:
            # two different entries name one canonical page: a site-wide tag, not a copy
            merged = replace(merged, url=article.url, aliases=article.aliases)
        claimed.setdefault(merged.url, article.url)
        out.append(replace(item, article=merged, text_status=PageState.OK.status()))
    left = len(unfinished)
    notes = []
    if failures:
        notes.append(
            f"{len(failures)} of {len(plan.todo) - left} article pages failed, e.g. {failures[0]}"
        )
    if left:
        notes.append(f"{left} article pages left for the next run ({pending})")
    return PagesApplied(out, len(plan.todo) - left, "; ".join(notes) or None)


def merge_page(article: Article, page: Extracted, *, source_url: str) -> Article:
    """The feed's values win where it has them; the page adds text and fills the gaps.

    A rel=canonical on the same site (AMP, mobile, tracking-free URL) becomes the
    article's key and the feed's URL one of its aliases. A canonical that points at
    the site's home page or at the source itself is a template's mistake: ignored.
    """
    url, aliases = article.url, article.aliases
    if page.canonical and same_site(page.canonical, article.url):
        try:
            canonical = canonical_url(page.canonical)
            bogus = urlsplit(canonical).path in ("", "/") or canonical == canonical_url(source_url)
        except ValueError:
            canonical, bogus = article.url, True
        if canonical != article.url and not bogus:
            url, aliases = canonical, (*aliases, article.url)
    return replace(
        article,
        url=url,
        aliases=aliases,
        text=page.text,
        title=article.title or page.title or "",
        author=article.author or page.author,
        published_at=article.published_at or page.published_at,
        lang=page.lang or article.lang,
    )


class PageReader:
    """Fetches and extracts article pages: robots.txt first, bodies bounded, extraction in
    bounded workers through ``slots``."""

    def __init__(self, config: Config, fetcher: Fetches, robots: RobotsCache, slots: Slots) -> None:
        self.config = config
        self.fetcher = fetcher
        self.robots = robots
        self.slots = slots
        net = config.network
        self.extract_limits = Limits(timeout=net.extract_timeout, memory_mb=net.parse_memory_mb)
        self.tasks: dict[str, asyncio.Task[PageResult]] = {}
        # article pages between fetch and extraction: bounds the page bodies held at once
        self.page_slots = asyncio.Semaphore(PAGES_IN_FLIGHT)
        # a site's pages take at most as many of those slots as the site gets connections:
        # otherwise one source's fifty pages, queued first, hold every slot while all but
        # two of them wait for their host, and the other sites' pages wait behind them
        self.site_slots: dict[str, asyncio.Semaphore] = {}

    async def read(self, urls: Sequence[str], *, timeout: float) -> dict[str, PageResult | None]:
        """Every URL's page, or None where it did not finish within ``timeout`` seconds
        (cancelled: a source sharing the page sees it cancelled, pending there too)."""
        tasks = {url: self._task(url) for url in urls}
        _done, unfinished = await asyncio.wait(set(tasks.values()), timeout=max(0.0, timeout))
        for task in unfinished:
            task.cancel()
        results: dict[str, PageResult | None] = {}
        for url, task in tasks.items():
            self.tasks.pop(url, None)  # saved next: later sources find it in the store
            results[url] = None if task.cancelled() or task in unfinished else task.result()
        return results

    def _task(self, url: str) -> asyncio.Task[PageResult]:
        """One task per URL while it is in flight: sources carrying the same new article share it."""
        if url not in self.tasks:
            self.tasks[url] = asyncio.ensure_future(self._fetch_page(url))
        return self.tasks[url]

    async def _hop_allowed(self, url: str) -> HopRefused | None:
        """For redirects: robots.txt of the host a page redirects to must allow the target.

        Any other verdict (the address policy refuses the host, its robots.txt cannot be
        read) stops the redirect too, and is recorded as an error, not as "robots"."""
        verdict = await self.robots.verdict(url)
        if verdict.allowed:
            return None
        kind = "robots" if verdict.kind is Access.DISALLOWED else "refused"
        return HopRefused(verdict.reason, kind=kind)

    async def _fetch_page(self, url: str) -> PageResult:
        host = (urlsplit(url).hostname or "").lower()
        site = self.site_slots.get(host)
        if site is None:
            site = self.site_slots[host] = asyncio.Semaphore(
                self.config.network.per_host_concurrency
            )
        async with site, self.page_slots:
            return await self._fetch_page_now(url)

    async def _fetch_page_now(self, url: str) -> PageResult:
        verdict = await self.robots.verdict(url)
        if verdict.kind is Access.DISALLOWED:
            return None, ROBOTS
        if not verdict.allowed:
            return None, PageState.ERROR.status(verdict.reason)
        try:
            fetched = await self.fetcher.fetch(
                url,
                accept=ACCEPT_HTML,
                max_bytes=self.config.network.max_page_bytes,
                hop_check=self._hop_allowed,
            )
            kind = fetched.headers.get("content-type", "text/html").lower()
            if "html" not in kind and "xml" not in kind:
                return None, PageState.ERROR.status(f"{url} is {kind.split(';')[0]}, not a page")
            page = await self.slots.run(
                extract_guarded,
                fetched.body,
                url=fetched.final_url,
                limits=self.extract_limits,
                size=len(fetched.body),
            )
        except FetchError as exc:
            # only a hop robots.txt disallows has kind "robots" (see _hop_allowed); a
            # refused address or an unreadable robots.txt is an error
            if exc.kind == "robots":
                return None, ROBOTS
            return None, PageState.ERROR.status(f"{url}: {exc}")
        except ParseError as exc:
            return None, PageState.ERROR.status(f"{url}: {exc}")
        if fetched.final_url != url and same_site(fetched.final_url, url) and not page.canonical:
            page = replace(page, canonical=fetched.final_url)
        return page, PageState.OK.status()
