"""7. How a run's cost grows with the database: stores of 10k, 100k (and 1M with --big)
articles, then one `veille run` that adds 500 new entries (10 feeds x 50, summaries
only), beside the same run on an empty store. And `veille digest` on those stores
when pipeline.outputs.digest exists.

The stores are written with SQL, as a year of veille would leave them: articles with
about 1.5 KB of text (full-text indexed), their URLs, two mentions each, one story per
two articles with MinHash signatures and 42 LSH band rows per article.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.scripts.bench_common import WORDS, Row, Section, median, run_tree, veille, write_config
from tests.scripts.bench_e2e import BENCH_NETWORK, corpus_sources, serve_corpus


def build_store(db_path: Path, articles: int, *, seed: int) -> float:
    from pipeline.storage.store import Store, iso_week

    rng = random.Random(seed)
    started = time.perf_counter()
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    members = [row[0] for row in conn.execute("SELECT id FROM members")] or [
        f"member-{i}" for i in range(220)
    ]
    if not conn.execute("SELECT count(*) FROM members").fetchone()[0]:
        conn.executemany(
            "INSERT INTO members (id, name, kind) VALUES (?, ?, 'member')",
            [(m, m) for m in members],
        )
    conn.execute(
        "INSERT OR IGNORE INTO sources (id, name, kind, url) VALUES ('old', 'Old source', 'feed', 'https://old.example/rss')"
    )
    now = datetime.now(UTC)
    batch = 20_000
    for start in range(0, articles, batch):
        rows = []
        urls = []
        mentions = []
        signatures = []
        bands = []
        stories = []
        for i in range(start, min(articles, start + batch)):
            when = now - timedelta(minutes=i * 525_600 // max(articles, 1))
            stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            text = " ".join(rng.choice(WORDS) for _ in range(230))
            url = f"https://old.example/{i}"
            story = i // 2 + 1
            if i % 2 == 0:
                stories.append((story, f"Story {story}", stamp, stamp))
            rows.append(
                (
                    i + 1,
                    url,
                    f"Titre {i}",
                    "Résumé.",
                    text,
                    stamp,
                    stamp,
                    "old",
                    story,
                    iso_week(when),
                )
            )
            urls.append((url, i + 1))
            for m in rng.sample(members, 2):
                mentions.append((i + 1, m, m, 1, 0, "snippet"))
            signatures.append(
                (
                    i + 1,
                    "minhash-word3-v1",
                    20261128,
                    128,
                    f"{rng.getrandbits(64):016x}",
                    f"t{i}",
                    rng.randbytes(512),
                )
            )
            bands += [(b, rng.getrandbits(62), i + 1) for b in range(42)]
        conn.executemany(
            "INSERT INTO stories (id, title, first_seen_at, last_seen_at, article_count, outlets) VALUES (?, ?, ?, ?, 2, '[]')",
            stories,
        )
        conn.executemany(
            "INSERT INTO articles (id, url, title, summary, text, published_at, first_seen_at, source_id, story_id, week) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO article_urls (url, article_id) VALUES (?, ?)", urls)
        conn.executemany(
            "INSERT OR IGNORE INTO mentions (article_id, member_id, alias, count, in_title, snippet) VALUES (?, ?, ?, ?, ?, ?)",
            mentions,
        )
        conn.executemany(
            "INSERT INTO article_signatures (article_id, scheme, seed, num_perm, text_hash, title_key, signature) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            signatures,
        )
        conn.executemany(
            "INSERT OR IGNORE INTO story_bands (band, hash, article_id) VALUES (?, ?, ?)", bands
        )
        conn.commit()
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return time.perf_counter() - started


def bench_growth(*, sizes: list[int], seed: int, repeat: int) -> Section:
    section = Section("7. growth: a run adding 500 entries, and the digest, as the store grows")
    has_digest = importlib.util.find_spec("pipeline.outputs.digest") is not None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # 10 feeds x 50 entries; another seed than the end-to-end corpus
        with serve_corpus(scale=0.05, seed=seed + 7, tmp=tmp) as served:
            sources = [dict(s, fetch_articles=False) for s in corpus_sources(served)]
            config = tmp / "growth.yaml"
            write_config(config, sources=sources, network=BENCH_NETWORK)

            def timed_run(base: Path | None) -> tuple[float, float | None]:
                walls, digests = [], []
                for attempt in range(repeat):
                    db = tmp / f"try-{attempt}.db"
                    if base is not None:
                        shutil.copy(base, db)
                    usage = run_tree(veille("run", "--config", config, "--db", db))
                    if usage.returncode != 0:
                        raise RuntimeError(f"veille run failed: {usage.stderr[-1500:]}")
                    walls.append(usage.wall)
                    if has_digest:
                        week = datetime.now(UTC).strftime("%G-W%V")
                        out = tmp / "digest.html"
                        d = run_tree(
                            veille(
                                "digest",
                                "--config",
                                config,
                                "--db",
                                db,
                                "--out",
                                out,
                                "--week",
                                week,
                            )
                        )
                        if d.returncode == 0:
                            digests.append(d.wall)
                        else:
                            section.notes.append(f"veille digest failed: {d.stderr.strip()[-300:]}")
                    db.unlink()
                return median(walls), (median(digests) if digests else None)

            empty_wall, empty_digest = timed_run(None)
            for size in sizes:
                base = tmp / f"store-{size}.db"
                built = build_store(base, size, seed=seed)
                wall, digest = timed_run(base)
                mb = base.stat().st_size / 1e6
                base.unlink()
                section.rows.append(
                    Row(
                        "growth",
                        f"run adding 500 entries, {size:,} articles stored",
                        wall,
                        "s",
                        baseline=empty_wall,
                        baseline_label="same run, empty store",
                        higher_is_better=False,
                        note=f"store {mb:,.0f} MB, built in {built:.0f} s",
                    )
                )
                if has_digest:
                    section.rows.append(
                        Row(
                            "growth",
                            f"veille digest, {size:,} articles stored",
                            digest,
                            "s",
                            baseline=empty_digest,
                            baseline_label="500 articles stored",
                            higher_is_better=False,
                        )
                    )
    if not has_digest:
        section.notes.append("digest: pipeline.outputs.digest does not exist yet; not measured")
    section.notes.append(
        f"median of {repeat} runs each; the 1,000,000-article store only with --big"
    )
    return section
