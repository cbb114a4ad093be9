"""Guarded feed bytes with more entries than the cap -> the same document holding the newest ones.

feedparser reads about 3,000 entries a second here, so a 20,000-entry feed used to cost
7 to 14 s for 5,000 kept entries. When a well-formed feed holds more entries than the
cap, lxml (a C parser, about 40 times faster) reads it once, the entries beyond the cap
are taken out (the newest are kept: dated entries newest first, then undated ones in
document order), and feedparser maps what is left, so every field means what it means
on the guarded path. Anything lxml does not read as well-formed XML is left as it is:
feedparser's own lenient path handles it, bounded as before.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from lxml import etree

_ENTRY_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
_ENTRY_NAMES = frozenset({"item", "entry"})
# by preference, as the guarded path picks the entry's date: published, updated, created
_DATE_NAMES = (
    frozenset({"pubDate", "published", "issued", "date"}),
    frozenset({"updated", "modified"}),
    frozenset({"created"}),
)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _parse_date(text: str | None) -> float | None:
    if not text:
        return None
    text = text.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def _entry_date(element: etree._Element) -> float | None:
    children = [(child, _local(child.tag)) for child in element]
    for names in _DATE_NAMES:
        for child, name in children:
            if name in names and (when := _parse_date(child.text)) is not None:
                return when
    return None


def _entries(root: etree._Element) -> list[etree._Element]:
    """Items and entries where RSS 0.9x/2.0 (in <channel>), RSS 1.0 and Atom put them."""
    found = [child for child in root if _local(child.tag) in _ENTRY_NAMES]
    for channel in root:
        if _local(channel.tag) == "channel":
            found += [child for child in channel if _local(child.tag) == "item"]
    return found


def keep_newest(data: bytes, max_entries: int) -> tuple[bytes, int]:
    """(document with at most ``max_entries`` entries, how many were taken out).

    ``data`` has been through guard_feed_bytes. A document that is not well-formed,
    or holds no more entries than the cap, comes back unchanged with 0.
    """
    if len(_ENTRY_TAG.findall(data, 0)) <= max_entries:
        return data, 0
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser))
    except (etree.XMLSyntaxError, ValueError):
        return data, 0  # not well-formed: feedparser's lenient path reads it
    entries = _entries(tree.getroot())
    if len(entries) <= max_entries:
        return data, 0
    dates = [_entry_date(entry) for entry in entries]
    order = sorted(
        range(len(entries)),
        key=lambda i: (dates[i] is None, -(dates[i] or 0.0), i),
    )
    for index in order[max_entries:]:
        entry = entries[index]
        parent = entry.getparent()
        if parent is not None:
            # keep the text that followed the entry (white space, in practice)
            previous = entry.getprevious()
            if entry.tail:
                if previous is not None:
                    previous.tail = (previous.tail or "") + entry.tail
                else:
                    parent.text = (parent.text or "") + entry.tail
            parent.remove(entry)
    removed = len(entries) - max_entries
    return etree.tostring(tree, encoding="utf-8", xml_declaration=True), removed
