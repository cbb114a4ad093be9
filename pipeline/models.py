"""Values that flow between the stages: plain frozen dataclasses, no I/O, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of one successful HTTP exchange (200 or 304) for a source."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int  # 200 or 304
    body: bytes
    headers: dict[str, str]  # lower-case names
    etag: str | None = None
    last_modified: str | None = None
    elapsed: float = 0.0
    attempts: int = 1
    # seconds the answer stays fresh, by its Cache-Control or Expires (fetch.freshness)
    fresh_for: float | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed entry, as read from the feed (URLs not yet canonical)."""

    link: str | None
    title: str
    summary: str
    guid: str | None = None
    author: str | None = None
    published_at: datetime | None = None  # aware, UTC
    date_source: str = "none"  # published, updated, created, none
    lang: str | None = None
    outlet: str | None = None  # <source> of a news-search entry (Bing: <News:Source>)
    outlet_url: str | None = None  # its url attribute: the publisher's site


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What the parse stage made of a feed body."""

    title: str
    entries: tuple[Entry, ...]
    version: str  # rss20, atom10, rss10 ...
    bozo: str | None = None  # the parser's complaint, when the feed was still usable
    lang: str | None = None
    skipped: int = 0  # entries dropped (no usable link, no title)


@dataclass(frozen=True, slots=True)
class Article:
    """An entry ready for the store: canonical URL, plain text, UTC date."""

    url: str  # canonical, the dedupe key
    link: str  # as the feed gave it
    title: str
    summary: str
    source_id: str
    guid: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    outlet: str | None = None
    outlet_url: str | None = None  # a news-search entry's <source url>: the publisher's site
    fetchable: bool = True  # its page can be fetched for the full text
    text: str | None = None  # main text, from the article's page
    aliases: tuple[str, ...] = ()  # other canonical URLs of the same article (AMP, feed link)
    # who published it on its own site (a member's or the cluster's id): owned media, not
    # press coverage (pipeline/analysis/owned.py); None: earned
    owner: str | None = None
    # its outlet's site and folded headline, what a copy of it shares (dedupe.copy_key)
    copy_key: str | None = None


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """How one source went during a run; what the store records on its row."""

    source_id: str
    status: str  # ok, not-modified, error, skipped
    http_status: int | None = None
    error: str | None = None
    error_kind: str | None = None
    entries: int = 0
    new_articles: int = 0
    seen_articles: int = 0
    retry_after: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    pages_fetched: int = 0  # article pages fetched for their text
    new_stories: int = 0  # new articles that are not a copy of a stored one
    fresh_for: float | None = None  # a feed's cache hint: seconds before it is worth asking again

    @property
    def failed(self) -> bool:
        return self.status == "error"


class PageState(StrEnum):
    """How reading an article's page went: the kind, stored in ``articles.text_state``.

    The sentence an analyst reads stays in ``articles.text_status``: the state's value,
    then the reason where there is one ("ok", "robots", "error: <why>", "pending: <why>")."""

    OK = "ok"
    ROBOTS = "robots"  # robots.txt disallows the page (or the redirect target)
    ERROR = "error"  # tried and failed; tried again on later runs, a few times
    PENDING = "pending"  # not tried yet (out of time, or over the per-run limit)

    def status(self, reason: str | None = None) -> str:
        """The ``text_status`` sentence for this state and reason."""
        return f"{self.value}: {reason}" if reason else self.value

    @classmethod
    def of(cls, status: str | None) -> PageState | None:
        """The state a ``text_status`` sentence was made with by :meth:`status`; None for
        no status. The sentences travel as text between the stages (pipeline.flow's
        ``Item.text_status``): this is the one place that reads the state back."""
        if status is None:
            return None
        head = status.split(":", 1)[0].strip()
        try:
            return cls(head)
        except ValueError:
            return cls.ERROR  # not a sentence veille writes: count it as a failure
