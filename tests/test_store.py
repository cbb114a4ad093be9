"""The store on a real SQLite file: one transaction per source, stale runs closed, FTS in step."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import StoreError
from pipeline.models import Article, SourceOutcome
from pipeline.storage.store import Store
from tests.conftest import WriteConfig

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def article(url: str, title: Any = "Valneva : nouveau contrat") -> Article:
    return Article(url=url, link=url, title=title, summary="Saint-Herblain", source_id="s")


@pytest.fixture
def store(db_path: Path, write_config: WriteConfig) -> Store:
    config = write_config(
        sources=[{"id": "s", "kind": "feed", "url": "https://press.example/feed"}]
    )
    opened = Store.open(db_path)
    opened.sync_config(config)
    return opened


def test_a_source_is_saved_all_or_nothing(store: Store, db_path: Path) -> None:
    outcome = SourceOutcome("s", "ok", http_status=200, entries=2)
    broken = [article("https://press.example/a"), article("https://press.example/b", title=None)]
    with pytest.raises(StoreError, match="saving source s"):
        store.save_source(outcome, broken, run_id=None, now=NOW, etag='"v2"', next_check_at=NOW)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM articles").fetchone() == (0,)
    assert conn.execute("SELECT etag, last_status FROM sources WHERE id = 's'").fetchone() == (
        None,
        None,
    )
    conn.close()


def _stored_urls(db_path: Path) -> set[str]:
    """What another connection (another process) sees committed."""
    conn = sqlite3.connect(db_path)
    try:
        return {row[0] for row in conn.execute("SELECT url FROM articles")}
    finally:
        conn.close()


def test_grouped_saves_are_committed_together_and_each_stays_all_or_nothing(
    store: Store, db_path: Path
) -> None:
    outcome = SourceOutcome("s", "ok", http_status=200)
    one, two = article("https://press.example/1"), article("https://press.example/2")
    with store.grouped_commits() as commit:
        store.save_source(outcome, [one], run_id=None, now=NOW, next_check_at=NOW)
        assert _stored_urls(db_path) == set()  # not committed yet: a kill now loses it
        commit()
        assert _stored_urls(db_path) == {one.url}
        broken = [two, article("https://press.example/3", title=None)]
        with pytest.raises(StoreError, match="saving source s"):
            store.save_source(outcome, broken, run_id=None, now=NOW, next_check_at=NOW)
        store.save_source(outcome, [two], run_id=None, now=NOW, next_check_at=NOW)
    # the broken save left nothing; the one after it is committed as the group ends
    assert _stored_urls(db_path) == {one.url, two.url}


def test_an_error_that_ends_a_group_keeps_what_was_saved_before_it(
    store: Store, db_path: Path
) -> None:
    outcome = SourceOutcome("s", "ok", http_status=200)
    with pytest.raises(RuntimeError), store.grouped_commits():
        store.save_source(
            outcome, [article("https://press.example/1")], run_id=None, now=NOW, next_check_at=NOW
        )
        raise RuntimeError("the pass stopped")
    assert _stored_urls(db_path) == {"https://press.example/1"}
    # and the store writes as before afterwards, one commit per write
    store.save_source(
        outcome, [article("https://press.example/2")], run_id=None, now=NOW, next_check_at=NOW
    )
    assert len(_stored_urls(db_path)) == 2


def test_saving_twice_counts_new_and_seen(store: Store) -> None:
    outcome = SourceOutcome("s", "ok", http_status=200)
    first = store.save_source(
        outcome, [article("https://press.example/a")], run_id=None, now=NOW, next_check_at=NOW
    )
    again = store.save_source(
        outcome,
        [article("https://press.example/a"), article("https://press.example/b")],
        run_id=None,
        now=NOW,
        next_check_at=NOW,
    )
    assert (first.new, first.seen, again.new, again.seen) == (1, 0, 1, 1)
    assert store.count("articles") == 2 and store.count("article_sources") == 2


def test_full_text_index_follows_inserts_and_updates(store: Store, db_path: Path) -> None:
    store.save_source(
        SourceOutcome("s", "ok"),
        [article("https://press.example/a")],
        run_id=None,
        now=NOW,
        next_check_at=NOW,
    )
    conn = sqlite3.connect(db_path)
    match = "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?"
    assert conn.execute(match, ["herblain"]).fetchone() == (1,)
    conn.execute("UPDATE articles SET text = 'Le vaccin contre le chikungunya' WHERE id = 1")
    conn.commit()
    assert conn.execute(match, ["chikungunya"]).fetchone() == (1,)
    conn.close()


def test_runs_left_open_by_a_killed_process_are_marked_interrupted(
    store: Store, db_path: Path
) -> None:
    store.start_run(now=NOW, pid=99999)
    assert store.close_stale_runs(now=NOW) == 1
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT status, finished_at FROM runs").fetchone() == (
        "interrupted",
        "2026-11-28T06:00:00Z",
    )
    conn.close()


def test_a_database_from_a_newer_veille_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StoreError, match="newer than this veille"):
        Store.open(db_path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages of a SQLite database" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        Store.open(path)
