"""One pass over the configured sources: config + database -> stored articles and a RunReport.

Both cron (`veille run`) and the daemon call ``run``. The order of the steps is
written once, here; the stages never call each other.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pipeline.alerts import AlertsReport, send_alerts
from pipeline.analyse import Analysis, AnalysisItem, analyse_batch, derive_forms
from pipeline.config import Config, Source
from pipeline.dedupe import canonical_url, same_site, to_articles, without_controls
from pipeline.errors import ConfigError, FetchError, ParseError, StoreError
from pipeline.extract import Extracted, extract_guarded
from pipeline.fetch import ACCEPT_HTML, Fetcher
from pipeline.lock import run_lock
from pipeline.members import MemberForms
from pipeline.models import Article, Entry, Fetched, SourceOutcome
from pipeline.parse import parse_feed_guarded
from pipeline.parse.listing import ListingSpec, parse_listing_guarded
from pipeline.parse.sitemap import (
    SitemapLink,
    SitemapRequest,
    parse_sitemap_guarded,
    recent,
    to_entries,
)
from pipeline.robots import DISALLOWED, RobotsCache
from pipeline.sandbox import Limits, retire_idle_workers, run_bounded
from pipeline.store import DUE_SLACK, Store, utcnow
from pipeline.stories import StoryKey, story_key

logger = logging.getLogger(__name__)

Progress = Callable[[SourceOutcome], None]
T = TypeVar("T")
SOURCES_IN_FLIGHT = 8
MAX_PAGE_ATTEMPTS = 3  # an article page that keeps failing is given up after this many runs
PAGES_IN_FLIGHT = 16  # x network.max_page_bytes: the most page bodies held at once
ANALYSIS_PER_ARTICLE = 0.05  # seconds added to network.analysis_timeout per article
ARTICLE_ANALYSIS_TIMEOUT = 10.0  # one article alone, when its batch did not finish
DERIVE_TIMEOUT = 60.0  # the members' forms, once per configuration
MAX_CHILD_SITEMAPS = 10  # newest child sitemaps read from one index
SITEMAP_CHUNK = 500  # sitemap URLs looked up in the store at a time
# a page or feed this large may make its parser grow to network.parse_memory_mb (an HTML
# page needs up to about 100 times its size): it is parsed alone
LARGE_DOCUMENT = 1_000_000
HOP_DISALLOWED = "disallowed by the site's robots.txt"  # a redirect into a disallowed path


@dataclass
class RunReport:
    run_id: int
    started_at: datetime
    duration: float = 0.0
    outcomes: list[SourceOutcome] = field(default_factory=list)
    not_due: list[str] = field(
        default_factory=list
    )  # waiting: backing off after failures, or polled less often
    alerts: AlertsReport | None = None  # what the alert rules sent after the pass

    def _count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def deferred(self) -> list[SourceOutcome]:
        """Sources the run's deadline left untouched: due again for the next run."""
        return [o for o in self.outcomes if o.status == "deferred"]

    @property
    def new_articles(self) -> int:
        return sum(o.new_articles for o in self.outcomes)

    @property
    def new_stories(self) -> int:
        return sum(o.new_stories for o in self.outcomes)

    @property
    def entries(self) -> int:
        return sum(o.entries for o in self.outcomes)

    @property
    def status(self) -> str:
        """ok, partial (some sources failed) or failed (every source that ran failed)."""
        ran = len(self.outcomes) - len(self.deferred)
        if ran and len(self.failed) == ran:
            return "failed"
        return "partial" if self.failed else "ok"

    def counts(self) -> dict[str, int]:
        return {
            "sources_total": len(self.outcomes) + len(self.not_due),
            "sources_ok": self._count("ok"),
            "sources_not_modified": self._count("not-modified"),
            "sources_failed": len(self.failed),
            "sources_skipped": len(self.not_due),
            "sources_deferred": len(self.deferred),
            "entries": self.entries,
            "new_articles": self.new_articles,
        }

    def summary(self) -> str:
        c = self.counts()
        parts = [
            f"{len(self.outcomes)} sources",
            f"{c['sources_ok']} ok",
            f"{c['sources_not_modified']} not modified",
            f"{c['sources_failed']} failed",
        ]
        if self.not_due:
            parts.append(f"{len(self.not_due)} not due yet")
        if self.deferred:
            parts.append(f"{len(self.deferred)} left for the next run (deadline)")
        return (
            f"veille run {self.run_id}: {', '.join(parts)}; {c['entries']} entries, "
            f"{c['new_articles']} new articles in {self.new_stories} new stories, {self.duration:.1f} s"
        )


