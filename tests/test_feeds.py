"""veille's own Atom feeds (datasette-atom on canned queries): a member's news, funding
events, every mention. Real Datasette clients on databases built by real runs or the
store's save methods; every feed read back with feedparser."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from datasette.app import Datasette

from pipeline.analysis.analyse import Analysis, Funding
from pipeline.analysis.mentions import ArticleMention
from pipeline.models import Article, SourceOutcome
from pipeline.outputs.serve import load_metadata, metadata_for
from pipeline.run import remention, run
from pipeline.settings.config import Config, load_config
from pipeline.storage.store import Store
from tests.conftest import DEMO_FEEDS
from tests.fixture_server import FixtureServer
from tests.sqlite_rows import rows as query
from tests.test_datasette import FEEDS, write_demo_config

ROOT = Path(__file__).resolve().parent.parent
FEED_QUERIES = ("member_feed", "mentions_feed", "funding_feed")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Config]]:
    """A database built by a real run over the demo feeds, and its configuration."""
    tmp = tmp_path_factory.mktemp("feeds")
    www = tmp / "www"
    shutil.copytree(DEMO_FEEDS, www)
    db_path = tmp / "veille.db"
    with FixtureServer(www, rewrite_hosts=True) as server:
        config = load_config(write_demo_config(tmp / "sources.yaml", server, FEEDS))
        run(config, db_path=db_path)
    yield db_path, config


@pytest.fixture
def writable(built: tuple[Path, Config], tmp_path: Path) -> tuple[Path, Config]:
    """The built database copied, for a test that writes to it."""
    db_path = tmp_path / "veille.db"
    shutil.copy(built[0], db_path)
    return db_path, built[1]


def fetch(db_path: Path, *paths: str) -> list[tuple[int, str, str]]:
    """(status, content type, body) of each path, from one Datasette started on db_path."""

    async def go() -> list[tuple[int, str, str]]:
        ds = Datasette([str(db_path)], metadata=metadata_for(db_path, protect=False))
        await ds.invoke_startup()
        answers = []
        for path in paths:
            response = await ds.client.get(path)
            answers.append(
                (response.status_code, response.headers.get("content-type", ""), response.text)
            )
        return answers

    return asyncio.run(go())


def feed(db_path: Path, path: str) -> Any:
    """The feed at path, parsed: a 200 with an XML type, and nothing feedparser complains of."""
    ((status, kind, body),) = fetch(db_path, path)
    assert status == 200, body[:500]
    assert kind.startswith("application/xml"), kind
    parsed = feedparser.parse(body.encode("utf-8"))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def ids_and_dates(parsed: Any) -> list[tuple[str, str]]:
    return [(e.id, e.updated) for e in parsed.entries]


# ---------------------------------------------------------------- what each feed carries


def test_every_mention_feed_has_one_entry_per_article_and_member(
    built: tuple[Path, Config],
) -> None:
    db_path, _ = built
    parsed = feed(db_path, "/veille/mentions_feed.atom")
    stored = query(
        db_path,
        "SELECT mb.name, a.title, a.url FROM mentions m JOIN articles a ON a.id = m.article_id "
        "JOIN members mb ON mb.id = m.member_id",
    )
    assert 10 < len(stored) <= 500  # all of them fit in the feed
    assert parsed.feed.title == "Every mention (Atom)"
    assert sorted((e.title, e.link) for e in parsed.entries) == sorted(
        (f"{name} — {title}", url) for name, title, url in stored
    )
    assert len({e.id for e in parsed.entries}) == len(stored)
    assert all(
        e.id.startswith("tag:atlanpolebiotherapies.com,2026:veille/") for e in parsed.entries
    )
    xeno = next(e for e in parsed.entries if e.title.startswith("Xenothera — Xenothera lève"))
    assert "Xenothera" in xeno.summary and xeno.author  # the snippet, and the outlet as author
    # newest found first
    dates = [e.updated_parsed for e in parsed.entries]
    assert dates == sorted(dates, reverse=True)


def test_a_members_feed_has_one_entry_per_story_naming_it(built: tuple[Path, Config]) -> None:
    db_path, _ = built
    stories = query(
        db_path,
        "SELECT DISTINCT coalesce(a.story_id, -a.id) FROM mentions m "
        "JOIN articles a ON a.id = m.article_id WHERE m.member_id = 'xenothera'",
    )
    urls = {
        r[0]
        for r in query(
            db_path,
            "SELECT a.url FROM mentions m JOIN articles a ON a.id = m.article_id "
            "WHERE m.member_id = 'xenothera'",
        )
    }
    parsed = feed(db_path, "/veille/member_feed.atom?member=xenothera")
    assert parsed.feed.title == "A member's news (Atom)"
    assert len(parsed.entries) == len(stories) > 1
    assert {e.link for e in parsed.entries} <= urls
    assert all(e.summary.startswith("Xenothera · ") for e in parsed.entries)
    assert any(e.title.startswith("Xenothera lève") for e in parsed.entries)
    # by name too, as the other per-member queries
    assert ids_and_dates(feed(db_path, "/veille/member_feed.atom?member=Xenothera")) == (
        ids_and_dates(parsed)
    )
    # another member's feed carries only its stories; a story naming both has one id
    valneva = feed(db_path, "/veille/member_feed.atom?member=valneva")
    named = {
        r[0]
        for r in query(
            db_path,
            "SELECT a.url FROM mentions m JOIN articles a ON a.id = m.article_id "
            "WHERE m.member_id = 'valneva'",
        )
    }
    assert valneva.entries and {e.link for e in valneva.entries} <= named
    assert {e.id for e in valneva.entries} != {e.id for e in parsed.entries}


def test_the_funding_feed_has_one_entry_per_amount(built: tuple[Path, Config]) -> None:
    db_path, _ = built
    count = query(db_path, "SELECT count(*) FROM fundings")[0][0]
    parsed = feed(db_path, "/veille/funding_feed.atom")
    assert count > 0 and len(parsed.entries) == count
    stored = query(
        db_path,
        "SELECT a.url, f.phrase FROM fundings f JOIN articles a ON a.id = f.article_id "
        "WHERE f.member_id = 'xenothera' AND f.amount = 12000000 AND f.currency = 'EUR'",
    )
    xeno = [e for e in parsed.entries if e.title.startswith("Xenothera — 12 M EUR — ")]
    assert sorted((e.link, e.summary) for e in xeno) == sorted(stored)  # one per article
    assert len(stored) > 1 and any("12 millions" in phrase for _, phrase in stored)


# ---------------------------------------------------------------- no rows


def test_an_empty_database_gives_empty_valid_feeds(db_path: Path) -> None:
    Store.open(db_path).close()
    titles = load_metadata()["databases"]["veille"]["queries"]
    for name in FEED_QUERIES:
        parsed = feed(db_path, f"/veille/{name}.atom?member=xenothera")
        assert parsed.entries == [] and parsed.feed.title == titles[name]["title"]
        assert parsed.feed.updated  # a valid Atom feed is dated


def test_a_member_without_news_and_an_unknown_member_give_empty_feeds(
    writable: tuple[Path, Config],
) -> None:
    db_path, _ = writable
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO members (id, name, kind) VALUES ('discret', 'Discret', 'member')")
    conn.commit()
    conn.close()
    assert feed(db_path, "/veille/member_feed.atom?member=discret").entries == []
    assert feed(db_path, "/veille/member_feed.atom?member=nobody").entries == []
    assert feed(db_path, "/veille/member_feed.atom?member=").entries == []


# ---------------------------------------------------------------- stable ids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _served(db_path: Path, path: str) -> bytes:
    """The body of path from `veille datasette` run as its own process, then stopped."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "datasette", "--db", str(db_path), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "Datasette did not start"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return bytes(r.read())
            except OSError:
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_entry_ids_and_dates_stay_the_same_across_requests_restarts_and_remention(
    writable: tuple[Path, Config],
) -> None:
    db_path, config = writable
    paths = [f"/veille/{name}.atom?member=gliocure" for name in FEED_QUERIES]
    first = [ids_and_dates(feedparser.parse(body)) for _, _, body in fetch(db_path, *paths)]
    again = [ids_and_dates(feedparser.parse(body)) for _, _, body in fetch(db_path, *paths * 1)]
    assert all(first) and first == again
    # a restart: veille datasette as a process of its own
    served = [ids_and_dates(feedparser.parse(_served(db_path, path))) for path in paths[:2]]
    assert served == first[:2]
    # the analyses rewritten by `veille remention`: the same mentions, the same entries
    report = remention(config, db_path=db_path)
    assert report.mentions_after == report.mentions_before
    after = [ids_and_dates(feedparser.parse(body)) for _, _, body in fetch(db_path, *paths)]
    assert after == first


