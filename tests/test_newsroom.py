"""`veille members newsrooms`: a simulated web of member sites on loopback (tests/newsroom_web.py),
each kind of newsroom, each trap and each hostile site; then --write and a real run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings.config import Network
from pipeline.sources.newsroom import Kind, Website, discover_all
from pipeline.sources.parse.site import read_page
from tests.conftest import FAST_NETWORK, WriteConfig
from tests.newsroom_web import Served, build_sites, serve
from tests.run_cli import veille
from tests.sqlite_rows import rows

MAX_REQUESTS_ALLOWED = 40  # the bound for a site (discovery stops itself at 30)


def _found(served: Served, kind: Kind, url: str | None) -> bool:
    site = served.site
    if kind != site.expect:
        return False
    return site.expect_path is None or (url or "").endswith(site.expect_path)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sites = build_sites()
    with serve(sites, tmp_path_factory.mktemp("web")) as served:
        network = Network(**{**FAST_NETWORK, "total_timeout": 6})
        found = asyncio.run(
            discover_all(
                [Website(s.site.name, s.site.company, s.url) for s in served], network, budget=8
            )
        )
        yield served, found


def test_every_site_with_news_gives_its_newsroom_and_the_others_none(web: Any) -> None:
    served, found = web
    with_news = [(s, f) for s, f in zip(served, found, strict=True) if s.site.has_news]
    right = [s.site.name for s, f in with_news if _found(s, f.kind, f.url)]
    assert len(right) >= 0.9 * len(with_news), [
        (s.site.name, f.kind, f.url, f.reason) for s, f in with_news if s.site.name not in right
    ]
    assert len(right) == len(with_news)  # here, every one of them
    for served_site, result in zip(served, found, strict=True):
        assert result.member == served_site.site.name
        if not served_site.site.has_news:
            assert not result.kind.found, (served_site.site.name, result)
            assert result.url is None
        assert result.reason


def test_each_kind_is_found_where_the_site_keeps_it(web: Any) -> None:
    served, found = web
    by_name = {s.site.name: f for s, f in zip(served, found, strict=True)}
    assert by_name["advertised"].kind is Kind.FEED  # <link rel=alternate>, comment feed aside
    assert "advertised by the home page" in by_name["advertised"].reason
    assert "advertised by the news page" in by_name["comment-trap"].reason
    assert "usual feed path /feed/" in by_name["wordpress-hidden"].reason
    # a comment feed known by its URL is never asked; one known by its entries is refused
    assert "usual feed path /feed/" in by_name["comment-entries"].reason
    asked = next(s for s in served if s.site.name == "comment-entries").requests()
    assert "/flux.xml" in asked and not any("comments" in p for p in asked)
    assert by_name["json-feed"].url and by_name["json-feed"].url.endswith("/feed.json")
    page = by_name["press-page"]
    assert page.kind is Kind.PAGE and page.selector == "h2.release-title a"
    assert "4 article links" in page.reason
    assert "Google News sitemap named in robots.txt" in by_name["news-sitemap"].reason
    assert "in the sitemap index" in by_name["sitemap-index"].reason
    assert by_name["bilingual"].url and "/fr/actualites/" in by_name["bilingual"].url


def test_hostile_sites_end_as_unreachable_within_their_budget(web: Any) -> None:
    served, found = web
    by_name = {s.site.name: f for s, f in zip(served, found, strict=True)}
    assert by_name["down"].kind is Kind.UNREACHABLE
    assert "connection refused" in by_name["down"].reason
    assert by_name["trickle"].kind is Kind.UNREACHABLE
    assert by_name["loop"].kind is Kind.UNREACHABLE and "redirects" in by_name["loop"].reason
    assert by_name["robots-503"].kind is Kind.UNREACHABLE
    assert "RFC 9309" in by_name["robots-503"].reason
    assert by_name["maze"].kind is Kind.NONE


def test_robots_txt_is_obeyed_and_no_site_costs_more_than_40_requests(web: Any) -> None:
    served, found = web
    for served_site, result in zip(served, found, strict=True):
        asked = served_site.requests()
        assert len(asked) <= MAX_REQUESTS_ALLOWED, (served_site.site.name, len(asked))
        assert result.requests <= 30
        for path in asked:
            if path == "/robots.txt":
                continue
            for prefix in served_site.site.forbidden:
                assert not path.startswith(prefix), (served_site.site.name, path)
    robots_all = next(s for s in served if s.site.name == "robots-all")
    assert robots_all.requests() == ["/robots.txt"]
    robots_503 = next(s for s in served if s.site.name == "robots-503")
    assert robots_503.requests() == ["/robots.txt"]
    # every request says who veille is
    agents = {r.headers.get("user-agent") for s in served if s.server for r in s.server.requests}
    assert agents == {Network(**FAST_NETWORK).agent}


def test_guessed_feed_paths_are_asked_without_following_redirects(web: Any) -> None:
    served, _ = web
    maze = next(s for s in served if s.site.name == "maze")
    asked = maze.requests()
    # every guessed path redirects into the maze: not one redirect target was asked
    assert not any(p.endswith("/encore/") for p in asked)
    everything = next(s for s in served if s.site.name == "everything-home")
    assert "/feed/" in everything.requests()  # asked, answered by the home page: not a feed


# ---------------------------------------------------------------- reading one page


def test_a_page_read_for_feeds_news_links_and_its_listing() -> None:
    html = """<!doctype html><html lang="fr"><head>
      <link rel="alternate" type="application/rss+xml" title="Acme &raquo; Flux" href="/feed/">
      <link rel="alternate" type="application/rss+xml" title="Acme &raquo; Flux des commentaires"
            href="/comments/feed/">
      <link rel="alternate" hreflang="en" href="/en/">
      <link rel="alternate" type="application/feed+json" href="https://cdn.example/feed.json">
    </head><body>
      <header><nav class="menu"><a href="/presse/">Presse</a> <a href="/actualites/">Actualités</a>
      <a href="/communiques-de-presse/">Communiqués de presse</a>
      <a href="https://www.other.example/actualites/">Actualités d'ailleurs</a></nav></header>
      <main>
        <article class="post"><header class="entry-header"><h2 class="entry-title">
          <a href="/2026/11/acme-leve-des-fonds/">Acme lève des fonds</a></h2></header></article>
        <article class="post"><header class="entry-header"><h2 class="entry-title">
          <a href="/2026/11/acme-recrute/">Acme recrute vingt personnes</a></h2></header></article>
        <article class="post"><header class="entry-header"><h2 class="entry-title">
          <a href="/2026/10/acme-essai-clinique/">Acme lance son essai clinique</a></h2></header></article>
        <a href="/2026/10/acme-essai-clinique/">Lire la suite</a>
      </main>
      <aside class="sidebar"><a href="/2026/09/a-b-c/">Un lien de la barre</a></aside>
    </body></html>""".encode()
    facts = read_page(html, url="https://acme.example/")
    feeds = {(a.url, a.comments) for a in facts.alternates}
    assert feeds == {
        ("https://acme.example/feed/", False),
        ("https://acme.example/comments/feed/", True),
        ("https://cdn.example/feed.json", False),
    }  # the hreflang alternate is a page, not a feed
    assert [n.url for n in facts.news_links] == [
        "https://acme.example/communiques-de-presse/",
        "https://acme.example/actualites/",
        "https://acme.example/presse/",
    ]  # press releases first; another site's news is not this site's
    assert facts.listing is not None
    assert facts.listing.selector == "h2.entry-title a"
    assert len(facts.listing.links) == 3


def test_links_to_the_press_on_other_sites_are_not_a_listing() -> None:
    items = "".join(
        f'<div class="item"><h3><a href="https://outlet{i}.example/a-b-c-{i}">Un article de presse '
        f"numéro {i}</a></h3></div>"
        for i in range(6)
    )
    facts = read_page(
        f"<html><body><main>{items}</main></body></html>".encode(),
        url="https://acme.example/presse/",
    )
    assert facts.listing is None


# ---------------------------------------------------------------- the command, end to end

CHOSEN = ("advertised", "press-page", "news-sitemap", "brochure", "down")


@pytest.fixture
def member_sites(tmp_path: Path) -> Any:
    sites = [s for s in build_sites() if s.name in CHOSEN]
    with serve(sites, tmp_path / "web", first_address=40) as served:
        yield served


def _members(served: list[Served]) -> list[dict[str, Any]]:
    return [{"name": s.site.company, "id": s.site.name, "website": s.url} for s in served]


def test_write_adds_each_newsroom_with_its_owner_once_and_a_run_stores_them_as_owned(
    member_sites: list[Served], write_config: WriteConfig, tmp_path: Path
) -> None:
    config = write_config(
        sources=[{"id": "press", "kind": "feed", "url": member_sites[0].url + "none.rss"}],
        members=_members(member_sites),
        network={"total_timeout": 5},
    )
    path = Path(config.path)
    done = veille(
        "members", "newsrooms", "--config", str(path), "--json", "--write", "--site-timeout", "20"
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(line) == {"member", "kind", "url", "selector", "reason"} for line in lines)
    kinds = {line["member"]: line["kind"] for line in lines}
    assert kinds == {
        "advertised": "feed",
        "press-page": "page",
        "news-sitemap": "sitemap",
        "brochure": "none",
        "down": "unreachable",
    }
    assert "3 newsroom(s) to add" in done.stderr and "wrote" in done.stderr
    text = path.read_text(encoding="utf-8")
    from pipeline.settings.config import load_config

    written = {spec.id: spec for spec in load_config(path).specs}
    assert written["advertised-newsroom"].owner == "advertised"
    assert written["press-page-newsroom"].kind == "page"
    assert written["press-page-newsroom"].selector == "h2.release-title a"
    assert written["news-sitemap-newsroom"].kind == "sitemap"
    assert "veille members newsrooms" in text  # the comment naming where they came from
    asked_before = {s.site.name: len(s.requests()) for s in member_sites}

    # a second run adds nothing, and does not ask the sites that already have a source
    again = veille("members", "newsrooms", "--config", str(path), "--write", "--site-timeout", "20")
    assert again.returncode == 0, again.stderr
    assert path.read_text(encoding="utf-8") == text
    assert "nothing to change" in again.stderr
    for s in member_sites:
        if s.site.name in ("advertised", "press-page", "news-sitemap"):
            assert len(s.requests()) == asked_before[s.site.name]
    assert 'already the source "advertised-newsroom"' in again.stdout

    # one run: the newsrooms' articles are stored as owned by their member
    db = tmp_path / "veille.db"
    ran = veille("run", "--config", str(path), "--db", str(db))
    assert ran.returncode in (0, 1), ran.stderr
    owners = dict(
        rows(
            db,
            "SELECT s.owner, count(*) FROM articles a JOIN sources s ON s.id = a.source_id "
            "WHERE a.owned = 1 AND a.owner = s.owner GROUP BY s.owner",
        )
    )
    # (a sitemap source reads its last 7 days: the fourth release is 8 days old)
    assert owners == {"advertised": 4, "press-page": 4, "news-sitemap": 3}
    assert rows(db, "SELECT count(*) FROM articles WHERE owned = 0")[0][0] == 0
    # the share of voice counts them apart
    counted = rows(db, "SELECT coalesce(sum(stories), 0), sum(releases) FROM weekly_member_counts")
    assert counted == [(0, 11)]
    digest = veille("digest", "--config", str(path), "--db", str(db), "--week", _this_week())
    assert (
        "== Communiqués des membres ==" in digest.stdout
        or "== Members' own releases ==" in digest.stdout
    )


def _this_week() -> str:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from pipeline.outputs.digest import Week

    return Week.containing(datetime.now(UTC), ZoneInfo("Europe/Paris")).label


def test_dry_run_writes_nothing_and_an_unknown_member_is_a_usage_error(
    member_sites: list[Served], write_config: WriteConfig
) -> None:
    config = write_config(
        sources=[{"id": "press", "kind": "feed", "url": member_sites[0].url + "none.rss"}],
        members=_members(member_sites),
    )
    path = Path(config.path)
    before = path.read_text(encoding="utf-8")
    done = veille(
        "members",
        "newsrooms",
        "--config",
        str(path),
        "--member",
        "advertised",
        "--write",
        "--dry-run",
    )
    assert done.returncode == 0, done.stderr
    assert "advertised-newsroom" in done.stderr and "dry run: nothing written" in done.stderr
    assert path.read_text(encoding="utf-8") == before
    # only that member's site was asked
    assert all(not s.requests() for s in member_sites if s.site.name != "advertised")
    unknown = veille("members", "newsrooms", "--config", str(path), "--member", "nobody")
    assert unknown.returncode == 2 and "no member with id 'nobody'" in unknown.stderr
    assert veille("members", "newsrooms", "--config", str(path), "--dry-run").returncode == 2


def test_a_site_is_listed_by_its_member_when_nothing_is_written(
    member_sites: list[Served], write_config: WriteConfig
) -> None:
    config = write_config(
        sources=[{"id": "press", "kind": "feed", "url": member_sites[0].url + "none.rss"}],
        members=_members(member_sites[:1]),
    )
    done = veille("members", "newsrooms", "--config", config.path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("feed        advertised: http://127.0.0.40:")
    assert "1 feed" in done.stderr


@pytest.mark.parametrize(
    ("body", "url", "selector"),
    [
        (  # no class: anchored on <main>, the menu's list left out
            '<nav><ul><li><a href="/a-propos">À propos de nous ici</a></li></ul></nav><main><ul>'
            + "".join(
                f'<li><a href="/actualites/article-{i}">Titre de l article {i}</a></li>'
                for i in range(4)
            )
            + "</ul></main>",
            "https://acme.example/actualites/",
            "main ul li a",
        ),
        (  # cards whose whole block is the link
            '<section class="grid">'
            + "".join(
                f'<div class="card"><a href="/news/2026/card-{i}"><h3>Un titre de carte {i}</h3>'
                "<p>Un extrait.</p></a></div>"
                for i in range(4)
            )
            + "</section>",
            "https://acme.example/news/",
            "div.card a",
        ),
        (  # a CMS without readable addresses
            '<div id="content">'
            + "".join(
                f'<h2><a href="/?p={100 + i}">Un billet numéro {i}</a></h2>' for i in range(4)
            )
            + '<div class="pagination"><a href="/?paged=2">Page suivante</a></div></div>',
            "https://acme.example/?cat=3",
            "h2 a",
        ),
        (  # products behind a "Presse" link: names, not headlines
            "".join(
                f'<div class="product"><a href="/produits/produit-{i}">Produit {i}</a></div>'
                for i in range(5)
            ),
            "https://acme.example/presse",
            None,
        ),
    ],
)
def test_the_listing_selector_of_a_press_page(body: str, url: str, selector: str | None) -> None:
    facts = read_page(f"<html><body>{body}</body></html>".encode(), url=url)
    assert (facts.listing.selector if facts.listing else None) == selector
