"""The weekly digest: content from a real run, rendering, and sending through a real SMTP server."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import ConfigError
from pipeline.outputs.digest import Week, _Formatter, build, render, safe_url
from pipeline.outputs.mail import MailError, SmtpSettings
from pipeline.outputs.send import send_digest
from pipeline.run import run
from pipeline.settings.config import Config
from pipeline.storage.store import Store, iso
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer, closed_port
from tests.run_cli import veille
from tests.smtp_server import BusyServer, SmtpServer

PARIS = ZoneInfo("Europe/Paris")
RECIPIENTS = ["communication@atlanpole.example", "direction@atlanpole.example"]
# the feeds are dated November 2026: a wide backlog window keeps the tests true later
DIGEST = {
    "from": "veille@atlanpole.example",
    "recipients": RECIPIENTS,
    "language": "fr",
    "backlog_days": 3650,
}
MEMBERS = [
    {"name": "Xenothera", "aliases": ["Xénothera"]},
    {"name": "Valneva"},
    {"name": "GlioCure"},
]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def _config(write_config: WriteConfig, server: FixtureServer, **digest: Any) -> Config:
    return write_config(
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
        ],
        members=MEMBERS,
        topics={"funding": {"fr": ["lève"], "en": ["raises"]}},
        digest={**DIGEST, **digest},
    )


@pytest.fixture
def stored(write_config: WriteConfig, server: FixtureServer, db_path: Path) -> Config:
    """Two press feeds run into db_path: this week's articles."""
    config = _config(write_config, server)
    report = run(config, db_path=db_path)
    assert report.new_articles > 5
    return config


def this_week() -> Week:
    return Week.containing(datetime.now(UTC), PARIS)


def rendered_for(config: Config, db_path: Path, week: Week | None = None) -> Any:
    store = Store.open(db_path)
    try:
        content = build(config, store, week or this_week(), now=datetime.now(UTC), db_name="veille")
    finally:
        store.close()
    return content, render(config, content)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]


