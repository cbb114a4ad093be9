"""The board's report (`veille report`): periods, its figures against SQL written here
without the report's code, the HTML page offline, the PDF rendered by poppler, outlet
tiers in the report and the digest, and the scheduled report mailed once to a real SMTP
server on loopback."""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import ConfigError
from pipeline.outputs.digest import Week
from pipeline.outputs.digest import build as build_digest
from pipeline.outputs.report import Period, build, funding_round, render
from pipeline.outputs.report_pdf import write_pdf
from pipeline.outputs.report_send import send_report
from pipeline.outputs.review import drop, reject
from pipeline.run import run
from pipeline.schedule import Daemon
from pipeline.settings.config import Config
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.run_cli import veille
from tests.smtp_server import SmtpServer
from tests.test_digest import parse_html

PARIS = ZoneInfo("Europe/Paris")
NOVEMBER = "2026-11"
# the bounds of November 2026 in Paris, in UTC as stored
START, END = "2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z"
OCT_START = "2026-09-30T22:00:00Z"
MEMBERS = [
    {"name": "Xenothera", "aliases": ["Xénothera"]},
    {"name": "Valneva"},
    {"name": "GlioCure"},
    {"name": "NG Biotech"},
    {"name": "Quietude Bio"},  # never in the press
]
TOPICS = {
    "funding": {"fr": ["lève", "levée de fonds"], "en": ["raises", "funding"]},
    "clinical-trial": {"fr": ["essai clinique", "phase 2"], "en": ["clinical trial", "phase 2"]},
}
OUTLETS = [
    {"name": "Ouest Santé", "tier": "regional"},
    {"name": "Pharma Wire", "tier": "international", "match": ["pharma-wire.example"]},
]
REPORT = {
    "every": "month",
    "recipients": ["bureau@atlanpole.example", "direction@atlanpole.example"],
    "from": "veille@atlanpole.example",
}
# October: the month the report compares November with
OCTOBER_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Archives santé</title><link>https://archives.example/</link>
<description>octobre</description>
<item><title>Xenothera lève 5 millions d'euros en amorçage</title>
<link>https://archives.example/xenothera-amorcage.html</link>
<description>La biotech nantaise Xenothera lève 5 millions d'euros lors d'un tour d'amorçage.</description>
<pubDate>Tue, 06 Oct 2026 08:00:00 +0000</pubDate></item>
<item><title>Valneva recrute à Nantes</title>
<link>https://archives.example/valneva-recrute.html</link>
<description>Valneva annonce trente recrutements sur son site nantais.</description>
<pubDate>Wed, 14 Oct 2026 08:00:00 +0000</pubDate></item>
</channel></rss>
"""


@pytest.fixture
def smtp() -> Any:
    with SmtpServer() as server:
        yield server


def report_config(write_config: WriteConfig, server: FixtureServer, feed_dir: Path) -> Config:
    (feed_dir / "archives.rss").write_text(OCTOBER_FEED, encoding="utf-8")
    config = write_config(
        sources=[
            {
                "id": "ouest-sante",
                "kind": "feed",
                "name": "Ouest Santé",
                "url": server.url("ouest-sante.rss"),
            },
            {
                "id": "pharma-wire",
                "kind": "feed",
                "name": "Pharma Wire",
                "url": server.url("pharma-wire.rss"),
            },
            {
                "id": "nantes-eco",
                "kind": "feed",
                "name": "Nantes Éco",
                "url": server.url("nantes-eco.atom"),
            },
            {
                "id": "invest-bio",
                "kind": "feed",
                "name": "Invest Bio",
                "url": server.url("invest-bio.rss"),
            },
            {
                "id": "archives",
                "kind": "feed",
                "name": "Archives santé",
                "url": server.url("archives.rss"),
            },
        ],
        members=MEMBERS,
        topics=TOPICS,
        digest={
            "from": "veille@atlanpole.example",
            "recipients": ["c@atlanpole.example"],
            "backlog_days": 3650,
        },
    )
    # outlets and report: keys write_config does not know, added to the file it wrote
    from ruamel.yaml import YAML

    from pipeline.settings.config import load_config

    yaml = YAML()
    data = yaml.load(Path(config.path).read_text(encoding="utf-8"))
    data["outlets"] = OUTLETS
    data["report"] = REPORT
    with open(config.path, "w", encoding="utf-8") as handle:
        yaml.dump(data, handle)
    return load_config(config.path)


@pytest.fixture
def stored(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, db_path: Path
) -> Config:
    config = report_config(write_config, server, feed_dir)
    result = run(config, db_path=db_path)
    assert result.new_articles > 10
    return config


def figures(
    config: Config, db_path: Path, period: str = NOVEMBER, compare: Any = "previous"
) -> dict[str, Any]:
    store = Store.open(db_path)
    try:
        content = build(
            config, store, Period.parse(period, PARIS), compare=compare, now=datetime.now(UTC)
        )
    finally:
        store.close()
    return json.loads(content.to_json())


# ---------------------------------------------------------------- periods


def test_periods_are_years_quarters_months_and_runs_of_weeks_in_the_schedule_zone() -> None:
    year = Period.parse("2026", PARIS)
    assert (year.kind, year.first.isoformat(), year.stop.isoformat()) == (
        "year",
        "2026-01-01",
        "2027-01-01",
    )
    assert year.start.isoformat() == "2026-01-01T00:00:00+01:00"
    assert year.previous().label == "2025" and len(year.buckets()) == 12
    q4 = Period.parse("2026-Q4", PARIS)
    assert (q4.first.isoformat(), q4.last.isoformat()) == ("2026-10-01", "2026-12-31")
    assert q4.previous().label == "2026-Q3" and q4.compared("year").label == "2025-Q4"
    assert Period.parse("2026-q1", PARIS).previous().label == "2025-Q4"
    month = Period.parse("2026-11", PARIS)
    assert month.bounds() == {"start": START, "end": END}
    assert (
        month.previous().label == "2026-10"
        and Period.parse("2026-01", PARIS).previous().label == "2025-12"
    )
    # November 2026 starts on a Sunday: that day joins the first full week, no one-day bar
    buckets = month.buckets()
    assert buckets[0].first.isoformat() == "2026-11-01" and buckets[0].label == "2026-W45"
    assert buckets[-1].stop.isoformat() == "2026-12-01"
    assert sum((b.stop - b.first).days for b in buckets) == 30
    weeks = Period.parse("2026-W40..2026-W52", PARIS)
    assert (weeks.kind, weeks.weeks, weeks.label) == ("weeks", 13, "2026-W40..2026-W52")
    assert weeks.previous().label == "2026-W27..2026-W39"
    assert weeks.compared("year").label == "2025-W40..2025-W52"
    assert Period.parse("2026-W48", PARIS).label == "2026-W48"
    assert (
        Period.last_complete("quarter", datetime(2027, 1, 2, tzinfo=UTC), PARIS).label == "2026-Q4"
    )
    assert (
        Period.last_complete("month", datetime(2026, 12, 6, tzinfo=UTC), PARIS).label == "2026-11"
    )
    # Paris is an hour ahead: 23:30 UTC on 31 December is already January there
    assert (
        Period.last_complete("month", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), PARIS).label
        == "2026-12"
    )
    for bad, why in [
        ("2026-13", "no month 13"),
        ("2026-Q5", "not a period"),
        ("2026-W54", "no ISO week 54"),
        ("2026-W52..2026-W40", "comes before"),
        ("2020-W01..2026-W01", "more than"),
        ("last month", "not a period"),
        ("", "not a period"),
    ]:
        with pytest.raises(ValueError, match=why):
            Period.parse(bad, PARIS)


def test_funding_rounds_are_read_from_the_sentence() -> None:
    assert funding_round("Xenothera lève 5 millions d'euros lors d'un tour d'amorçage") == "seed"
    assert funding_round("GlioCure closes a EUR 8.5 million Series A") == "series-a"
    assert funding_round("une série B de 30 M€") == "series-b"
    assert funding_round("a €40M Series C round") == "series-c"
    assert funding_round("un prêt de Bpifrance de 2 M€") == "grant"
    assert funding_round("introduction en bourse sur Euronext Growth") == "ipo"
    assert funding_round("lève 12 millions d'euros") == "unspecified"


def test_a_bad_period_is_a_usage_error(stored: Config, db_path: Path, tmp_path: Path) -> None:
    common = ("--config", stored.path, "--db", str(db_path))
    done = veille("report", *common, "--period", "2026-W60", "--json", "-")
    assert done.returncode == 2
    assert "--period: '2026-W60': 2026 has no ISO week 60" in done.stderr
    done = veille("report", *common, "--period", "2026-11")
    assert done.returncode == 2 and "say what to write" in done.stderr


# ---------------------------------------------------------------- figures


def _sql_figures(db_path: Path, start: str, end: str) -> dict[str, Any]:
    """The report's figures, computed here from the tables and judged_mentions alone."""
    conn = sqlite3.connect(db_path)
    date = "coalesce(a.published_at, a.first_seen_at)"
    base = f"""
        FROM articles a
        JOIN judged_mentions m ON m.article_id = a.id
        JOIN members mb ON mb.id = m.member_id
        LEFT JOIN sources s ON s.id = a.source_id
        WHERE mb.kind IN ('member', 'cluster') AND {date} >= :start AND {date} < :end
          AND a.owned = 0
          AND (mb.joined IS NULL OR substr({date}, 1, 10) >= mb.joined)
          AND (mb.left IS NULL OR substr({date}, 1, 10) < mb.left)
    """
    outlet = (
        "CASE WHEN a.url LIKE 'https://www.pharma-wire.example/%' THEN 'Pharma Wire' "
        "ELSE coalesce(a.outlet, s.name) END"
    )
    bounds = {"start": start, "end": end}

    def one(sql: str) -> Any:
        return conn.execute(sql, bounds).fetchone()[0]

    out: dict[str, Any] = {
        "stories": one(f"SELECT count(DISTINCT coalesce(a.story_id, -a.id)) {base}"),
        "mentions": one(f"SELECT count(*) {base}"),
        "members_covered": one(f"SELECT count(DISTINCT m.member_id) {base} AND mb.kind = 'member'"),
        "outlets": one(f"SELECT count(DISTINCT {outlet}) {base}"),
        "share": dict(
            conn.execute(
                f"SELECT mb.name, count(DISTINCT coalesce(a.story_id, -a.id)) {base} "
                "AND mb.kind = 'member' GROUP BY m.member_id",
                bounds,
            ).fetchall()
        ),
        "themes": dict(
            conn.execute(
                f"SELECT t.value, count(DISTINCT coalesce(a.story_id, -a.id)) {base.replace('WHERE', ', json_each(a.topics) t WHERE')} "
                "GROUP BY t.value",
                bounds,
            ).fetchall()
        ),
        "tiers": dict(
            conn.execute(
                f"SELECT CASE {outlet} WHEN 'Ouest Santé' THEN 'regional' "
                f"WHEN 'Pharma Wire' THEN 'international' ELSE 'other' END AS tier, "
                f"count(DISTINCT coalesce(a.story_id, -a.id)) {base} GROUP BY tier",
                bounds,
            ).fetchall()
        ),
        "uncovered": [
            name
            for (name,) in conn.execute(
                f"SELECT name FROM members WHERE kind = 'member' AND in_config = 1 "
                f"AND id NOT IN (SELECT m.member_id {base}) ORDER BY name",
                bounds,
            )
        ],
    }
    # funding: judged (article, member) pairs only; one per deal (the same member and the
    # same amount, or euros within 10 %), biggest first
    rows = conn.execute(
        f"""
        SELECT f.member_id, f.amount, f.currency, f.amount_eur
        FROM fundings f JOIN articles a ON a.id = f.article_id
        JOIN members mb ON mb.id = f.member_id
        JOIN judged_mentions jm ON jm.article_id = f.article_id AND jm.member_id = f.member_id
        WHERE mb.kind IN ('member', 'cluster') AND {date} >= :start AND {date} < :end
        ORDER BY coalesce(f.amount_eur, f.amount) DESC
        """,
        bounds,
    ).fetchall()
    kept: list[tuple[str, float, str, float | None]] = []
    for member, amount, currency, eur in rows:
        if not any(
            k[0] == member
            and (
                (k[1] == amount and k[2] == currency)
                or (
                    eur is not None and k[3] is not None and abs(k[3] - eur) <= 0.1 * max(k[3], eur)
                )
            )
            for k in kept
        ):
            kept.append((member, amount, currency, eur))
    per_member: dict[str, float] = defaultdict(float)
    for member, _, _, eur in kept:
        if eur is not None:
            per_member[member] += eur
    out["funding_eur"] = sum(per_member.values())
    out["funding_by_member"] = dict(per_member)
    out["deals"] = len(kept)
    conn.close()
    return out


