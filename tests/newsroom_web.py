"""A simulated web of members' sites on loopback, for newsroom discovery (tests and the demo).

Each site is its own server on its own loopback address (127.0.0.N, a port of its own),
its pages served from memory by path. The sites cover what `veille members newsrooms`
meets: feeds advertised and not, comment-feed traps, news only on a press page, news
only in a sitemap, a bilingual site, a JSON Feed, sites without news (a brochure, one
that answers every path with its home page, a newsroom of press links), robots.txt
forbidding, and hostile ones (down, trickling, looping, a maze of news pages).

``SITES`` says what each site should give: the kind and the path of the newsroom (None
for a site without news).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.fixture_server import FixtureServer, closed_port

HTML = "text/html; charset=utf-8"
RSS = "application/rss+xml"
ATOM = "application/atom+xml"
XML = "application/xml"
JSON_FEED = "application/feed+json"


@dataclass
class Site:
    """One member's site: its pages (path -> (content type, body)), what it should give."""

    name: str
    company: str  # the member's name, as its pages write it
    pages: dict[str, tuple[str, str]] = field(default_factory=dict)
    expect: str = "none"  # the kind discovery should find
    expect_path: str | None = None  # the path of the newsroom it should propose
    forbidden: tuple[str, ...] = ()  # path prefixes robots.txt forbids (never to be asked)
    behaviour: str | None = None  # down, trickle, loop, everything-home, robots-503
    has_news: bool = True
    website: str = ""  # the path the directory gives as its website ("" for the root)


def _days_ago(days: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)


def _page(title: str, body: str, *, head: str = "", lang: str = "fr") -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
        f"{head}</head><body>{body}</body></html>"
    )


def _nav(*links: tuple[str, str]) -> str:
    items = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in links)
    return f'<header class="site-header"><nav class="main-menu"><ul>{items}</ul></nav></header>'


def _footer() -> str:
    return (
        '<footer class="site-footer"><a href="/mentions-legales">Mentions légales</a> · '
        '<a href="/contact">Contact</a></footer>'
    )


def releases(company: str, slug: str) -> list[tuple[str, str, str, datetime]]:
    """(title, path slug, text, date) of a member's latest releases, newest first."""
    return [
        (
            f"{company} annonce l'ouverture d'un laboratoire à Nantes",
            f"{slug}-ouvre-un-laboratoire-a-nantes",
            f"{company} ouvre un laboratoire de 800 m² au cœur du quartier de la santé de Nantes "
            "et prévoit d'y recruter vingt chercheurs d'ici la fin de l'année.",
            _days_ago(1),
        ),
        (
            f"{company} présente ses résultats au congrès européen",
            f"{slug}-resultats-congres-europeen",
            f"Les équipes de {company} ont présenté de nouveaux résultats précliniques lors du "
            "congrès européen de biothérapies, à Lyon.",
            _days_ago(3),
        ),
        (
            f"{company} rejoint le programme d'accélération régional",
            f"{slug}-programme-acceleration-regional",
            f"{company} fait partie de la nouvelle promotion du programme d'accélération des "
            "biothérapies des Pays de la Loire.",
            _days_ago(5),
        ),
        (
            f"{company} nomme une directrice scientifique",
            f"{slug}-nomme-une-directrice-scientifique",
            f"{company} annonce la nomination de sa nouvelle directrice scientifique, issue de "
            "la recherche académique nantaise.",
            _days_ago(8),
        ),
    ]


def rss(title: str, items: list[tuple[str, str, str, datetime]], base: str) -> str:
    body = "".join(
        f"<item><title>{t}</title><link>{base}{link}</link><guid>{base}{link}</guid>"
        f"<description>{text}</description><pubDate>{format_datetime(when)}</pubDate></item>"
        for t, link, text, when in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}'
        f"</title><link>{base}</link><description>{title}</description>{body}</channel></rss>"
    )