def parse_html(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


# ---------------------------------------------------------------- weeks


def test_weeks_are_iso_weeks_in_the_schedule_zone() -> None:
    week = Week.parse("2026-W48", PARIS)
    assert week.start.isoformat() == "2026-11-23T00:00:00+01:00"
    assert week.end.isoformat() == "2026-11-30T00:00:00+01:00"
    # the week of the spring clock change is an hour short
    spring = Week.parse("2026-W13", PARIS)
    assert spring.end - spring.start == timedelta(days=7)  # wall clock
    assert (spring.end.astimezone(UTC) - spring.start.astimezone(UTC)) == timedelta(hours=167)
    # Sunday 23:30 UTC is already Monday in Paris: the last complete week is the one that ended
    assert Week.last_complete(datetime(2026, 11, 29, 23, 30, tzinfo=UTC), PARIS).label == (
        "2026-W48"
    )
    assert Week.last_complete(datetime(2026, 11, 29, 22, 30, tzinfo=UTC), PARIS).label == (
        "2026-W47"
    )
    assert Week.parse("2027-w1", PARIS).label == "2027-W01"
    assert Week.parse("2026-W48", PARIS).shift(-48).label == "2025-W52"
    for bad in ("2026-48", "2026-W54", "W48", "2026-W00"):
        with pytest.raises(ValueError):
            Week.parse(bad, PARIS)


def test_only_http_links() -> None:
    assert (
        safe_url("https://www.ouest-sante.example/a.html")
        == "https://www.ouest-sante.example/a.html"
    )
    for bad in ("javascript:alert(1)", "data:text/html,x", "urn:veille:abc", "//x", "", None):
        assert safe_url(bad) is None


# ---------------------------------------------------------------- content


def test_digest_groups_stories_by_member(stored: Config, db_path: Path) -> None:
    content, rendered = rendered_for(stored, db_path)
    week = this_week()
    assert f"semaine {week.number}" in rendered.subject
    assert f"{content.stories} sujets" in rendered.subject
    assert f"{content.mentions} mentions" in rendered.subject
    # the header counts what the sections show: stories naming the cluster or a member
    shown = {
        story.story_key
        for section in [*content.sections, *([content.cluster] if content.cluster else [])]
        for story in section.stories
    }
    assert content.stories == len(shown)
    names = [section.member.name for section in content.sections]
    assert {"Xenothera", "Valneva", "GlioCure"} <= set(names)

    xeno = next(s for s in content.sections if s.member.name == "Xenothera")
    # the French and English copies of the funding news, and the syndicated copy, are
    # stories; each story names its outlet and the snippet emphasises the member
    titles = [story.title for story in xeno.stories]
    assert any("lève 12 millions" in t for t in titles)
    story = next(s for s in xeno.stories if "lève 12 millions" in s.title)
    assert story.outlet
    segments = story.snippets["xenothera"]
    assert any(seg.strong and seg.text.lower().startswith("x") for seg in segments)
    assert "funding" in story.topics
    # the same in both parts
    assert (
        "<strong>Xenothera</strong>" in rendered.html
        or "<strong>Xénothera</strong>" in rendered.html
    )
    assert "*Xenothera*" in rendered.text or "*Xénothera*" in rendered.text
    assert "Financement" in rendered.html and "[Financement]" in rendered.text
    for name in ("Xenothera", "Valneva", "GlioCure"):
        assert name in rendered.html and name in rendered.text
    # the member table: counts for this week, the change, eight weeks of bars
    row = next(r for r in content.members if r.name == "Xenothera")
    assert row.mentions >= 2 and row.history[-1] == row.mentions and len(row.history) == 8
    assert f"+{row.mentions}" in rendered.text


def test_the_html_part_has_no_external_resource_and_only_http_links(
    stored: Config, db_path: Path
) -> None:
    _, rendered = rendered_for(stored, db_path)
    parsed = parse_html(rendered.html)
    assert not {"script", "img", "link", "iframe", "object", "style"} & set(parsed.tags)
    for tag, name, value in parsed.attrs:
        assert name != "src", (tag, value)
        if name == "href":
            assert value.startswith(("http://", "https://")), value
        assert "url(" not in value


def test_a_story_is_reported_in_one_week_only(stored: Config, db_path: Path) -> None:
    week = this_week()
    with sqlite3.connect(db_path) as db:
        # an article first seen last week belongs to last week's digest
        article_id, title = db.execute(
            "SELECT a.id, a.title FROM articles a JOIN mentions m ON m.article_id = a.id "
            "WHERE m.member_id = 'valneva' AND a.story_id IN "
            "(SELECT id FROM stories WHERE article_count = 1) ORDER BY a.id LIMIT 1"
        ).fetchone()
        earlier = iso(week.start - timedelta(hours=2))
        db.execute(
            "UPDATE articles SET first_seen_at = ?, published_at = ? WHERE id = ?",
            [earlier, earlier, article_id],
        )
        db.execute(
            "UPDATE stories SET first_seen_at = ? WHERE id = (SELECT story_id FROM articles "
            "WHERE id = ?)",
            [earlier, article_id],
        )
        # a back catalogue article, published before the backlog window, is in no digest
        old_id, old_title = db.execute(
            "SELECT a.id, a.title FROM articles a JOIN mentions m ON m.article_id = a.id "
            "WHERE m.member_id = 'gliocure' ORDER BY a.id LIMIT 1"
        ).fetchone()
        db.execute(
            "UPDATE articles SET published_at = ? WHERE id = ?",
            [iso(week.start - timedelta(days=DIGEST["backlog_days"] + 30)), old_id],
        )
    this, _ = rendered_for(stored, db_path, week)
    last, _ = rendered_for(stored, db_path, week.shift(-1))
    titles_now = {s.title for section in this.sections for s in section.stories}
    titles_last = {s.title for section in last.sections for s in section.stories}
    assert title in titles_last and title not in titles_now
    assert old_title not in titles_now | titles_last
    valneva_now = next(r for r in this.members if r.id == "valneva")
    assert valneva_now.previous_mentions == 1
    assert valneva_now.history[-2] == 1


def test_a_story_told_before_without_a_member_is_told_when_one_appears(
    stored: Config, db_path: Path
) -> None:
    week = this_week()
    earlier = iso(week.start - timedelta(days=2))
    with sqlite3.connect(db_path) as db:
        (story_id,) = db.execute(
            "SELECT a.story_id FROM articles a JOIN mentions m ON m.article_id = a.id "
            "WHERE m.member_id = 'valneva' ORDER BY a.id LIMIT 1"
        ).fetchone()
        # an earlier copy of the same story, last week, that named nobody
        other = db.execute(
            "SELECT id FROM articles WHERE id NOT IN (SELECT article_id FROM mentions) LIMIT 1"
        ).fetchone()[0]
        db.execute(
            "UPDATE articles SET story_id = ?, first_seen_at = ?, published_at = ? WHERE id = ?",
            [story_id, earlier, earlier, other],
        )
        db.execute("UPDATE stories SET first_seen_at = ? WHERE id = ?", [earlier, story_id])
    content, _ = rendered_for(stored, db_path, week)
    valneva = next(s for s in content.sections if s.member.id == "valneva")
    assert story_id in {s.story_key for s in valneva.stories}
    # once an earlier copy named Valneva, the story was told: not again this week
    with sqlite3.connect(db_path) as db:
        db.execute(
            "INSERT INTO mentions (article_id, member_id, alias, count, in_title, snippet) "
            "VALUES (?, 'valneva', 'Valneva', 1, 0, 'Valneva')",
            [other],
        )
    content, _ = rendered_for(stored, db_path, week)
    told = {s.story_key for section in content.sections for s in section.stories}
    assert story_id not in told


def test_feed_text_cannot_forge_lines_in_the_text_part(stored: Config, db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        article_id = db.execute(
            "SELECT article_id FROM mentions WHERE member_id = 'valneva' LIMIT 1"
        ).fetchone()[0]
        db.execute(
            "UPDATE articles SET title = ? WHERE id = ?",
            ["Valneva\n\n== Financements repérés ==\n- 999 M€ · fake", article_id],
        )
        db.execute("UPDATE articles SET story_id = NULL WHERE id = ?", [article_id])
    _, rendered = rendered_for(stored, db_path)
    assert "* Valneva == Financements repérés == - 999 M€ · fake" in rendered.text
    assert "\n- 999 M€ · fake" not in rendered.text


def test_english_digest(write_config: WriteConfig, server: FixtureServer, db_path: Path) -> None:
    config = _config(write_config, server, language="en")
    run(config, db_path=db_path)
    content, rendered = rendered_for(config, db_path)
    assert rendered.subject.startswith("Press digest Atlanpole Biotherapies · week ")
    assert f"{content.stories} stories" in rendered.subject
    assert "Members in the news" in rendered.html and "Members in the news" in rendered.text
    assert re.search(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2}\b", rendered.text)
    assert "semaine" not in rendered.html


def test_hostile_titles_and_links_are_inert(stored: Config, db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        ids = [
            r[0]
            for r in db.execute(
                "SELECT DISTINCT article_id FROM mentions WHERE member_id = 'xenothera' "
                "ORDER BY article_id"
            )
        ]
        db.execute(
            "UPDATE articles SET title = ?, url = ?, link = ? WHERE id = ?",
            [
                "<script>alert('x')</script>Xenothera <img src=x onerror=alert(1)> & co",
                "javascript:alert(document.cookie)",
                "javascript:alert(1)",
                ids[0],
            ],
        )
        db.execute(
            "UPDATE mentions SET snippet = ? WHERE article_id = ? AND member_id = 'xenothera'",
            ['<a href="javascript:alert(1)">Xenothera</a> <b>bold</b>', ids[0]],
        )
        for article_id in ids:
            db.execute(
                "UPDATE articles SET story_id = NULL WHERE id = ?", [article_id]
            )  # each its own story, so the hostile one is shown
    _, rendered = rendered_for(stored, db_path)
    html = rendered.html
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in html
    assert "javascript:" not in " ".join(v for _, n, v in parse_html(html).attrs if n == "href")
    parsed = parse_html(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    # the text part shows the title as text, and no javascript: URL as a link line
    assert "<script>alert('x')</script>Xenothera" in rendered.text
    assert not re.search(r"^\s*javascript:", rendered.text, re.MULTILINE)


def test_an_empty_week(stored: Config, db_path: Path) -> None:
    content, rendered = rendered_for(stored, db_path, this_week().shift(-20))
    assert content.empty and content.stories == 0
    assert rendered.subject.endswith("rien cette semaine")
    assert "Rien cette semaine" in rendered.text and "Rien cette semaine" in rendered.html


# ---------------------------------------------------------------- sending


def monday_after() -> datetime:
    """Sending time: Monday 07:30 after this week, when every week up to it is over."""
    return this_week().end + timedelta(hours=7, minutes=30)


def test_a_week_that_is_not_over_is_not_sent_without_force(
    stored: Config, db_path: Path, smtp: SmtpServer
) -> None:
    week = this_week()
    saturday = week.start + timedelta(days=5, hours=10)
    with pytest.raises(ConfigError, match="is not over until"):
        send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=saturday)
    assert smtp.received == []
    store = Store.open(db_path)
    try:
        assert store.digest_row(week.label) is None
    finally:
        store.close()
    forced = send_digest(
        stored, db_path=db_path, week=week, env=smtp.env(), now=saturday, force=True
    )
    assert forced.status == "sent" and len(smtp.received) == 1


def sent(db_path: Path, week: Week) -> dict[str, Any]:
    store = Store.open(db_path)
    try:
        row = store.digest_row(week.label)
    finally:
        store.close()
    assert row is not None
    return row


def test_send_once_then_nothing_then_force(stored: Config, db_path: Path, smtp: SmtpServer) -> None:
    week = this_week()
    now = monday_after()
    result = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=now)
    assert result.status == "sent" and result.delivered == RECIPIENTS
    assert len(smtp.received) == 1
    mail = smtp.received[0]
    assert mail.sender == DIGEST["from"] and mail.recipients == RECIPIENTS
    msg = mail.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == result.subject and f"semaine {week.number}" in msg["Subject"]
    assert msg["To"] == ", ".join(RECIPIENTS)
    assert msg["Message-ID"]
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    for name in ("Xenothera", "Valneva", "GlioCure"):
        assert name in plain.get_content() and name in html.get_content()
    row = sent(db_path, week)
    assert row["status"] == "sent" and row["sent_at"] and row["attempts"] == 1
    assert json.loads(row["delivered"]) == RECIPIENTS

    again = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=now)
    assert again.status == "already-sent"
    assert len(smtp.received) == 1

    forced = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=now, force=True)
    assert forced.status == "sent" and len(smtp.received) == 2
    assert sent(db_path, week)["attempts"] == 2


