"""One pass over the configured sources: config + database -> stored articles and a RunReport.

Both cron (`veille run`) and the daemon call ``run``. The order of the steps is
written once, here; the stages never call each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.analysis.analyse import (
    Analysis,
    AnalysisItem,
    EntryKey,
    analyse_batch,
    analysis_setup,
    derive_forms,
    entry_key,
)
from pipeline.analysis.members import MemberForms
from pipeline.analysis.owned import Owners
from pipeline.analysis.stories import StoryKey, story_key
from pipeline.collect import Collector
from pipeline.errors import ConfigError, FetchError, ParseError, StoreError
from pipeline.flow import Item, Slots, store_fields
from pipeline.lock import run_lock
from pipeline.models import SourceOutcome
from pipeline.outputs.alerts import AlertsReport, send_alerts
from pipeline.pages import MAX_PAGE_ATTEMPTS, PageReader, apply_pages, choose_pages
from pipeline.settings.config import Config, Source
from pipeline.sources.dedupe import join_copies, to_articles, without_controls
from pipeline.sources.fetch import Fetcher, Fetches
from pipeline.sources.fetchpool import FetchPool, open_fetcher
from pipeline.sources.robots import RobotsCache
from pipeline.sources.sandbox import Limits, Setup, run_bounded
from pipeline.storage.store import DUE_SLACK, Store, utcnow

logger = logging.getLogger(__name__)

Progress = Callable[[SourceOutcome], None]
SOURCES_IN_FLIGHT = 16
# the sources' saves are committed together at this pace (Store.grouped_commits)
GROUP_SECONDS = 0.25
ANALYSIS_PER_ARTICLE = 0.05  # seconds added to network.analysis_timeout per article
ARTICLE_ANALYSIS_TIMEOUT = 10.0  # one article alone, when its batch did not finish
DERIVE_TIMEOUT = 60.0  # the members' forms, once per configuration


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


def _analysis_key(config: Config) -> str:
    """Names the configuration, so a worker process builds its Analyser once per config."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


AnalysisResult = tuple[Analysis, StoryKey] | str  # or why the article was not analysed

_forms: dict[str, list[MemberForms]] = {}  # the members' forms of the last configuration
_setups: dict[str, bytes] = {}  # and what the analysis workers are sent of it (analysis_setup)
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


def analysis_payload_setup(config: Config, key: str) -> bytes:
    """What the analysis workers are built from (``analyse.analysis_setup``), pickled once
    per configuration. Raises ParseError (deriving the forms)."""
    forms = member_forms(config, key)
    with _forms_lock:
        if key not in _setups:
            _setups.clear()
            _setups[key] = analysis_setup(config, forms)
        return _setups[key]


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
        setup = analysis_payload_setup(config, key)
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
            run_bounded(
                analyse_batch, (key, list(items)), limits=limits, what=what, setup=(key, setup)
            )
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
                (key, [item]),
                limits=Limits(
                    timeout=min(ARTICLE_ANALYSIS_TIMEOUT, remaining), memory_mb=limits.memory_mb
                ),
                what="analysing the article",
                setup=(key, setup),
            )
        except ParseError as exc:
            results.append(f"not analysed: {exc}")
    return results


