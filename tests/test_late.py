"""Mentions found late: a member found in an article of a week whose digest was already
sent (its page read on a retry, a `veille remention`) is reported once, by the next digest
that is sent, under its own heading; a preview or a failed send does not use it up."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.analysis.analyse import Analysis
from pipeline.analysis.mentions import ArticleMention
from pipeline.models import Article, SourceOutcome
from pipeline.outputs.digest import Week, build, render
from pipeline.outputs.mail import MailError
from pipeline.outputs.send import send_digest
from pipeline.run import remention, run
from pipeline.settings.config import Config
from pipeline.storage.migrations import MIGRATIONS, _m11_mention_found_at
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.smtp_server import SmtpServer
from tests.sqlite_rows import rows as query
from tests.test_digest import DIGEST, PARIS
from tests.test_upgrade import build_old_database
from tests.test_web import PARAGRAPHS, article_page, feed, write

LATE_FR = "Mentions trouvées après coup"
LATE_EN = "Mentions found late"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FixtureServer]:
    root = tmp_path / "site"
    root.mkdir()
    with FixtureServer(root) as server:
        yield server


def this_week() -> Week:
    return Week.containing(datetime.now(UTC), PARIS)


def after(week: Week) -> datetime:
    """Monday 07:30 after the week: when its digest goes out."""
    return week.end + timedelta(hours=7, minutes=30)


def parts(smtp: SmtpServer, index: int) -> tuple[str, str]:
    msg = smtp.received[index].message
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content().replace("\r\n", "\n"), html.get_content()


def late_part(text: str, heading: str) -> str:
    """The text part's section under the late heading ("" when there is none)."""
    marker = f"== {heading} =="
    if marker not in text:
        return ""
    assert text.count(marker) == 1
    rest = text.split(marker, 1)[1]
    return rest.split("\n== ", 1)[0]


def preview(config: Config, db_path: Path, week: Week) -> Any:
    store = Store.open(db_path)
    try:
        content = build(config, store, week, now=after(week), db_name="veille")
    finally:
        store.close()
    return content, render(config, content)


def test_a_page_read_on_a_retry_reports_its_new_member_once_in_the_next_digest(
    site: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
    smtp: SmtpServer,
    tmp_path: Path,
) -> None:
    # the feed names Xenothera; its page, which also names Clean Cells, fails the first time
    write(site, "eco/xenothera.html", article_page("Xenothera lève 12 M€", PARAGRAPHS))
    link = "/_/flaky/1/eco/xenothera.html"
    write(site, "feed.rss", feed(site.base, [("Xenothera lève 12 M€", link, "Une levée.")]))
    config = write_config(
        sources=[
            {"id": "press", "kind": "feed", "url": site.url("feed.rss"), "fetch_articles": True}
        ],
        members=[{"name": "Xenothera"}, {"name": "Clean Cells"}],
        network={"retries": 0},
        digest={**DIGEST, "datasette_url": "https://veille.example.org"},
    )
    run(config, db_path=db_path)
    assert query(db_path, "SELECT member_id FROM mentions") == [("xenothera",)]

    # week W's digest goes out (now, before the week is over: forced)
    week = this_week()
    sent = send_digest(
        config, db_path=db_path, week=week, env=smtp.env(), now=datetime.now(UTC), force=True
    )
    assert sent.status == "sent"
    text, html = parts(smtp, 0)
    assert "Xenothera lève 12 M€" in text and LATE_FR not in text
    # the digest points to the member feeds: one per section, and how to make one
    feed_url = "https://veille.example.org/veille/member_feed.atom?member="
    assert f"Flux Atom : {feed_url}xenothera\n" in text
    assert f'<a href="{feed_url}xenothera" style="color:#0e7490;">flux Atom</a>' in html
    assert f"Suivre un membre dans un lecteur de flux : {feed_url} suivi de" in text
    assert f"{feed_url} suivi de son identifiant" in html
    ((xeno_found, xeno_week),) = query(
        db_path, "SELECT found_at, digest_week FROM mentions WHERE member_id = 'xenothera'"
    )
    assert xeno_week == week.label

    # the article is seen again: its page is read this time, and names Clean Cells
    write(site, "feed.rss", feed(site.base, [("Xenothera lève 12 M€", link, "Une levée !")]))
    run(config, db_path=db_path)
    mentions = dict(
        (member, (found, reported))
        for member, found, reported in query(
            db_path, "SELECT member_id, found_at, digest_week FROM mentions"
        )
    )
    assert mentions["xenothera"] == (xeno_found, week.label)  # unchanged: not late
    assert mentions["clean-cells"][1] is None and mentions["clean-cells"][0] >= xeno_found

    # the next week's digest shows it under its own heading; previews use nothing up
    following = week.shift(1)
    for _ in range(2):
        content, rendered = preview(config, db_path, following)
        assert [(m.member, m.title) for m in content.late] == [
            ("Clean Cells", "Xenothera lève 12 M€")
        ]
        assert not content.empty and content.stories == 0
        # the subject says what the digest carries, not "0 sujets, 0 mentions"
        assert rendered.subject.endswith(": 1 mention trouvée après coup"), rendered.subject
        assert "0 sujets" not in rendered.subject
        assert "Clean Cells" in late_part(rendered.text, LATE_FR)
        assert rendered.html.count(LATE_FR) == 1
    out = tmp_path / "preview" / "digest.html"
    command = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "digest",
            "--config",
            config.path,
            "--db",
            str(db_path),
            "--week",
            following.label,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 0, command.stderr
    assert LATE_FR in out.read_text(encoding="utf-8")
    assert query(db_path, "SELECT digest_week FROM mentions WHERE member_id = 'clean-cells'") == [
        (None,)
    ]

    # a send that fails uses nothing up either
    smtp.data_reply = "451 4.3.0 Temporary local problem, try later"
    with pytest.raises(MailError):
        send_digest(config, db_path=db_path, week=following, env=smtp.env(), now=after(following))
    assert len(smtp.received) == 1
    assert query(db_path, "SELECT digest_week FROM mentions WHERE member_id = 'clean-cells'") == [
        (None,)
    ]

    # the send that works reports it, once, in both parts
    smtp.data_reply = None
    result = send_digest(
        config, db_path=db_path, week=following, env=smtp.env(), now=after(following)
    )
    assert result.status == "sent" and len(smtp.received) == 2
    text, html = parts(smtp, 1)
    late = late_part(text, LATE_FR)
    assert late.count("* Clean Cells · Xenothera lève 12 M€") == 1
    assert "*Clean Cells*" in late  # the name emphasised in the snippet
    assert html.count(LATE_FR) == 1 and html.count("<strong>Clean Cells</strong> · ") == 1
    assert "Xenothera" not in late.split("·", 1)[0]  # the member already told is not late
    assert query(db_path, "SELECT digest_week FROM mentions WHERE member_id = 'clean-cells'") == [
        (following.label,)
    ]

    # and never again
    later = following.shift(1)
    send_digest(config, db_path=db_path, week=later, env=smtp.env(), now=after(later))
    text, html = parts(smtp, 2)
    assert LATE_FR not in text and LATE_FR not in html and "Clean Cells" not in text


