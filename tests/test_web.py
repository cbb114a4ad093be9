"""Web sources end to end: full article pages, listing pages, sitemaps, robots.txt and the
address policy, against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.run import run
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.sqlite_rows import rows as query

PARAGRAPHS = [
    "La biotech nantaise annonce une levée de fonds de douze millions d'euros pour financer "
    "le développement clinique de son anticorps polyclonal glyco-humanisé.",
    "Le tour de table est mené par un fonds régional, avec la participation des investisseurs "
    "historiques de la société, qui emploie une quarantaine de personnes sur son site.",
    "Selon sa présidente, cette opération permettra de lancer un essai de phase deux dès le "
    "printemps prochain dans plusieurs centres hospitaliers français et européens.",
    "La société travaille également avec Clean Cells, à Montaigu, pour la production des lots "
    "cliniques, un partenariat signé l'an dernier et renouvelé pour trois ans.",
]


def article_page(
    title: str, paragraphs: list[str], *, canonical: str | None = None, lang: str = "fr"
) -> str:
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>{link}
<meta property="article:published_time" content="2026-11-20T08:30:00+01:00"></head>
<body><header><nav><a href="/">Accueil</a> <a href="/eco">Économie</a> <a href="/sante">Santé</a></nav></header>
<div class="cookies">Nous utilisons des cookies pour mesurer l'audience. <button>Accepter</button></div>
<main><article><h1>{title}</h1>{body}</article>
<aside><h2>Lire aussi</h2><ul><li><a href="/x">Un autre sujet sans rapport</a></li></ul></aside></main>
<footer>Mentions légales · Tous droits réservés</footer></body></html>"""


def feed(base: str, items: list[tuple[str, str, str]]) -> str:
    """items: (title, path or absolute URL, summary)."""
    body = "".join(
        f"<item><title>{t}</title><link>{p if p.startswith('http') else base + p}</link>"
        f"<description>{s}</description><pubDate>Fri, 20 Nov 2026 08:30:00 +0100</pubDate></item>"
        for t, p, s in items
    )
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Test</title>{body}</channel></rss>'


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FixtureServer]:
    root = tmp_path / "site"
    (root / "private").mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n", encoding="utf-8")
    with FixtureServer(root) as server:
        yield server


def write(server: FixtureServer, path: str, text: str) -> None:
    target = server.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def source(server: FixtureServer, sid: str, path: str, **options: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "feed", "url": server.url(path), "fetch_articles": True, **options}


def test_member_named_only_in_the_body_is_in_the_stored_text(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "eco/xenothera.html", article_page("Xenothera lève 12 M€", PARAGRAPHS))
    write(
        site,
        "feed.rss",
        feed(site.base, [("Xenothera lève 12 M€", "/eco/xenothera.html", "Une levée de fonds.")]),
    )
    report = run(write_config(sources=[source(site, "press", "feed.rss")]), db_path=db_path)
    assert report.outcomes[0].pages_fetched == 1
    ((summary, text, status, lang),) = query(
        db_path, "SELECT summary, text, text_status, lang FROM articles"
    )
    assert "Clean Cells" not in summary and "Clean Cells" in text
    assert status == "ok" and lang == "fr"
    assert "cookies" not in text and "Lire aussi" not in text
    hits = query(
        db_path, "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?", '"Clean Cells"'
    )
    assert hits == [(1,)]


def test_a_second_run_fetches_no_article_page_again(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "eco/a.html", article_page("Premier article", PARAGRAPHS))
    write(site, "eco/b.html", article_page("Second article", PARAGRAPHS[::-1]))
    write(site, "feed.rss", feed(site.base, [("Premier article", "/eco/a.html", "Résumé.")]))
    config = write_config(sources=[source(site, "press", "feed.rss")])
    run(config, db_path=db_path)
    # the feed changes (new ETag): the old article is seen again, only the new one is fetched
    write(
        site,
        "feed.rss",
        feed(
            site.base,
            [
                ("Second article", "/eco/b.html", "Résumé."),
                ("Premier article", "/eco/a.html", "Résumé."),
            ],
        ),
    )
    second = run(config, db_path=db_path)
    assert second.outcomes[0].pages_fetched == 1
    assert len(site.requests_for("eco/a.html")) == 1 and len(site.requests_for("eco/b.html")) == 1
    assert query(db_path, "SELECT count(*) FROM articles WHERE text IS NOT NULL") == [(2,)]