# ---------------------------------------------------------------- hostile text

HOSTILE_TITLE = (
    "<script>alert('x')</script> Xenothera &amp; <b>co</b> ]]> \x07\x1b fin =HYPERLINK(\"x\")"
)
HOSTILE_SNIPPET = "<img src=x onerror=alert(1)> Xenothera lève 3 M€ &lt;i&gt; \x00 ok"


def _save_hostile(db_path: Path, config: Config) -> None:
    """An article stored as a run would store it, with markup and controls in its text."""
    store = Store.open(db_path)
    try:
        store.sync_config(config)
        url = "https://www.ouest-sante.example/hostile.html"
        store.save_source(
            SourceOutcome(source_id="ouest-sante", status="ok"),
            [
                Article(
                    url=url,
                    link=url,
                    title=HOSTILE_TITLE,
                    summary=HOSTILE_SNIPPET,
                    source_id="ouest-sante",
                    published_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
                )
            ],
            run_id=None,
            now=datetime.now(UTC),
            next_check_at=datetime.now(UTC),
            analyses={
                url: Analysis(
                    mentions=(ArticleMention("xenothera", "Xenothera", 2, True, HOSTILE_SNIPPET),),
                    topics=(),
                    fundings=(
                        Funding("xenothera", 3_000_000, "EUR", 3_000_000, "=cmd|' /C calc'!A0"),
                    ),
                )
            },
        )
    finally:
        store.close()