def atom(title: str, items: list[tuple[str, str, str, datetime]], base: str) -> str:
    entries = "".join(
        f'<entry><title>{t}</title><link rel="alternate" href="{base}{link}"/>'
        f"<id>{base}{link}</id><updated>{when.isoformat()}</updated><summary>{text}</summary></entry>"
        for t, link, text, when in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{title}</title><id>{base}</id><updated>{datetime.now(UTC).isoformat()}</updated>"
        f"{entries}</feed>"
    )


def listing_page(company: str, items: list[tuple[str, str, str, datetime]], prefix: str) -> str:
    blocks = "".join(
        f'<div class="release"><time datetime="{when.date()}">{when:%d/%m/%Y}</time>'
        f'<h2 class="release-title"><a href="{prefix}{link}">{t}</a></h2><p>{text}</p></div>'
        for t, link, text, when in items
    )
    return _page(
        f"Communiqués de presse – {company}",
        _nav(("/", "Accueil"), ("/societe", "La société"), ("/presse/communiques", "Communiqués"))
        + f'<main><h1>Communiqués de presse</h1><section class="releases">{blocks}</section>'
        '<div class="pagination"><a href="/presse/communiques?page=2">Suivant</a></div></main>'
        + _footer(),
    )


def article_page(company: str, title: str, text: str) -> str:
    paragraphs = "".join(f"<p>{text} {company} poursuit son développement.</p>" for _ in range(4))
    return _page(title, f"<main><article><h1>{title}</h1>{paragraphs}</article></main>")


def _with_articles(site: Site, items: list[tuple[str, str, str, datetime]], prefix: str) -> None:
    for title, slug, text, _ in items:
        site.pages[f"{prefix}{slug}"] = (HTML, article_page(site.company, title, text))