def test_a_page_disallowed_by_robots_is_never_requested(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "private/secret.html", article_page("Réservé", PARAGRAPHS))
    write(
        site,
        "feed.rss",
        feed(site.base, [("Réservé aux abonnés", "/private/secret.html", "Accès limité.")]),
    )
    run(write_config(sources=[source(site, "press", "feed.rss")]), db_path=db_path)
    assert site.requests_for("private/secret.html") == []
    assert len(site.requests_for("robots.txt")) == 1
    # the entry is kept, without text, and says why
    assert query(db_path, "SELECT title, text, text_status FROM articles") == [
        ("Réservé aux abonnés", None, "robots")
    ]


def test_hostile_entry_linking_to_loopback_never_reaches_it(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    secret = site.url("secret.html")
    write(site, "secret.html", article_page("Secret", PARAGRAPHS))
    write(
        site,
        "feed.rss",
        feed(site.base, [("Lien piégé", secret, "Un lien vers une adresse interne.")]),
    )
    redirect = f"_/redirect-to?url={site.url('secret.rss')}"
    write(site, "secret.rss", feed(site.base, []))
    sources = [source(site, "press", "feed.rss"), source(site, "moved", redirect)]
    report = run(write_config(sources=sources, network={"allow_private": False}), db_path=db_path)
    assert site.requests_for("secret.html") == [] and site.requests_for("secret.rss") == []
    by_id = {o.source_id: o for o in report.outcomes}
    assert by_id["moved"].error_kind == "refused" and "127.0.0.1 is loopback" in (
        by_id["moved"].error or ""
    )
    ((status,),) = query(db_path, "SELECT text_status FROM articles")
    assert "refused to connect: 127.0.0.1 is loopback" in status
    # only the configured feed reached the server: no robots.txt, no page, no redirect target
    assert {r.path for r in site.requests} == {"/feed.rss", f"/{redirect}"}


def test_allow_private_reaches_the_same_links(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "secret.html", article_page("Secret", PARAGRAPHS))
    write(site, "feed.rss", feed(site.base, [("Lien", site.url("secret.html"), "Résumé.")]))
    run(
        write_config(sources=[source(site, "press", "feed.rss")], network={"allow_private": True}),
        db_path=db_path,
    )
    assert len(site.requests_for("secret.html")) == 1


def test_amp_and_tracking_variants_are_one_article(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    canonical = site.url("eco/xenothera.html")
    write(site, "eco/xenothera.html", article_page("Xenothera", PARAGRAPHS, canonical=canonical))
    write(site, "amp/xenothera.html", article_page("Xenothera", PARAGRAPHS, canonical=canonical))
    write(site, "mobile.rss", feed(site.base, [("Xenothera (AMP)", "/amp/xenothera.html", "AMP.")]))
    write(
        site,
        "desktop.rss",
        feed(site.base, [("Xenothera", "/eco/xenothera.html?utm_source=rss", "Web.")]),
    )
    sources = [source(site, "mobile", "mobile.rss"), source(site, "desktop", "desktop.rss")]
    config = write_config(sources=sources)
    run(config, db_path=db_path)
    # the mobile feed changes; its AMP link is already known under the canonical URL
    write(
        site,
        "mobile.rss",
        feed(site.base, [("Xenothera (AMP)", "/amp/xenothera.html", "AMP, mis à jour.")]),
    )
    again = run(config, db_path=db_path, source_ids=["mobile"])
    assert again.outcomes[0].status == "ok" and again.outcomes[0].pages_fetched == 0
    assert len(site.requests_for("amp/xenothera.html")) == 1
    assert query(db_path, "SELECT url FROM articles") == [(canonical,)]
    assert query(db_path, "SELECT count(*) FROM article_sources") == [(2,)]
    urls = {u for (u,) in query(db_path, "SELECT url FROM article_urls")}
    assert urls == {canonical, site.url("amp/xenothera.html")}


def test_listing_page_with_selectors_and_pagination(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    def listing(items: list[tuple[str, str, str]], next_page: str | None) -> str:
        blocks = "".join(
            f'<div class="release"><h2><a href="{href}">{title}</a></h2><time datetime="{day}">{day}</time></div>'
            for title, href, day in items
        )
        more = f'<a class="next" href="{next_page}">Page suivante</a>' if next_page else ""
        return f"<html><body><nav><a href='/'>Accueil</a></nav>{blocks}{more}</body></html>"

    write(
        site,
        "press/index.html",
        listing(
            [
                ("Communiqué A", "a.html", "2026-11-20"),
                ("Communiqué B", "/press/b.html", "2026-11-18"),
            ],
            "page-2.html",
        ),
    )
    write(
        site,
        "press/page-2.html",
        listing([("Communiqué C", "c.html", "2026-11-02")], "page-3.html"),
    )
    write(site, "press/page-3.html", listing([("Communiqué D", "d.html", "2026-10-01")], None))
    for name in "abcd":
        write(site, f"press/{name}.html", article_page(f"Communiqué {name.upper()}", PARAGRAPHS))
    spec = {
        "id": "ose-press",
        "kind": "page",
        "url": site.url("press/index.html"),
        "fetch_articles": True,
        "selector": "h2 a",
        "item_selector": "div.release",
        "date_selector": "time",
        "next_selector": "a.next",
        "max_pages": 2,
    }
    report = run(write_config(sources=[spec]), db_path=db_path)
    assert report.outcomes[0].status == "ok" and report.outcomes[0].entries == 3
    rows = query(
        db_path, "SELECT title, url, published_at, text IS NOT NULL FROM articles ORDER BY title"
    )
    assert [r[0] for r in rows] == ["Communiqué A", "Communiqué B", "Communiqué C"]
    assert rows[0][1] == site.url("press/a.html") and rows[0][2] == "2026-11-20T00:00:00Z"
    assert all(r[3] for r in rows)
    assert site.requests_for("press/page-3.html") == []  # max_pages: 2


def test_listing_selector_that_matches_nothing_is_an_error_on_the_source(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "press/index.html", "<html><body><p>Refonte du site en cours</p></body></html>")
    spec = {"id": "p", "kind": "page", "url": site.url("press/index.html"), "selector": "h2 a"}
    report = run(write_config(sources=[spec]), db_path=db_path)
    assert report.outcomes[0].error == "the selector 'h2 a' matches nothing on the page"


def test_sitemap_index_news_and_gzipped_sitemaps_with_an_age_limit(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    today = datetime.now(UTC).date()
    recent_day, last_week, long_ago = (today - timedelta(days=n) for n in (2, 3, 500))
    news_ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'
    write(
        site,
        "sitemap-index.xml",
        f"""<?xml version="1.0"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{site.url("news.xml")}</loc><lastmod>{recent_day}</lastmod></sitemap>
<sitemap><loc>{site.url("pages.xml.gz")}</loc></sitemap>
<sitemap><loc>{site.url("archive-2019.xml")}</loc><lastmod>{long_ago}</lastmod></sitemap>
</sitemapindex>""",
    )
    recent_item = """<url><loc>{loc}</loc><news:news><news:publication><news:name>Loire Biotech</news:name>
<news:language>fr</news:language></news:publication><news:publication_date>{day}</news:publication_date>
<news:title>{title}</news:title></news:news></url>"""
    write(
        site,
        "news.xml",
        f"""<?xml version="1.0"?><urlset {news_ns}>
{recent_item.format(loc=site.url("n/1.html"), day=f"{recent_day}T09:00:00+01:00", title="Naobios agrandit son site")}
{recent_item.format(loc=site.url("n/2.html"), day=str(long_ago), title="Ancien article")}
</urlset>""",
    )
    write(
        site,
        "pages.xml",
        f"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>{site.url("p/1.html")}</loc><lastmod>{last_week}</lastmod></url></urlset>""",
    )
    for path in ("n/1.html", "n/2.html", "p/1.html"):
        write(site, path, article_page("Article", PARAGRAPHS))
    spec = {
        "id": "loire",
        "kind": "sitemap",
        "url": site.url("sitemap-index.xml"),
        "fetch_articles": True,
        "max_age_days": 30,
    }
    report = run(write_config(sources=[spec]), db_path=db_path)
    assert report.outcomes[0].status == "ok", report.outcomes[0].error
    rows = dict(query(db_path, "SELECT url, title FROM articles"))
    assert set(rows) == {site.url("n/1.html"), site.url("p/1.html")}
    assert rows[site.url("n/1.html")] == "Naobios agrandit son site"  # the news sitemap's title
    assert site.requests_for("archive-2019.xml") == [] and site.requests_for("n/2.html") == []
    assert len(site.requests_for("pages.xml.gz")) == 1


def test_discover_prints_the_feeds_a_page_advertises(
    site: FixtureServer, write_config: WriteConfig
) -> None:
    import subprocess
    import sys

    write(
        site,
        "index.html",
        """<html><head>
<link rel="alternate" type="application/rss+xml" title="Actualités" href="/actualites/feed.xml">
<link rel="alternate" type="application/atom+xml" href="https://www.ose-immuno.example/atom.xml">
</head><body><a href="/contact">Contact</a></body></html>""",
    )
    write(site, "plain.html", "<html><body><p>Pas de flux ici.</p></body></html>")
    config = write_config(sources=[source(site, "press", "feed.rss")])
    root = Path(__file__).resolve().parent.parent

    def discover(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "discover", url, "--config", config.path],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=60,
        )

    found = discover(site.url("index.html"))
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == [
        site.url("actualites/feed.xml"),
        "https://www.ose-immuno.example/atom.xml",
    ]
    nothing = discover(site.url("plain.html"))
    assert nothing.returncode == 1 and "advertises no feed" in nothing.stderr


def test_a_site_wide_canonical_does_not_merge_different_articles(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    home = site.url("")
    write(site, "eco/a.html", article_page("Premier", PARAGRAPHS, canonical=home))
    write(site, "eco/b.html", article_page("Second", PARAGRAPHS[::-1], canonical=home))
    write(
        site,
        "feed.rss",
        feed(site.base, [("Premier", "/eco/a.html", "A."), ("Second", "/eco/b.html", "B.")]),
    )
    run(write_config(sources=[source(site, "press", "feed.rss")]), db_path=db_path)
    assert sorted(query(db_path, "SELECT title, url FROM articles")) == [
        ("Premier", site.url("eco/a.html")),
        ("Second", site.url("eco/b.html")),
    ]


def test_a_redirect_into_a_disallowed_path_is_not_followed(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "private/secret.html", article_page("Réservé", PARAGRAPHS))
    write(
        site,
        "feed.rss",
        feed(site.base, [("Déplacé", "/_/redirect/1/private/secret.html", "Lien.")]),
    )
    run(write_config(sources=[source(site, "press", "feed.rss")]), db_path=db_path)
    assert site.requests_for("private/secret.html") == []
    assert query(db_path, "SELECT text, text_status FROM articles") == [(None, "robots")]


def test_a_failed_page_is_tried_again_when_its_article_is_seen_again(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    write(site, "eco/a.html", article_page("Article", PARAGRAPHS))
    write(site, "feed.rss", feed(site.base, [("Article", "/_/flaky/1/eco/a.html", "Résumé.")]))
    config = write_config(sources=[source(site, "press", "feed.rss")], network={"retries": 0})
    run(config, db_path=db_path)
    ((text, status, attempts),) = query(
        db_path, "SELECT text, text_status, text_attempts FROM articles"
    )
    assert text is None and "HTTP 503" in status and attempts == 1
    write(
        site, "feed.rss", feed(site.base, [("Article", "/_/flaky/1/eco/a.html", "Résumé modifié.")])
    )
    run(config, db_path=db_path)
    ((text, status, attempts),) = query(
        db_path, "SELECT text, text_status, text_attempts FROM articles"
    )
    assert "Clean Cells" in text and status == "ok"


def test_pages_over_the_per_run_limit_wait_for_the_next_run(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    items = []
    for n in range(3):
        write(site, f"eco/{n}.html", article_page(f"Article {n}", PARAGRAPHS))
        items.append((f"Article {n}", f"/eco/{n}.html", "Résumé."))
    write(site, "feed.rss", feed(site.base, items))
    config = write_config(sources=[source(site, "press", "feed.rss", max_articles=2)])
    first = run(config, db_path=db_path)
    assert first.outcomes[0].pages_fetched == 2
    assert query(db_path, "SELECT count(*) FROM articles WHERE text_status LIKE 'pending%'") == [
        (1,)
    ]
    write(site, "feed.rss", feed(site.base, [*items, ("Article 9", "/eco/0.html?v=9", "Autre.")]))
    run(config, db_path=db_path)
    assert query(db_path, "SELECT count(*) FROM articles WHERE text IS NULL") == [(0,)]


def test_an_unchanged_sitemap_index_still_reads_its_children(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    today = datetime.now(UTC).date()
    write(
        site,
        "index.xml",
        f"""<?xml version="1.0"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{site.url("news.xml")}</loc></sitemap></sitemapindex>""",
    )

    def news(*paths: str) -> str:
        urls = "".join(
            f"<url><loc>{site.url(p)}</loc><lastmod>{today}</lastmod></url>" for p in paths
        )
        return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'

    write(site, "news.xml", news("n/1.html"))
    config = write_config(sources=[{"id": "sm", "kind": "sitemap", "url": site.url("index.xml")}])
    run(config, db_path=db_path)
    write(site, "news.xml", news("n/1.html", "n/2.html"))
    run(config, db_path=db_path)
    assert {u for (u,) in query(db_path, "SELECT url FROM articles")} == {
        site.url("n/1.html"),
        site.url("n/2.html"),
    }


def test_a_long_sitemap_gives_its_newest_unknown_urls_first_run_after_run(
    site: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    now = datetime.now(UTC)

    def urlset(count: int) -> str:
        # a-0 is the newest, one minute apart; more URLs than the store is asked about at once
        rows = "".join(
            f"<url><loc>{site.url(f'a-{i}.html')}</loc>"
            f"<lastmod>{(now - timedelta(minutes=i)).strftime('%Y-%m-%dT%H:%M:%SZ')}</lastmod></url>"
            for i in range(-1 if count < 0 else 0, abs(count))
        )
        return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'

    write(site, "long.xml", urlset(1_200))
    spec = {"id": "long", "kind": "sitemap", "url": site.url("long.xml"), "max_urls": 450}
    run(write_config(sources=[spec]), db_path=db_path)
    stored = {row[0] for row in query(db_path, "SELECT url FROM articles")}
    assert stored == {site.url(f"a-{i}.html") for i in range(450)}
    # one newer URL appears: it, then the next 449 not yet stored, across the chunks
    write(site, "long.xml", urlset(-1_200))
    run(write_config(sources=[spec]), db_path=db_path)
    stored = {row[0] for row in query(db_path, "SELECT url FROM articles")}
    assert stored == {site.url(f"a-{i}.html") for i in range(-1, 899)}
