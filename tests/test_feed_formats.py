"""Every feed a newsroom serves: JSON Feed 1.0/1.1, and entry links read as feedparser means them.

Each case is served by a real HTTP server on 127.0.0.1 and run through `run` into a
real SQLite file, except the hostile-JSON table, which is the parser's own contract.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ParseError
from pipeline.run import run
from pipeline.settings.config import Config
from pipeline.sources.parse import parse_feed_bytes, parse_feed_guarded
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.sqlite_rows import rows, source_row

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def one_feed(server: FixtureServer, write_config: WriteConfig, name: str) -> Config:
    return write_config(sources=[{"id": "feed", "kind": "feed", "url": server.url(name)}])


def stored(db_path: Path) -> dict[str, dict[str, Any]]:
    """Stored articles by title."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return {r["title"]: dict(r) for r in conn.execute("SELECT * FROM articles")}
    finally:
        conn.close()


# ---------------------------------------------------------------- JSON Feed


def test_a_json_feed_is_stored_like_an_rss_one_with_its_mentions(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    # served as text/html by the fixture server: recognised by its content, not its type
    config = write_config(
        sources=[
            {"id": "biotech-nantes", "kind": "feed", "url": server.url("biotech-nantes.json")},
            {"id": "labo-ouest", "kind": "feed", "url": server.url("labo-ouest-v1.json")},
        ]
    )
    report = run(config, db_path=db_path)
    assert report.status == "ok", [o.error for o in report.outcomes]
    assert source_row(db_path, "biotech-nantes")["last_status"] == "ok"
    articles = stored(db_path)
    assert len(articles) == 5
    phase2 = articles["Xenothera lance sa phase 2 à Nantes"]
    assert phase2["url"] == "https://www.biotech-nantes.example/2026/11/xenothera-phase-2"
    assert phase2["summary"] == (
        "La biotech nantaise Xenothera annonce le premier patient traité dans son essai de phase 2."
    )
    assert phase2["author"] == "Claire Le Goff, Yann Morvan"
    assert phase2["lang"] == "fr"  # the feed's language, "fr-FR"
    assert phase2["published_at"].startswith("2026-11-24T07:30:00")
    valneva = articles["Valneva: new data on its chikungunya vaccine"]
    # relative `url` resolved against home_page_url; `summary` wins over content_text
    assert valneva["url"] == "https://www.biotech-nantes.example/2026/11/valneva-chikungunya"
    assert (
        valneva["summary"] == "Valneva reports two-year persistence of antibodies in adolescents."
    )
    assert valneva["lang"] == "en"  # the item's own language
    assert valneva["author"] == "Rédaction Biotech Nantes"  # the feed's authors
    assert valneva["published_at"].startswith("2026-11-23T17:05:00")  # date_modified
    # a link-blog item: external_url is the page it is about
    bilan = articles["Atlanpole Biothérapies fait le bilan de l'année"]
    assert bilan["url"] == "https://www.ouest-france.example/sante/atlanpole-biotherapies-bilan"
    # JSON Feed 1.0: author object, numeric id, path-relative url
    cell = articles["Thérapie cellulaire : un nouveau site de production à Saint-Herblain"]
    assert cell["link"] == "https://labo-ouest.example/actus/billets/thérapie-cellulaire.html"
    assert cell["guid"] == "4512" and cell["author"] == "Labo Ouest"
    assert cell["summary"] == "Le site accueillera 80 personnes & ouvrira en 2027."
    # an item with no URL is kept under a key of its own, with its text
    (linkless,) = [a for a in articles.values() if a["url"].startswith("urn:veille:labo-ouest:")]
    assert linkless["summary"] == "Brève sans lien : Xénothera recrute." and not linkless["link"]
    mentioned = rows(
        db_path,
        "SELECT a.title, m.member_id FROM mentions m JOIN articles a ON a.id = m.article_id "
        "ORDER BY a.title",
    )
    assert ("Xenothera lance sa phase 2 à Nantes", "xenothera") in mentioned
    assert ("Valneva: new data on its chikungunya vaccine", "valneva") in mentioned
    assert ("", "xenothera") in mentioned  # the linkless brief, by its summary
    second = run(config, db_path=db_path)
    assert second.new_articles == 0


def _json(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


FEED_11 = "https://jsonfeed.org/version/1.1"


def test_script_and_markup_in_json_content_never_reach_the_summary() -> None:
    data = _json(
        {
            "version": FEED_11,
            "title": "<b>Titre</b>",
            "items": [
                {
                    "id": "1",
                    "url": "https://x.example/1",
                    "title": "<img src=x onerror=alert(1)>Essai",
                    "content_html": "<p>Texte<script>alert('x')</script><style>p{}</style></p>",
                }
            ],
        }
    )
    feed = parse_feed_bytes(data, headers={}, url="https://x.example/feed.json", now=NOW)
    (entry,) = feed.entries
    assert feed.title == "Titre" and entry.title == "Essai" and entry.summary == "Texte"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2, 3]", "not a feed: the body is a JSON list"),
        (b'"just a string"', "not a feed"),
        (b'{"items": [{"title": "JSON, not a feed"}]}', "not a JSON Feed"),
        (b'{"version": "https://example.org/other", "items": []}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', 'no "items" list'),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', 'no "items" list'),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "JSON is malformed"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ],
)
def test_json_that_is_not_a_usable_feed_is_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed_bytes(body, headers={}, url="https://x.example/feed.json", now=NOW)


