"""Text helpers and limits that every feed parser shares (feed.py, jsonfeed.py,
listing.py, sitemap.py): markup reduced to one bounded line, sane dates, language codes."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import lxml.etree
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

MAX_TITLE = 1_000
MAX_SUMMARY = 5_000
MAX_AUTHOR = 200
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)  # before the web, a date is a placeholder
FUTURE_SLACK = timedelta(days=2)  # time zones and clock skew, not "year 9999"
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_STOP = re.compile(r" ([.,)])")


# what a reader never sees: the text inside these is not the entry's
_UNSEEN = ("script", "style", "template")


def _markup_text(markup: str) -> str:
    """The text of an HTML fragment, its strings joined by a space, as BeautifulSoup's
    ``get_text(" ")`` gives it: lxml's HTML parser straight (the same parser BeautifulSoup
    drives, without building its tree: an entry's summary is read about ten times faster),
    BeautifulSoup itself for what lxml refuses (an encoding declaration in a string, a
    character XML cannot hold)."""
    parser = lxml.etree.HTMLParser(
        recover=True, no_network=True, remove_comments=True, remove_pis=True
    )  # one per call: a parser object is not for two threads at once
    try:
        root = lxml.etree.fromstring(markup, parser)
    except (ValueError, lxml.etree.LxmlError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            return BeautifulSoup(markup, "lxml").get_text(" ")
    if root is None:
        return ""
    for unseen in root.iter(*_UNSEEN):
        for inner in unseen.iter():
            inner.text = None
            if inner is not unseen:
                inner.tail = None
    return " ".join(root.itertext())


def plain_text(markup: str, *, limit: int) -> str:
    """Markup (or text) -> one line of plain text, at most ``limit`` characters."""
    if not markup:
        return ""
    if "<" in markup or "&" in markup:
        markup = _markup_text(markup)
    text = _WHITESPACE.sub(" ", markup).strip()
    text = _SPACE_BEFORE_STOP.sub(r"\1", text)  # "<a>Nantes</a>." read as "Nantes ."
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        text = text[: cut if cut > limit // 2 else limit].rstrip() + "…"
    return text


def sane_date(when: datetime | None, now: datetime) -> datetime | None:
    """The date, unless it is a placeholder (before 1990) or in the future."""
    if when is not None and EARLIEST_DATE <= when <= now + FUTURE_SLACK:
        return when
    return None


def feed_lang_code(value: Any) -> str | None:
    """The two-letter code of "fr-FR", "en_US" or "fr"; None for anything else."""
    if isinstance(value, str) and len(value) >= 2 and value[:2].isalpha():
        return value[:2].lower()
    return None


def normalise_lang(code: str | None) -> str | None:
    """ "fr-FR" -> "fr", "EN" -> "en", any other language -> "other", unknown -> None."""
    if not code:
        return None
    head = code.strip().lower()[:2]
    if not head.isalpha():
        return None
    return head if head in ("fr", "en") else "other"