def test_a_remention_that_finds_a_new_member_reports_only_it_as_late(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    sources = [
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
    ]
    digest = {**DIGEST, "language": "en"}
    config = write_config(
        sources=sources, members=[{"name": "Xenothera"}, {"name": "Valneva"}], digest=digest
    )
    run(config, db_path=db_path)
    week = this_week()
    send_digest(
        config, db_path=db_path, week=week, env=smtp.env(), now=datetime.now(UTC), force=True
    )
    before = query(
        db_path,
        "SELECT article_id, member_id, alias, count, in_title, snippet, found_at, digest_week FROM mentions ORDER BY article_id, member_id",
    )
    assert before and all(row[-1] == week.label for row in before)  # digest_week

    # GlioCure joins the watch list; `veille remention` finds it in stored articles
    wider = write_config(
        sources=sources,
        members=[{"name": "Xenothera"}, {"name": "Valneva"}, {"name": "GlioCure"}],
        digest=digest,
        name="wider.yaml",
    )
    remention(wider, db_path=db_path)
    kept = query(
        db_path,
        "SELECT article_id, member_id, alias, count, in_title, snippet, found_at, digest_week FROM mentions WHERE member_id != 'gliocure' ORDER BY article_id, member_id",
    )
    assert kept == before  # found_at and digest_week survive the rewrite
    found = query(
        db_path,
        "SELECT count(DISTINCT coalesce(a.story_id, -a.id)), count(*) FROM mentions m "
        "JOIN articles a ON a.id = m.article_id WHERE member_id = 'gliocure'",
    )
    stories, count = found[0]
    assert count >= 1

    following = week.shift(1)
    send_digest(wider, db_path=db_path, week=following, env=smtp.env(), now=after(following))
    text, html = parts(smtp, 1)
    late = late_part(text, LATE_EN)
    entries = [line for line in late.splitlines() if line.startswith("* ")]
    # one per story (syndicated copies are one story), all GlioCure's
    assert len(entries) == stories and all(e.startswith("* GlioCure · ") for e in entries)
    assert html.count(LATE_EN) == 1 and "found " in late
    assert {
        r[0]
        for r in query(db_path, "SELECT digest_week FROM mentions WHERE member_id = 'gliocure'")
    } == {following.label}

    later = following.shift(1)
    send_digest(wider, db_path=db_path, week=later, env=smtp.env(), now=after(later))
    text, html = parts(smtp, 2)
    assert LATE_EN not in text and LATE_EN not in html


def test_an_upgrade_reports_none_of_the_mentions_already_stored_as_late(
    db_path: Path, write_config: WriteConfig, server: FixtureServer
) -> None:
    build_old_database(db_path, MIGRATIONS.index(_m11_mention_found_at))  # the one before
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO digests (week, status, sent_at) VALUES ('2026-W47', 'sent', '2026-11-23T07:30:00Z')"
    )
    conn.commit()
    conn.close()
    store = Store.open(db_path)  # migrated
    store.close()
    assert query(db_path, "SELECT found_at, digest_week FROM mentions") == [
        ("2026-11-20T06:00:02Z", "2026-W47")  # found with its article, reported with its week
    ]
    config = write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        digest=DIGEST,
    )
    content, rendered = preview(config, db_path, Week.parse("2026-W48", PARIS))
    assert content.late == [] and LATE_FR not in rendered.text


