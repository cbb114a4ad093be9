"""Articles, source state and runs -> SQLite (the only module that imports sqlite_utils).

The schema is created and migrated by numbered migrations (PRAGMA user_version), kept
in :mod:`pipeline.storage.migrations`.
The database runs in WAL mode with a busy timeout so Datasette and the digest can
read while a run writes; each source's results are written in one transaction.
Timestamps are ISO 8601 UTC strings ("2026-11-28T06:00:00Z"), so they sort and
compare as text and SQLite's date functions read them.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from pipeline.analysis.analyse import Analysis
from pipeline.analysis.owned import Owners
from pipeline.analysis.stories import NUM_PERM, SCHEME, SEED, Candidate, StoryKey, choose
from pipeline.errors import StoreError
from pipeline.models import Article, PageState, SourceOutcome
from pipeline.settings.config import Config, Source
from pipeline.storage.migrations import EARNED_SQL as EARNED_SQL  # for the readers' SQL
from pipeline.storage.migrations import MIGRATIONS
from pipeline.storage.migrations import WHILE_MEMBER_SQL as WHILE_MEMBER_SQL

logger = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("storage/veille.db")
BUSY_TIMEOUT_MS = 15_000
# pages SQLite keeps in memory (its default is 2 MB): the indexes a run looks up for every
# article (URLs, story bands, full-text segments) stay read, not fetched from the file again
CACHE_KB = 32_000
DUE_SLACK = timedelta(minutes=2)  # cron fires a little early or late; a source due "soon" is due


Params = Sequence[Any] | dict[str, Any]


def _explain(exc: sqlite3.Error) -> str:
    """SQLite's message, and what it means for the operator where that is not plain."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "locked" in low or "busy" in low:
        hint = (
            f"another process kept it busy longer than the {BUSY_TIMEOUT_MS / 1000:g} s "
            "busy timeout; try again when it is done"
        )
    elif "disk i/o" in low:
        hint = "the disk or the file system failed; check them and the free space"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        hint = "the file is damaged or not a veille database; restore it from a backup"
    elif "no such table" in low or "no such column" in low:
        hint = "its schema is not the one this veille expects; was it changed by hand?"
    elif "readonly" in low or "unable to open" in low:
        hint = "check the permissions of the file and of its directory"
    elif "full" in low:
        hint = "free some space on the disk"
    else:
        return text
    return f"{text} ({hint})"


def iso_week(when: datetime) -> str:
    """ "2026-W48": the ISO week of a moment, in UTC like every stored time."""
    year, week, _ = when.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def iso(when: datetime) -> str:
    """UTC, second precision, trailing Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(value: str | None) -> datetime | None:
    """A stored time read back (aware; a time without an offset is UTC); None when unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------- stories (in a transaction)

MAX_STORY_CANDIDATES = 200


def _story_candidates(db: sqlite_utils.Database, key: StoryKey) -> list[Candidate]:
    """Stored articles that may be copies: same text hash, a shared LSH band, same headline."""
    ids: set[int] = set()
    if key.bands:
        # one indexed lookup per band (a row-value IN list would scan the table)
        lookups = " UNION ".join(
            "SELECT article_id FROM story_bands WHERE band = ? AND hash = ?" for _ in key.bands
        )
        params: list[Any] = [v for band, value in enumerate(key.bands) for v in (band, value)]
        ids |= {row[0] for row in db.execute(f"{lookups} LIMIT {MAX_STORY_CANDIDATES}", params)}
    ids |= {
        row[0]
        for row in db.execute(
            f"SELECT article_id FROM article_signatures WHERE text_hash = ? OR (title_key = ? AND title_key != '') "
            f"LIMIT {MAX_STORY_CANDIDATES}",
            [key.text_hash, key.title_key],
        )
    }
    if not ids:
        return []
    placeholders = ", ".join("?" * len(ids))
    # the story and date of a candidate from an index (migration 14): in the row they follow
    # the text, whose overflow pages reading them would walk
    return [
        Candidate(
            article_id=row[0],
            story_id=row[1],
            text_hash=row[2],
            title_key=row[3],
            signature=row[4],
            published_at=datetime.fromisoformat(row[5]) if row[5] else None,
        )
        for row in db.execute(
            f"""
            SELECT s.article_id, a.story_id, s.text_hash, s.title_key, s.signature,
                   coalesce(a.published_at, a.first_seen_at)
            FROM article_signatures s
            JOIN articles a INDEXED BY idx_articles_candidates ON a.id = s.article_id
            WHERE s.article_id IN ({placeholders}) AND a.story_id IS NOT NULL
            """,
            list(ids),
        )
    ]