def test_the_figures_equal_sql_written_without_the_report(stored: Config, db_path: Path) -> None:
    # the team's verdicts first: a story dropped, a mention rejected
    store = Store.open(db_path)
    try:
        url = store.row(
            "an article",
            "SELECT url FROM articles WHERE title LIKE '%GlioCure%' ORDER BY id LIMIT 1",
        )[0]  # type: ignore[index]
        valneva = store.row(
            "an article",
            "SELECT a.url FROM articles a JOIN mentions m ON m.article_id = a.id "
            "WHERE m.member_id = 'valneva' AND a.published_at >= ? ORDER BY a.id LIMIT 1",
            [START],
        )[0]  # type: ignore[index]
    finally:
        store.close()
    before = figures(stored, db_path)
    store = Store.open(db_path)
    try:
        drop(store, url=url, by="claire", now=datetime.now(UTC), why="pas nous")
        reject(store, url=valneva, member_id="valneva", by="claire", now=datetime.now(UTC))
    finally:
        store.close()
    # and a member's own release (as the store marks one from its website): not coverage
    with sqlite3.connect(db_path) as conn:
        owned = conn.execute(
            "UPDATE articles SET owner = 'xenothera', owned = 1 WHERE id = (SELECT a.id FROM "
            "articles a JOIN mentions m ON m.article_id = a.id WHERE m.member_id = 'xenothera' "
            "AND a.published_at >= ? AND a.published_at < ? ORDER BY a.id LIMIT 1)",
            [START, END],
        ).rowcount
    assert owned == 1
    got = figures(stored, db_path)
    assert got["headline"]["stories"]["value"] < before["headline"]["stories"]["value"]

    for start, end, key in ((START, END, "value"), (OCT_START, START, "previous")):
        expected = _sql_figures(db_path, start, end)
        headline = {name: fig[key] for name, fig in got["headline"].items()}
        assert headline["stories"] == expected["stories"] > 0
        assert headline["mentions"] == expected["mentions"]
        assert headline["members_covered"] == expected["members_covered"]
        assert headline["outlets"] == expected["outlets"]
        assert headline["funding_eur"] == pytest.approx(expected["funding_eur"])
        assert expected["funding_eur"] > 0
    expected = _sql_figures(db_path, START, END)
    # share of voice: every member's stories, and their share of the members' stories
    shares = {s["name"]: s for s in got["share_of_voice"]["members"]}
    assert {name: s["stories"] for name, s in shares.items()} == expected["share"]
    total = sum(expected["share"].values())
    assert got["share_of_voice"]["member_stories"] == total
    for name, count in expected["share"].items():
        assert shares[name]["share"] == pytest.approx(count / total)
    assert "Quietude Bio" not in shares
    assert {t["topic"]: t["stories"] for t in got["themes"]} == expected["themes"]
    assert {t["tier"]: t["stories"] for t in got["outlets"]["tiers"]} == expected["tiers"]
    assert [q["name"] for q in got["uncovered"]["members"]] == expected["uncovered"]
    assert got["uncovered"]["count"] == len(expected["uncovered"]) and got["uncovered"]["of"] == 5
    assert {t["key"]: t["amount_eur"] for t in got["funding"]["by_member"]} == pytest.approx(
        expected["funding_by_member"]
    )
    assert len(got["funding"]["deals"]) == expected["deals"]
    # the timeline adds up to the period's mentions (each mention is in one week)
    assert sum(s["mentions"] for s in got["timeline"]["steps"]) == expected["mentions"]
    assert got["timeline"]["unit"] == "week"
    assert (
        sum(s["mentions"] for s in got["timeline"]["compared"])
        == _sql_figures(db_path, OCT_START, START)["mentions"]
    )
    # the dropped story is not among the most covered
    assert all("GlioCure" not in s["title"] or s["title"] != url for s in got["top_stories"])
    assert got["top_stories"] and all(s["outlets"] for s in got["top_stories"])


