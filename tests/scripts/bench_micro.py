"""Stage figures, each beside a bare baseline on the same input in the same run.

3. Fetch throughput at concurrency 50: veille's Fetcher against the local server (the
   same 50 ms latency), beside a bare aiohttp client; CPU per request in this process.
4. Parsing: parse_feed_guarded (guards + feedparser in a bounded child) beside
   feedparser.parse on the same bytes, in this process.
5. Extraction: extract_guarded (trafilatura in a bounded child), as many at once as
   the run allows (one per core), beside trafilatura in this process; CPU of every
   process against wall time, i.e. how much of the machine extraction uses.
"""

from __future__ import annotations

import asyncio
import io
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.scripts.bench_common import Row, Section, median
from tests.scripts.bench_corpus import Corpus, host_of
from tests.scripts.bench_server import ServerProcess, free_port

CONCURRENCY = 50


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _veille_fetch(urls: list[str]) -> tuple[float, float]:
    from pipeline.settings.config import Network
    from pipeline.sources.fetch import Fetcher

    network = Network(
        allow_private=True,
        concurrency=CONCURRENCY,
        per_host_concurrency=5,
        per_host_delay=0,
        retries=0,
    )
    async with Fetcher(network) as fetcher:
        await asyncio.gather(*(fetcher.fetch(u, trusted=True) for u in urls[:CONCURRENCY]))  # warm
        cpu, started = _cpu(), time.perf_counter()
        await asyncio.gather(*(fetcher.fetch(u, trusted=True) for u in urls))
        return time.perf_counter() - started, _cpu() - cpu


async def _veille_fetch_guarded(urls: list[str]) -> tuple[float, float]:
    """The same through the guarded pool (what article pages and redirects use when
    private networks are refused): the address check at connect time stays in the path."""
    from pipeline.settings.config import Network
    from pipeline.sources.fetch import Fetcher

    network = Network(concurrency=CONCURRENCY, per_host_concurrency=5, per_host_delay=0, retries=0)
    async with Fetcher(network) as fetcher:
        # loopback is refused by the guard: let it through for the measurement only
        import pipeline.sources.fetch as fetch_module

        real = fetch_module.address_problem
        fetch_module.address_problem = lambda address: None  # type: ignore[assignment]
        real_host = fetch_module.host_problem
        fetch_module.host_problem = lambda host: None  # type: ignore[assignment]
        try:
            await asyncio.gather(*(fetcher.fetch(u) for u in urls[:CONCURRENCY]))
            cpu, started = _cpu(), time.perf_counter()
            await asyncio.gather(*(fetcher.fetch(u) for u in urls))
            return time.perf_counter() - started, _cpu() - cpu
        finally:
            fetch_module.address_problem = real  # type: ignore[assignment]
            fetch_module.host_problem = real_host  # type: ignore[assignment]


async def _aiohttp_fetch(urls: list[str]) -> tuple[float, float]:
    import aiohttp

    slots = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> bytes:
            async with slots, session.get(url) as response:
                return await response.read()

        await asyncio.gather(*(one(u) for u in urls[:CONCURRENCY]))
        cpu, started = _cpu(), time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - started, _cpu() - cpu


def bench_fetch(*, scale: float, repeat: int, tmp: Path) -> Section:
    section = Section("3. fetch throughput, concurrency 50, 50 ms server latency")
    requests = max(1000, round(3000 * min(scale, 1.0)))
    sites = 10
    port = free_port()
    (tmp / "www-fetch").mkdir(exist_ok=True)
    urls = [f"http://{host_of(i % sites, port)}/_tiny" for i in range(requests)]
    ideal = CONCURRENCY / 0.05
    with ServerProcess(tmp / "www-fetch", port=port, sites=sites, latency=0.05):
        results: dict[str, list[tuple[float, float]]] = {"veille": [], "guarded": [], "aiohttp": []}
        for _ in range(repeat):
            results["aiohttp"].append(asyncio.run(_aiohttp_fetch(urls)))
            results["veille"].append(asyncio.run(_veille_fetch(urls)))
            results["guarded"].append(asyncio.run(_veille_fetch_guarded(urls)))
    rate = {k: median([requests / wall for wall, _ in v]) for k, v in results.items()}
    cpu_ms = {k: median([cpu / requests * 1000 for _, cpu in v]) for k, v in results.items()}
    section.notes.append(
        f"{requests:,} GETs of a 4 KB page spread over {sites} loopback hosts, after a warm-up "
        f"round; the ceiling at 50 in flight and 50 ms each is {ideal:,.0f} requests/s; "
        f"median of {repeat}; CPU per request is this process's (the server runs in another)"
    )
    section.rows += [
        Row(
            "fetch",
            "Fetcher (trusted pool): requests per second",
            rate["veille"],
            "req/s",
            baseline=rate["aiohttp"],
            baseline_label="bare aiohttp",
            target=">= 90% of aiohttp",
            met=rate["veille"] >= 0.90 * rate["aiohttp"],
        ),
        Row(
            "fetch",
            "Fetcher (guarded pool): requests per second",
            rate["guarded"],
            "req/s",
            baseline=rate["aiohttp"],
            baseline_label="bare aiohttp",
            target=">= 90% of aiohttp",
            met=rate["guarded"] >= 0.90 * rate["aiohttp"],
        ),
        Row(
            "fetch",
            "Fetcher (trusted pool): CPU per request",
            cpu_ms["veille"],
            "ms",
            baseline=cpu_ms["aiohttp"],
            baseline_label="bare aiohttp",
            higher_is_better=False,
        ),
        Row(
            "fetch",
            "Fetcher (guarded pool): CPU per request",
            cpu_ms["guarded"],
            "ms",
            baseline=cpu_ms["aiohttp"],
            baseline_label="bare aiohttp",
            higher_is_better=False,
        ),
    ]
    return section


