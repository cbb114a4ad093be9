"""End-to-end figures: `veille run` as a subprocess against the synthetic corpus.

1. First run on an empty database: wall time, entries per second, peak memory of the
   whole process tree (veille, its forkserver and the parser/extractor children), CPU.
2. Steady-state rerun right after (nothing new; validators sent, 304s): wall time and
   the bytes the server sent, beside the first run's.
The baseline of the first run is the time the network alone needs: the same requests
made by a bare aiohttp client under the same per-host and global limits.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.scripts.bench_common import (
    Row,
    Section,
    TreeUsage,
    median,
    member_names,
    run_tree,
    veille,
    write_config,
)
from tests.scripts.bench_corpus import Corpus, build_corpus, build_small_corpus, host_of
from tests.scripts.bench_fingerprint import fingerprint
from tests.scripts.bench_reader import READER_WORKERS, ReaderRun, read_twice, veille_counts
from tests.scripts.bench_reader import version as reader_version
from tests.scripts.bench_server import ServerProcess, free_port

LATENCY = 0.05
# veille's defaults but for the delay between two requests to one host (1 s by default:
# politeness towards real sites, pointless against our own server)
BENCH_NETWORK: dict[str, Any] = {"allow_private": True, "per_host_delay": 0}


@dataclass
class Served:
    corpus: Corpus
    server: ServerProcess
    port: int
    root: Path

    def url(self, site: int, path: str) -> str:
        return f"http://{host_of(site, self.port)}/{path}"


@contextmanager
def serve_corpus(
    *,
    scale: float,
    seed: int,
    tmp: Path,
    build: Callable[..., Corpus] = build_corpus,
    latency: float = LATENCY,
) -> Iterator[Served]:
    port = free_port()
    started = time.perf_counter()
    corpus = build(members=member_names(), seed=seed, scale=scale, port=port)
    root = tmp / "www"
    corpus.write(root)
    pages = (
        f"{corpus.pages:,} article pages ({corpus.page_bytes / corpus.pages / 1000:.0f} KB "
        f"on average, {corpus.page_bytes / 1e6:.0f} MB)"
        if corpus.pages
        else "no article pages"
    )
    print(
        f"  corpus: {len(corpus.feeds):,} feeds, {corpus.entries:,} entries on "
        f"{corpus.sites} sites, {pages}, built in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    with ServerProcess(root, port=port, sites=corpus.sites, latency=latency) as server:
        yield Served(corpus, server, port, root)


def corpus_sources(served: Served) -> list[dict[str, Any]]:
    return [
        {
            "id": f"bench-{i}",
            "kind": "feed",
            "name": f"Bench feed {i}",
            "lang": lang,
            "url": served.url(site, path),
            "fetch_articles": publisher,
        }
        for i, (site, path, publisher, lang) in enumerate(served.corpus.feeds)
    ]


def _mb(value: int) -> float:
    return value / 1024 / 1024


async def _bare_crawl(urls: list[str], *, concurrency: int, per_host: int) -> float:
    """The network floor: every URL of the run fetched by aiohttp under veille's limits."""
    import aiohttp

    hosts: dict[str, asyncio.Semaphore] = {}
    slots = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(url: str) -> None:
            host = url.split("/")[2]
            sem = hosts.setdefault(host, asyncio.Semaphore(per_host))
            async with sem, slots, session.get(url) as response:
                await response.read()

        await asyncio.gather(*(one(u) for u in urls))
    return time.perf_counter() - started


