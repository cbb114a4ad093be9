"""Article page bytes -> main text, title, author, date, language and canonical URL.

trafilatura does the extraction on the HTML veille already fetched: it never
downloads anything itself. The work runs in a bounded child process (sandbox.py),
so a page that makes the extractor spin costs that one article.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import urljoin

from pipeline.errors import ParseError
from pipeline.sources.parse.text import normalise_lang as normalise_lang
from pipeline.sources.sandbox import Limits, run_bounded

MAX_TEXT = 200_000  # characters kept of one article's main text
MIN_WORDS = 15  # fewer is a menu or a caption, not an article
_LANG_ATTRIBUTE = re.compile(rb"""(?<![\w-])lang\s*+=\s*+["']?([A-Za-z]{2,3})""", re.IGNORECASE)
_WORD = re.compile(r"[a-zà-ÿ']+")
# The commonest short words of each language: enough to tell French from English
# in a paragraph, and both from anything else.
_FRENCH = frozenset(
    [
        "le",
        "la",
        "les",
        "des",
        "est",
        "une",
        "pour",
        "dans",
        "qui",
        "que",
        "avec",
        "sur",
        "du",
        "au",
        "aux",
        "et",
        "pas",
        "par",
        "ce",
        "cette",
        "sont",
        "ont",
        "été",
        "son",
        "ses",
        "leur",
        "nous",
        "vous",
        "il",
        "elle",
        "ils",
        "un",
        "mais",
        "ou",
        "où",
        "plus",
        "être",
        "d",
        "l",
        "qu",
    ]
)
_ENGLISH = frozenset(
    [
        "the",
        "and",
        "of",
        "to",
        "is",
        "in",
        "for",
        "that",
        "with",
        "on",
        "are",
        "was",
        "as",
        "by",
        "this",
        "its",
        "has",
        "have",
        "from",
        "be",
        "at",
        "an",
        "were",
        "which",
        "it",
        "not",
        "or",
        "but",
        "their",
        "will",
        "said",
    ]
)


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    lang: str | None = None  # fr, en or other
    canonical: str | None = None


def detect_lang(text: str) -> str | None:
    """fr, en or other from stop-word counts; None when the text is too short to tell."""
    words = _WORD.findall(text[:20_000].lower().replace("’", "'"))
    tokens = [w.strip("'") for w in words]
    if len(tokens) < 20:
        return None
    french = sum(1 for t in tokens if t in _FRENCH)
    english = sum(1 for t in tokens if t in _ENGLISH)
    if (french + english) / len(tokens) < 0.08:
        return "other"
    if french > 1.5 * english:
        return "fr"
    if english > 1.5 * french:
        return "en"
    return None


# Patterns over fetched bytes are linear in their input: a tag is found by its name
# and closed with one find(), never by a pattern that could rescan the rest of the page
# from every "<link" (which made "<link <link <link ..." quadratic); an attribute name
# starts only where no name character precedes it, so a long word is scanned once.
_TAG_NAME = {
    name: re.compile(rb"<" + name + rb"(?![\w-])", re.IGNORECASE) for name in (b"link", b"html")
}
_ATTRIBUTE = re.compile(
    rb"""(?<![a-zA-Z-])([a-zA-Z-]++)\s*+=\s*+(?:"([^"]*+)"|'([^']*+)'|([^\s>]++))"""
)


def tags(html: bytes, name: bytes) -> Iterator[bytes]:
    """Each ``<name ...>`` tag of ``html``, in one pass (a tag never closed ends the search)."""
    opening = _TAG_NAME[name]
    pos = 0
    while match := opening.search(html, pos):
        close = html.find(b">", match.end())
        if close < 0:
            return
        yield html[match.start() : close + 1]
        pos = close + 1


def html_lang(html: bytes) -> str | None:
    """The ``lang`` attribute of the page's first <html> tag."""
    for tag in tags(html, b"html"):
        match = _LANG_ATTRIBUTE.search(tag)
        return match.group(1).decode() if match else None
    return None


def canonical_link(html: bytes, *, url: str) -> str | None:
    """The page's <link rel="canonical"> as an absolute http(s) URL (og:url is not trusted:
    templates often set it to the home page)."""
    for tag in tags(html[:500_000], b"link"):
        attributes = {
            m.group(1).lower(): (m.group(2) or m.group(3) or m.group(4) or b"").decode(
                "utf-8", "replace"
            )
            for m in _ATTRIBUTE.finditer(tag)
        }
        if "canonical" in attributes.get(b"rel", "").lower().split() and attributes.get(b"href"):
            target = urljoin(url, unescape(attributes[b"href"].strip()))
            return target if target.lower().startswith(("http://", "https://")) else None
    return None


def _date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def extract_html(html: bytes, *, url: str) -> Extracted:
    """Extract in this process (the bounded child, or a test). Raises ParseError."""
    import trafilatura

    def attempt(fast: bool) -> tuple[dict[str, Any], str]:
        document = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            favor_precision=True,
            fast=fast,
            deduplicate=False,
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
        if isinstance(document, dict):
            fields = document
        else:
            fields = document.as_dict() if document is not None else {}
        return fields, str(fields.get("text") or "")[:MAX_TEXT].strip()

    # trafilatura alone first; its fallback extractors (about as long again) only for a
    # page where it finds too little
    fields, text = attempt(fast=True)
    if len(text.split()) < MIN_WORDS:
        fields, text = attempt(fast=False)
    if len(text.split()) < MIN_WORDS:
        raise ParseError("no article text found on the page")
    document = fields
    lang = normalise_lang(html_lang(html[:20_000])) or detect_lang(text)
    canonical = canonical_link(html, url=url)
    title, author = document.get("title"), document.get("author")
    return Extracted(
        text=text,
        title=title if isinstance(title, str) and title else None,
        author=str(author)[:200] if author else None,
        published_at=_date(document.get("date")),
        lang=lang,
        canonical=canonical,
    )


def _extract_payload(payload: tuple[bytes, str]) -> Extracted:
    html, url = payload
    return extract_html(html, url=url)


def extract_guarded(html: bytes, *, url: str, limits: Limits | None = None) -> Extracted:
    """Extract in a child process bounded in time and memory. Blocking; raises ParseError."""
    return run_bounded(
        _extract_payload, (html, url), limits=limits or Limits(), what="extracting the article"
    )


def discover_feeds(html: bytes, *, url: str) -> list[str]:
    """The feeds a page advertises (<link rel=alternate>, else feed-looking links), absolute."""
    from urllib.parse import urlsplit

    from trafilatura.feeds import FeedParameters, determine_feed

    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    text = html.decode("utf-8", "replace")
    found = determine_feed(text, FeedParameters(base, parts.hostname or "", url))
    return [link for link in found if link.lower().startswith(("http://", "https://"))]


def _discover_payload(payload: tuple[bytes, str]) -> list[str]:
    html, url = payload
    return discover_feeds(html, url=url)


def discover_guarded(html: bytes, *, url: str, limits: Limits | None = None) -> list[str]:
    """discover_feeds in a bounded child process. Blocking; raises ParseError."""
    return run_bounded(
        _discover_payload, (html, url), limits=limits or Limits(), what="reading the page"
    )
