"""A web page of a member's site -> what newsroom discovery reads of it: the feeds it
advertises, the links its navigation calls news, and the CSS selector that picks its
article links when it is a press listing. Pure; runs in a bounded child (sandbox).

Hostile HTML: parsed by BeautifulSoup on lxml, at most MAX_ANCHORS links read, every
URL kept only when it is absolute http(s).
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag, XMLParsedAsHTMLWarning

from pipeline.sources.parse.text import MAX_TITLE, plain_text
from pipeline.sources.sandbox import Limits, run_bounded

MAX_ANCHORS = 3_000  # links read from one page
MAX_ALTERNATES = 20
MAX_NEWS_LINKS = 10
MIN_LISTING_LINKS = 3  # fewer article links than this is not a listing
FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/rdf+xml": "rss",
    "application/feed+json": "json",
    "application/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/x.atom+xml": "atom",
    "application/x-atom+xml": "atom",
}
# words (folded: lower case, no accents) that say a feed carries comments, not news
COMMENT_WORDS = re.compile(r"\b(comments?|commentaires?|kommentare|reactions?)\b")
# how a comment feed's entries are titled ("Commentaire sur X par Y", "Comment on X by Y")
COMMENT_ENTRY = re.compile(r"^(comments? on\b|commentaires? sur\b|re ?:|reponse a\b|reply to\b)")
# what a navigation calls its news, strongest first (folded)
NEWS_WORDS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (
        5,
        re.compile(
            r"\b(communiques?( de presse)?|press releases?|news ?releases?|newsroom|"
            r"salle de presse|espace presse|press ?room|media ?room|press centre|press center)\b"
        ),
    ),
    (4, re.compile(r"\b(actualites?|actus?|news|nouvelles|latest news|dernieres nouvelles)\b")),
    (2, re.compile(r"\b(presse|press|medias?|media|blog|journal|insights)\b")),
)
# the same words as they appear in paths ("/fr/actualites/", "/en/press-releases")
NEWS_PATHS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (
        5,
        re.compile(
            r"(communique|press-release|pressrelease|newsroom|salle-de-presse|espace-presse|press-room|media-room)"
        ),
    ),
    (4, re.compile(r"(^|/)(actualites?|actus?|news|nouvelles)(/|$|-|\.)")),
    (2, re.compile(r"(^|/)(presse|press|medias?|blog)(/|$|-|\.)")),
)
# the page's menus (their links say where the site's sections are)
_MENU = re.compile(
    r"(^|[-_ ])(nav|navbar|navigation|menu|mainmenu|header|footer|topbar)([-_ ]|$)", re.IGNORECASE
)
# links that lead away from a listing's articles: menus, sharing, paging, widgets
_CHROME = re.compile(
    r"(^|[-_ ])(nav|navbar|navigation|menu|breadcrumbs?|pagination|pager|social|share|"
    r"sharing|sidebar|widget|cookie|skip)([-_ ]|$)",
    re.IGNORECASE,
)
_GENERIC_TEXT = re.compile(
    r"^(lire la suite|lire plus|en savoir plus|voir plus|voir tout|read more|more|learn more|"
    r"suite|plus|details?|découvrir|discover|tout voir|see all|view all)\W*$",
    re.IGNORECASE,
)
_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,60}$")
_SKIP_EXTENSIONS = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".zip", ".doc", ".docx", ".mp4")


def fold(text: str) -> str:
    """Lower case, accents off, one space: how news words are compared."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.lower().replace("’", "'").split())


@dataclass(frozen=True, slots=True)
class Alternate:
    """A feed a page advertises (<link rel=alternate type=...>)."""

    url: str
    kind: str  # rss, atom, json or xml
    title: str = ""

    @property
    def comments(self) -> bool:
        """A comment feed (WordPress's /comments/feed/ and ?feed=comments-rss2, "Flux des
        commentaires", "Comments on ...")."""
        parts = urlsplit(self.url.lower())
        return bool(COMMENT_WORDS.search(fold(self.title))) or "comment" in parts.path + parts.query


@dataclass(frozen=True, slots=True)
class NewsLink:
    """A link of the page to what looks like the site's news, with how strongly."""

    url: str
    text: str
    score: int


@dataclass(frozen=True, slots=True)
class ListingGuess:
    """A CSS selector that picks a listing's article links, and the links it picks."""

    selector: str
    links: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PageFacts:
    alternates: tuple[Alternate, ...]
    news_links: tuple[NewsLink, ...]  # on the page's own site, best first
    listing: ListingGuess | None  # its article links, when the page lists articles
    lang: str | None = None