def bench_end_to_end(
    *, scale: float, seed: int, repeat: int, tmp_root: Path | None = None
) -> Section:
    section = Section("1-2. end to end: `veille run` subprocess on the synthetic corpus")
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp_name:
        tmp = Path(tmp_name)
        with serve_corpus(scale=scale, seed=seed, tmp=tmp) as served:
            config = tmp / "bench.yaml"
            write_config(config, sources=corpus_sources(served), network=BENCH_NETWORK)
            firsts: list[TreeUsage] = []
            reruns: list[TreeUsage] = []
            first_bytes: list[int] = []
            rerun_bytes: list[int] = []
            first_requests: list[int] = []
            rerun_requests: list[int] = []
            rerun_304: list[int] = []
            for attempt in range(repeat):
                db = tmp / f"run-{attempt}.db"
                served.server.reset()
                first = run_tree(veille("run", "--config", config, "--db", db))
                stats = served.server.stats()
                if first.returncode != 0:
                    raise RuntimeError(
                        f"veille run failed ({first.returncode}): {first.stderr[-2000:]}"
                    )
                first_bytes.append(int(stats["bytes"]))  # type: ignore[call-overload]
                first_requests.append(int(stats["requests"]))  # type: ignore[call-overload]
                served.server.reset()
                again = run_tree(veille("run", "--config", config, "--db", db))
                stats = served.server.stats()
                rerun_bytes.append(int(stats["bytes"]))  # type: ignore[call-overload]
                rerun_requests.append(int(stats["requests"]))  # type: ignore[call-overload]
                rerun_304.append(int(stats["not_modified"]))  # type: ignore[call-overload]
                firsts.append(first)
                reruns.append(again)
                print(
                    f"  run {attempt + 1}/{repeat}: first {first.wall:.1f} s "
                    f"(CPU {first.cpu:.0f} s, peak RSS {_mb(first.peak_rss):.0f} MB, "
                    f"PSS {_mb(first.peak_pss):.0f} MB, {first.processes} processes, "
                    f"{first_requests[-1]:,} requests); rerun {again.wall:.1f} s, "
                    f"{rerun_requests[-1]} requests, {rerun_304[-1]} answered 304",
                    flush=True,
                )
                summary = first.stderr.strip().splitlines()[-1:] or [""]
                print(f"    {summary[0][:200]}", flush=True)
                print(f"    {fingerprint(db, port=served.port).line()}", flush=True)
            # the network floor for the first run, measured the same way
            import sqlite3

            conn = sqlite3.connect(tmp / "run-0.db")
            articles, with_text = conn.execute(
                "SELECT count(*), sum(text IS NOT NULL AND text != '') FROM articles"
            ).fetchone()
            stories, mentions = conn.execute(
                "SELECT (SELECT count(*) FROM stories), (SELECT count(*) FROM mentions)"
            ).fetchone()
            conn.close()
            stored = fingerprint(tmp / "run-0.db", port=served.port)
            urls = [served.url(site, path) for site, path, _, _ in served.corpus.feeds]
            urls += [
                served.url(site, path)
                for (site, path) in served.corpus.files
                if path.startswith("articles/")
            ]
            floor = median(
                [
                    asyncio.run(_bare_crawl(urls, concurrency=20, per_host=2))
                    for _ in range(max(1, min(repeat, 3)))
                ]
            )
    entries = served.corpus.entries
    wall = median([u.wall for u in firsts])
    cpu = median([u.cpu for u in firsts])
    rss = median([_mb(u.peak_rss) for u in firsts])
    pss = median([_mb(u.peak_pss) for u in firsts])
    full = scale >= 1.0
    section.notes.append(
        f"first run: {entries:,} entries, {served.corpus.pages:,} pages; stored {articles:,} articles "
        f"({with_text:,} with full text), {stories:,} stories, {mentions:,} mentions; "
        f"{median(first_requests):,.0f} requests, median of {repeat}"
    )
    section.notes.append(
        "config: veille's network defaults (concurrency 20, 2 per host) but per_host_delay 0 "
        f"(1 s by default); one loopback address per site; server latency {LATENCY * 1000:.0f} ms per request"
    )
    section.notes.append(
        f"CPU of the whole tree during the first run: {cpu:.0f} s in {wall:.0f} s of wall time "
        f"= {cpu / wall:.2f} cores busy on average"
    )
    section.notes.append(f"store of the first run: {stored.line()}")
    section.rows += [
        Row(
            "e2e",
            "first run: wall time",
            wall,
            "s",
            baseline=floor,
            baseline_label="network alone (aiohttp, same limits)",
            target="<= 16 s at full scale" if full else f"<= {16 * scale:.1f} s (16 s x scale)",
            met=wall <= 16 * max(scale, 0.0) if scale else None,
            higher_is_better=False,
        ),
        Row(
            "e2e",
            "first run: cores busy on average (CPU of the tree / wall)",
            cpu / wall,
            "cores",
            target=">= 1.8 (on 2 cores)",
            met=cpu / wall >= 1.8,
        ),
        Row(
            "e2e",
            "first run: entries per second",
            entries / wall,
            "entries/s",
            baseline=entries / floor,
            baseline_label="network alone",
        ),
        Row(
            "e2e",
            "first run: peak RSS, sum over process tree",
            rss,
            "MB",
            target="< 400 MB",
            met=rss < 400,
            higher_is_better=False,
            note="shared pages counted once per process",
        ),
        Row(
            "e2e",
            "first run: peak PSS, sum over process tree",
            pss,
            "MB",
            target="(information)",
            higher_is_better=False,
            note="shared pages divided among the processes sharing them",
        ),
        Row(
            "e2e",
            "steady rerun: wall time (304s)",
            median([u.wall for u in reruns]),
            "s",
            baseline=wall,
            baseline_label="first run",
            target="<= 1.5 s",
            met=median([u.wall for u in reruns]) <= 1.5,
            higher_is_better=False,
        ),
        Row(
            "e2e",
            "steady rerun: bytes sent by the server",
            median(rerun_bytes) / 1000,
            "KB",
            baseline=median(first_bytes) / 1000,
            baseline_label="first run",
            target="< 2% of the first run",
            met=median(rerun_bytes) < 0.02 * median(first_bytes),
            higher_is_better=False,
            note=f"{median(rerun_requests):.0f} requests, {median(rerun_304):.0f} answered 304",
        ),
    ]
    return section