def test_hostile_titles_and_snippets_stay_text_in_the_feeds_and_in_csv(
    writable: tuple[Path, Config],
) -> None:
    db_path, config = writable
    _save_hostile(db_path, config)
    visible = HOSTILE_TITLE.replace("\x07", "").replace("\x1b", "")
    for path in (
        "/veille/mentions_feed.atom",
        "/veille/member_feed.atom?member=xenothera",
        "/veille/funding_feed.atom",
    ):
        ((status, _, body),) = fetch(db_path, path)
        assert status == 200, body[:300]
        assert "<script" not in body and "<img" not in body and "<b>" not in body
        parsed = feedparser.parse(body.encode("utf-8"))
        assert not parsed.bozo, parsed.get("bozo_exception")
        entry = next(e for e in parsed.entries if visible in e.title)
        assert entry.title_detail.type == "text/plain"  # the markup is the title's text
        assert entry.content[0].type == "text/plain"
        if "funding" not in path:
            assert "<img src=x onerror=alert(1)>" in entry.content[0].value
            assert "&lt;i&gt;" in entry.content[0].value  # an entity stays as written
    # the same query as CSV: the two plugins coexist, and a formula is not one any more
    ((status, kind, body),) = fetch(db_path, "/veille/funding_feed.csv?_size=max")
    assert status == 200 and kind.startswith(("text/csv", "text/plain"))
    records = list(csv.DictReader(io.StringIO(body)))
    hostile = next(r for r in records if r["atom_content"].endswith("calc'!A0"))
    assert hostile["atom_content"] == "'=cmd|' /C calc'!A0"


# ---------------------------------------------------------------- where they are announced


def test_the_feeds_are_described_and_linked_from_the_database_page(
    built: tuple[Path, Config], tmp_path: Path
) -> None:
    db_path, _ = built
    queries = load_metadata()["databases"]["veille"]["queries"]
    for name in FEED_QUERIES:
        assert "Atom" in queries[name]["title"] and "tag:" in queries[name]["description"]
    ((status, _, page),) = fetch(db_path, "/veille")
    assert status == 200
    assert 'href="/veille/mentions_feed.atom"' in page
    assert 'href="/veille/funding_feed.atom"' in page
    # a database under another name: the links follow it
    demo = tmp_path / "demo.db"
    shutil.copy(db_path, demo)
    ((status, _, page),) = fetch(demo, "/demo")
    assert status == 200 and 'href="/demo/mentions_feed.atom"' in page
    assert feed(demo, "/demo/mentions_feed.atom").entries
    # the canned query's own page offers the .atom link
    ((status, _, page),) = fetch(db_path, "/veille/member_feed?member=xenothera")
    assert status == 200 and "member_feed.atom?member=xenothera" in page
