"""URL -> may veille fetch it? robots.txt per host (protego), fetched once per run.

RFC 9309: a robots.txt that is missing (4xx) allows everything; one that cannot be
fetched (5xx, network error) disallows everything for this run. Feeds listed in
sources.yaml are published to be polled and are not checked; pages, sitemaps and
every article page are.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from protego import Protego

from pipeline.errors import FetchError
from pipeline.models import PageState
from pipeline.sources.fetch import Fetches

logger = logging.getLogger(__name__)

AGENT_TOKEN = "veille"
MAX_ROBOTS_BYTES = 500_000  # RFC 9309 asks crawlers to read at least 500 KiB
MAX_CRAWL_DELAY = 30.0


DISALLOWED = PageState.ROBOTS.status()  # an article's text_status when robots.txt disallows it


class Access(StrEnum):
    """What robots.txt (and the address policy behind it) says about one URL."""

    ALLOWED = "allowed"
    DISALLOWED = "disallowed"  # robots.txt disallows the URL for veille
    REFUSED = "refused"  # the address policy refuses the host itself
    UNREACHABLE = "unreachable"  # robots.txt could not be read: the host is off this run


@dataclass(frozen=True, slots=True)
class Verdict:
    """May veille fetch a URL: ``kind``, and for a host that is off, ``reason`` says why."""

    kind: Access
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.kind is Access.ALLOWED


ALLOWED = Verdict(Access.ALLOWED)
FORBIDDEN = Verdict(Access.DISALLOWED, "disallowed by the site's robots.txt")


class RobotsCache:
    """One per run: ``await robots.verdict(url)`` says whether veille may fetch the URL."""

    def __init__(self, fetcher: Fetches) -> None:
        self.fetcher = fetcher
        self._rules: dict[str, Protego | Verdict] = {}  # a Verdict: the host is off this run
        self._locks: dict[str, asyncio.Lock] = {}

    async def verdict(self, url: str, *, trusted: bool = False) -> Verdict:
        """ALLOWED, FORBIDDEN (robots.txt disallows the URL), or why the host is off."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        # keyed with the trust too: a refusal met through a hostile link must not
        # deny the operator's own page on the same host
        key = f"{origin} trusted={trusted}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._rules:
                self._rules[key] = await self._load(origin, trusted=trusted)
        rules = self._rules[key]
        if isinstance(rules, Verdict):
            return rules
        return ALLOWED if rules.can_fetch(url, AGENT_TOKEN) else FORBIDDEN

    async def _load(self, origin: str, *, trusted: bool) -> Protego | Verdict:
        robots_url = f"{origin}/robots.txt"
        try:
            fetched = await self.fetcher.fetch(
                robots_url, trusted=trusted, accept="text/plain", max_bytes=MAX_ROBOTS_BYTES
            )
        except FetchError as exc:
            if exc.kind == "status" and exc.status is not None and 400 <= exc.status < 500:
                return Protego.parse("")  # no robots.txt: everything is allowed
            if exc.kind == "refused":
                return Verdict(Access.REFUSED, str(exc))  # the address policy refuses the host
            logger.info("robots url=%s unreachable, host skipped for this run: %s", robots_url, exc)
            return Verdict(
                Access.UNREACHABLE, f"robots.txt unreachable, host skipped for this run: {exc}"
            )
        rules = Protego.parse(fetched.body.decode("utf-8", "replace"))
        delay = rules.crawl_delay(AGENT_TOKEN)
        if delay:
            self.fetcher.slow_down(origin, min(float(delay), MAX_CRAWL_DELAY))
        return rules
