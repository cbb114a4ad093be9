"""Feed bytes + response headers -> ParsedFeed, guarded against hostile input.

Three guards stand before and around feedparser:
1. ``guard_feed_bytes`` rewrites the prolog: a DOCTYPE internal subset is removed;
   simple character entities it declares (``&nbsp;``) are substituted; parameter
   entities, external entities, nested references and anything that would expand
   past a fixed budget are refused with ParseError.
2. ``parse_feed_guarded`` runs the parser in a bounded child process (sandbox.py),
   so a regular-expression blow-up or a memory bomb costs one source, never the run.
3. Every string kept from the feed is bounded and reduced to plain text.
"""

from __future__ import annotations

import calendar
import io
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ParseError
from pipeline.models import Entry, ParsedFeed
from pipeline.sources.parse.jsonfeed import looks_like_json, parse_json_feed
from pipeline.sources.parse.large import keep_newest

# the limits and text helpers live in text.py, which jsonfeed.py imports too; their
# names stay importable from here
from pipeline.sources.parse.text import MAX_AUTHOR as MAX_AUTHOR
from pipeline.sources.parse.text import MAX_SUMMARY as MAX_SUMMARY
from pipeline.sources.parse.text import MAX_TITLE as MAX_TITLE
from pipeline.sources.parse.text import feed_lang_code, sane_date
from pipeline.sources.parse.text import plain_text as plain_text
from pipeline.sources.sandbox import Limits, run_bounded

logger = logging.getLogger(__name__)

MAX_ENTITY_DECLARATIONS = 64
MAX_ENTITY_VALUE = 4096  # characters; entity values in feeds stand for one character or a word
MAX_ENTITY_EXPANSION = 1_000_000  # bytes added by substituting every reference
MAX_ENTRIES = 5_000
# feedparser resolves GUIDs against the feed URL; resolving against this origin instead
# tells a relative GUID ("12345", not a permalink) from an absolute one.
BASE_SENTINEL = "https://base.veille.invalid"

_PREDEFINED = {b"amp", b"lt", b"gt", b"quot", b"apos"}
_DOCTYPE = re.compile(rb"<!DOCTYPE\s+([^\s\[>]+)", re.IGNORECASE)
_ENTITY_ANYWHERE = re.compile(rb"<!ENTITY", re.IGNORECASE)
_INVALID_CHAR_REF = re.compile(rb"&#([xX][0-9A-Fa-f]{1,8}|[0-9]{1,10});")
_ENTITY_DECL = re.compile(
    rb"""<!ENTITY\s+(?P<pe>%\s+)?(?P<name>[^\s%;"'>]+)\s+"""
    rb"""(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<ext>SYSTEM|PUBLIC)\b[^>]*)\s*>""",
    re.IGNORECASE,
)
_QUOTED_DECL = re.compile(rb"""<![A-Za-z]+(?:[^>"']|"[^"]*"|'[^']*')*>""")
_CHAR_REF = re.compile(rb"&#(?:[0-9]+|x[0-9A-Fa-f]+);")
_XML_DECL_ENCODING = re.compile(r"""^(<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# no BOM: the first "<" in a wide encoding (XML 1.0, appendix F)
_WIDE_PROLOGS = (
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)


def _transcode_wide(data: bytes) -> bytes:
    """UTF-16/32 with a BOM -> UTF-8, so the byte-level guards below can read it."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise ParseError(
                    f"declared {codec.upper()} by its byte order mark but undecodable: {exc}"
                ) from None
            text = _XML_DECL_ENCODING.sub(r'\1"utf-8"', text, count=1)
            return text.encode("utf-8")
    for prolog, codec in _WIDE_PROLOGS:
        if data.startswith(prolog):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise ParseError(f"written in {codec.upper()} but undecodable: {exc}") from None
            text = _XML_DECL_ENCODING.sub(r'\1"utf-8"', text, count=1)
            return text.encode("utf-8")
    return data


