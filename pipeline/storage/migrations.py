"""The schema's migrations, in order: migration N brings a database to PRAGMA user_version N.

The numbering is positional: a migration is never removed or reordered once released,
and a new one is appended at the end. :meth:`pipeline.storage.store.Store.migrate` applies the
ones a database has not seen, each in its own transaction with its version number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlite_utils


def _m1_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE sources (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            url TEXT NOT NULL,
            member_id TEXT,
            enabled INTEGER NOT NULL DEFAULT 1,
            confirmed INTEGER NOT NULL DEFAULT 1,
            in_config INTEGER NOT NULL DEFAULT 1,
            etag TEXT,
            last_modified TEXT,
            last_checked_at TEXT,
            last_success_at TEXT,
            last_status TEXT,
            last_http_status INTEGER,
            last_error TEXT,
            last_warning TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            next_check_at TEXT,
            last_new_at TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE articles (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            link TEXT,
            title TEXT NOT NULL DEFAULT '',
            summary TEXT NOT NULL DEFAULT '',
            text TEXT,
            lang TEXT,
            author TEXT,
            guid TEXT,
            outlet TEXT,
            published_at TEXT,
            first_seen_at TEXT NOT NULL,
            source_id TEXT REFERENCES sources(id),
            story_id INTEGER,
            topics TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_articles_published_at ON articles(published_at)")
    db.execute("CREATE INDEX idx_articles_first_seen_at ON articles(first_seen_at)")
    db.execute("CREATE INDEX idx_articles_source_id ON articles(source_id)")
    db.execute(
        """
        CREATE TABLE article_sources (
            article_id INTEGER NOT NULL REFERENCES articles(id),
            source_id TEXT NOT NULL REFERENCES sources(id),
            link TEXT,
            guid TEXT,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            PRIMARY KEY (article_id, source_id)
        )
        """
    )
    db.execute("CREATE INDEX idx_article_sources_source_id ON article_sources(source_id)")
    db.execute(
        """
        CREATE TABLE members (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            aliases TEXT NOT NULL DEFAULT '[]',
            kind TEXT NOT NULL,
            city TEXT,
            website TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            in_config INTEGER NOT NULL DEFAULT 1
        )
        """
    )
    db.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            pid INTEGER,
            sources_total INTEGER NOT NULL DEFAULT 0,
            sources_ok INTEGER NOT NULL DEFAULT 0,
            sources_not_modified INTEGER NOT NULL DEFAULT 0,
            sources_failed INTEGER NOT NULL DEFAULT 0,
            sources_skipped INTEGER NOT NULL DEFAULT 0,
            entries INTEGER NOT NULL DEFAULT 0,
            new_articles INTEGER NOT NULL DEFAULT 0,
            duration_s REAL,
            errors TEXT NOT NULL DEFAULT '[]'
        )
        """
    )
    # Full-text search over articles, kept in step by triggers; accents folded so
    # "biotherapies" finds "biothérapies".
    db.execute(
        """
        CREATE VIRTUAL TABLE articles_fts USING FTS5 (
            title, summary, text,
            content=[articles], content_rowid=[id],
            tokenize='unicode61 remove_diacritics 2'
        )
        """
    )
    db.execute(
        """
        CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
            INSERT INTO articles_fts (rowid, title, summary, text)
            VALUES (new.id, new.title, new.summary, new.text);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
            INSERT INTO articles_fts (articles_fts, rowid, title, summary, text)
            VALUES ('delete', old.id, old.title, old.summary, old.text);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER articles_au AFTER UPDATE ON articles BEGIN
            INSERT INTO articles_fts (articles_fts, rowid, title, summary, text)
            VALUES ('delete', old.id, old.title, old.summary, old.text);
            INSERT INTO articles_fts (rowid, title, summary, text)
            VALUES (new.id, new.title, new.summary, new.text);
        END
        """
    )


def _m2_article_urls(db: sqlite_utils.Database) -> None:
    """Every canonical URL an article is known by (feed link, rel=canonical, AMP page)."""
    db.execute(
        """
        CREATE TABLE article_urls (
            url TEXT PRIMARY KEY,
            article_id INTEGER NOT NULL REFERENCES articles(id)
        )
        """
    )
    db.execute("CREATE INDEX idx_article_urls_article_id ON article_urls(article_id)")
    db.execute("INSERT INTO article_urls (url, article_id) SELECT url, id FROM articles")
    db.execute("ALTER TABLE articles ADD COLUMN text_status TEXT")