def _place_in_story(
    db: sqlite_utils.Database, article_id: int, key: StoryKey, *, title: str, stamp: str
) -> bool:
    """Join the story of the best copy, or open a new one. True when a story was created."""
    story_id = choose(key, _story_candidates(db, key))
    created = story_id is None
    if story_id is None:
        story_id = db.execute(
            "INSERT INTO stories (title, first_seen_at, last_seen_at) VALUES (?, ?, ?) RETURNING id",
            [title, stamp, stamp],
        ).fetchone()[0]
    db.execute(
        "INSERT OR REPLACE INTO article_signatures (article_id, scheme, seed, num_perm, text_hash, title_key, "
        "signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [article_id, SCHEME, SEED, NUM_PERM, key.text_hash, key.title_key, key.signature],
    )
    db.execute("DELETE FROM story_bands WHERE article_id = ?", [article_id])
    db.conn.executemany(
        "INSERT OR IGNORE INTO story_bands (band, hash, article_id) VALUES (?, ?, ?)",
        [(band, value, article_id) for band, value in enumerate(key.bands)],
    )
    db.execute("UPDATE articles SET story_id = ? WHERE id = ?", [story_id, article_id])
    _refresh_story(db, story_id, stamp=stamp)
    return created


def _refresh_story(db: sqlite_utils.Database, story_id: int, *, stamp: str) -> None:
    """Counts and outlets of a story, from its articles and the sources that carried them."""
    db.execute(
        """
        UPDATE stories SET
            last_seen_at = max(last_seen_at, ?),
            article_count = (SELECT count(*) FROM articles WHERE story_id = :id),
            outlets = (
                SELECT json_group_array(outlet) FROM (
                    SELECT DISTINCT coalesce(a.outlet, src.name) AS outlet
                    FROM articles a
                    JOIN article_sources x ON x.article_id = a.id
                    JOIN sources src ON src.id = x.source_id
                    WHERE a.story_id = :id ORDER BY outlet
                )
            )
        WHERE id = :id
        """.replace("?", ":stamp"),
        {"stamp": stamp, "id": story_id},
    )


# ---------------------------------------------------------------- one source's result
# The parts of Store.save_source, each writing one thing inside its transaction.


def _attempt(state: PageState | None) -> int:
    """1 when the page was actually tried; 0 when it was not (no status, or left pending)."""
    return 0 if state is None or state is PageState.PENDING else 1


def _write_analysis(
    db: sqlite_utils.Database, article_id: int, analysis: Analysis, *, found_at: str | None = None
) -> None:
    """Replace an article's mentions, fundings and topics (inside the caller's transaction).

    A member the article already named keeps when it was found and which digest reported
    it (an unchanged mention is not news); a newly named one is found at ``found_at``
    (default: now)."""
    stamp = found_at or iso(utcnow())
    kept = {
        member_id: (found, week)
        for member_id, found, week in db.execute(
            "SELECT member_id, found_at, digest_week FROM mentions WHERE article_id = ?",
            [article_id],
        )
    }
    # a mention the team added by hand (a verdict) stays unless the matcher now finds it
    added = {
        row[1]: row
        for row in db.execute(
            "SELECT article_id, member_id, alias, count, in_title, snippet, found_at, "
            "digest_week, origin FROM mentions WHERE article_id = ? AND origin = 'desk'",
            [article_id],
        )
    }
    db.execute("DELETE FROM mentions WHERE article_id = ?", [article_id])
    db.execute("DELETE FROM fundings WHERE article_id = ?", [article_id])
    for mention in analysis.mentions:
        found, week = kept.get(mention.member_id, (None, None))
        db.execute(
            "INSERT INTO mentions (article_id, member_id, alias, count, in_title, snippet, "
            "found_at, digest_week) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                article_id,
                mention.member_id,
                mention.alias,
                mention.count,
                int(mention.in_title),
                mention.snippet,
                found or stamp,
                week,
            ],
        )
        added.pop(mention.member_id, None)
    for row in added.values():
        db.execute(
            "INSERT INTO mentions (article_id, member_id, alias, count, in_title, snippet, "
            "found_at, digest_week, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            list(row),
        )
    for event in analysis.fundings:
        db.execute(
            "INSERT INTO fundings (article_id, member_id, amount, currency, amount_eur, phrase) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                article_id,
                event.member_id,
                event.amount,
                event.currency,
                event.amount_eur,
                event.phrase,
            ],
        )
    db.execute(
        "UPDATE articles SET topics = ?, analysis_error = NULL WHERE id = ?",
        [json.dumps(list(analysis.topics)) if analysis.topics else None, article_id],
    )


def _write_analysis_error(db: sqlite_utils.Database, article_id: int, reason: str) -> None:
    """The article stays stored, unanalysed, with the reason; no later run pays for it
    again unless its text changes (or `veille remention` is asked for)."""
    db.execute("UPDATE articles SET analysis_error = ? WHERE id = ?", [reason[:500], article_id])