def _read_internal_subset(data: bytes, start: int) -> tuple[int, dict[bytes, bytes]]:
    """Scan a DOCTYPE internal subset from just after '['. Returns (end of DOCTYPE, entities)."""
    entities: dict[bytes, bytes] = {}
    pos = start
    size = len(data)
    while True:
        while pos < size and data[pos : pos + 1].isspace():
            pos += 1
        if pos >= size:
            raise ParseError("refused: DOCTYPE internal subset is never closed")
        if data.startswith(b"]", pos):
            close = data.find(b">", pos)
            if close < 0:
                raise ParseError("refused: DOCTYPE is never closed")
            return close + 1, entities
        if data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                raise ParseError("refused: unterminated comment in DOCTYPE")
            pos = end + 3
            continue
        if data.startswith(b"<?", pos):
            end = data.find(b"?>", pos + 2)
            if end < 0:
                raise ParseError("refused: unterminated processing instruction in DOCTYPE")
            pos = end + 2
            continue
        if data.startswith(b"%", pos):
            raise ParseError("refused: parameter entity reference in DOCTYPE")
        if data[pos : pos + 8].upper() == b"<!ENTITY":
            match = _ENTITY_DECL.match(data, pos)
            if not match:
                raise ParseError("refused: malformed ENTITY declaration in DOCTYPE")
            name = match.group("name")
            if match.group("pe"):
                raise ParseError(
                    f"refused: parameter entity {name.decode(errors='replace')!r} in DOCTYPE"
                )
            if match.group("ext"):
                raise ParseError(
                    f"refused: external entity {name.decode(errors='replace')!r} in DOCTYPE"
                )
            value = match.group("dq") if match.group("dq") is not None else match.group("sq") or b""
            _check_entity_value(name, value)
            entities[name] = value
            if len(entities) > MAX_ENTITY_DECLARATIONS:
                raise ParseError(
                    f"refused: more than {MAX_ENTITY_DECLARATIONS} entity declarations"
                )
            pos = match.end()
            continue
        if data.startswith(b"<!", pos):  # ELEMENT, ATTLIST, NOTATION: harmless, dropped
            match = _QUOTED_DECL.match(data, pos)
            if not match:
                raise ParseError("refused: malformed declaration in DOCTYPE")
            pos = match.end()
            continue
        raise ParseError("refused: unexpected content in DOCTYPE internal subset")


def _check_entity_value(name: bytes, value: bytes) -> None:
    label = name.decode(errors="replace")
    if len(value) > MAX_ENTITY_VALUE:
        raise ParseError(
            f"refused: entity {label!r} is {len(value):,} bytes long (entity expansion attack?)"
        )
    bare = _CHAR_REF.sub(b"", value)
    if b"&" in bare or b"%" in bare:
        raise ParseError(
            f"refused: entity {label!r} refers to other entities (entity expansion attack?)"
        )
    if b"<" in bare:
        raise ParseError(f"refused: entity {label!r} contains markup")


def _find_prolog_doctype(data: bytes) -> re.Match[bytes] | None:
    """The DOCTYPE of the prolog, walking the XML grammar: declaration, comments, PIs, blanks.

    A DOCTYPE anywhere else is not one an XML parser honours (it is an error there),
    so only this one can declare entities.
    """
    pos = 0
    size = len(data)
    if data.startswith(b"\xef\xbb\xbf"):
        pos = 3
    while pos < size:
        while pos < size and data[pos] in b" \t\r\n":
            pos += 1
        if data.startswith(b"<?", pos):
            end = data.find(b"?>", pos + 2)
            if end < 0:
                return None
            pos = end + 2
        elif data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                return None
            pos = end + 3
        else:
            return _DOCTYPE.match(data, pos)
    return None


def _replace_char_ref(match: re.Match[bytes]) -> bytes:
    """A character reference to a code point XML forbids -> U+FFFD (feedparser chokes on them)."""
    digits = match.group(1)
    try:
        code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    except ValueError:
        return b"&#xFFFD;"
    allowed = (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )
    return match.group(0) if allowed else b"&#xFFFD;"


