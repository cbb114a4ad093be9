"""Listing page HTML + CSS selectors -> entries (link, title, date) and the next page's URL."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag, XMLParsedAsHTMLWarning

from pipeline.errors import ParseError
from pipeline.models import Entry
from pipeline.sources.parse.text import MAX_TITLE, plain_text
from pipeline.sources.sandbox import Limits, run_bounded

MAX_LINKS = 500  # entries read from one listing page


@dataclass(frozen=True, slots=True)
class ListingSpec:
    selector: str
    item_selector: str | None = None
    title_selector: str | None = None
    date_selector: str | None = None
    next_selector: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    entries: tuple[Entry, ...]
    next_url: str | None


def parse_date(text: str | None) -> datetime | None:
    """A date as pages write it ("2026-11-20", "20 novembre 2026", "Nov 20, 2026") -> UTC."""
    if not text or not text.strip():
        return None
    import dateparser

    when = dateparser.parse(
        text.strip()[:100],
        languages=["fr", "en"],
        settings={
            "RETURN_AS_TIMEZONE_AWARE": True,
            "TO_TIMEZONE": "UTC",
            "PREFER_DAY_OF_MONTH": "first",
        },
    )
    return when.astimezone(UTC) if when else None


def _link(element: Tag) -> Tag | None:
    if element.name == "a" and element.get("href"):
        return element
    found = element.find("a", href=True)
    return found if isinstance(found, Tag) else None


def _absolute(base: str, href: object) -> str | None:
    if not isinstance(href, str) or not href.strip():
        return None
    url = urljoin(base, href.strip())
    return url if url.lower().startswith(("http://", "https://")) else None


def _date_of(element: Tag | None) -> datetime | None:
    if element is None:
        return None
    for attribute in ("datetime", "content", "title"):
        value = element.get(attribute)
        if isinstance(value, str) and (when := parse_date(value)):
            return when
    return parse_date(element.get_text(" ", strip=True))


def parse_listing(html: bytes, *, url: str, spec: ListingSpec) -> Listing:
    """Read one listing page. Raises ParseError when the selector finds nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(html, "lxml")
    base_tag = soup.find("base", href=True)
    base = _absolute(url, base_tag.get("href")) if isinstance(base_tag, Tag) else None
    base = base or url
    blocks: list[tuple[Tag, Tag]] = []  # (item, link)
    if spec.item_selector:
        for item in soup.select(spec.item_selector, limit=MAX_LINKS):
            link = next((el for el in item.select(spec.selector) if _link(el)), None)
            if link is not None:
                blocks.append((item, link))
    else:
        blocks = [(el, el) for el in soup.select(spec.selector, limit=MAX_LINKS)]
    entries: list[Entry] = []
    seen: set[str] = set()
    for item, element in blocks:
        anchor = _link(element)
        href = _absolute(base, anchor.get("href")) if anchor is not None else None
        if not href or href in seen:
            continue
        seen.add(href)
        title_el = item.select_one(spec.title_selector) if spec.title_selector else None
        title_source = title_el or anchor or element
        title = plain_text(title_source.get_text(" ", strip=True), limit=MAX_TITLE)
        if not title and anchor is not None and isinstance(anchor.get("title"), str):
            title = plain_text(str(anchor.get("title")), limit=MAX_TITLE)
        published = _date_of(item.select_one(spec.date_selector)) if spec.date_selector else None
        entries.append(
            Entry(
                link=href,
                title=title,
                summary="",
                published_at=published,
                date_source="page" if published else "none",
            )
        )
    if not blocks:
        raise ParseError(f"the selector {spec.selector!r} matches nothing on the page")
    next_url = None
    if spec.next_selector:
        found = soup.select_one(spec.next_selector)
        anchor = _link(found) if found is not None else None
        next_url = _absolute(base, anchor.get("href")) if anchor is not None else None
    return Listing(entries=tuple(entries), next_url=next_url if next_url != url else None)


def _listing_payload(payload: tuple[bytes, str, ListingSpec]) -> Listing:
    html, url, spec = payload
    return parse_listing(html, url=url, spec=spec)


def parse_listing_guarded(
    html: bytes, *, url: str, spec: ListingSpec, limits: Limits | None = None
) -> Listing:
    """parse_listing in a bounded child process. Blocking; raises ParseError."""
    return run_bounded(
        _listing_payload, (html, url, spec), limits=limits or Limits(), what="reading the page"
    )
