"""One pass over the configured sources: config + database -> stored articles and a RunReport.

Both cron (`veille run`) and the daemon call ``run``. The order of the steps is
written once, here; the stages never call each other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.config import Config, Source
from pipeline.dedupe import to_articles
from pipeline.errors import ConfigError, FetchError, ParseError, StoreError
from pipeline.fetch import Fetcher
from pipeline.lock import run_lock
from pipeline.models import SourceOutcome
from pipeline.parse import parse_feed_guarded
from pipeline.sandbox import Limits
from pipeline.store import Store, utcnow

logger = logging.getLogger(__name__)

Progress = Callable[[SourceOutcome], None]
SOURCES_IN_FLIGHT = 8


@dataclass
class RunReport:
    run_id: int
    started_at: datetime
    duration: float = 0.0
    outcomes: list[SourceOutcome] = field(default_factory=list)
    not_due: list[str] = field(
        default_factory=list
    )  # waiting: backing off after failures, or polled less often

    def _count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def new_articles(self) -> int:
        return sum(o.new_articles for o in self.outcomes)

    @property
    def entries(self) -> int:
        return sum(o.entries for o in self.outcomes)

    @property
    def status(self) -> str:
        """ok, partial (some sources failed) or failed (every source that ran failed)."""
        if self.outcomes and len(self.failed) == len(self.outcomes):
            return "failed"
        return "partial" if self.failed else "ok"

    def counts(self) -> dict[str, int]:
        return {
            "sources_total": len(self.outcomes) + len(self.not_due),
            "sources_ok": self._count("ok"),
            "sources_not_modified": self._count("not-modified"),
            "sources_failed": len(self.failed),
            "sources_skipped": len(self.not_due),
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
        return (
            f"veille run {self.run_id}: {', '.join(parts)}; {c['entries']} entries, "
            f"{c['new_articles']} new articles in {self.duration:.1f} s"
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
    """When to look again: the source's interval on success; interval x failures, capped, on error."""
    if not outcome.failed:
        return now + timedelta(minutes=source.interval_minutes or 0)
    base = timedelta(minutes=source.interval_minutes or config.schedule.run_every_minutes)
    cap = timedelta(hours=config.network.backoff_cap_hours)
    wait = min(base * failures, cap)
    if outcome.retry_after:
        # a server may ask for years: it gets at most the cap, the source is never switched off
        wait = max(wait, timedelta(seconds=min(outcome.retry_after, cap.total_seconds())))
    return now + wait


async def _process(
    config: Config,
    store: Store,
    fetcher: Fetcher,
    source: Source,
    *,
    run_id: int,
    parse_slots: asyncio.Semaphore,
    limits: Limits,
) -> SourceOutcome:
    # 1. what we know of the source: validators and failure count
    state = store.source_state(source.id)
    etag = last_modified = None
    outcome: SourceOutcome
    articles = []
    # 2. fetch, conditionally
    try:
        fetched = await fetcher.fetch(
            source.url,
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            trusted=True,
        )
    except FetchError as exc:
        outcome = SourceOutcome(
            source.id,
            "error",
            http_status=exc.status,
            error=str(exc),
            error_kind=exc.kind,
            retry_after=exc.retry_after,
        )
    else:
        if fetched.not_modified:
            # 3a. 304: nothing to parse
            outcome = SourceOutcome(source.id, "not-modified", http_status=304)
            etag, last_modified = fetched.etag, fetched.last_modified
        else:
            # 3b. parse in a bounded child process
            try:
                async with parse_slots:
                    parsed = await asyncio.to_thread(
                        parse_feed_guarded,
                        fetched.body,
                        headers=fetched.headers,
                        url=fetched.final_url,
                        limits=limits,
                    )
            except ParseError as exc:
                # validators are not kept: the next run must fetch and parse again
                outcome = SourceOutcome(
                    source.id,
                    "error",
                    http_status=fetched.status,
                    error=str(exc),
                    error_kind="parse",
                )
            else:
                # 4. entries -> articles with canonical URLs
                articles = to_articles(
                    source.id,
                    parsed.entries,
                    lang=source.lang or parsed.lang,
                    unwrap=source.kind == "search",
                )
                warnings = tuple(
                    w
                    for w in (
                        parsed.bozo and f"feed is malformed but usable: {parsed.bozo}",
                        parsed.skipped and f"{parsed.skipped} entries skipped",
                    )
                    if w
                )
                outcome = SourceOutcome(
                    source.id,
                    "ok",
                    http_status=fetched.status,
                    entries=len(parsed.entries),
                    warnings=warnings,
                )
                etag, last_modified = fetched.etag, fetched.last_modified
    # 5. store the source's articles and its state in one transaction
    now = utcnow()
    failures = int(state.get("consecutive_failures") or 0) + (1 if outcome.failed else 0)
    saved = store.save_source(
        outcome,
        articles,
        run_id=run_id,
        now=now,
        etag=etag,
        last_modified=last_modified,
        next_check_at=next_check(config, source, outcome, failures=failures, now=now),
    )
    return SourceOutcome(
        outcome.source_id,
        outcome.status,
        http_status=outcome.http_status,
        error=outcome.error,
        error_kind=outcome.error_kind,
        entries=outcome.entries,
        new_articles=saved.new,
        seen_articles=saved.seen,
        retry_after=outcome.retry_after,
        warnings=outcome.warnings,
    )


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
    """Fetch, parse and store every source concurrently; one failing source never stops the others."""
    limits = Limits(
        timeout=config.network.parse_timeout,
        memory_mb=config.network.parse_memory_mb,
    )
    parse_slots = asyncio.Semaphore(os.cpu_count() or 2)
    # A source holds its slot from fetch to store, so at most this many bodies are in
    # memory at once (each at most network.max_body_bytes).
    source_slots = asyncio.Semaphore(min(config.network.concurrency, SOURCES_IN_FLIGHT))
    async with Fetcher(config.network) as fetcher:

        async def one(source: Source) -> SourceOutcome:
            async with source_slots:
                try:
                    outcome = await _process(
                        config,
                        store,
                        fetcher,
                        source,
                        run_id=run_id,
                        parse_slots=parse_slots,
                        limits=limits,
                    )
                except StoreError:
                    raise  # the database itself is failing: no point going on
                except Exception as exc:  # a bug on odd input: this source fails, the run goes on
                    logger.exception("source=%s internal error", source.id)
                    outcome = _record_internal_error(config, store, source, exc, run_id=run_id)
            if progress:
                progress(outcome)
            return outcome

        return list(await asyncio.gather(*(one(s) for s in sources)))


def run(
    config: Config,
    *,
    db_path: str | Path,
    source_ids: Sequence[str] = (),
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RunReport:
    """One pass. Raises LockHeld, ConfigError or StoreError; failed sources are in the report."""
    # 1. which sources were asked for (an unknown --source is a usage error)
    wanted = select_sources(config, source_ids)
    # 2. one writer at a time
    with run_lock(db_path):
        started = time.monotonic()
        store = Store.open(db_path)
        try:
            # 3. sources.yaml -> members and sources tables; runs a killed process left open
            store.sync_config(config)
            now = utcnow()
            if stale := store.close_stale_runs(now=now):
                logger.warning(
                    "marked %d earlier run(s) as interrupted (killed before the end)", stale
                )
            # 4. sources not due yet (backing off, or a longer interval) wait, unless named
            later: list[Source] = []
            if source_ids:
                due = wanted
            else:
                due, later = store.due_sources(wanted, now=now)
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
            return report
        finally:
            store.close()