def guard_feed_bytes(data: bytes) -> bytes:
    """Return feed bytes safe to hand to an XML parser, or raise ParseError."""
    data = _transcode_wide(data)
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")  # NUL is never legal in XML; parsers choke on it
    data = _INVALID_CHAR_REF.sub(_replace_char_ref, data)
    doctype = _find_prolog_doctype(data)
    if not doctype:
        _refuse_stray_entities(data)
        return data
    pos = doctype.end()
    # skip an external identifier, honouring quotes, up to '[' or '>'
    quote: int | None = None
    while pos < len(data):
        char = data[pos]
        if quote is not None:
            quote = None if char == quote else quote
        elif char in b"\"'":
            quote = char
        elif char in b"[>":
            break
        pos += 1
    if pos >= len(data):
        raise ParseError("refused: DOCTYPE is never closed")
    if data[pos : pos + 1] == b">":
        _refuse_stray_entities(data)
        return data  # no internal subset: nothing to expand
    end, entities = _read_internal_subset(data, pos + 1)
    body = data[end:]
    expansion = 0
    for name, value in entities.items():
        if name in _PREDEFINED:
            continue
        reference = b"&" + name + b";"
        count = body.count(reference)
        expansion += count * max(0, len(value) - len(reference))
        if expansion > MAX_ENTITY_EXPANSION:
            raise ParseError(
                f"refused: entities would add more than {MAX_ENTITY_EXPANSION:,} bytes "
                f"({count:,} references to {name.decode(errors='replace')!r})"
            )
    _refuse_stray_entities(body)
    for name, value in entities.items():
        if name not in _PREDEFINED:
            body = body.replace(b"&" + name + b";", value)
    return data[: doctype.start()] + body


def _refuse_stray_entities(data: bytes) -> None:
    """An ENTITY declaration outside the prolog's DOCTYPE (after junk, a second DOCTYPE):
    XML parsers reject it, but feedparser's fallback parser collects such declarations
    and expands them without a size limit."""
    if _ENTITY_ANYWHERE.search(data):
        raise ParseError("refused: entity declaration outside the document prolog")


def _http_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text: str = value.strip()
    if text.lower().startswith(("http://", "https://")) and len(text) <= 2048:
        return text
    return None


def _date(entry: Any, now: datetime) -> tuple[datetime | None, str]:
    """published, else updated, else created; absurd dates (before 1990, in the future) skipped."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = dict.get(entry, key)  # plain dict lookup: skip feedparser's key aliasing
        if not parsed:
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
        except (OverflowError, ValueError, OSError):
            continue
        if sane_date(when, now):
            return when, key.removesuffix("_parsed")
    return None, "none"


class _Base:
    """Maps URLs resolved against BASE_SENTINEL back onto the feed's real origin."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        # the sentinel keeps the feed's scheme: a protocol-relative link ("//cdn.example/a")
        # on an http feed is an http link
        scheme = parts.scheme if parts.scheme in ("http", "https") else "https"
        self.sentinel = scheme + BASE_SENTINEL.removeprefix("https")
        self.sentinel_url = (
            self.sentinel + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        )

    def restore(self, value: Any) -> tuple[str | None, bool]:
        """(absolute URL or text, whether it was relative in the feed)."""
        if not isinstance(value, str):
            return None, False
        if value.startswith(self.sentinel):
            return self.origin + value[len(self.sentinel) :], True
        return value, False


def _entry(raw: Any, base: _Base, feed_lang: str | None, now: datetime) -> Entry | None:
    link, _ = base.restore(raw.get("link"))
    link = _http_url(link)
    guid, guid_relative = base.restore(raw.get("id"))
    if guid_relative:
        guid = guid.removeprefix(base.origin) if guid else None
        # feedparser copies a GUID into the link when it meets it before any <link>, and
        # keeps `guidislink` set when a real <link> follows (reddit's Atom): a link that
        # no <link> element gave is that GUID (or another id) made absolute, not a page
        hrefs = [item.get("href") for item in raw.get("links") or () if isinstance(item, dict)]
        if raw.get("guidislink") and raw.get("link") not in hrefs:
            link = None
    # feedburner's origLink names the publisher's page behind its redirecting link
    original = _http_url(base.restore(raw.get("feedburner_origlink"))[0])
    if original:
        link = original
    title = plain_text(str(raw.get("title") or ""), limit=MAX_TITLE)
    summary_html = str(raw.get("summary") or "")
    if not summary_html and raw.get("content"):
        summary_html = str(raw["content"][0].get("value") or "")
    summary = plain_text(summary_html, limit=MAX_SUMMARY)
    if not link and not title and not summary:
        return None
    published, date_source = _date(raw, now)
    detail = raw.get("summary_detail") or raw.get("title_detail") or {}
    source = raw.get("source") or {}
    # Google News: <source url="...">Outlet</source>; Bing News: <News:Source>Outlet</News:Source>
    named = source.get("title") or raw.get("news_source") or ""
    outlet = plain_text(str(named), limit=200) or None
    outlet_url = _http_url(source.get("href"))
    author = plain_text(str(raw.get("author") or ""), limit=MAX_AUTHOR) or None
    return Entry(
        link=link,
        title=title,
        summary=summary,
        guid=guid[:2048] if guid else None,
        author=author,
        published_at=published,
        date_source=date_source,
        lang=feed_lang_code(detail.get("language")) or feed_lang,
        outlet=outlet,
        outlet_url=outlet_url[:2048] if outlet_url else None,
    )