def test_a_failed_send_is_retried_by_the_next(
    stored: Config, db_path: Path, smtp: SmtpServer
) -> None:
    week = this_week()
    smtp.data_reply = "451 4.3.0 Temporary local problem, try later"
    with pytest.raises(MailError, match=r"451 4\.3\.0 Temporary local problem"):
        send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=monday_after())
    row = sent(db_path, week)
    assert row["status"] == "failed" and row["sent_at"] is None
    assert "451" in row["last_error"] and json.loads(row["delivered"]) == []
    assert smtp.received == []

    smtp.data_reply = None
    result = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=monday_after())
    assert result.status == "sent" and len(smtp.received) == 1
    assert sent(db_path, week)["attempts"] == 2


def test_only_refused_recipients_are_retried(
    stored: Config, db_path: Path, smtp: SmtpServer
) -> None:
    week = this_week()
    smtp.refuse = {RECIPIENTS[1]}
    result = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=monday_after())
    assert result.status == "partial"
    assert result.delivered == [RECIPIENTS[0]] and list(result.refused) == [RECIPIENTS[1]]
    assert "550" in result.refused[RECIPIENTS[1]]
    row = sent(db_path, week)
    assert row["status"] == "partial" and row["sent_at"] is None
    assert json.loads(row["delivered"]) == [RECIPIENTS[0]]
    assert [m.recipients for m in smtp.received] == [[RECIPIENTS[0]]]

    smtp.refuse = set()
    result = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=monday_after())
    assert result.status == "sent" and result.delivered == [RECIPIENTS[1]]
    assert [m.recipients for m in smtp.received] == [[RECIPIENTS[0]], [RECIPIENTS[1]]]
    assert json.loads(sent(db_path, week)["delivered"]) == RECIPIENTS