def test_a_year_compared_with_the_one_before_counts_by_month(stored: Config, db_path: Path) -> None:
    got = figures(stored, db_path, "2026", compare="year")
    assert got["compared_with"]["label"] == "2025" and got["timeline"]["unit"] == "month"
    months = {s["label"]: s["stories"] for s in got["timeline"]["steps"]}
    assert len(months) == 12 and months["2026-11"] > 0 and months["2026-10"] > 0
    assert (
        got["headline"]["stories"]["previous"] == 0 and got["headline"]["stories"]["change"] is None
    )
    expected = _sql_figures(db_path, "2025-12-31T23:00:00Z", "2026-12-31T23:00:00Z")
    assert got["headline"]["stories"]["value"] == expected["stories"]


# ---------------------------------------------------------------- the page and the PDF


def test_the_html_report_opens_offline_with_its_charts(
    stored: Config, db_path: Path, tmp_path: Path
) -> None:
    out, pdf, data = tmp_path / "r.html", tmp_path / "r.pdf", tmp_path / "r.json"
    done = veille(
        "report",
        "--config",
        stored.path,
        "--db",
        str(db_path),
        "--period",
        NOVEMBER,
        "--out",
        str(out),
        "--pdf",
        str(pdf),
        "--json",
        str(data),
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    parsed = parse_html(page)
    # nothing is fetched: no script, no stylesheet or image link, no src, url() only to
    # data: (the font) or to the SVG's own clip paths and hatches (#id)
    assert not {"script", "link", "img", "iframe", "object"} & set(parsed.tags)
    assert not [a for a in parsed.attrs if a[1] == "src"]
    assert all(u.startswith(("data:", "#")) for u in re.findall(r"url\(([^)]*)\)", page))
    assert "@font-face" in page and "@media print" in page and "@page" in page
    for _tag, name, value in parsed.attrs:
        if name == "href":
            assert value.startswith(("#", "http://", "https://")), value
    assert parsed.tags.count("svg") >= 5  # timeline, share, outlets, tiers, themes, funding
    # French labels, the members, the figures JSON has
    figures_json = json.loads(data.read_text(encoding="utf-8"))
    for text in (
        "Novembre 2026",
        "Part de voix des membres",
        "Les financements",
        "Quietude Bio",
        "Xenothera",
        "Régionale",
        "Internationale",
        "Octobre 2026",
    ):
        assert text in page, text
    assert str(figures_json["headline"]["stories"]["value"]) in page
    # feed text is escaped, never markup
    assert "<script" not in page.lower()

    english = tmp_path / "en.html"
    done = veille(
        "report",
        "--config",
        stored.path,
        "--db",
        str(db_path),
        "--period",
        NOVEMBER,
        "--lang",
        "en",
        "--compare",
        "year",
        "--out",
        str(english),
    )
    assert done.returncode == 0, done.stderr
    text = html.unescape(english.read_text(encoding="utf-8"))
    assert "November 2026" in text and "Members' share of voice" in text and "November 2025" in text


def _poppler() -> None:
    if not (shutil.which("pdftoppm") and shutil.which("pdftotext")):
        pytest.skip(
            "poppler-utils (pdftoppm, pdftotext) is not installed: apt-get install poppler-utils"
        )


def test_the_pdf_renders_to_readable_a4_pages(
    stored: Config, db_path: Path, tmp_path: Path
) -> None:
    _poppler()
    store = Store.open(db_path)
    try:
        content = build(stored, store, Period.parse(NOVEMBER, PARIS), now=datetime.now(UTC))
    finally:
        store.close()
    rendered = render(stored, content)
    data = write_pdf(content, rendered.charts, language="fr", zone="Europe/Paris")
    assert data.startswith(b"%PDF")
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert 4 <= len(pages) <= 12
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Page 1 sur {len(pages)}" in text and f"Page {len(pages)} sur {len(pages)}" in text
    for heading in (
        "Sommaire",
        "Chiffres clés",
        "Part de voix des membres",
        "Les médias",
        "Les thèmes",
        "Les financements",
        "Les sujets les plus repris",
        "Annexe : les membres sans couverture",
        "Quietude Bio",
    ):
        assert heading in text, heading
    # the contents give each section's page
    assert re.search(r"Les financements[ .]+\d", text)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    assert "595.276 x 841.89" in info  # A4 in points


# ---------------------------------------------------------------- outlets


def test_outlets_config_is_checked_by_path(
    write_config: WriteConfig, server: FixtureServer, feed_dir: Path, tmp_path: Path
) -> None:
    from ruamel.yaml import YAML

    from pipeline.settings.config import load_config

    config = report_config(write_config, server, feed_dir)
    yaml = YAML()
    data = yaml.load(Path(config.path).read_text(encoding="utf-8"))
    data["outlets"] = [
        {"name": "Les Echos", "tier": "national", "match": ["lesechos.fr"]},
        {"name": "Echos bis", "tier": "National!", "match": ["LesEchos.fr"]},
    ]
    data["report"] = {"every": "quarter"}
    data["digest"] = {}
    with open(config.path, "w", encoding="utf-8") as handle:
        yaml.dump(data, handle)
    with pytest.raises(ConfigError) as caught:
        load_config(config.path)
    text = str(caught.value)
    assert "outlets[1].tier" in text
    assert "report.recipients" in text and "report.from" in text
    # in a file of their own, named by sources.yaml
    (tmp_path / "outlets.yaml").write_text(
        "outlets:\n  - {name: Les Echos, tier: national, match: [lesechos.fr]}\n"
        "  - {name: Autre, tier: trade, match: [lesechos.fr]}\n",
        encoding="utf-8",
    )
    data["outlets"] = "outlets.yaml"
    data["report"] = {}
    with open(config.path, "w", encoding="utf-8") as handle:
        yaml.dump(data, handle)
    with pytest.raises(
        ConfigError, match=r"outlets.yaml: outlets\[1\]: 'lesechos.fr' already belongs"
    ):
        load_config(config.path)


def test_the_digest_orders_a_members_stories_by_outlet_tier(stored: Config, db_path: Path) -> None:
    store = Store.open(db_path)
    try:
        # the feeds' articles were first seen now: this week's digest has them
        content = build_digest(
            stored,
            store,
            Week.containing(datetime.now(UTC), PARIS),
            now=datetime.now(UTC),
            db_name="veille",
        )
    finally:
        store.close()
    ranks = {"international": 1, "regional": 2, "other": 4}
    for section in content.sections:
        unhighlighted = [s for s in section.stories if not s.highlighted]
        assert [s.tier_rank for s in unhighlighted] == sorted(s.tier_rank for s in unhighlighted)
    tiers = {s.outlet: s.tier_rank for section in content.sections for s in section.stories}
    assert tiers.get("Pharma Wire") == ranks["international"]
    assert tiers.get("Ouest Santé") == ranks["regional"]


# ---------------------------------------------------------------- sent once


def _received(smtp: SmtpServer) -> list[EmailMessage]:
    return [r.message for r in smtp.received]


def test_the_scheduled_report_is_sent_once_with_the_pdf_attached(
    stored: Config, db_path: Path, smtp: SmtpServer
) -> None:
    december = datetime(2026, 12, 1, 8, 30, tzinfo=PARIS)
    clock = [december - timedelta(hours=5)]  # 03:30: the delay (8 hours) is not over
    daemon = Daemon(stored, db_path=db_path, env=smtp.env(), clock=lambda: clock[0])
    daemon.catch_up_report()
    assert smtp.received == []
    clock[0] = december
    daemon.catch_up_report()
    assert len(smtp.received) == 1
    mail = _received(smtp)[0]
    assert sorted(smtp.received[0].recipients) == sorted(REPORT["recipients"])
    assert "Novembre 2026" in str(mail["Subject"]) and mail["X-Veille-Report"] == NOVEMBER
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and "Part de voix des membres" in html.get_content()
    # its charts are PNG images of the same mail (mail readers show no inline SVG)
    body = html.get_content()
    assert "<svg" not in body
    cids = set(re.findall(r'src="cid:([^"]+)"', body))
    related = mail.get_body(preferencelist=("related",))
    assert related is not None
    images = {
        part["Content-ID"].strip("<>"): part.get_content()
        for part in related.iter_parts()
        if part.get_content_type() == "image/png"
    }
    assert len(cids) >= 5 and cids == set(images)
    assert all(data.startswith(b"\x89PNG") for data in images.values())
    attachments = list(mail.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["rapport-2026-11.pdf"]
    assert attachments[0].get_content().startswith(b"%PDF")
    # a second pass, and a restart: nothing more
    daemon.catch_up_report()
    Daemon(stored, db_path=db_path, env=smtp.env(), clock=lambda: clock[0]).catch_up_report()
    assert len(smtp.received) == 1
    row = (
        sqlite3.connect(db_path)
        .execute("SELECT status, attempts, delivered FROM reports WHERE period = ?", [NOVEMBER])
        .fetchone()
    )
    assert row[0] == "sent" and row[1] == 1 and len(json.loads(row[2])) == 2


def test_report_send_from_cron_sends_once_and_retries_the_refused(
    stored: Config, db_path: Path, smtp: SmtpServer
) -> None:
    smtp.refuse = {"direction@atlanpole.example"}
    common = (
        "report",
        "--config",
        stored.path,
        "--db",
        str(db_path),
        "--period",
        NOVEMBER,
        "--send",
    )
    first = veille(*common, env=smtp.env())
    assert first.returncode == 1 and "refused for direction@atlanpole.example" in first.stderr
    smtp.refuse = set()
    second = veille(*common, env=smtp.env())
    assert second.returncode == 0, second.stderr
    third = veille(*common, env=smtp.env())
    assert third.returncode == 0 and "already sent" in third.stderr
    assert [r.recipients for r in smtp.received] == [
        ["bureau@atlanpole.example"],
        ["direction@atlanpole.example"],
    ]


def test_a_period_not_over_is_not_sent(stored: Config, db_path: Path, smtp: SmtpServer) -> None:
    with pytest.raises(ConfigError, match="not over"):
        send_report(
            stored,
            db_path=db_path,
            period=Period.parse("2026-11", PARIS),
            env=smtp.env(),
            now=datetime(2026, 11, 20, tzinfo=UTC),
        )
    assert smtp.received == []
