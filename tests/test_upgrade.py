"""Upgrade safety: a database made by an older veille is migrated with its data intact; one
made by a newer veille is refused, clearly, and left as it was.

An older database is built by applying only the first N migrations (as that version of
veille did, PRAGMA user_version = N) and filling it with rows in that version's schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

import pipeline.storage.store
from pipeline.errors import StoreError
from pipeline.run import run
from pipeline.storage.store import MIGRATIONS, Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.test_run import veille

CURRENT = len(MIGRATIONS)
XENOTHERA = "https://www.ouest-sante.example/economie/xenothera-leve-12-millions.html"
OLD_TITLE = "Xenothera lève 12 millions d'euros (ancienne base)"


def build_old_database(path: Path, version: int) -> None:
    """The schema of veille at ``version``, with a source, a member, a run, an article that
    the demo feed carries, its carrier, and what that version had of mentions and stories."""
    db = sqlite_utils.Database(sqlite3.connect(path))
    for number, migration in enumerate(MIGRATIONS[:version], start=1):
        with db.conn:
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
    with db.conn:
        db.execute(
            "INSERT INTO sources (id, name, kind, url, etag, last_modified, last_checked_at, "
            "last_status, consecutive_failures) VALUES ('ouest-sante', 'Ouest Santé', 'feed', "
            "'http://127.0.0.1:1/ouest-sante.rss', '\"old-etag\"', 'Fri, 27 Nov 2026 12:00:00 GMT', "
            "'2026-11-20T06:00:00Z', 'ok', 0)"
        )
        db.execute(
            "INSERT INTO members (id, name, aliases, kind) VALUES "
            "('xenothera', 'Xenothera', '[\"Xénothera\"]', 'member')"
        )
        db.execute(
            "INSERT INTO runs (id, started_at, finished_at, status, new_articles) VALUES "
            "(1, '2026-11-20T06:00:00Z', '2026-11-20T06:00:04Z', 'ok', 1)"
        )
        db.execute(
            "INSERT INTO articles (id, url, link, title, summary, lang, published_at, "
            "first_seen_at, source_id) VALUES (1, ?, ?, ?, 'Une levée de fonds.', 'fr', "
            "'2026-11-19T08:30:00Z', '2026-11-20T06:00:02Z', 'ouest-sante')",
            [XENOTHERA, XENOTHERA + "?utm_source=rss", OLD_TITLE],
        )
        db.execute(
            "INSERT INTO article_sources (article_id, source_id, link, first_seen_at, "
            "last_seen_at, run_id) VALUES (1, 'ouest-sante', ?, '2026-11-20T06:00:02Z', "
            "'2026-11-20T06:00:02Z', 1)",
            [XENOTHERA + "?utm_source=rss"],
        )
        if version >= 2:
            db.execute("INSERT INTO article_urls (url, article_id) VALUES (?, 1)", [XENOTHERA])
            db.execute("UPDATE articles SET text_status = 'ok', text = 'Le texte intégral.'")
        if version >= 4:  # from then on veille counted the attempt as it stored the text
            db.execute("UPDATE articles SET text_attempts = 1")
        if version >= 7:  # and from then on, the week as it stored the article
            db.execute("UPDATE articles SET week = '2026-W47'")
        if version >= 3:
            db.execute(
                "INSERT INTO mentions (article_id, member_id, alias, count, in_title, snippet) "
                "VALUES (1, 'xenothera', 'Xenothera', 2, 1, 'Xenothera lève 12 millions')"
            )
            db.execute(
                "INSERT INTO fundings (article_id, member_id, amount, currency, amount_eur, phrase) "
                "VALUES (1, 'xenothera', 12000000, 'EUR', 12000000, 'lève 12 millions d''euros')"
            )
        if version >= 5:
            db.execute(
                "INSERT INTO stories (id, title, first_seen_at, last_seen_at, article_count) "
                "VALUES (1, ?, '2026-11-20T06:00:02Z', '2026-11-20T06:00:02Z', 1)",
                [OLD_TITLE],
            )
            db.execute("UPDATE articles SET story_id = 1")
    db.close()


def one(path: Path, sql: str, *params: Any) -> Any:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def user_version(path: Path) -> int:
    return int(one(path, "PRAGMA user_version"))


OLDER = list(range(1, CURRENT))


@pytest.mark.parametrize("version", OLDER, ids=[f"from-v{v}" for v in OLDER])
def test_an_older_database_is_migrated_with_its_data_intact(version: int, db_path: Path) -> None:
    build_old_database(db_path, version)
    assert user_version(db_path) == version
    store = Store.open(db_path)
    assert store.schema_version == CURRENT
    store.close()
    assert user_version(db_path) == CURRENT
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        article = dict(conn.execute("SELECT * FROM articles WHERE id = 1").fetchone())
        assert article["url"] == XENOTHERA and article["title"] == OLD_TITLE
        assert article["published_at"] == "2026-11-19T08:30:00Z"
        assert article["first_seen_at"] == "2026-11-20T06:00:02Z"
        assert article["source_id"] == "ouest-sante"
        assert article["week"] == "2026-W47"  # computed by a later migration from the date
        assert article["text_attempts"] == (1 if version >= 2 else 0)  # tried once, if it was
        # every URL an article is known by, backfilled when the table did not exist yet
        assert [tuple(r) for r in conn.execute("SELECT url, article_id FROM article_urls")] == [
            (XENOTHERA, 1)
        ]
        source = dict(conn.execute("SELECT * FROM sources").fetchone())
        assert source["etag"] == '"old-etag"' and source["last_status"] == "ok"
        assert conn.execute("SELECT status FROM runs").fetchall()[0][0] == "ok"
        carriers = conn.execute("SELECT article_id, source_id FROM article_sources").fetchall()
        assert [tuple(r) for r in carriers] == [(1, "ouest-sante")]
        hits = conn.execute(
            "SELECT rowid FROM articles_fts WHERE articles_fts MATCH 'ancienne'"
        ).fetchall()
        assert [r[0] for r in hits] == [1]  # the full-text index still finds old rows
        if version >= 3:
            assert conn.execute("SELECT member_id, count FROM mentions").fetchall()[0][:] == (
                "xenothera",
                2,
            )
            assert conn.execute("SELECT amount FROM fundings").fetchone()[0] == 12_000_000
            # the analysts' view (a later migration) reads the old rows
            assert conn.execute("SELECT member, week FROM mention_details").fetchone()[:] == (
                "Xenothera",
                "2026-W47",
            )
        if version >= 5:
            assert conn.execute("SELECT story_id FROM articles").fetchone()[0] == 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


@pytest.mark.parametrize("version", [1, CURRENT - 1], ids=["from-v1", f"from-v{CURRENT - 1}"])
def test_a_run_on_an_upgraded_database_adds_to_it_without_duplicates(
    version: int, server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    build_old_database(db_path, version)
    config = write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}]
    )
    report = run(config, db_path=db_path)
    assert report.status == "ok"
    assert report.new_articles == 5  # six entries, one of them already stored by the old veille
    assert one(db_path, "SELECT count(*) FROM articles") == 6
    assert one(db_path, "SELECT count(*) FROM articles WHERE url = ?", XENOTHERA) == 1
    # the old row is the one kept: its title and first sighting are not overwritten
    assert one(db_path, "SELECT first_seen_at FROM articles WHERE url = ?", XENOTHERA) == (
        "2026-11-20T06:00:02Z"
    )
    assert one(db_path, "SELECT count(*) FROM article_sources") == 6
    assert one(db_path, "SELECT count(*) FROM runs") == 2
    assert one(db_path, "PRAGMA integrity_check") == "ok"


def test_a_failing_migration_leaves_the_database_at_its_old_version(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_old_database(db_path, CURRENT - 1)
    tables_before = one(db_path, "SELECT group_concat(name) FROM sqlite_master")
    last = MIGRATIONS[-1]

    def half_done(db: sqlite_utils.Database) -> None:
        last(db)  # its changes are made ...
        raise sqlite3.OperationalError("disk I/O error")  # ... and then the disk fails

    half_done.__name__ = last.__name__
    broken: tuple[Callable[[sqlite_utils.Database], None], ...] = (*MIGRATIONS[:-1], half_done)
    monkeypatch.setattr(pipeline.storage.store, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match=f"migration {CURRENT} .*disk I/O error"):
        Store.open(db_path)
    assert user_version(db_path) == CURRENT - 1
    assert one(db_path, "SELECT group_concat(name) FROM sqlite_master") == tables_before
    monkeypatch.undo()
    Store.open(db_path).close()  # the next veille with a working disk finishes the job
    assert user_version(db_path) == CURRENT
    assert one(db_path, "SELECT title FROM articles") == OLD_TITLE


def newer_database(path: Path) -> int:
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {CURRENT + 1}")
    conn.close()
    return CURRENT + 1


def test_a_database_from_a_newer_veille_is_refused_and_left_alone(db_path: Path) -> None:
    newer = newer_database(db_path)
    schema_before = one(db_path, "SELECT group_concat(sql) FROM sqlite_master")
    with pytest.raises(StoreError) as info:
        Store.open(db_path)
    message = str(info.value)
    assert f"schema version {newer}, newer than this veille ({CURRENT})" in message
    assert "upgrade veille" in message and str(db_path) in message
    assert user_version(db_path) == newer
    assert one(db_path, "SELECT group_concat(sql) FROM sqlite_master") == schema_before


@pytest.mark.parametrize("command", ["run", "remention"])
def test_the_command_line_refuses_a_newer_database_with_one_clear_line(
    command: str, write_config: WriteConfig, db_path: Path, server: FixtureServer
) -> None:
    newer = newer_database(db_path)
    config = write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}]
    )
    result = veille(command, "--db", str(db_path), "--config", config.path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"schema version {newer}, newer than this veille ({CURRENT}): upgrade veille" in (
        result.stderr
    )
    assert result.stdout == ""
    assert server.requests == []  # refused before any source is fetched
    assert user_version(db_path) == newer
    assert one(db_path, "SELECT count(*) FROM runs") == 0