def test_deeply_nested_json_costs_the_source_not_the_worker() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 200_000
    with pytest.raises(ParseError, match="refused: the JSON nests too deeply"):
        parse_feed_guarded(body, headers={}, url="https://x.example/feed.json")


def test_wrong_types_cost_a_field_or_an_item_never_the_feed() -> None:
    data = _json(
        {
            "version": FEED_11,
            "title": ["not", "a", "string"],
            "language": 42,
            "authors": "nobody",
            "items": [
                "a string, not an item",
                None,
                {"id": True, "url": 12, "title": {"x": 1}, "summary": ["y"]},  # nothing usable
                {
                    "id": {"nested": 1},
                    "url": "javascript:alert(1)",
                    "external_url": "https://x.example/kept",
                    "title": "Typed wrongly but usable",
                    "date_published": 1732000000,
                    "authors": [{"name": 7}, "x", {"name": "Anne"}],
                    "language": ["fr"],
                },
            ],
        }
    )
    feed = parse_feed_bytes(data, headers={}, url="https://x.example/feed.json", now=NOW)
    assert feed.title == "" and feed.lang is None and feed.skipped == 3
    (entry,) = feed.entries
    assert entry.link == "https://x.example/kept"  # the javascript: url is not a page
    assert entry.guid is None and entry.published_at is None and entry.author == "Anne"


def test_huge_strings_are_bounded() -> None:
    data = _json(
        {
            "version": FEED_11,
            "items": [
                {
                    "id": "x" * 1_000_000,
                    "url": "https://x.example/" + "a" * 5_000,
                    "title": "Titre " * 200_000,
                    "content_text": "mot " * 1_000_000,
                }
            ],
        }
    )
    (entry,) = parse_feed_bytes(data, headers={}, url="https://x.example/f", now=NOW).entries
    assert entry.link is None  # longer than any URL a page has
    assert len(entry.title) <= 1_001 and len(entry.summary) <= 5_001
    assert entry.guid is not None and len(entry.guid) == 2048


def test_json_with_a_bom_and_absurd_dates() -> None:
    data = b"\xef\xbb\xbf" + _json(
        {
            "version": "https://jsonfeed.org/version/1",
            "items": [
                {"id": "1", "url": "https://x.example/1", "date_published": "9999-12-31T00:00:00Z"},
                {
                    "id": "2",
                    "url": "https://x.example/2",
                    "date_published": "1900-01-01T00:00:00Z",
                    "date_modified": "2026-11-20T10:00:00+01:00",
                },
                {"id": "3", "url": "https://x.example/3", "date_published": "2026-11-21"},
            ],
        }
    )
    feed = parse_feed_bytes(data, headers={}, url="https://x.example/f", now=NOW)
    assert feed.version == "json10"
    first, second, third = feed.entries
    assert first.published_at is None and first.date_source == "none"
    assert second.published_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert second.date_source == "updated"
    assert third.published_at == datetime(2026, 11, 21, tzinfo=UTC)
    utf16 = b"\xff\xfe" + data[3:].decode().encode("utf-16-le")
    assert len(parse_feed_bytes(utf16, headers={}, url="https://x.example/f", now=NOW).entries) == 3