def build_sites() -> list[Site]:
    """The simulated web (see the module); every base URL is filled in when served."""
    sites: list[Site] = []

    # 1. the home page advertises its news feed, and a comment feed
    site = Site("advertised", "Hepatix", expect="feed", expect_path="/actualites/feed.rss")
    news = releases(site.company, "hepatix")
    site.pages[""] = (
        HTML,
        _page(
            "Hepatix – thérapie cellulaire",
            _nav(("/", "Accueil"), ("/actualites/", "Actualités"), ("/contact", "Contact"))
            + "<main><h1>Hepatix</h1><p>Thérapie cellulaire du foie.</p></main>"
            + _footer(),
            head='<link rel="alternate" type="application/rss+xml" title="Hepatix – Actualités" '
            'href="/actualites/feed.rss"><link rel="alternate" type="application/rss+xml" '
            'title="Hepatix – Flux des commentaires" href="/comments/feed/">',
        ),
    )
    site.pages["actualites/feed.rss"] = (
        RSS,
        rss("Hepatix – Actualités", news, "{base}/actualites/"),
    )
    site.pages["comments/feed"] = (RSS, rss("Commentaires sur Hepatix", news[:1], "{base}/c/"))
    _with_articles(site, news, "actualites/")
    sites.append(site)

    # 2. comment-feed trap: the home page advertises a comment feed and an empty one; the
    # news page advertises the real feed
    site = Site("comment-trap", "Immunova", expect="feed", expect_path="/actualites/feed/")
    news = releases(site.company, "immunova")
    site.pages[""] = (
        HTML,
        _page(
            "Immunova",
            _nav(("/", "Accueil"), ("/actualites/", "Actualités"), ("/equipe", "Équipe"))
            + "<main><h1>Immunova</h1></main>",
            head='<link rel="alternate" type="application/rss+xml" title="Immunova » Flux" '
            'href="/feed/"><link rel="alternate" type="application/rss+xml" '
            'title="Immunova » Flux des commentaires" href="/comments/feed/">',
        ),
    )
    site.pages["feed"] = (RSS, rss("Immunova", [], "{base}/"))
    site.pages["comments/feed"] = (
        RSS,
        rss(
            "Commentaires pour Immunova",
            [("Re: bravo", "c/1", "Bravo à toute l'équipe", _days_ago(1))],
            "{base}/",
        ),
    )
    site.pages["actualites"] = (
        HTML,
        _page(
            "Actualités – Immunova",
            _nav(("/", "Accueil"), ("/actualites/", "Actualités"))
            + "<main><h1>Actualités</h1></main>",
            head='<link rel="alternate" type="application/rss+xml" title="Immunova » Actualités" '
            'href="/actualites/feed/"><link rel="alternate" type="application/rss+xml" '
            'title="Immunova » Actualités » Flux des commentaires" href="/actualites/comments/feed/">',
        ),
    )
    site.pages["actualites/feed"] = (RSS, rss("Immunova » Actualités", news, "{base}/actualites/"))
    _with_articles(site, news, "actualites/")
    sites.append(site)

    # 2b. comment feeds that do not say so in their title: one by its URL
    # (?feed=comments-rss2), one by its entries ("Commentaire sur ... par ..."); the news
    # is at the usual path
    site = Site("comment-entries", "Neurogreffe", expect="feed", expect_path="/feed/")
    news = releases(site.company, "neurogreffe")
    site.pages[""] = (
        HTML,
        _page(
            "Neurogreffe",
            "<main>Neurogreffe</main>",
            head='<link rel="alternate" type="application/rss+xml" title="Neurogreffe" '
            'href="/?feed=comments-rss2"><link rel="alternate" type="application/rss+xml" '
            'title="Neurogreffe – flux" href="/flux.xml">',
        ),
    )
    site.pages["flux.xml"] = (
        RSS,
        rss(
            "Neurogreffe – flux",
            [
                (f"Commentaire sur {t} par Jean", f"{slug}#comment-{i}", "Bravo", when)
                for i, (t, slug, _, when) in enumerate(news)
            ],
            "{base}/",
        ),
    )
    site.pages["feed"] = (RSS, rss("Neurogreffe", news, "{base}/"))
    _with_articles(site, news, "")
    sites.append(site)

    # 3. WordPress without the feed advertised: only the usual path answers
    site = Site("wordpress-hidden", "Cellia Bio", expect="feed", expect_path="/feed/")
    news = releases(site.company, "cellia")
    site.pages[""] = (
        HTML,
        _page(
            "Cellia Bio",
            _nav(("/", "Accueil"), ("/technologie", "Technologie"), ("/contact", "Contact"))
            + "<main><h1>Cellia Bio</h1></main>",
        ),
    )
    site.pages["feed"] = (RSS, rss("Cellia Bio", news, "{base}/"))
    _with_articles(site, news, "")
    sites.append(site)

    # 4. news only on a press page (no feed anywhere); robots.txt forbids the admin
    site = Site(
        "press-page",
        "Radiothera",
        expect="page",
        expect_path="/presse/communiques",
        forbidden=("/admin/",),
    )
    news = releases(site.company, "radiothera")
    site.pages["robots.txt"] = ("text/plain", "User-agent: *\nDisallow: /admin/\n")
    site.pages[""] = (
        HTML,
        _page(
            "Radiothera",
            _nav(
                ("/", "Accueil"),
                ("/admin/", "Administration"),
                ("/presse/communiques", "Communiqués de presse"),
            )
            + "<main><h1>Radiothera</h1></main>",
        ),
    )
    site.pages["presse/communiques"] = (HTML, listing_page(site.company, news, "/presse/"))
    _with_articles(site, news, "presse/")
    sites.append(site)

    # 4b. the directory gives the press page itself as the website
    site = Site(
        "website-is-news",
        "Biocytos",
        expect="page",
        expect_path="/presse/communiques",
        website="presse/communiques",
    )
    news = releases(site.company, "biocytos")
    site.pages["presse/communiques"] = (HTML, listing_page(site.company, news, "/presse/"))
    _with_articles(site, news, "presse/")
    sites.append(site)

    # 5. news only in a Google News sitemap named in robots.txt
    site = Site("news-sitemap", "Vaxinove", expect="sitemap", expect_path="/sitemap-news.xml")
    news = releases(site.company, "vaxinove")
    site.pages["robots.txt"] = (
        "text/plain",
        "User-agent: *\nAllow: /\nSitemap: {base}/sitemap-news.xml\n",
    )
    site.pages[""] = (HTML, _page("Vaxinove", _nav(("/", "Accueil"), ("/vaccins", "Vaccins"))))
    site.pages["sitemap-news.xml"] = (XML, news_sitemap(news, "{base}/", "Vaxinove"))
    _with_articles(site, news, "")
    sites.append(site)

    # 6. a sitemap index whose news child is the newsroom
    site = Site(
        "sitemap-index", "Biocelis", expect="sitemap", expect_path="/actualites-sitemap.xml"
    )
    news = releases(site.company, "biocelis")
    site.pages["robots.txt"] = ("text/plain", "User-agent: *\nSitemap: {base}/sitemap_index.xml\n")
    site.pages[""] = (HTML, _page("Biocelis", _nav(("/", "Accueil"), ("/offre", "Notre offre"))))
    site.pages["sitemap_index.xml"] = (
        XML,
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<sitemap><loc>{base}/page-sitemap.xml</loc></sitemap>"
        "<sitemap><loc>{base}/actualites-sitemap.xml</loc></sitemap></sitemapindex>",
    )
    site.pages["page-sitemap.xml"] = (XML, urlset(["", "offre", "contact"], "{base}/"))
    site.pages["actualites-sitemap.xml"] = (
        XML,
        urlset([f"actualites/{slug}" for _, slug, _, _ in news], "{base}/", dated=True),
    )
    _with_articles(site, news, "actualites/")
    sites.append(site)

    # 7. bilingual: the home page redirects to /fr/, whose "Actualités" page advertises
    # an Atom feed; /en/ has its "News"
    site = Site("bilingual", "Theranantes", expect="feed", expect_path="/fr/actualites/feed.xml")
    news = releases(site.company, "theranantes")
    site.pages[""] = ("redirect", "/fr/")
    site.pages["fr"] = (
        HTML,
        _page(
            "Theranantes",
            _nav(("/fr/", "Accueil"), ("/fr/actualites/", "Actualités"), ("/en/", "English")),
            head='<link rel="alternate" hreflang="en" href="/en/">',
        ),
    )
    site.pages["en"] = (
        HTML,
        _page(
            "Theranantes",
            _nav(("/en/", "Home"), ("/en/news/", "News"), ("/fr/", "Français")),
            lang="en",
        ),
    )
    site.pages["fr/actualites"] = (
        HTML,
        _page(
            "Actualités",
            _nav(("/fr/", "Accueil"), ("/fr/actualites/", "Actualités")),
            head='<link rel="alternate" type="application/atom+xml" title="Actualités" '
            'href="/fr/actualites/feed.xml">',
        ),
    )
    site.pages["fr/actualites/feed.xml"] = (
        ATOM,
        atom("Theranantes – actualités", news, "{base}/fr/actualites/"),
    )
    _with_articles(site, news, "fr/actualites/")
    sites.append(site)

    # 8. a JSON Feed advertised
    site = Site("json-feed", "Algomer", expect="feed", expect_path="/feed.json")
    news = releases(site.company, "algomer")
    site.pages[""] = (
        HTML,
        _page(
            "Algomer",
            "<main>Microalgues</main>",
            head='<link rel="alternate" type="application/feed+json" title="Algomer news" href="/feed.json">',
        ),
    )
    site.pages["feed.json"] = (JSON_FEED, json_feed("Algomer news", news, "{base}/news/"))
    _with_articles(site, news, "news/")
    sites.append(site)

    # 9. robots.txt forbids the news pages; the news is also in an allowed news sitemap
    site = Site(
        "robots-partial",
        "Oncobreizh",
        expect="sitemap",
        expect_path="/news-sitemap.xml",
        forbidden=("/actualites",),
    )
    news = releases(site.company, "oncobreizh")
    site.pages["robots.txt"] = (
        "text/plain",
        "User-agent: *\nDisallow: /actualites\nSitemap: {base}/news-sitemap.xml\n",
    )
    site.pages[""] = (
        HTML,
        _page(
            "Oncobreizh",
            _nav(("/", "Accueil"), ("/actualites/", "Actualités")),
            head='<link rel="alternate" type="application/rss+xml" title="Actualités" href="/actualites/feed/">',
        ),
    )
    site.pages["actualites/feed"] = (RSS, rss("Oncobreizh", news, "{base}/actualites/"))
    site.pages["actualites"] = (HTML, listing_page(site.company, news, "/actualites/"))
    site.pages["news-sitemap.xml"] = (XML, news_sitemap(news, "{base}/actualites/", "Oncobreizh"))
    sites.append(site)

    # 10. robots.txt forbids everything
    site = Site("robots-all", "Genoway Ouest", expect="robots", forbidden=("/",))
    site.pages["robots.txt"] = ("text/plain", "User-agent: *\nDisallow: /\n")
    site.pages[""] = (HTML, _page("Genoway Ouest", "<main>Bienvenue</main>"))
    site.pages["feed"] = (RSS, rss("Genoway Ouest", releases(site.company, "genoway"), "{base}/"))
    sites.append(site)

    # 11. no news: a brochure whose "Presse" page is a contact, whose sitemap holds pages
    site = Site("brochure", "Stérilys", has_news=False)
    site.pages["robots.txt"] = ("text/plain", "User-agent: *\nSitemap: {base}/sitemap.xml\n")
    site.pages[""] = (
        HTML,
        _page(
            "Stérilys",
            _nav(
                ("/", "Accueil"),
                ("/services", "Services"),
                ("/presse", "Presse"),
                ("/contact", "Contact"),
            )
            + _footer(),
        ),
    )
    site.pages["presse"] = (
        HTML,
        _page(
            "Presse",
            _nav(("/", "Accueil"), ("/presse", "Presse"))
            + "<main><h1>Contact presse</h1><p>Écrivez à presse@sterilys.example.</p>"
            '<p><a href="/kit-presse.pdf">Kit presse (PDF)</a></p></main>',
        ),
    )
    site.pages["sitemap.xml"] = (XML, urlset(["", "services", "presse", "contact"], "{base}/"))
    sites.append(site)

    # 12. no news: every path answers 200 with the home page (a single-page application)
    site = Site("everything-home", "Pharmalys", has_news=False, behaviour="everything-home")
    site.pages[""] = (
        HTML,
        _page(
            "Pharmalys",
            _nav(("/", "Accueil"), ("/#actualites", "Nous découvrir")) + "<main>App</main>",
        ),
    )
    sites.append(site)

    # 13. no news of its own: its "newsroom" lists press articles on outlets' sites
    site = Site("press-links", "Mabsolve", has_news=False)
    outlets = "".join(
        f'<div class="press-item"><h3><a href="https://www.outlet{i}.example/sante/mabsolve-article-{i}">'
        f"Mabsolve vu par la presse, épisode {i}</a></h3></div>"
        for i in range(5)
    )
    site.pages[""] = (
        HTML,
        _page(
            "Mabsolve",
            _nav(
                ("/", "Accueil"), ("/dans-la-presse", "Ils parlent de nous"), ("/presse", "Presse")
            ),
        ),
    )
    site.pages["presse"] = (
        HTML,
        _page("Presse", f"<main><h1>Ils parlent de nous</h1>{outlets}</main>"),
    )
    sites.append(site)

    # 14-18. hostile: down, trickling, looping, robots.txt in error, a maze of news pages
    sites.append(Site("down", "Cryonov", expect="unreachable", behaviour="down", has_news=False))
    sites.append(
        Site("trickle", "Lentivex", expect="unreachable", behaviour="trickle", has_news=False)
    )
    sites.append(Site("loop", "Boucle Bio", expect="unreachable", behaviour="loop", has_news=False))
    site = Site(
        "robots-503", "Panne Pharma", expect="unreachable", behaviour="robots-503", has_news=False
    )
    site.pages[""] = (HTML, _page("Panne Pharma", "<main>ok</main>"))
    sites.append(site)
    site = Site("maze", "Labyrinthe Bio", behaviour="maze", has_news=False)
    sites.append(site)
    return sites


