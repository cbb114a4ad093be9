"""`make bench`: figures measured here, each beside a baseline from the same run.

A seeded synthetic press corpus (200 feeds x 50 entries, 2,000 article pages of 60 to
120 KB at --scale 1) is served on loopback by an aiohttp server in another process
with 50 ms of latency per request; `veille run` runs against it as a subprocess.
Sections (--only NAME, repeatable):

    e2e       1-2. first run and steady-state rerun (wall, entries/s, peak memory, bytes)
    small     1-2b. many small sources: 3,000 feeds of a few entries, one source each,
              no article pages; first run and a rerun in which every feed answers 304,
              and the same two runs by reader (the feed reader library) beside them
    fetch     3. Fetcher against bare aiohttp at concurrency 50
    parse     4. parse_feed_guarded against bare feedparser
    extract   5. extract_guarded against trafilatura in-process; use of the cores
    matching  6. veille's matcher against a regex alternation and a bare Aho-Corasick scan
    members   6. the matcher at 220 members and their derived forms (>= 20 MB/s)
    remention, stories   6. whole-store passes
    queries   7. canned queries (100,000 articles; 1,000,000 with --big)
    growth    7. a run adding 500 entries to stores of 10k and 100k articles (1M with --big)
    report    8. `veille report` of a year at 220 members (60,000 articles), HTML, PDF and JSON

Medians of repeated runs; at the end, one table: measure, veille, baseline, ratio,
target, met. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.scripts.bench_common import WORDS, Row, Section, fmt, machine

# This module is the main module: the sandbox's children import it again (multiprocessing
# does so for a main module run with -m), so it imports nothing heavy at the top.

SYLLABLES = [
    "ga",
    "lo",
    "ne",
    "xi",
    "bio",
    "ter",
    "pha",
    "ma",
    "va",
    "no",
    "ce",
    "gen",
    "thé",
    "ra",
    "pax",
]


def synthetic_aliases(count: int, rng: random.Random) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()
        suffix = rng.choice(["", " Therapeutics", " Pharma", " Biotech", " SA", "-Bio"])
        names.add(word + suffix)
    return sorted(names)


def synthetic_text(size: int, aliases: list[str], rng: random.Random) -> str:
    parts: list[str] = []
    total = 0
    while total < size:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        if rng.random() < 0.3:
            sentence += " " + rng.choice(aliases)
        sentence = sentence[0].upper() + sentence[1:] + ". "
        parts.append(sentence)
        total += len(sentence)
    return "".join(parts)


def median_seconds(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_matching(*, megabytes: float, aliases: int, repeat: int, seed: int) -> Section:
    import ahocorasick

    from pipeline.analysis.folding import fold
    from pipeline.analysis.mentions import AliasRule, Matcher

    rng = random.Random(seed)
    names = synthetic_aliases(aliases, rng)
    text = synthetic_text(int(megabytes * 1_000_000), names, rng)
    size_mb = len(text.encode("utf-8")) / 1_000_000
    matcher = Matcher(
        [AliasRule(member_id=f"m{i}", member=n, alias=n) for i, n in enumerate(names)]
    )
    alternation = re.compile(
        r"\b(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b",
        re.IGNORECASE,
    )
    automaton = ahocorasick.Automaton()
    for n in names:
        automaton.add_word(fold(n).text, n)
    automaton.make_automaton()
    folded = fold(text).text

    found = len(matcher.find(text, snippets=False))
    # as the pipeline runs it: snippets are cut for each member's first mention only
    veille_s = median_seconds(lambda: matcher.find(text, snippets=False), repeat)
    regex_s = median_seconds(lambda: alternation.findall(text), max(1, repeat // 2))
    bare_s = median_seconds(lambda: sum(1 for _ in automaton.iter(folded)), repeat)
    fold_s = median_seconds(lambda: fold(text), repeat)
    print(
        f"matching: {size_mb:.1f} MB of text, {aliases} aliases, {found} mentions found, median of {repeat}"
    )
    print(f"  {'veille matcher (fold + scan + rules)':40} {size_mb / veille_s:8.1f} MB/s")
    print(f"  {'  of which folding alone':40} {size_mb / fold_s:8.1f} MB/s")
    print(f"  {'baseline: one regex alternation':40} {size_mb / regex_s:8.1f} MB/s")
    print(f"  {'baseline: bare Aho-Corasick scan':40} {size_mb / bare_s:8.1f} MB/s")
    print(
        f"  veille / regex: {regex_s / veille_s:.1f}x   (targets: >= 25 MB/s and >= 20x the regex)"
    )
    section = Section("6. matching")
    section.notes.append(
        f"{size_mb:.1f} MB of text, {aliases} aliases, {found} mentions, median of {repeat}"
    )
    section.rows += [
        Row(
            "matching",
            "matcher (fold + scan + rules)",
            size_mb / veille_s,
            "MB/s",
            baseline=size_mb / regex_s,
            baseline_label="one regex alternation",
            target=">= 25 MB/s and >= 20x regex",
            met=size_mb / veille_s >= 25 and regex_s / veille_s >= 20,
        ),
        Row(
            "matching",
            "matcher (fold + scan + rules)",
            size_mb / veille_s,
            "MB/s",
            baseline=size_mb / bare_s,
            baseline_label="bare Aho-Corasick on folded text",
        ),
    ]
    return section


def bench_remention(*, articles: int, seed: int) -> Section:
    """`veille remention` over a synthetic store of ``articles`` articles (2 KB of text each)."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from pipeline.run import remention
    from pipeline.settings.config import load_config
    from pipeline.storage.store import Store

    rng = random.Random(seed)
    config = load_config(Path(__file__).resolve().parents[2] / "sources.yaml")
    names = [m.name for m in config.members] + ["Atlanpole Biotherapies"]
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        Store.open(db_path).close()
        conn = sqlite3.connect(db_path)
        rows = (
            (
                f"https://press.example/{i}",
                f"Titre {i}",
                "Résumé court.",
                synthetic_text(2000, names, rng),
                "2026-11-28T00:00:00Z",
            )
            for i in range(articles)
        )
        conn.executemany(
            "INSERT INTO articles (url, title, summary, text, first_seen_at) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()
        conn.close()
        started = time.perf_counter()
        report = remention(config, db_path=db_path)
        took = time.perf_counter() - started
    print(
        f"remention: {articles:,} articles of about 2 KB, {report.mentions_after:,} mentions, "
        f"{report.fundings_after:,} funding events"
    )
    print(f"  {took:.1f} s, {articles / took:,.0f} articles/s")
    section = Section("6. remention")
    section.rows.append(
        Row(
            "remention",
            f"veille remention, {articles:,} stored articles",
            articles / took,
            "articles/s",
            note="no baseline",
        )
    )
    return section


def _synthetic_store(db_path: object, articles: int, rng: random.Random) -> None:
    """A store of ``articles`` articles of about 2 KB; one in five is a rewritten copy."""
    import sqlite3

    from pipeline.storage.store import Store

    Store.open(db_path).close()  # type: ignore[arg-type]
    names = ["Valneva", "Xenothera", "GlioCure", "Naobios", "AlgoSource"]
    conn = sqlite3.connect(db_path)  # type: ignore[arg-type]
    previous = ""
    rows = []
    for i in range(articles):
        if previous and rng.random() < 0.2:
            text = "Selon nos confrères. " + previous[200:] + " Lire aussi : nos dossiers."
        else:
            text = synthetic_text(2000, names, rng)
        previous = text
        rows.append(
            (
                f"https://press.example/{i}",
                f"Titre {i}",
                "",
                text,
                f"2026-11-{1 + i % 27:02d}T00:00:00Z",
            )
        )
    conn.executemany(
        "INSERT INTO articles (url, title, summary, text, first_seen_at) VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()


def bench_stories(*, articles: int, seed: int, repeat: int) -> Section:
    """Stories built per second on a synthetic store, then the cost of one more article."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from pipeline.analysis.stories import story_key
    from pipeline.models import Article, SourceOutcome
    from pipeline.run import restory
    from pipeline.settings.config import load_config
    from pipeline.storage.store import Store

    rng = random.Random(seed)
    config = load_config(Path(__file__).resolve().parents[2] / "sources.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "stories.db"
        _synthetic_store(db_path, articles, rng)
        report = restory(config, db_path=db_path)
        store = Store.open(db_path)
        store.sync_config(config)
        source = config.sources[0].id
        costs = []
        for n in range(max(repeat, 5) * 4):
            text = synthetic_text(2000, ["Valneva"], rng)
            when = datetime(2026, 11, 28, tzinfo=UTC)
            url = f"https://press.example/new-{n}"
            article = Article(
                url=url, link=url, title=f"Nouveau {n}", summary="", source_id=source, text=text
            )
            started = time.perf_counter()
            key = story_key(title=article.title, summary="", text=text, published_at=when)
            store.save_source(
                SourceOutcome(source, "ok"),
                [article],
                run_id=None,
                now=when,
                next_check_at=when,
                story_keys={url: key},
            )
            costs.append(time.perf_counter() - started)
        store.close()
    print(
        f"stories: {articles:,} synthetic articles (one in five a rewritten copy) -> {report.stories:,} stories"
    )
    print(
        f"  built by restory in {report.duration:.1f} s: {articles / report.duration:,.0f} articles/s"
    )
    print(
        f"  one more article into that store (key + lookup + save): median {statistics.median(costs) * 1000:.1f} ms"
    )
    section = Section("6. stories")
    section.rows += [
        Row(
            "stories",
            f"restory, {articles:,} articles",
            articles / report.duration,
            "articles/s",
            note=f"{report.stories:,} stories",
        ),
        Row(
            "stories",
            "one more article into that store",
            statistics.median(costs) * 1000,
            "ms",
            higher_is_better=False,
        ),
    ]
    return section


def bench_queries(*, articles: int, seed: int, repeat: int) -> Section:
    """Every canned query of storage/metadata.yml on a synthetic store of ``articles``
    articles and twice as many mentions (no text: the queries never read it)."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from pipeline.outputs.serve import load_metadata
    from pipeline.storage.store import Store, iso_week

    rng = random.Random(seed)
    members = [f"member-{i}" for i in range(220)]
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "veille.db"
        Store.open(db_path).close()
        conn = sqlite3.connect(db_path)
        conn.executemany(
            "INSERT INTO members (id, name, kind) VALUES (?, ?, 'member')",
            [(m, m.replace("-", " ").title()) for m in members],
        )
        conn.executemany(
            "INSERT INTO sources (id, name, kind, url, last_status, last_error) VALUES (?, ?, 'feed', ?, ?, ?)",
            [
                (
                    f"s{i}",
                    f"Source {i}",
                    f"https://s{i}.example/rss",
                    "error" if i % 50 == 0 else "ok",
                    "HTTP 500" if i % 50 == 0 else None,
                )
                for i in range(300)
            ],
        )
        start = time.time() - 3 * 365 * 86400
        stories = articles // 3
        conn.executemany(
            "INSERT INTO stories (id, title, first_seen_at, last_seen_at, article_count, outlets) "
            "VALUES (?, ?, '2026-01-01T00:00:00Z', ?, ?, '[]')",
            (
                (i, f"Story {i}", f"2026-{1 + i % 12:02d}-01T00:00:00Z", 1 + i % 4)
                for i in range(1, stories + 1)
            ),
        )

        def article_rows() -> Iterator[tuple[object, ...]]:
            for i in range(1, articles + 1):
                moment = start + (i / articles) * 3 * 365 * 86400
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
                week = iso_week(datetime.fromtimestamp(moment, tz=UTC))
                yield (
                    i,
                    f"https://press.example/{i}",
                    f"Titre {i} {rng.choice(WORDS)} mot{i % 100}",
                    "Résumé.",
                    when,
                    when,
                    f"s{i % 300}",
                    1 + i % stories,
                    week,
                )

        conn.executemany(
            "INSERT INTO articles (id, url, title, summary, published_at, first_seen_at, source_id, story_id, week) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            article_rows(),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO mentions (article_id, member_id, alias, count, in_title, snippet) "
            "VALUES (?, ?, ?, 1, 0, 'snippet')",
            (
                (1 + (i // 2), members[(i * 7919) % len(members)], "alias")
                for i in range(articles * 2)
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO fundings (article_id, member_id, amount, currency, amount_eur, phrase) "
            "VALUES (?, ?, 1e6, 'EUR', 1e6, 'phrase')",
            ((1 + i * 97, members[i % len(members)]) for i in range(articles // 100)),
        )
        conn.commit()
        mentions = conn.execute("SELECT count(*) FROM mentions").fetchone()[0]
        latest_week = conn.execute("SELECT max(week) FROM articles").fetchone()[0]
        queries = load_metadata()["databases"]["veille"]["queries"]
        # a search term found in 1% of the articles, as a member's name would be
        params = {"week": latest_week, "member": "member-7", "q": "mot42", "weeks": "8"}
        # the digest's link: the bounds of the week of the latest article, as a digest has them
        from pipeline.outputs.digest import Week, week_bounds

        latest_seen = conn.execute("SELECT max(first_seen_at) FROM articles").fetchone()[0]
        params.update(
            week_bounds(
                Week.containing(
                    datetime.fromisoformat(latest_seen.replace("Z", "+00:00")),
                    ZoneInfo("Europe/Paris"),
                )
            )
        )
        rows: list[Row] = []
        print(
            f"canned queries: {articles:,} articles, {mentions:,} mentions, median of {repeat} (target < 200 ms)"
        )
        for name, spec in queries.items():
            sql = spec["sql"]
            wanted = {k: v for k, v in params.items() if f":{k}" in sql}
            took = median_seconds(
                lambda sql=sql, wanted=wanted: conn.execute(sql, wanted).fetchall(), repeat
            )
            print(f"  {name:28} {took * 1000:8.1f} ms")
            rows.append(
                Row(
                    "queries",
                    f"canned query {name}",
                    took * 1000,
                    "ms",
                    target="< 200 ms",
                    met=took < 0.2,
                    higher_is_better=False,
                )
            )
        conn.close()
    section = Section(f"7. canned queries, {articles:,} articles")
    section.rows = rows
    return section


SECTIONS = (
    "e2e",
    "small",
    "fetch",
    "parse",
    "extract",
    "matching",
    "members",
    "remention",
    "stories",
    "queries",
    "growth",
    "report",
)


def print_table(sections: list[Section]) -> None:
    header = ("measure", "veille", "baseline", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = []
    for section in sections:
        for row in section.rows:
            ratio = row.ratio
            baseline = fmt(row.baseline, row.unit)
            if row.baseline_label and row.baseline is not None:
                baseline += f" ({row.baseline_label})"
            met = "-" if row.met is None else ("met" if row.met else "NOT MET")
            measure = row.measure + (f" [{row.note}]" if row.note else "")
            lines.append(
                (
                    f"{row.section}: {measure}",
                    fmt(row.veille, row.unit),
                    baseline,
                    "-" if ratio is None else f"{ratio:.2f}x",
                    row.target or "-",
                    met,
                )
            )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]
    widths[0] = min(widths[0], 78)
    widths[2] = min(widths[2], 60)
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full corpus")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of the quick measures")
    parser.add_argument(
        "--e2e-repeat", type=int, default=3, help="repetitions of the end-to-end runs"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--small-latency",
        type=float,
        default=0.0,
        help="server latency in seconds for the many-small-sources case (default 0: files on loopback)",
    )
    parser.add_argument(
        "--reader-workers",
        type=int,
        default=20,
        help="reader's threads in the small section (default 20: veille's requests in flight)",
    )
    parser.add_argument("--only", action="append", choices=SECTIONS, help="only this section")
    parser.add_argument(
        "--fetch-processes",
        type=int,
        default=None,
        help="network.fetch_processes of the end-to-end runs (default: veille's; 0: fetch in the run's process)",
    )
    parser.add_argument(
        "--big", action="store_true", help="1,000,000-article stores for queries and growth"
    )
    parser.add_argument("--megabytes", type=float, default=5.0, help="text size for matching")
    parser.add_argument("--aliases", type=int, default=1000)
    parser.add_argument(
        "--articles", type=int, default=20_000, help="stored articles for remention and stories"
    )
    parser.add_argument(
        "--query-articles",
        type=int,
        default=None,
        help="articles for the canned queries (100,000; 1,000,000 with --big)",
    )
    args = parser.parse_args()
    import tempfile
    from pathlib import Path

    wanted = args.only or list(SECTIONS)
    scale = args.scale
    began = time.perf_counter()
    print(machine())
    print(
        f"scale {scale:g}, repeat {args.repeat} (end to end {args.e2e_repeat}), seed {args.seed}, "
        f"sections: {', '.join(wanted)}"
        + ("" if args.big else "; 1,000,000-article stores are opt-in (--big)"),
        flush=True,
    )
    sections: list[Section] = []

    def run(name: str, label: str, make: Callable[[], Section]) -> None:
        if name not in wanted:
            return
        print(f"\n== {label}", flush=True)
        started = time.perf_counter()
        section = make()
        for note in section.notes:
            print(f"  {note}")
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        sections.append(section)

    from tests.scripts import bench_e2e, bench_growth, bench_micro

    if args.fetch_processes is not None:
        bench_e2e.BENCH_NETWORK["fetch_processes"] = args.fetch_processes
        print(f"network.fetch_processes: {args.fetch_processes}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run(
            "e2e",
            "1-2. end to end",
            lambda: bench_e2e.bench_end_to_end(scale=scale, seed=args.seed, repeat=args.e2e_repeat),
        )
        run(
            "small",
            "1-2b. many small sources",
            lambda: bench_e2e.bench_small_sources(
                scale=scale,
                seed=args.seed,
                repeat=args.e2e_repeat,
                latency=args.small_latency,
                reader_workers=args.reader_workers,
            ),
        )
        run(
            "fetch",
            "3. fetch throughput",
            lambda: bench_micro.bench_fetch(scale=scale, repeat=args.repeat, tmp=tmp),
        )
        corpus = None
        if "parse" in wanted or "extract" in wanted:
            corpus = bench_micro.corpus_for_stages(seed=args.seed, scale=scale)
        if corpus is not None:
            stage_corpus = corpus
            run(
                "parse",
                "4. parsing",
                lambda: bench_micro.bench_parse(stage_corpus, repeat=args.repeat),
            )
            run(
                "extract",
                "5. extraction",
                lambda: bench_micro.bench_extract(
                    stage_corpus, scale=scale, repeat=max(1, args.repeat // 2)
                ),
            )
    run(
        "matching",
        "6. matching",
        lambda: bench_matching(
            megabytes=args.megabytes * min(1.0, max(scale, 0.2)),
            aliases=args.aliases,
            repeat=args.repeat,
            seed=args.seed,
        ),
    )
    from tests.scripts.bench_members import bench_members

    run(
        "members",
        "6. matching at 220 members",
        lambda: bench_members(
            megabytes=args.megabytes * min(1.0, max(scale, 0.2)),
            repeat=args.repeat,
            seed=args.seed,
        ),
    )
    articles = max(1000, round(args.articles * min(scale, 1.0)))
    run("remention", "6. remention", lambda: bench_remention(articles=articles, seed=args.seed))
    run(
        "stories",
        "6. stories",
        lambda: bench_stories(articles=articles, seed=args.seed, repeat=args.repeat),
    )
    query_articles = args.query_articles or (
        1_000_000 if args.big else max(10_000, round(100_000 * min(scale, 1.0)))
    )
    run(
        "queries",
        "7. canned queries",
        lambda: bench_queries(articles=query_articles, seed=args.seed, repeat=args.repeat),
    )
    sizes = [10_000, 100_000] + ([1_000_000] if args.big else [])
    if scale < 1.0:
        sizes = [max(1000, round(n * scale)) for n in sizes]
    run(
        "growth",
        "7. growth",
        lambda: bench_growth.bench_growth(
            sizes=sizes, seed=args.seed, repeat=max(1, min(args.repeat, 3))
        ),
    )
    from tests.scripts.bench_report import bench_report

    run(
        "report",
        "8. the board's report of a year",
        lambda: bench_report(scale=scale, seed=args.seed, repeat=max(1, min(args.repeat, 3))),
    )
    print_table(sections)
    print()
    print(f"bench took {time.perf_counter() - began:.0f} s")
    print(machine())


if __name__ == "__main__":
    main()
