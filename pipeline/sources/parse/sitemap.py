"""Sitemap bytes (plain, gzipped, index or Google News) -> child sitemaps or dated entries.

Parsed with lxml in its safe configuration (no network, no DTD, no entity
resolution) after the same prolog guard as feeds.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from pipeline.errors import ParseError
from pipeline.models import Entry
from pipeline.sources.parse.feed import guard_feed_bytes
from pipeline.sources.parse.listing import parse_date
from pipeline.sources.parse.text import MAX_TITLE, normalise_lang, plain_text
from pipeline.sources.sandbox import Limits, run_bounded

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit, uncompressed
MAX_LOCS = 50_000
# the newest page URLs one sitemap hands back to the run (chosen in the worker, so the
# run's process never holds, sorts or canonicalises a whole 50,000-URL file)
MAX_CANDIDATES = 5_000


@dataclass(frozen=True, slots=True)
class SitemapLink:
    url: str
    date: datetime | None = None
    title: str = ""
    lang: str | None = None
    key: str = ""  # its canonical URL, when the worker computed it (what the store knows it by)


@dataclass(frozen=True, slots=True)
class Sitemap:
    is_index: bool
    links: tuple[SitemapLink, ...]  # child sitemaps for an index, pages for a urlset


def gunzip_bounded(data: bytes, *, limit: int = MAX_SITEMAP_BYTES) -> bytes:
    """A .xml.gz body served without Content-Encoding: decompress, never past ``limit``."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ParseError(f"corrupt gzip sitemap: {exc}") from None
    if len(out) > limit:
        raise ParseError(f"sitemap larger than {limit:,} bytes once decompressed")
    return out


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(element: Any, *names: str) -> str:
    """Text of the first descendant whose local name is in ``names`` (any namespace)."""
    for child in element.iter():
        if _local(child.tag) in names and child.text:
            return str(child.text).strip()
    return ""


def w3c_date(text: str) -> datetime | None:
    """Sitemap dates are W3C datetimes ("2026-11-26", "2026-11-26T09:00:00+01:00"): read them
    directly, and only fall back to the slow general parser for what is not."""
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return parse_date(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def parse_sitemap(data: bytes, *, url: str, max_bytes: int = MAX_SITEMAP_BYTES) -> Sitemap:
    """Raises ParseError for anything that is not a sitemap. A gzipped file is refused past
    ``max_bytes`` once decompressed, like any other body."""
    if data[:2] == b"\x1f\x8b":
        data = gunzip_bounded(data, limit=max_bytes)
    data = guard_feed_bytes(data)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"not a sitemap: {exc}") from None
    if root is None:
        raise ParseError("not a sitemap: empty or not XML")
    kind = _local(root.tag)
    if kind not in ("sitemapindex", "urlset"):
        raise ParseError(f"not a sitemap: the root element is <{kind or '?'}>")
    links: list[SitemapLink] = []
    for block in root:
        if _local(block.tag) not in ("sitemap", "url"):
            continue
        loc = _child_text(block, "loc")
        if not loc.lower().startswith(("http://", "https://")):
            continue
        date = w3c_date(_child_text(block, "publication_date")) or w3c_date(
            _child_text(block, "lastmod")
        )
        links.append(
            SitemapLink(
                url=loc,
                date=date,
                title=plain_text(_child_text(block, "title"), limit=MAX_TITLE),
                lang=normalise_lang(_child_text(block, "language")),
            )
        )
        if len(links) >= MAX_LOCS:
            break
    return Sitemap(is_index=kind == "sitemapindex", links=tuple(links))


def recent(
    links: tuple[SitemapLink, ...], *, max_age_days: int, limit: int, now: datetime
) -> list[SitemapLink]:
    """The newest links within the age limit; undated links come last, and only to fill ``limit``."""
    cutoff = now - timedelta(days=max_age_days)
    dated = sorted(
        (lk for lk in links if lk.date and lk.date >= cutoff),
        key=lambda lk: lk.date or now,
        reverse=True,
    )
    undated = [lk for lk in links if lk.date is None]
    return (dated + undated)[:limit]


def to_entries(links: list[SitemapLink]) -> list[Entry]:
    return [
        Entry(
            link=lk.url,
            title=lk.title,
            summary="",
            published_at=lk.date.astimezone(UTC) if lk.date else None,
            date_source="sitemap" if lk.date else "none",
            lang=lk.lang,
        )
        for lk in links
    ]


@dataclass(frozen=True, slots=True)
class SitemapRequest:
    """What the worker needs to read a sitemap and keep only what a run can use."""

    data: bytes
    url: str
    max_bytes: int
    max_age_days: int
    now: datetime
    canonical: Callable[[str], str]  # a module-level function: it is pickled by name


def candidates(request: SitemapRequest) -> Sitemap:
    """An index as it is; of a urlset, the newest MAX_CANDIDATES links within the age
    limit (undated ones last), each with its canonical URL."""
    sitemap = parse_sitemap(request.data, url=request.url, max_bytes=request.max_bytes)
    if sitemap.is_index:
        return sitemap
    chosen = recent(
        sitemap.links, max_age_days=request.max_age_days, limit=MAX_CANDIDATES, now=request.now
    )
    return Sitemap(
        is_index=False,
        links=tuple(
            SitemapLink(lk.url, lk.date, lk.title, lk.lang, request.canonical(lk.url))
            for lk in chosen
        ),
    )


def parse_sitemap_guarded(request: SitemapRequest, *, limits: Limits | None = None) -> Sitemap:
    """``candidates`` in a bounded child process. Blocking; raises ParseError."""
    return run_bounded(candidates, request, limits=limits or Limits(), what="reading the sitemap")
