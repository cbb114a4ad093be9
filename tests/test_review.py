"""The team's verdicts (`veille review`, pipeline/outputs/review.py): rejected mentions,
dropped and highlighted stories, members added by hand, undo and approval, as every
output reads them: the digest (HTML and text), the Atom feeds, the alerts, and after
`veille remention` and `veille restory`."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import pytest
from datasette.app import Datasette

from pipeline.errors import ReviewError
from pipeline.outputs.digest import Content, Week, build, render
from pipeline.outputs.review import add, approve, drop, find_article, highlight, reject, undo
from pipeline.outputs.send import send_digest
from pipeline.outputs.serve import metadata_for
from pipeline.run import run
from pipeline.settings.config import Config, load_config
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.run_cli import veille
from tests.smtp_server import SmtpServer

PARIS = ZoneInfo("Europe/Paris")
DIGEST = {
    "from": "veille@atlanpole.example",
    "recipients": ["communication@atlanpole.example"],
    "language": "fr",
    "backlog_days": 3650,
}
MEMBERS = [
    {"name": "Xenothera", "aliases": ["Xénothera"]},
    {"name": "Valneva"},
    {"name": "GlioCure"},
    {"name": "NG Biotech"},
]
OUEST = "https://www.ouest-sante.example"
XENO_AS_FED = (
    f"{OUEST}/economie/xenothera-leve-12-millions.html"
    "?utm_source=rss&utm_medium=feed&utm_campaign=flux#xtor=RSS-1"
)
VALNEVA_FR = f"{OUEST}/emploi/valneva-saint-herblain-recrute-40-techniciens.html"
VALNEVA_EN = (
    "https://www.pharma-wire.example/news/2026/11/11/valneva-supply-agreement-travel-vaccine"
)
GLIOCURE = f"{OUEST}/recherche/angers-gliocure-essai-phase-2-glioblastome.html"
NG_BIOTECH = f"{OUEST}/economie/ng-biotech-gamme-autotests.html"
COMMENT = "Première étape clinique d'une start-up angevine du réseau."
# a press agency's copy of a stored article, word for word, at another URL
AGENCY_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Agence Bio Ouest</title>
<link>https://www.agence-bio.example/</link><description>Dépêches</description>
<item><title>{title}</title>
<link>https://www.agence-bio.example/depeches/2026/11/copie</link>
<pubDate>{date}</pubDate><description>{summary}</description></item>
</channel></rss>
"""


def _sources(server: FixtureServer, *extra: str) -> list[dict[str, Any]]:
    sources = [
        {"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")},
        {"id": "pharma-wire", "kind": "feed", "url": server.url("pharma-wire.rss")},
    ]
    return sources + [
        {"id": name, "kind": "feed", "url": server.url(f"{name}.rss")} for name in extra
    ]


def _config(write_config: WriteConfig, server: FixtureServer, *extra: str, **digest: Any) -> Config:
    return write_config(
        sources=_sources(server, *extra),
        members=MEMBERS,
        topics={"funding": {"fr": ["lève"], "en": ["raises"]}},
        digest={**DIGEST, **digest},
    )


@pytest.fixture
def stored(write_config: WriteConfig, server: FixtureServer, db_path: Path) -> Config:
    config = _config(write_config, server)
    assert run(config, db_path=db_path).new_articles > 5
    return config


def this_week() -> Week:
    return Week.containing(datetime.now(UTC), PARIS)


def digest_of(config: Config, db_path: Path) -> tuple[Content, Any]:
    store = Store.open(db_path)
    try:
        content = build(config, store, this_week(), now=datetime.now(UTC), db_name="veille")
    finally:
        store.close()
    return content, render(config, content)


def shape(content: Content) -> dict[str, list[str]]:
    """Who the digest says each story names: member id -> the titles of its section."""
    sections = [s for s in (content.cluster, *content.sections) if s is not None]
    return {s.member.id: sorted(story.title for story in s.stories) for s in sections}


def cli(config: Config, db_path: Path, *args: str) -> Any:
    return veille(*args, "--config", str(config.path), "--db", str(db_path))


def verdict_count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        return int(db.execute("SELECT count(*) FROM verdicts").fetchone()[0])


