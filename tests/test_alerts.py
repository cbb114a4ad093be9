"""Alerts end to end: feeds served on 127.0.0.1, a real SQLite file, Apprise posting to a
real webhook receiver on loopback (json:// and mmost://) and mail to a real SMTP server."""

from __future__ import annotations

import email.utils
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from ruamel.yaml import YAML

from pipeline.errors import ConfigError
from pipeline.outputs.alerts import inert
from pipeline.run import run
from pipeline.schedule import Daemon
from pipeline.settings.config import Config, load_config
from tests.alert_receiver import AlertReceiver
from tests.conftest import FAST_NETWORK
from tests.fixture_server import FixtureServer
from tests.run_cli import veille
from tests.smtp_server import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)
TOKEN = "xq7Zr3kP9wLm2Vt8bN4c"  # a webhook token: never in the database or the logs

FUNDING = {
    "fr": ["levée de fonds", "lève", "financement", "série A"],
    "en": ["raises", "funding", "Series A"],
}
PARTNERSHIP = {"fr": ["partenariat"], "en": ["partnership"]}


def item(title: str, slug: str, *, summary: str = "", days_ago: float = 0.2) -> dict[str, Any]:
    return {"title": title, "slug": slug, "summary": summary or title, "days_ago": days_ago}


def write_feed(root: Path, name: str, items: list[dict[str, Any]], *, outlet: str) -> None:
    entries = "".join(
        f"""
    <item>
      <title>{escape(i["title"])}</title>
      <link>https://www.{outlet}.example/actu/{i["slug"]}.html</link>
      <guid isPermaLink="false">{outlet}-{i["slug"]}</guid>
      <description>{escape(i["summary"])}</description>
      <pubDate>{email.utils.format_datetime(NOW - timedelta(days=i["days_ago"]))}</pubDate>
    </item>"""
        for i in items
    )
    (root / name).write_text(
        f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{outlet}</title><link>https://www.{outlet}.example/</link>
<description>actualités</description>{entries}
</channel></rss>
""",
        encoding="utf-8",
    )


STORIES = [
    item(
        "GoLiver Therapeutics lève 8 millions d'euros pour sa thérapie cellulaire du foie",
        "goliver-leve-8-millions",
        summary="La biotech nantaise GoLiver Therapeutics annonce une levée de fonds de "
        "8 millions d'euros en série A.",
    ),
    item(
        "Diagnostic rapide : un nouveau test pour les urgences",
        "test-urgences",
        summary="Le fabricant NG Biotech, à Guipry-Messac, présente un test rapide.",
    ),
    item(
        "Valneva raises 40 million euros in a private placement",
        "valneva-raises-40m",
        summary="Valneva announced a funding round of 40 million euros.",
        days_ago=10,  # a back catalogue: older than max_age_days
    ),
    item(
        "La météo du week-end en Loire-Atlantique",
        "meteo",
        summary="Du soleil et quelques averses.",
    ),
]


@pytest.fixture
def feeds(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    write_feed(root, "ouest-sante.rss", STORIES, outlet="ouest-sante")
    write_feed(root, "nantes-eco.rss", [], outlet="nantes-eco")
    return root


@pytest.fixture
def http(feeds: Path) -> Any:
    with FixtureServer(feeds) as server:
        yield server


@pytest.fixture
def hook() -> Any:
    with AlertReceiver() as receiver:
        yield receiver


MakeConfig = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path: Path, http: FixtureServer) -> MakeConfig:
    def make(alerts: list[dict[str, Any]], **extra: Any) -> Config:
        data: dict[str, Any] = {
            "cluster": {"name": "Atlanpole Biotherapies", "aliases": ["Atlanpole Biothérapies"]},
            "members": [
                {"name": "GoLiver Therapeutics", "aliases": ["GoLiver"]},
                {"name": "NG Biotech", "aliases": ["NG-Biotech"]},
                {"name": "Valneva"},
            ],
            "sources": [
                {
                    "id": name,
                    "kind": "feed",
                    "name": name.replace("-", " ").title(),
                    "url": http.url(f"{name}.rss"),
                    "fetch_articles": False,
                }
                for name in ("ouest-sante", "nantes-eco")
            ],
            "topics": {"funding": FUNDING, "partnership": PARTNERSHIP},
            "network": FAST_NETWORK,
            "alerts": alerts,
            **extra,
        }
        path = tmp_path / "sources.yaml"
        with path.open("w", encoding="utf-8") as handle:
            YAML().dump(data, handle)
        return load_config(path)

    return make


def ledger(db_path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM alerts ORDER BY id")]
    finally:
        conn.close()


def titles(receiver: AlertReceiver) -> list[str]:
    return [p.body.get("title", "") for p in receiver.accepted]


# ------------------------------------------------------------------ once per story


def test_each_matching_story_is_sent_once_and_a_rerun_sends_nothing(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    env = {"VEILLE_ALERTS_COMMS": hook.apprise_url("comms")}
    report = run(config, db_path=db_path, env=env)
    assert report.status == "ok" and report.alerts is not None and report.alerts.sent == 2
    # the two fresh stories naming a member, in the order the news came; not the old
    # Valneva story, not the weather
    assert sorted(titles(hook)) == sorted([STORIES[0]["title"], STORIES[1]["title"]])
    goliver = next(p for p in hook.accepted if "GoLiver" in p.body["title"])
    message = goliver.body["message"]
    assert "Cité : GoLiver Therapeutics" in message
    assert "Média : Ouest Sante" in message
    assert "levée de fonds" in message  # the snippet
    assert "Lien : https://www.ouest-sante.example/actu/goliver-leve-8-millions.html" in message
    rows = ledger(db_path)
    assert [(r["status"], r["attempts"], r["kind"]) for r in rows] == [("sent", 1, "story")] * 2
    assert all(r["destination"].startswith("json://127.0.0.1:") for r in rows)

    again = run(config, db_path=db_path, env=env)
    assert again.alerts is not None and again.alerts.sent == 0
    assert len(hook.posts) == 2 and len(ledger(db_path)) == 2
    # the command line's summary says how many went (another database: sent there too)
    summary = veille(
        "run", "--config", config.path, "--db", str(db_path.with_name("cli.db")), env=env
    )
    assert summary.returncode == 0
    assert summary.stderr.strip().endswith("; 2 alert(s) sent")


def test_a_copy_found_later_is_not_sent_again(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path, feeds: Path
) -> None:
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver-therapeutics"]}]
    )
    env = {"VEILLE_ALERTS_COMMS": hook.apprise_url()}
    run(config, db_path=db_path, env=env)
    assert len(hook.accepted) == 1
    # another outlet carries the same press release at its own URL: one story, two copies
    write_feed(feeds, "nantes-eco.rss", [STORIES[0]], outlet="nantes-eco")
    run(config, db_path=db_path, env=env)
    conn = sqlite3.connect(db_path)
    counts = conn.execute(
        "SELECT article_count FROM stories WHERE title LIKE 'GoLiver%'"
    ).fetchall()
    conn.close()
    assert counts == [(2,)]
    assert len(hook.posts) == 1


def test_rebuilding_the_stories_sends_nothing_again(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    from pipeline.run import restory

    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    env = {"VEILLE_ALERTS_COMMS": hook.apprise_url()}
    run(config, db_path=db_path, env=env)
    # the stories are deleted and made again, their ids given anew: the ledger records
    # the articles a message told, which keep their ids
    assert restory(config, db_path=db_path).stories == 4
    run(config, db_path=db_path, env=env)
    assert len(hook.posts) == 2


def test_a_failing_destination_gets_the_story_on_the_next_run_once_and_blocks_no_other(
    make_config: MakeConfig, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver-therapeutics"]}]
    )
    with AlertReceiver() as down, AlertReceiver() as up:
        down.status = 500
        env = {"VEILLE_ALERTS_COMMS": f"{down.apprise_url('teams')}, {up.apprise_url('slack')}"}
        with caplog.at_level(logging.WARNING, logger="pipeline.outputs.alerts"):
            report = run(config, db_path=db_path, env=env)
        assert report.status == "ok"  # alerts never change the run's outcome
        assert len(up.accepted) == 1 and len(down.posts) == 1 and not down.accepted
        assert "alert=comms failed: json://127.0.0.1:" in caplog.text
        assert "tried again on the next pass" in caplog.text
        failed = [r for r in ledger(db_path) if r["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["attempts"] == 1
        assert "500" in failed[0]["last_error"]

        down.status = 200
        run(config, db_path=db_path, env=env)
        assert len(down.accepted) == 1 and len(up.accepted) == 1
        run(config, db_path=db_path, env=env)
        assert len(down.posts) == 2 and len(up.posts) == 1
        assert [r["status"] for r in ledger(db_path)] == ["sent", "sent"]


def test_a_destination_removed_from_the_variable_has_its_waiting_messages_dropped(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver-therapeutics"]}]
    )
    with AlertReceiver() as down:
        down.status = 500
        run(
            config,
            db_path=db_path,
            env={"VEILLE_ALERTS_COMMS": f"{down.apprise_url()} {hook.apprise_url()}"},
        )
        run(config, db_path=db_path, env={"VEILLE_ALERTS_COMMS": hook.apprise_url()})
        assert len(down.posts) == 1 and len(hook.posts) == 1
    rows = {r["destination"].split("?")[0]: r for r in ledger(db_path)}
    dropped = rows[f"json://127.0.0.1:{down.port}/hook"]
    assert dropped["status"] == "dropped"
    assert dropped["last_error"] == "no longer a destination in VEILLE_ALERTS_COMMS"
    assert rows[f"json://127.0.0.1:{hook.port}/hook"]["status"] == "sent"


def test_a_destination_that_keeps_failing_is_given_up_after_bounded_attempts(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    from pipeline.outputs.alerts import MAX_ATTEMPTS

    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver-therapeutics"]}]
    )
    env = {"VEILLE_ALERTS_COMMS": hook.apprise_url()}
    hook.status = 503
    for _ in range(MAX_ATTEMPTS + 2):
        run(config, db_path=db_path, env=env)
    assert len(hook.posts) == MAX_ATTEMPTS
    [row] = ledger(db_path)
    assert row["status"] == "given-up" and row["attempts"] == MAX_ATTEMPTS


def test_a_message_left_sending_by_a_killed_process_is_sent_again_marked_as_such(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver-therapeutics"]}]
    )
    env = {"VEILLE_ALERTS_COMMS": hook.apprise_url()}
    hook.status = 500
    run(config, db_path=db_path, env=env)
    # what a process killed between "sending" and the answer leaves behind
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE alerts SET status = 'sending'")
    conn.close()
    hook.status = 200
    run(config, db_path=db_path, env=env)
    [post] = hook.accepted
    assert "renvoyé : l'envoi précédent a été interrompu" in post.body["message"]
    assert [r["status"] for r in ledger(db_path)] == ["sent"]


# ------------------------------------------------------------------ rules


def test_rules_filter_by_member_topic_headline_and_age(
    make_config: MakeConfig, db_path: Path
) -> None:
    receivers = {name: AlertReceiver() for name in ("funding", "ng-title", "ng", "valneva")}
    for receiver in receivers.values():
        receiver.__enter__()
    try:
        config = make_config(
            [
                {"id": "funding", "to": "HOOK_FUNDING", "topics": ["funding"]},
                {
                    "id": "ng-title",
                    "to": "HOOK_NG_TITLE",
                    "members": ["ng-biotech"],
                    "in_title": True,
                },
                {"id": "ng", "to": "HOOK_NG", "members": ["ng-biotech"]},
                {"id": "valneva", "to": "HOOK_VALNEVA", "members": ["valneva"], "max_age_days": 30},
            ]
        )
        env = {
            f"HOOK_{name.upper().replace('-', '_')}": r.apprise_url(name)
            for name, r in receivers.items()
        }
        run(config, db_path=db_path, env=env)
        # funding: GoLiver's round (fresh); Valneva's is ten days old
        assert titles(receivers["funding"]) == [STORIES[0]["title"]]
        # NG Biotech is named in the text only
        assert titles(receivers["ng-title"]) == []
        assert titles(receivers["ng"]) == [STORIES[1]["title"]]
        # a wider window takes the older story
        assert titles(receivers["valneva"]) == [STORIES[2]["title"]]
    finally:
        for receiver in receivers.values():
            receiver.__exit__(None, None, None)


def test_beyond_max_per_run_one_summary_message_stands_for_the_rest(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path, feeds: Path
) -> None:
    many = [
        item(
            f"GoLiver Therapeutics : annonce numéro {n} de la semaine",
            f"goliver-annonce-{n}",
            summary=f"GoLiver Therapeutics publie son communiqué {n} sur un sujet distinct {n * 17}.",
            days_ago=0.1 + n / 100,
        )
        for n in range(5)
    ]
    write_feed(feeds, "ouest-sante.rss", many, outlet="ouest-sante")
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "max_per_run": 2}],
        digest={"language": "en", "datasette_url": "http://127.0.0.1:8001"},
    )
    run(config, db_path=db_path, env={"VEILLE_ALERTS_COMMS": hook.apprise_url()})
    got = titles(hook)
    assert len(got) == 3
    # the two newest alone, oldest of them first, then the summary
    assert got[:2] == [many[1]["title"], many[0]["title"]]
    assert got[2] == "Veille Atlanpole Biotherapies: and 3 more stories"
    summary = hook.accepted[2].body["message"]
    assert "beyond 2 messages in one pass" in summary
    assert f"- {many[4]['title']}" in summary
    assert "Every story: http://127.0.0.1:8001/veille/mention_details?date__gte=" in summary
    rows = ledger(db_path)
    assert [(r["kind"], r["story_count"]) for r in rows] == [
        ("story", 1),
        ("story", 1),
        ("summary", 3),
    ]
    run(
        make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "max_per_run": 2}]),
        db_path=db_path,
        env={"VEILLE_ALERTS_COMMS": hook.apprise_url()},
    )
    assert len(hook.posts) == 3  # the summarised stories are told: not sent later one by one


def test_a_silenced_rule_sends_nothing_then_or_later(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    rule = {"id": "comms", "to": "VEILLE_ALERTS_COMMS", "enabled": False}
    run(make_config([rule]), db_path=db_path, env={})  # no variable needed when silenced
    assert hook.posts == []
    [row] = ledger(db_path)
    assert (row["status"], row["story_count"], row["destination"]) == ("muted", 2, "")
    # switched back on: the stories of the silent time are not sent afterwards
    run(
        make_config([{**rule, "enabled": True}]),
        db_path=db_path,
        env={"VEILLE_ALERTS_COMMS": hook.apprise_url()},
    )
    assert hook.posts == []


def test_a_missing_variable_is_a_warning_for_its_rule_and_the_run_goes_on(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}, {"id": "other", "to": "VEILLE_ALERTS_OTHER"}]
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.outputs.alerts"):
        report = run(config, db_path=db_path, env={"VEILLE_ALERTS_OTHER": hook.apprise_url()})
    assert report.status == "ok" and report.new_articles == 4
    assert (
        "alert=comms not sent: alerts[0].to: the environment variable VEILLE_ALERTS_COMMS is "
        "not set; its stories wait for a later pass" in caplog.text
    )
    assert len(hook.accepted) == 2  # the other rule was served
    # once the variable is set, the stories that waited are sent (they are still fresh)
    with AlertReceiver() as late:
        env = {"VEILLE_ALERTS_COMMS": late.apprise_url(), "VEILLE_ALERTS_OTHER": hook.apprise_url()}
        run(config, db_path=db_path, env=env)
        assert len(late.accepted) == 2 and len(hook.posts) == 2


def test_the_daemon_pass_sends_alerts_with_its_environment(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    Daemon(config, db_path=db_path, env={"VEILLE_ALERTS_COMMS": hook.apprise_url()}).run_job()
    assert len(hook.accepted) == 2


# ------------------------------------------------------------------ the message


HOSTILE = (
    "GoLiver Therapeutics <script>alert(1)</script> **lève** [fonds](http://evil.example/x) "
    "@channel @here\x07\x1b[31m\u202eenil\u200b ![pixel](http://tracker.example/p.gif) "
    + "très long "
    * 300
)


def test_a_hostile_headline_arrives_inert(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path, feeds: Path
) -> None:
    write_feed(
        feeds,
        "ouest-sante.rss",
        [
            item(
                HOSTILE,
                "hostile",
                summary="GoLiver Therapeutics\n\nSujet: faux\nLien : http://evil.example",
            )
        ],
        outlet="ouest-sante",
    )
    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    mattermost = f"mmost://127.0.0.1:{hook.port}/{TOKEN}"
    run(config, db_path=db_path, env={"VEILLE_ALERTS_COMMS": f"{hook.apprise_url()} {mattermost}"})
    plain = next(p for p in hook.accepted if "message" in p.body)
    title, message = plain.body["title"], plain.body["message"]
    assert len(title) <= 200 and title.endswith("…")
    for text in (title, message):
        assert not any(ord(c) < 32 and c != "\n" for c in text)
        assert "\u202e" not in text and "\u200b" not in text
        assert "@channel" not in text and "@here" not in text
    assert "＠channel ＠here" in title
    # the snippet's line breaks cannot forge lines of the message
    assert [line.split(" ")[0] for line in message.splitlines()] == [
        "Cité",
        "Média",
        "Date",
        "«",
        "Lien",
    ]
    assert message.splitlines()[-1] == "Lien : https://www.ouest-sante.example/actu/hostile.html"
    # Mattermost renders Markdown in text: every Markdown character arrives escaped, so
    # nothing becomes bold, a disguised link or an image
    chat = next(p for p in hook.accepted if "text" in p.body)
    text = chat.body["text"]
    assert "\\*\\*lève\\*\\*" in text and "\\[fonds\\]\\(" in text and "!\\[pixel\\]" in text
    assert "[fonds](" not in text
    assert "<https://www.ouest-sante.example/actu/hostile.html>" in text
    assert len(text) < 1500


def test_inert_keeps_words_and_drops_what_is_not_text() -> None:
    assert inert("  Levée\tde\nfonds\u00a0: 8 M€ ", 100) == "Levée de fonds : 8 M€"
    assert inert("écrire à contact@goliver.example ou @équipe", 100) == (
        "écrire à contact@goliver.example ou ＠équipe"
    )
    assert inert("x" * 50, 10) == "x" * 9 + "…"


def test_english_digest_language_gives_english_alerts(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    config = make_config(
        [{"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["ng-biotech"]}],
        digest={"language": "en"},
    )
    run(config, db_path=db_path, env={"VEILLE_ALERTS_COMMS": hook.apprise_url()})
    [post] = hook.accepted
    lines = post.body["message"].splitlines()
    assert lines[0] == "Named: NG Biotech" and lines[1] == "Outlet: Ouest Sante"
    assert lines[-1].startswith("Link: https://")


def test_mailto_destination_delivers_through_a_real_smtp_server(
    make_config: MakeConfig, db_path: Path
) -> None:
    config = make_config(
        [{"id": "mail", "to": "VEILLE_ALERTS_MAIL", "members": ["goliver-therapeutics"]}]
    )
    with SmtpServer() as smtp:
        url = f"mailto://127.0.0.1:{smtp.port}?from=veille@atlanpole.example&to=comms@atlanpole.example"
        run(config, db_path=db_path, env={"VEILLE_ALERTS_MAIL": url})
        [mail] = smtp.received
    assert mail.recipients == ["comms@atlanpole.example"]
    assert "GoLiver Therapeutics lève 8 millions" in str(mail.message["Subject"])
    body = mail.message.get_body(("plain",))
    assert body is not None and "Cité : GoLiver Therapeutics" in body.get_content()


# ------------------------------------------------------------------ secrets


def test_secrets_never_reach_the_database_or_the_logs(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    env = {"VEILLE_ALERTS_COMMS": f"mmost://127.0.0.1:{hook.port}/{TOKEN}"}
    hook.status = 500  # a failure is recorded with Apprise's words
    with caplog.at_level(logging.DEBUG):
        run(config, db_path=db_path, env=env)
        hook.status = 200
        run(config, db_path=db_path, env=env)
    assert any(TOKEN in p.path for p in hook.posts)  # it was used ...
    assert TOKEN not in caplog.text  # ... and never logged
    assert "mmost://127.0.0.1" in caplog.text
    conn = sqlite3.connect(db_path)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert TOKEN not in dump and TOKEN[:10] not in dump
    assert "mmost://127.0.0.1" in dump and "500" in dump
    listed = veille("alerts", "--db", str(db_path))
    assert listed.returncode == 0 and TOKEN not in listed.stdout + listed.stderr
    assert "sent" in listed.stdout and "mmost://127.0.0.1" in listed.stdout


# ------------------------------------------------------------------ configuration


def test_alert_rule_mistakes_are_configuration_errors_by_path(make_config: MakeConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(
            [
                {"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver", "ng-biotech"]},
                {"id": "comms", "to": "VEILLE ALERTS", "topics": ["funding", "weather"]},
                {"id": "x", "to": "X", "max_per_run": 0, "colour": "red"},
                {"id": "y", "to": "Y", "members": []},
            ]
        )
    problems = caught.value.problems
    assert (
        "alerts[3].members: Tuple should have at least 1 item after validation, not 0" in problems
    )
    assert "alerts[1].to: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'" in problems
    assert "alerts[2].max_per_run: Input should be greater than or equal to 1" in problems
    assert "alerts[2].colour: unknown key" in problems
    # the checks across sections come once the shapes are right
    with pytest.raises(ConfigError) as caught:
        make_config(
            [
                {"id": "comms", "to": "VEILLE_ALERTS_COMMS", "members": ["goliver", "ng-biotech"]},
                {"id": "comms", "to": "OTHER", "topics": ["funding", "weather"]},
            ]
        )
    assert caught.value.problems == [
        "alerts[0].members[0]: no member with id 'goliver'",
        'alerts[1].id: duplicate "comms" (first at alerts[0])',
        "alerts[1].topics[1]: no topic 'weather' (topics: funding, partnership)",
    ]


def test_check_reports_a_missing_variable_and_an_invalid_url_by_path(
    make_config: MakeConfig,
) -> None:
    config = make_config(
        [
            {"id": "comms", "to": "VEILLE_ALERTS_COMMS"},
            {"id": "bad", "to": "VEILLE_ALERTS_BAD"},
            {"id": "quiet", "to": "VEILLE_ALERTS_QUIET", "enabled": False},
        ]
    )
    env = {"VEILLE_ALERTS_BAD": f"json://127.0.0.1:9/ok nonsense://{TOKEN}"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VEILLE_ALERTS")}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "check", "--config", config.path],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={**clean, **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert "alerts[0].to: the environment variable VEILLE_ALERTS_COMMS is not set" in result.stderr
    assert (
        "alerts[1].to: URL 2 of VEILLE_ALERTS_BAD is not a valid Apprise URL (scheme 'nonsense'"
        in result.stderr
    )
    assert "QUIET" not in result.stderr  # a silenced rule needs no variable
    assert TOKEN not in result.stderr and "Traceback" not in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "pipeline", "check", "--config", config.path],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**clean, "VEILLE_ALERTS_COMMS": "json://127.0.0.1:9/a", "VEILLE_ALERTS_BAD": "json://127.0.0.1:9/b"},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (
        "alerts    3 rule(s), 1 silenced (enabled: false): comms -> $VEILLE_ALERTS_COMMS"
        in ok.stdout
    )


# ------------------------------------------------------------------ the commands


def test_alerts_test_says_what_each_destination_answered(
    make_config: MakeConfig, hook: AlertReceiver, tmp_path: Path
) -> None:
    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    with AlertReceiver() as down:
        down.status = 500
        env = {"VEILLE_ALERTS_COMMS": f"{hook.apprise_url('ok')} {down.apprise_url('down')}"}
        result = veille("alerts", "test", "comms", "--config", config.path, env=env)
    assert result.returncode == 1
    assert f"  ok    json://127.0.0.1:{hook.port}/ok" in result.stdout
    assert f"  error json://127.0.0.1:{down.port}/down" in result.stdout
    assert "alert comms: 1 ok, 1 failed" in result.stdout
    [post] = hook.accepted
    assert post.body["title"] == "Veille Atlanpole Biotherapies : message de test"

    unknown = veille("alerts", "test", "press", "--config", config.path, env=env)
    assert unknown.returncode == 2
    assert "no alert rule 'press' (rules: comms)" in unknown.stderr
    clean = {k: v for k, v in os.environ.items() if k != "VEILLE_ALERTS_COMMS"}
    missing = subprocess.run(
        [sys.executable, "-m", "pipeline", "alerts", "test", "comms", "--config", config.path],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env=clean,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "alerts[0].to: the environment variable VEILLE_ALERTS_COMMS is not set" in missing.stderr
    no_db = veille("alerts", "list", "--db", str(tmp_path / "none.db"))
    assert no_db.returncode == 2 and "no database at" in no_db.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr + no_db.stderr


def test_alerts_lists_deliveries_and_failures(
    make_config: MakeConfig, hook: AlertReceiver, db_path: Path
) -> None:
    config = make_config([{"id": "comms", "to": "VEILLE_ALERTS_COMMS"}])
    hook.status = 500
    run(config, db_path=db_path, env={"VEILLE_ALERTS_COMMS": hook.apprise_url()})
    result = veille("alerts", "--db", str(db_path))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(" comms  failed   x1  json://127.0.0.1:" in line for line in lines)
    assert any(line.startswith("    last error: ") and "500" in line for line in lines)
    # one failure per destination and pass: the second story waits, untried
    assert any(" comms  pending  x0  " in line for line in lines)
    assert "2 alert(s) waiting to be sent or retried" in result.stderr


# ------------------------------------------------------------------ crashes (make crashtest)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_runs_killed_while_sending_alerts_tell_each_story_once(tmp_path: Path) -> None:
    """`make crashtest`'s alerts scenario with three kills."""
    from tests.scripts.crashtest import crash_trials

    report = crash_trials(trials=3, seed=11, scenario="alerts", workdir=tmp_path / "crash")
    assert report.trials == 3
    assert report.integrity_failures == []
    assert report.differences == [], report.summary()


def test_the_commented_example_in_sources_yaml_is_a_valid_rule() -> None:
    from pipeline.settings.config import build_config

    text = (ROOT / "sources.yaml").read_text(encoding="utf-8")
    block = text[text.index("# alerts:") :]
    example = "\n".join(line[2:] for line in block.splitlines())
    data = YAML(typ="safe", pure=True).load(text)
    data["alerts"] = YAML(typ="safe", pure=True).load(example)["alerts"]
    [rule] = build_config(data, path=ROOT / "sources.yaml", file_members=[]).alerts
    assert (rule.id, rule.to, rule.topics, rule.max_age_days) == (
        "comms",
        "VEILLE_ALERTS_COMMS",
        ("funding",),
        3,
    )