def _m3_mentions(db: sqlite_utils.Database) -> None:
    """Who is named in which article; money tied to a member; articles.topics is JSON."""
    db.execute(
        """
        CREATE TABLE mentions (
            article_id INTEGER NOT NULL REFERENCES articles(id),
            member_id TEXT NOT NULL REFERENCES members(id),
            alias TEXT NOT NULL,
            count INTEGER NOT NULL,
            in_title INTEGER NOT NULL,
            snippet TEXT NOT NULL,
            PRIMARY KEY (article_id, member_id)
        )
        """
    )
    db.execute("CREATE INDEX idx_mentions_member_id ON mentions(member_id)")
    db.execute(
        """
        CREATE TABLE fundings (
            id INTEGER PRIMARY KEY,
            article_id INTEGER NOT NULL REFERENCES articles(id),
            member_id TEXT NOT NULL REFERENCES members(id),
            amount REAL NOT NULL,
            currency TEXT NOT NULL,
            amount_eur REAL,
            phrase TEXT NOT NULL,
            UNIQUE (article_id, member_id, amount, currency)
        )
        """
    )
    db.execute("CREATE INDEX idx_fundings_member_id ON fundings(member_id)")


def _m4_text_attempts(db: sqlite_utils.Database) -> None:
    """How many times an article's page was tried: failed pages are retried a few times."""
    db.execute("ALTER TABLE articles ADD COLUMN text_attempts INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "UPDATE articles SET text_attempts = 1 WHERE text_status IS NOT NULL "
        "AND text_status NOT LIKE 'pending%'"
    )