@pytest.mark.parametrize("fault", ["refused", "busy", "dropped", "every-recipient"])
def test_mail_faults_leave_the_week_pending(
    stored: Config, db_path: Path, smtp: SmtpServer, fault: str
) -> None:
    week = this_week()
    env = smtp.env()
    expected = {
        "refused": "refused the connection",
        "busy": "421 4.3.2",
        "dropped": "closed the connection or stopped answering before confirming",
        "every-recipient": "refused every recipient",
    }[fault]
    busy = BusyServer()
    if fault == "refused":
        env["VEILLE_SMTP_PORT"] = str(closed_port())
    elif fault == "busy":
        busy.__enter__()
        env["VEILLE_SMTP_PORT"] = str(busy.port)
    elif fault == "dropped":
        smtp.drop_after_data = True
    else:
        smtp.refuse = set(RECIPIENTS)
    try:
        with pytest.raises(MailError, match=re.escape(expected)):
            send_digest(stored, db_path=db_path, week=week, env=env, now=monday_after())
    finally:
        busy.__exit__()
    row = sent(db_path, week)
    assert row["status"] == "failed" and json.loads(row["delivered"]) == []
    assert expected in row["last_error"]
    assert smtp.received == []
    # the fault cleared, the next attempt delivers to everyone, once
    smtp.drop_after_data, smtp.refuse = False, set()
    result = send_digest(stored, db_path=db_path, week=week, env=smtp.env(), now=monday_after())
    assert result.status == "sent" and [m.recipients for m in smtp.received] == [RECIPIENTS]


