"""Owned vs earned: a member's own releases are stored as owned, kept apart from press coverage
in the digest, the share of voice and the alerts; a release an outlet picked up is both."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.analysis.owned import Owners
from pipeline.errors import ConfigError
from pipeline.outputs.alerts import candidates
from pipeline.outputs.digest import Week, build, render
from pipeline.run import remention, run
from pipeline.settings.config import AlertRule, Config
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.sqlite_rows import rows

PARIS = ZoneInfo("Europe/Paris")
DIGEST = {
    "from": "veille@atlanpole.example",
    "recipients": ["communication@atlanpole.example"],
    "language": "fr",
    "backlog_days": 3650,
}
CLUSTER_SITE = "https://www.atlanpole-biotherapies.example"


# ---------------------------------------------------------------- the rule, alone


def test_a_url_on_a_members_website_is_owned_by_it_and_nothing_else_is() -> None:
    owners = Owners.build(
        [
            ("https://www.ose-immuno.example", "ose"),
            ("https://shared-host.example/acme/", "acme"),
            ("http://127.0.0.1:8123", "local"),
        ],
    )
    assert owners.owner_of("https://www.ose-immuno.example/actualites/a") == "ose"
    assert owners.owner_of("http://ose-immuno.example/a") == "ose"  # www. and scheme aside
    assert owners.owner_of("https://presse.ose-immuno.example/a") == "ose"  # a subdomain
    assert owners.owner_of("https://ose-immuno.example.evil.example/a") is None
    assert owners.owner_of("https://notose-immuno.example/a") is None
    # a website on a shared host names its own corner of it, never the whole host
    assert owners.owner_of("https://shared-host.example/acme/news/1") == "acme"
    assert owners.owner_of("https://shared-host.example/acme") == "acme"
    assert owners.owner_of("https://shared-host.example/other/news/1") is None
    assert owners.owner_of("https://shared-host.example/acmeplus/1") is None
    # the port counts (several local "sites" on one address)
    assert owners.owner_of("http://127.0.0.1:8123/news") == "local"
    assert owners.owner_of("http://127.0.0.1:8124/news") is None
    assert owners.owner_of("urn:veille:x:1234") is None


def test_a_newsroom_owns_what_it_publishes_on_its_own_site_not_the_press_it_links_to() -> None:
    owners = Owners.build(
        [], [("valneva-news", "https://newsroom.pr-host.example/valneva/feed", "valneva")]
    )
    assert owners.owner_of("https://newsroom.pr-host.example/valneva/2026/a", ["valneva-news"]) == (
        "valneva"
    )
    # "they write about us": a link to an outlet is press coverage
    assert owners.owner_of("https://www.ouest-sante.example/valneva.html", ["valneva-news"]) is None
    # the same URL carried by another source only
    assert owners.owner_of("https://newsroom.pr-host.example/valneva/2026/a", ["press"]) is None


def test_an_owner_must_be_a_member_and_a_search_is_nobodys(write_config: WriteConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        write_config(
            sources=[
                {"id": "a", "kind": "feed", "url": "http://127.0.0.1:1/a.rss", "owner": "nobody"},
                {
                    "id": "s",
                    "kind": "search",
                    "url": "http://127.0.0.1:1/s?q={query}",
                    "owner": "valneva",
                },
                {"id": "b", "kind": "feed", "url": "http://127.0.0.1:1/b.rss", "owner": "valneva"},
            ]
        )
    assert caught.value.problems == [
        "sources[0].owner: no member with id 'nobody'",
        "sources[1].owner: a news search is nobody's newsroom (owner is for a member's own "
        "feed, page or sitemap)",
    ]


# ---------------------------------------------------------------- a real run

RELEASE = "Valneva inaugure une ligne de remplissage à Saint-Herblain"
RELEASE_TEXT = (
    "Valneva annonce la mise en service d'une nouvelle ligne de remplissage aseptique sur son "
    "site de Saint-Herblain, qui double la capacité de production de vaccins du site."
)


def _rss(title: str, items: list[tuple[str, str, str]]) -> str:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><description>{d}</description>"
        f"<pubDate>Wed, 25 Nov 2026 09:00:00 +0100</pubDate></item>\n"
        for t, link, d in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{title}'
        f"</title>{body}</channel></rss>\n"
    )


@pytest.fixture
def newsroom_feeds(feed_dir: Path, server: FixtureServer) -> dict[str, str]:
    """Valneva's own newsroom (links on the server itself: its own site) with a release and a
    "dans la presse" link to an outlet; an outlet that picked up the release at its own URL."""
    outlet_url = "https://www.ouest-sante.example/economie/valneva-remplissage.html"
    interview = "https://www.ouest-sante.example/entretiens/valneva-directeur-site.html"
    (feed_dir / "valneva-news.rss").write_text(
        _rss(
            "Valneva – communiqués",
            [
                (RELEASE, server.url("valneva/communiques/ligne-remplissage"), RELEASE_TEXT),
                ("Valneva dans la presse : Ouest Santé", interview, "Lire l'entretien."),
            ],
        ),
        encoding="utf-8",
    )
    (feed_dir / "press.rss").write_text(
        _rss("Presse régionale", [(RELEASE, outlet_url, RELEASE_TEXT)]), encoding="utf-8"
    )
    return {
        "outlet": outlet_url,
        "interview": interview,
        "release": server.url("valneva/communiques/ligne-remplissage"),
    }


def _config(write_config: WriteConfig, server: FixtureServer, **extra: Any) -> Config:
    return write_config(
        sources=[
            {"id": "press", "kind": "feed", "name": "Ouest Santé", "url": server.url("press.rss")},
            {
                "id": "valneva-news",
                "kind": "feed",
                "name": "Valneva – communiqués",
                "url": server.url("valneva-news.rss"),
                "owner": "valneva",
            },
            {
                "id": "atlanpole-actus",
                "kind": "feed",
                "name": "Atlanpole – actualités",
                "url": server.url("atlanpole-actus.rss"),
            },
            {
                "id": "ouest-sante",
                "kind": "feed",
                "name": "Ouest Santé (flux)",
                "url": server.url("ouest-sante.rss"),
            },
        ],
        members=[{"name": "Xenothera"}, {"name": "Valneva"}, {"name": "GoLiver Therapeutics"}],
        digest=DIGEST,
        **extra,
    )


@pytest.fixture
def owned_run(
    write_config: WriteConfig,
    server: FixtureServer,
    db_path: Path,
    newsroom_feeds: dict[str, str],
    tmp_path: Path,
) -> Config:
    config = _config(write_config, server)
    # the cluster's website: its news page is its own
    text = Path(config.path).read_text(encoding="utf-8")
    Path(config.path).write_text(
        text.replace("cluster:\n", f"cluster:\n  website: {CLUSTER_SITE}\n", 1),
        encoding="utf-8",
    )
    from pipeline.settings.config import load_config

    config = load_config(config.path)
    assert config.cluster.website == CLUSTER_SITE
    run(config, db_path=db_path)
    return config


def test_a_newsrooms_articles_and_the_clusters_own_news_are_stored_as_owned(
    owned_run: Config, db_path: Path, newsroom_feeds: dict[str, str]
) -> None:
    owned = dict(rows(db_path, "SELECT url, owner FROM articles WHERE owned = 1"))
    assert owned[newsroom_feeds["release"]] == "valneva"
    # the press link in the newsroom, and the outlet's copy of the release: press coverage
    assert newsroom_feeds["outlet"] not in owned and newsroom_feeds["interview"] not in owned
    # every item of the cluster's own news feed is on its website
    cluster_urls = {
        url
        for (url,) in rows(db_path, "SELECT url FROM articles WHERE source_id = 'atlanpole-actus'")
    }
    assert cluster_urls and all(owned.get(u) == "atlanpole-biotherapies" for u in cluster_urls)
    earned = rows(db_path, "SELECT count(*) FROM articles WHERE owned = 0 AND owner IS NULL")[0][0]
    assert earned >= 6  # ouest-sante's and the outlet's
    assert rows(db_path, "SELECT owner FROM sources WHERE id = 'valneva-news'") == [("valneva",)]


def test_share_of_voice_counts_the_press_and_the_releases_apart(
    owned_run: Config, db_path: Path
) -> None:
    counts = {
        member: (stories, releases)
        for member, stories, releases in rows(
            db_path,
            "SELECT member_id, sum(stories), sum(releases) FROM weekly_member_counts "
            "GROUP BY member_id",
        )
    }
    # Valneva: its release picked up by an outlet is a story in the press and a release; the
    # cluster's own news naming it is a release too (the cluster's, not the press's)
    valneva_press = rows(
        db_path,
        "SELECT count(DISTINCT coalesce(a.story_id, -a.id)) FROM mentions m "
        "JOIN articles a ON a.id = m.article_id WHERE m.member_id = 'valneva' AND a.owned = 0",
    )[0][0]
    assert counts["valneva"] == (valneva_press, 2)
    # the cluster's own news names GoLiver: not coverage, a release of the cluster
    goliver = counts["goliver-therapeutics"]
    assert goliver[1] >= 1
    details = rows(
        db_path,
        "SELECT DISTINCT owned, owner FROM mention_details WHERE member_id = 'goliver-therapeutics'",
    )
    assert (1, "atlanpole-biotherapies") in details


def test_the_digest_shows_the_releases_apart_from_the_press(
    owned_run: Config, db_path: Path
) -> None:
    store = Store.open(db_path)
    try:
        week = Week.containing(datetime.now(UTC), PARIS)
        content = build(owned_run, store, week, now=datetime.now(UTC), db_name="veille")
    finally:
        store.close()
    owners = [section.member.id for section in content.releases]
    assert owners == ["atlanpole-biotherapies", "valneva"]  # the cluster first
    cluster_releases = content.releases[0].stories
    assert len(cluster_releases) == 6 and all(s.owner for s in cluster_releases)
    # the cluster "in the press" holds no story of its own news page
    press_urls = {
        s.article_url for sec in [content.cluster, *content.sections] if sec for s in sec.stories
    }
    assert not any(url.startswith(CLUSTER_SITE.replace("https", "http")) for url in press_urls)
    assert not any("atlanpole-biotherapies.example" in url for url in press_urls)
    # the release an outlet picked up: in the press with "from the release", and as a release
    valneva_press = next(s for s in content.sections if s.member.id == "valneva").stories
    picked = next(s for s in valneva_press if s.title == RELEASE)
    assert picked.outlet == "Ouest Santé" and picked.release_of == ["Valneva"]
    assert picked.release_url and "valneva/communiques" in picked.release_url
    release = content.releases[1].stories[0]
    assert release.title == RELEASE and release.picked_up_by == ["Ouest Santé"]
    assert release.story_key == picked.story_key  # one story, shown both ways
    # the figures are the press's
    valneva_row = next(r for r in content.members if r.id == "valneva")
    assert valneva_row.releases == 2  # its own, and the cluster's news naming it
    assert content.release_count == 7
    rendered = render(owned_run, content)
    html, text = rendered.html, rendered.text
    assert "Communiqués des membres" in html and "== Communiqués des membres ==" in text
    assert html.index("Les membres dans la presse") < html.index("Communiqués des membres")
    assert (
        "d&#39;après le communiqué de Valneva" in html or "d'après le communiqué de Valneva" in html
    )
    assert "repris par Ouest Santé" in text
    assert "7 communiqués" in rendered.subject
    # each owner's section counts its releases in the plural French wants
    for section in content.releases:
        n = len(section.stories)
        assert f"-- {section.member.name} ({n} communiqué{'s' if n > 1 else ''}) --" in text
    assert any(len(section.stories) == 1 for section in content.releases), "no single release"


def test_an_alert_rule_with_owned_false_sends_only_press_coverage(
    owned_run: Config, db_path: Path
) -> None:
    now = datetime.now(UTC)
    store = Store.open(db_path)
    try:
        everything = candidates(store, AlertRule(id="all", to="X", max_age_days=3650), now=now)
        press = candidates(
            store, AlertRule(id="press", to="X", max_age_days=3650, owned=False), now=now
        )
        own = candidates(store, AlertRule(id="own", to="X", max_age_days=3650, owned=True), now=now)
    finally:
        store.close()
    titles = lambda found: {c.title for c in found}  # noqa: E731
    assert titles(press) | titles(own) == titles(everything)
    assert "Atlanpole Biothérapies accueille trois nouveaux membres" in titles(own)
    assert "Atlanpole Biothérapies accueille trois nouveaux membres" not in titles(press)
    assert RELEASE in titles(press) and RELEASE in titles(own)  # picked up: both


def test_owners_are_decided_again_when_a_newsroom_or_a_website_changes(
    owned_run: Config, db_path: Path, write_config: WriteConfig, server: FixtureServer
) -> None:
    before = rows(db_path, "SELECT count(*) FROM articles WHERE owned = 1")[0][0]
    assert before == 7
    # the newsroom loses its owner and the cluster its website: the next run says earned
    config = _config(write_config, server)
    text = Path(config.path).read_text(encoding="utf-8").replace("owner: valneva", "")
    Path(config.path).write_text(text, encoding="utf-8")
    from pipeline.settings.config import load_config

    config = load_config(config.path)
    run(config, db_path=db_path)
    assert rows(db_path, "SELECT count(*) FROM articles WHERE owned = 1")[0][0] == 0
    assert rows(db_path, "SELECT sum(releases) FROM weekly_member_counts")[0][0] == 0
    # given back through `veille remention` (which decides every owner again)
    remention(owned_run, db_path=db_path)
    assert rows(db_path, "SELECT count(*) FROM articles WHERE owned = 1")[0][0] == before


def test_an_upgraded_database_marks_the_articles_on_member_websites(db_path: Path) -> None:
    import sqlite3

    import sqlite_utils

    from pipeline.storage.migrations import MIGRATIONS, _m17_owned

    db = sqlite_utils.Database(sqlite3.connect(db_path))
    before = MIGRATIONS.index(_m17_owned)  # the schema of the last veille without owners
    for number, migration in enumerate(MIGRATIONS[:before], start=1):
        with db.conn:
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
    with db.conn:
        db.execute(
            "INSERT INTO members (id, name, kind, website) VALUES "
            "('valneva', 'Valneva', 'member', 'https://valneva.example'), "
            "('atlanpole-biotherapies', 'Atlanpole Biotherapies', 'cluster', ?)",
            [CLUSTER_SITE],
        )
        for number, url in enumerate(
            [
                "https://www.valneva.example/fr/presse/2026/ligne",
                f"{CLUSTER_SITE}/actualites/a",
                "https://www.ouest-sante.example/valneva.html",
            ],
            start=1,
        ):
            db.execute(
                "INSERT INTO articles (id, url, title, first_seen_at) VALUES (?, ?, 't', "
                "'2026-11-20T06:00:00Z')",
                [number, url],
            )
    db.close()
    Store.open(db_path).close()
    assert rows(db_path, "SELECT id, owner, owned FROM articles ORDER BY id") == [
        (1, "valneva", 1),
        (2, "atlanpole-biotherapies", 1),
        (3, None, 0),
    ]