class _Pass:
    """One run's per-source flow: collect, choose and read pages, analyse, save.

    The stages' decisions are pure functions (pipeline.pages, flow.store_fields); what does
    I/O (the collector, the page reader, the analysis workers, the store) is handed what
    they decided. Each article travels as one :class:`Item` from collecting to the store.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        fetcher: Fetches,
        *,
        run_id: int,
        deadline: float | None = None,
    ) -> None:
        self.config = config
        self.store = store
        # the event loop's clock when the run stops starting work (None: no deadline)
        self.deadline = deadline
        self.analysis_key = _analysis_key(config)
        self.run_id = run_id
        self.slots = Slots()  # parsers, extractors and analyses at once
        robots = RobotsCache(fetcher)
        self.collector = Collector(config, fetcher, robots, self.slots, known_urls=store.known_urls)
        # validators and failure counts as the pass began: only this pass writes them
        self.states = store.source_states()
        self.pages = PageReader(config, fetcher, robots, self.slots)
        self.owners = Owners.from_config(config)  # owned media apart from press coverage
        self._setup: asyncio.Task[bytes] | None = None  # the analysis setup, made once

    async def analysis_setup(self) -> bytes:
        """The analysis workers' setup (the members' forms), made once for the pass by the
        first source that needs it; the others await the same task instead of each holding
        a thread blocked on it. Raises ParseError."""
        if self._setup is None:
            self._setup = asyncio.create_task(
                asyncio.to_thread(analysis_payload_setup, self.config, self.analysis_key)
            )
        return await asyncio.shield(self._setup)

    # -------------------------------------------------------------- one source

    async def process(self, source: Source) -> SourceOutcome:
        # 1. what we know of the source: validators and failure count
        state = self.states.get(source.id, {})
        etag = last_modified = None
        items: list[Item] = []
        early: dict[EntryKey, tuple[Analysis, StoryKey]] = {}
        pages_fetched = 0
        # 2. fetch and read the source itself (feed, listing page or sitemap), conditionally;
        # at the run's deadline it is left as it was, due again for the next run
        try:
            async with asyncio.timeout_at(self.deadline):
                collected = await self.collector.collect(
                    source, state, setup=await self.early_setup(source, state)
                )
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
            early = collected.analyses
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
                # 3c. a news-search entry that leads nowhere and the publisher's own copy of
                # it (same outlet, same headline) are one article, whichever came first
                keys = [a.copy_key for a in articles if a.copy_key]
                if keys:
                    articles = join_copies(articles, self.store.copies(keys))
                # 4. new articles: fetch each page once for the full text
                items, pages_fetched, page_warning = await self.enrich(
                    source, [Item(a) for a in articles]
                )
                items = [replace(it, article=without_controls(it.article)) for it in items]
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
        fresh = self.needing_analysis(items)
        if early:  # analysed as the feed was parsed: only the others go to a worker now
            fresh = self.take_early(items, fresh, early)
        # (analysis needs a few times its text, not the hundred times an HTML parse may)
        text_size = sum(
            len(items[k].article.text or "") + len(items[k].article.summary) for k in fresh
        )
        if fresh:
            # made before a CPU slot is taken (analyse_bounded says why when it cannot be)
            with contextlib.suppress(ParseError):
                await self.analysis_setup()
        analysed = await self.slots.run(
            self.analyse, [items[k] for k in fresh], size=text_size // 10
        )
        for k, item in zip(fresh, analysed, strict=True):
            items[k] = item
        # 6. who owns each article (a member's own site or newsroom: owned; else earned),
        # then store the source's articles, their analyses and its state in one transaction
        items = [self.owned(source, it) for it in items]
        now = utcnow()
        failures = int(state.get("consecutive_failures") or 0) + (1 if outcome.failed else 0)
        if outcome.fresh_for and not outcome.failed:
            logger.info(
                "source=%s fresh_for=%.0fs (Cache-Control or Expires)", source.id, outcome.fresh_for
            )
        fields = store_fields(items)
        saved = self.store.save_source(
            outcome,
            fields.articles,
            run_id=self.run_id,
            now=now,
            etag=etag,
            last_modified=last_modified,
            next_check_at=next_check(self.config, source, outcome, failures=failures, now=now),
            text_status=fields.text_status,
            analyses=fields.analyses,
            story_keys=fields.story_keys,
            analysis_errors=fields.analysis_errors,
        )
        return replace(
            outcome,
            new_articles=saved.new,
            seen_articles=saved.seen,
            pages_fetched=pages_fetched,
            new_stories=saved.new_stories,
        )

    def owned(self, source: Source, item: Item) -> Item:
        owner = self.owners.owner_of(item.article.url, [source.id])
        if owner == item.article.owner:
            return item
        return replace(item, article=replace(item.article, owner=owner))

    async def early_setup(self, source: Source, state: dict[str, Any]) -> Setup | None:
        """The analysis setup when the source's entries are best analysed as its feed is
        parsed: a feed or news search read for the first time (every entry is new) whose
        pages are not fetched (the entry is all the article will have). Else None."""
        if source.kind not in ("feed", "search") or source.fetch_articles:
            return None
        if state.get("last_success_at"):
            return None  # a known feed: most of its entries are stored already
        if state.get("consecutive_failures"):
            return None  # it failed before, whatever the cause: read it the plain way
        try:
            setup = await self.analysis_setup()
        except ParseError:
            return None  # analysed the usual way, which says why it cannot be
        return (self.analysis_key, setup)

    @staticmethod
    def take_early(
        items: list[Item], fresh: list[int], early: Mapping[EntryKey, tuple[Analysis, StoryKey]]
    ) -> list[int]:
        """Fills in the analyses made as the feed was parsed; the positions still to analyse."""
        left: list[int] = []
        for k in fresh:
            article = items[k].article
            found = (
                None
                if article.text
                else early.get(entry_key(article.title, article.summary, article.published_at))
            )
            if found is None:
                left.append(k)
            else:
                items[k] = replace(items[k], analysis=found[0], story_key=found[1])
        return left

    def needing_analysis(self, items: list[Item]) -> list[int]:
        """Positions of the new articles, and of known ones whose text was just read."""
        if not items:
            return []
        known = self.store.known_urls(
            [url for it in items for url in (it.article.url, *it.article.aliases)]
        )
        return [
            k
            for k, it in enumerate(items)
            if it.article.text or not ({it.article.url, *it.article.aliases} & known)
        ]

    def analyse(self, items: list[Item]) -> list[Item]:
        """Mentions, topics, funding events and story keys, in a worker process: the run's
        own process keeps fetching and storing meanwhile. Blocking (call it in a thread)."""
        results = analyse_bounded(
            self.config,
            self.analysis_key,
            [
                (it.article.title, it.article.summary, it.article.text, it.article.published_at)
                for it in items
            ],
        )
        out: list[Item] = []
        errors: list[str] = []
        for item, result in zip(items, results, strict=True):
            if isinstance(result, str):
                errors.append(result)
                out.append(replace(item, analysis_error=result))
            else:
                out.append(replace(item, analysis=result[0], story_key=result[1]))
        if errors:
            logger.warning(
                "source=%s %d articles not analysed, e.g. %s",
                items[0].article.source_id,
                len(errors),
                errors[0],
            )
        return out

    # -------------------------------------------------------------- article pages

    async def enrich(self, source: Source, items: list[Item]) -> tuple[list[Item], int, str | None]:
        """Fetch and extract the page of every new article, once. Never fails the source.

        Pages fetched before without success (an error, or over the per-run limit) are
        tried again when their article is seen again, up to MAX_PAGE_ATTEMPTS times.
        """
        if not items or not source.fetch_articles:
            return items, 0, None
        urls = [it.article.url for it in items]
        plan = choose_pages(
            items,
            known=self.store.known_urls(urls),
            retry=self.store.pages_to_retry(urls, max_attempts=MAX_PAGE_ATTEMPTS),
            max_articles=source.max_articles,
        )
        if not plan.todo:
            return plan.items, 0, None
        # 4a. the source's pages share network.source_timeout, and never outlast the run:
        # what is still in flight then waits for the next run, not counted as an attempt
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.config.network.source_timeout
        reason = f"the source's {self.config.network.source_timeout:g} s for its pages ran out"
        if self.deadline is not None and self.deadline < ends:
            ends, reason = self.deadline, "the run's deadline came first"
        results = await self.pages.read(plan.todo, timeout=ends - loop.time())
        applied = apply_pages(plan, results, pending=reason, source_url=source.url)
        return applied.items, applied.fetched, applied.note


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
    fetcher: Fetcher | FetchPool | None = None,
) -> list[SourceOutcome]:
    """Fetch, read and store every source concurrently; one failing source never stops the
    others. ``fetcher``: what to fetch with (closed at the end; default: open_fetcher)."""
    # A source holds its slot from fetch to store, so at most this many bodies are in
    # memory at once (each at most network.max_body_bytes). A rerun is mostly round trips
    # answered 304: with 8 slots, 200 feeds 50 ms away took 25 of them one after another.
    source_slots = asyncio.Semaphore(min(config.network.concurrency, SOURCES_IN_FLIGHT))
    # past the deadline no source starts, and those in flight keep what they have read
    deadline = asyncio.get_running_loop().time() + config.run_deadline()
    # the HTTP work runs in fetch processes beside this one (fetchpool), which schedules
    # the sources and writes what they give
    async with fetcher or open_fetcher(config.network) as fetcher:
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

        with store.grouped_commits() as commit:
            ticker = asyncio.create_task(_commit_every(commit, GROUP_SECONDS))
            tasks = [asyncio.create_task(one(s)) for s in sources]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                # the database failing (or the run interrupted) stops every source here,
                # while the fetcher is still open: none of them records an error it did
                # not have (a closed HTTP client) or counts it as the source's failure
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                ticker.cancel()


async def _commit_every(commit: Callable[[], None], seconds: float) -> None:
    """Commits the pass's group of saves every ``seconds`` (in the event loop's thread,
    which makes every write: never in the middle of one)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            commit()
        except StoreError as exc:  # the next save, or the last commit, says it again
            logger.error("%s", exc)
            return


