"""Datasette on a database the pipeline built: canned queries, search, descriptions, views,
dashboards, and reading while a run writes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
from datasette.app import Datasette
from ruamel.yaml import YAML

from pipeline.outputs.digest import Week, week_bounds
from pipeline.outputs.serve import load_metadata, metadata_for
from pipeline.run import run
from pipeline.settings.config import load_config
from tests.conftest import DEMO_FEEDS, FAST_NETWORK
from tests.fixture_server import FixtureServer

ROOT = Path(__file__).resolve().parent.parent
FEEDS = [
    "ouest-sante.rss",
    "pharma-wire.rss",
    "biotech-daily.atom",
    "nantes-eco.atom",
    "labnews-fr.rdf",
    "invest-bio.rss",
    "atlanpole-actus.rss",
]


def write_demo_config(
    path: Path,
    server: FixtureServer,
    feeds: list[str],
    *,
    syndication: bool = False,
    **network: Any,
) -> Path:
    """The shipped sources.yaml (members, topics) with local sources; ``syndication`` adds a
    feed whose article pages are read (the server must stand in for their sites)."""
    data = YAML(typ="safe", pure=True).load((ROOT / "sources.yaml").read_text(encoding="utf-8"))
    data["sources"] = [
        {
            "id": Path(f).stem,
            "kind": "feed",
            "name": Path(f).stem.replace("-", " ").title(),
            "url": server.url(f),
            "fetch_articles": False,
        }
        for f in feeds
    ]
    data["sources"].append(
        {"id": "broken", "kind": "feed", "url": server.url("_/status/500"), "fetch_articles": False}
    )
    if syndication:
        # three outlets rewrite one GlioCure release: read in full, they make one story
        data["sources"].append(
            {"id": "presse-regionale", "kind": "feed", "url": server.url("presse-regionale.rss")}
        )
    data["network"] = {**FAST_NETWORK, "retries": 0, **network}
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump(data, handle)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """storage/veille.db built by a real run over the demo feeds."""
    tmp = tmp_path_factory.mktemp("datasette")
    www = tmp / "www"
    shutil.copytree(DEMO_FEEDS, www)
    db_path = tmp / "veille.db"
    with FixtureServer(www, rewrite_hosts=True) as server:
        config = load_config(
            write_demo_config(tmp / "sources.yaml", server, FEEDS, syndication=True)
        )
        run(config, db_path=db_path)
    yield db_path


def get(db_path: Path, path: str) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        ds = Datasette([str(db_path)], metadata=metadata_for(db_path, protect=False))
        await ds.invoke_startup()
        response = await ds.client.get(path)
        body = (
            response.json() if "json" in response.headers.get("content-type", "") else response.text
        )
        return response.status_code, body

    return asyncio.run(go())


def rows(db_path: Path, query: str, params: str = "") -> list[dict[str, Any]]:
    status, body = get(db_path, f"/veille/{query}.json?_shape=objects&{params}")
    assert status == 200, body
    return list(body["rows"])


def test_every_canned_query_answers_with_the_expected_rows(built: Path) -> None:
    conn = sqlite3.connect(built)
    week = conn.execute("SELECT week FROM articles WHERE title LIKE 'Xenothera lève%'").fetchone()[
        0
    ]
    conn.close()
    this_week = rows(built, "mentions_this_week", f"week={week}")
    assert any(
        r["member"] == "Xenothera" and r["title"].startswith("Xenothera lève") for r in this_week
    )
    timeline = rows(built, "member_timeline", "member=xenothera")
    assert timeline and all("Xenothera" in (r["snippet"] + r["title"]) for r in timeline)
    assert rows(built, "member_timeline", "member=Xenothera") == timeline  # by name too
    funding = rows(built, "funding_events")
    assert any(r["member"] == "Xenothera" and r["amount_eur"] == 12_000_000 for r in funding)
    outlets = rows(built, "top_outlets_per_member", "member=gliocure")
    # outlets are grouped by name: the three copies come from three outlets
    assert len(outlets) >= 3 and len({r["outlet"] for r in outlets}) == len(outlets)
    errors = rows(built, "sources_in_error")
    assert [(r["id"], r["last_error"]) for r in errors] == [
        ("broken", "HTTP 500 Internal Server Error")
    ]
    # the digest's link: the week's bounds as the digest computes them
    conn = sqlite3.connect(built)
    first_seen = conn.execute(
        "SELECT first_seen_at FROM articles WHERE title LIKE 'Xenothera lève%'"
    ).fetchone()[0]
    conn.close()
    paris = Week.containing(
        datetime.fromisoformat(first_seen.replace("Z", "+00:00")), ZoneInfo("Europe/Paris")
    )
    # the fixtures are dated November 2026: a window wide enough for any day the test runs
    bounds = "&".join(f"{k}={v}" for k, v in week_bounds(paris, backlog_days=3650).items())
    digest_rows = rows(built, "digest_mentions", bounds)
    assert any(
        r["member"] == "Xenothera" and r["title"].startswith("Xenothera lève") for r in digest_rows
    )
    assert not rows(
        built,
        "digest_mentions",
        "start=2000-01-01T00:00:00Z&end=2000-01-08T00:00:00Z&oldest=1999-12-18T00:00:00Z",
    )
    multi = rows(built, "multi_outlet_stories")
    assert multi and all(r["article_count"] > 1 for r in multi)
    assert any(r["article_count"] == 3 and "GlioCure" in r["title"] for r in multi)


@pytest.mark.parametrize(
    "query", ["l'OSE", "NG-Biotech", '"Clean Cells"', "Valneva", 'bad "quote', "AND OR NOT"]
)
def test_search_is_safe_with_apostrophes_hyphens_and_quotes(built: Path, query: str) -> None:
    status, body = get(built, f"/veille/search_mentions.json?_shape=objects&q={query}")
    assert status == 200 and body.get("ok", True) is not False, body


def test_search_finds_members_as_the_press_writes_them(built: Path) -> None:
    assert rows(built, "search_mentions", "q=NG-Biotech")
    assert any(
        r["member"] == "Clean Cells" for r in rows(built, "search_mentions", 'q="Clean Cells"')
    )


def test_every_table_and_view_has_a_description(built: Path) -> None:
    conn = sqlite3.connect(built)
    names = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        if not r[0].startswith(("sqlite_", "articles_fts_"))
    ]
    conn.close()
    described = load_metadata()["databases"]["veille"]["tables"]
    missing = [n for n in names if not described.get(n, {}).get("description")]
    assert missing == []
    assert {"mention_details", "weekly_member_counts"} <= set(names)


def test_views_give_one_row_per_mention_and_weekly_counts(built: Path) -> None:
    details = rows(built, "mention_details", "member=Xenothera")
    assert details and {"week", "story_id", "source", "member"} <= set(details[0])
    weekly = rows(built, "weekly_member_counts", "member_id=xenothera")
    assert weekly and weekly[0]["stories"] <= weekly[0]["articles"]


def test_articles_table_has_full_text_search_and_facets(built: Path) -> None:
    status, body = get(built, "/veille/articles.json?_search=Guipry&_shape=objects")
    assert status == 200 and body["rows"]
    assert all("Guipry" in (r["title"] + r["summary"] + (r["text"] or "")) for r in body["rows"])
    status, body = get(built, "/veille/articles.json?_facet=week")
    assert status == 200 and body["facet_results"]


def test_members_have_facets_by_tag_and_city(built: Path) -> None:
    status, body = get(built, "/veille/members.json?_shape=objects")
    assert status == 200
    facets = body["facet_results"]
    facets = facets.get("results", facets)  # keyed by column
    assert {"kind", "city", "tags"} <= set(facets)
    cities = {v["value"]: v["count"] for v in facets["city"]["results"]}
    assert cities["Nantes"] >= 3
    tags = {v["value"] for v in facets["tags"]["results"]}
    assert "oncology" in tags  # an array facet: one value per tag
    status, body = get(built, "/veille/members.json?_shape=objects&tags__arraycontains=oncology")
    assert status == 200 and body["rows"] and all("oncology" in r["tags"] for r in body["rows"])


def test_members_with_no_mention_in_the_last_n_weeks(built: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "veille.db"
    shutil.copy(built, db_path)
    conn = sqlite3.connect(db_path)
    # three members the directory added: one never named, one gone, one not there yet
    conn.executemany(
        "INSERT INTO members (id, name, kind, joined, left) VALUES (?, ?, 'member', ?, ?)",
        [
            ("discret", "Discret", None, None),
            ("parti", "Parti", "2000-01-01", "2001-01-01"),
            ("futur", "Futur", "2999-01-01", None),
        ],
    )
    conn.commit()
    members = {r[0] for r in conn.execute("SELECT id FROM members WHERE kind = 'member'")}
    named = {r[0] for r in conn.execute("SELECT DISTINCT member_id FROM mentions")}
    conn.close()
    members -= {"parti", "futur"}  # not members today: never listed
    never = members - named
    assert never == {"discret"} and named & members
    # a window reaching back past every article: the members never named, first
    listed = rows(db_path, "members_without_mentions", "weeks=5000")
    assert {r["id"] for r in listed} == never and all(r["last_mention"] is None for r in listed)
    # a window of no weeks: every current member, those never named first, then by last mention
    everyone = rows(db_path, "members_without_mentions", "weeks=0")
    assert {r["id"] for r in everyone} == members
    last = [r["last_mention"] for r in everyone if r["last_mention"]]
    assert last == sorted(last) and everyone[0]["last_mention"] is None
    # blank is 8 weeks
    assert rows(db_path, "members_without_mentions", "weeks=") == rows(
        db_path, "members_without_mentions", "weeks=8"
    )


def chart_rows(db_path: Path, chart: str) -> list[dict[str, Any]]:
    sql = load_metadata()["plugins"]["datasette-dashboards"]["veille-overview"]["charts"][chart][
        "query"
    ]
    status, body = get(
        db_path, "/veille.json?" + urllib.parse.urlencode({"sql": sql, "_shape": "objects"})
    )
    assert status == 200, body
    return list(body["rows"])


def test_per_member_charts_show_the_top_eight_and_one_slice_for_the_others(built: Path) -> None:
    conn = sqlite3.connect(built)
    window = (
        "week >= (SELECT min(week) FROM (SELECT DISTINCT week FROM articles "
        "WHERE week IS NOT NULL ORDER BY week DESC LIMIT 8))"
    )
    totals = dict(
        conn.execute(
            f"SELECT member, sum(stories) FROM weekly_member_counts WHERE {window} GROUP BY member"
        ).fetchall()
    )
    conn.close()
    assert len(totals) > 9  # enough members for an "others" slice to mean something
    share = chart_rows(built, "share-of-voice")
    assert len(share) == 9 and share[-1]["member"] == "Autres membres"
    top = sorted(totals.values(), reverse=True)
    assert [r["stories"] for r in share[:8]] == top[:8]
    assert share[-1]["stories"] == sum(top[8:])  # nothing lost: the others add up
    weekly = chart_rows(built, "mentions-per-week")
    shown = {r["member"] for r in weekly}
    assert shown - {"Autres membres"} == {r["member"] for r in share[:8]}
    assert sum(r["stories"] for r in weekly) == sum(top)


def test_dashboard_page_renders(built: Path) -> None:
    status, body = get(built, "/-/dashboards/veille-overview")
    assert status == 200 and "Vue d&#39;ensemble des mentions" in body  # HTML-escaped


def test_metadata_follows_the_database_name_and_asks_for_a_password_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renamed = metadata_for(Path("storage/demo.db"), protect=False)
    assert "demo" in renamed["databases"] and "veille" not in renamed["databases"]
    charts = renamed["plugins"]["datasette-dashboards"]["veille-overview"]["charts"]
    assert {c["db"] for c in charts.values()} == {"demo"}
    monkeypatch.delenv("VEILLE_DATASETTE_PASSWORD_HASH", raising=False)
    with pytest.raises(Exception, match="needs a password"):
        metadata_for(Path("storage/veille.db"), protect=True)
    monkeypatch.setenv("VEILLE_DATASETTE_PASSWORD_HASH", "pbkdf2_sha256$480000$salt$hash")
    protected = metadata_for(Path("storage/veille.db"), protect=True)
    assert protected["allow"] == {"id": "analyst"}


def test_reading_while_a_run_writes_never_meets_a_locked_database(tmp_path: Path) -> None:
    www = tmp_path / "www"
    shutil.copytree(DEMO_FEEDS, www)
    db_path = tmp_path / "veille.db"
    with FixtureServer(www) as server:
        feeds = sorted(p.name for p in www.glob("search/*.rss"))
        config_path = write_demo_config(
            tmp_path / "sources.yaml", server, [f"search/{f}" for f in feeds]
        )
        first = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "run",
                "--config",
                str(config_path),
                "--db",
                str(db_path),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert first.returncode == 0, first.stderr
        # a second run rewrites every source's row (and the runs table) while Datasette reads
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "run",
                "--config",
                str(config_path),
                "--db",
                str(db_path),
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )

        async def read_until_done() -> list[int]:
            ds = Datasette([str(db_path)], metadata=metadata_for(db_path, protect=False))
            await ds.invoke_startup()
            statuses = []
            while writer.poll() is None or len(statuses) < 5:
                for path in (
                    "/veille/mention_details.json",
                    "/veille/weekly_member_counts.json",
                    "/veille/sources.json",
                    "/veille/sources_in_error.json",
                ):
                    response = await ds.client.get(path)
                    statuses.append(response.status_code)
                    assert "locked" not in response.text
            return statuses

        statuses = asyncio.run(read_until_done())
        writer.communicate(timeout=60)
    assert writer.returncode == 0
    assert set(statuses) == {200}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_veille_datasette_stops_its_datasette_child_when_signalled(
    built: Path, signum: int
) -> None:
    port = _free_port()
    veille = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "datasette", "--db", str(built), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # until Datasette answers
            assert veille.poll() is None and time.monotonic() < deadline, "Datasette did not start"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/veille.json", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.2)
        children = psutil.Process(veille.pid).children(recursive=True)
        assert children, "veille datasette runs Datasette as a child process"
        veille.send_signal(signum)
        assert veille.wait(timeout=30) == 0, veille.stderr.read() if veille.stderr else ""
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left running: {alive}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/veille.json", timeout=2)
    finally:
        if veille.poll() is None:
            veille.kill()
        for child in psutil.Process().children(recursive=True):
            if child.pid != veille.pid and "datasette" in " ".join(child.cmdline()):
                child.kill()