def select_sources(config: Config, source_ids: Sequence[str] = ()) -> list[Source]:
    """Enabled sources, or exactly those asked for (a search source's id selects all its feeds)."""
    if not source_ids:
        return [s for s in config.sources if s.enabled]
    chosen: list[Source] = []
    unknown: list[str] = []
    for wanted in source_ids:
        matches = [s for s in config.sources if s.id == wanted or s.id.startswith(f"{wanted}:")]
        if not matches:
            unknown.append(wanted)
        chosen += [s for s in matches if s not in chosen]
    if unknown:
        known = ", ".join(spec.id for spec in config.specs)
        raise ConfigError(
            [f"--source {u}: no such source (configured: {known})" for u in unknown],
            path=config.path,
        )
    return chosen


def next_check(
    config: Config, source: Source, outcome: SourceOutcome, *, failures: int, now: datetime
) -> datetime:
    """When to look again: the source's interval on success (a news-search feed: its next
    slot, past the slack a due source is taken with), or later when the feed's own cache
    hint says its answer stays fresh longer (capped at network.max_cache_hint_hours);
    interval x failures, capped, on error."""
    if not outcome.failed:
        hint = timedelta(0)
        if outcome.fresh_for:
            longest = config.network.max_cache_hint_hours * 3600
            hint = timedelta(seconds=min(outcome.fresh_for, longest))
        if source.spread:
            # the first of its slots once the hint has passed: the feeds stay spread
            return source.next_slot(now + max(hint, DUE_SLACK))
        return now + max(timedelta(minutes=source.interval_minutes or 0), hint)
    base = (
        timedelta(minutes=source.interval_minutes)
        if source.interval_minutes
        else config.schedule.run_interval()
    )
    cap = timedelta(hours=config.network.backoff_cap_hours)
    wait = min(base * failures, cap)
    asked = timedelta(0)
    if outcome.retry_after:
        # a server may ask for years: it gets at most the cap, the source is never switched off
        asked = timedelta(seconds=min(outcome.retry_after, cap.total_seconds()))
        wait = max(wait, asked)
    if source.spread:
        # whole intervals, on the feed's own slots: failing feeds stay spread over the day
        return source.next_slot(now + max(wait - base, asked) + DUE_SLACK)
    return now + wait


