"""A feed's Cache-Control max-age and Expires put off its next check: a real server on
127.0.0.1 sends the headers, a real SQLite file keeps the next check, real runs skip or fetch."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

import pipeline.run as run_module
import pipeline.storage.store as store_module
from pipeline.run import run
from pipeline.sources.fetch import freshness
from pipeline.storage.store import DUE_SLACK
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer

ETAG = '"cache-hints-1"'
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def hint(
    cache_control: list[str] | None = None,
    expires: list[str] | None = None,
    date: list[str] | None = None,
    age: list[str] | None = None,
) -> float | None:
    return freshness(
        cache_control=cache_control or [],
        expires=expires or [],
        date=date or [],
        age=age or [],
        now=NOW,
    )


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"cache_control": ["public, max-age=3600"]}, 3600),
        ({"cache_control": ["max-age=3600"], "age": ["600"]}, 3000),  # max-age minus Age
        ({"cache_control": ['max-age="900"']}, 900),  # the quoted form, tolerated
        ({"cache_control": ["max-age=600", "max-age=600"]}, 600),  # the same twice
        ({"cache_control": ['no-cache="Set-Cookie, X-Id", max-age=60']}, 60),  # qualified
        ({"cache_control": ["private, must-revalidate, max-age=120"]}, 120),
        ({"cache_control": ["max-age=7200"], "expires": ["Thu, 01 Jan 1970 00:00:00 GMT"]}, 7200),
        # Expires counts from the server's Date, whatever our clock says
        (
            {
                "expires": ["Tue, 01 Dec 2020 13:00:00 GMT"],
                "date": ["Tue, 01 Dec 2020 10:00:00 GMT"],
            },
            3 * 3600,
        ),
        ({"expires": ["Tue, 01 Dec 2026 11:00:00 GMT"]}, 2 * 3600),  # no Date: from now
        (
            {
                "expires": ["Tue, 01 Dec 2026 11:00:00 GMT"],
                "date": ["yesterday, around noon"],  # a garbage Date: from now
            },
            2 * 3600,
        ),
        ({"cache_control": ["max-age=3600"], "age": ["soon"]}, 3600),  # a garbage Age: ignored
    ],
)
def test_a_feed_says_how_long_its_answer_stays_fresh(
    headers: dict[str, list[str]], seconds: float
) -> None:
    assert hint(**headers) == seconds


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"cache_control": ["no-cache"]},
        {"cache_control": ["no-cache, max-age=3600"]},
        {"cache_control": ["no-store, max-age=3600"]},
        {"cache_control": ["s-maxage=3600"]},  # for shared caches, not a feed reader
        {"cache_control": ["max-age=0"]},
        {"cache_control": ["max-age=-60"]},
        {"cache_control": ["max-age=une-heure"]},
        {"cache_control": ["max-age"]},
        {"cache_control": ["max-age=١٢٠"]},  # digits, but not ASCII ones
        {"cache_control": ["max-age=60", "max-age=86400"]},  # conflicting: stale
        {"cache_control": ["max-age=3600"], "age": ["7200"]},  # older than its lifetime
        {"cache_control": ["max-age=1e9"], "expires": ["Tue, 01 Dec 2026 11:00:00 GMT"]},
        {"expires": ["0"]},
        {"expires": ["-1"]},
        {"expires": ["the day after tomorrow"]},
        {"expires": ["Mon, 30 Nov 2026 09:00:00 GMT"]},  # in the past
        {
            "expires": ["Tue, 01 Dec 2026 11:00:00 GMT", "Wed, 02 Dec 2026 11:00:00 GMT"],
        },
        {"expires": ["Tue, 01 Dec 2026 11:00:00 GMT"], "date": ["Tue, 01 Dec 2026 12:00:00 GMT"]},
        {"cache_control": ['max-age="3600']},  # an unclosed quote
    ],
)
def test_hostile_or_useless_cache_headers_are_no_hint(headers: dict[str, list[str]]) -> None:
    assert hint(**headers) is None


def test_absurd_values_are_bounded_not_errors() -> None:
    huge = hint(cache_control=["max-age=" + "9" * 100_000])
    assert huge is not None and huge >= 10**12  # capped later by network.max_cache_hint_hours
    assert hint(expires=["Fri, 31 Dec 9999 23:59:59 GMT"]) == pytest.approx(
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - NOW).total_seconds()
    )
    assert hint(cache_control=[',,,=,max-age==,"""' * 1000]) is None


# ---------------------------------------------------------------- end to end