def test_verdicts_shape_the_digest_and_the_feeds_and_survive_recomputation(
    stored: Config, db_path: Path, server: FixtureServer, write_config: WriteConfig
) -> None:
    before, _ = digest_of(stored, db_path)
    assert "valneva" in shape(before) and "xenothera" in shape(before)
    assert not any("NG Biotech" in t for t in shape(before).get("xenothera", []))

    for args in (
        ("reject", VALNEVA_FR, "--member", "valneva", "--why", "la société n'est pas citée"),
        ("reject", VALNEVA_EN, "--member", "valneva"),
        ("drop", XENO_AS_FED, "--why", "déjà annoncé"),  # the URL as the feed gave it
        ("highlight", GLIOCURE, "--comment", COMMENT),
        ("add", NG_BIOTECH, "--member", "xenothera"),
    ):
        done = cli(stored, db_path, "review", *args, "--by", "claire")
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith("#")
    assert verdict_count(db_path) == 5

    content, rendered = digest_of(stored, db_path)
    judged = shape(content)
    assert "valneva" not in judged  # both its mentions were wrong
    assert not any("Xenothera lève" in t for titles in judged.values() for t in titles)
    assert any("NG Biotech" in t for t in judged["xenothera"])  # the mention added
    assert content.highlights and content.highlights[0][0].comment == COMMENT
    for part in (rendered.text, rendered.html):
        assert "Valneva" not in part  # neither its stories nor its row in the table
        assert "Xenothera lève 12 millions" not in part
        assert COMMENT.replace("'", "&#39;") in part or COMMENT in part
        # the highlight comes first, before the cluster's and the members' sections
        first = part.index("À la une")
        assert first < part.index("Les membres dans la presse")
        assert first < part.index("GlioCure prépare son essai")
    text = rendered.text
    assert text.index("> " + COMMENT) < text.index("== Les membres dans la presse ==")

    # the Atom feeds agree
    feeds = atom_titles(db_path, "mentions_feed")
    assert feeds and not any("Xenothera lève" in t for t in feeds)
    assert not any(t.startswith("Valneva") for t in feeds)
    assert any("NG Biotech" in t for t in atom_titles(db_path, "member_feed", member="xenothera"))

    # recomputed mentions and stories change nothing
    for command in ("remention", "restory"):
        done = cli(stored, db_path, command)
        assert done.returncode == 0, done.stderr
        again, _ = digest_of(stored, db_path)
        assert shape(again) == judged
        assert [s.title for s, _ in again.highlights] == [s.title for s, _ in content.highlights]

    # a copy of the dropped story, from a source added later, stays out
    with sqlite3.connect(db_path) as db:
        title, summary, published = db.execute(
            "SELECT title, summary, published_at FROM articles WHERE title LIKE 'Xenothera lève%'"
        ).fetchone()
    when = datetime.fromisoformat(published.replace("Z", "+00:00")) + timedelta(hours=2)
    copy = AGENCY_FEED.format(
        title=escape(title), summary=escape(summary), date=format_datetime(when)
    )
    (server.root / "agence-bio.rss").write_text(copy, encoding="utf-8")
    more = _config(write_config, server, "agence-bio")
    assert run(more, db_path=db_path).new_articles == 1
    with sqlite3.connect(db_path) as db:
        stories = db.execute(
            "SELECT DISTINCT story_id FROM articles WHERE title LIKE 'Xenothera lève%'"
        ).fetchall()
    assert len(stories) == 1 and stories[0][0] is not None  # the copy joined the story
    later, _ = digest_of(more, db_path)
    assert shape(later) == judged


def atom_titles(db_path: Path, query: str, **params: str) -> list[str]:
    import asyncio
    import xml.etree.ElementTree as ET

    async def fetch() -> str:
        ds = Datasette([str(db_path)], metadata=metadata_for(db_path, protect=False))
        args = "&".join(f"{k}={v}" for k, v in params.items())
        response = await ds.client.get(f"/veille/{query}.atom" + (f"?{args}" if args else ""))
        assert response.status_code == 200, response.text[:500]
        return response.text

    tree = ET.fromstring(asyncio.run(fetch()))
    ns = {"a": "http://www.w3.org/2005/Atom"}
    return [e.findtext("a:title", "", ns) for e in tree.findall("a:entry", ns)]