@dataclass
class _Collected:
    """What a source gave before any article page is fetched."""

    status: int
    entries: list[Entry] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    lang: str | None = None
    warnings: list[str] = field(default_factory=list)
    fresh_for: float | None = None  # a feed's cache hint (Cache-Control max-age, Expires)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _analysis_key(config: Config) -> str:
    """Names the configuration, so a worker process builds its Analyser once per config."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


AnalysisResult = tuple[Analysis, StoryKey] | str  # or why the article was not analysed

_forms: dict[str, list[MemberForms]] = {}  # the members' forms of the last configuration
_forms_lock = threading.Lock()


def member_forms(config: Config, key: str) -> list[MemberForms]:
    """The members' forms, derived once per configuration in a bounded worker (the word
    lists stay out of this process and of the analysis workers). Raises ParseError."""
    with _forms_lock:
        if key not in _forms:
            forms = run_bounded(
                derive_forms,
                config,
                limits=Limits(timeout=DERIVE_TIMEOUT, memory_mb=config.network.parse_memory_mb),
                what="deriving the members' forms",
                reuse=False,  # its word lists (about 75 MB) would stay with the worker
            )
            _forms.clear()
            _forms[key] = forms
        return _forms[key]


def analyse_bounded(
    config: Config, key: str, items: Sequence[AnalysisItem]
) -> list[AnalysisResult]:
    """Mentions, topics, funding events and story key of each item, in a bounded worker.

    Blocking (call it in a thread). The batch has ``network.analysis_timeout`` plus 50 ms
    an article. When the worker gives up on it (time, memory, a crash), each article is
    analysed alone in a fresh worker, all of them within the same budget again: the
    articles that still fail come back as a sentence saying why, recorded with them, and
    are never analysed anywhere without a bound.
    """
    if not items:
        return []
    try:
        forms = member_forms(config, key)
    except ParseError as exc:
        return [f"not analysed: {exc}"] * len(items)
    net = config.network
    limits = Limits(
        timeout=net.analysis_timeout + ANALYSIS_PER_ARTICLE * len(items),
        memory_mb=net.parse_memory_mb,
    )
    what = "analysing the articles" if len(items) > 1 else "analysing the article"
    try:
        return list(
            run_bounded(analyse_batch, (key, config, forms, list(items)), limits=limits, what=what)
        )
    except ParseError as exc:
        if len(items) == 1:
            return [f"not analysed: {exc}"]
        logger.warning("%s; analysing its %d articles one by one", exc, len(items))
    budget_ends = time.monotonic() + limits.timeout
    results: list[AnalysisResult] = []
    for item in items:
        remaining = budget_ends - time.monotonic()
        if remaining <= 0:
            results.append("not analysed: the batch's time budget ran out before this article")
            continue
        try:
            results += run_bounded(
                analyse_batch,
                (key, config, forms, [item]),
                limits=Limits(
                    timeout=min(ARTICLE_ANALYSIS_TIMEOUT, remaining), memory_mb=limits.memory_mb
                ),
                what="analysing the article",
            )
        except ParseError as exc:
            results.append(f"not analysed: {exc}")
    return results


@dataclass
class _Analysed:
    """What the analysis stage gives the store, per article URL."""

    analyses: dict[str, Analysis] = field(default_factory=dict)
    story_keys: dict[str, StoryKey] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # why an article was not analysed


class _Pass:
    """The shared machinery of one run: fetcher, robots cache, CPU slots, article tasks."""

    def __init__(
        self,
        config: Config,
        store: Store,
        fetcher: Fetcher,
        *,
        run_id: int,
        deadline: float | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.robots = RobotsCache(fetcher)
        # the event loop's clock when the run stops starting work (None: no deadline)
        self.deadline = deadline
        self.analysis_key = _analysis_key(config)
        self.run_id = run_id
        net = config.network
        self.parse_limits = Limits(timeout=net.parse_timeout, memory_mb=net.parse_memory_mb)
        self.extract_limits = Limits(timeout=net.extract_timeout, memory_mb=net.parse_memory_mb)
        self.slots = os.cpu_count() or 2
        self.cpu = asyncio.Semaphore(self.slots)  # parsers and extractors at once
        self.heavy = asyncio.Lock()  # one large document at a time, alone
        self.pages: dict[str, asyncio.Task[tuple[Extracted | None, str]]] = {}
        # article pages between fetch and extraction: bounds the page bodies held at once
        self.page_slots = asyncio.Semaphore(PAGES_IN_FLIGHT)

    async def bounded(self, func: Callable[..., T], *args: Any, size: int = 0, **kwargs: Any) -> T:
        """``func`` in a thread, holding a CPU slot; a document of LARGE_DOCUMENT bytes or
        more holds them all, after the idle workers are retired: its worker may grow to
        parse_memory_mb, and nothing else grows beside it (the process tree stays within
        the run, the forkserver and that worker)."""
        if size < LARGE_DOCUMENT:
            async with self.cpu:
                return await asyncio.to_thread(func, *args, **kwargs)
        async with self.heavy:
            held = 0
            try:
                for _ in range(self.slots):
                    await self.cpu.acquire()
                    held += 1

                def alone() -> T:
                    retire_idle_workers()  # stopping processes blocks: not on the event loop
                    return func(*args, **kwargs)

                return await asyncio.to_thread(alone)
            finally:
                for _ in range(held):
                    self.cpu.release()

    # -------------------------------------------------------------- one source

    async def process(self, source: Source) -> SourceOutcome:
        # 1. what we know of the source: validators and failure count
        state = self.store.source_state(source.id)
        etag = last_modified = None
        articles: list[Article] = []
        text_status: dict[str, str] = {}
        pages_fetched = 0
        # 2. fetch and read the source itself (feed, listing page or sitemap), conditionally;
        # at the run's deadline it is left as it was, due again for the next run
        try:
            async with asyncio.timeout_at(self.deadline):
                collected = await self.collect(source, state)
        except TimeoutError:
            return _deferred(source)
        except FetchError as exc:
            # validators are not kept: the next run fetches and reads again
            outcome = SourceOutcome(
                source.id,
                "error",
                http_status=exc.status,
                error=str(exc),
                error_kind=exc.kind,
                retry_after=exc.retry_after,
            )
        except ParseError as exc:
            outcome = SourceOutcome(
                source.id, "error", http_status=exc.status, error=str(exc), error_kind="parse"
            )
        else:
            etag, last_modified = collected.etag, collected.last_modified
            if collected.not_modified:
                # 3a. 304: nothing to read
                outcome = SourceOutcome(
                    source.id, "not-modified", http_status=304, fresh_for=collected.fresh_for
                )
            else:
                # 3b. entries -> articles with canonical URLs
                articles = to_articles(
                    source.id,
                    collected.entries,
                    lang=source.lang or collected.lang,
                    unwrap=source.kind == "search",
                )
                # 4. new articles: fetch each page once for the full text
                articles, text_status, pages_fetched, page_warning = await self.enrich(
                    source, articles
                )
                articles = [without_controls(a) for a in articles]
                warnings = [*collected.warnings, *([page_warning] if page_warning else [])]
                outcome = SourceOutcome(
                    source.id,
                    "ok",
                    http_status=collected.status,
                    entries=len(collected.entries),
                    warnings=tuple(warnings),
                    fresh_for=collected.fresh_for,
                )
        # 5. mentions, topics, funding events and story keys of the new (or newly read) articles
        # (CPU work, in a worker thread: the event loop keeps serving the other fetches)
        fresh = self.needing_analysis(articles)
        # (analysis needs a few times its text, not the hundred times an HTML parse may)
        text_size = sum(len(a.text or "") + len(a.summary) for a in fresh)
        analysed = await self.bounded(self.analyse, fresh, size=text_size // 10)
        # 6. store the source's articles, their analyses and its state in one transaction
        now = utcnow()
        failures = int(state.get("consecutive_failures") or 0) + (1 if outcome.failed else 0)
        if outcome.fresh_for and not outcome.failed:
            logger.info(
                "source=%s fresh_for=%.0fs (Cache-Control or Expires)", source.id, outcome.fresh_for
            )
        saved = self.store.save_source(
            outcome,
            articles,
            run_id=self.run_id,
            now=now,
            etag=etag,
            last_modified=last_modified,
            next_check_at=next_check(self.config, source, outcome, failures=failures, now=now),
            text_status=text_status,
            analyses=analysed.analyses,
            story_keys=analysed.story_keys,
            analysis_errors=analysed.errors,
        )
        return replace(
            outcome,
            new_articles=saved.new,
            seen_articles=saved.seen,
            pages_fetched=pages_fetched,
            new_stories=saved.new_stories,
        )

    def needing_analysis(self, articles: list[Article]) -> list[Article]:
        """New articles, and known ones whose text was just read."""
        if not articles:
            return []
        known = self.store.known_urls([url for a in articles for url in (a.url, *a.aliases)])
        return [a for a in articles if a.text or not ({a.url, *a.aliases} & known)]

    def analyse(self, articles: list[Article]) -> _Analysed:
        """Mentions, topics, funding events and story keys, in a worker process: the run's
        own process keeps fetching and storing meanwhile. Blocking (call it in a thread)."""
        items = [(a.title, a.summary, a.text, a.published_at) for a in articles]
        out = _Analysed()
        results = analyse_bounded(self.config, self.analysis_key, items)
        for article, result in zip(articles, results, strict=True):
            if isinstance(result, str):
                out.errors[article.url] = result
            else:
                out.analyses[article.url], out.story_keys[article.url] = result
        if out.errors:
            logger.warning(
                "source=%s %d articles not analysed, e.g. %s",
                articles[0].source_id,
                len(out.errors),
                next(iter(out.errors.values())),
            )
        return out

    async def collect(self, source: Source, state: dict[str, Any]) -> _Collected:
        """Raises FetchError or ParseError for the source as a whole."""
        if source.kind in ("page", "sitemap"):
            await self._robots(source.url, trusted=True)
        fetched = await self.fetcher.fetch(
            source.url,
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            trusted=True,
            accept=ACCEPT_HTML if source.kind == "page" else None,
        )
        collected = _Collected(
            fetched.status, etag=fetched.etag, last_modified=fetched.last_modified
        )
        if source.kind in ("feed", "search"):
            # a feed's own word on how long its answer stays fresh (listing pages and
            # sitemaps are HTML and XML of sites whose caching is not about their news)
            collected.fresh_for = fetched.fresh_for
        if fetched.not_modified:
            return collected
        try:
            await self._read(source, fetched, collected)
        except ParseError as exc:
            exc.status = fetched.status  # the row says what the server really answered
            raise
        return collected

    async def _read(self, source: Source, fetched: Fetched, collected: _Collected) -> None:
        if not fetched.body:
            raise ParseError(f"empty body: the server answered {fetched.status} with nothing in it")
        if source.kind == "page":
            await self._read_pages(source, fetched, collected)
        elif source.kind == "sitemap":
            await self._read_sitemap(source, fetched, collected)
        else:
            parsed = await self.bounded(
                parse_feed_guarded,
                fetched.body,
                size=len(fetched.body),
                headers=fetched.headers,
                url=fetched.final_url,
                limits=self.parse_limits,
            )
            collected.entries = list(parsed.entries)
            collected.lang = parsed.lang
            if parsed.bozo:
                collected.warnings.append(f"feed is malformed but usable: {parsed.bozo}")
            if parsed.skipped:
                collected.warnings.append(f"{parsed.skipped} entries skipped")

    async def _read_pages(self, source: Source, fetched: Fetched, collected: _Collected) -> None:
        spec = ListingSpec(
            selector=source.selector or "a",
            item_selector=source.item_selector,
            title_selector=source.title_selector,
            date_selector=source.date_selector,
            next_selector=source.next_selector,
        )
        listing = await self.bounded(
            parse_listing_guarded,
            fetched.body,
            size=len(fetched.body),
            url=fetched.final_url,
            spec=spec,
            limits=self.parse_limits,
        )
        collected.entries = list(listing.entries)
        next_url, page = listing.next_url, 1
        while next_url and page < source.max_pages:
            page += 1
            try:
                await self._robots(next_url)
                more = await self.fetcher.fetch(next_url, accept=ACCEPT_HTML)
                listing = await self.bounded(
                    parse_listing_guarded,
                    more.body,
                    size=len(more.body),
                    url=more.final_url,
                    spec=spec,
                    limits=self.parse_limits,
                )
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

    async def _read_sitemap(self, source: Source, fetched: Fetched, collected: _Collected) -> None:
        """Parsing, the age limit, sorting and canonical URLs happen in the bounded worker;
        the run only asks the store which of the candidates it knows."""
        now = utcnow()
        sitemap = await self.bounded(
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
                    await self._robots(child.url)
                    body = await self.fetcher.fetch(child.url)
                    part = await self.bounded(
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
        # URLs already stored are not news: leave the room under max_urls to the others,
        # asking the store about the newest candidates first, a chunk at a time
        ordered = recent(tuple(links), max_age_days=source.max_age_days, limit=len(links), now=now)
        chosen: list[SitemapLink] = []
        seen: set[str] = set()
        for start in range(0, len(ordered), SITEMAP_CHUNK):
            chunk = []
            for link in ordered[start : start + SITEMAP_CHUNK]:
                if link.key not in seen:
                    seen.add(link.key)
                    chunk.append(link)
            known = self.store.known_urls([lk.key for lk in chunk])
            chosen += [lk for lk in chunk if lk.key not in known][: source.max_urls - len(chosen)]
            if len(chosen) >= source.max_urls:
                break
        collected.entries = to_entries(chosen)

    # -------------------------------------------------------------- article pages

    async def enrich(
        self, source: Source, articles: list[Article]
    ) -> tuple[list[Article], dict[str, str], int, str | None]:
        """Fetch and extract the page of every new article, once. Never fails the source.

        Pages fetched before without success (an error, or over the per-run limit) are
        tried again when their article is seen again, up to MAX_PAGE_ATTEMPTS times.
        """
        status: dict[str, str] = {}
        if not articles or not source.fetch_articles:
            return articles, status, 0, None
        urls = [a.url for a in articles]
        known = self.store.known_urls(urls)
        retry = self.store.pages_to_retry(urls, max_attempts=MAX_PAGE_ATTEMPTS)
        wanted = [a for a in articles if a.fetchable and (a.url not in known or a.url in retry)]
        todo, later = wanted[: source.max_articles], wanted[source.max_articles :]
        for article in later:
            status[article.url] = f"pending: more than {source.max_articles} new pages in one run"
        if not todo:
            return articles, status, 0, None
        # 4a. the source's pages share network.source_timeout, and never outlast the run:
        # what is still in flight then waits for the next run, not counted as an attempt
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.config.network.source_timeout
        reason = (
            f"pending: the source's {self.config.network.source_timeout:g} s for its pages ran out"
        )
        if self.deadline is not None and self.deadline < ends:
            ends, reason = self.deadline, "pending: the run's deadline came first"
        tasks = {a.url: self._page(a.url) for a in todo}
        _done, unfinished = await asyncio.wait(
            set(tasks.values()), timeout=max(0.0, ends - loop.time())
        )
        for task in unfinished:
            task.cancel()  # a source sharing the page sees it cancelled: pending there too
        extracted: dict[str, tuple[Extracted | None, str]] = {}
        left = 0
        for url, task in tasks.items():
            self.pages.pop(url, None)  # saved next: later sources find it in the store
            if task.cancelled() or task in unfinished:
                status[url] = reason
                left += 1
            else:
                extracted[url] = task.result()
        out: list[Article] = []
        failures: list[str] = []
        claimed: dict[str, str] = {}  # canonical URL -> the feed URL that led to it in this batch
        for article in articles:
            if article.url not in extracted:
                out.append(article)
                continue
            page, how = extracted[article.url]
            if page is None:
                status[article.url] = how
                if how != DISALLOWED:
                    failures.append(how)
                out.append(article)
                continue
            merged = _merge(article, page, source_url=source.url)
            if merged.url != article.url and claimed.get(merged.url, article.url) != article.url:
                # two different entries name one canonical page: a site-wide tag, not a copy
                merged = replace(merged, url=article.url, aliases=article.aliases)
            claimed.setdefault(merged.url, article.url)
            status[merged.url] = "ok"
            out.append(merged)
        notes = []
        if failures:
            notes.append(
                f"{len(failures)} of {len(todo) - left} article pages failed, e.g. {failures[0]}"
            )
        if left:
            notes.append(
                f"{left} article pages left for the next run ({reason.removeprefix('pending: ')})"
            )
        return out, status, len(todo) - left, "; ".join(notes) or None

    def _page(self, url: str) -> asyncio.Task[tuple[Extracted | None, str]]:
        """One task per URL while it is in flight: sources carrying the same new article share it."""
        if url not in self.pages:
            self.pages[url] = asyncio.ensure_future(self._fetch_page(url))
        return self.pages[url]

    async def _robots(self, url: str, *, trusted: bool = False) -> None:
        """Raise FetchError unless robots.txt lets veille fetch ``url``."""
        verdict = await self.robots.verdict(url, trusted=trusted)
        if verdict == DISALLOWED:
            raise FetchError(f"disallowed by the site's robots.txt ({url})", url=url, kind="robots")
        if verdict:
            raise FetchError(verdict, url=url, kind="robots")

    async def _hop_allowed(self, url: str) -> str | None:
        """For redirects: robots.txt of the host a page redirects to must allow the target.

        Any other verdict (the address policy refuses the host, its robots.txt cannot be
        read) stops the redirect too, and is recorded as an error, not as "robots"."""
        verdict = await self.robots.verdict(url)
        return HOP_DISALLOWED if verdict == DISALLOWED else verdict

    async def _fetch_page(self, url: str) -> tuple[Extracted | None, str]:
        async with self.page_slots:
            return await self._fetch_page_now(url)

    async def _fetch_page_now(self, url: str) -> tuple[Extracted | None, str]:
        verdict = await self.robots.verdict(url)
        if verdict:
            return None, verdict if verdict == DISALLOWED else f"error: {verdict}"
        try:
            fetched = await self.fetcher.fetch(
                url,
                accept=ACCEPT_HTML,
                max_bytes=self.config.network.max_page_bytes,
                hop_check=self._hop_allowed,
            )
            kind = fetched.headers.get("content-type", "text/html").lower()
            if "html" not in kind and "xml" not in kind:
                return None, f"error: {url} is {kind.split(';')[0]}, not a page"
            page = await self.bounded(
                extract_guarded,
                fetched.body,
                url=fetched.final_url,
                limits=self.extract_limits,
                size=len(fetched.body),
            )
        except FetchError as exc:
            # fetch() reports every hop_check refusal as kind "robots": only the
            # robots.txt verdict itself means "disallowed"; a refused address is an error
            if exc.kind == "robots" and str(exc).endswith(HOP_DISALLOWED):
                return None, DISALLOWED
            return None, f"error: {url}: {exc}"
        except ParseError as exc:
            return None, f"error: {url}: {exc}"
        if fetched.final_url != url and same_site(fetched.final_url, url) and not page.canonical:
            page = replace(page, canonical=fetched.final_url)
        return page, "ok"


def canonical_or_same(url: str) -> str:
    try:
        return canonical_url(url)
    except ValueError:
        return url


def _merge(article: Article, page: Extracted, *, source_url: str) -> Article:
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


def _deferred(source: Source) -> SourceOutcome:
    return SourceOutcome(source.id, "deferred", error="the run's deadline came first")


def _record_internal_error(
    config: Config, store: Store, source: Source, exc: Exception, *, run_id: int
) -> SourceOutcome:
    outcome = SourceOutcome(
        source.id,
        "error",
        error=f"internal error: {type(exc).__name__}: {str(exc)[:200]}",
        error_kind="internal",
    )
    failures = int(store.source_state(source.id).get("consecutive_failures") or 0) + 1
    now = utcnow()
    store.save_source(
        outcome,
        [],
        run_id=run_id,
        now=now,
        next_check_at=next_check(config, source, outcome, failures=failures, now=now),
    )
    return outcome


async def run_sources(
    config: Config,
    store: Store,
    sources: Sequence[Source],
    *,
    run_id: int,
    progress: Progress | None = None,
) -> list[SourceOutcome]:
    """Fetch, read and store every source concurrently; one failing source never stops the others."""
    # A source holds its slot from fetch to store, so at most this many bodies are in
    # memory at once (each at most network.max_body_bytes).
    source_slots = asyncio.Semaphore(min(config.network.concurrency, SOURCES_IN_FLIGHT))
    # past the deadline no source starts, and those in flight keep what they have read
    deadline = asyncio.get_running_loop().time() + config.run_deadline()
    async with Fetcher(config.network) as fetcher:
        work = _Pass(config, store, fetcher, run_id=run_id, deadline=deadline)

        async def one(source: Source) -> SourceOutcome:
            async with source_slots:
                try:
                    if asyncio.get_running_loop().time() >= deadline:
                        outcome = _deferred(source)
                    else:
                        outcome = await work.process(source)
                except StoreError:
                    raise  # the database itself is failing: no point going on
                except Exception as exc:  # a bug on odd input: this source fails, the run goes on
                    logger.exception("source=%s internal error", source.id)
                    outcome = _record_internal_error(config, store, source, exc, run_id=run_id)
            if progress:
                progress(outcome)
            return outcome

        return list(await asyncio.gather(*(one(s) for s in sources)))


async def _probe_all(config: Config, store: Store) -> list[tuple[str, str, str]]:
    async with Fetcher(config.network) as fetcher:
        work = _Pass(config, store, fetcher, run_id=0)

        async def one(source: Source) -> tuple[str, str, str]:
            try:
                collected = await work.collect(source, {})
            except (FetchError, ParseError) as exc:
                return source.id, "error", str(exc)
            return source.id, "ok", f"HTTP {collected.status}, {len(collected.entries)} entries"

        return list(await asyncio.gather(*(one(s) for s in config.sources if s.enabled)))


def probe(config: Config) -> list[tuple[str, str, str]]:
    """(source id, "ok" or "error", detail) for every enabled source, read as a run reads it
    (feed, listing page or sitemap), without validators and without touching the database."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "probe.db")  # an empty store: nothing counts as known
        try:
            return asyncio.run(_probe_all(config, store))
        finally:
            store.close()


