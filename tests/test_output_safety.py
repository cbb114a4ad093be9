"""What a hostile feed wrote stays text wherever veille shows it: Datasette pages and the
digest, both parts. And the digest reads a database while a run writes it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from datasette.app import Datasette

from pipeline.outputs.digest import Week, build, render
from pipeline.outputs.safe_csv import CsvNeutraliser
from pipeline.outputs.serve import metadata_for
from pipeline.run import run
from pipeline.settings.config import Config
from pipeline.storage.store import Store
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


FORMULA_TITLES = [
    "=cmd|' /C calc'!A0 Xenothera",
    '+HYPERLINK("https://evil.example";"Xenothera")',
    "-2+3 Xenothera, le retour",
    "@SUM(A1:A9) Xenothera",
    "\tXenothera après une tabulation",
]
FORMULA_FEED = (
    '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Formules</title>\n'
    + "".join(
        f"<item><title>{escape(title)}</title><link>{{base}}/formula/{i}.html</link>"
        f"<description>{escape(title)}, en plusieurs\nlignes</description></item>\n"
        for i, title in enumerate(FORMULA_TITLES)
    )
    + "</channel></rss>\n"
)


def test_csv_exports_neutralise_formulas_and_leave_the_rest_unchanged(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> None:
    (feed_dir / "formulas.xml").write_text(FORMULA_FEED.format(base=server.base), encoding="utf-8")
    config = write_config(
        sources=[{"id": "formulas", "kind": "feed", "url": server.url("formulas.xml")}]
    )
    assert run(config, db_path=db_path).new_articles == len(FORMULA_TITLES)
    with sqlite3.connect(db_path) as db:
        stored = [r[0] for r in db.execute("SELECT title FROM articles ORDER BY id")]
    # what is stored stays as the feed wrote it (tabs become spaces in plain text)
    assert stored[:4] == FORMULA_TITLES[:4]

    async def fetch(paths: list[str]) -> list[tuple[str, str]]:
        ds = Datasette([str(db_path)], metadata=metadata_for(db_path, protect=False))
        await ds.invoke_startup()
        out = []
        for path in paths:
            response = await ds.client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            out.append((response.headers["content-type"], response.text))
        return out

    sql = "select title, -1.5 as delta, summary from articles order by id"
    exports = asyncio.run(
        fetch(
            [
                "/veille/articles.csv?_col=title&_col=summary&_sort=id",
                "/veille/articles.csv?_col=title&_sort=id&_stream=1&_dl=1",
                "/veille/mention_details.csv",
                "/veille.csv?" + urlencode({"sql": sql}),
                "/veille.csv?" + urlencode({"sql": sql, "_header": "off"}),
            ]
        )
    )
    for kind, text in exports:
        assert kind.startswith(("text/plain", "text/csv"))
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        risky = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
        assert risky in ([], ["-1.5"] * len(FORMULA_TITLES)), risky  # a number stays a number
    sql_rows = list(csv.reader(io.StringIO(exports[3][1])))
    assert sql_rows[0] == ["title", "delta", "summary"]  # the header as the analyst wrote it
    assert [r[0] for r in sql_rows[1:5]] == ["'" + t for t in FORMULA_TITLES[:4]]
    assert sql_rows[1][2].endswith("en plusieurs lignes") or "\n" in sql_rows[1][2]
    assert next(csv.reader(io.StringIO(exports[4][1])))[0] == "'" + FORMULA_TITLES[0]
    # the HTML and JSON views show the titles as they are
    (_, html), (_, body) = asyncio.run(
        fetch(
            ["/veille/articles?_sort=id", "/veille/articles.json?_shape=array&_col=title&_sort=id"]
        )
    )
    assert "=cmd|&#39; /C calc&#39;!A0 Xenothera" in html or "=cmd|' /C calc'!A0 Xenothera" in html
    assert [r["title"] for r in json.loads(body)][:4] == FORMULA_TITLES[:4]


def test_csv_records_split_anywhere_across_chunks_are_neutralised_whole() -> None:
    rows = [
        ["title", "delta", "text"],
        ["=1+1", "-1.5", 'deux\nlignes "citées", puis =A1'],
        ["Société nantaise", "+3", "@moi\r\nici"],
        ["-", "", "\tx"],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    data = out.getvalue().encode("utf-8")
    for size in (1, 2, 3, 7, len(data)):  # cuts inside quotes, line ends and "é"
        neutraliser = CsvNeutraliser()
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        body = b"".join(
            neutraliser.feed(chunk, final=i == len(chunks) - 1) for i, chunk in enumerate(chunks)
        )
        assert list(csv.reader(io.StringIO(body.decode("utf-8")))) == [
            rows[0],
            ["'=1+1", "-1.5", 'deux\nlignes "citées", puis =A1'],
            ["Société nantaise", "+3", "'@moi\r\nici"],
            ["'-", "", "'\tx"],
        ], size