def _write_article(
    db: sqlite_utils.Database, article: Article, *, status: str | None, now: datetime
) -> tuple[int, bool, bool]:
    """The article's row, found by any of its URLs or inserted: (id, created, filled).

    ``filled``: a stored article without text got this copy's text. A stored one still
    without text gets the new ``status`` of its page (tried again, or still pending)."""
    state = PageState.of(status)
    keys = [article.url, *article.aliases]
    found = db.execute(
        f"SELECT article_id FROM article_urls WHERE url IN ({', '.join('?' * len(keys))}) LIMIT 1",
        keys,
    ).fetchone()
    if found is None:
        article_id = db.execute(
            """
            INSERT INTO articles (url, link, title, summary, text, text_status, text_state,
                                  text_attempts, lang, author, guid, outlet, published_at,
                                  first_seen_at, source_id, week, owner, owned, outlet_url,
                                  copy_key, opaque)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            RETURNING id
            """,
            [
                article.url,
                article.link,
                article.title,
                article.summary,
                article.text,
                status,
                state,
                _attempt(state),
                article.lang,
                article.author,
                article.guid,
                article.outlet,
                iso(article.published_at) if article.published_at else None,
                iso(now),
                article.source_id,
                iso_week(article.published_at or now),
                article.owner,
                int(article.owner is not None),
                article.outlet_url,
                article.copy_key,
                int(not article.fetchable),
            ],
        ).fetchone()[0]
        return int(article_id), True, False
    article_id = int(found[0])
    if article.fetchable and article.aliases:
        # the publisher's own copy of a news-search entry that led nowhere (joined by
        # dedupe.join_copies): the article is known by the publisher's URL from now on,
        # the aggregator's stays among its URLs
        db.execute(
            "UPDATE articles SET url = :url, link = :link, opaque = 0, "
            "copy_key = coalesce(:key, copy_key) WHERE id = :id AND opaque = 1 "
            "AND NOT EXISTS (SELECT 1 FROM article_urls WHERE url = :url)",
            {"url": article.url, "link": article.link, "key": article.copy_key, "id": article_id},
        )
    if article.owner is not None:  # first seen as coverage, now carried by its owner's newsroom
        db.execute(
            "UPDATE articles SET owner = ?, owned = 1 WHERE id = ? AND owner IS NULL",
            [article.owner, article_id],
        )
    if article.text:  # a copy that was fetched fills what the first one lacked
        filled = db.execute(
            "UPDATE articles SET text = ?, text_status = ?, text_state = ? "
            "WHERE id = ? AND text IS NULL",
            [article.text, PageState.OK.status(), PageState.OK, article_id],
        ).rowcount
        return article_id, False, bool(filled)
    if status is not None:  # tried again, still without text
        db.execute(
            "UPDATE articles SET text_status = ?, text_state = ?, "
            "text_attempts = text_attempts + ? WHERE id = ? AND text IS NULL",
            [status, state, _attempt(state), article_id],
        )
    return article_id, False, False


def _write_article_analysis(
    db: sqlite_utils.Database,
    article_id: int,
    analysis: Analysis | None,
    error: str | None,
    *,
    stamp: str,
) -> None:
    """A new (or newly filled) article's mentions, fundings and topics, or why it has none."""
    if analysis is not None:
        _write_analysis(db, article_id, analysis, found_at=stamp)
    elif error is not None:
        _write_analysis_error(db, article_id, error)


def _write_copies(
    db: sqlite_utils.Database,
    article_id: int,
    article: Article,
    source_id: str,
    *,
    run_id: int | None,
    stamp: str,
) -> None:
    """The article's URLs, and the source carrying it (first and last seen)."""
    for key in (article.url, *article.aliases):
        db.execute(
            "INSERT INTO article_urls (url, article_id) VALUES (?, ?) ON CONFLICT(url) DO NOTHING",
            [key, article_id],
        )
    db.execute(
        """
        INSERT INTO article_sources (article_id, source_id, link, guid, first_seen_at,
                                     last_seen_at, run_id)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(article_id, source_id) DO UPDATE SET last_seen_at = excluded.last_seen_at
        """,
        [article_id, source_id, article.link, article.guid, stamp, stamp, run_id],
    )


def _write_article_story(
    db: sqlite_utils.Database, article_id: int, key: StoryKey | None, *, title: str, stamp: str
) -> int:
    """A new article (``key``) finds its copies' story; an old one's story may gain an
    outlet. 1 when a story was created."""
    if key is not None:
        return int(_place_in_story(db, article_id, key, title=title, stamp=stamp))
    story = db.execute("SELECT story_id FROM articles WHERE id = ?", [article_id]).fetchone()
    if story and story[0] is not None:
        _refresh_story(db, story[0], stamp=stamp)
    return 0


def _write_source_state(
    db: sqlite_utils.Database,
    outcome: SourceOutcome,
    *,
    stamp: str,
    etag: str | None,
    last_modified: str | None,
    next_check_at: datetime,
    new: int,
) -> None:
    """The source's row after a pass: status, validators, failures, next check."""
    db.execute(
        """
        UPDATE sources SET
            last_checked_at = :now,
            last_status = :status,
            last_http_status = :http_status,
            last_error = :error,
            last_warning = CASE WHEN :status = 'not-modified' THEN last_warning ELSE :warning END,
            consecutive_failures = CASE WHEN :failed THEN consecutive_failures + 1 ELSE 0 END,
            last_success_at = CASE WHEN :failed THEN last_success_at ELSE :now END,
            etag = CASE WHEN :failed OR :status = 'not-modified' THEN coalesce(:etag, etag)
                        ELSE :etag END,
            last_modified = CASE WHEN :failed OR :status = 'not-modified'
                                 THEN coalesce(:last_modified, last_modified)
                                 ELSE :last_modified END,
            next_check_at = :next_check_at,
            last_new_at = CASE WHEN :new > 0 THEN :now ELSE last_new_at END
        WHERE id = :id
        """,
        {
            "now": stamp,
            "status": outcome.status,
            "http_status": outcome.http_status,
            "error": outcome.error,
            "warning": "; ".join(outcome.warnings) or None,
            "failed": int(outcome.failed),
            "etag": etag,
            "last_modified": last_modified,
            "next_check_at": iso(next_check_at),
            "new": new,
            "id": outcome.source_id,
        },
    )


