"""The desk (pipeline/outputs/desk.py) through a real Datasette: read-only without a login,
verdicts with a desk account and the CSRF token only, every text escaped, the preview
exactly the digest that would be sent."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from datasette.app import Datasette
from datasette_auth_passwords.utils import hash_password

from pipeline.errors import ConfigError
from pipeline.outputs.digest import Week, build, render
from pipeline.outputs.serve import (
    PASSWORD_HASH_ENV,
    accounts_path,
    desk_environment,
    load_accounts,
    metadata_for,
    save_account,
)
from pipeline.run import run
from pipeline.settings.config import Config
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.run_cli import veille
from tests.test_review import GLIOCURE, _config, this_week

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)
TOKEN = re.compile(r'name="csrftoken" value="([^"]+)"')


@pytest.fixture
def desk(
    write_config: WriteConfig,
    server: FixtureServer,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Datasette, Config, Path]:
    config = _config(write_config, server)
    run(config, db_path=db_path)
    accounts = {"claire": HASH}
    for name, value in desk_environment(accounts).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(PASSWORD_HASH_ENV, HASH)  # the analysts' login: no desk permission
    metadata = metadata_for(db_path, protect=True, config_path=Path(config.path), accounts=accounts)
    return Datasette([str(db_path)], metadata=metadata), config, db_path


def go(job: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(job())


async def login(ds: Datasette, name: str) -> dict[str, str]:
    """The cookies of a logged-in session, through datasette-auth-passwords' form."""
    page = await ds.client.get("/-/login")
    token = TOKEN.search(page.text)
    assert token, page.text[:500]
    cookies = {"ds_csrftoken": page.cookies["ds_csrftoken"]}
    done = await ds.client.post(
        "/-/login",
        data={"username": name, "password": PASSWORD, "csrftoken": token.group(1)},
        cookies=cookies,
    )
    assert done.status_code == 302, done.text[:500]
    return {**cookies, "ds_actor": done.cookies["ds_actor"]}


async def form_token(ds: Datasette, cookies: dict[str, str]) -> str:
    page = await ds.client.get(f"/-/desk?week={this_week().label}", cookies=cookies)
    assert page.status_code == 200, page.text[:500]
    found = TOKEN.search(page.text)
    assert found
    return found.group(1)


