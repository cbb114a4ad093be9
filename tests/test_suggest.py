"""`veille sources suggest`: outlets the news searches show (Google's <source url>, a Bing
link's publisher) with enough member stories, not sources yet, each with its feed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.run import run
from pipeline.settings.config import Config, load_config
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.newsroom_web import RSS, Served, Site, _page, releases, rss, serve
from tests.run_cli import veille

MEMBERS = [{"name": "Xenothera"}, {"name": "Valneva"}, {"name": "GlioCure"}]
HEADLINES = {
    "Xenothera": [
        "Xenothera recrute pour son essai de phase 2 à Nantes",
        "Polyclonaux : Xenothera signe avec un laboratoire américain",
        "Xenothera ouvre une filiale à Boston",
    ],
    "Valneva": [
        "Valneva double la production de son vaccin contre le chikungunya",
        "Saint-Herblain : Valneva inaugure un nouveau bâtiment",
        "Valneva publie ses résultats trimestriels",
    ],
    "GlioCure": [
        "GlioCure lève huit millions pour le glioblastome",
        "À Angers, GlioCure prépare un essai européen",
        "GlioCure nomme un directeur médical",
    ],
}


def outlet_site(name: str, feed_path: str, *, advertised: bool) -> Site:
    site = Site(name, name.title())
    head = (
        f'<link rel="alternate" type="application/rss+xml" title="{site.company}" href="{feed_path}">'
        if advertised
        else ""
    )
    site.pages[""] = (
        "text/html; charset=utf-8",
        _page(site.company, "<main>Actualité</main>", head=head),
    )
    site.pages[feed_path.lstrip("/")] = (
        RSS,
        rss(site.company, releases("Une entreprise", name), "{base}/"),
    )
    return site


@pytest.fixture
def outlets(tmp_path: Path) -> Iterator[dict[str, Served]]:
    sites = [
        outlet_site("gazette", "/rss.xml", advertised=True),
        outlet_site("courrier", "/feed/", advertised=False),
        outlet_site("petit", "/rss.xml", advertised=True),
        outlet_site("deja", "/rss.xml", advertised=True),
    ]
    with serve(sites, tmp_path / "outlets", first_address=70) as served:
        yield {s.site.name: s for s in served}


def _item(title: str, outlet: Served, number: int, *, bing: bool = False) -> str:
    base = outlet.url.rstrip("/")
    if bing:  # a Bing News link: the publisher's URL in url=
        link = (
            f"http://www.bing.com/news/apiclick.aspx?ref=FexRss&amp;tid=T{number}&amp;url="
            f"{base.replace(':', '%3a').replace('/', '%2f')}%2farticle-{number}&amp;c={number}"
        )
        source = f"<News:Source>{outlet.site.company}</News:Source>"
    else:  # a Google News entry: an opaque link, the outlet in <source url>
        link = f"https://news.google.com/rss/articles/CBMi{number:06d}?oc=5"
        source = f'<source url="{base}">{outlet.site.company}</source>'
    return (
        f"<item><title>{title} - {outlet.site.company}</title><link>{link}</link>"
        f"<description>{title}, selon {outlet.site.company}.</description>"
        f"<pubDate>Wed, 25 Nov 2026 0{number % 10}:00:00 GMT</pubDate>{source}</item>"
    )


def _search(items: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:News="https://www.bing.com/news"><channel><title>Recherche</title>'
        + "".join(items)
        + "</channel></rss>"
    )


@pytest.fixture
def searched(
    outlets: dict[str, Served],
    feed_dir: Path,
    server: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
) -> Config:
    """A database of news-search entries: the gazette carried 3 member stories (one through
    Bing), the courrier 3, the petit journal 1, an outlet already a source 3."""
    plan = {
        "Xenothera": ["gazette", "gazette", "courrier"],
        "Valneva": ["gazette", "courrier", "deja"],
        "GlioCure": ["courrier", "petit", "deja"],
    }
    (feed_dir / "gnews").mkdir()
    (feed_dir / "gnews" / "atlanpole-biotherapies.rss").write_text(_search([]))
    number = 0
    for member, names in plan.items():
        items = []
        for index, name in enumerate(names):
            number += 1
            bing = member == "Xenothera" and index == 1
            items.append(_item(HEADLINES[member][index], outlets[name], number, bing=bing))
        if member == "Valneva":  # the outlet that is a source carries a third one
            number += 1
            items.append(
                _item(
                    HEADLINES["GlioCure"][2].replace("GlioCure", "Valneva"), outlets["deja"], number
                )
            )
        slug = member.lower()
        (feed_dir / "gnews" / f"{slug}.rss").write_text(_search(items), encoding="utf-8")
    config = write_config(
        sources=[
            {
                "id": "gnews",
                "kind": "search",
                "name": "Recherche",
                "url": server.url("gnews/{id}.rss"),
            },
            {"id": "deja", "kind": "feed", "name": "Déjà", "url": outlets["deja"].url + "rss.xml"},
        ],
        members=MEMBERS,
    )
    run(config, db_path=db_path, source_ids=["gnews"])
    return config


def _suggest(config: Config, db_path: Path, *args: str) -> Any:
    return veille("sources", "suggest", "--config", config.path, "--db", str(db_path), *args)


def test_outlets_with_enough_member_stories_are_suggested_with_their_feed(
    searched: Config, db_path: Path, outlets: dict[str, Served]
) -> None:
    done = _suggest(searched, db_path, "--min", "3", "--json")
    assert done.returncode == 0, done.stderr
    found = {line["outlet"]: line for line in map(json.loads, done.stdout.splitlines())}
    gazette, courrier = (
        f"127.0.0.{n}:{outlets[k].server.port}" for n, k in ((70, "gazette"), (71, "courrier"))
    )  # type: ignore[union-attr]
    # the petit journal carried one story; the outlet already a source is none of these
    assert set(found) == {gazette, courrier}
    assert found[gazette]["stories"] == 3
    assert found[gazette]["members"] == ["Xenothera", "Valneva"]
    assert found[gazette]["kind"] == "feed" and found[gazette]["url"].endswith("/rss.xml")
    assert "advertised by the home page" in found[gazette]["reason"]
    assert found[courrier]["kind"] == "feed" and found[courrier]["url"].endswith("/feed/")
    assert sorted(found[courrier]["members"]) == ["GlioCure", "Valneva", "Xenothera"]
    assert found[gazette]["name"] == "Gazette"
    # --min 1 brings the petit journal; the search engines' own hosts are never outlets
    wider = _suggest(searched, db_path, "--min", "1", "--json")
    sites = {json.loads(line)["outlet"] for line in wider.stdout.splitlines()}
    assert len(sites) == 3 and not any("google" in s or "bing" in s for s in sites)


def test_write_adds_the_chosen_outlets_once(
    searched: Config, db_path: Path, outlets: dict[str, Served]
) -> None:
    gazette = f"127.0.0.70:{outlets['gazette'].server.port}"  # type: ignore[union-attr]
    path = Path(searched.path)
    done = _suggest(searched, db_path, "--outlet", gazette, "--write")
    assert done.returncode == 0, done.stderr
    assert "1 source(s) to add" in done.stderr and "wrote" in done.stderr
    added = {s.id: s for s in load_config(path).specs}["gazette"]
    assert added.kind == "feed" and added.url.endswith("/rss.xml")
    assert added.site == outlets["gazette"].url and added.owner is None
    text = path.read_text(encoding="utf-8")
    # a source now: no longer suggested; the courrier is, and a dry run writes nothing
    dry = _suggest(searched, db_path, "--write", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert gazette not in dry.stdout
    assert "+ courrier: feed" in dry.stderr and "dry run: nothing written" in dry.stderr
    assert path.read_text(encoding="utf-8") == text
    assert _suggest(searched, db_path, "--write").returncode == 0
    text = path.read_text(encoding="utf-8")
    last = _suggest(searched, db_path, "--write")
    assert "0 outlet(s)" in last.stderr and "nothing to change" in last.stderr
    assert path.read_text(encoding="utf-8") == text