def serve_with(server: FixtureServer, path: str, headers: dict[str, str | list[str]]) -> None:
    """Serve the ouest-sante feed at ``path`` with ``headers`` (a list: one line per value),
    and a 304 carrying the same headers when the client sends its ETag back. The handler
    writes its own Date (or none), unlike BaseHTTPRequestHandler.send_response."""
    body = (server.root / "ouest-sante.rss").read_bytes()

    def handle(handler: BaseHTTPRequestHandler) -> None:
        not_modified = handler.headers.get("If-None-Match") == ETAG
        handler.send_response_only(304 if not_modified else 200)
        lines: list[tuple[str, str]] = [("ETag", ETAG)]
        for name, value in headers.items():
            lines += [(name, v) for v in ([value] if isinstance(value, str) else value)]
        if not not_modified:
            lines += [("Content-Type", "application/rss+xml"), ("Content-Length", str(len(body)))]
        for name, value in lines:
            handler.send_header(name, value)
        handler.end_headers()
        if not not_modified:
            handler.wfile.write(body)

    server.routes[path] = handle


def row(db_path: Path, source_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        found = conn.execute("SELECT * FROM sources WHERE id = ?", [source_id]).fetchone()
        return dict(found)
    finally:
        conn.close()


def wait_of(db_path: Path, source_id: str) -> timedelta:
    """How far after its last check the source's next check was set."""
    found = row(db_path, source_id)
    return datetime.fromisoformat(found["next_check_at"]) - datetime.fromisoformat(
        found["last_checked_at"]
    )


def clock(monkeypatch: pytest.MonkeyPatch, ahead: timedelta) -> Callable[[], datetime]:
    """The run's clock moved ``ahead`` of the real one (the server stays on real time)."""
    real = store_module.utcnow  # the real clock, even when the run's was moved before

    def shifted() -> datetime:
        return real() + ahead

    monkeypatch.setattr(run_module, "utcnow", shifted)
    return shifted


def test_max_age_sets_the_next_check_a_run_before_skips_and_a_run_after_fetches(
    server: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve_with(server, "fresh.rss", {"Cache-Control": "public, max-age=7200", "Age": "600"})
    serve_with(server, "plain.rss", {})
    config = write_config(
        sources=[
            {"id": "fresh", "kind": "feed", "url": server.url("fresh.rss")},
            {"id": "plain", "kind": "feed", "url": server.url("plain.rss")},
        ]
    )
    first = run(config, db_path=db_path)
    assert {o.source_id: o.status for o in first.outcomes} == {"fresh": "ok", "plain": "ok"}
    assert first.new_articles > 0
    assert wait_of(db_path, "fresh") == timedelta(seconds=7200 - 600)
    assert wait_of(db_path, "plain") == timedelta(0)  # no hint, no interval: every run

    # 100 minutes later the answer is still fresh: the source is not asked
    clock(monkeypatch, timedelta(minutes=100))
    second = run(config, db_path=db_path)
    assert second.not_due == ["fresh"] and [o.source_id for o in second.outcomes] == ["plain"]
    assert len(server.requests_for("fresh.rss")) == 1

    # two hours later it is asked again; its 304 carries the hint, which holds again
    clock(monkeypatch, timedelta(hours=2))
    third = run(config, db_path=db_path)
    assert {o.source_id: o.status for o in third.outcomes} == {
        "fresh": "not-modified",
        "plain": "not-modified",
    }
    asked = server.requests_for("fresh.rss")
    assert len(asked) == 2 and asked[-1].headers["if-none-match"] == ETAG
    assert wait_of(db_path, "fresh") == timedelta(seconds=7200 - 600)
    assert row(db_path, "fresh")["last_http_status"] == 304


def test_expires_counts_from_the_servers_date_and_a_longer_interval_wins(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    # the server's clock is six years late: Expires minus its own Date is still 3 hours
    serve_with(
        server,
        "expires.rss",
        {"Date": "Tue, 01 Dec 2020 10:00:00 GMT", "Expires": "Tue, 01 Dec 2020 13:00:00 GMT"},
    )
    serve_with(server, "hourly.rss", {"Cache-Control": "max-age=3600"})
    config = write_config(
        sources=[
            {"id": "expires", "kind": "feed", "url": server.url("expires.rss")},
            {
                "id": "hourly",
                "kind": "feed",
                "url": server.url("hourly.rss"),
                "interval_minutes": 240,
            },
        ]
    )
    run(config, db_path=db_path)
    assert wait_of(db_path, "expires") == timedelta(hours=3)
    assert wait_of(db_path, "hourly") == timedelta(hours=4)  # the source's interval is longer


def test_huge_hints_are_capped_and_hostile_headers_are_ignored(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    serve_with(server, "forever.rss", {"Cache-Control": "max-age=99999999999999999999999"})
    serve_with(server, "year9999.rss", {"Expires": "Fri, 31 Dec 9999 23:59:59 GMT"})
    serve_with(server, "garbage.rss", {"Expires": "0", "Cache-Control": "max-age=-1"})
    serve_with(server, "twice.rss", {"Cache-Control": ["max-age=60", "max-age=864000"]})
    serve_with(server, "nocache.rss", {"Cache-Control": "no-cache, max-age=86400"})
    names = ("forever", "year9999", "garbage", "twice", "nocache")
    config = write_config(
        sources=[{"id": n, "kind": "feed", "url": server.url(f"{n}.rss")} for n in names],
        network={"max_cache_hint_hours": 6},
    )
    report = run(config, db_path=db_path)
    assert {o.status for o in report.outcomes} == {"ok"}  # never an error
    assert wait_of(db_path, "forever") == timedelta(hours=6)  # network.max_cache_hint_hours
    assert wait_of(db_path, "year9999") == timedelta(hours=6)
    for name in ("garbage", "twice", "nocache"):
        assert wait_of(db_path, name) == timedelta(0), name


def test_the_default_cap_is_a_day_and_zero_turns_hints_off(
    server: FixtureServer, write_config: WriteConfig, db_path: Path, tmp_path: Path
) -> None:
    serve_with(server, "forever.rss", {"Cache-Control": "max-age=31536000"})
    sources = [{"id": "forever", "kind": "feed", "url": server.url("forever.rss")}]
    run(write_config(sources=sources), db_path=db_path)
    assert wait_of(db_path, "forever") == timedelta(hours=24)
    off = write_config(sources=sources, network={"max_cache_hint_hours": 0}, name="off.yaml")
    run(off, db_path=tmp_path / "off.db")
    assert wait_of(tmp_path / "off.db", "forever") == timedelta(0)


def test_a_news_search_feed_hint_lands_on_one_of_its_slots(
    server: FixtureServer,
    write_config: WriteConfig,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve_with(server, "search/valneva.rss", {"Cache-Control": "max-age=10800"})
    serve_with(server, "search/xenothera.rss", {})
    serve_with(server, "search/atlanpole-biotherapies.rss", {"Cache-Control": "max-age=600"})
    config = write_config(
        sources=[
            {
                "id": "news",
                "kind": "search",
                "url": server.url("search/{id}.rss"),
                "interval_minutes": 60,
            }
        ]
    )
    run(config, db_path=db_path, source_ids=["news"])  # every feed fetched now, named
    hinted = {
        "news:valneva": timedelta(hours=3),
        "news:atlanpole-biotherapies": timedelta(minutes=10),
        "news:xenothera": DUE_SLACK,  # no hint: the next slot past the slack, as before
    }
    for source in (s for s in config.sources if s.kind == "search"):
        found = row(db_path, source.id)
        checked = datetime.fromisoformat(found["last_checked_at"])
        when = datetime.fromisoformat(found["next_check_at"])
        assert source.on_slot(when), source.id
        earliest = hinted[source.id]
        # the first slot once the hint (or the slack) has passed: within one interval of it
        assert checked + earliest < when <= checked + earliest + timedelta(hours=1), source.id

    # a run a few minutes before that slot leaves the feed alone, one just after asks it
    slot = datetime.fromisoformat(row(db_path, "news:valneva")["next_check_at"])
    real_now = store_module.utcnow()
    clock(monkeypatch, slot - timedelta(minutes=5) - real_now)
    before = run(config, db_path=db_path)
    assert "news:valneva" in before.not_due
    assert len(server.requests_for("search/valneva.rss")) == 1
    clock(monkeypatch, slot + timedelta(minutes=1) - real_now)
    after = run(config, db_path=db_path)
    assert "news:valneva" in [o.source_id for o in after.outcomes]
    assert len(server.requests_for("search/valneva.rss")) == 2
    # still on its slots: the next one once the 3-hour hint has passed again
    again = datetime.fromisoformat(row(db_path, "news:valneva")["next_check_at"])
    search = config.source("news:valneva")
    assert search.on_slot(again) and again - slot > timedelta(hours=3)