def news_sitemap(items: list[tuple[str, str, str, datetime]], base: str, publication: str) -> str:
    urls = "".join(
        f"<url><loc>{base}{slug}</loc><news:news><news:publication><news:name>{publication}"
        f"</news:name><news:language>fr</news:language></news:publication>"
        f"<news:publication_date>{when.isoformat()}</news:publication_date>"
        f"<news:title>{title}</news:title></news:news></url>"
        for title, slug, _, when in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">' + urls + "</urlset>"
    )


def urlset(paths: list[str], base: str, *, dated: bool = False) -> str:
    stamp = _days_ago(2).date().isoformat()
    urls = "".join(
        f"<url><loc>{base}{p}</loc>" + (f"<lastmod>{stamp}</lastmod>" if dated else "") + "</url>"
        for p in paths
    )
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


def json_feed(title: str, items: list[tuple[str, str, str, datetime]], base: str) -> str:
    import json

    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": title,
            "items": [
                {
                    "id": f"{base}{slug}",
                    "url": f"{base}{slug}",
                    "title": t,
                    "content_text": text,
                    "date_published": when.isoformat(),
                }
                for t, slug, text, when in items
            ],
        },
        ensure_ascii=False,
    )


# ---------------------------------------------------------------- serving


def _answer(
    server: FixtureServer, content_type: str, body: str
) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        text = body.replace("{base}", server.base)
        if content_type == "redirect":
            server.send(handler, 301, headers={"Location": text})
            return
        server.send(handler, 200, text.encode("utf-8"), {"Content-Type": content_type})

    return handle


