"""Feed entries -> Articles keyed by a canonical URL, so one story URL is stored once.

canonical_url: courlan's normalisation (lower-case host, default ports dropped,
known trackers removed, query sorted) plus our own rules: every utm_* and other
campaign parameter, fragments (including "#xtor=RSS-1"), "www." kept as written
(sites serve different things on both), a trailing slash removed except at the root.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
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
# Parameters of an aggregator's own link that change on every fetch of the same entry
# (Bing News: a click id and a counter): never part of a key
VOLATILE_PARAMS = {"bing.com": frozenset({"tid", "c", "aid", "ref", "ocid", "cvid", "mkt"})}


def publisher_url(link: str) -> str | None:
    """The publisher URL an aggregator link carries as a parameter (Bing News: ``url=``)."""
    for name, value in parse_qsl(urlsplit(link).query, keep_blank_values=True):
        if name.lower() in WRAPPER_PARAMS and value.lower().startswith(("http://", "https://")):
            return value.strip()
    return None


def without_volatile(link: str) -> str:
    """An aggregator link without the parameters that change on every fetch (VOLATILE_PARAMS)."""
    parts = urlsplit(link)
    host = (parts.hostname or "").lower()
    for domain, volatile in VOLATILE_PARAMS.items():
        if host == domain or host.endswith("." + domain):
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if k.lower() not in volatile]
            return urlunsplit(parts._replace(query=urlencode(kept)))
    return link


def unwrap_link(link: str) -> str:
    """The publisher URL inside an aggregator link, when the link carries it; else the link
    without the parameters that change on every fetch."""
    return publisher_url(link) or without_volatile(link)


def site_key(url: str | None) -> str | None:
    """The site a URL is on, as outlets are compared: its registrable domain (courlan),
    else its host without "www." (and its port)."""
    if not url:
        return None
    try:
        domain = courlan.extract_domain(url)
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError):
        return None
    if domain:
        return str(domain).lower()
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    return f"{host}:{port}" if port else host


_NOT_WORD = re.compile(r"[^a-z0-9]+")


def fold_title(title: str) -> str:
    """A headline as copies are compared: no case, accents or punctuation."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return _NOT_WORD.sub(" ", ascii_text.lower()).strip()


def copy_key(title: str, site: str | None) -> str | None:
    """What a copy of one article shares with the publisher's own: its outlet's site and its
    headline, folded ("ouest-sante.example|xenothera leve 12 millions ..."); None when
    either is missing or the headline is too short to tell."""
    folded = fold_title(title)
    if not site or len(folded.split()) < 4:
        return None
    return f"{site}|{folded}"


_SUFFIX_DASHES = (" - ", " – ", " — ", " | ")


def without_outlet(title: str, outlet: str | None) -> str:
    """A news-search headline without the " - Outlet" its aggregator appends."""
    if not outlet:
        return title
    for dash in _SUFFIX_DASHES:
        suffix = f"{dash}{outlet}"
        if title.lower().endswith(suffix.lower()) and len(title) > len(suffix):
            return title[: -len(suffix)].rstrip()
    return title


COPY_DAYS = 4  # a copy is dated within this many days of the publisher's article


def join_copies(
    articles: Sequence[Article], stored: Mapping[str, Sequence[tuple[str, bool, datetime | None]]]
) -> list[Article]:
    """Articles of a source, each joined to a stored article it is a copy of: a news-search
    entry whose link leads nowhere (Google News) and the publisher's own article, same
    outlet and same headline, dated within COPY_DAYS. ``stored`` holds, per copy key, the
    (URL, opaque, date) of the stored articles with that key. A joined article gets the
    stored one's URL among its aliases, so the store keeps them as one article: the entry
    gains the publisher's text, or the text fills the entry. Two articles with a page of
    their own are never joined this way (one outlet may reuse a headline)."""
    joined: list[Article] = []
    for article in articles:
        found = None
        for url, opaque, when in stored.get(article.copy_key or "", ()):
            if url == article.url or url in article.aliases:
                continue
            if article.fetchable and not opaque:
                continue
            if (
                article.published_at
                and when
                and abs(article.published_at - when) > timedelta(days=COPY_DAYS)
            ):
                continue
            found = url
            break
        joined.append(replace(article, aliases=(*article.aliases, found)) if found else article)
    return joined


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
        link = entry.link
        # an aggregator link that does not carry the publisher's URL leads to the aggregator
        fetchable = bool(link)
        if unwrap and entry.link:
            publisher = publisher_url(entry.link)
            link, fetchable = publisher or without_volatile(entry.link), publisher is not None
        title = without_outlet(entry.title, entry.outlet) if unwrap else entry.title
        try:
            key = canonical_url(link) if link else fallback_key(source_id, entry)
        except ValueError:  # an unusable URL (port 99999, bad IPv6 literal): keep the entry
            link, fetchable = None, False
            key = fallback_key(source_id, entry)
        if key in articles:
            continue  # duplicate GUIDs or the same link twice: first one wins
        # the outlet's site: the page's own, else (a link that leads nowhere) the one the
        # news search names in <source url>
        site = site_key(link) if fetchable else site_key(entry.outlet_url)
        articles[key] = Article(
            url=key,
            link=link or "",
            title=title,
            summary=entry.summary,
            source_id=source_id,
            guid=entry.guid,
            author=entry.author,
            published_at=entry.published_at,
            lang=entry.lang or lang,
            outlet=entry.outlet,
            outlet_url=entry.outlet_url,
            fetchable=fetchable,
            copy_key=copy_key(title, site),
        )
    return list(articles.values())