def test_undo_restores_what_the_verdict_took(stored: Config, db_path: Path) -> None:
    store = Store.open(db_path)
    now = datetime.now(UTC)
    try:
        before, _ = digest_of(stored, db_path)
        dropped = drop(store, url=GLIOCURE, by="claire", now=now).verdict
        added = add(store, url=NG_BIOTECH, member_id="xenothera", by="claire", now=now).verdict
        assert dropped and added
        assert shape(digest_of(stored, db_path)[0]) != shape(before)
        undo(store, verdict_id=dropped.id, by="claire", now=now)
        undo(store, verdict_id=added.id, by="marc", now=now)
        assert shape(digest_of(stored, db_path)[0]) == shape(before)
        # nothing was deleted: four verdicts, two of them undos
        rows = store.rows("reading", "SELECT action, by FROM verdicts ORDER BY id")
        assert rows == [("drop", "claire"), ("add", "claire"), ("undo", "claire"), ("undo", "marc")]
        again = undo(store, verdict_id=dropped.id, by="claire", now=now)
        assert again.verdict is None and "already undone" in again.message
    finally:
        store.close()


def test_verdicts_are_never_edited_nor_deleted(stored: Config, db_path: Path) -> None:
    store = Store.open(db_path)
    try:
        highlight(store, url=GLIOCURE, by="claire", comment="x", now=datetime.now(UTC))
    finally:
        store.close()
    with sqlite3.connect(db_path) as db:
        for sql in ("UPDATE verdicts SET comment = 'y'", "DELETE FROM verdicts"):
            with pytest.raises(sqlite3.IntegrityError, match="never"):
                db.execute(sql)
    assert verdict_count(db_path) == 1