def _trickle(handler: BaseHTTPRequestHandler) -> None:
    body = _page("Lentivex", "<main>" + "Un site très lent. " * 30 + "</main>").encode()
    handler.send_response(200)
    handler.send_header("Content-Type", HTML)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.5)


def _maze(server: FixtureServer) -> Callable[[BaseHTTPRequestHandler], None]:
    """Every page is a "news" page linking to deeper "communiqués" pages, forever; every
    feed path redirects back into the maze."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.endswith(("feed/", "feed", ".xml", ".rss", "rss/")):
            server.send(handler, 302, headers={"Location": path.rstrip("/") + "/encore/"})
            return
        depth = path.count("/")
        links = "".join(
            f'<a href="{path.rstrip("/")}/communiques-{depth}-{i}/">Communiqués de presse {i}</a>'
            for i in range(3)
        )
        body = _page(
            "Labyrinthe",
            _nav(("/", "Accueil"), (f"{path.rstrip('/')}/actualites-{depth}/", "Actualités"))
            + links,
        )
        server.send(handler, 200, body.encode(), {"Content-Type": HTML})

    return handle


@dataclass
class Served:
    site: Site
    server: FixtureServer | None  # None for a site that is down
    url: str  # its website

    def requests(self) -> list[str]:
        return [r.path for r in self.server.requests] if self.server else []


@contextlib.contextmanager
def serve(sites: list[Site], root: Path, *, first_address: int = 2) -> Iterator[list[Served]]:
    """Each site on its own loopback address (127.0.0.N from ``first_address``)."""
    served: list[Served] = []
    with contextlib.ExitStack() as stack:
        for number, site in enumerate(sites, start=first_address):
            host = f"127.0.0.{number}"
            if site.behaviour == "down":
                served.append(Served(site, None, f"http://{host}:{closed_port(host)}/"))
                continue
            directory = root / site.name
            directory.mkdir(parents=True, exist_ok=True)
            server = stack.enter_context(FixtureServer(directory, host=host))
            for path, (content_type, body) in site.pages.items():
                server.routes[path] = _answer(server, content_type, body)
                if (
                    path
                    and not path.endswith((".xml", ".rss", ".json", ".txt"))
                    and "." not in path.rsplit("/", 1)[-1]
                ):
                    server.routes[path + "/"] = server.routes[path]
            url = server.base + "/" + site.website
            if site.behaviour == "trickle":
                server.routes[""] = _trickle
            elif site.behaviour == "loop":
                server.routes[""] = lambda h, s=server: s.send(
                    h, 302, headers={"Location": "/accueil"}
                )
                server.routes["accueil"] = lambda h, s=server: s.send(
                    h, 302, headers={"Location": "/"}
                )
            elif site.behaviour == "robots-503":
                server.routes["robots.txt"] = lambda h, s=server: s.send(h, 503, b"maintenance")
            elif site.behaviour == "everything-home":
                home = server.routes[""]
                server.not_found = home
            elif site.behaviour == "maze":
                maze = _maze(server)
                server.routes[""] = maze
                server.not_found = maze
            served.append(Served(site, server, url))
        yield served


def free_loopback(number: int) -> bool:
    """Whether 127.0.0.N can be bound here (Linux routes all of 127/8 to loopback)."""
    with socket.socket() as sock:
        try:
            sock.bind((f"127.0.0.{number}", 0))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------- the demo's members' sites

XENOTHERA_RELEASES = [
    (
        "Xenothera lève 12 millions d'euros pour son anticorps polyclonal",
        "xenothera-leve-12-millions",
        "Xenothera, biotech nantaise qui développe des anticorps polyclonaux glyco-humanisés, "
        "annonce une levée de fonds de 12 millions d'euros pour financer l'essai de phase 2 "
        "de XEN-407.",
        datetime(2026, 11, 19, 6, 30, tzinfo=UTC),
    ),
    (
        "Xenothera présente ses données précliniques au congrès de la SFI",
        "xenothera-donnees-precliniques-sfi",
        "Les équipes de Xenothera ont présenté à Nantes les données précliniques de XEN-407 "
        "au congrès de la Société française d'immunologie.",
        datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    ),
]


def demo_sites(corpus: Path) -> dict[str, Site]:
    """The newsrooms of the demo's members, by member id (the cluster's too): a few of each
    kind, for `veille members newsrooms --write` in `make demo`. ``corpus`` is the demo's
    feeds directory (the cluster's own news feed is served from its site)."""
    sites: dict[str, Site] = {}
    cluster_host = "https://www.atlanpole-biotherapies.example"

    # the cluster: its home page advertises its news feed (the corpus' atlanpole-actus.rss)
    site = Site("atlanpole", "Atlanpole Biothérapies", expect="feed")
    feed = (
        (corpus / "atlanpole-actus.rss").read_text(encoding="utf-8").replace(cluster_host, "{base}")
    )
    site.pages[""] = (
        HTML,
        _page(
            "Atlanpole Biothérapies",
            _nav(("/", "Accueil"), ("/actualites/", "Actualités"), ("/membres", "Les membres")),
            head='<link rel="alternate" type="application/rss+xml" title="Actualités du cluster" '
            'href="/actualites/feed.rss">',
        ),
    )
    site.pages["actualites/feed.rss"] = (RSS, feed)
    page = (
        corpus
        / "sites"
        / "www.atlanpole-biotherapies.example"
        / "actualites/2026/11/goliver-programme-acceleration"
    )
    site.pages["actualites/2026/11/goliver-programme-acceleration"] = (
        HTML,
        page.read_text(encoding="utf-8").replace(cluster_host, "{base}"),
    )
    sites["atlanpole-biotherapies"] = site

    # Xenothera: an Atom feed advertised, whose first release the regional press picked up
    site = Site("xenothera", "Xenothera", expect="feed")
    site.pages[""] = (
        HTML,
        _page(
            "Xenothera",
            _nav(("/", "Accueil"), ("/fr/communiques/", "Communiqués")),
            head='<link rel="alternate" type="application/atom+xml" title="Xenothera – communiqués" '
            'href="/fr/communiques/feed.xml">',
        ),
    )
    site.pages["fr/communiques/feed.xml"] = (
        ATOM,
        atom("Xenothera – communiqués", XENOTHERA_RELEASES, "{base}/fr/communiques/"),
    )
    _with_articles(site, XENOTHERA_RELEASES, "fr/communiques/")
    # the release the regional press took up nearly word for word: its four first paragraphs
    # are Ouest Santé's article (one story, with a copy of each kind)
    picked = (
        corpus
        / "sites"
        / "www.ouest-sante.example"
        / "economie"
        / "xenothera-leve-12-millions.html"
    )
    found = re.findall(r"<p>(.*?)</p>", picked.read_text(encoding="utf-8"), re.DOTALL)
    paragraphs = [p for p in found if "cookie" not in p and "<a " not in p][:4]
    title, slug, _, _ = XENOTHERA_RELEASES[0]
    site.pages[f"fr/communiques/{slug}"] = (
        HTML,
        _page(
            title,
            f"<main><article><h1>{title}</h1>"
            + "".join(f"<p>{p}</p>" for p in paragraphs)
            + "<p>À propos de Xenothera : biotech nantaise, anticorps polyclonaux "
            "glyco-humanisés pour la transplantation et les maladies infectieuses.</p>"
            "</article></main>",
        ),
    )
    sites["xenothera"] = site

    # GoLiver Therapeutics: news only on a press page, no feed
    site = Site("goliver", "GoLiver Therapeutics", expect="page")
    news = releases(site.company, "goliver")
    site.pages[""] = (
        HTML,
        _page(
            "GoLiver Therapeutics",
            _nav(("/", "Accueil"), ("/presse/communiques", "Communiqués de presse")),
        ),
    )
    site.pages["presse/communiques"] = (HTML, listing_page(site.company, news, "/presse/"))
    _with_articles(site, news, "presse/")
    sites["goliver-therapeutics"] = site

    # Valneva: its news in a Google News sitemap named in robots.txt
    site = Site("valneva", "Valneva", expect="sitemap")
    news = releases(site.company, "valneva")
    site.pages["robots.txt"] = ("text/plain", "User-agent: *\nSitemap: {base}/sitemap-news.xml\n")
    site.pages[""] = (HTML, _page("Valneva", _nav(("/", "Accueil"), ("/vaccins", "Nos vaccins"))))
    site.pages["sitemap-news.xml"] = (XML, news_sitemap(news, "{base}/", "Valneva"))
    _with_articles(site, news, "")
    sites["valneva"] = site

    # Step Pharma (a member of the directory): WordPress, its feed not advertised
    site = Site("step-pharma", "Step Pharma", expect="feed")
    news = releases(site.company, "step-pharma")
    site.pages[""] = (HTML, _page("Step Pharma", _nav(("/", "Accueil"), ("/pipeline", "Pipeline"))))
    site.pages["feed"] = (RSS, rss("Step Pharma", news, "{base}/"))
    _with_articles(site, news, "")
    sites["step-pharma"] = site

    # Mablink Bioscience (a member of the directory): a brochure without news
    site = Site("mablink", "Mablink Bioscience", has_news=False)
    site.pages[""] = (
        HTML,
        _page("Mablink Bioscience", _nav(("/", "Accueil"), ("/contact", "Contact"))),
    )
    sites["mablink-bioscience"] = site

    # NG Biotech: the site is down; Lemer Pax: robots.txt keeps veille out
    sites["ng-biotech"] = Site(
        "ng-biotech", "NG Biotech", expect="unreachable", behaviour="down", has_news=False
    )
    site = Site("lemer-pax", "Lemer Pax", expect="robots", forbidden=("/",), has_news=False)
    site.pages["robots.txt"] = ("text/plain", "User-agent: *\nDisallow: /\n")
    site.pages[""] = (HTML, _page("Lemer Pax", "<main>Radioprotection</main>"))
    sites["lemer-pax"] = site
    return sites
