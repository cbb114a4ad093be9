"""Articles the news searches carried -> the outlets that are not sources yet (`veille sources suggest`).

Every news-search entry names its outlet: Google News in ``<source url>``, Bing News by the
publisher's URL it links to. An outlet that carried at least ``minimum`` stories naming a
member (or the cluster) in the window, and whose site is not already a source, a member's
own website or a news search's, is a suggestion; the CLI then looks for the feed its home
page advertises as `veille members newsrooms` does (pipeline/sources/newsroom.py). Pure:
the store's rows are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline.settings.config import Config
from pipeline.sources.dedupe import site_key


@dataclass(frozen=True, slots=True)
class Carried:
    """One news-search article naming a member, as the store gives it."""

    story: int  # its story (coalesce(story_id, -article id))
    url: str  # the article's URL (the publisher's, or the aggregator's for an opaque entry)
    opaque: bool  # its link leads to the aggregator only
    outlet: str | None  # the outlet's name
    outlet_url: str | None  # the site the search names for it
    member: str  # the name of the member (or the cluster) it names


@dataclass
class Outlet:
    """An outlet the searches show, with what it carried."""

    site: str  # its registrable domain (or host), the key
    name: str
    home: str  # its home page
    stories: set[int] = field(default_factory=set)
    members: dict[str, int] = field(default_factory=dict)  # member name -> stories naming it

    def member_names(self) -> list[str]:
        return sorted(self.members, key=lambda m: (-self.members[m], m))


def _home(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}/"


def known_sites(config: Config) -> set[str]:
    """Sites already covered: every source (and its `site:`), a news search's own host, the
    cluster's and the members' websites (their news is their own, not an outlet's)."""
    urls = [spec.url.replace("{query}", "x").replace("{id}", "x") for spec in config.specs]
    urls += [spec.site for spec in config.specs if spec.site]
    urls += [m.website for m in config.members if m.website]
    if config.cluster.website:
        urls.append(config.cluster.website)
    return {key for url in urls if (key := site_key(url))}


def outlets(carried: Iterable[Carried], config: Config, *, minimum: int) -> list[Outlet]:
    """The outlets with at least ``minimum`` member stories that are not covered yet, the
    most stories first."""
    covered = known_sites(config)
    found: dict[str, Outlet] = {}
    by_member: dict[tuple[str, str], set[int]] = {}
    for item in carried:
        # the publisher's own URL when the entry links to it, else the site the search names
        where = item.outlet_url if item.opaque else item.url
        site = site_key(where)
        home = _home(item.outlet_url or where or "")
        if site is None or home is None or site in covered:
            continue
        outlet = found.setdefault(site, Outlet(site=site, name=item.outlet or site, home=home))
        outlet.stories.add(item.story)
        by_member.setdefault((site, item.member), set()).add(item.story)
    for (site, member), stories in by_member.items():
        found[site].members[member] = len(stories)
    chosen = [o for o in found.values() if len(o.stories) >= minimum]
    return sorted(chosen, key=lambda o: (-len(o.stories), o.site))
