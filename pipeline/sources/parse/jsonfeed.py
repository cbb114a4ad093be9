"""JSON Feed 1.0 / 1.1 bytes -> ParsedFeed, with the entry fields the XML path gives.

Read with the standard library's json (a C parser) rather than a feed library: the
mapping is short, and every value is checked by hand so that a wrong type costs one
field, never the item or the feed (a pydantic schema would refuse the whole item). It
runs in the same bounded worker as the XML path (parse_feed_guarded), so time and
memory are bounded there; nesting too deep for the parser is refused here.
Spec: https://www.jsonfeed.org/version/1.1/ (1.0 `author`, 1.1 `authors` and `language`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from pipeline.errors import ParseError
from pipeline.models import Entry, ParsedFeed
from pipeline.sources.parse.text import (
    MAX_AUTHOR,
    MAX_SUMMARY,
    MAX_TITLE,
    feed_lang_code,
    plain_text,
    sane_date,
)

VERSION_PREFIX = "https://jsonfeed.org/version/"
# an item's HTML is cut to this many characters before it is reduced to plain text:
# the summary keeps at most MAX_SUMMARY characters of it anyway
MAX_MARKUP = 200_000
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _decode(data: bytes) -> str | None:
    """The text of a body that starts like JSON (after any BOM and blanks), else None."""
    text: str | None = None
    if data.startswith(_UTF8_BOM):
        data = data[3:]
    else:
        for bom, codec in _WIDE_BOMS:
            if data.startswith(bom):
                # a head cut inside a character still says how the body starts
                text = data[len(bom) :].decode(codec, errors="replace")
                break
    if text is None:
        head = data[:64].lstrip()
        if not head.startswith((b"{", b"[")):
            return None
        text = data.decode("utf-8", errors="replace")  # RFC 8259: JSON on the wire is UTF-8
    return text if text.lstrip()[:1] in ("{", "[") else None


def looks_like_json(data: bytes) -> bool:
    """Whether the body is to be read as JSON: recognised by its content, never its URL or type.

    Only the first bytes are decoded: an XML feed pays next to nothing for the question.
    """
    return _decode(data[:256]) is not None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _url(value: Any, base: str) -> str | None:
    """An http(s) URL, relative ones resolved against ``base``."""
    if not isinstance(value, str) or not value.strip() or len(value) > 2048:
        return None
    try:
        absolute = urljoin(base, value.strip())
    except ValueError:  # a malformed IPv6 literal and the like
        return None
    return absolute if absolute.lower().startswith(("http://", "https://")) else None


def _when(value: Any) -> datetime | None:
    """RFC 3339 (the spec's format), as an aware UTC datetime; None when unreadable."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 3339 requires an offset; assume UTC without one
    return when.astimezone(UTC)


def _authors(item: dict[str, Any], feed: dict[str, Any]) -> str:
    """1.1 ``authors`` (a list), else 1.0 ``author`` (an object); the item's, else the feed's."""
    for holder in (item, feed):
        found = holder.get("authors")
        people = found if isinstance(found, list) else [holder.get("author")]
        names = [_str(p.get("name")).strip() for p in people[:20] if isinstance(p, dict)]
        names = [n for n in names if n]
        if names:
            return ", ".join(names)
    return ""


def _feed_object(data: bytes) -> dict[str, Any]:
    text = _decode(data)
    if text is None:
        raise ParseError("not a feed: the body is not JSON")
    try:
        document = json.loads(text)
    except RecursionError:
        raise ParseError("refused: the JSON nests too deeply") from None
    except ValueError as exc:
        raise ParseError(f"not a valid JSON Feed: the JSON is malformed: {exc}") from None
    if not isinstance(document, dict):
        raise ParseError(
            f"not a feed: the body is a JSON {type(document).__name__}, "
            "not a JSON Feed object, and not XML"
        )
    version = document.get("version")
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIX):
        raise ParseError(
            "not a feed: the body is JSON but not a JSON Feed "
            f'(no "version" starting with {VERSION_PREFIX}), and not XML'
        )
    if not isinstance(document.get("items"), list):
        raise ParseError('not a valid JSON Feed: it has no "items" list')
    return document


def parse_json_feed(data: bytes, *, url: str, max_entries: int, now: datetime) -> ParsedFeed:
    """JSON Feed bytes -> ParsedFeed. Raises ParseError; a bad item is skipped, not fatal."""
    document = _feed_object(data)
    number = document["version"].removeprefix(VERSION_PREFIX).strip("/")
    version = {"1": "json10", "1.0": "json10", "1.1": "json11"}.get(number, "json")
    home = _url(document.get("home_page_url"), url)
    base = home or url
    feed_lang = feed_lang_code(document.get("language"))
    items: list[Any] = document["items"]
    entries: list[Entry] = []
    skipped = 0
    for item in _newest(items, max_entries):
        if not isinstance(item, dict):
            skipped += 1
            continue
        entry = _entry(item, document, base, feed_lang, now)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    skipped += max(0, len(items) - max_entries)
    return ParsedFeed(
        title=plain_text(_str(document.get("title"))[:MAX_MARKUP], limit=MAX_TITLE),
        entries=tuple(entries),
        version=version,
        lang=feed_lang,
        skipped=skipped,
    )


def _newest(items: list[Any], max_entries: int) -> list[Any]:
    """At most ``max_entries`` items, the newest (as the XML path keeps them: dated items
    newest first, then undated ones), in the feed's own order."""
    if len(items) <= max_entries:
        return items

    def stamp(item: Any) -> float | None:
        if not isinstance(item, dict):
            return None
        when = _when(item.get("date_published")) or _when(item.get("date_modified"))
        return when.timestamp() if when else None

    stamps = [stamp(item) for item in items]
    order = sorted(range(len(items)), key=lambda i: (stamps[i] is None, -(stamps[i] or 0.0), i))
    return [items[i] for i in sorted(order[:max_entries])]


def _entry(
    item: dict[str, Any],
    feed: dict[str, Any],
    base: str,
    feed_lang: str | None,
    now: datetime,
) -> Entry | None:
    # `url` is the item's own page; `external_url` the page it is about (a link blog)
    link = _url(item.get("url"), base) or _url(item.get("external_url"), base)
    raw_id = item.get("id")
    # 1.0 feeds often write the id as a number; the spec says string
    guid = (
        str(raw_id).strip()
        if isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
        else ""
    )
    title = plain_text(_str(item.get("title"))[:MAX_MARKUP], limit=MAX_TITLE)
    body = (
        _str(item.get("summary")).strip()
        or _str(item.get("content_text")).strip()
        or _str(item.get("content_html")).strip()
    )
    summary = plain_text(body[:MAX_MARKUP], limit=MAX_SUMMARY)
    if not link and not title and not summary:
        return None
    published, date_source = None, "none"
    for key, label in (("date_published", "published"), ("date_modified", "updated")):
        when = sane_date(_when(item.get(key)), now)
        if when is not None:
            published, date_source = when, label
            break
    author = plain_text(_authors(item, feed)[:MAX_MARKUP], limit=MAX_AUTHOR) or None
    return Entry(
        link=link,
        title=title,
        summary=summary,
        guid=guid[:2048] or None,
        author=author,
        published_at=published,
        date_source=date_source,
        lang=feed_lang_code(item.get("language")) or feed_lang,
    )