_SAX_POSITION = re.compile(r"^<unknown>:(\d+):(\d+): ")


def _xml_error(bozo: Any) -> str:
    """feedparser's complaint, its "<unknown>:3:12: " prefix said as a position."""
    return _SAX_POSITION.sub(r"line \1, column \2: ", str(bozo))


def _not_a_feed(data: bytes, bozo: Any) -> str:
    head = data.lstrip()[:512].lower()
    if not head:
        return "empty body: nothing but white space in it"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "not a feed: the server sent an HTML page"
    if not head.startswith(b"<"):
        return "not a feed: the body is not XML"
    reason = _xml_error(bozo) if bozo else "no RSS or Atom elements found"
    return f"not a valid feed: {reason}"


def parse_feed_bytes(
    data: bytes,
    *,
    headers: dict[str, str],
    url: str,
    max_entries: int = MAX_ENTRIES,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse in this process (the child of ``parse_feed_guarded``, or a test). Raises ParseError."""
    import feedparser  # imported here: the parent process never needs it

    now = now or datetime.now(UTC)
    if not data.strip():
        raise ParseError(_not_a_feed(data, None))
    if looks_like_json(data):  # by content: servers label JSON Feeds every which way
        return parse_json_feed(data, url=url, max_entries=max_entries, now=now)
    safe = guard_feed_bytes(data)
    # past the cap, a well-formed feed is cut to its newest entries before feedparser
    safe, taken_out = keep_newest(safe, max_entries)
    base = _Base(url)
    response_headers = {k.lower(): v for k, v in headers.items()}
    response_headers["content-location"] = base.sentinel_url
    response_headers.setdefault("content-type", "application/xml")
    # A BytesIO, never bare bytes: feedparser treats a string as a path or URL to open.
    # Its HTML sanitiser and its resolution of links inside the HTML are off (a sixth of
    # its time): every piece of markup an entry gives is reduced to plain text by
    # plain_text, which drops scripts and styles, and no HTML of a feed is kept. The
    # entry's own link is resolved either way.
    result = feedparser.parse(
        io.BytesIO(safe),
        response_headers=response_headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    raw_entries = result.get("entries") or []
    version = str(result.get("version") or "")
    if not version and not raw_entries:
        raise ParseError(_not_a_feed(data, result.get("bozo_exception")))
    feed = result.get("feed") or {}
    feed_lang = feed_lang_code(feed.get("language"))
    entries: list[Entry] = []
    skipped = 0
    for raw in raw_entries[:max_entries]:
        entry = _entry(raw, base, feed_lang, now)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    skipped += max(0, len(raw_entries) - max_entries) + taken_out
    bozo = result.get("bozo_exception") if result.get("bozo") else None
    return ParsedFeed(
        title=plain_text(str(feed.get("title") or ""), limit=MAX_TITLE),
        entries=tuple(entries),
        version=version or "unknown",
        bozo=_xml_error(bozo)[:300] if bozo else None,
        lang=feed_lang,
        skipped=skipped,
    )


def _parse_payload(payload: tuple[bytes, dict[str, str], str, int]) -> ParsedFeed:
    data, headers, url, max_entries = payload
    return parse_feed_bytes(data, headers=headers, url=url, max_entries=max_entries)


def parse_feed_guarded(
    data: bytes,
    *,
    headers: dict[str, str],
    url: str,
    limits: Limits | None = None,
    max_entries: int = MAX_ENTRIES,
) -> ParsedFeed:
    """Parse in a child process bounded in time and memory. Blocking; raises ParseError."""
    return run_bounded(
        _parse_payload,
        (data, headers, url, max_entries),
        limits=limits or Limits(),
        what="parsing the feed",
    )
