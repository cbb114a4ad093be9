"""Two news searches: Bing News links carry the publisher's URL (url=) behind per-fetch
parameters; a Google News entry, whose link leads nowhere, joins the publisher's own copy
(same outlet, same headline) whichever comes first, so the article has the text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.models import Entry
from pipeline.run import run
from pipeline.settings.config import Config, load_config
from pipeline.sources.dedupe import copy_key, site_key, to_articles, unwrap_link, without_outlet
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.sqlite_rows import rows

XENOTHERA_TITLE = "Xenothera lève 12 millions d'euros pour son anticorps polyclonal"
XENOTHERA_PATH = "economie/xenothera-leve-12-millions.html"
OUEST_SANTE = "https://www.ouest-sante.example"


def bing_feed(tid: str, counter: int) -> str:
    """A Bing News RSS answer: its links carry the publisher's URL in url=, and a click id
    and a counter that change on every fetch."""
    wrapped = (
        "http://www.bing.com/news/apiclick.aspx?ref=FexRss&amp;aid=&amp;tid={tid}&amp;url="
        "https%3a%2f%2fwww.ouest-sante.example%2f{path}%3futm_source%3dbing&amp;c={c}&amp;mkt=fr-fr"
    )
    opaque = (
        "http://www.bing.com/news/apiclick.aspx?ref=FexRss&amp;tid={tid}&amp;c={c}&amp;id=98765"
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss xmlns:News="https://www.bing.com:443/news/search?q=Xenothera&amp;format=rss" version="2.0">
<channel><title>Xenothera - BingNews</title><link>https://www.bing.com/news/search?q=Xenothera</link>
<description>Search results</description>
<item><title>{XENOTHERA_TITLE}</title>
<link>{wrapped.format(tid=tid, c=counter, path=XENOTHERA_PATH.replace("/", "%2f"))}</link>
<description>La biotech nantaise Xenothera annonce une levée de fonds.</description>
<pubDate>Thu, 19 Nov 2026 08:30:00 GMT</pubDate><News:Source>Ouest Santé</News:Source></item>
<item><title>Xenothera dans une dépêche sans lien</title>
<link>{opaque.format(tid=tid, c=counter + 1)}</link>
<description>Une dépêche.</description>
<pubDate>Thu, 19 Nov 2026 09:30:00 GMT</pubDate><News:Source>Agence Ouest</News:Source></item>
</channel></rss>
"""