def test_a_mail_the_server_took_is_sent_whatever_its_goodbye(
    stored: Config, db_path: Path, smtp: SmtpServer
) -> None:
    smtp.handler.quit_reply = "421 4.4.2 closing connection"
    result = send_digest(
        stored, db_path=db_path, week=this_week(), env=smtp.env(), now=monday_after()
    )
    assert result.status == "sent" and len(smtp.received) == 1
    assert sent(db_path, this_week())["status"] == "sent"


def test_empty_week_mail_or_skip(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    config = _config(write_config, server)
    run(config, db_path=db_path)
    old = this_week().shift(-30)
    result = send_digest(config, db_path=db_path, week=old, env=smtp.env(), now=monday_after())
    assert result.status == "sent" and "rien cette semaine" in smtp.received[0].message["Subject"]

    skipping = _config(write_config, server, skip_empty=True)
    older = old.shift(-1)
    result = send_digest(skipping, db_path=db_path, week=older, env=smtp.env(), now=monday_after())
    assert result.status == "skipped" and len(smtp.received) == 1
    assert sent(db_path, older)["status"] == "skipped"


def test_smtp_settings_come_from_the_environment() -> None:
    settings = SmtpSettings.from_env({"VEILLE_SMTP_HOST": "smtp.example.org"})
    assert (settings.port, settings.security, settings.user) == (587, "starttls", None)
    assert (
        SmtpSettings.from_env(
            {"VEILLE_SMTP_HOST": "smtp.example.org", "VEILLE_SMTP_SECURITY": "ssl"}
        ).port
        == 465
    )
    secret = "s3cr3t-Pa55"
    with pytest.raises(ConfigError) as caught:
        SmtpSettings.from_env(
            {
                "VEILLE_SMTP_PORT": "smtp",
                "VEILLE_SMTP_SECURITY": "tls",
                "VEILLE_SMTP_PASSWORD": secret,
            }
        )
    message = str(caught.value)
    assert "VEILLE_SMTP_HOST is not set" in message
    assert "VEILLE_SMTP_PORT='smtp'" in message and "VEILLE_SMTP_SECURITY='tls'" in message
    assert "VEILLE_SMTP_USER is not" in message and secret not in message
    accented = "pässwörd-s3cret"
    with pytest.raises(ConfigError, match="VEILLE_SMTP_PASSWORD has non-ASCII") as caught:
        SmtpSettings.from_env(
            {
                "VEILLE_SMTP_HOST": "smtp.example.org",
                "VEILLE_SMTP_USER": "veille",
                "VEILLE_SMTP_PASSWORD": accented,
            }
        )
    assert accented not in str(caught.value) and "ä" not in str(caught.value)
    with pytest.raises(ConfigError, match="password in clear"):
        SmtpSettings.from_env(
            {
                "VEILLE_SMTP_HOST": "smtp.example.org",
                "VEILLE_SMTP_SECURITY": "none",
                "VEILLE_SMTP_USER": "veille",
                "VEILLE_SMTP_PASSWORD": secret,
            }
        )
    assert secret not in repr(
        SmtpSettings.from_env(
            {
                "VEILLE_SMTP_HOST": "smtp.example.org",
                "VEILLE_SMTP_USER": "u",
                "VEILLE_SMTP_PASSWORD": secret,
            }
        )
    )


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
# the implicit-TLS server cannot know its connections are encrypted (see SmtpServer)
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_sending_over_tls_with_a_login(
    stored: Config, db_path: Path, tmp_path: Path, tls: str
) -> None:
    secret = "Tls-0nly-p4ss"
    with SmtpServer(tls=tls, login=("veille", secret), ca_dir=tmp_path) as smtp:
        env = {**smtp.env(), "VEILLE_SMTP_USER": "veille", "VEILLE_SMTP_PASSWORD": "wrong"}
        with pytest.raises(MailError, match="refused the login of veille: 535") as caught:
            send_digest(stored, db_path=db_path, week=this_week(), env=env, now=monday_after())
        assert "wrong" not in str(caught.value)
        env["VEILLE_SMTP_PASSWORD"] = secret
        result = send_digest(stored, db_path=db_path, week=this_week(), env=env, now=monday_after())
        assert result.status == "sent" and smtp.logins == ["veille"]
        assert len(smtp.received) == 1
        # without the private CA the server's certificate is not trusted: nothing is sent
        del env["VEILLE_SMTP_CAFILE"]
        with pytest.raises(MailError, match="TLS with SMTP server localhost"):
            send_digest(
                stored,
                db_path=db_path,
                week=this_week(),
                env=env,
                now=monday_after(),
                force=True,
            )
    assert secret.encode() not in db_path.read_bytes()


# ---------------------------------------------------------------- the command


def test_the_digest_command(
    stored: Config, db_path: Path, smtp: SmtpServer, tmp_path: Path
) -> None:
    week = this_week().label
    common = ["--config", stored.path, "--db", str(db_path), "--week", week]
    out = tmp_path / "out" / "digest.html"
    preview = veille("digest", *common, "--out", str(out))
    assert preview.returncode == 0, preview.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Xenothera" in (tmp_path / "out" / "digest.txt").read_text(encoding="utf-8")
    assert smtp.received == []

    printed = veille("digest", *common)
    assert printed.returncode == 0 and printed.stdout.startswith("Subject: ")

    secret = "n0t-in-any-log"
    env = {**smtp.env(), "VEILLE_SMTP_USER": "veille", "VEILLE_SMTP_PASSWORD": secret}
    early = veille("digest", *common, "--send", env=smtp.env())  # the week is not over
    assert early.returncode == 2 and "is not over until" in early.stderr
    failed = veille("digest", *common, "--send", "--force", env=env)  # the relay has no AUTH
    assert failed.returncode == 1
    assert "not sent" in failed.stderr and "Traceback" not in failed.stderr
    assert secret not in failed.stderr + failed.stdout
    assert secret.encode() not in db_path.read_bytes()
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or secret.encode() not in wal.read_bytes()

    first = veille("digest", *common, "--send", "--force", env=smtp.env())
    assert first.returncode == 0, first.stderr
    assert "sent to 2 recipient(s)" in first.stderr
    second = veille("digest", *common, "--send", env=smtp.env())
    assert second.returncode == 0 and "already sent" in second.stderr
    assert len(smtp.received) == 1

    bad = veille("digest", "--config", stored.path, "--db", str(db_path), "--week", "2026-W60")
    assert bad.returncode == 2 and "2026 has no week 60" in bad.stderr
    no_env = veille("digest", *common, "--send", "--force", env={"VEILLE_SMTP_HOST": ""})
    assert no_env.returncode == 2 and "VEILLE_SMTP_HOST is not set" in no_env.stderr


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="headless Chromium is not installed (apt-get install chromium)",
)
def test_the_html_renders_in_headless_chromium(
    stored: Config, db_path: Path, tmp_path: Path
) -> None:
    _, rendered = rendered_for(stored, db_path)
    page = tmp_path / "digest.html"
    page.write_text(rendered.html, encoding="utf-8")
    shot = tmp_path / "digest.png"
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary
    done = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=420,1400",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# ---------------------------------------------------------------- the whole cluster

