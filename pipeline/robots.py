"""URL -> may veille fetch it? robots.txt per host (protego), fetched once per run.

RFC 9309: a robots.txt that is missing (4xx) allows everything; one that cannot be
fetched (5xx, network error) disallows everything for this run. Feeds listed in
sources.yaml are published to be polled and are not checked; pages, sitemaps and
every article page are.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from protego import Protego

from pipeline.errors import FetchError
from pipeline.fetch import Fetcher

logger = logging.getLogger(__name__)

AGENT_TOKEN = "veille"
MAX_ROBOTS_BYTES = 500_000  # RFC 9309 asks crawlers to read at least 500 KiB
MAX_CRAWL_DELAY = 30.0


class RobotsCache:
    """One per run: ``await robots.allowed(url)``."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self._rules: dict[str, Protego | None] = {}  # None: robots.txt unreachable, disallow
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: str, *, trusted: bool = False) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._rules:
                self._rules[origin] = await self._load(origin, trusted=trusted)
        rules = self._rules[origin]
        return rules is not None and bool(rules.can_fetch(url, AGENT_TOKEN))

    async def _load(self, origin: str, *, trusted: bool) -> Protego | None:
        robots_url = f"{origin}/robots.txt"
        try:
            fetched = await self.fetcher.fetch(
                robots_url, trusted=trusted, accept="text/plain", max_bytes=MAX_ROBOTS_BYTES
            )
        except FetchError as exc:
            if exc.kind == "status" and exc.status is not None and 400 <= exc.status < 500:
                return Protego.parse("")  # no robots.txt: everything is allowed
            logger.info("robots url=%s unreachable, host skipped for this run: %s", robots_url, exc)
            return None
        rules = Protego.parse(fetched.body.decode("utf-8", "replace"))
        delay = rules.crawl_delay(AGENT_TOKEN)
        if delay:
            self.fetcher.slow_down(origin, min(float(delay), MAX_CRAWL_DELAY))
        return rules