def _absolute(base: str, href: object) -> str | None:
    if not isinstance(href, str) or not href.strip():
        return None
    try:
        url = urljoin(base, href.strip())
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port out of range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url.split("#", 1)[0]


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    return f"{host}:{parts.port}" if parts.port else host


def same_site(a: str, b: str) -> bool:
    """The same host (``www.`` aside, port included), or one a subdomain of the other."""
    host_a, host_b = _host(a), _host(b)
    return host_a == host_b or host_a.endswith("." + host_b) or host_b.endswith("." + host_a)


def news_score(text: str, url: str) -> int:
    """How much a link's text and path say "news": 0 (not at all) to 5 (press releases)."""
    folded = fold(text)[:80]
    score = next((s for s, pattern in NEWS_WORDS if pattern.search(folded)), 0)
    path = urlsplit(url).path.lower()
    score = max(score, next((s for s, pattern in NEWS_PATHS if pattern.search(path)), 0))
    return score


def _marks(element: Tag) -> str:
    return " ".join([*(element.get("class") or []), str(element.get("id") or "")])


def _in_chrome(anchor: Tag) -> bool:
    """A link of the page's frame (menus, sidebars, sharing, paging), not of its content.
    A <header> or <footer> inside an <article> is the article's own."""
    parents = [p for p in anchor.parents if isinstance(p, Tag)]
    for index, parent in enumerate(parents):
        if parent.name in ("body", "html", "[document]"):
            break
        if parent.name in ("nav", "aside", "form"):
            return True
        if parent.name in ("header", "footer") and not any(
            p.name == "article" for p in parents[index + 1 :]
        ):
            return True
        if _CHROME.search(_marks(parent)):
            return True
    return False


def _in_navigation(anchor: Tag) -> bool:
    return any(
        isinstance(p, Tag) and (p.name in ("nav", "header", "footer") or _MENU.search(_marks(p)))
        for p in anchor.parents
    )


def _step(element: Tag) -> str:
    """One element of a selector: its tag and first usable class."""
    classes = [c for c in (element.get("class") or []) if _CLASS.match(c)]
    return f"{element.name}.{classes[0]}" if classes else str(element.name)


def _signature(anchor: Tag, depth: int) -> tuple[str, ...]:
    steps = [_step(anchor)]
    for parent in anchor.parents:
        if len(steps) >= depth or not isinstance(parent, Tag) or parent.name in ("body", "html"):
            break
        steps.append(_step(parent))
    return tuple(reversed(steps))


def _article_like(url: str, page: str) -> bool:
    """A link that may be an article: deeper than the page, or a slug of a few words, or
    numbered; not the page itself, not a file."""
    parts = urlsplit(url)
    path = parts.path
    if url.rstrip("/") == page.rstrip("/") or path.lower().endswith(_SKIP_EXTENSIONS):
        return False
    if re.search(r"(^|&)(p|id|article|news|post)=\d", parts.query):
        return True  # a CMS without readable addresses: /?p=123, /actus.php?id=45
    page_path = urlsplit(page).path.rstrip("/")
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return (
        (path.startswith(page_path + "/") and len(path.rstrip("/")) > len(page_path) + 1)
        or last.count("-") >= 2
        or any(c.isdigit() for c in last)
    )


def _guess_listing(
    soup: BeautifulSoup, anchors: list[tuple[Tag, str]], url: str
) -> ListingGuess | None:
    """The repeated block of article links on the page, as a CSS selector checked on it."""
    groups: dict[tuple[str, ...], list[tuple[Tag, str]]] = {}
    articles: set[str] = set()  # every link of the content to what may be an article
    for anchor, href in anchors:
        if not same_site(href, url) or not _article_like(href, url) or _in_chrome(anchor):
            continue
        articles.add(href)
        text = plain_text(anchor.get_text(" ", strip=True), limit=MAX_TITLE)
        if _GENERIC_TEXT.match(text) or len(text.split()) < 3:
            continue  # a headline has a few words; a product or a name, one or two
        groups.setdefault(_signature(anchor, 3), []).append((anchor, href))
    ranked = sorted(
        groups.items(), key=lambda item: (-len({h for _, h in item[1]}), len(" ".join(item[0])))
    )
    for signature, members in ranked[:5]:
        if len({href for _, href in members}) < MIN_LISTING_LINKS:
            break
        for selector in _selectors(signature, members):
            picked = _pick(soup, selector, url)
            # it picks the articles' links and nothing else: no menu, no page of the site
            if len(set(picked)) >= MIN_LISTING_LINKS and set(picked) <= articles:
                return ListingGuess(selector=selector, links=tuple(dict.fromkeys(picked)))
    return None