def verdicts(db_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT action, by, url FROM verdicts ORDER BY id").fetchall()


def test_without_a_login_the_desk_is_read_only_and_refuses_a_post(
    desk: tuple[Datasette, Config, Path],
) -> None:
    ds, _, db_path = desk

    async def job() -> None:
        # the instance is protected (beyond loopback): the analysts' login reads it
        analyst = await login(ds, "analyst")
        page = await ds.client.get(f"/-/desk?week={this_week().label}", cookies=analyst)
        assert page.status_code == 200
        assert "Lecture seule" in page.text and 'data-action="drop"' not in page.text
        assert "GlioCure prépare son essai" in page.text
        token = TOKEN.search(page.text)
        assert token  # the menu's logout form carries one: the POST below has a valid token
        data = {"action": "drop", "url": GLIOCURE, "csrftoken": token.group(1)}
        refused = await ds.client.post("/-/desk/verdict", data=data, cookies=analyst)
        assert refused.status_code == 403 and "log in with a desk account" in refused.text
        anonymous = await ds.client.post("/-/desk/verdict", data=data)
        assert anonymous.status_code == 403

    go(job)
    assert verdicts(db_path) == []


def test_a_desk_account_gives_verdicts_with_the_token_and_never_without(
    desk: tuple[Datasette, Config, Path],
) -> None:
    ds, _, db_path = desk

    async def job() -> None:
        claire = await login(ds, "claire")
        token = await form_token(ds, claire)
        week = this_week().label
        no_token = await ds.client.post(
            "/-/desk/verdict",
            data={"action": "drop", "url": GLIOCURE, "week": week},
            cookies=claire,
        )
        assert no_token.status_code == 403
        assert verdicts(db_path) == []
        by_get = await ds.client.get(f"/-/desk/verdict?action=drop&url={GLIOCURE}", cookies=claire)
        assert by_get.status_code == 405
        assert verdicts(db_path) == []
        done = await ds.client.post(
            "/-/desk/verdict",
            data={
                "action": "highlight",
                "url": GLIOCURE,
                "week": week,
                "comment": "Une étape <b>clé</b>",
                "csrftoken": token,
            },
            cookies=claire,
        )
        assert done.status_code == 303 and "/-/desk?week=" in done.headers["location"]
        page = await ds.client.get(f"/-/desk?week={week}", cookies=claire)
        assert "★" in page.text and "Une étape &lt;b&gt;clé&lt;/b&gt;" in page.text
        assert 'data-action="undo"' in page.text  # the audit trail, with its undo button

    go(job)
    assert verdicts(db_path) == [("highlight", "claire", GLIOCURE)]


def test_every_text_on_the_desk_is_escaped(desk: tuple[Datasette, Config, Path]) -> None:
    ds, _, db_path = desk
    with sqlite3.connect(db_path) as db:
        db.execute(
            "UPDATE articles SET title = '<script>alert(1)</script> GlioCure' WHERE url = ?",
            [GLIOCURE],
        )

    async def job() -> str:
        claire = await login(ds, "claire")
        page = await ds.client.get(f"/-/desk?week={this_week().label}", cookies=claire)
        return str(page.text)

    text = go(job)
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; GlioCure" in text


def test_the_preview_is_the_digest_as_it_will_be_sent(desk: tuple[Datasette, Config, Path]) -> None:
    ds, config, db_path = desk

    async def job() -> str:
        claire = await login(ds, "claire")
        page = await ds.client.get(f"/-/desk/preview?week={this_week().label}", cookies=claire)
        assert page.status_code == 200
        return str(page.text)

    shown = go(job)
    store = Store.open(db_path)
    try:
        content = build(config, store, this_week(), now=datetime.now(UTC), db_name=db_path.stem)
    finally:
        store.close()
    expected = render(config, content).html
    # the same digest but for the minute it was generated at
    stamp = re.compile(r"\d{1,2}:\d{2}")
    assert stamp.sub("", shown) == stamp.sub("", expected)


def test_the_filters_keep_one_member_and_the_stories_not_yet_reviewed(
    desk: tuple[Datasette, Config, Path],
) -> None:
    ds, _, _ = desk
    week = this_week().label

    async def job() -> tuple[str, str]:
        claire = await login(ds, "claire")
        token = await form_token(ds, claire)
        await ds.client.post(
            "/-/desk/verdict",
            data={"action": "highlight", "url": GLIOCURE, "week": week, "csrftoken": token},
            cookies=claire,
        )
        one = await ds.client.get(f"/-/desk?week={week}&member=gliocure", cookies=claire)
        fresh = await ds.client.get(f"/-/desk?week={week}&unreviewed=1", cookies=claire)
        return str(one.text), str(fresh.text)

    one, fresh = go(job)
    assert 'id="member-gliocure"' in one and 'id="member-xenothera"' not in one
    assert f'data-url="{GLIOCURE}"' not in fresh and 'id="member-xenothera"' in fresh
    assert f'data-url="{GLIOCURE}"' in one


def make_account(db_path: Path, name: str) -> Any:
    """`veille review account NAME`, the password given on standard input."""
    return veille(
        "review",
        "account",
        name,
        "--db",
        str(db_path),
        "--password-stdin",
        input_text=PASSWORD + "\n",
    )


def test_the_account_command_writes_a_hash_readable_by_its_owner_only(db_path: Path) -> None:
    db_path.touch()
    done = make_account(db_path, "claire")
    assert done.returncode == 0, done.stderr
    path = accounts_path(db_path)
    assert (path.stat().st_mode & 0o777) == 0o600
    accounts = load_accounts(path)
    assert list(accounts) == ["claire"] and PASSWORD not in path.read_text()
    bad = make_account(db_path, "Claire!")
    assert bad.returncode == 2 and "account name" in bad.stderr
    with pytest.raises(ConfigError, match="account name"):
        save_account(path, "x y", HASH)


def test_the_week_defaults_to_the_one_under_review(desk: tuple[Datasette, Config, Path]) -> None:
    ds, config, _ = desk

    async def job() -> str:
        claire = await login(ds, "claire")
        page = await ds.client.get("/-/desk", cookies=claire)
        return str(page.text)

    text = go(job)
    last = Week.containing(datetime.now(UTC), config.schedule.zone).shift(-1)
    assert f"Semaine {last.number}" in text  # its digest is not sent yet: it is under review


def test_the_desk_adds_an_article_by_its_url(
    desk: tuple[Datasette, Config, Path], server: FixtureServer
) -> None:
    ds, _, db_path = desk
    page = Path(__file__).parent / "fixtures" / "articles" / "fr-06-journal-anjou.html"
    (server.root / "entretien.html").write_bytes(page.read_bytes())
    url = server.url("entretien.html")

    async def job() -> str:
        claire = await login(ds, "claire")
        token = await form_token(ds, claire)
        done = await ds.client.post(
            "/-/desk/verdict",
            data={"action": "article", "url": url, "week": this_week().label, "csrftoken": token},
            cookies=claire,
        )
        assert done.status_code == 303
        shown = await ds.client.get(f"/-/desk?week={this_week().label}", cookies=claire)
        return str(shown.text)

    text = go(job)
    assert "article ajouté" in text  # the message and the audit trail
    assert [row[:2] for row in verdicts(db_path)] == [("article", "claire")]
