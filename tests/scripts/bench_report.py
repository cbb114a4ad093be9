"""`make bench`, section report: `veille report` over a year at 220 members.

A seeded synthetic store of a year's press (60,000 articles at --scale 1, dated through
2026, each with 6 KB of text, in stories of 1 to 6 copies; 220 members named by a skewed
share of them; 120 outlets in four tiers; a few hundred funding amounts; a dropped story
and a rejected mention so that judged_mentions has work), written straight into the
schema (the report reads tables, not feeds). Then the command as a person types it, in a
child process, imports included: --period 2026 --compare previous with --out, --pdf and
--json. Median of a few runs; the target is 10 s.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.scripts.bench_common import ROOT, WORDS, Row, Section

TARGET_S = 10.0
TEXT_WORDS = 800  # about 6 KB of main text an article, as trafilatura gives for a press page
DIRECTORY = ROOT / "tests" / "fixtures" / "members" / "directory.csv"  # 220 names


def member_names() -> list[str]:
    lines = DIRECTORY.read_text(encoding="utf-8").splitlines()[1:]
    return [line.strip() for line in lines if line.strip()][:220]


TIERS = ("national", "international", "regional", "trade")
TOPICS = ("funding", "clinical-trial", "partnership", "regulatory", "award", "appointment")


def build_store(db_path: Path, *, articles: int, seed: int) -> dict[str, int]:
    import sqlite3

    from pipeline.storage.store import Store, iso, iso_week

    rng = random.Random(seed)
    Store.open(db_path).close()
    names = member_names()
    members = [(f"m{i}", name) for i, name in enumerate(names)]
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO members (id, name, kind) VALUES ('atlanpole-biotherapies', "
        "'Atlanpole Biotherapies', 'cluster')"
    )
    conn.executemany("INSERT INTO members (id, name, kind) VALUES (?, ?, 'member')", members)
    outlets = [f"Outlet {i}" for i in range(120)]
    conn.executemany(
        "INSERT INTO sources (id, name, kind, url) VALUES (?, ?, 'feed', ?)",
        [(f"s{i}", name, f"https://outlet{i}.example/rss") for i, name in enumerate(outlets)],
    )
    # a skewed share of voice: a few members are named much more often
    weights = [1.0 / (1 + i) ** 0.9 for i in range(len(members))]
    start = datetime(2025, 12, 20, tzinfo=UTC)
    span = (datetime(2027, 1, 10, tzinfo=UTC) - start).total_seconds()
    article_rows, mention_rows, funding_rows, story_rows = [], [], [], []
    article_id = story_id = 0
    while article_id < articles:
        story_id += 1
        when = start + timedelta(seconds=rng.random() * span)
        copies = min(articles - article_id, rng.choice((1, 1, 1, 2, 2, 3, 4, 6)))
        named = {
            members[i][0]
            for i in rng.choices(range(len(members)), weights, k=rng.choice((1, 1, 2)))
        }
        if rng.random() < 0.05:
            named.add("atlanpole-biotherapies")
        topics = json.dumps(rng.sample(TOPICS, k=rng.choice((0, 1, 1, 2))))
        title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
        story_rows.append((story_id, title, iso(when), iso(when), copies, "[]"))
        raise_money = rng.random() < 0.0025  # about 55 deals a year
        for copy in range(copies):
            article_id += 1
            source = rng.randrange(len(outlets))
            published = when + timedelta(hours=copy * rng.random() * 30)
            text = " ".join(rng.choice(WORDS) for _ in range(TEXT_WORDS))
            article_rows.append(
                (
                    article_id,
                    f"https://outlet{source}.example/{story_id}-{copy}.html",
                    title,
                    text[:200],
                    text,
                    "fr",
                    iso(published),
                    iso(published + timedelta(hours=1)),
                    f"s{source}",
                    story_id,
                    topics,
                    iso_week(published),
                )
            )
            for member in named:
                mention_rows.append(
                    (article_id, member, member, 1, 0, f"… {member} {text[:150]} …", iso(published))
                )
                if raise_money and member != "atlanpole-biotherapies":
                    amount = float(rng.choice((1.5, 3, 5, 8.5, 12, 20, 35, 60)) * 1e6)
                    funding_rows.append(
                        (
                            article_id,
                            member,
                            amount,
                            "EUR",
                            amount,
                            f"{member} lève {amount:.0f} euros",
                        )
                    )
    conn.executemany(
        "INSERT INTO stories (id, title, first_seen_at, last_seen_at, article_count, outlets) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        story_rows,
    )
    conn.executemany(
        "INSERT INTO articles (id, url, title, summary, text, lang, published_at, first_seen_at, "
        "source_id, story_id, topics, week) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        article_rows,
    )
    conn.executemany(
        "INSERT INTO mentions (article_id, member_id, alias, count, in_title, snippet, found_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        mention_rows,
    )
    conn.executemany(
        "INSERT OR IGNORE INTO fundings (article_id, member_id, amount, currency, amount_eur, phrase) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        funding_rows,
    )
    # the team's verdicts: a story dropped, a mention rejected
    conn.execute(
        "INSERT INTO verdicts (at, by, action, url) VALUES ('2026-06-01T00:00:00Z', 'bench', 'drop', ?)",
        [article_rows[10][1]],
    )
    conn.execute(
        "INSERT INTO verdicts (at, by, action, url, member_id) "
        "VALUES ('2026-06-01T00:00:00Z', 'bench', 'reject', ?, ?)",
        [mention_rows[20][0] and article_rows[mention_rows[20][0] - 1][1], mention_rows[20][1]],
    )
    conn.commit()
    conn.close()
    return {
        "articles": len(article_rows),
        "mentions": len(mention_rows),
        "fundings": len(funding_rows),
    }


def write_config(path: Path, names: list[str]) -> None:
    lines = [
        "cluster: {name: Atlanpole Biotherapies}",
        "members_file: members.yaml",
        "sources: []",
        "digest: {language: fr}",
        "outlets:",
    ]
    for i in range(120):
        lines.append(
            f"  - {{name: 'Outlet {i}', tier: {TIERS[i % 4]}, match: [outlet{i}.example]}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    members = ["members:"] + [
        f"  - {{id: m{i}, name: {json.dumps(n)}}}" for i, n in enumerate(names)
    ]
    (path.parent / "members.yaml").write_text("\n".join(members) + "\n", encoding="utf-8")


def bench_report(*, scale: float, seed: int, repeat: int, keep: Path | None = None) -> Section:
    section = Section("report")
    articles = max(2000, round(60_000 * min(scale, 1.0)))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "veille.db").unlink(missing_ok=True)
        db_path = tmp / "veille.db"
        began = time.perf_counter()
        counts = build_store(db_path, articles=articles, seed=seed)
        write_config(tmp / "sources.yaml", member_names())
        built = time.perf_counter() - began
        command = [
            sys.executable, "-m", "pipeline", "report",
            "--config", str(tmp / "sources.yaml"), "--db", str(db_path),
            "--period", "2026", "--compare", "previous",
            "--out", str(tmp / "r.html"), "--pdf", str(tmp / "r.pdf"), "--json", str(tmp / "r.json"),
        ]  # fmt: skip
        times = []
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        took = statistics.median(times)
        figures = json.loads((tmp / "r.json").read_text(encoding="utf-8"))
        pages = _pages(tmp / "r.pdf")
        headline = figures["headline"]
        section.notes += [
            f"store: {counts['articles']:,} articles, {counts['mentions']:,} mentions, "
            f"{counts['fundings']:,} funding amounts, 220 members ({built:.1f} s to write)",
            f"report of 2026: {headline['stories']['value']:,} stories, "
            f"{headline['mentions']['value']:,} mentions, {headline['members_covered']['value']} members covered, "
            f"{headline['outlets']['value']} outlets; PDF {pages} pages, "
            f"HTML {(tmp / 'r.html').stat().st_size / 1024:.0f} KB",
            f"veille report --period 2026 --out --pdf --json: {took:.2f} s "
            f"(median of {len(times)}: {', '.join(f'{t:.2f}' for t in times)}; target < {TARGET_S:g} s)",
        ]
        section.rows.append(
            Row(
                "report",
                f"report of a year, {counts['articles']:,} articles",
                took,
                "s",
                target=f"< {TARGET_S:g} s",
                met=took < TARGET_S,
                higher_is_better=False,
            )
        )
    return section


def _pages(pdf: Path) -> int:
    data = pdf.read_bytes()
    return data.count(b"/Type /Page\n") or data.count(b"/Type /Page ") or data.count(b"/Type /Page")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the store and the report here")
    args = parser.parse_args()
    section = bench_report(scale=args.scale, seed=args.seed, repeat=args.repeat, keep=args.keep)
    for note in section.notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