def run(
    config: Config,
    *,
    db_path: str | Path,
    source_ids: Sequence[str] = (),
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> RunReport:
    """One pass. Raises LockHeld, ConfigError or StoreError; failed sources are in the report.

    ``env`` holds the alert rules' variables (default: the process environment)."""
    # 1. which sources were asked for (an unknown --source is a usage error)
    wanted = select_sources(config, source_ids)
    # 2. one writer at a time
    with run_lock(db_path):
        started = time.monotonic()
        store = Store.open(db_path)
        try:
            # 3. sources.yaml -> members and sources tables; runs a killed process left open
            now = utcnow()
            store.sync_config(config, now=now)
            if stale := store.close_stale_runs(now=now):
                logger.warning(
                    "marked %d earlier run(s) as interrupted (killed before the end)", stale
                )
            # 4. sources not due yet (backing off, or a longer interval) wait, unless named
            later: list[Source] = []
            if source_ids:
                due = wanted
            else:
                due, later = store.due_sources(
                    wanted, now=now, run_interval=config.schedule.run_interval()
                )
            run_id = store.start_run(now=now, pid=os.getpid())
            report = RunReport(run_id=run_id, started_at=now, not_due=[s.id for s in later])
            if on_start:
                on_start(len(due))
            # 5. fetch, parse, store, source by source
            try:
                report.outcomes = asyncio.run(
                    run_sources(config, store, due, run_id=run_id, progress=progress)
                )
            except BaseException:
                report.duration = time.monotonic() - started
                store.finish_run(
                    run_id,
                    now=utcnow(),
                    status="error",
                    counts=report.counts(),
                    duration=report.duration,
                    errors=["run interrupted"],
                )
                raise
            if report.deferred:
                logger.warning(
                    "the run's deadline (%g s) came: %d sources left for the next run: %s",
                    config.run_deadline(),
                    len(report.deferred),
                    ", ".join(o.source_id for o in report.deferred[:10]),
                )
            # 6. the run's row
            report.duration = time.monotonic() - started
            store.finish_run(
                run_id,
                now=utcnow(),
                status=report.status,
                counts=report.counts(),
                duration=report.duration,
                errors=[f"{o.source_id}: {o.error}" for o in report.failed],
            )
            # 7. alerts: the new stories that match a rule, once per rule and destination
            # (never fatal, never the run's exit code: a WARNING line per failure)
            if config.alerts:
                report.alerts = send_alerts(
                    config, store, env=os.environ if env is None else env, now=utcnow()
                )
            return report
        finally:
            store.close()


@dataclass
class RementionReport:
    articles: int = 0
    mentions_before: int = 0
    mentions_after: int = 0
    fundings_after: int = 0
    duration: float = 0.0

    def summary(self) -> str:
        return (
            f"veille remention: {self.articles} articles, mentions {self.mentions_before} -> "
            f"{self.mentions_after}, {self.fundings_after} funding events in {self.duration:.1f} s"
        )


def remention(
    config: Config,
    *,
    db_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> RementionReport:
    """Recompute every article's mentions, topics and funding events after the registry changed.

    Holds the run lock; writes one transaction per batch of articles, so readers are never
    blocked for long and an interrupted pass can simply be run again.
    """
    with run_lock(db_path, what="veille remention"):
        started = time.monotonic()
        store = Store.open(db_path)
        try:
            # 1. the registry as it is now -> members table (new members need their row)
            store.sync_config(config)
            key = _analysis_key(config)
            report = RementionReport(
                articles=store.count("articles"), mentions_before=store.count("mentions")
            )
            done = 0
            # 2. every article, batch by batch
            # (stored text came from hostile pages: it is analysed in the bounded worker too)
            for batch in store.iter_articles():
                results = analyse_bounded(
                    config, key, [(title, summary, text, None) for _, title, summary, text in batch]
                )
                store.save_analyses(
                    {
                        article_id: result if isinstance(result, str) else result[0]
                        for (article_id, *_), result in zip(batch, results, strict=True)
                    }
                )
                done += len(batch)
                if progress:
                    progress(done, report.articles)
            report.mentions_after = store.count("mentions")
            report.fundings_after = store.count("fundings")
            report.duration = time.monotonic() - started
            return report
        finally:
            store.close()


@dataclass
class RestoryReport:
    articles: int = 0
    stories: int = 0
    duration: float = 0.0

    def summary(self) -> str:
        rate = self.articles / self.duration if self.duration else 0.0
        return (
            f"veille restory: {self.articles} articles in {self.stories} stories, "
            f"{self.duration:.1f} s ({rate:,.0f} articles/s)"
        )


def restory(
    config: Config,
    *,
    db_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> RestoryReport:
    """Rebuild every story from scratch, in the order articles were first seen (after a
    change of threshold or scheme). Holds the run lock; the whole rebuild is one
    transaction, so readers keep seeing the old stories until the new ones are complete."""
    with run_lock(db_path, what="veille restory"):
        started = time.monotonic()
        store = Store.open(db_path)
        try:
            total = store.count("articles")
            done = created = 0
            with store.transaction("rebuilding stories"):
                # 1. forget the stories, signatures and bands
                store.reset_stories()
                # 2. every article, oldest first, placed as if it had just arrived
                for batch in store.iter_articles_for_stories():
                    keys = [
                        (
                            article_id,
                            title,
                            first_seen,
                            story_key(
                                title=title, summary=summary, text=text, published_at=published
                            ),
                        )
                        for article_id, title, summary, text, published, first_seen in batch
                    ]
                    created += store.place_in_stories(keys)
                    done += len(batch)
                    if progress:
                        progress(done, total)
            return RestoryReport(
                articles=total, stories=created, duration=time.monotonic() - started
            )
        finally:
            store.close()
