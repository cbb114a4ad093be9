"""An article page's state is a kind of its own (``articles.text_state``, PageState), beside
the sentence an analyst reads (``articles.text_status``): the store finds the pages to try
again on the kind, and a database from before the column gets it filled from the
sentences it holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.models import PageState
from pipeline.run import run
from pipeline.storage.migrations import MIGRATIONS, _m13_text_state
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.sqlite_rows import rows as query
from tests.test_upgrade import build_old_database
from tests.test_web import PARAGRAPHS, article_page, feed, source, write


@pytest.mark.parametrize(
    ("state", "reason", "sentence"),
    [
        (PageState.OK, None, "ok"),
        (PageState.ROBOTS, None, "robots"),
        (PageState.ERROR, "https://www.ouest-sante.example/a.html: HTTP 500", None),
        (PageState.PENDING, "the run's deadline came first", None),
    ],
)
def test_a_state_and_its_sentence_go_both_ways(
    state: PageState, reason: str | None, sentence: str | None
) -> None:
    text = state.status(reason)
    assert text == (sentence or f"{state.value}: {reason}")
    assert PageState.of(text) is state


def test_no_status_has_no_state_and_a_sentence_veille_never_writes_counts_as_an_error() -> None:
    assert PageState.of(None) is None
    assert PageState.of("illisible: page vide") is PageState.ERROR


def test_a_database_from_before_the_column_gets_each_pages_state(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = MIGRATIONS.index(_m13_text_state)
    build_old_database(path, before)
    sentences = {
        "https://www.ouest-sante.example/actu/ok.html": "ok",
        "https://www.ouest-sante.example/actu/robots.html": "robots",
        "https://www.ouest-sante.example/actu/erreur.html": "error: HTTP 503",
        "https://www.ouest-sante.example/actu/attente.html": "pending: the run's deadline came first",
        "https://www.ouest-sante.example/actu/jamais.html": None,
    }
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO articles (url, title, text_status, first_seen_at, source_id) "
            "VALUES (?, 'Titre', ?, '2026-11-20T06:00:02Z', 'ouest-sante')",
            list(sentences.items()),
        )
    conn.close()
    Store.open(path).close()
    stored = dict(
        query(path, "SELECT url, text_state FROM articles WHERE url LIKE '%/actu/%.html'")
    )
    assert stored == {
        "https://www.ouest-sante.example/actu/ok.html": "ok",
        "https://www.ouest-sante.example/actu/robots.html": "robots",
        "https://www.ouest-sante.example/actu/erreur.html": "error",
        "https://www.ouest-sante.example/actu/attente.html": "pending",
        "https://www.ouest-sante.example/actu/jamais.html": None,
    }
    # the sentences are left as they were
    assert query(path, "SELECT text_status FROM articles WHERE url LIKE '%/actu/erreur.html'") == [
        ("error: HTTP 503",)
    ]


def test_pages_left_pending_are_found_by_their_state_and_read_on_the_next_run(
    tmp_path: Path, write_config: WriteConfig, db_path: Path
) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /abonnes/\n", encoding="utf-8")
    with FixtureServer(root) as site:
        items = []
        for n, name in enumerate(["Xenothera", "Valneva", "GoLiver"]):
            write(site, f"eco/{n}.html", article_page(f"{name} recrute", PARAGRAPHS))
            items.append((f"{name} recrute", f"/eco/{n}.html", "Emploi."))
        write(site, "abonnes/r.html", article_page("Réservé", PARAGRAPHS))
        items.append(("Réservé aux abonnés", "/abonnes/r.html", "Abonnés."))
        write(site, "feed.rss", feed(site.base, items))
        config = write_config(sources=[source(site, "press", "feed.rss", max_articles=2)])
        run(config, db_path=db_path)
        first = sorted(
            query(db_path, "SELECT text_state, text_status, text_attempts FROM articles")
        )
        assert first == [
            ("ok", "ok", 1),
            ("ok", "ok", 1),
            ("pending", "pending: more than 2 new pages in one run", 0),
            ("pending", "pending: more than 2 new pages in one run", 0),
        ]
        # the feed changes (an unchanged one is a 304, with nothing to read again)
        write(site, "feed.rss", feed(site.base, [(t, p, f"{s} Mis à jour.") for t, p, s in items]))
        run(config, db_path=db_path)
        second = sorted(
            query(db_path, "SELECT text_state, text_status, text_attempts FROM articles")
        )
        # a page read after waiting fills its article's text; its attempts stay as they were
        # (the store counts attempts that leave an article without text)
        assert second == [
            ("ok", "ok", 0),
            ("ok", "ok", 1),
            ("ok", "ok", 1),
            ("robots", "robots", 1),
        ]
        write(site, "feed.rss", feed(site.base, [(t, p, f"{s} Corrigé.") for t, p, s in items]))
        run(config, db_path=db_path)  # a page robots.txt disallows is not tried again
        assert len(site.requests_for("abonnes/r.html")) == 0
        assert sorted(query(db_path, "SELECT text_state FROM articles")) == [
            ("ok",),
            ("ok",),
            ("ok",),
            ("robots",),
        ]
