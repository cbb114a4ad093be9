"""`veille run` end to end: real server on 127.0.0.1, real SQLite file, the real command line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.lock import run_lock
from pipeline.run import run
from pipeline.settings.config import Config
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer, closed_port
from tests.run_cli import veille
from tests.sqlite_rows import rows, source_row

ROOT = Path(__file__).resolve().parent.parent
XENOTHERA = "https://www.ouest-sante.example/economie/xenothera-leve-12-millions.html"


def feeds(server: FixtureServer, *names: str) -> list[dict[str, Any]]:
    return [
        {
            "id": Path(n).stem.replace("_", "-").replace("/", "-"),
            "kind": "feed",
            "url": server.url(n),
        }
        for n in names
    ]


def test_first_run_stores_articles_and_a_second_run_stores_nothing_and_sends_validators(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    config = write_config(
        sources=feeds(server, "ouest-sante.rss", "biotech-daily.atom", "labnews-fr.rdf")
    )
    first = run(config, db_path=db_path)
    assert first.status == "ok" and first.new_articles == 17
    assert rows(db_path, "SELECT count(*) FROM articles") == [(17,)]
    second = run(config, db_path=db_path)
    assert second.new_articles == 0
    assert [o.status for o in second.outcomes] == ["not-modified"] * 3
    for name in ("ouest-sante.rss", "biotech-daily.atom", "labnews-fr.rdf"):
        last = server.requests_for(name)[-1]
        assert last.headers.get("if-none-match", "").startswith('"')
        assert last.headers.get("if-modified-since")
    assert rows(db_path, "SELECT count(*) FROM articles") == [(17,)]
    runs = rows(
        db_path,
        "SELECT status, sources_ok, sources_not_modified, new_articles FROM runs ORDER BY id",
    )
    assert runs == [("ok", 3, 0, 17), ("ok", 0, 3, 0)]


def test_same_article_in_two_feeds_is_stored_once_with_two_article_sources(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    config = write_config(
        sources=feeds(server, "ouest-sante.rss", "pharma-wire.rss", "invest-bio.rss")
    )
    run(config, db_path=db_path)
    (article,) = rows(db_path, "SELECT id, url FROM articles WHERE url = ?", XENOTHERA)
    carriers = rows(
        db_path,
        "SELECT source_id, link FROM article_sources WHERE article_id = ? ORDER BY source_id",
        article[0],
    )
    assert [c[0] for c in carriers] == ["invest-bio", "ouest-sante", "pharma-wire"]
    # the links as each feed gave them, tracking parameters and fragment included
    assert any("utm_source=rss" in c[1] and "#xtor=RSS-1" in c[1] for c in carriers)


def test_articles_are_plain_text_in_utc_and_searchable(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    config = write_config(sources=feeds(server, "hostile.rss", "nantes-eco.atom", "labnews-fr.rdf"))
    run(config, db_path=db_path)
    for title, summary in rows(db_path, "SELECT title, summary FROM articles"):
        assert "<" not in title and "<script" not in summary
    stamps = [
        r[0]
        for r in rows(db_path, "SELECT published_at FROM articles WHERE published_at IS NOT NULL")
    ]
    assert stamps and all(s.endswith("Z") and len(s) == 20 for s in stamps)
    # full text search folds accents: "biotherapies"/"Guipry" found however written
    hits = rows(
        db_path,
        "SELECT a.title FROM articles_fts f JOIN articles a ON a.id = f.rowid "
        "WHERE articles_fts MATCH ?",
        "guipry",
    )
    assert hits and "NG-Biotech" in hits[0][0]


def test_broken_sources_are_recorded_and_the_others_still_run(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    sources = [
        *feeds(server, "ouest-sante.rss", "broken-html.rss"),
        {"id": "server-error", "kind": "feed", "url": server.url("_/status/500")},
        {"id": "entity-bomb", "kind": "feed", "url": server.url("_/entity-bomb")},
        {"id": "empty", "kind": "feed", "url": server.url("_/empty")},
        {"id": "offline", "kind": "feed", "url": f"http://127.0.0.1:{closed_port()}/feed.rss"},
        {"id": "gzip-bomb", "kind": "feed", "url": server.url("_/gzip-bomb")},
        {"id": "redirect-loop", "kind": "feed", "url": server.url("_/redirect-loop")},
    ]
    config = write_config(sources=sources, network={"max_body_bytes": 5_000_000, "retries": 0})
    report = run(config, db_path=db_path)
    assert report.status == "partial"
    assert source_row(db_path, "ouest-sante")["last_status"] == "ok"
    assert rows(
        db_path, "SELECT count(*) FROM article_sources WHERE source_id = 'ouest-sante'"
    ) == [(6,)]
    expected = {
        "broken-html": "not a feed: the server sent an HTML page",
        "server-error": "HTTP 500 Internal Server Error",
        "entity-bomb": "refused: entity 'big' is 100,000 bytes long",
        "empty": "empty body",
        "offline": "cannot connect: connection refused",
        "gzip-bomb": "body larger than 5,000,000 bytes after decompression",
        "redirect-loop": "more than 5 redirects",
    }
    for source_id, message in expected.items():
        row = source_row(db_path, source_id)
        assert row["last_status"] == "error", source_id
        assert message in row["last_error"], (source_id, row["last_error"])
        assert row["consecutive_failures"] == 1
        assert row["next_check_at"] > row["last_checked_at"]
    (run_row,) = rows(db_path, "SELECT status, sources_failed, errors FROM runs")
    assert run_row[0] == "partial" and run_row[1] == 7 and "entity-bomb" in run_row[2]


def test_failing_source_backs_off_and_is_retried_when_named(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    sources = [
        *feeds(server, "ouest-sante.rss"),
        {"id": "down", "kind": "feed", "url": server.url("_/status/503")},
    ]
    config = write_config(sources=sources, network={"retries": 0})
    run(config, db_path=db_path)
    second = run(config, db_path=db_path)
    assert second.not_due == ["down"]  # not due: interval x failures
    assert [o.source_id for o in second.outcomes] == ["ouest-sante"]
    named = run(config, db_path=db_path, source_ids=["down"])
    assert [o.source_id for o in named.outcomes] == ["down"]
    assert source_row(db_path, "down")["consecutive_failures"] == 2


def test_long_retry_after_pushes_the_next_check_back_but_never_past_the_cap(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    sources = [
        {"id": "busy", "kind": "feed", "url": server.url("_/retry-after/429/7200")},
        {"id": "greedy", "kind": "feed", "url": server.url("_/retry-after/503/99999999999999")},
    ]
    config = write_config(sources=sources, network={"backoff_cap_hours": 24})
    run(config, db_path=db_path)
    busy, greedy = source_row(db_path, "busy"), source_row(db_path, "greedy")
    assert busy["last_http_status"] == 429 and greedy["last_http_status"] == 503

    def hours(row: dict[str, Any]) -> float:
        checked = datetime.fromisoformat(row["last_checked_at"])
        return (datetime.fromisoformat(row["next_check_at"]) - checked).total_seconds() / 3600

    assert hours(busy) == 2  # Retry-After: 7200 s, longer than the 30-minute backoff
    assert hours(greedy) == 24  # asked for centuries, got the cap


def test_a_source_that_breaks_veille_is_recorded_and_the_others_are_saved(
    server: FixtureServer, write_config: WriteConfig, db_path: Path, feed_dir: Path
) -> None:
    (feed_dir / "odd.rss").write_text(
        '<rss version="2.0"><channel><title>odd</title>'
        "<item><title>Port out of range</title><link>https://x.example:99999/a</link></item>"
        "</channel></rss>",
        encoding="utf-8",
    )
    config = write_config(sources=feeds(server, "odd.rss", "ouest-sante.rss"))
    report = run(config, db_path=db_path)
    assert report.status == "ok"
    # the unusable link is kept under a stable key rather than crashing the run
    assert rows(db_path, "SELECT url FROM articles WHERE title = 'Port out of range'")[0][
        0
    ].startswith("urn:veille:odd:")
    assert rows(
        db_path, "SELECT count(*) FROM article_sources WHERE source_id = 'ouest-sante'"
    ) == [(6,)]


def test_an_unexpected_error_in_one_source_is_recorded_on_its_row(
    server: FixtureServer, write_config: WriteConfig, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.run as run_module

    real = run_module.to_articles

    def explode(source_id: str, *args: Any, **kwargs: Any) -> Any:
        if source_id == "pharma-wire":  # simulate a bug no local server can provoke
            raise RuntimeError("boom")
        return real(source_id, *args, **kwargs)

    monkeypatch.setattr(run_module, "to_articles", explode)
    config = write_config(sources=feeds(server, "pharma-wire.rss", "ouest-sante.rss"))
    report = run(config, db_path=db_path)
    assert report.status == "partial"
    row = source_row(db_path, "pharma-wire")
    assert (
        row["last_error"] == "internal error: RuntimeError: boom"
        and row["consecutive_failures"] == 1
    )
    assert rows(
        db_path, "SELECT count(*) FROM article_sources WHERE source_id = 'ouest-sante'"
    ) == [(6,)]


def test_parse_error_keeps_the_old_validators_so_the_next_run_parses_again(
    server: FixtureServer, write_config: WriteConfig, db_path: Path, feed_dir: Path
) -> None:
    (feed_dir / "changing.rss").write_bytes((feed_dir / "ouest-sante.rss").read_bytes())
    config = write_config(sources=feeds(server, "changing.rss"))
    run(config, db_path=db_path)
    good_etag = source_row(db_path, "changing")["etag"]
    (feed_dir / "changing.rss").write_bytes(b"<html><body>maintenance</body></html>")
    run(config, db_path=db_path)
    row = source_row(db_path, "changing")
    assert row["last_status"] == "error" and row["etag"] == good_etag
    run(config, db_path=db_path, source_ids=["changing"])
    assert server.requests_for("changing.rss")[-1].headers["if-none-match"] == good_etag
    assert source_row(db_path, "changing")["last_status"] == "error"  # fetched and parsed again


def test_interval_minutes_polls_a_source_less_often(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    sources = [
        {
            "id": "weekly",
            "kind": "feed",
            "url": server.url("labnews-fr.rdf"),
            "interval_minutes": 10080,
        }
    ]
    config = write_config(sources=sources + feeds(server, "ouest-sante.rss"))
    run(config, db_path=db_path)
    second = run(config, db_path=db_path)
    assert second.not_due == ["weekly"]
    assert len(server.requests_for("labnews-fr.rdf")) == 1


def test_recovered_source_resets_its_failure_count(
    server: FixtureServer, write_config: WriteConfig, db_path: Path, feed_dir: Path
) -> None:
    config = write_config(sources=[{"id": "flaky", "kind": "feed", "url": server.url("later.rss")}])
    run(config, db_path=db_path)
    assert source_row(db_path, "flaky")["consecutive_failures"] == 1
    (feed_dir / "later.rss").write_bytes((feed_dir / "ouest-sante.rss").read_bytes())
    run(config, db_path=db_path, source_ids=["flaky"])
    row = source_row(db_path, "flaky")
    assert (row["consecutive_failures"], row["last_status"], row["last_error"]) == (0, "ok", None)


def test_news_search_links_are_unwrapped_to_the_publisher(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    config = write_config(
        sources=[
            *feeds(server, "ouest-sante.rss"),
            {"id": "news", "kind": "search", "url": server.url("search/{id}.rss")},
        ],
    )
    # named, a news search runs all its feeds now (unnamed, each waits for its slot)
    report = run(config, db_path=db_path, source_ids=["ouest-sante", "news"])
    assert {o.source_id for o in report.outcomes} == {
        "ouest-sante",
        "news:atlanpole-biotherapies",
        "news:xenothera",
        "news:valneva",
    }
    carriers = {
        r[0]
        for r in rows(
            db_path,
            "SELECT s.source_id FROM article_sources s JOIN articles a "
            "ON a.id = s.article_id WHERE a.url = ?",
            XENOTHERA,
        )
    }
    assert carriers == {"ouest-sante", "news:xenothera"}
    # opaque aggregator links are kept with their outlet rather than lost
    opaque = rows(
        db_path, "SELECT outlet FROM articles WHERE url LIKE 'https://news.aggregator.example/%'"
    )
    assert opaque and all(o[0] for o in opaque)


def test_changed_source_url_forgets_its_validators(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    run(
        write_config(sources=[{"id": "s", "kind": "feed", "url": server.url("ouest-sante.rss")}]),
        db_path=db_path,
    )
    assert source_row(db_path, "s")["etag"]
    store = Store.open(db_path)
    store.sync_config(
        write_config(sources=[{"id": "s", "kind": "feed", "url": server.url("pharma-wire.rss")}])
    )
    store.close()
    row = source_row(db_path, "s")
    assert row["etag"] is None and row["url"].endswith("pharma-wire.rss")


def test_migrations_are_versioned_and_idempotent(db_path: Path) -> None:
    store = Store.open(db_path)
    version = store.schema_version
    assert version >= 1
    assert store.migrate() == version
    store.close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sources", "articles", "article_sources", "members", "runs", "articles_fts"} <= tables
    conn.close()


def test_unknown_source_id_is_a_usage_error(
    write_config: WriteConfig, db_path: Path, server: FixtureServer
) -> None:
    config = write_config(sources=feeds(server, "ouest-sante.rss"))
    result = veille("run", "--config", config.path, "--db", str(db_path), "--source", "nope")
    assert result.returncode == 2
    assert "--source nope: no such source" in result.stderr


# ------------------------------------------------------------- the command line under cron


def test_cron_run_is_silent_but_for_warnings_and_one_summary_line(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    sources = [
        *feeds(server, "ouest-sante.rss"),
        {"id": "server-error", "kind": "feed", "url": server.url("_/status/500")},
    ]
    config = write_config(sources=sources, network={"retries": 0})
    result = veille("run", "--config", config.path, "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "WARNING source=server-error kind=status HTTP 500 Internal Server Error"
    assert lines[1].startswith(
        "veille run 1: 2 sources, 1 ok, 0 not modified, 1 failed; 6 entries, 6 new"
    )
    assert len(lines) == 2
    listing = veille("sources", "--db", str(db_path))
    assert listing.returncode == 0
    assert "server-error" in listing.stdout and "HTTP 500 Internal Server Error" in listing.stdout


def test_exit_1_when_every_source_failed(
    write_config: WriteConfig, db_path: Path, server: FixtureServer
) -> None:
    config = write_config(
        sources=[{"id": "gone", "kind": "feed", "url": server.url("_/status/410")}]
    )
    result = veille("run", "--config", config.path, "--db", str(db_path))
    assert result.returncode == 1
    assert "HTTP 410 Gone" in result.stderr


def test_config_errors_exit_2(tmp_path: Path, db_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cluster: {name: Atlanpole Biotherapies}\nsources: [{id: x, kind: feed}]\n",
        encoding="utf-8",
    )
    result = veille("run", "--config", str(bad), "--db", str(db_path))
    assert result.returncode == 2 and "sources[0].url: required key is missing" in result.stderr


def test_second_run_at_once_exits_75(
    write_config: WriteConfig, db_path: Path, server: FixtureServer
) -> None:
    config = write_config(sources=feeds(server, "ouest-sante.rss"))
    with run_lock(db_path):
        result = veille("run", "--config", config.path, "--db", str(db_path))
    assert result.returncode == 75
    assert "another veille process" in result.stderr and f"pid {os.getpid()}" in result.stderr
    assert not db_path.exists() or rows(db_path, "SELECT count(*) FROM runs") == [(0,)]


def test_a_run_started_while_another_is_fetching_exits_75(
    write_config: WriteConfig, db_path: Path, server: FixtureServer
) -> None:
    config = write_config(
        sources=[{"id": "slow", "kind": "feed", "url": server.url("_/slow/2/ouest-sante.rss")}]
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--config", config.path, "--db", str(db_path)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not server.requests_for("_/slow/2/ouest-sante.rss") and time.monotonic() < deadline:
        time.sleep(0.05)
    second = veille("run", "--config", config.path, "--db", str(db_path))
    first.communicate(timeout=60)
    assert second.returncode == 75
    assert first.returncode == 0


def test_lock_left_by_a_killed_run_is_taken_over(
    write_config: WriteConfig, db_path: Path, server: FixtureServer
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pipeline.lock import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
            str(db_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    config = write_config(sources=feeds(server, "ouest-sante.rss"))
    assert veille("run", "--config", config.path, "--db", str(db_path)).returncode == 75
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    result = veille("run", "--config", config.path, "--db", str(db_path))
    assert result.returncode == 0, result.stderr


def test_check_probe_reads_every_source_as_its_kind_says(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> None:
    (feed_dir / "press.html").write_text(
        "<html><body><h2><a href='/a.html'>Communiqué A</a></h2>"
        "<h2><a href='/b.html'>Communiqué B</a></h2></body></html>",
        encoding="utf-8",
    )
    (feed_dir / "sitemap.xml").write_text(
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{server.url('a.html')}</loc></url></urlset>",
        encoding="utf-8",
    )
    config: Config = write_config(
        sources=[
            *feeds(server, "ouest-sante.rss"),
            {"id": "html", "kind": "feed", "url": server.url("broken-html.rss")},
            {"id": "press", "kind": "page", "url": server.url("press.html"), "selector": "h2 a"},
            {"id": "map", "kind": "sitemap", "url": server.url("sitemap.xml")},
        ]
    )
    result = veille("check", "--config", config.path, "--probe")
    assert result.returncode == 1
    assert "ok    ouest-sante: HTTP 200, 6 entries" in result.stdout
    assert "ok    press: HTTP 200, 2 entries" in result.stdout
    assert "ok    map: HTTP 200, 1 entries" in result.stdout
    assert "error html: not a feed: the server sent an HTML page" in result.stdout
    assert "probe: 3 ok, 1 failed" in result.stdout
    assert not db_path.exists()  # a probe stores nothing


def test_a_failing_database_stops_every_source_without_blaming_them(
    server: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk fills while other sources are still being fetched: the run stops with the
    StoreError, and the sources in flight are cancelled while the fetcher is still open,
    not failed by its closing ("internal error", a failure counted against them)."""
    from pipeline.errors import StoreError

    slow = [
        {"id": f"lent-{i}", "kind": "feed", "url": server.url(f"_/slow/3/ouest-sante.rss?c={i}")}
        for i in range(4)
    ]
    config = write_config(
        sources=[{"id": "actus", "kind": "feed", "url": server.url("atlanpole-actus.rss")}, *slow]
    )
    real = Store.save_source

    def disk_full(self: Store, outcome: Any, *args: Any, **kwargs: Any) -> Any:
        if outcome.source_id == "actus":  # a fault no local server can cause
            raise StoreError(f"{db_path}: saving a source: database or disk is full")
        return real(self, outcome, *args, **kwargs)

    monkeypatch.setattr(Store, "save_source", disk_full)
    with pytest.raises(StoreError, match="disk is full"):
        run(config, db_path=db_path)
    assert "internal error" not in caplog.text
    for source in slow:
        row = source_row(db_path, source["id"])
        assert (row["last_checked_at"], row["consecutive_failures"]) == (None, 0), row
    assert rows(db_path, "SELECT status FROM runs") == [("error",)]
