"""A seeded synthetic press corpus for `make bench`: feeds, article pages, robots.txt.

At scale 1.0: 200 feeds of 50 entries (10,000 entries) on 20 sites, and 2,000 article
pages of 60 to 120 KB. Forty "publisher" feeds (two per site) link to article pages
that veille fetches (``fetch_articles: true``); the other 160 are summary-only feeds
(``fetch_articles: false``, as one would set for news-search or headline feeds), a
tenth of whose entries are rewritten copies of a publisher's article, so stories have
something to group. Half the sites are French, half English. Pages are built like a
news site's: a large head (meta, JSON-LD, inline CSS and scripts), a cookie banner, a
menu of a hundred or more links, the article (4 to 9 KB of text naming members of
sources.yaml), share buttons, "read also" lists, a sidebar and a long footer.

Everything is a pure function of (seed, scale, the members of sources.yaml), except the
dates, which are relative to the start of the day of generation, so that the digest's
current week has articles.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

FULL_FEEDS = 200
ENTRIES_PER_FEED = 50
FULL_PAGES = 2_000
FEEDS_PER_SITE = 10
COPY_SHARE = 0.1  # of the summary-only entries: rewritten copies of a publisher's article

CITIES = ["Nantes", "Angers", "Rennes", "Tours", "Saint-Herblain", "Montaigu", "Brest", "Orléans"]
PARTNERS = ["Sanofi", "Bpifrance", "l'Inserm", "le CHU de Nantes", "Servier", "Roche", "Ipsen"]
FR_EVENTS = [
    "une levée de fonds de {amount} millions d'euros",
    "le lancement d'un essai clinique de phase {phase}",
    "un accord de licence avec {partner}",
    "l'ouverture d'une nouvelle unité de production à {city}",
    "des résultats précliniques encourageants",
    "le recrutement de quarante collaborateurs d'ici la fin de l'année",
    "l'obtention du marquage CE pour son test rapide",
]
EN_EVENTS = [
    "a {amount} million euro financing round",
    "the start of a phase {phase} clinical trial",
    "a licensing agreement with {partner}",
    "a new manufacturing site in {city}",
    "encouraging preclinical results",
    "plans to hire forty people by the end of the year",
    "CE marking for its rapid test",
]
FR_SENTENCES = [
    "{member}, installée à {city}, annonce {event}.",
    "Selon la direction de {member}, cette étape ouvre la voie à {event}.",
    "Les investisseurs historiques accompagnent {member} dans {event}.",
    "« Nous sommes fiers de cette avancée », explique le président de {member}.",
    "Cette annonce intervient quelques mois après {event}.",
    "La société compte aujourd'hui une soixantaine de salariés répartis entre {city} et Paris.",
    "Le marché des biothérapies progresse de plus de dix pour cent par an en Europe.",
    "Les premiers patients devraient être traités au second semestre dans plusieurs centres.",
    "Le cluster Atlanpole Biotherapies salue une nouvelle réussite pour la région.",
    "Les équipes de recherche travaillent depuis plusieurs années sur cette plateforme.",
    "Les données complètes seront présentées lors d'un prochain congrès international.",
    "Le financement servira à accélérer le développement clinique et industriel.",
]
EN_SENTENCES = [
    "{member}, based in {city}, announced {event}.",
    "According to the management of {member}, this step paves the way for {event}.",
    "Existing investors are backing {member} in {event}.",
    '"We are proud of this milestone," said the chief executive of {member}.',
    "The announcement comes a few months after {event}.",
    "The company now employs about sixty people between {city} and Paris.",
    "The European market for biotherapies is growing by more than ten percent a year.",
    "The first patients are expected to be treated in the second half in several centres.",
    "The Atlanpole Biotherapies cluster welcomed another success for the region.",
    "Research teams have worked on this platform for several years.",
    "Full data will be presented at an upcoming international conference.",
    "The funds will be used to speed up clinical and industrial development.",
]
FR_TITLES = [
    "{member} annonce {event}",
    "{member} : {event}",
    "Biotech : {member} annonce {event}",
    "À {city}, {member} prépare {event}",
]
EN_TITLES = [
    "{member} announces {event}",
    "{member} unveils {event}",
    "Biotech: {member} reports {event}",
    "{city}-based {member} secures {event}",
]
SECTIONS_FR = ["Économie", "Santé", "Entreprises", "Région", "Innovation", "Sciences", "Emploi"]
SECTIONS_EN = ["Business", "Health", "Companies", "Region", "Innovation", "Science", "Jobs"]


@dataclass
class Site:
    index: int
    host: str  # "127.0.0.{n}:{port}" once the server is known; a placeholder before
    name: str
    lang: str
    head_css: str = ""
    head_js: str = ""
    menu: str = ""
    footer: str = ""
    filler: list[str] = field(default_factory=list)


@dataclass
class Page:
    site: int
    path: str
    title: str
    summary: str
    body: list[str]  # paragraphs
    lang: str
    published: datetime
    members: list[str]


@dataclass
class Corpus:
    """Files to serve, by (site index, path), and what the configuration needs."""

    files: dict[tuple[int, str], bytes]
    feeds: list[tuple[int, str, bool, str]]  # (site, path, fetch_articles, lang)
    sites: int
    pages: int
    entries: int
    page_bytes: int

    def write(self, root: Path) -> None:
        """One directory per site: site-<n>/<path>; a .gz beside each file."""
        for (site, path), body in self.files.items():
            target = root / f"site-{site}" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            target.with_name(target.name + ".gz").write_bytes(gzip.compress(body, 6, mtime=0))


def _words(rng: random.Random, count: int) -> str:
    syllables = ["ka", "lo", "mi", "ne", "ro", "ta", "vi", "za", "bu", "pe", "so", "di"]
    return " ".join(
        "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(count)
    )


def _site_chrome(site: Site, rng: random.Random) -> None:
    """What every page of one site shares: CSS, scripts, menu, footer, filler."""
    sections = SECTIONS_FR if site.lang == "fr" else SECTIONS_EN
    css_rules = []
    for i in range(260):
        css_rules.append(
            f".c-{i}-{rng.randint(100, 999)}{{margin:{rng.randint(0, 40)}px {rng.randint(0, 40)}px;"
            f"color:#{rng.randint(0, 0xFFFFFF):06x};font-size:{rng.randint(10, 32)}px;"
            f"display:{rng.choice(['block', 'flex', 'grid', 'none'])}}}"
        )
    site.head_css = "<style>" + "".join(css_rules) + "</style>"
    js_parts = ["window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"]
    for i in range(120):
        js_parts.append(
            f"var cfg{i}={json.dumps({'slot': f'ad-{i}', 'sizes': [[300, 250], [728, 90]], 'targeting': {'rub': rng.choice(sections), 'k': _words(rng, 3)}})};"
        )
    site.head_js = "<script>" + "".join(js_parts) + "</script>"
    links = []
    for section in sections:
        links.append(f'<li class="menu-section"><a href="/{section.lower()}/">{section}</a><ul>')
        for _ in range(rng.randint(12, 22)):
            label = _words(rng, rng.randint(1, 3)).title()
            links.append(
                f'<li><a href="/{section.lower()}/{label.lower().replace(" ", "-")}/">{label}</a></li>'
            )
        links.append("</ul></li>")
    site.menu = (
        f'<header class="site-header"><a class="logo" href="/">{escape(site.name)}</a>'
        f'<nav class="main-menu" role="navigation"><ul>{"".join(links)}</ul></nav>'
        '<form class="search" action="/recherche"><input name="q" type="search"><button>OK</button></form>'
        "</header>"
    )
    legal = (
        "Tous droits réservés. Toute reproduction, même partielle, est interdite sans autorisation."
        if site.lang == "fr"
        else "All rights reserved. No part of this site may be reproduced without permission."
    )
    foot_links = "".join(
        f'<li><a href="/{_words(rng, 1)}/">{_words(rng, rng.randint(1, 3)).title()}</a></li>'
        for _ in range(110)
    )
    site.footer = (
        f'<footer class="site-footer"><ul class="footer-links">{foot_links}</ul>'
        f'<p class="legal">© 2026 {escape(site.name)}. {legal}</p></footer>'
    )
    # a bundled script of teasers (a site's initial state): pages take as much as they need
    teasers = []
    for i in range(400):
        teasers.append(
            "window.__STATE__.push("
            + json.dumps(
                {
                    "id": i,
                    "title": _words(rng, rng.randint(5, 10)),
                    "url": f"/{rng.choice(sections).lower()}/{i}-{_words(rng, 2).replace(' ', '-')}.html",
                    "img": f"/img/{rng.getrandbits(64):016x}.jpg",
                    "tags": [_words(rng, 1) for _ in range(4)],
                }
            )
            + ");"
        )
    site.filler = teasers


def _fill(template: str, rng: random.Random, *, member: str, events: list[str]) -> str:
    event = rng.choice(events).format(
        amount=rng.choice([3, 5, 8, 12, 15, 20, 25, 40]),
        phase=rng.choice(["I", "II", "III", "I/II"]),
        partner=rng.choice(PARTNERS),
        city=rng.choice(CITIES),
    )
    return template.format(member=member, city=rng.choice(CITIES), event=event)


def _article_text(
    rng: random.Random, lang: str, members: list[str]
) -> tuple[str, str, list[str], list[str]]:
    """(title, summary, paragraphs, members named) of one article: 4 to 9 KB of text."""
    sentences, titles, events = (
        (FR_SENTENCES, FR_TITLES, FR_EVENTS)
        if lang == "fr"
        else (EN_SENTENCES, EN_TITLES, EN_EVENTS)
    )
    named = rng.sample(members, rng.randint(1, 3))
    lead = named[0]
    title = _fill(rng.choice(titles), rng, member=lead, events=events)
    title = title[0].upper() + title[1:]
    paragraphs: list[str] = []
    size = 0
    target = rng.randint(4_000, 9_000)
    while size < target:
        sentence_count = rng.randint(3, 6)
        paragraph = " ".join(
            _fill(rng.choice(sentences), rng, member=rng.choice(named), events=events)
            for _ in range(sentence_count)
        )
        paragraphs.append(paragraph)
        size += len(paragraph)
    summary = paragraphs[0][:300].rsplit(" ", 1)[0] + "…"
    return title, summary, paragraphs, named


def _page_html(site: Site, page: Page, url: str, rng: random.Random, target: int) -> bytes:
    sections = SECTIONS_FR if site.lang == "fr" else SECTIONS_EN
    fr = site.lang == "fr"
    stamp = page.published.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    ld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": page.title,
            "datePublished": stamp,
            "author": {"@type": "Person", "name": "Rédaction" if fr else "Newsroom"},
            "publisher": {"@type": "Organization", "name": site.name},
        },
        ensure_ascii=False,
    )
    body_parts = []
    for i, paragraph in enumerate(page.body):
        if i and i % 3 == 0:
            body_parts.append(f"<h2>{escape(_words(rng, 4).capitalize())}</h2>")
        body_parts.append(f"<p>{escape(paragraph)}</p>")
        if i == 1:
            body_parts.append(
                '<div class="ad ad-inread" data-slot="inread"><span>Publicité</span></div>'
            )
    related = "".join(
        f'<li><a href="/{rng.choice(sections).lower()}/{rng.randint(1000, 99999)}.html">{_words(rng, rng.randint(5, 9)).capitalize()}</a></li>'
        for _ in range(10)
    )
    most_read = "".join(
        f'<li><span class="rank">{i + 1}</span><a href="/{i}.html">{_words(rng, 7).capitalize()}</a></li>'
        for i in range(10)
    )
    read_also = "Lire aussi" if fr else "Read also"
    cookie = (
        "Nous utilisons des cookies pour améliorer votre expérience et mesurer l'audience."
        if fr
        else "We use cookies to improve your experience and measure our audience."
    )
    newsletter = "Inscrivez-vous à notre newsletter" if fr else "Sign up for our newsletter"
    head = (
        f'<!DOCTYPE html><html lang="{site.lang}"><head><meta charset="utf-8">'
        f"<title>{escape(page.title)} - {escape(site.name)}</title>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="description" content="{escape(page.summary)}">'
        f'<meta property="og:title" content="{escape(page.title)}">'
        f'<meta property="og:url" content="http://{site.host}/">'
        f'<meta property="article:published_time" content="{stamp}">'
        f'<link rel="canonical" href="{escape(url)}">'
        + "".join(f'<link rel="stylesheet" href="/static/css/{i}.css">' for i in range(8))
        + f'<script type="application/ld+json">{ld}</script>'
        + site.head_css
        + site.head_js
        + "</head>"
    )
    article = (
        '<main id="content"><article class="article">'
        f'<nav class="breadcrumb"><a href="/">{escape(site.name)}</a> › '
        f'<a href="/{sections[0].lower()}/">{sections[0]}</a></nav>'
        f'<h1 class="article-title">{escape(page.title)}</h1>'
        f'<p class="byline">{"Par la rédaction" if fr else "By the newsroom"}, '
        f'<time datetime="{stamp}">{page.published:%d/%m/%Y %H:%M}</time></p>'
        f'<p class="chapo"><strong>{escape(page.summary)}</strong></p>'
        f'<div class="article-body">{"".join(body_parts)}</div>'
        f'<div class="share">{"Partager" if fr else "Share"}: '
        '<a href="#">Facebook</a> <a href="#">X</a> <a href="#">LinkedIn</a></div>'
        f'<aside class="related"><h3>{read_also}</h3><ul>{related}</ul></aside>'
        "</article></main>"
        f'<aside class="sidebar"><h3>{"Les plus lus" if fr else "Most read"}</h3><ol>{most_read}</ol>'
        f'<form class="newsletter"><label>{newsletter}</label><input type="email"></form>'
        '<div class="ad ad-sidebar" data-slot="side1"></div></aside>'
    )
    start = (
        head
        + f'<body class="article-page"><div id="cookie-banner" class="cookie">{cookie} '
        + "<button>OK</button></div>"
        + site.menu
        + article
        + site.footer
    )
    room = target - len(start.encode("utf-8")) - 40
    state: list[str] = ["window.__STATE__=[];"]
    used = 0
    offset = rng.randrange(len(site.filler))
    while used < room:
        chunk = site.filler[offset % len(site.filler)]
        offset += 1
        state.append(chunk)
        used += len(chunk)
    return (start + "<script>" + "".join(state) + "</script></body></html>").encode("utf-8")


def _rss(site: Site, title: str, feed_url: str, items: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
        f"<title>{escape(title)}</title>\n<link>http://{site.host}/</link>\n"
        f'<atom:link href="{escape(feed_url)}" rel="self" type="application/rss+xml"/>\n'
        f"<description>{escape(site.name)}</description>\n<language>{site.lang}</language>\n"
        + "".join(items)
        + "</channel>\n</rss>\n"
    ).encode()


def _rss_item(url: str, title: str, summary: str, when: datetime, content: str | None) -> str:
    extra = f"<content:encoded><![CDATA[{content}]]></content:encoded>\n" if content else ""
    return (
        "<item>\n"
        f"<title>{escape(title)}</title>\n<link>{escape(url)}</link>\n"
        f'<guid isPermaLink="true">{escape(url)}</guid>\n'
        f"<pubDate>{format_datetime(when)}</pubDate>\n"
        "<dc:creator>Rédaction</dc:creator>\n"
        f"<description>{escape('<p>' + summary + '</p>')}</description>\n{extra}</item>\n"
    )


def _atom(site: Site, title: str, feed_url: str, entries: list[str], updated: datetime) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{site.lang}">\n'
        f"<title>{escape(title)}</title>\n<id>{escape(feed_url)}</id>\n"
        f'<link rel="self" href="{escape(feed_url)}"/>\n'
        f"<updated>{updated.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>\n"
        + "".join(entries)
        + "</feed>\n"
    ).encode()


def _atom_entry(url: str, title: str, summary: str, when: datetime) -> str:
    return (
        "<entry>\n"
        f'<title>{escape(title)}</title>\n<link href="{escape(url)}"/>\n<id>{escape(url)}</id>\n'
        f"<updated>{when.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>\n"
        f"<author><name>Rédaction</name></author>\n"
        f'<summary type="html">{escape("<p>" + summary + "</p>")}</summary>\n</entry>\n'
    )


def host_of(site: int, port: int) -> str:
    """Each site on its own loopback address (127.0.0.2, 127.0.0.3 ...): its own per-host limits."""
    return f"127.0.0.{site + 2}:{port}"


def build_corpus(*, members: list[str], seed: int, scale: float, port: int) -> Corpus:
    """The corpus at ``scale`` (1.0: 200 feeds x 50 entries, 2,000 pages), for a server on ``port``."""
    rng = random.Random(seed)
    feeds_total = max(2, round(FULL_FEEDS * scale))
    pages_total = max(ENTRIES_PER_FEED, round(FULL_PAGES * scale))
    publisher_feeds = max(1, pages_total // ENTRIES_PER_FEED)
    site_count = max(1, min(20, -(-feeds_total // FEEDS_PER_SITE)))
    sites = [
        Site(
            index=i,
            host=host_of(i, port),
            name=("Le " if i % 2 == 0 else "The ")
            + _words(rng, 1).title()
            + (" Éco" if i % 2 == 0 else " Post"),
            lang="fr" if i % 2 == 0 else "en",
        )
        for i in range(site_count)
    ]
    for site in sites:
        _site_chrome(site, rng)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    files: dict[tuple[int, str], bytes] = {}
    feeds: list[tuple[int, str, bool, str]] = []
    pages: list[Page] = []
    page_bytes = 0
    # feeds take turns over the sites; the first ``publisher_feeds`` carry article pages
    for f in range(feeds_total):
        site = sites[f % site_count]
        publisher = f < publisher_feeds
        feed_path = f"feeds/{f}.{'atom' if f % 4 == 3 else 'xml'}"
        feed_url = f"http://{site.host}/{feed_path}"
        items: list[str] = []
        for e in range(ENTRIES_PER_FEED):
            when = today + timedelta(hours=12) - timedelta(minutes=37 * (e + 1) + f)
            if publisher:
                title, summary, body, named = _article_text(rng, site.lang, members)
                path = f"articles/{f}-{e}-{rng.getrandbits(32):08x}.html"
                page = Page(site.index, path, title, summary, body, site.lang, when, named)
                pages.append(page)
                url = f"http://{site.host}/{path}"
                html = _page_html(site, page, url, rng, rng.randint(60_000, 120_000))
                files[(site.index, path)] = html
                page_bytes += len(html)
            elif pages and rng.random() < COPY_SHARE:
                # a rewritten copy of a publisher's article (same story, another outlet)
                source = rng.choice(pages)
                title = source.title + (" - Dépêche" if site.lang == "fr" else " - Wire")
                summary = (
                    "Selon nos informations, " if site.lang == "fr" else "We learn that "
                ) + source.summary
                path = f"news/{f}-{e}.html"
                url = f"http://{site.host}/{path}"
            else:
                title, summary, _, _ = _article_text(rng, site.lang, members)
                path = f"news/{f}-{e}.html"
                url = f"http://{site.host}/{path}"
            content = None
            if not publisher and f % 5 == 1:  # some feeds carry the full text in the feed
                content = "".join(
                    f"<p>{escape(p)}</p>" for p in _article_text(rng, site.lang, members)[2][:4]
                )
            if f % 4 == 3:
                items.append(_atom_entry(url, title, summary, when))
            else:
                items.append(_rss_item(url, title, summary, when, content))
        name = f"{site.name} – {'fil' if site.lang == 'fr' else 'feed'} {f}"
        if f % 4 == 3:
            files[(site.index, feed_path)] = _atom(site, name, feed_url, items, today)
        else:
            files[(site.index, feed_path)] = _rss(site, name, feed_url, items)
        feeds.append((site.index, feed_path, publisher, site.lang))
    for site in sites:
        files[(site.index, "robots.txt")] = b"User-agent: *\nDisallow: /private/\n"
    return Corpus(
        files=files,
        feeds=feeds,
        sites=site_count,
        pages=len(pages),
        entries=feeds_total * ENTRIES_PER_FEED,
        page_bytes=page_bytes,
    )


def etag(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


SMALL_FEEDS = 3_000
SMALL_SITES = 200  # loopback addresses 127.0.0.2 to 127.0.0.201, 15 feeds each at scale 1
SMALL_ENTRIES = (3, 8)  # entries per small feed, at least and at most


def build_small_corpus(*, members: list[str], seed: int, scale: float, port: int) -> Corpus:
    """Many small sources: 3,000 feeds of 3 to 8 entries at scale 1.0, on 200 sites, no
    article pages (the feeds are read with ``fetch_articles: false``), as a news watch
    made of many blogs, company newsrooms and news-search feeds looks. A tenth of the
    entries repeat another feed's title and summary, so stories have copies to group."""
    rng = random.Random(seed)
    feeds_total = max(2, round(SMALL_FEEDS * scale))
    site_count = max(1, min(SMALL_SITES, feeds_total))
    sites = [
        Site(
            index=i,
            host=host_of(i, port),
            name=("La lettre " if i % 2 == 0 else "The ") + _words(rng, 1).title(),
            lang="fr" if i % 2 == 0 else "en",
        )
        for i in range(site_count)
    ]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    files: dict[tuple[int, str], bytes] = {}
    feeds: list[tuple[int, str, bool, str]] = []
    told: list[tuple[str, str, str]] = []  # (lang, title, summary) of entries written so far
    entries = 0
    for f in range(feeds_total):
        site = sites[f % site_count]
        atom = f % 3 == 2
        feed_path = f"small/{f}.{'atom' if atom else 'xml'}"
        feed_url = f"http://{site.host}/{feed_path}"
        items: list[str] = []
        for e in range(rng.randint(*SMALL_ENTRIES)):
            when = today + timedelta(hours=12) - timedelta(minutes=53 * (e + 1) + f % 600)
            same_lang = [t for t in told[-200:] if t[0] == site.lang]
            if same_lang and rng.random() < COPY_SHARE:
                _, title, summary = rng.choice(same_lang)  # another outlet's copy of a story
            else:
                title, summary, _, _ = _article_text(rng, site.lang, members)
                told.append((site.lang, title, summary))
            url = f"http://{site.host}/posts/{f}-{e}-{rng.getrandbits(24):06x}.html"
            if atom:
                items.append(_atom_entry(url, title, summary, when))
            else:
                items.append(_rss_item(url, title, summary, when, None))
            entries += 1
        name = f"{site.name} – {'actualités' if site.lang == 'fr' else 'news'} {f}"
        if atom:
            files[(site.index, feed_path)] = _atom(site, name, feed_url, items, today)
        else:
            files[(site.index, feed_path)] = _rss(site, name, feed_url, items)
        feeds.append((site.index, feed_path, False, site.lang))
    for site in sites:
        files[(site.index, "robots.txt")] = b"User-agent: *\nDisallow: /private/\n"
    return Corpus(
        files=files, feeds=feeds, sites=site_count, pages=0, entries=entries, page_bytes=0
    )