# ---------------------------------------------------------------- sources' schedule


def pass_quota(feeds: int, source: Source, run_interval: timedelta) -> int:
    """How many feeds of a news search one pass may fetch: twice their share of a pass
    (feeds x run interval / feed interval), at least one."""
    interval = timedelta(minutes=source.interval_minutes or 1)
    return max(1, math.ceil(2 * feeds * (run_interval / interval)))


def _scheduled(
    source: Source, row: tuple[str, str | None, int] | None, now: datetime
) -> str | None:
    """The next_check_at a configured source keeps or gets: a changed URL forgets it; a
    news-search feed not yet on one of its slots (new, or its interval changed) gets its
    next slot, unless it is backing off after failures."""
    if row is None:
        kept = None
    else:
        url, kept, failures = row
        if url != source.url:
            kept = None
        elif kept is not None and (failures or not source.spread):
            return kept
    if not source.spread:
        return kept
    if kept is not None and source.on_slot(datetime.fromisoformat(kept)):
        return kept
    return iso(source.next_slot(now))


# ---------------------------------------------------------------- the store


@dataclass(frozen=True, slots=True)
class Saved:
    new: int
    seen: int
    new_stories: int = 0


class Store:
    """A veille database. ``Store.open(path)`` migrates it; methods map to one write each."""

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        self.db = db
        self.path = path
        self._grouping = False  # inside grouped_commits: writes join one open transaction

    @classmethod
    def open(cls, path: str | Path = DEFAULT_DB_PATH, *, migrate: bool = True) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
            db = sqlite_utils.Database(conn)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.enable_wal()
            db.execute(
                "PRAGMA synchronous = NORMAL"
            )  # safe in WAL: a crash loses no committed transaction
            db.execute("PRAGMA foreign_keys = ON")
            db.execute(f"PRAGMA cache_size = -{CACHE_KB}")
            store = cls(db, path)
            if migrate:
                store.migrate()
            return store
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {_explain(exc)}") from None
        except OSError as exc:
            raise StoreError(f"cannot create database {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ the boundary
    # Every statement goes through _write (a transaction) or _read: no sqlite3 error
    # leaves this class but as a StoreError that names the file and what was being done.

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite_utils.Database]:
        try:
            if self._grouping and not self.db.conn.in_transaction:
                # the group's transaction, begun by its first write: IMMEDIATE takes the
                # write lock now, so a write inside never fails on a snapshot another
                # process has moved past meanwhile
                self.db.conn.execute("BEGIN IMMEDIATE")
            with self.db.atomic():  # inside a transaction: a savepoint
                yield self.db
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {what}: {_explain(exc)}") from None

    @contextmanager
    def grouped_commits(self) -> Iterator[Callable[[], None]]:
        """Writes committed a group at a time (a pass's source saves): inside, each write
        is still all-or-nothing (a savepoint of the group's transaction), and the group is
        committed when the returned ``commit()`` is called (the pass does it every
        GROUP_SECONDS) and at the end, also when the block ends on an error. A commit per
        source cost more than most small sources' whole write. A kill loses the writes of
        the group not committed yet, validators included: the next run fetches those
        sources again, so nothing is lost and nothing is counted twice."""

        def commit() -> None:
            try:
                if self.db.conn.in_transaction:
                    self.db.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: saving the sources: {_explain(exc)}") from None

        self._grouping = True
        try:
            yield commit
        except BaseException:
            self._grouping = False
            try:
                commit()  # what was saved before the error stays saved
            except StoreError:
                logger.warning("the last group of sources could not be committed either")
            raise
        self._grouping = False
        commit()

    @contextmanager
    def _read(self, what: str) -> Iterator[sqlite_utils.Database]:
        try:
            yield self.db
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {what}: {_explain(exc)}") from None

    def rows(self, what: str, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row a query returns (``what`` says what it reads, for the error)."""
        with self._read(what) as db:
            return list(db.execute(sql, params).fetchall())

    def row(self, what: str, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """The first row a query returns, or None."""
        with self._read(what) as db:
            found = db.execute(sql, params).fetchone()
            return tuple(found) if found is not None else None

    def records(self, what: str, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Every row a query returns, as a dict by column name."""
        with self._read(what) as db:
            cursor = db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def execute(self, what: str, sql: str, params: Params = ()) -> int:
        """One write statement, committed (or a savepoint inside :meth:`transaction`);
        the number of rows it changed."""
        with self._write(what) as db:
            return int(db.execute(sql, params).rowcount)

    @contextmanager
    def transaction(self, what: str) -> Iterator[None]:
        """One transaction around several writes (the writes inside nest as savepoints)."""
        with self._write(what):
            yield

    def count(self, table: str) -> int:
        found = self.row(f"counting {table}", f"SELECT count(*) FROM [{table}]")
        return int(found[0]) if found else 0

    # ------------------------------------------------------------ the schema

    @property
    def schema_version(self) -> int:
        with self._read("reading the schema version") as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply the migrations this database has not seen; return the new version."""
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this veille "
                f"({len(MIGRATIONS)}): upgrade veille"
            )
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._write(f"migration {number} ({migration.__name__})") as db:
                migration(db)
                db.execute(f"PRAGMA user_version = {number}")
            logger.info("migrated db=%s version=%d", self.path, number)
        return self.schema_version

    # ------------------------------------------------------------ members and sources

    def sync_config(self, config: Config, *, now: datetime | None = None) -> None:
        """Members and sources from sources.yaml; rows no longer configured are kept, marked.

        A news-search feed seen for the first time (or whose URL or interval changed) is
        scheduled at its next slot after ``now``, never due at once with all the others."""
        now = now or utcnow()
        stored = {
            row[0]: (row[1], row[2], row[3])
            for row in self.rows(
                "reading the sources' schedule",
                "SELECT id, url, next_check_at, consecutive_failures FROM sources",
            )
        }
        owners_before = self._owners_fingerprint()
        with self._write("saving members and sources") as db:
            db.execute("UPDATE members SET in_config = 0")
            rows: list[dict[str, Any]] = [
                {
                    "id": config.cluster.id,
                    "name": config.cluster.name,
                    "aliases": json.dumps(config.cluster.alias_names, ensure_ascii=False),
                    "kind": "cluster",
                    "city": None,
                    "website": config.cluster.website,
                    "tags": "[]",
                    "joined": None,
                    "left": None,
                }
            ]
            rows += [
                {
                    "id": m.slug,
                    "name": m.name,
                    "aliases": json.dumps(m.alias_names, ensure_ascii=False),
                    "kind": m.kind,
                    "city": m.city,
                    "website": m.website,
                    "tags": json.dumps(list(m.tags), ensure_ascii=False),
                    "joined": m.joined.isoformat() if m.joined else None,
                    "left": m.left.isoformat() if m.left else None,
                }
                for m in config.members
            ]
            for row in rows:
                db.execute(
                    """
                    INSERT INTO members (id, name, aliases, kind, city, website, tags, joined, left,
                                         in_config)
                    VALUES (:id, :name, :aliases, :kind, :city, :website, :tags, :joined, :left, 1)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, aliases = excluded.aliases,
                        kind = excluded.kind, city = excluded.city, website = excluded.website,
                        tags = excluded.tags, joined = excluded.joined, left = excluded.left,
                        in_config = 1
                    """,
                    row,
                )
            db.execute("UPDATE sources SET in_config = 0")
            for source in config.sources:
                db.execute(
                    """
                    INSERT INTO sources (id, name, kind, url, member_id, enabled, confirmed,
                                         in_config, next_check_at, owner)
                    VALUES (:id, :name, :kind, :url, :member_id, :enabled, :confirmed, 1,
                            :next_check_at, :owner)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                        member_id = excluded.member_id, enabled = excluded.enabled,
                        owner = excluded.owner,
                        confirmed = excluded.confirmed, in_config = 1,
                        -- validators belong to the old URL: forget them when it changes
                        etag = CASE WHEN url = excluded.url THEN etag END,
                        last_modified = CASE WHEN url = excluded.url THEN last_modified END,
                        next_check_at = excluded.next_check_at,
                        url = excluded.url
                    """,
                    {
                        "next_check_at": _scheduled(source, stored.get(source.id), now),
                        "id": source.id,
                        "name": source.name,
                        "kind": source.kind,
                        "url": source.url,
                        "member_id": source.member_id,
                        "enabled": int(source.enabled),
                        "confirmed": int(source.confirmed),
                        "owner": source.owner,
                    },
                )
            if self._owners_fingerprint() != owners_before:
                # a website or a newsroom's owner changed: who owns what, decided again
                self.recompute_owners(Owners.from_config(config))

    def _owners_fingerprint(self) -> tuple[tuple[Any, ...], ...]:
        """What ownership is decided from, as stored: the configured websites and the
        configured sources' owners (and URLs)."""
        return tuple(
            self.rows(
                "reading the websites and the newsrooms",
                "SELECT 'member', id, website FROM members WHERE in_config = 1 "
                "AND website IS NOT NULL AND kind IN ('member', 'cluster') "
                "UNION ALL SELECT 'source', id, url || ' ' || owner FROM sources "
                "WHERE in_config = 1 AND owner IS NOT NULL ORDER BY 1, 2",
            )
        )

    def recompute_owners(self, owners: Owners, *, batch: int = 2000) -> int:
        """Decide again who owns every stored article (after a website or a newsroom
        changed, and in `veille remention`); the number of articles whose owner changed."""
        changed = 0
        last = 0
        with self._write("deciding who owns the articles") as db:
            while True:
                rows = db.execute(
                    "SELECT a.id, a.url, a.owner, "
                    "(SELECT group_concat(x.source_id, char(10)) FROM article_sources x "
                    " WHERE x.article_id = a.id) "
                    "FROM articles a WHERE a.id > ? ORDER BY a.id LIMIT ?",
                    [last, batch],
                ).fetchall()
                if not rows:
                    return changed
                updates = []
                for article_id, url, owner, carriers in rows:
                    found = owners.owner_of(url, sorted((carriers or "").split("\n")))
                    if found != owner:
                        updates.append((found, int(found is not None), article_id))
                db.conn.executemany(
                    "UPDATE articles SET owner = ?, owned = ? WHERE id = ?", updates
                )
                changed += len(updates)
                last = int(rows[-1][0])

    def source_state(self, source_id: str) -> dict[str, Any]:
        rows = self.records(
            f"reading the state of source {source_id}",
            "SELECT * FROM sources WHERE id = ?",
            [source_id],
        )
        return rows[0] if rows else {}

    def source_states(self) -> dict[str, dict[str, Any]]:
        """Every source's row by id, in one query (a pass reads them once, not one by one:
        with thousands of small sources the lookups were a tenth of the run's own work)."""
        rows = self.records("reading the state of the sources", "SELECT * FROM sources")
        return {row["id"]: row for row in rows}

    def due_sources(
        self, sources: Sequence[Source], *, now: datetime, run_interval: timedelta | None = None
    ) -> tuple[list[Source], list[Source]]:
        """(due, later): sources whose next check has come, and the others.

        The feeds of one news search that are due (their slots passed while no run came,
        after an outage or an upgrade) are taken at most :func:`pass_quota` a pass, the
        longest waiting first; the others stay due for the next pass."""
        limit = iso(now + DUE_SLACK)
        scheduled = {
            row[0]: row[1]
            for row in self.rows(
                "reading when sources are due",
                "SELECT id, next_check_at FROM sources WHERE next_check_at IS NOT NULL",
            )
        }
        due: list[Source] = []
        later: list[Source] = []
        spread: dict[str, list[Source]] = {}
        feeds: dict[str, int] = {}  # a news search's feeds, due or not
        for source in sources:
            if source.spread:
                feeds[source.template] = feeds.get(source.template, 0) + 1
            if source.id in scheduled and scheduled[source.id] > limit:
                later.append(source)
            elif source.spread and run_interval is not None:
                spread.setdefault(source.template, []).append(source)
            else:
                due.append(source)
        for template, ready in spread.items():
            assert run_interval is not None  # only then are feeds set aside
            quota = pass_quota(feeds[template], ready[0], run_interval)
            ready.sort(key=lambda s: (scheduled.get(s.id, ""), s.id))
            due += ready[:quota]
            later += ready[quota:]
        return due, later

    def sources_report(self) -> list[dict[str, Any]]:
        return self.records(
            "reading the sources' state",
            """
                SELECT s.id, s.name, s.kind, s.last_status, s.last_http_status,
                       s.consecutive_failures, s.last_checked_at, s.last_new_at, s.next_check_at,
                       s.last_error, s.last_warning, s.enabled, s.confirmed,
                       (SELECT count(*) FROM article_sources a WHERE a.source_id = s.id) AS articles
                FROM sources s WHERE s.in_config = 1 ORDER BY s.id
                """,
        )

    # ------------------------------------------------------------ articles and their analyses

    def _urls_where(self, urls: Sequence[str], query: str, extra: Sequence[Any] = ()) -> set[str]:
        """The URLs among ``urls`` that ``query`` returns ({urls} stands for the IN list)."""
        found: set[str] = set()
        for start in range(0, len(urls), 500):  # under SQLite's limit on bound parameters
            chunk = list(urls[start : start + 500])
            sql = query.replace("{urls}", ", ".join("?" * len(chunk)))
            found |= {row[0] for row in self.rows("looking up article URLs", sql, [*chunk, *extra])}
        return found

    def copies(self, keys: Sequence[str]) -> dict[str, list[tuple[str, bool, datetime | None]]]:
        """Stored articles by copy key (dedupe.copy_key): (URL, opaque, date) of each."""
        found: dict[str, list[tuple[str, bool, datetime | None]]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            for key, url, opaque, when in self.rows(
                "looking up copies of news-search entries",
                f"SELECT copy_key, url, opaque, coalesce(published_at, first_seen_at) "
                f"FROM articles WHERE copy_key IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                chunk,
            ):
                found.setdefault(key, []).append((url, bool(opaque), from_iso(when)))
        return found

    def search_carried(
        self, since: datetime
    ) -> list[tuple[int, str, bool, str | None, str | None, str]]:
        """The articles news searches carried since ``since`` that name a member or the
        cluster (as judged): (story, URL, opaque, outlet, outlet's site, member's name)."""
        return [
            (int(story), url, bool(opaque), outlet, outlet_url, name)
            for story, url, opaque, outlet, outlet_url, name in self.rows(
                "reading what the news searches carried",
                """
                SELECT DISTINCT coalesce(a.story_id, -a.id), a.url, a.opaque, a.outlet,
                       a.outlet_url, mb.name
                FROM articles a
                JOIN article_sources x ON x.article_id = a.id
                JOIN sources s ON s.id = x.source_id AND s.kind = 'search'
                JOIN judged_mentions m ON m.article_id = a.id
                JOIN members mb ON mb.id = m.member_id AND mb.kind IN ('member', 'cluster')
                WHERE a.first_seen_at >= ?
                """,
                [iso(since)],
            )
        ]

    def known_urls(self, urls: Sequence[str]) -> set[str]:
        """Which of these URLs already belong to a stored article."""
        return self._urls_where(urls, "SELECT url FROM article_urls WHERE url IN ({urls})")

    def iter_articles(
        self, *, batch: int = 500
    ) -> Iterator[list[tuple[int, str, str, str | None]]]:
        """(id, title, summary, text) of every article, in batches by id."""
        last = 0
        while True:
            rows = self.rows(
                "reading articles",
                "SELECT id, title, summary, text FROM articles WHERE id > ? ORDER BY id LIMIT ?",
                [last, batch],
            )
            if not rows:
                return
            yield [(int(r[0]), r[1] or "", r[2] or "", r[3]) for r in rows]
            last = int(rows[-1][0])

    def articles_since(self, since: str) -> list[tuple[str, str, str | None]]:
        """(title, summary, text) of the articles first seen at or after ``since`` (ISO UTC),
        for `veille members check`."""
        rows = self.rows(
            "reading the latest articles",
            "SELECT title, summary, text FROM articles WHERE first_seen_at >= ? ORDER BY id",
            [since],
        )
        return [(r[0] or "", r[1] or "", r[2]) for r in rows]

    def save_analyses(self, analyses: dict[int, Analysis | str]) -> None:
        """Replace the analyses of these articles, in one transaction (a string: why the
        article could not be analysed)."""
        with self._write("saving mentions") as db:
            for article_id, analysis in analyses.items():
                if isinstance(analysis, str):
                    _write_analysis_error(db, article_id, analysis)
                else:
                    _write_analysis(db, article_id, analysis)

    def pages_to_retry(self, urls: Sequence[str], *, max_attempts: int) -> set[str]:
        """URLs of stored articles still without text whose page is worth another try."""
        return self._urls_where(
            urls,
            """
            SELECT u.url FROM article_urls u JOIN articles a ON a.id = u.article_id
            WHERE u.url IN ({urls}) AND a.text IS NULL
              AND (a.text_state = ? OR (a.text_state = ? AND a.text_attempts < ?))
            """,
            [PageState.PENDING, PageState.ERROR, max_attempts],
        )

    # ------------------------------------------------------------ stories

    def reset_stories(self) -> None:
        """Forget every story, signature and band (before `veille restory`)."""
        with self._write("clearing stories") as db:
            db.execute("UPDATE articles SET story_id = NULL WHERE story_id IS NOT NULL")
            db.execute("DELETE FROM story_bands")
            db.execute("DELETE FROM article_signatures")
            db.execute("DELETE FROM stories")

    def iter_articles_for_stories(
        self, *, batch: int = 500
    ) -> Iterator[list[tuple[int, str, str, str | None, datetime | None, str]]]:
        """(id, title, summary, text, published_at, first_seen_at) in the order they were seen."""
        last: tuple[str, int] = ("", 0)
        while True:
            rows = self.rows(
                "reading articles for their stories",
                "SELECT id, title, summary, text, published_at, first_seen_at FROM articles "
                "WHERE (first_seen_at, id) > (?, ?) ORDER BY first_seen_at, id LIMIT ?",
                [last[0], last[1], batch],
            )
            if not rows:
                return
            yield [
                (
                    int(r[0]),
                    r[1] or "",
                    r[2] or "",
                    r[3],
                    datetime.fromisoformat(r[4]) if r[4] else None,
                    r[5],
                )
                for r in rows
            ]
            last = (rows[-1][5], int(rows[-1][0]))

    def place_in_stories(self, keys: Sequence[tuple[int, str, str, StoryKey]]) -> int:
        """(article id, title, first seen, key) placed in order, in one transaction; new stories."""
        created = 0
        with self._write("saving stories") as db:
            for article_id, title, first_seen, key in keys:
                created += _place_in_story(db, article_id, key, title=title, stamp=first_seen)
        return created

    # ------------------------------------------------------------ digests

    DIGEST_COLUMNS = frozenset(
        [
            "status",
            "generated_at",
            "sending_at",
            "sent_at",
            "recipients",
            "delivered",
            "refused",
            "subject",
            "message_id",
            "story_count",
            "article_count",
            "mention_count",
            "last_error",
            "permanent_error",
        ]
    )

    def digest_row(self, week: str) -> dict[str, Any] | None:
        rows = self.records(
            f"reading the digest of {week}", "SELECT * FROM digests WHERE week = ?", [week]
        )
        return rows[0] if rows else None

    def save_digest(self, week: str, *, attempts_increment: bool = False, **fields: Any) -> None:
        """Create or update a week's row; committed at once (it is the send's journal)."""
        unknown = set(fields) - self.DIGEST_COLUMNS
        if unknown:
            raise ValueError(f"not a digests column: {', '.join(sorted(unknown))}")
        with self._write(f"recording the digest of {week}") as db:
            db.execute(
                "INSERT INTO digests (week, status) VALUES (?, ?) ON CONFLICT (week) DO NOTHING",
                [week, fields.get("status", "pending")],
            )
            assignments = [f"{name} = ?" for name in fields]
            if attempts_increment:
                assignments.append("attempts = attempts + 1")
            if assignments:
                db.execute(
                    f"UPDATE digests SET {', '.join(assignments)} WHERE week = ?",
                    [*fields.values(), week],
                )

    REPORT_COLUMNS = frozenset(
        [
            "status",
            "language",
            "compare",
            "generated_at",
            "sending_at",
            "sent_at",
            "recipients",
            "delivered",
            "refused",
            "subject",
            "message_id",
            "story_count",
            "last_error",
            "permanent_error",
        ]
    )

    def report_row(self, period: str) -> dict[str, Any] | None:
        rows = self.records(
            f"reading the report of {period}", "SELECT * FROM reports WHERE period = ?", [period]
        )
        return rows[0] if rows else None

    def save_report(self, period: str, *, attempts_increment: bool = False, **fields: Any) -> None:
        """Create or update a period's row in the reports ledger; committed at once."""
        unknown = set(fields) - self.REPORT_COLUMNS
        if unknown:
            raise ValueError(f"not a reports column: {', '.join(sorted(unknown))}")
        with self._write(f"recording the report of {period}") as db:
            db.execute(
                "INSERT INTO reports (period, status) VALUES (?, ?) ON CONFLICT (period) DO NOTHING",
                [period, fields.get("status", "pending")],
            )
            assignments = [f"{name} = ?" for name in fields]
            if attempts_increment:
                assignments.append("attempts = attempts + 1")
            if assignments:
                db.execute(
                    f"UPDATE reports SET {', '.join(assignments)} WHERE period = ?",
                    [*fields.values(), period],
                )

    def mark_reported(self, week: str, mentions: Sequence[tuple[int, str]]) -> None:
        """Record that ``week``'s digest reported these (article id, member id) mentions;
        one already recorded keeps its first digest. Call it inside the transaction that
        records the digest as sent (:meth:`transaction`)."""
        with self._write(f"recording the mentions of the digest of {week}") as db:
            db.conn.executemany(
                "UPDATE mentions SET digest_week = ? "
                "WHERE article_id = ? AND member_id = ? AND digest_week IS NULL",
                [(week, article_id, member_id) for article_id, member_id in mentions],
            )

    # ------------------------------------------------------------ runs

    def close_stale_runs(self, *, now: datetime) -> int:
        """Runs still marked running belong to a process that died: the caller holds the lock."""
        with self._write("closing interrupted runs") as db:
            cursor = db.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'",
                [iso(now)],
            )
            return int(cursor.rowcount)

    def start_run(self, *, now: datetime, pid: int) -> int:
        with self._write("starting a run") as db:
            cursor = db.execute(
                "INSERT INTO runs (started_at, status, pid) VALUES (?, 'running', ?)",
                [iso(now), pid],
            )
            return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        *,
        now: datetime,
        status: str,
        counts: dict[str, int],
        duration: float,
        errors: Sequence[str],
    ) -> None:
        allowed = {
            "sources_total",
            "sources_ok",
            "sources_not_modified",
            "sources_failed",
            "sources_skipped",
            "sources_deferred",
            "entries",
            "new_articles",
        }
        values = {k: int(v) for k, v in counts.items() if k in allowed}
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        with self._write("finishing a run") as db:
            db.execute(
                f"UPDATE runs SET finished_at = :finished, status = :status, duration_s = :duration, "
                f"errors = :errors{', ' + assignments if assignments else ''} WHERE id = :id",
                {
                    **values,
                    "finished": iso(now),
                    "status": status,
                    "duration": round(duration, 3),
                    "errors": json.dumps(list(errors), ensure_ascii=False),
                    "id": run_id,
                },
            )

    def save_source(
        self,
        outcome: SourceOutcome,
        articles: Sequence[Article],
        *,
        run_id: int | None,
        now: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
        next_check_at: datetime,
        text_status: dict[str, str] | None = None,
        analyses: dict[str, Analysis] | None = None,
        story_keys: dict[str, StoryKey] | None = None,
        analysis_errors: dict[str, str] | None = None,
    ) -> Saved:
        """One source's result, atomically: its new articles, their links to it, its state.

        An article is matched on any of its URLs (``url`` and ``aliases``); ``text_status``
        says, per URL, how fetching its page went ("ok", "robots", "error: ...");
        ``analysis_errors`` why an article was not analysed (it is stored all the same).
        """
        text_status = text_status or {}
        analyses = analyses or {}
        analysis_errors = analysis_errors or {}
        story_keys = story_keys or {}
        stamp = iso(now)
        new = new_stories = 0
        with self._write(f"saving source {outcome.source_id}") as db:
            for article in articles:
                article_id, created, filled = _write_article(
                    db, article, status=text_status.get(article.url), now=now
                )
                new += created
                if created or filled:
                    _write_article_analysis(
                        db,
                        article_id,
                        analyses.get(article.url),
                        analysis_errors.get(article.url),
                        stamp=stamp,
                    )
                _write_copies(
                    db, article_id, article, outcome.source_id, run_id=run_id, stamp=stamp
                )
                new_stories += _write_article_story(
                    db,
                    article_id,
                    story_keys.get(article.url) if created else None,
                    title=article.title,
                    stamp=stamp,
                )
            _write_source_state(
                db,
                outcome,
                stamp=stamp,
                etag=etag,
                last_modified=last_modified,
                next_check_at=next_check_at,
                new=new,
            )
        return Saved(new=new, seen=len(articles) - new, new_stories=new_stories)