# ------------------------------------------------------------------ parsing


def _timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def bench_parse(corpus: Corpus, *, repeat: int) -> Section:
    import feedparser

    from pipeline.sources.parse.feed import parse_feed_guarded
    from pipeline.sources.sandbox import Limits

    section = Section("4. parsing feeds")
    feeds = [
        (corpus.files[(site, path)], f"http://{host_of(site, 1)}/{path}")
        for site, path, _, _ in corpus.feeds
    ][:60]
    entries = 50 * len(feeds)
    limits = Limits(timeout=60)
    headers = {"content-type": "application/rss+xml"}
    parse_feed_guarded(
        feeds[0][0], headers=headers, url=feeds[0][1], limits=limits
    )  # forkserver up

    def guarded_serial() -> None:
        for body, url in feeds:
            parse_feed_guarded(body, headers=headers, url=url, limits=limits)

    cores = os.cpu_count() or 2

    def guarded_parallel() -> None:
        with ThreadPoolExecutor(cores) as pool:
            list(
                pool.map(
                    lambda f: parse_feed_guarded(f[0], headers=headers, url=f[1], limits=limits),
                    feeds,
                )
            )

    def bare() -> None:
        for body, _ in feeds:
            feedparser.parse(io.BytesIO(body), response_headers=headers)

    serial = median([_timed(guarded_serial) for _ in range(repeat)])
    parallel = median([_timed(guarded_parallel) for _ in range(repeat)])
    plain = median([_timed(bare) for _ in range(repeat)])
    section.notes.append(
        f"{len(feeds)} feeds of the corpus ({entries:,} entries, "
        f"{sum(len(b) for b, _ in feeds) / len(feeds) / 1000:.0f} KB each), median of {repeat}"
    )
    section.rows += [
        Row(
            "parse",
            "parse_feed_guarded, one at a time",
            entries / serial,
            "entries/s",
            baseline=entries / plain,
            baseline_label="feedparser.parse in-process",
        ),
        Row(
            "parse",
            f"parse_feed_guarded, {cores} at once (as a run does)",
            entries / parallel,
            "entries/s",
            baseline=entries / plain,
            baseline_label="feedparser.parse in-process",
        ),
    ]
    return section


# ------------------------------------------------------------------ extraction


def _tree_cpu_of_forkserver() -> float:
    """CPU of this process's children (the forkserver) and of the children they reaped."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def bench_extract(corpus: Corpus, *, scale: float, repeat: int) -> Section:
    from pipeline.analysis.extract import extract_guarded, extract_html
    from pipeline.sources.sandbox import Limits

    section = Section("5. extraction of article pages")
    pages = [
        (body, f"http://{host_of(site, 1)}/{path}")
        for (site, path), body in corpus.files.items()
        if path.startswith("articles/")
    ][: max(40, round(200 * min(scale, 1.0)))]
    limits = Limits(timeout=60)
    cores = os.cpu_count() or 2
    extract_guarded(pages[0][0], url=pages[0][1], limits=limits)  # forkserver up
    for body, url in pages[:3]:
        extract_html(body, url=url)  # trafilatura's first call in this process is slow: not counted

    def guarded() -> tuple[float, float]:
        cpu_children, cpu_self = _tree_cpu_of_forkserver(), _cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(lambda p: extract_guarded(p[0], url=p[1], limits=limits), pages))
        wall = time.perf_counter() - started
        return wall, (_tree_cpu_of_forkserver() - cpu_children) + (_cpu() - cpu_self)

    def bare() -> float:
        return _timed(lambda: [extract_html(body, url=url) for body, url in pages])

    runs = [guarded() for _ in range(repeat)]
    wall = median([w for w, _ in runs])
    cpu = median([c for _, c in runs])
    plain = median([bare() for _ in range(repeat)])
    utilisation = cpu / (wall * cores)
    section.notes.append(
        f"{len(pages)} article pages of the corpus ({sum(len(b) for b, _ in pages) / len(pages) / 1000:.0f} KB each), "
        f"{cores} at once through the sandbox, median of {repeat}; CPU {cpu:.1f} s in {wall:.1f} s of wall time "
        f"over {cores} cores; {cpu / len(pages) * 1000:.0f} ms of CPU per guarded page against "
        f"{plain / len(pages) * 1000:.0f} ms in-process"
    )
    section.rows += [
        Row(
            "extract",
            f"extract_guarded, {cores} at once: pages per second",
            len(pages) / wall,
            "pages/s",
            baseline=len(pages) / plain,
            baseline_label="trafilatura in-process, warm, 1 core",
        ),
        Row(
            "extract",
            "extraction: CPU busy across processes / (wall x cores)",
            utilisation * 100,
            "%",
            target="both cores used (> 80%)",
            met=utilisation > 0.8,
        ),
    ]
    return section


def corpus_for_stages(*, seed: int, scale: float) -> Corpus:
    from tests.scripts.bench_common import member_names
    from tests.scripts.bench_corpus import build_corpus

    return build_corpus(members=member_names(), seed=seed, scale=min(scale, 0.3), port=1)