SMALL_LATENCY = 0.0  # the figures for many small sources are for files on loopback


def bench_small_sources(
    *,
    scale: float,
    seed: int,
    repeat: int,
    latency: float = SMALL_LATENCY,
    reader_workers: int = READER_WORKERS,
) -> Section:
    """Many small sources: 3,000 feeds of a few entries, one source each, no article pages.
    First run on an empty database, then a rerun in which every feed answers 304. Beside
    veille's two runs (after them, and before them in every other attempt), reader reads the
    same feeds the same two ways, in a process and a database of its own
    (tests/scripts/bench_reader.py)."""
    section = Section("1-2b. many small sources: `veille run` subprocess, one source per feed")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with serve_corpus(
            scale=scale, seed=seed, tmp=tmp, build=build_small_corpus, latency=latency
        ) as served:
            config = tmp / "small.yaml"
            write_config(config, sources=corpus_sources(served), network=BENCH_NETWORK)
            firsts: list[TreeUsage] = []
            reruns: list[TreeUsage] = []
            rerun_304: list[int] = []
            reader_urls = tmp / "reader-urls.txt"
            reader_urls.write_text(
                "".join(f"{served.url(site, path)}\n" for site, path, _, _ in served.corpus.feeds)
            )
            reader_firsts: list[ReaderRun] = []
            reader_reruns: list[ReaderRun] = []
            stored_first: list[tuple[int, int, dict[str, int]]] = []
            rerun_failed: list[int] = []

            def read_with_reader(attempt: int) -> None:
                # the same feeds, in reader's own process and its own folder
                first, again = read_twice(
                    reader_urls,
                    tmp / f"reader-{attempt}",
                    workers=reader_workers,
                    server=served.server,
                )
                reader_firsts.append(first)
                reader_reruns.append(again)

            for attempt in range(repeat):
                if attempt % 2 == 1:  # reader goes first in every other attempt
                    read_with_reader(attempt)
                db = tmp / f"small-{attempt}.db"
                first = run_tree(veille("run", "--config", config, "--db", db))
                if first.returncode != 0:
                    raise RuntimeError(
                        f"veille run failed ({first.returncode}): {first.stderr[-2000:]}"
                    )
                stored_first.append(veille_counts(db))
                served.server.reset()
                again = run_tree(veille("run", "--config", config, "--db", db))
                rerun_304.append(int(served.server.stats()["not_modified"]))  # type: ignore[call-overload]
                firsts.append(first)
                reruns.append(again)
                print(
                    f"  run {attempt + 1}/{repeat}: first {first.wall:.1f} s (CPU {first.cpu:.0f} s, "
                    f"peak RSS {_mb(first.peak_rss):.0f} MB); rerun {again.wall:.1f} s "
                    f"(CPU {again.cpu:.1f} s), {rerun_304[-1]:,} answered 304",
                    flush=True,
                )
                summary = first.stderr.strip().splitlines()[-1:] or [""]
                print(f"    {summary[0][:200]}", flush=True)
                print(f"    {fingerprint(db, port=served.port).line()}", flush=True)
                articles, failed, statuses = stored_first[-1]
                rerun_failed.append(veille_counts(db)[1])
                print(
                    f"    veille: first run stored {articles:,} articles, {failed:,} sources "
                    f"failed ({', '.join(f'{n:,} {s}' for s, n in sorted(statuses.items()))}); "
                    f"rerun {rerun_failed[-1]:,} failed",
                    flush=True,
                )
                if attempt % 2 == 0:
                    read_with_reader(attempt)
            stored = fingerprint(tmp / "small-0.db", port=served.port)
            urls = [served.url(site, path) for site, path, _, _ in served.corpus.feeds]
            floor = median(
                [
                    asyncio.run(_bare_crawl(urls, concurrency=20, per_host=2))
                    for _ in range(max(1, min(repeat, 3)))
                ]
            )
    sources = len(served.corpus.feeds)
    wall = median([u.wall for u in firsts])
    rerun = median([u.wall for u in reruns])
    cpu = median([u.cpu for u in firsts])
    full = scale >= 1.0
    section.notes.append(
        f"{sources:,} feeds (one source each), {served.corpus.entries:,} entries, no article "
        f"pages; server latency {latency * 1000:.0f} ms; median of {repeat}"
    )
    section.notes.append(
        f"first run: {wall / sources * 1000:.1f} ms per source, CPU {cpu:.0f} s = "
        f"{cpu / wall:.2f} cores busy; rerun: {rerun / sources * 1000:.1f} ms per source, "
        f"{median(rerun_304):,.0f} answered 304"
    )
    section.notes.append(f"store of the first run: {stored.line()}")
    reader_wall = median([r.usage.wall for r in reader_firsts])
    reader_rerun = median([r.usage.wall for r in reader_reruns])
    reader_label = f"reader {reader_version()}, {reader_workers} threads"
    veille_failed = median([float(failed) for _, failed, _ in stored_first])
    reader_refused = median([float(r.broken) for r in reader_firsts])
    section.notes.append(
        f"{reader_label} (update_feeds_iter(scheduled=False, workers={reader_workers})), "
        f"its own process and database, after veille's runs (before them in every other attempt): first run {reader_wall:.1f} s "
        f"(CPU {median([r.usage.cpu for r in reader_firsts]):.1f} s), rerun {reader_rerun:.1f} s "
        f"({median([r.not_modified for r in reader_reruns]):,.0f} answered 304); refused "
        f"{reader_refused:,.0f} feeds (veille: {veille_failed:,.0f} sources failed); stored "
        f"{median([r.entries for r in reader_firsts]):,.0f} entries (veille: "
        f"{median([a for a, _, _ in stored_first]):,.0f} articles); median of {repeat}"
    )
    section.notes.append(
        "both times are the whole process, interpreter start and imports included: veille's "
        f"reads the {sources:,} sources' config and asks each site's robots.txt, reader's adds the "
        "feeds to its database"
    )
    section.rows += [
        Row(
            "small",
            f"first run, {sources:,} small feeds: wall time",
            wall,
            "s",
            baseline=floor,
            baseline_label="network alone (aiohttp, same limits)",
            target="<= 7 s at full scale" if full else f"<= {7 * scale:.1f} s (7 s x scale)",
            met=wall <= 7 * scale,
            higher_is_better=False,
        ),
        Row(
            "small",
            f"rerun, {sources:,} small feeds all 304: wall time",
            rerun,
            "s",
            baseline=wall,
            baseline_label="first run",
            target="<= 3 s at full scale" if full else f"<= {3 * scale:.1f} s (3 s x scale)",
            met=rerun <= 3 * scale,
            higher_is_better=False,
        ),
        Row(
            "small",
            f"first run, {sources:,} small feeds: wall time",
            wall,
            "s",
            baseline=reader_wall,
            baseline_label=reader_label,
            target="faster than reader",
            met=wall < reader_wall,
            higher_is_better=False,
        ),
        Row(
            "small",
            f"rerun, {sources:,} small feeds all 304: wall time",
            rerun,
            "s",
            baseline=reader_rerun,
            baseline_label=reader_label,
            target="faster than reader",
            met=rerun < reader_rerun,
            higher_is_better=False,
        ),
        Row(
            "small",
            f"first run, {sources:,} small feeds: CPU of the process tree",
            cpu,
            "s",
            baseline=median([r.usage.cpu for r in reader_firsts]),
            baseline_label=reader_label,
            target="(information)",
            higher_is_better=False,
            note="veille also finds mentions, funding events and stories",
        ),
        Row(
            "small",
            f"first run, {sources:,} small feeds: feeds refused",
            veille_failed,
            "feeds",
            baseline=reader_refused,
            baseline_label=f"{reader_label}, feeds with a last_exception",
            higher_is_better=False,
            note="veille: sources whose pass was neither ok nor not-modified",
        ),
        Row(
            "small",
            f"first run, {sources:,} small feeds: entries stored",
            median([float(a) for a, _, _ in stored_first]),
            "entries",
            baseline=median([float(r.entries) for r in reader_firsts]),
            baseline_label=reader_label,
            note=f"{served.corpus.entries:,} in the feeds",
        ),
    ]
    return section