async def _probe_all(config: Config) -> list[tuple[str, str, str]]:
    async with Fetcher(config.network) as fetcher:
        # nothing counts as known: every candidate of a sitemap is reported
        collector = Collector(
            config, fetcher, RobotsCache(fetcher), Slots(), known_urls=lambda _urls: set()
        )

        async def one(source: Source) -> tuple[str, str, str]:
            try:
                collected = await collector.collect(source, {})
            except (FetchError, ParseError) as exc:
                return source.id, "error", str(exc)
            return source.id, "ok", f"HTTP {collected.status}, {len(collected.entries)} entries"

        return list(await asyncio.gather(*(one(s) for s in config.sources if s.enabled)))


def probe(config: Config) -> list[tuple[str, str, str]]:
    """(source id, "ok" or "error", detail) for every enabled source, read as a run reads it
    (feed, listing page or sitemap), without validators and without touching the database."""
    return asyncio.run(_probe_all(config))


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
        # the fetch processes start now: they import the fetcher while the database opens
        fetcher = open_fetcher(config.network)
        if isinstance(fetcher, FetchPool):
            fetcher.spawn()
        try:
            store = Store.open(db_path)
        except BaseException:
            if isinstance(fetcher, FetchPool):
                fetcher.discard()
            raise
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
                    run_sources(
                        config, store, due, run_id=run_id, progress=progress, fetcher=fetcher
                    )
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
            if isinstance(fetcher, FetchPool):
                fetcher.discard()  # spawned for a pass that did not take place


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
            # 1. the registry as it is now -> members table (new members need their row),
            # and who owns each article, decided again from the websites and newsrooms
            store.sync_config(config)
            store.recompute_owners(Owners.from_config(config))
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