GOOGLE_FEED = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>"Xenothera" - Google Actualités</title>
<link>https://news.google.com/search?q=Xenothera</link><description>Google Actualités</description>
<item><title>{XENOTHERA_TITLE} - Ouest Santé</title>
<link>https://news.google.com/rss/articles/CBMiWkFVX3lxTE5xZGVtbzJvbm5vdGhlcmV4YW1wbGU?oc=5</link>
<guid isPermaLink="false">CBMiWkFVX3lxTE5xZGVtbzJvbm5vdGhlcmV4YW1wbGU</guid>
<pubDate>Thu, 19 Nov 2026 09:00:00 GMT</pubDate>
<description>{XENOTHERA_TITLE} Ouest Santé</description>
<source url="{OUEST_SANTE}">Ouest Santé</source></item>
<item><title>Xenothera ouvre un bureau à Boston pour ses essais - Le Courrier</title>
<link>https://news.google.com/rss/articles/CBMiOtherOpaqueToken?oc=5</link>
<guid isPermaLink="false">CBMiOtherOpaqueToken</guid>
<pubDate>Thu, 19 Nov 2026 10:00:00 GMT</pubDate>
<source url="https://www.courrier.example">Le Courrier</source></item>
</channel></rss>
"""

EMPTY_FEED = '<?xml version="1.0"?><rss version="2.0"><channel><title>rien</title></channel></rss>'


# ---------------------------------------------------------------- keys, alone


def test_a_bing_link_gives_the_publisher_url_and_its_per_fetch_parameters_never_count() -> None:
    first = (
        "http://www.bing.com/news/apiclick.aspx?ref=FexRss&aid=&tid=AB12&url=https%3a%2f%2f"
        "www.zonebourse.example%2fa%2fb%3futm_source%3dbing&c=111&mkt=fr-fr"
    )
    assert unwrap_link(first) == "https://www.zonebourse.example/a/b?utm_source=bing"
    one = "http://www.bing.com/news/apiclick.aspx?ref=FexRss&tid=AB12&c=111&id=7"
    two = "http://www.bing.com/news/apiclick.aspx?ref=FexRss&tid=CD34&c=222&id=7"
    assert unwrap_link(one) == unwrap_link(two) == "http://www.bing.com/news/apiclick.aspx?id=7"
    entries = [Entry(link=link, title="t", summary="") for link in (one, two)]
    assert len(to_articles("bing", entries, unwrap=True)) == 1


def test_a_google_headline_loses_its_outlet_and_keys_like_the_publishers_copy() -> None:
    assert without_outlet(f"{XENOTHERA_TITLE} - Ouest Santé", "Ouest Santé") == XENOTHERA_TITLE
    assert without_outlet("Un titre - Autre", "Ouest Santé") == "Un titre - Autre"
    entry = Entry(
        link="https://news.google.com/rss/articles/CBMiX?oc=5",
        title=f"{XENOTHERA_TITLE} - Ouest Santé",
        summary="",
        outlet="Ouest Santé",
        outlet_url=OUEST_SANTE,
    )
    [article] = to_articles("google", [entry], unwrap=True)
    assert not article.fetchable and article.title == XENOTHERA_TITLE
    publisher = copy_key(XENOTHERA_TITLE, site_key(f"{OUEST_SANTE}/{XENOTHERA_PATH}"))
    assert (
        article.copy_key
        == publisher
        == ("ouest-sante.example|xenothera leve 12 millions d euros pour son anticorps polyclonal")
    )


# ---------------------------------------------------------------- real runs


@pytest.fixture
def sites(feed_dir: Path) -> Iterator[FixtureServer]:
    """The demo corpus with the publishers' sites on loopback (their pages can be read)."""
    for engine in ("bing", "google"):
        (feed_dir / engine).mkdir()
        (feed_dir / engine / "atlanpole-biotherapies.rss").write_text(EMPTY_FEED)
    (feed_dir / "bing" / "xenothera.rss").write_text(bing_feed("AB12", 111), encoding="utf-8")
    (feed_dir / "google" / "xenothera.rss").write_text(GOOGLE_FEED, encoding="utf-8")
    with FixtureServer(feed_dir, rewrite_hosts=True) as server:
        yield server


def _config(write_config: WriteConfig, server: FixtureServer, *, pages: bool = False) -> Config:
    return write_config(
        sources=[
            {
                "id": "ouest-sante",
                "kind": "feed",
                "name": "Ouest Santé",
                "url": server.url("ouest-sante.rss"),
                "fetch_articles": pages,
            },
            {
                "id": "bing-news",
                "kind": "search",
                "name": "Bing",
                "url": server.url("bing/{id}.rss"),
            },
            {
                "id": "google-news",
                "kind": "search",
                "name": "Google",
                "url": server.url("google/{id}.rss"),
            },
        ],
        members=[{"name": "Xenothera"}],
    )


def test_a_bing_entry_is_the_publishers_article_and_a_second_fetch_adds_nothing(
    write_config: WriteConfig, sites: FixtureServer, db_path: Path, feed_dir: Path
) -> None:
    config = _config(write_config, sites)
    run(config, db_path=db_path, source_ids=["ouest-sante", "bing-news"])
    publisher = f"{sites.base}/sites/www.ouest-sante.example/{XENOTHERA_PATH}"
    carried = rows(
        db_path,
        "SELECT a.url, a.outlet, group_concat(x.source_id) FROM articles a "
        "JOIN article_sources x ON x.article_id = a.id WHERE a.title = ? GROUP BY a.id",
        XENOTHERA_TITLE,
    )
    # one article: the publisher's URL (utm_source=bing and Bing's own parameters gone),
    # carried by the press feed and by the search
    assert len(carried) == 1
    url, _, carriers = carried[0]
    assert url == publisher and set(carriers.split(",")) == {"ouest-sante", "bing-news:xenothera"}
    opaque = rows(db_path, "SELECT url, outlet, opaque FROM articles WHERE title LIKE '%sans lien'")
    assert opaque == [("http://www.bing.com/news/apiclick.aspx?id=98765", "Agence Ouest", 1)]
    before = rows(db_path, "SELECT count(*) FROM articles")[0][0]
    # Bing answers the same entries with a new click id and counter: nothing new
    (feed_dir / "bing" / "xenothera.rss").write_text(bing_feed("ZZ99", 987), encoding="utf-8")
    report = run(config, db_path=db_path, source_ids=["bing-news"])
    assert report.new_articles == 0
    assert rows(db_path, "SELECT count(*) FROM articles")[0][0] == before