QUIET = [{"name": f"Membre discret {i:03d}", "derive": False} for i in range(200)]


def _cluster_config(
    write_config: WriteConfig, server: FixtureServer, members: list[dict[str, Any]]
) -> Config:
    return write_config(
        sources=[
            {"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")},
            {"id": "pharma-wire", "kind": "feed", "url": server.url("pharma-wire.rss")},
        ],
        members=members,
        digest=DIGEST,
    )


def test_at_203_members_the_table_lists_those_with_news_and_sums_up_the_rest(
    write_config: WriteConfig, server: FixtureServer, db_path: Path
) -> None:
    config = _cluster_config(write_config, server, MEMBERS + QUIET)
    run(config, db_path=db_path)
    content, rendered = rendered_for(config, db_path)
    listed = [m for m in content.members if m.kind == "member"]
    assert {m.name for m in listed} == {"Xenothera", "Valneva", "GlioCure"}
    assert all(m.mentions or m.previous_mentions for m in content.members)
    assert content.quiet == 200
    assert {s.member.name for s in content.sections} <= {m.name for m in listed}
    assert all(s.stories for s in content.sections)
    line = "et 200 autres membres sans actualité cette semaine ni la précédente"
    assert line in rendered.text and line in rendered.html
    for part in (rendered.text, rendered.html):
        assert not any(m["name"] in part for m in QUIET)
    # the member table of the HTML part: the cluster and three members, then one line
    first_cells = rendered.html.count('<tr>\n  <td style="padding:4px;border-bottom:1px solid')
    assert first_cells == len(content.members) == 4 and rendered.html.count(line) == 1
    # the same digest with only the three members differs by that one line
    few = _cluster_config(write_config, server, MEMBERS)
    store = Store.open(db_path)
    store.sync_config(few)  # what the next run does: the 200 are no longer configured
    store.close()
    _, alone = rendered_for(few, db_path)
    assert alone.text.replace("\n", "") == rendered.text.replace(line, "").replace("\n", "")


