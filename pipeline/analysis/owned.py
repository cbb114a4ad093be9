"""An article's URL and the source that carried it -> who owns it (owned media), or None (earned).

A communications team never counts a member's own press release as press coverage. An
article is *owned* when the source that carried it has an ``owner`` (a member's or the
cluster's own newsroom, sources.yaml) or when its URL is on a member's (or the
cluster's) own website (the directory's ``website``); it is *earned* otherwise. A press
release an outlet rewrote at its own URL is earned: it is another copy of the story.

A URL is on a website when its host is the website's host or a subdomain of it
("www." aside), on the same port, and, for a website written with a path
(``https://host.example/acme/``), under that path: a website on a shared host names
its own corner of it, never the whole host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.settings.config import Config

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Site:
    """A website as ownership compares URLs with it."""

    host: str  # lower case, without "www."
    port: int | None  # None: the scheme's default
    path: str  # "/" or "/acme/" (always ending with a slash)
    owner: str

    @classmethod
    def parse(cls, website: str, owner: str) -> Site | None:
        parts = _split(website)
        if parts is None:
            return None
        host, port, path = parts
        return cls(
            host=host, port=port, path=path if path.endswith("/") else path + "/", owner=owner
        )

    def holds(self, host: str, port: int | None, path: str) -> bool:
        if port != self.port:
            return False
        if host != self.host and not host.endswith("." + self.host):
            return False
        return self.path == "/" or (path if path.endswith("/") else path + "/").startswith(
            self.path
        )


def _split(url: str) -> tuple[str, int | None, str] | None:
    """(host without www., port or None for the default, path) of an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return host.removeprefix("www."), port, parts.path or "/"


@dataclass(frozen=True, slots=True)
class Owners:
    """Who owns what: the websites of the cluster and the members, the sources' owners."""

    sites: tuple[Site, ...] = ()
    # source id -> the site of a source with an owner (its URL's host, the owner's id)
    sources: Mapping[str, Site] | None = None
    # host -> its websites, most specific first: an article's URL is compared with the
    # websites of its host and of the domains above it, not with all 220
    by_host: Mapping[str, tuple[Site, ...]] | None = None

    @classmethod
    def from_config(cls, config: Config) -> Owners:
        websites = [(config.cluster.website, config.cluster.id)]
        websites += [(m.website, m.slug) for m in config.members if m.kind == "member"]
        return cls.build(
            ((w, o) for w, o in websites if w),
            ((s.id, s.url, s.owner) for s in config.sources if s.owner),
        )

    @classmethod
    def build(
        cls, websites: Iterable[tuple[str, str]], sources: Iterable[tuple[str, str, str]] = ()
    ) -> Owners:
        """From (website, owner id) and (source id, source URL, owner id)."""
        sites = [site for w, o in websites if (site := Site.parse(w, o)) is not None]
        # the most specific website first: a path on a host before the host, a subdomain
        # before its domain
        sites.sort(key=lambda s: (-len(s.path), -s.host.count("."), s.host))
        owned: dict[str, Site] = {}
        for source_id, url, owner in sources:
            parts = _split(url)
            if parts is not None:
                owned[source_id] = Site(host=parts[0], port=parts[1], path="/", owner=owner)
        by_host: dict[str, list[Site]] = {}
        for site in sites:
            by_host.setdefault(site.host, []).append(site)
        return cls(
            sites=tuple(sites),
            sources=owned,
            by_host={host: tuple(found) for host, found in by_host.items()},
        )

    def owner_of(self, url: str, source_ids: Iterable[str] = ()) -> str | None:
        """Who owns the article at ``url`` carried by these sources: its website's owner,
        else the owner of the first of them with an owner whose site holds the URL;
        None: earned."""
        parts = _split(url)
        if parts is None:
            return None
        labels = parts[0].split(".")
        for start in range(len(labels)):  # the host, then each domain above it
            for site in (self.by_host or {}).get(".".join(labels[start:]), ()):
                if site.holds(*parts):
                    return site.owner
        owned = self.sources or {}
        for source_id in source_ids:
            newsroom = owned.get(source_id)
            if newsroom is not None and newsroom.holds(*parts):
                return newsroom.owner
        return None