def test_a_partial_send_shows_the_late_mentions_again_to_the_recipients_it_missed(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    sources = [{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}]
    config = write_config(sources=sources, members=[{"name": "Xenothera"}], digest=DIGEST)
    run(config, db_path=db_path)
    week = this_week()
    send_digest(
        config, db_path=db_path, week=week, env=smtp.env(), now=datetime.now(UTC), force=True
    )
    wider = write_config(
        sources=sources,
        members=[{"name": "Xenothera"}, {"name": "Valneva"}],
        digest=DIGEST,
        name="wider.yaml",
    )
    remention(wider, db_path=db_path)
    assert query(db_path, "SELECT digest_week FROM mentions WHERE member_id = 'valneva'") == [
        (None,)
    ]

    following = week.shift(1)
    first, second = DIGEST["recipients"]
    smtp.refuse = {second}
    result = send_digest(
        wider, db_path=db_path, week=following, env=smtp.env(), now=after(following)
    )
    assert result.status == "partial"
    smtp.refuse = set()
    result = send_digest(
        wider, db_path=db_path, week=following, env=smtp.env(), now=after(following)
    )
    assert result.status == "sent"
    assert [m.recipients for m in smtp.received[1:]] == [[first], [second]]
    for index in (1, 2):  # both readers have the late mention
        text, _ = parts(smtp, index)
        assert "* Valneva · " in late_part(text, LATE_FR)
    later = following.shift(1)
    send_digest(wider, db_path=db_path, week=later, env=smtp.env(), now=after(later))
    text, _ = parts(smtp, 3)
    assert LATE_FR not in text


def test_a_late_mention_with_hostile_text_stays_text_in_both_parts(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    config = write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        members=[{"name": "Xenothera"}, {"name": "Valneva"}],
        digest=DIGEST,
    )
    url = "https://www.ouest-sante.example/hostile.html"
    title = "<script>alert('x')</script> Xenothera & Valneva\nSubject: forged"
    snippet = "<img src=x onerror=alert(1)> Valneva &amp; Xenothera"
    store = Store.open(db_path)
    try:  # stored as a run stores an article, naming Xenothera only
        store.sync_config(config)
        store.save_source(
            SourceOutcome(source_id="ouest-sante", status="ok"),
            [Article(url=url, link=url, title=title, summary=snippet, source_id="ouest-sante")],
            run_id=None,
            now=datetime.now(UTC),
            next_check_at=datetime.now(UTC),
            analyses={
                url: Analysis(
                    mentions=(ArticleMention("xenothera", "Xenothera", 1, True, snippet),),
                    topics=(),
                    fundings=(),
                )
            },
        )
        (article_id,) = store.db.execute("SELECT id FROM articles").fetchone()
    finally:
        store.close()
    week = this_week()
    send_digest(
        config, db_path=db_path, week=week, env=smtp.env(), now=datetime.now(UTC), force=True
    )
    store = Store.open(db_path)
    try:  # analysed again: Valneva is found too
        store.save_analyses(
            {
                article_id: Analysis(
                    mentions=(
                        ArticleMention("xenothera", "Xenothera", 1, True, snippet),
                        ArticleMention("valneva", "Valneva", 1, True, snippet),
                    ),
                    topics=(),
                    fundings=(),
                )
            }
        )
    finally:
        store.close()
    content, rendered = preview(config, db_path, week.shift(1))
    assert [m.member for m in content.late] == ["Valneva"]
    assert "<script" not in rendered.html and "<img" not in rendered.html
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Xenothera &amp; Valneva" in rendered.html
    )
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.html
    late = late_part(rendered.text, LATE_FR)
    assert "* Valneva · <script>alert('x')</script> Xenothera & Valneva Subject: forged" in late
    assert "\nSubject: forged" not in rendered.text  # no line forged in the text part