def test_unknown_url_or_member_is_exit_2_and_writes_nothing(stored: Config, db_path: Path) -> None:
    for args, said in (
        (("reject", "https://nowhere.example/a", "--member", "valneva"), "no article"),
        (("reject", VALNEVA_FR, "--member", "nobody"), "no such member"),
        (("add", VALNEVA_FR, "--member", "nobody"), "no such member"),
        (("drop", "not a url at all"), "no article"),
        (("undo", "99"), "no such verdict"),
        (("reject", GLIOCURE, "--member", "valneva"), "does not name Valneva"),
        (("highlight", GLIOCURE, "--comment", "x" * 401), "at most 400"),
        (("approve", "--week", "2026-W60"), "--week"),
    ):
        done = cli(stored, db_path, "review", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert said in done.stderr and "Traceback" not in done.stderr
    assert verdict_count(db_path) == 0


def test_review_list_shows_the_week_and_its_verdicts_as_json(stored: Config, db_path: Path) -> None:
    assert (
        cli(stored, db_path, "review", "highlight", GLIOCURE, "--comment", COMMENT).returncode == 0
    )
    done = cli(stored, db_path, "review", "list", "--week", this_week().label, "--json")
    assert done.returncode == 0, done.stderr
    import json

    listing = json.loads(done.stdout)
    assert listing["week"] == this_week().label and listing["approved"] is None
    stories = {s["url"]: s for section in listing["sections"] for s in section["stories"]}
    assert stories[GLIOCURE]["highlighted"] and stories[GLIOCURE]["comment"] == COMMENT
    assert [v["action"] for v in listing["verdicts"]] == ["highlight"]
    text = cli(stored, db_path, "review", "list", "--week", this_week().label)
    assert "★" in text.stdout and COMMENT in text.stdout


def test_a_dropped_story_is_never_alerted_and_a_delay_lets_the_team_veto(
    stored: Config, db_path: Path
) -> None:
    from pipeline.outputs.alerts import candidates
    from pipeline.settings.config import AlertRule

    now = datetime.now(UTC)
    store = Store.open(db_path)
    try:
        rule = AlertRule(id="xeno", to="ALERT_URLS", members=("xenothera",), max_age_days=3650)
        found = candidates(store, rule, now=now)
        assert any("Xenothera lève" in c.title for c in found)
        delayed = AlertRule(
            id="xeno", to="ALERT_URLS", members=("xenothera",), max_age_days=3650, delay_minutes=60
        )
        assert candidates(store, delayed, now=now) == []  # first seen moments ago: it waits
        assert candidates(store, delayed, now=now + timedelta(minutes=61))
        drop(store, url=XENO_AS_FED, by="claire", now=now)
        assert not any("Xenothera lève" in c.title for c in candidates(store, rule, now=now))
    finally:
        store.close()


# ---------------------------------------------------------------- review before sending


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_with_review_the_digest_waits_for_the_approval_then_goes_once(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    config = _config(write_config, server, review=True)
    run(config, db_path=db_path)
    week = this_week()
    monday = week.end + timedelta(hours=7, minutes=30)
    held = send_digest(config, db_path=db_path, week=week, env=smtp.env(), now=monday)
    assert held.status == "held" and held.deadline is None and smtp.received == []
    store = Store.open(db_path)
    try:
        assert store.digest_row(week.label) is None  # nothing recorded: the next try decides
        approve(store, week=week, by="claire", now=monday)
    finally:
        store.close()
    sent = send_digest(config, db_path=db_path, week=week, env=smtp.env(), now=monday)
    assert sent.status == "sent" and len(smtp.received) == 1
    again = send_digest(config, db_path=db_path, week=week, env=smtp.env(), now=monday)
    assert again.status == "already-sent" and len(smtp.received) == 1


def test_an_unapproved_week_goes_out_at_the_deadline(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    config = _config(write_config, server, review=True, review_deadline="mon 12:00")
    run(config, db_path=db_path)
    week = this_week()
    early = week.end + timedelta(hours=7, minutes=30)
    held = send_digest(config, db_path=db_path, week=week, env=smtp.env(), now=early)
    assert held.status == "held" and held.deadline == week.end + timedelta(hours=12)
    late = week.end + timedelta(hours=12, minutes=5)
    assert (
        send_digest(config, db_path=db_path, week=week, env=smtp.env(), now=late).status == "sent"
    )
    assert len(smtp.received) == 1


def test_the_send_command_says_it_waits_and_exits_0_then_sends_after_approve(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    config = _config(write_config, server, review=True)
    run(config, db_path=db_path)
    last = this_week().shift(-1).label  # over: the command sends it without --force
    send = ("digest", "--send", "--week", last)
    done = veille(*send, "--config", str(config.path), "--db", str(db_path), env=smtp.env())
    assert done.returncode == 0, done.stderr
    assert "waits for the team's approval" in done.stderr and smtp.received == []
    approved = cli(config, db_path, "review", "approve", "--week", last, "--by", "claire")
    assert approved.returncode == 0 and "approved" in approved.stderr
    done = veille(*send, "--config", str(config.path), "--db", str(db_path), env=smtp.env())
    assert done.returncode == 0 and "sent to 1 recipient" in done.stderr
    done = veille(*send, "--config", str(config.path), "--db", str(db_path), env=smtp.env())
    assert "already sent" in done.stderr and len(smtp.received) == 1


def test_find_article_takes_the_url_as_stored_as_fed_or_in_another_form(
    stored: Config, db_path: Path
) -> None:
    store = Store.open(db_path)
    try:
        stored_url = find_article(store, XENO_AS_FED).url
        assert find_article(store, stored_url).id == find_article(store, XENO_AS_FED).id
        with pytest.raises(ReviewError):
            find_article(store, "")
        with pytest.raises(ReviewError):
            reject(store, url=stored_url, member_id="xenothera", by="", now=datetime.now(UTC))
    finally:
        store.close()


# ---------------------------------------------------------------- learning from verdicts

AGENDA = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Agenda</title><link>https://agenda.example/</link>
<description>Agenda</description>
{items}
</channel></rss>
"""
AGENDA_ITEM = """<item><title>{title}</title><link>https://agenda.example/{n}</link>
<pubDate>Mon, 23 Nov 2026 0{n}:00:00 +0100</pubDate><description>{title}</description></item>"""
AGENDA_TITLES = [
    "Randonnée : la vallée de Valneva sous la neige",
    "Le festival Valneva ouvre sa billetterie",
    "Course à pied : record battu au trail de Valneva",
]


def test_members_check_flags_a_form_the_team_keeps_rejecting_and_apply_writes_the_fix(
    write_config: WriteConfig, server: FixtureServer, db_path: Path
) -> None:
    items = "\n".join(AGENDA_ITEM.format(title=t, n=i + 1) for i, t in enumerate(AGENDA_TITLES))
    (server.root / "agenda.rss").write_text(AGENDA.format(items=items), encoding="utf-8")
    config = write_config(sources=_sources(server, "agenda"), members=[], digest=DIGEST)
    path = Path(config.path)
    (path.parent / "members.yaml").write_text(
        "members:\n  - name: Valneva\n  - name: GlioCure\n", encoding="utf-8"
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write("members_file: members.yaml\n")
    config = load_config(path)
    run(config, db_path=db_path)
    for n in range(1, 4):
        done = cli(
            config,
            db_path,
            "review",
            "reject",
            f"https://agenda.example/{n}",
            "--member",
            "valneva",
            "--by",
            "claire",
        )
        assert done.returncode == 0, done.stderr

    shown = cli(config, db_path, "members", "check")
    assert shown.returncode == 0, shown.stderr
    # (how many mentions the cluster has depends on which copy of a shared article came first)
    assert re.search(
        r"as judged by the team: 3 of \d+ mentions rejected in 8 weeks: \d+\.\d %", shown.stdout
    )
    # written with its capitals each time: capitals would not help, context words may
    assert "valneva: 'Valneva' rejected 3 of 5 [plain] -> context" in shown.stdout
    assert "rejected 3x by the team" in shown.stdout
    assert "'GlioCure'" in shown.stdout and "gliocure: 'GlioCure' rejected" not in shown.stdout

    applied = cli(config, db_path, "members", "check", "--apply")
    assert applied.returncode == 0, applied.stderr
    said = "valneva: {'alias': 'Valneva', 'case_sensitive': False, 'context': True} written"
    assert said in applied.stderr
    member = next(m for m in load_config(path).members if m.slug == "valneva")
    assert [(a.alias, a.context) for a in member.alias_rules()] == [("Valneva", True)]
    assert "GlioCure" in (path.parent / "members.yaml").read_text(encoding="utf-8")
    # the agenda's Valneva no longer names the member (no context word of a company there)
    done = cli(config, db_path, "remention")
    assert done.returncode == 0, done.stderr
    store = Store.open(db_path)
    try:
        assert store.rows(
            "reading",
            "SELECT count(*) FROM mentions m JOIN articles a ON a.id = m.article_id "
            "WHERE m.member_id = 'valneva' AND a.url LIKE 'https://agenda.example/%'",
        ) == [(0,)]
    finally:
        store.close()


# ---------------------------------------------------------------- an article added by its URL

ANJOU = Path(__file__).parent / "fixtures" / "articles" / "fr-06-journal-anjou.html"


def test_an_article_veille_missed_is_read_from_its_url_analysed_and_in_the_digest(
    stored: Config, db_path: Path, server: FixtureServer
) -> None:
    shutil.copy(ANJOU, server.root / "gliocure-interview.html")
    url = server.url("gliocure-interview.html")
    done = cli(stored, db_path, "review", "article", url, "--member", "valneva", "--by", "claire")
    assert done.returncode == 0, done.stderr
    assert "article added" in done.stderr and "Valneva added" in done.stderr
    with sqlite3.connect(db_path) as db:
        (article_id, source, text) = db.execute(
            "SELECT a.id, a.source_id, length(a.text) FROM articles a JOIN article_urls u "
            "ON u.article_id = a.id WHERE u.url = ?",
            [url],
        ).fetchone()
        found = dict(
            db.execute("SELECT member_id, origin FROM mentions WHERE article_id = ?", [article_id])
        )
        actions = [r[0] for r in db.execute("SELECT action FROM verdicts ORDER BY id")]
    assert source == "veille-desk" and text > 500
    assert found["gliocure"] == "matcher" and found["valneva"] == "desk"
    assert actions == ["article", "add"]
    content, _ = digest_of(stored, db_path)
    titles = shape(content)
    assert any("Angers" in t or "GlioCure" in t for t in titles["valneva"])
    # the same URL again: already stored, nothing fetched or written
    again = cli(stored, db_path, "review", "article", url, "--by", "claire")
    assert again.returncode == 0 and "already stored" in again.stderr
    assert verdict_count(db_path) == 2


def test_an_article_url_is_read_under_the_same_rules_as_any_page(
    write_config: WriteConfig, server: FixtureServer, db_path: Path
) -> None:
    config = _config(write_config, server)
    run(config, db_path=db_path)
    shutil.copy(ANJOU, server.root / "private.html")
    (server.root / "robots.txt").write_text("User-agent: *\nDisallow: /private.html\n")
    refused = cli(config, db_path, "review", "article", server.url("private.html"))
    assert refused.returncode == 2 and "robots.txt" in refused.stderr
    for bad in ("ftp://example.org/a", "javascript:alert(1)", "x" * 3000):
        done = cli(config, db_path, "review", "article", bad)
        assert done.returncode == 2 and "http" in done.stderr
    # without allow_private, a loopback address is refused as any link to a private one
    public = write_config(
        sources=_sources(server),
        members=MEMBERS,
        network={"allow_private": False},
        name="public.yaml",
    )
    done = cli(public, db_path, "review", "article", server.url("gliocure.html"))
    assert done.returncode == 2 and "not read" in done.stderr
    assert verdict_count(db_path) == 0