def test_a_google_entry_joins_the_publishers_article_read_before_it(
    write_config: WriteConfig, sites: FixtureServer, db_path: Path
) -> None:
    config = _config(write_config, sites)
    run(config, db_path=db_path, source_ids=["ouest-sante"])
    [(article_id, url)] = rows(
        db_path, "SELECT id, url FROM articles WHERE title = ?", XENOTHERA_TITLE
    )
    report = run(config, db_path=db_path, source_ids=["google-news"])
    assert report.new_articles == 1  # the other entry, which nothing else carries
    # the Google entry is a copy of that article, not a story neighbour: the same row
    assert rows(db_path, "SELECT id, url FROM articles WHERE title = ?", XENOTHERA_TITLE) == [
        (article_id, url)
    ]
    known_by = {
        u for (u,) in rows(db_path, "SELECT url FROM article_urls WHERE article_id = ?", article_id)
    }
    assert (
        "https://news.google.com/rss/articles/CBMiWkFVX3lxTE5xZGVtbzJvbm5vdGhlcmV4YW1wbGU?oc=5"
        in known_by
    )
    carriers = {
        s
        for (s,) in rows(
            db_path, "SELECT source_id FROM article_sources WHERE article_id = ?", article_id
        )
    }
    assert carriers == {"ouest-sante", "google-news:xenothera"}
    # the entry nobody else carries stays as it is: title, outlet, no text
    assert rows(
        db_path, "SELECT outlet, opaque, text FROM articles WHERE title LIKE 'Xenothera ouvre%'"
    ) == [("Le Courrier", 1, None)]


def test_the_publishers_copy_read_after_a_google_entry_gives_it_its_url_and_text(
    write_config: WriteConfig, sites: FixtureServer, db_path: Path
) -> None:
    config = _config(write_config, sites, pages=True)
    run(config, db_path=db_path, source_ids=["google-news"])
    [(article_id, url, opaque, text)] = rows(
        db_path, "SELECT id, url, opaque, text FROM articles WHERE title = ?", XENOTHERA_TITLE
    )
    assert url.startswith("https://news.google.com/") and opaque == 1 and text is None
    run(config, db_path=db_path, source_ids=["ouest-sante"])
    [(same_id, url, opaque, text, outlet)] = rows(
        db_path,
        "SELECT id, url, opaque, text, outlet FROM articles WHERE title = ?",
        XENOTHERA_TITLE,
    )
    assert same_id == article_id
    assert url == f"{sites.base}/sites/www.ouest-sante.example/{XENOTHERA_PATH}"
    assert opaque == 0 and text and "Xenothera" in text and outlet == "Ouest Santé"
    # analysed again with its text: the page names the cluster, which the headline does not
    named = rows(db_path, "SELECT member_id FROM mentions WHERE article_id = ?", article_id)
    assert {m for (m,) in named} == {"xenothera", "atlanpole-biotherapies"}
    assert (
        rows(db_path, "SELECT count(*) FROM stories")[0][0]
        == rows(db_path, "SELECT count(DISTINCT story_id) FROM articles")[0][0]
    )


def test_the_shipped_configuration_searches_google_news_and_bing_news() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "sources.yaml")
    searches = {spec.id: spec.url for spec in config.specs if spec.kind == "search"}
    assert set(searches) == {"google-news", "bing-news"}
    assert "format=rss" in searches["bing-news"] and "{query}" in searches["bing-news"]
