"""An article's outlet and tier: its host, publisher name and source name in, the outlet
as the `outlets:` section of sources.yaml names it out (display name, tier).

The first that matches wins: the article's host (the longest configured domain it is
or is under: ``syndication.lesechos.fr`` is ``lesechos.fr``), then the publisher a news
search names (``articles.outlet``), then the name of the source that carried it. An
outlet nobody listed keeps the name the digest shows (publisher, else source) and the
tier ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.settings.config import KNOWN_TIERS, OTHER_TIER, Outlet, outlet_key


@dataclass(frozen=True, slots=True)
class Resolved:
    name: str
    tier: str


class OutletMap:
    """``OutletMap(config.outlets).resolve(url, outlet, source)``; cached per triple."""

    def __init__(self, outlets: Sequence[Outlet]) -> None:
        self.domains: dict[str, Resolved] = {}
        self.names: dict[str, Resolved] = {}
        tiers: list[str] = list(KNOWN_TIERS)
        for outlet in outlets:
            resolved = Resolved(outlet.name, outlet.tier)
            for key in (outlet.name, *outlet.match):
                folded = outlet_key(key)
                # a domain has a dot and no space; anything else is a name
                if "." in folded and " " not in folded and "/" not in folded:
                    self.domains.setdefault(folded, resolved)
                self.names.setdefault(folded, resolved)
            if outlet.tier not in tiers and outlet.tier != OTHER_TIER:
                tiers.append(outlet.tier)
        self.tiers: tuple[str, ...] = (*tiers, OTHER_TIER)  # the display order, best first
        self._cache: dict[tuple[str, str | None, str | None], Resolved] = {}

    def rank(self, tier: str) -> int:
        """The tier's place in the display order (national first, other last)."""
        try:
            return self.tiers.index(tier)
        except ValueError:
            return len(self.tiers)

    def _domain(self, host: str) -> Resolved | None:
        while host:
            if host in self.domains:
                return self.domains[host]
            _, dot, host = host.partition(".")
            if not dot:
                break
        return None

    def resolve(self, url: str | None, outlet: str | None, source: str | None) -> Resolved:
        host = _host(url) if url and self.domains else ""
        key = (host, outlet, source)
        found = self._cache.get(key)
        if found is None:
            found = self._domain(host)
            for name in (outlet, source):
                if found is None and name:
                    found = self.names.get(outlet_key(name))
            if found is None:
                shown = " ".join(str(outlet or source or "").split())
                found = Resolved(shown, OTHER_TIER)
            self._cache[key] = found
        return found


def _host(url: str) -> str:
    """The host of an http(s) URL, lower case, without "www.", port or credentials: by hand,
    because urlsplit for each of a year's 80,000 mentions cost a second."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return ""
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if netloc.startswith("["):  # an IPv6 address: no outlet's domain
        return ""
    return netloc.split(":", 1)[0].lower().rstrip(".").removeprefix("www.")
