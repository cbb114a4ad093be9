"""A feed read for the first time without article pages: its entries are analysed in the
worker that parses it, one round trip instead of two, with the same results."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import pipeline.run as run_module
from pipeline.analysis.analyse import parse_and_analyse
from pipeline.run import run
from pipeline.settings.config import Config
from pipeline.sources.parse.feed import MAX_ENTRIES
from pipeline.sources.sandbox import Limits, run_bounded
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer

# four feeds with no article in common: which copy of a shared article is stored first
# depends on which source finishes first, on either path
FEEDS = ("ouest-sante.rss", "nantes-eco.atom", "biotech-daily.atom", "atlanpole-actus.rss")


def feeds_without_pages(write_config: WriteConfig, server: FixtureServer) -> Config:
    return write_config(
        sources=[
            {"id": name.split(".")[0], "kind": "feed", "url": server.url(name)}
            | {"fetch_articles": False}
            for name in FEEDS
        ]
    )


def analysed(db: Path) -> dict[str, Any]:
    """What analysis wrote, by article URL: mentions, topics, fundings, and which articles
    share a story (story ids differ between stores, the groups do not)."""
    conn = sqlite3.connect(db)
    try:
        mentions = sorted(
            conn.execute(
                "SELECT a.url, m.member_id, m.alias, m.count, m.in_title"
                " FROM mentions m JOIN articles a ON a.id = m.article_id"
            )
        )
        topics = sorted(conn.execute("SELECT url, topics, analysis_error FROM articles"))
        fundings = sorted(
            conn.execute(
                "SELECT a.url, f.member_id, f.amount, f.currency"
                " FROM fundings f JOIN articles a ON a.id = f.article_id"
            )
        )
        groups = sorted(
            tuple(
                sorted(
                    url
                    for (url,) in conn.execute(
                        "SELECT url FROM articles WHERE story_id = ?", [story]
                    )
                )
            )
            for (story,) in conn.execute("SELECT DISTINCT story_id FROM articles")
        )
    finally:
        conn.close()
    return {"mentions": mentions, "topics": topics, "fundings": fundings, "stories": groups}


def test_a_feed_analysed_as_it_is_parsed_stores_what_the_usual_path_stores(
    server: FixtureServer,
    write_config: WriteConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = feeds_without_pages(write_config, server)
    early = run(config, db_path=tmp_path / "early.db")
    with monkeypatch.context() as patch:

        async def never(*_args: Any) -> None:
            return None  # the decider says no: every article goes the usual way

        patch.setattr(run_module._Pass, "early_setup", staticmethod(never))
        usual = run(config, db_path=tmp_path / "usual.db")
    assert early.new_articles == usual.new_articles > 10
    found, expected = analysed(tmp_path / "early.db"), analysed(tmp_path / "usual.db")
    assert found["mentions"] and found["fundings"]
    assert found == expected


def failing_analysis(payload: Any) -> Any:
    """The analysis workers' function, failing (pickled by name into the worker)."""
    raise RuntimeError("no analysis worker expected here")


def test_only_a_first_read_is_analysed_with_the_parse(
    server: FixtureServer,
    write_config: WriteConfig,
    feed_dir: Path,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_module, "analyse_batch", failing_analysis)
    config = feeds_without_pages(write_config, server)
    first = run(config, db_path=db_path)
    conn = sqlite3.connect(db_path)
    errors = conn.execute("SELECT count(*) FROM articles WHERE analysis_error IS NOT NULL")
    assert first.new_articles > 10 and errors.fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM mentions").fetchone()[0] > 0
    # the feed gains an entry: a known feed's new entries go to an analysis worker
    feed = feed_dir / "ouest-sante.rss"
    item = (
        "<item><title>Xenothera ouvre un laboratoire à Nantes</title>"
        "<link>https://www.ouest-sante.example/xenothera-laboratoire.html</link>"
        "<pubDate>Thu, 26 Nov 2026 08:00:00 +0100</pubDate>"
        "<description>Xenothera inaugure un laboratoire.</description></item>"
    )
    feed.write_text(
        feed.read_text(encoding="utf-8").replace("<item>", item + "<item>", 1), encoding="utf-8"
    )
    for source in config.sources:
        conn.execute("UPDATE sources SET next_check_at = NULL WHERE id = ?", [source.id])
    conn.commit()
    second = run(config, db_path=db_path)
    assert second.new_articles == 1
    (error,) = conn.execute(
        "SELECT analysis_error FROM articles WHERE url LIKE '%xenothera-laboratoire%'"
    ).fetchone()
    conn.close()
    assert error and "no analysis worker expected here" in error


def test_an_analysis_that_fails_in_the_parse_worker_leaves_the_feed_parsed(
    feed_dir: Path,
) -> None:
    """Through a real bounded worker: its analysis setup is not the one asked for, so the
    analysis part raises; the feed comes back parsed, with nothing analysed."""
    data = (feed_dir / "ouest-sante.rss").read_bytes()
    payload = (data, {}, "https://www.ouest-sante.example/feed", MAX_ENTRIES, "another-key")
    parsed, analyses = run_bounded(
        parse_and_analyse, payload, limits=Limits(), setup=("a-key", b"not a pickle")
    )
    assert len(parsed.entries) == 6 and analyses == {}


def test_a_feed_whose_first_read_failed_is_then_read_the_plain_way(
    server: FixtureServer,
    write_config: WriteConfig,
    feed_dir: Path,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_module, "analyse_batch", failing_analysis)
    config = write_config(sources=[{"id": "late", "kind": "feed", "url": server.url("late.rss")}])
    assert run(config, db_path=db_path).status == "failed"  # 404: not there yet
    (feed_dir / "late.rss").write_bytes((feed_dir / "ouest-sante.rss").read_bytes())
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE sources SET next_check_at = NULL")
    conn.commit()
    assert run(config, db_path=db_path).new_articles == 6
    errors = [e for (e,) in conn.execute("SELECT analysis_error FROM articles")]
    conn.close()
    # whatever made the first read fail, the next one does not take the early path
    assert len(errors) == 6 and all(e and "no analysis worker expected here" in e for e in errors)
