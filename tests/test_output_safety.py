"""What a hostile feed wrote stays text wherever veille shows it: Datasette pages and the
digest, both parts. And the digest reads a database while a run writes it."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from datasette.app import Datasette

from pipeline.config import Config
from pipeline.digest import Week, build, render
from pipeline.run import run
from pipeline.serve import metadata_for
from pipeline.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer

SCRIPT_TITLE = "<script>alert('t')</script>Xenothera <img src=x onerror=alert(1)>"
HOSTILE_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile</title><link>http://127.0.0.1/</link>
<item>
  <title>&amp;lt;script&amp;gt;alert('t')&amp;lt;/script&amp;gt;Xenothera lève 3 M€ &amp;lt;img src=x onerror=alert(1)&amp;gt;</title>
  <link>{base}/hostile/one.html</link>
  <description>&amp;lt;a href="javascript:alert(1)"&amp;gt;Xenothera&amp;lt;/a&amp;gt; &amp;lt;iframe src="http://evil.example/"&amp;gt;</description>
</item>
<item>
  <title>Xenothera et le lien javascript</title>
  <link>javascript:alert(document.cookie)</link>
  <guid isPermaLink="false">js-link</guid>
  <description>Un article sur Xenothera sans lien utilisable.</description>
</item>
<item>
  <title>Xenothera &lt;b onmouseover="x()"&gt;gras&lt;/b&gt;</title>
  <link>data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==</link>
  <guid isPermaLink="false">data-link</guid>
</item>
</channel></rss>
"""


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def hostile_store(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> Config:
    (feed_dir / "hostile.xml").write_text(HOSTILE_FEED.format(base=server.base), encoding="utf-8")
    config = write_config(
        sources=[{"id": "hostile", "kind": "feed", "url": server.url("hostile.xml")}],
        digest={"from": "veille@atlanpole.example", "recipients": ["c@atlanpole.example"]},
    )
    report = run(config, db_path=db_path)
    assert report.new_articles == 3
    return config


def test_feed_markup_is_text_in_datasette(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> None:
    hostile_store(write_config, server, feed_dir, db_path)
    with sqlite3.connect(db_path) as db:
        stored = [r[0] for r in db.execute("SELECT title FROM articles ORDER BY id")]
        urls = [r[0] for r in db.execute("SELECT url FROM articles ORDER BY id")]
    # the doubly escaped markup is stored as the text it is
    assert any("<script>alert('t')</script>" in t for t in stored)
    assert not any(u.startswith(("javascript:", "data:")) for u in urls)

    async def pages() -> list[str]:
        ds = Datasette([str(db_path)], metadata=metadata_for(db_path, protect=False))
        await ds.invoke_startup()
        out = []
        for path in (
            "/veille/articles",
            "/veille/articles/1",
            "/veille/mention_details",
            "/veille/mentions_this_week",
            "/veille/article_sources",
        ):
            response = await ds.client.get(path)
            assert response.status_code == 200, path
            out.append(response.text)
        return out

    htmls = asyncio.run(pages())
    for html in htmls:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "<iframe" not in html and 'onmouseover="x()"' not in html
        for tag, attrs in tags(html):
            assert not attrs.get("href", "").lower().startswith(("javascript:", "data:")), (
                tag,
                attrs,
            )
            assert "onerror" not in attrs and "onmouseover" not in attrs
    assert "&lt;script&gt;alert" in htmls[0]


def test_feed_markup_is_text_in_the_digest(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> None:
    config = hostile_store(write_config, server, feed_dir, db_path)
    week = Week.containing(datetime.now(UTC), config.schedule.zone)
    store = Store.open(db_path)
    try:
        rendered = render(
            config, build(config, store, week, now=datetime.now(UTC), db_name="veille")
        )
    finally:
        store.close()
    html = rendered.html
    assert "Xenothera" in html
    assert "<script>alert" not in html and "<img src=x" not in html and "<iframe" not in html
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in html
    for tag, attrs in tags(html):
        assert tag not in ("script", "img", "iframe", "b")
        if "href" in attrs:
            assert attrs["href"].startswith(("http://", "https://")), attrs
        assert not any(name.startswith("on") for name in attrs)
    # the text part shows the words and never a javascript: or data: URL on its own line
    assert "<script>alert('t')</script>Xenothera" in rendered.text
    assert not re.search(r"^\s*(javascript|data):", rendered.text, re.MULTILINE | re.IGNORECASE)


def test_the_digest_reads_while_a_run_writes(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> None:
    feeds = sorted(p.name for p in (feed_dir / "search").glob("*.rss"))
    config = write_config(
        sources=[
            {"id": f"s{i}", "kind": "feed", "url": server.url(f"search/{name}")}
            for i, name in enumerate(feeds)
        ]
        + [{"id": "ouest", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        # the feeds are dated November 2026: keep them in the current week's digest
        digest={
            "from": "veille@atlanpole.example",
            "recipients": ["c@atlanpole.example"],
            "backlog_days": 3650,
        },
    )
    Store.open(db_path).close()
    writer = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--config", config.path, "--db", str(db_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    week = Week.containing(datetime.now(UTC), config.schedule.zone)
    builds = 0
    seen: set[int] = set()
    while writer.poll() is None or builds < 3:
        store = Store.open(db_path)
        try:
            content = build(config, store, week, now=datetime.now(UTC), db_name="veille")
        finally:
            store.close()
        seen.add(content.articles)
        builds += 1
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert "locked" not in err
    assert builds >= 3 and max(seen) > 0