def test_duplicate_ids_in_a_json_feed_are_one_article(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    item = {"id": "same", "url": "https://x.example/dup", "title": "Doublon"}
    (feed_dir / "dup.json").write_bytes(
        _json(
            {
                "version": FEED_11,
                "items": [
                    item,
                    {**item, "title": "Doublon, second"},
                    {"id": "twin", "title": "Sans lien"},
                    {"id": "twin", "title": "Sans lien"},
                ],
            }
        )
    )
    run(one_feed(server, write_config, "dup.json"), db_path=db_path)
    assert sorted(stored(db_path)) == ["Doublon", "Sans lien"]


def test_a_json_source_past_the_entry_cap_says_how_many_were_skipped() -> None:
    data = _json(
        {
            "version": FEED_11,
            "items": [{"id": str(i), "url": f"https://x.example/{i}"} for i in range(30)],
        }
    )
    feed = parse_feed_bytes(data, headers={}, url="https://x.example/f", max_entries=10, now=NOW)
    assert len(feed.entries) == 10 and feed.skipped == 20
    # undated: the first ones; dated (oldest first here): the newest, in the feed's order
    assert [e.link for e in feed.entries] == [f"https://x.example/{i}" for i in range(10)]
    dated = _json(
        {
            "version": FEED_11,
            "items": [
                {
                    "id": str(i),
                    "url": f"https://x.example/{i}",
                    "date_published": f"2026-11-{i + 1:02d}",
                }
                for i in range(25)
            ]
            + [{"id": "undated", "url": "https://x.example/undated"}],
        }
    )
    feed = parse_feed_bytes(dated, headers={}, url="https://x.example/f", max_entries=10, now=NOW)
    assert [e.link for e in feed.entries] == [f"https://x.example/{i}" for i in range(15, 25)]
    assert feed.skipped == 16


# ---------------------------------------------------------------- entry links


ATOM = '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"{attrs}><title>Fil</title>{entries}</feed>'
RSS = '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"{attrs}><channel><title>Fil</title><link>https://fil.example/</link>{items}</channel></rss>'


def serve_and_run(
    server: FixtureServer,
    feed_dir: Path,
    write_config: WriteConfig,
    db_path: Path,
    name: str,
    body: str,
) -> dict[str, dict[str, Any]]:
    (feed_dir / name).write_text(body, encoding="utf-8")
    report = run(one_feed(server, write_config, name), db_path=db_path)
    assert report.status == "ok", [o.error for o in report.outcomes]
    return stored(db_path)


def test_atom_link_after_a_non_url_id_is_the_entry_link(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    # reddit's Atom: <id>t3_xxx</id> before <link>; feedparser keeps guidislink set
    entries = (
        "<entry><id>t3_1h2k3l</id><title>Nantes biotech raises 12 M EUR</title>"
        '<link href="https://www.reddit.com/r/biotech/comments/1h2k3l/nantes_biotech/"/>'
        "<updated>2026-11-25T10:00:00+00:00</updated></entry>"
        '<entry><link href="https://www.reddit.com/r/biotech/comments/1h2k3m/valneva/"/>'
        "<id>t3_1h2k3m</id><title>Valneva Q3</title></entry>"
    )
    articles = serve_and_run(
        server,
        feed_dir,
        write_config,
        db_path,
        "reddit.atom",
        ATOM.format(attrs="", entries=entries),
    )
    assert articles["Nantes biotech raises 12 M EUR"]["url"] == (
        "https://www.reddit.com/r/biotech/comments/1h2k3l/nantes_biotech"
    )
    assert articles["Nantes biotech raises 12 M EUR"]["guid"] == "/t3_1h2k3l"
    assert articles["Valneva Q3"]["url"] == (
        "https://www.reddit.com/r/biotech/comments/1h2k3m/valneva"
    )


def test_a_relative_guid_is_not_the_link_when_a_real_link_exists(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    items = (
        "<item><title>Relative GUID first</title><guid>/p/12</guid>"
        "<link>https://fil.example/actus/12-vraie-page.html</link></item>"
        "<item><title>Relative GUID alone</title><guid>20261125-0042</guid></item>"
    )
    articles = serve_and_run(
        server, feed_dir, write_config, db_path, "relguid.rss", RSS.format(attrs="", items=items)
    )
    assert articles["Relative GUID first"]["url"] == "https://fil.example/actus/12-vraie-page.html"
    # a GUID that is not a URL never becomes a page on the feed's host
    alone = articles["Relative GUID alone"]
    assert alone["url"].startswith("urn:veille:feed:") and not alone["link"]
    assert "127.0.0.1" not in alone["url"]


def test_a_permalink_guid_without_a_link_is_the_link(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    items = (
        '<item><title>Permalink GUID</title><guid isPermaLink="true">'
        "https://fil.example/2026/11/permalien.html</guid></item>"
        "<item><title>Default permalink GUID</title>"
        "<guid>https://fil.example/2026/11/par-defaut.html</guid></item>"
        '<item><title>Not a permalink</title><guid isPermaLink="false">'
        "https://fil.example/2026/11/pas-un-lien.html</guid></item>"
    )
    articles = serve_and_run(
        server, feed_dir, write_config, db_path, "perma.rss", RSS.format(attrs="", items=items)
    )
    assert articles["Permalink GUID"]["url"] == "https://fil.example/2026/11/permalien.html"
    assert (
        articles["Default permalink GUID"]["url"] == "https://fil.example/2026/11/par-defaut.html"
    )
    # isPermaLink="false": an identifier that happens to look like a URL, as feedparser reads it
    assert articles["Not a permalink"]["url"].startswith("urn:veille:feed:")
    assert articles["Not a permalink"]["guid"] == "https://fil.example/2026/11/pas-un-lien.html"


def test_xml_base_on_feed_and_entry_resolves_links(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    entries = (
        '<entry xml:base="2026/"><id>urn:fil:1</id><title>Entry base</title>'
        '<link href="11/thérapie.html"/></entry>'
        '<entry><id>urn:fil:2</id><title>Feed base</title><link href="apropos.html"/></entry>'
        '<entry xml:base="https://autre.example/"><id>urn:fil:3</id><title>Absolute entry base</title>'
        '<link href="/actu.html"/></entry>'
    )
    body = ATOM.format(attrs=' xml:base="https://fil.example/blog/"', entries=entries)
    articles = serve_and_run(server, feed_dir, write_config, db_path, "base.atom", body)
    assert articles["Entry base"]["link"] == "https://fil.example/blog/2026/11/thérapie.html"
    assert articles["Feed base"]["url"] == "https://fil.example/blog/apropos.html"
    assert articles["Absolute entry base"]["url"] == "https://autre.example/actu.html"


def test_alternate_link_wins_over_enclosures_and_related(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    entries = (
        "<entry><id>urn:fil:1</id><title>Podcast with a page</title>"
        '<link rel="enclosure" type="audio/mpeg" href="https://cdn.fil.example/ep1.mp3"/>'
        '<link rel="related" href="https://other.example/source"/>'
        '<link rel="alternate" type="text/html" href="https://fil.example/ep1"/>'
        '<link rel="replies" href="https://fil.example/ep1#comments"/></entry>'
        "<entry><id>urn:fil:2</id><title>Enclosure only</title>"
        '<link rel="enclosure" href="https://cdn.fil.example/ep2.mp3"/></entry>'
        "<entry><id>urn:fil:3</id><title>Two alternates</title>"
        '<link rel="alternate" type="text/html" hreflang="fr" href="https://fil.example/fr/ep3"/>'
        '<link rel="alternate" type="text/html" hreflang="en" href="https://fil.example/en/ep3"/>'
        "</entry>"
    )
    body = ATOM.format(attrs="", entries=entries)
    articles = serve_and_run(server, feed_dir, write_config, db_path, "links.atom", body)
    assert articles["Podcast with a page"]["url"] == "https://fil.example/ep1"
    # an audio file is not the article: kept by its identifier, as feedparser has no link
    assert articles["Enclosure only"]["url"].startswith("urn:veille:feed:")
    # two text/html alternates (one per language) name the same article: feedparser keeps
    # the last one, and so does veille, so that a link bare feedparser finds is stored
    assert articles["Two alternates"]["url"] == "https://fil.example/en/ep3"


def test_comments_is_never_the_link_and_feedburner_origlink_is(
    server: FixtureServer, feed_dir: Path, write_config: WriteConfig, db_path: Path
) -> None:
    items = (
        "<item><title>Only comments</title>"
        "<comments>https://fil.example/actu/42#comments</comments>"
        "<description>Un article sans lien.</description></item>"
        "<item><title>Through feedburner</title>"
        "<link>https://feeds.feedburner.example/~r/fil/~3/AbCd/</link>"
        "<feedburner:origLink>https://fil.example/2026/11/vraie-page.html</feedburner:origLink>"
        "<comments>https://fil.example/2026/11/vraie-page.html#respond</comments></item>"
    )
    attrs = ' xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0"'
    body = RSS.format(attrs=attrs, items=items)
    articles = serve_and_run(server, feed_dir, write_config, db_path, "fb.rss", body)
    assert articles["Only comments"]["url"].startswith("urn:veille:feed:")
    assert articles["Through feedburner"]["url"] == "https://fil.example/2026/11/vraie-page.html"


def test_an_id_inside_another_element_never_becomes_the_link() -> None:
    # feedparser's own suite: an <image><id> met first sets a link from it, the entry's
    # <id> then replaces the id; neither names a page
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><image><id>Valeur parasite</id>'
        b"</image><id>Bonne valeur</id><title>Imbrication</title></entry></feed>"
    )
    (entry,) = parse_feed_bytes(data, headers={}, url="https://fil.example/feed", now=NOW).entries
    assert entry.link is None and entry.guid == "/Bonne valeur"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_wide_encoding_without_a_bom_is_read(codec: str) -> None:
    text = RSS.format(
        attrs="",
        items="<item><title>Biothérapies à Nantes</title><link>https://fil.example/a</link></item>",
    ).replace('encoding="utf-8"', f'encoding="{codec[:6]}"')
    feed = parse_feed_bytes(text.encode(codec), headers={}, url="https://fil.example/f", now=NOW)
    (entry,) = feed.entries
    assert entry.title == "Biothérapies à Nantes" and entry.link == "https://fil.example/a"