def _selectors(signature: tuple[str, ...], members: list[tuple[Tag, str]]) -> list[str]:
    """Selectors for a group of links, shortest first; the last ones anchored on the
    container the links share (its id, else its class)."""
    found = [" ".join(signature[-2:]), " ".join(signature)]
    container = _common_ancestor([a for a, _ in members])
    if container is not None:
        ident = container.get("id")
        if isinstance(ident, str) and _CLASS.match(ident):
            found.append(f"#{ident} {' '.join(signature[-2:])}")
        found.append(f"{_step(container)} {' '.join(signature[-2:])}")
        # markup without classes: anchored on the nearest landmark or identified block
        for parent in [container, *container.parents]:
            if not isinstance(parent, Tag) or parent.name in ("body", "html", "[document]"):
                break
            ident = parent.get("id")
            if isinstance(ident, str) and _CLASS.match(ident):
                found.append(f"#{ident} {' '.join(signature)}")
                break
            if parent.name in ("main", "article", "section"):
                found.append(f"{_step(parent)} {' '.join(signature)}")
                break
    return list(dict.fromkeys(found))


def _common_ancestor(anchors: list[Tag]) -> Tag | None:
    first = [p for p in anchors[0].parents if isinstance(p, Tag)]
    for candidate in first:
        if candidate.name in ("body", "html", "[document]"):
            return None
        if all(candidate in a.parents for a in anchors[1:20]):
            return candidate
    return None


def _pick(soup: BeautifulSoup, selector: str, url: str) -> list[str]:
    try:
        elements = soup.select(selector, limit=MAX_ANCHORS)
    except Exception:  # soupsieve refuses a selector built from odd markup: not this one
        return []
    links = []
    for element in elements:
        anchor = element if element.name == "a" else element.find("a", href=True)
        if isinstance(anchor, Tag) and (href := _absolute(url, anchor.get("href"))):
            links.append(href)
    return links


def read_page(html: bytes, *, url: str) -> PageFacts:
    """What discovery needs of one page (see the module)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(html, "lxml")
    base_tag = soup.find("base", href=True)
    base = (_absolute(url, base_tag.get("href")) if isinstance(base_tag, Tag) else None) or url
    alternates: list[Alternate] = []
    for link in soup.find_all("link", href=True, limit=200):
        rel = [r.lower() for r in (link.get("rel") or [])]
        kind = FEED_TYPES.get(str(link.get("type") or "").split(";")[0].strip().lower())
        href = _absolute(base, link.get("href"))
        if "alternate" in rel and kind and href and len(alternates) < MAX_ALTERNATES:
            title = plain_text(str(link.get("title") or ""), limit=MAX_TITLE)
            alternates.append(Alternate(url=href, kind=kind, title=title))
    anchors: list[tuple[Tag, str]] = []
    for anchor in soup.find_all("a", href=True, limit=MAX_ANCHORS):
        href = _absolute(base, anchor.get("href"))
        if href:
            anchors.append((anchor, href))
    scored: dict[str, NewsLink] = {}
    for anchor, href in anchors:
        if not same_site(href, url) or href.rstrip("/") == url.rstrip("/"):
            continue
        if urlsplit(href).path.lower().endswith(_SKIP_EXTENSIONS):
            continue
        text = plain_text(
            anchor.get_text(" ", strip=True) or str(anchor.get("title") or ""), limit=80
        )
        score = news_score(text, href)
        if not score:
            continue
        if _in_navigation(anchor):
            score += 1  # what the menu calls news, rather than an article mentioning "news"
        known = scored.get(href)
        if known is None or known.score < score:
            scored[href] = NewsLink(url=href, text=text, score=score)
    news = sorted(scored.values(), key=lambda n: (-n.score, len(urlsplit(n.url).path), n.url))
    html_tag = soup.find("html")
    lang = html_tag.get("lang") if isinstance(html_tag, Tag) else None
    return PageFacts(
        alternates=tuple(alternates),
        news_links=tuple(news[:MAX_NEWS_LINKS]),
        listing=_guess_listing(soup, anchors, url),
        lang=str(lang)[:10] if isinstance(lang, str) else None,
    )


def _page_payload(payload: tuple[bytes, str]) -> PageFacts:
    html, url = payload
    return read_page(html, url=url)


def read_page_guarded(html: bytes, *, url: str, limits: Limits | None = None) -> PageFacts:
    """read_page in a bounded child process. Blocking; raises ParseError."""
    return run_bounded(
        _page_payload, (html, url), limits=limits or Limits(), what="reading the page"
    )