def _m5_stories(db: sqlite_utils.Database) -> None:
    """Syndicated copies grouped into stories; MinHash signatures and LSH bands to find them."""
    db.execute(
        """
        CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            article_count INTEGER NOT NULL DEFAULT 0,
            outlets TEXT NOT NULL DEFAULT '[]'
        )
        """
    )
    db.execute(
        """
        CREATE TABLE article_signatures (
            article_id INTEGER PRIMARY KEY REFERENCES articles(id),
            scheme TEXT NOT NULL,
            seed INTEGER NOT NULL,
            num_perm INTEGER NOT NULL,
            text_hash TEXT NOT NULL,
            title_key TEXT NOT NULL,
            signature BLOB
        )
        """
    )
    db.execute("CREATE INDEX idx_article_signatures_text_hash ON article_signatures(text_hash)")
    db.execute("CREATE INDEX idx_article_signatures_title_key ON article_signatures(title_key)")
    db.execute(
        """
        CREATE TABLE story_bands (
            band INTEGER NOT NULL,
            hash INTEGER NOT NULL,
            article_id INTEGER NOT NULL REFERENCES articles(id),
            PRIMARY KEY (band, hash, article_id)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX idx_articles_story_id ON articles(story_id)")


def _m6_faster_bookkeeping(db: sqlite_utils.Database) -> None:
    """Re-index an article only when its title, summary or text change, not when a story
    id or the topics are set; find an article's LSH bands without scanning them all."""
    db.execute("CREATE INDEX idx_story_bands_article_id ON story_bands(article_id)")
    db.execute("DROP TRIGGER articles_au")
    db.execute(
        """
        CREATE TRIGGER articles_au AFTER UPDATE OF title, summary, text ON articles BEGIN
            INSERT INTO articles_fts (articles_fts, rowid, title, summary, text)
            VALUES ('delete', old.id, old.title, old.summary, old.text);
            INSERT INTO articles_fts (rowid, title, summary, text)
            VALUES (new.id, new.title, new.summary, new.text);
        END
        """
    )


# SQLite has no ISO-week format before 3.46: the Thursday of the week names its year
# and its week number ("2026-W48"), Monday to Sunday.
ISO_WEEK_SQL = (
    "strftime('%Y', date({d}, '-3 days', 'weekday 4')) || '-W' || "
    "printf('%02d', (CAST(strftime('%j', date({d}, '-3 days', 'weekday 4')) AS INTEGER) - 1) / 7 + 1)"
)


def _m7_views_for_analysts(db: sqlite_utils.Database) -> None:
    """The ISO week of each article, and the views Datasette users start from."""
    db.execute("ALTER TABLE articles ADD COLUMN week TEXT")
    db.execute(
        "UPDATE articles SET week = "
        + ISO_WEEK_SQL.format(d="substr(coalesce(published_at, first_seen_at), 1, 10)")
    )
    db.execute("CREATE INDEX idx_articles_week ON articles(week)")
    db.execute("CREATE INDEX idx_stories_last_seen_at ON stories(last_seen_at)")
    db.execute("CREATE INDEX idx_fundings_article_id ON fundings(article_id)")
    db.execute(
        """
        CREATE VIEW mention_details AS
        SELECT m.article_id, a.title, a.url, m.member_id, mb.name AS member, mb.kind AS member_kind,
               m.alias, m.count, m.in_title, m.snippet,
               a.source_id, s.name AS source, a.outlet, a.lang, a.topics,
               coalesce(a.published_at, a.first_seen_at) AS date, a.week,
               a.story_id, st.title AS story, st.article_count AS story_articles
        FROM mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        LEFT JOIN sources s ON s.id = a.source_id
        LEFT JOIN stories st ON st.id = a.story_id
        """
    )
    db.execute(
        """
        CREATE VIEW weekly_member_counts AS
        SELECT a.week, m.member_id, mb.name AS member,
               count(DISTINCT coalesce(a.story_id, -a.id)) AS stories,
               count(DISTINCT a.id) AS articles,
               sum(m.count) AS mentions,
               sum(m.in_title) AS in_titles
        FROM mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        GROUP BY a.week, m.member_id
        """
    )


def _m8_digests(db: sqlite_utils.Database) -> None:
    """One row per ISO week's digest: what was sent, to whom, when; what is left to send."""
    db.execute(
        """
        CREATE TABLE digests (
            week TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            generated_at TEXT,
            sending_at TEXT,
            sent_at TEXT,
            recipients TEXT NOT NULL DEFAULT '[]',
            delivered TEXT NOT NULL DEFAULT '[]',
            refused TEXT NOT NULL DEFAULT '{}',
            subject TEXT,
            message_id TEXT,
            story_count INTEGER NOT NULL DEFAULT 0,
            article_count INTEGER NOT NULL DEFAULT 0,
            mention_count INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            permanent_error INTEGER NOT NULL DEFAULT 0
        )
        """
    )


def _m9_bounded_work(db: sqlite_utils.Database) -> None:
    """Why an article was not analysed (NULL: analysed); sources a run left to the next."""
    db.execute("ALTER TABLE articles ADD COLUMN analysis_error TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN sources_deferred INTEGER NOT NULL DEFAULT 0")


# An article counts for a member while it is one: the article's date (published, else
# first seen) on or after `joined` and before `left` (NULL: no bound). For `a` and `mb`.
WHILE_MEMBER_SQL = (
    "((mb.joined IS NULL OR substr(coalesce(a.published_at, a.first_seen_at), 1, 10) >= mb.joined)"
    " AND (mb.left IS NULL OR substr(coalesce(a.published_at, a.first_seen_at), 1, 10) < mb.left))"
)


def _m10_membership(db: sqlite_utils.Database) -> None:
    """When a member joined and left the cluster (ISO dates, NULL: unknown or still one).
    The weekly counts the charts read count a member only while it is one; every mention
    stays in `mentions` and `mention_details` (with `while_member`)."""
    db.execute("ALTER TABLE members ADD COLUMN joined TEXT")
    db.execute("ALTER TABLE members ADD COLUMN left TEXT")
    db.execute("DROP VIEW mention_details")
    db.execute(
        f"""
        CREATE VIEW mention_details AS
        SELECT m.article_id, a.title, a.url, m.member_id, mb.name AS member, mb.kind AS member_kind,
               m.alias, m.count, m.in_title, m.snippet,
               a.source_id, s.name AS source, a.outlet, a.lang, a.topics,
               coalesce(a.published_at, a.first_seen_at) AS date, a.week,
               a.story_id, st.title AS story, st.article_count AS story_articles,
               {WHILE_MEMBER_SQL} AS while_member
        FROM mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        LEFT JOIN sources s ON s.id = a.source_id
        LEFT JOIN stories st ON st.id = a.story_id
        """
    )
    db.execute("DROP VIEW weekly_member_counts")
    db.execute(
        f"""
        CREATE VIEW weekly_member_counts AS
        SELECT a.week, m.member_id, mb.name AS member,
               count(DISTINCT coalesce(a.story_id, -a.id)) AS stories,
               count(DISTINCT a.id) AS articles,
               sum(m.count) AS mentions,
               sum(m.in_title) AS in_titles
        FROM mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        WHERE {WHILE_MEMBER_SQL}
        GROUP BY a.week, m.member_id
        """
    )


def _m11_mention_found_at(db: sqlite_utils.Database) -> None:
    """When each mention was first found, and the week of the digest that reported it
    (NULL until one is sent): a mention found after its week's digest went out is
    reported once, by the next digest, as found late. Mentions stored before are taken
    as found with their article and as reported with its week (ISO week in UTC, as
    `articles.week` is), so an upgrade reports none of them as late."""
    db.execute("ALTER TABLE mentions ADD COLUMN found_at TEXT")
    db.execute("ALTER TABLE mentions ADD COLUMN digest_week TEXT")
    db.execute(
        "UPDATE mentions SET found_at = (SELECT first_seen_at FROM articles a "
        "WHERE a.id = mentions.article_id)"
    )
    db.execute(
        "UPDATE mentions SET digest_week = (SELECT "
        + ISO_WEEK_SQL.format(d="substr(a.first_seen_at, 1, 10)")
        + " FROM articles a WHERE a.id = mentions.article_id)"
    )
    db.execute("CREATE INDEX idx_mentions_found_at ON mentions(found_at)")


def _m12_alerts(db: sqlite_utils.Database) -> None:
    """The alerts ledger: one row per message and destination (an Apprise URL in its
    privacy form, never its token); ``articles`` is the JSON list of the article ids the
    message tells (one story, or the stories of a summary), so a story is alerted once
    per rule whatever copies it gains. pipeline/outputs/alerts.py writes and reads it."""
    db.execute(
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            rule_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            articles TEXT NOT NULL DEFAULT '[]',
            story_count INTEGER NOT NULL DEFAULT 1,
            destination TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            body TEXT NOT NULL DEFAULT '',
            url TEXT,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            sending_at TEXT,
            sent_at TEXT,
            last_error TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_alerts_rule_status ON alerts(rule_id, status)")
    db.execute("CREATE INDEX idx_alerts_created_at ON alerts(created_at)")


def _m13_text_state(db: sqlite_utils.Database) -> None:
    """The state of an article's page in a column of its own (ok, robots, error, pending:
    pipeline.models.PageState), so that no query reads it from the start of text_status,
    which keeps the sentence with its reason. Filled here from the sentences stored."""
    db.execute("ALTER TABLE articles ADD COLUMN text_state TEXT")
    db.execute(
        """
        UPDATE articles SET text_state = CASE
            WHEN text_status = 'ok' OR text_status LIKE 'ok:%' THEN 'ok'
            WHEN text_status = 'robots' OR text_status LIKE 'robots:%' THEN 'robots'
            WHEN text_status = 'pending' OR text_status LIKE 'pending:%' THEN 'pending'
            ELSE 'error'
        END
        WHERE text_status IS NOT NULL
        """
    )


def _m14_story_indexes(db: sqlite_utils.Database) -> None:
    """What placing an article in a story reads of the other articles, from indexes.

    ``outlet``, ``story_id`` and the dates come after ``text`` in an article's row, so
    reading them from the table walks the text's overflow pages: for every copy of a
    story each time a copy joins it (its outlets), and for every candidate copy of every
    new article (its story and date). On long pages that was most of a first run's
    SQLite time. (story_id, outlet) also serves what the index on story_id did."""
    db.execute("CREATE INDEX idx_articles_story_outlet ON articles(story_id, outlet)")
    db.execute("DROP INDEX idx_articles_story_id")
    db.execute(
        "CREATE INDEX idx_articles_candidates ON articles(id, story_id, published_at, first_seen_at)"
    )


# The mentions as the team judged them (pipeline/outputs/review.py writes the verdicts):
# a story dropped names nobody; a member rejected on a story is not named by any of its
# copies (those the matcher found; one the team added stays); the rest as found. Every
# reader of mentions (digest, alerts, Atom feeds, canned queries, dashboards) reads this.
# A verdict is keyed by an article's canonical URL and applies to the story that article
# is in now, so it holds after `veille restory` and for copies that arrive later.
# The copies judged are read once per query (uncorrelated subqueries), then each mention
# is an index probe: the view joins nothing, so the readers' own indexes still serve them.
JUDGED_MENTIONS_SQL = """
CREATE VIEW judged_mentions AS
SELECT m.article_id, m.member_id, m.alias, m.count, m.in_title, m.snippet, m.found_at,
       m.digest_week, m.origin
FROM mentions m
WHERE m.article_id NOT IN
        (SELECT b.id FROM verdict_stories v
         JOIN articles b ON b.story_id = v.story_key OR b.id = -v.story_key
         WHERE v.action = 'drop')
  AND (m.origin = 'desk' OR (m.article_id, m.member_id) NOT IN
        (SELECT b.id, v.member_id FROM verdict_stories v
         JOIN articles b ON b.story_id = v.story_key OR b.id = -v.story_key
         WHERE v.action = 'reject'))
"""


def _m15_verdicts(db: sqlite_utils.Database) -> None:
    """The team's verdicts, one row each, never edited or deleted (an undo is a verdict
    that names the one it undoes); mentions added by hand (``origin = 'desk'``); the views
    that read mentions as judged."""
    db.execute(
        """
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            by TEXT NOT NULL,
            action TEXT NOT NULL
                CHECK (action IN
                    ('reject', 'drop', 'highlight', 'add', 'undo', 'approve', 'article')),
            url TEXT,
            member_id TEXT,
            week TEXT,
            comment TEXT,
            undoes INTEGER REFERENCES verdicts(id),
            CHECK (action NOT IN ('reject', 'drop', 'highlight', 'add', 'article')
                   OR url IS NOT NULL),
            CHECK (action NOT IN ('reject', 'add') OR member_id IS NOT NULL),
            CHECK (action != 'approve' OR week IS NOT NULL),
            CHECK (action != 'undo' OR undoes IS NOT NULL)
        )
        """
    )
    db.execute("CREATE INDEX idx_verdicts_url ON verdicts(url)")
    db.execute("CREATE INDEX idx_verdicts_undoes ON verdicts(undoes)")
    db.execute(
        "CREATE TRIGGER verdicts_never_edited BEFORE UPDATE ON verdicts BEGIN "
        "SELECT RAISE(ABORT, 'verdicts are never edited: record a new one'); END"
    )
    db.execute(
        "CREATE TRIGGER verdicts_never_deleted BEFORE DELETE ON verdicts BEGIN "
        "SELECT RAISE(ABORT, 'verdicts are never deleted: record an undo'); END"
    )
    db.execute("ALTER TABLE mentions ADD COLUMN origin TEXT NOT NULL DEFAULT 'matcher'")
    db.execute(
        """
        CREATE VIEW live_verdicts AS
        SELECT v.* FROM verdicts v
        WHERE v.action != 'undo'
          AND NOT EXISTS (SELECT 1 FROM verdicts u WHERE u.undoes = v.id AND u.action = 'undo')
        """
    )
    db.execute(
        """
        CREATE VIEW verdict_stories AS
        SELECT v.id AS verdict_id, v.action, v.member_id, v.comment, v.at, v.by,
               a.id AS article_id, coalesce(a.story_id, -a.id) AS story_key
        FROM live_verdicts v JOIN articles a ON a.url = v.url
        """
    )
    db.execute(JUDGED_MENTIONS_SQL)
    db.execute(
        """
        CREATE VIEW verdict_log AS
        SELECT v.id, v.at, v.by, v.action, v.url, a.title, v.member_id, mb.name AS member,
               v.week, v.comment, v.undoes,
               (SELECT u.id FROM verdicts u WHERE u.undoes = v.id AND u.action = 'undo')
                   AS undone_by
        FROM verdicts v
        LEFT JOIN articles a ON a.url = v.url
        LEFT JOIN members mb ON mb.id = v.member_id
        """
    )
    for view in ("mention_details", "weekly_member_counts"):
        db.execute(f"DROP VIEW {view}")
    db.execute(
        f"""
        CREATE VIEW mention_details AS
        SELECT m.article_id, a.title, a.url, m.member_id, mb.name AS member, mb.kind AS member_kind,
               m.alias, m.count, m.in_title, m.snippet,
               a.source_id, s.name AS source, a.outlet, a.lang, a.topics,
               coalesce(a.published_at, a.first_seen_at) AS date, a.week,
               a.story_id, st.title AS story, st.article_count AS story_articles,
               {WHILE_MEMBER_SQL} AS while_member, m.origin
        FROM judged_mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        LEFT JOIN sources s ON s.id = a.source_id
        LEFT JOIN stories st ON st.id = a.story_id
        """
    )
    db.execute(
        f"""
        CREATE VIEW weekly_member_counts AS
        SELECT a.week, m.member_id, mb.name AS member,
               count(DISTINCT coalesce(a.story_id, -a.id)) AS stories,
               count(DISTINCT a.id) AS articles,
               sum(m.count) AS mentions,
               sum(m.in_title) AS in_titles
        FROM judged_mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        WHERE {WHILE_MEMBER_SQL}
        GROUP BY a.week, m.member_id
        """
    )


def _m16_reports(db: sqlite_utils.Database) -> None:
    """One row per scheduled report sent (a month or a quarter: ``2026-11``, ``2026-Q4``):
    who has it, when; a period is mailed once, as a week's digest is
    (pipeline/outputs/report_send.py). Reports written to files leave no row.

    And an index that holds what the report reads of a period's articles: those columns
    come after ``text`` in a row, so reading them from the table walks the text's overflow
    pages (a year of 60,000 articles of 6 KB: 4.9 s from a cold cache, 2.2 s with it)."""
    db.execute(
        "CREATE INDEX idx_articles_report ON articles"
        "(published_at, first_seen_at, story_id, source_id, outlet, topics, url)"
    )
    db.execute(
        """
        CREATE TABLE reports (
            period TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            language TEXT,
            compare TEXT,
            generated_at TEXT,
            sending_at TEXT,
            sent_at TEXT,
            recipients TEXT NOT NULL DEFAULT '[]',
            delivered TEXT NOT NULL DEFAULT '[]',
            refused TEXT NOT NULL DEFAULT '{}',
            subject TEXT,
            message_id TEXT,
            story_count INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            permanent_error INTEGER NOT NULL DEFAULT 0
        )
        """
    )


# Press coverage (earned media) apart from what the members and the cluster publish
# themselves (owned media, pipeline/analysis/owned.py): every count of coverage (share of
# voice, the digest's figures, the dashboards) reads only the articles this holds for.
# For `a`, the articles table.
EARNED_SQL = "a.owned = 0"


def _owner_backfill(db: sqlite_utils.Database) -> int:
    """Articles on the cluster's or a member's website, as owned by it (the sources'
    owners come from sources.yaml, written by the next run: pipeline/storage/store.py
    then marks their articles too). The number of articles marked."""
    from pipeline.analysis.owned import Owners

    owners = Owners.build(
        (website, member_id)
        for member_id, website in db.execute(
            "SELECT id, website FROM members WHERE website IS NOT NULL "
            "AND kind IN ('member', 'cluster')"
        ).fetchall()
    )
    if not owners.sites:
        return 0
    marked = [
        (owner, article_id)
        for article_id, url in db.execute("SELECT id, url FROM articles").fetchall()
        if (owner := owners.owner_of(url)) is not None
    ]
    db.conn.executemany("UPDATE articles SET owner = ?, owned = 1 WHERE id = ?", marked)
    return len(marked)


def _m17_owned(db: sqlite_utils.Database) -> None:
    """Owned vs earned: who owns an article (a member's or the cluster's id, NULL for
    press coverage) and whether it is owned; the owner of a source (a member's own
    newsroom). The weekly counts the charts read are press coverage, the members' own
    releases counted apart; mention_details says which is which."""
    db.execute("ALTER TABLE articles ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE articles ADD COLUMN owned INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE sources ADD COLUMN owner TEXT")
    db.execute("CREATE INDEX idx_articles_owner ON articles(owner)")
    _owner_backfill(db)
    for view in ("mention_details", "weekly_member_counts"):
        db.execute(f"DROP VIEW {view}")
    db.execute(
        f"""
        CREATE VIEW mention_details AS
        SELECT m.article_id, a.title, a.url, m.member_id, mb.name AS member, mb.kind AS member_kind,
               m.alias, m.count, m.in_title, m.snippet,
               a.source_id, s.name AS source, a.outlet, a.lang, a.topics,
               coalesce(a.published_at, a.first_seen_at) AS date, a.week,
               a.story_id, st.title AS story, st.article_count AS story_articles,
               {WHILE_MEMBER_SQL} AS while_member, m.origin, a.owned, a.owner
        FROM judged_mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        LEFT JOIN sources s ON s.id = a.source_id
        LEFT JOIN stories st ON st.id = a.story_id
        """
    )
    story = "coalesce(a.story_id, -a.id)"
    db.execute(
        f"""
        CREATE VIEW weekly_member_counts AS
        SELECT a.week, m.member_id, mb.name AS member,
               count(DISTINCT CASE WHEN {EARNED_SQL} THEN {story} END) AS stories,
               count(DISTINCT CASE WHEN {EARNED_SQL} THEN a.id END) AS articles,
               coalesce(sum(CASE WHEN {EARNED_SQL} THEN m.count END), 0) AS mentions,
               coalesce(sum(CASE WHEN {EARNED_SQL} THEN m.in_title END), 0) AS in_titles,
               count(DISTINCT CASE WHEN NOT ({EARNED_SQL}) THEN {story} END) AS releases
        FROM judged_mentions m
        JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        WHERE {WHILE_MEMBER_SQL}
        GROUP BY a.week, m.member_id
        """
    )


def _m18_news_search_copies(db: sqlite_utils.Database) -> None:
    """What joins a news-search entry to the publisher's own copy: the site the search names
    for its outlet (``outlet_url``), the outlet's site and folded headline both copies
    share (``copy_key``, pipeline/sources/dedupe.py), and whether the article's link leads
    nowhere but the aggregator (``opaque``: a Google News entry). Filled here for the
    stored articles: their headline without the " - Outlet" a search appends, and the site
    of their URL (or of nothing, for an opaque entry, whose outlet's site was not kept)."""
    from pipeline.sources.dedupe import copy_key, site_key, without_outlet

    db.execute("ALTER TABLE articles ADD COLUMN outlet_url TEXT")
    db.execute("ALTER TABLE articles ADD COLUMN copy_key TEXT")
    db.execute("ALTER TABLE articles ADD COLUMN opaque INTEGER NOT NULL DEFAULT 0")
    rows = db.execute(
        "SELECT a.id, a.url, a.title, a.outlet, s.kind, a.text_status, a.text "
        "FROM articles a LEFT JOIN sources s ON s.id = a.source_id"
    ).fetchall()
    updates = []
    for article_id, url, title, outlet, kind, status, text in rows:
        search = kind == "search"
        # a news-search entry whose page was never asked for: its link led to the aggregator
        opaque = search and status is None and text is None
        headline = without_outlet(title or "", outlet) if search else title or ""
        updates.append(
            (None if opaque else copy_key(headline, site_key(url)), int(opaque), article_id)
        )
    db.conn.executemany("UPDATE articles SET copy_key = ?, opaque = ? WHERE id = ?", updates)
    db.execute("CREATE INDEX idx_articles_copy_key ON articles(copy_key)")


MIGRATIONS: Sequence[Callable[[sqlite_utils.Database], None]] = (
    _m1_initial,
    _m2_article_urls,
    _m3_mentions,
    _m4_text_attempts,
    _m5_stories,
    _m6_faster_bookkeeping,
    _m7_views_for_analysts,
    _m8_digests,
    _m9_bounded_work,
    _m10_membership,
    _m11_mention_found_at,
    _m12_alerts,
    _m13_text_state,
    _m14_story_indexes,
    _m15_verdicts,
    _m16_reports,
    _m17_owned,
    _m18_news_search_copies,
)
