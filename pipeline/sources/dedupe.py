"""Feed entries -> Articles keyed by a canonical URL, so one story URL is stored once.

canonical_url: courlan's normalisation (lower-case host, default ports dropped,
known trackers removed, query sorted) plus our own rules: every utm_* and other
campaign parameter, fragments (including "#xtor=RSS-1"), "www." kept as written
(sites serve different things on both), a trailing slash removed except at the root.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import courlan

from pipeline.models import Article, Entry

# Parameters that say how a reader arrived, never which page it is.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "igshid",
        "xtor",
        "at_medium",
        "at_campaign",
        "at_platform",
        "at_send_date",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ncid",
        "cmpid",
        "ref_src",
        "spref",
        "oref",
        "ito",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "matomo_", "hsa_", "oly_")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MULTI_SLASH = re.compile(r"/{2,}")


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The dedupe key of a page URL: same page, same string."""
    url = url.strip()
    try:
        normalised = courlan.normalize_url(url, strict=False, trailing_slash=True)
    except (ValueError, TypeError):  # courlan gives up on some malformed hosts: keep our own rules
        normalised = url
    parts = urlsplit(normalised)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # an IPv6 literal: urlsplit drops its brackets, the URL needs them
        host = f"[{host}]"
    port = parts.port if parts.port and parts.port != _DEFAULT_PORTS.get(scheme) else None
    netloc = host if port is None else f"{host}:{port}"
    path = _MULTI_SLASH.sub("/", parts.path or "/")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    query = urlencode(
        sorted(
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
        )
    )
    return urlunsplit((scheme, netloc, path, query, ""))


WRAPPER_PARAMS = ("url", "u")  # news-search links carry the publisher's URL in one of these


def unwrap_link(link: str) -> str:
    """The publisher URL inside an aggregator link, when the link carries it; else the link."""
    for name, value in parse_qsl(urlsplit(link).query):
        if name in WRAPPER_PARAMS and value.lower().startswith(("http://", "https://")):
            return value.strip()
    return link


# C0 controls but tab and line breaks, DEL and C1: terminal escapes, BEL and the like
# have no business in a title or a text and reach terminals, mails and spreadsheets
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    # one scan that finds nothing in almost every text (str.translate looked up every
    # character of every page's text in a table)
    return _CONTROLS.sub("", text) if _CONTROLS.search(text) else text


def without_controls(article: Article) -> Article:
    """The article with control characters taken out of every text field it stores."""
    changes: dict[str, Any] = {}
    for name in ("title", "summary", "text", "author", "outlet"):
        value = getattr(article, name)
        if value and (clean := strip_controls(value)) != value:
            changes[name] = clean
    return replace(article, **changes) if changes else article


def same_site(a: str, b: str) -> bool:
    """Same registrable domain (www., m. and amp. variants of one site); same host for IPs."""
    try:
        domain_a, domain_b = courlan.extract_domain(a), courlan.extract_domain(b)
    except (ValueError, TypeError):
        return False
    if domain_a and domain_b:
        return bool(domain_a == domain_b)
    return (urlsplit(a).hostname or "a") == (urlsplit(b).hostname or "b")


def fallback_key(source_id: str, entry: Entry) -> str:
    """A stable key for an entry without a page URL: kept (title, summary) rather than lost."""
    basis = entry.guid or f"{entry.title}\n{entry.summary}"
    digest = hashlib.sha256(basis.encode("utf-8")).hexdigest()[:24]
    return f"urn:veille:{source_id}:{digest}"


def to_articles(
    source_id: str,
    entries: Iterable[Entry],
    *,
    lang: str | None = None,
    unwrap: bool = False,
) -> list[Article]:
    """Entries of one feed -> articles; copies of the same URL within the feed collapse to one.

    ``unwrap`` (news-search feeds): link to the publisher when the aggregator's link says
    where it points; otherwise the aggregator link is kept, with title, summary and outlet.
    """
    articles: dict[str, Article] = {}
    for entry in entries:
        link = unwrap_link(entry.link) if unwrap and entry.link else entry.link
        try:
            key = canonical_url(link) if link else fallback_key(source_id, entry)
        except ValueError:  # an unusable URL (port 99999, bad IPv6 literal): keep the entry
            link = None
            key = fallback_key(source_id, entry)
        if key in articles:
            continue  # duplicate GUIDs or the same link twice: first one wins
        articles[key] = Article(
            url=key,
            link=link or "",
            title=entry.title,
            summary=entry.summary,
            source_id=source_id,
            guid=entry.guid,
            author=entry.author,
            published_at=entry.published_at,
            lang=entry.lang or lang,
            outlet=entry.outlet,
            # an aggregator link that could not be unwrapped leads to the aggregator, not the article
            fetchable=bool(link) and not (unwrap and link == entry.link),
        )
    return list(articles.values())
