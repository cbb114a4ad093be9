"""`make bench`: figures measured here, each beside a baseline from the same run.

Matching: veille's matcher (folding included) on synthetic French and English text
with 1,000 aliases, beside a single compiled regular-expression alternation of the
same aliases and a bare Aho-Corasick scan of already folded text. Medians of
repeated runs; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import ahocorasick

from pipeline.mentions import AliasRule, Matcher, fold

WORDS = [
    "la",
    "société",
    "nantaise",
    "annonce",
    "une",
    "levée",
    "de",
    "fonds",
    "pour",
    "financer",
    "son",
    "essai",
    "clinique",
    "de",
    "phase",
    "the",
    "company",
    "said",
    "that",
    "its",
    "trial",
    "met",
    "the",
    "primary",
    "endpoint",
    "and",
    "will",
    "file",
    "for",
    "approval",
    "this",
    "year",
    "biotech",
    "vaccin",
    "anticorps",
    "production",
    "usine",
    "partenariat",
    "accord",
    "licence",
    "recherche",
    "patients",
    "Nantes",
    "Angers",
    "Rennes",
    "Tours",
    "Saint-Herblain",
    "Montaigu",
    "millions",
    "d’euros",
    "résultats",
    "données",
]
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


def bench_matching(*, megabytes: float, aliases: int, repeat: int, seed: int) -> None:
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
        f"  veille / regex: {regex_s / veille_s:.1f}x   (targets: >= 20 MB/s and >= 20x the regex)"
    )


def bench_remention(*, articles: int, seed: int) -> None:
    """`veille remention` over a synthetic store of ``articles`` articles (2 KB of text each)."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from pipeline.config import load_config
    from pipeline.run import remention
    from pipeline.store import Store

    rng = random.Random(seed)
    config = load_config(Path(__file__).resolve().parent.parent / "sources.yaml")
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


def _synthetic_store(db_path: object, articles: int, rng: random.Random) -> None:
    """A store of ``articles`` articles of about 2 KB; one in five is a rewritten copy."""
    import sqlite3

    from pipeline.store import Store

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


def bench_stories(*, articles: int, seed: int, repeat: int) -> None:
    """Stories built per second on a synthetic store, then the cost of one more article."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from pipeline.config import load_config
    from pipeline.models import Article, SourceOutcome
    from pipeline.run import restory
    from pipeline.store import Store
    from pipeline.stories import story_key

    rng = random.Random(seed)
    config = load_config(Path(__file__).resolve().parent.parent / "sources.yaml")
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


def bench_queries(*, articles: int, seed: int, repeat: int) -> None:
    """Every canned query of storage/metadata.yml on a synthetic store of ``articles``
    articles and twice as many mentions (no text: the queries never read it)."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from pipeline.serve import load_metadata
    from pipeline.store import Store, iso_week

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
        params = {"week": latest_week, "member": "member-7", "q": "mot42"}
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
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=5.0, help="text size for matching")
    parser.add_argument("--aliases", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--articles", type=int, default=20_000, help="stored articles for remention and stories"
    )
    parser.add_argument(
        "--query-articles", type=int, default=1_000_000, help="articles for the canned queries"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    bench_matching(
        megabytes=args.megabytes, aliases=args.aliases, repeat=args.repeat, seed=args.seed
    )
    bench_remention(articles=args.articles, seed=args.seed)
    bench_stories(articles=args.articles, seed=args.seed, repeat=args.repeat)
    bench_queries(articles=args.query_articles, seed=args.seed, repeat=args.repeat)


if __name__ == "__main__":
    main()