def test_one_quiet_member_is_named_in_the_singular_in_english(
    write_config: WriteConfig, server: FixtureServer, db_path: Path
) -> None:
    config = write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        members=[*MEMBERS, {"name": "Membre discret", "derive": False}],
        digest={**DIGEST, "language": "en"},
    )
    run(config, db_path=db_path)
    content, rendered = rendered_for(config, db_path)
    assert content.quiet == 1
    assert "and 1 other member without news this week or last" in rendered.text


def test_a_member_counts_only_while_it_is_one_and_its_history_stays_stored(
    write_config: WriteConfig, server: FixtureServer, db_path: Path
) -> None:
    members = [
        {"name": "Xenothera", "aliases": ["Xénothera"], "joined": "2020-01-01"},
        {"name": "Valneva", "joined": "2000-01-01", "left": "2001-01-01"},  # left long ago
        {"name": "GlioCure", "joined": "2099-01-01"},  # not a member yet
    ]
    config = _cluster_config(write_config, server, members)
    run(config, db_path=db_path)
    content, rendered = rendered_for(config, db_path)
    assert [m.name for m in content.members if m.kind == "member"] == ["Xenothera"]
    assert [s.member.name for s in content.sections] == ["Xenothera"]
    assert content.quiet == 0  # the other two were not members this week
    assert content.mentions == sum(m.mentions for m in content.members)
    assert "Valneva" not in rendered.text.split("== ")[0]  # not in the table
    with sqlite3.connect(db_path) as db:
        stored = dict((r[0], r[1:]) for r in db.execute("SELECT id, joined, left FROM members"))
        details = db.execute(
            "SELECT member_id, while_member, count(*) FROM mention_details "
            "WHERE member_id IN ('valneva', 'gliocure', 'xenothera') GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        charted = {r[0] for r in db.execute("SELECT member_id FROM weekly_member_counts")}
    assert stored["valneva"] == ("2000-01-01", "2001-01-01")
    assert stored["gliocure"] == ("2099-01-01", None) and stored["xenothera"][1] is None
    assert [(m, w) for m, w, _ in details] == [("gliocure", 0), ("valneva", 0), ("xenothera", 1)]
    assert "xenothera" in charted and not charted & {"valneva", "gliocure"}


def test_counts_take_the_plural_their_language_wants() -> None:
    """ "1 communiqué", not "1 communiqués": French puts 0 and 1 in the singular, English
    only 1 (CLDR's rules), in the subject, the summary and the sections alike."""
    fr, en = _Formatter("fr"), _Formatter("en")
    assert [fr.count(n, "summary_stories") for n in (0, 1, 2)] == ["0 sujet", "1 sujet", "2 sujets"]
    assert [en.count(n, "summary_stories") for n in (0, 1, 2)] == [
        "0 stories",
        "1 story",
        "2 stories",
    ]
    assert fr.count(1, "summary_releases") == "1 communiqué"
    assert fr.count(1, "late_mentions") == "1 mention trouvée après coup"
    assert en.count(1, "subject_releases") == "1 own release"
    assert fr.count(1200, "summary_mentions") == "1\u202f200 mentions"
