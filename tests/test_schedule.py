"""`veille schedule`: fire times across clock changes (computed, not waited for), catch-up
logic on a fake clock, and the real daemon in a subprocess running a pass and sending a
digest through a real SMTP server."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.models import SourceOutcome
from pipeline.outputs.digest import Week
from pipeline.run import next_check, run
from pipeline.schedule import MAX_DIGEST_ATTEMPTS, Daemon, previous_fire
from pipeline.settings.config import DEFAULT_SEARCH_INTERVAL_MINUTES, Config, Source
from pipeline.storage.store import Store, iso, pass_quota
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.smtp_server import SmtpServer

PARIS = ZoneInfo("Europe/Paris")
DIGEST = {"from": "veille@atlanpole.example", "recipients": ["communication@atlanpole.example"]}


def fires(config: Config, which: str, start: datetime, count: int) -> list[datetime]:
    trigger = config.schedule.trigger(which)  # type: ignore[arg-type]
    out: list[datetime] = []
    previous, moment = None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        assert fire is not None
        out.append(fire)
        previous, moment = fire, fire.astimezone(UTC) + timedelta(seconds=1)
    return out


@pytest.fixture
def config(write_config: WriteConfig, server: FixtureServer) -> Config:
    return write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        digest=DIGEST,
        schedule={"run": "*/30 * * * *", "digest": "30 7 * * mon", "timezone": "Europe/Paris"},
    )


def test_runs_every_half_hour_through_both_clock_changes(config: Config) -> None:
    spring = fires(config, "run", datetime(2026, 3, 29, 1, 0, tzinfo=PARIS), 4)
    assert [f.isoformat() for f in spring] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 does not exist: 30 minutes later in real time
        "2026-03-29T03:30:00+02:00",
    ]
    autumn = fires(config, "run", datetime(2026, 10, 25, 1, 30, tzinfo=PARIS), 6)
    assert [f.isoformat() for f in autumn] == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",  # the hour from 02:00 happens twice: so do its passes
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    for fired in (spring, autumn):
        gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(fired)}
        assert gaps == {timedelta(minutes=30)}
    assert config.schedule.run_interval() == timedelta(minutes=30)


def test_the_digest_stays_at_half_past_seven_local(config: Config) -> None:
    mondays = fires(config, "digest", datetime(2026, 3, 20, tzinfo=PARIS), 2)
    assert [f.isoformat() for f in mondays] == [
        "2026-03-23T07:30:00+01:00",  # 06:30 UTC in winter
        "2026-03-30T07:30:00+02:00",  # 05:30 UTC in summer
    ]
    autumn = fires(config, "digest", datetime(2026, 10, 20, tzinfo=PARIS), 2)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in autumn] == [
        "10-26 06:30",
        "11-02 06:30",
    ]


def test_previous_fire(config: Config) -> None:
    trigger = config.schedule.trigger("digest")
    monday_morning = datetime(2026, 11, 30, 8, 0, tzinfo=PARIS)
    fired = previous_fire(trigger, monday_morning)
    assert fired is not None and fired.isoformat() == "2026-11-30T07:30:00+01:00"
    fired = previous_fire(trigger, datetime(2026, 11, 30, 7, 0, tzinfo=PARIS))
    assert fired is not None and fired.isoformat() == "2026-11-23T07:30:00+01:00"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_missed_digest_is_due_until_sent(config: Config, db_path: Path, smtp: SmtpServer) -> None:
    clock = Clock(datetime(2026, 11, 30, 6, 0, tzinfo=PARIS))
    daemon = Daemon(config, db_path=db_path, env=smtp.env(), clock=clock)
    store = Store.open(db_path)
    with store.transaction("a first pass on Wednesday of week 48"):
        store.db.execute(
            "INSERT INTO runs (started_at, finished_at, status) VALUES (?, ?, 'ok')",
            ["2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z"],
        )
    store.close()
    # Monday 06:00: week 48's digest time has not come; week 47's has (the Monday
    # before) but veille was not watching yet: nothing to catch up
    assert daemon.due_digest() is None
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
    week = daemon.due_digest()
    assert week == Week.parse("2026-W48", PARIS)
    clock.now = datetime(2026, 12, 4, 18, 0, tzinfo=PARIS)  # still due on Friday
    assert daemon.due_digest() == week

    smtp.data_reply = "451 4.7.1 try again later"
    daemon.catch_up_digest()
    assert smtp.received == [] and daemon.due_digest() == week  # failed: still due
    smtp.data_reply = None
    daemon.catch_up_digest()
    assert len(smtp.received) == 1 and "semaine 48" in smtp.received[0].message["Subject"]
    assert daemon.due_digest() is None
    daemon.catch_up_digest()  # and it stays sent
    assert len(smtp.received) == 1

    # a digest that keeps failing stops being retried
    clock.now = datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)
    store = Store.open(db_path)
    store.save_digest("2026-W49", status="failed")
    store.db.execute(
        "UPDATE digests SET attempts = ? WHERE week = '2026-W49'", [MAX_DIGEST_ATTEMPTS]
    )
    store.db.conn.commit()
    store.close()
    assert daemon.due_digest() is None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


# ---------------------------------------------------------------- the daemon itself


def start_daemon(config: Config, db_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "schedule",
            "--config",
            config.path,
            "--db",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runs(db_path: Path) -> list[tuple[str, str | None]]:
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute("SELECT status, finished_at FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the daemon has not created the table yet
        return []


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def record_run(db_path: Path, started: datetime) -> None:
    """A pass in the database's history, as an earlier veille left it."""
    store = Store.open(db_path)
    with store.transaction("an earlier pass"):
        store.db.execute(
            "INSERT INTO runs (started_at, finished_at, status) VALUES (?, ?, 'ok')",
            [iso(started), iso(started + timedelta(minutes=1))],
        )
    store.close()


def test_a_daemon_down_for_more_than_a_week_sends_the_week_it_missed(
    config: Config, db_path: Path, smtp: SmtpServer
) -> None:
    record_run(db_path, datetime(2026, 11, 18, 10, 0, tzinfo=PARIS))  # week 47
    # down from Sunday 22 November; back on Monday 30 November at 07:00, before 07:30
    clock = Clock(datetime(2026, 11, 30, 7, 0, tzinfo=PARIS))
    daemon = Daemon(config, db_path=db_path, env=smtp.env(), clock=clock)
    assert daemon.due_digest() == Week.parse("2026-W47", PARIS)
    daemon.catch_up_digest()
    assert [m.message["X-Veille-Week"] for m in smtp.received] == ["2026-W47"]


def test_the_daemon_catches_up_then_stops_on_sigterm(
    config: Config, db_path: Path, smtp: SmtpServer
) -> None:
    # veille ran last week, then the daemon was down past this Monday's digest time
    last_week = Week.last_complete(datetime.now(UTC), PARIS)
    record_run(db_path, last_week.start + timedelta(days=2))
    daemon = start_daemon(config, db_path, smtp.env())
    try:
        # never run before: a pass at once, then last week's digest (its time has passed)
        wait_for(lambda: len(runs(db_path)) == 2 and runs(db_path)[1][1], "the catch-up pass")
        wait_for(lambda: len(smtp.received) == 1, "the catch-up digest")
    finally:
        code, err = stop(daemon)
    assert code == 0, err
    assert "a pass was due while the daemon was down" in err
    assert "SIGTERM received: stopping after the current job" in err
    assert "veille schedule stopped" in err and "Traceback" not in err
    last_week = Week.last_complete(datetime.now(UTC), PARIS)
    assert smtp.received[0].message["X-Veille-Week"] == last_week.label
    assert runs(db_path)[1][0] == "ok"

    # started again: the digest is sent, nothing is sent twice
    again = start_daemon(config, db_path, smtp.env())
    try:
        wait_for(lambda: _started(db_path, again), "the second start", 10)
        time.sleep(2)
    finally:
        code, err = stop(again)
    assert code == 0, err
    assert "veille schedule started" in err
    assert len(smtp.received) == 1


def _started(db_path: Path, process: subprocess.Popen[str]) -> bool:
    """The daemon holds its lock (the file names its pid)."""
    lock = Path(f"{db_path}.schedule.lock")
    return lock.exists() and f"pid {process.pid}," in lock.read_text()


def test_sigterm_lets_the_pass_finish_and_the_lock_is_shared(
    write_config: WriteConfig, server: FixtureServer, db_path: Path, smtp: SmtpServer
) -> None:
    config = write_config(
        sources=[
            {"id": "slow", "kind": "feed", "url": server.url("_/slow/8/ouest-sante.rss")},
            {"id": "pharma", "kind": "feed", "url": server.url("pharma-wire.rss")},
        ],
        network={"read_timeout": 15, "total_timeout": 30},
        digest=DIGEST,
        schedule={"run": "*/30 * * * *", "digest": "30 7 * * mon"},
    )
    daemon = start_daemon(config, db_path, smtp.env())
    try:
        wait_for(lambda: bool(runs(db_path)), "the pass to start")
        daemon.send_signal(signal.SIGTERM)  # stops after the pass: the locks are held till then
        # cron's `veille run` and a second daemon meet the locks
        cron = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "run",
                "--config",
                config.path,
                "--db",
                str(db_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cron.returncode == 75, cron.stderr
        assert "veille schedule" in cron.stderr or "veille run" in cron.stderr
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "schedule",
                "--config",
                config.path,
                "--db",
                str(db_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 75 and "schedule.lock" in second.stderr
    finally:
        code, err = stop(daemon)
    assert code == 0, err
    assert "SIGTERM received: stopping after the current job" in err
    status, finished = runs(db_path)[-1]
    assert status == "ok" and finished is not None  # finished, not interrupted
    with sqlite3.connect(db_path) as db:
        stored = db.execute(
            "SELECT count(*) FROM article_sources WHERE source_id = 'slow'"
        ).fetchone()[0]
    assert stored == 6


# ------------------------------------------------------------ news searches at 220 members

HALF_HOUR = timedelta(minutes=30)
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def cluster(write_config: WriteConfig, server: FixtureServer) -> Config:
    """220 members and the cluster: one news search expands to 221 feeds on one host."""
    return write_config(
        sources=[{"id": "news", "kind": "search", "url": server.url("search/{id}.rss")}],
        members=[{"name": f"Membre {i:03d}", "derive": False} for i in range(220)],
        schedule={"run": "*/30 * * * *", "digest": "30 7 * * mon", "timezone": "Europe/Paris"},
    )


def search_feeds(config: Config) -> list[Source]:
    return [s for s in config.sources if s.kind == "search"]


def one_pass(store: Store, config: Config, now: datetime, *, status: int = 200) -> list[Source]:
    """What `veille run` does with the schedule in one pass, each due feed answering ``status``."""
    store.sync_config(config, now=now)
    due, _ = store.due_sources(config.sources, now=now, run_interval=config.schedule.run_interval())
    for source in due:
        failures = store.source_state(source.id)["consecutive_failures"] + (status != 200)
        outcome = SourceOutcome(
            source_id=source.id, status="ok" if status == 200 else "error", http_status=status
        )
        when = next_check(config, source, outcome, failures=failures, now=now)
        store.save_source(outcome, [], run_id=None, now=now, next_check_at=when)
    return due


def test_a_news_search_is_polled_once_a_day_per_feed_at_a_slot_its_id_fixes(
    cluster: Config,
) -> None:
    feeds = search_feeds(cluster)
    assert len(feeds) == 221
    assert {s.interval_minutes for s in feeds} == {DEFAULT_SEARCH_INTERVAL_MINUTES} == {1440}
    slots = {s.id: s.next_slot(T0) for s in feeds}
    assert all(T0 < slot <= T0 + timedelta(days=1) and feeds[0].spread for slot in slots.values())
    assert all(s.on_slot(slots[s.id]) and not s.on_slot(slots[s.id] + HALF_HOUR) for s in feeds)
    assert feeds[1].next_slot(slots[feeds[1].id]) == slots[feeds[1].id] + timedelta(days=1)
    # the slot comes from the id alone: another process (another hash seed) finds the same
    code = (
        "from datetime import datetime, UTC; from pipeline.settings.config import Source; "
        "s = Source(id='news:membre-007', kind='search', url='http://127.0.0.1/', name='n', "
        "interval_minutes=1440); print(s.next_slot(datetime(2026, 11, 30, 8, tzinfo=UTC)).isoformat())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.strip() == slots["news:membre-007"].isoformat(), other.stderr


def test_an_interval_written_for_a_search_is_kept_and_other_kinds_are_not_spread(
    write_config: WriteConfig, server: FixtureServer
) -> None:
    config = write_config(
        sources=[
            {"id": "news", "kind": "search", "url": server.url("s/{id}"), "interval_minutes": 120},
            {"id": "f", "kind": "feed", "url": server.url("f.rss"), "interval_minutes": 120},
            {"id": "g", "kind": "feed", "url": server.url("g.rss")},
        ]
    )
    by_id = {s.id: s for s in config.sources}
    assert by_id["news:valneva"].interval_minutes == 120 and by_id["news:valneva"].spread
    assert by_id["f"].interval_minutes == 120 and not by_id["f"].spread
    assert by_id["g"].interval_minutes is None and not by_id["g"].spread
    slot = by_id["news:valneva"].next_slot(T0)
    assert T0 < slot <= T0 + timedelta(hours=2)


def test_a_day_of_passes_fetches_each_feed_once_and_never_many_in_one_pass(
    cluster: Config, db_path: Path
) -> None:
    store = Store.open(db_path)
    try:
        quota = pass_quota(221, search_feeds(cluster)[0], cluster.schedule.run_interval())
        assert quota == 10  # twice 221 x 30 min / 1 day
        fetched: Counter[str] = Counter()
        per_pass = []
        # two days of runs every half hour (and the one closing them), the first on a new database
        for k in range(2 * 48 + 1):
            due = one_pass(store, cluster, T0 + k * HALF_HOUR)
            per_pass.append(len(due))
            fetched.update(s.id for s in due)
    finally:
        store.close()
    assert per_pass[0] <= quota  # the first run after adding 221 feeds does not fire them all
    assert max(per_pass) <= quota and sum(per_pass) == 2 * 221
    assert set(fetched.values()) == {2}  # each feed once a day, none forgotten
    assert sum(1 for n in per_pass if n) >= 40  # spread over the day, not bunched


def test_after_an_outage_the_missed_feeds_catch_up_a_quota_a_pass(
    cluster: Config, db_path: Path
) -> None:
    store = Store.open(db_path)
    try:
        for k in range(48):
            one_pass(store, cluster, T0 + k * HALF_HOUR)
        back = T0 + timedelta(days=4)  # every feed's slot passed while nothing ran
        per_pass = [len(one_pass(store, cluster, back + k * HALF_HOUR)) for k in range(24)]
    finally:
        store.close()
    assert per_pass[:22] == [10] * 22  # 221 overdue: ten a pass, the longest waiting first
    assert per_pass[22] <= 10 and sum(per_pass) >= 221


def test_feeds_scheduled_by_an_older_veille_or_another_interval_move_to_their_slots(
    cluster: Config, db_path: Path, write_config: WriteConfig, server: FixtureServer
) -> None:
    store = Store.open(db_path)
    try:
        store.sync_config(cluster, now=T0)
        # what an older veille stored: checked every run, next check "now"; one feed failing
        store.db.execute("UPDATE sources SET next_check_at = ?", [iso(T0)])
        store.db.execute(
            "UPDATE sources SET consecutive_failures = 2, next_check_at = ? "
            "WHERE id = 'news:membre-003'",
            [iso(T0 + timedelta(hours=5))],
        )
        store.db.conn.commit()
        store.sync_config(cluster, now=T0)
        rows = dict(store.db.execute("SELECT id, next_check_at FROM sources").fetchall())
        by_id = {s.id: s for s in search_feeds(cluster)}
        assert rows.pop("news:membre-003") == iso(T0 + timedelta(hours=5))  # backing off: kept
        assert all(rows[i] == iso(by_id[i].next_slot(T0)) for i in rows)
        # a weekly search: each feed moves to a slot of the new interval, within a week
        weekly = write_config(
            sources=[
                {
                    "id": "news",
                    "kind": "search",
                    "url": server.url("search/{id}.rss"),
                    "interval_minutes": 7 * 24 * 60,
                }
            ],
            members=[{"name": f"Membre {i:03d}", "derive": False} for i in range(220)],
        )
        store.sync_config(weekly, now=T0)
        stamps = [
            datetime.fromisoformat(r[0])
            for r in store.db.execute(
                "SELECT next_check_at FROM sources WHERE id != 'news:membre-003'"
            )
        ]
        assert all(T0 < t <= T0 + timedelta(days=7) for t in stamps)
        assert max(stamps) - min(stamps) > timedelta(days=5)  # spread over the week
    finally:
        store.close()


def test_a_real_first_run_at_220_members_fetches_few_and_veille_sources_shows_when(
    cluster: Config, db_path: Path, server: FixtureServer
) -> None:
    report = run(cluster, db_path=db_path)
    searched = [r for r in server.requests if r.path.startswith("/search/")]
    assert len(searched) <= 10 and len(report.outcomes) == len(searched)
    assert len(report.not_due) == 221 - len(searched)
    shown = subprocess.run(
        [sys.executable, "-m", "pipeline", "sources", "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("news: 221 news-search feeds"))
    found = re.search(r"next run: (\d+); in the next 24 h: (\d+), at most (\d+) in one hour", line)
    assert found, line
    due, coming, busiest = (int(n) for n in found.groups())
    # a feed fetched in this run comes again a day and up to 2 min from now, maybe past 24 h
    assert 221 - len(searched) <= due + coming <= 221
    assert -(-coming // 24) <= busiest < coming // 4  # spread over the day
    assert "news:membre-000" in shown.stdout and " (in " in shown.stdout


def test_failing_feeds_back_off_on_their_own_slots_and_stay_spread(
    cluster: Config, db_path: Path
) -> None:
    store = Store.open(db_path)
    try:
        # every feed fetched at once (named), every one answering 404
        store.sync_config(cluster, now=T0)
        for source in search_feeds(cluster):
            outcome = SourceOutcome(source_id=source.id, status="error", http_status=404)
            when = next_check(cluster, source, outcome, failures=1, now=T0)
            store.save_source(outcome, [], run_id=None, now=T0, next_check_at=when)
        per_pass = [
            len(one_pass(store, cluster, T0 + k * HALF_HOUR, status=404)) for k in range(49)
        ]
        rows = store.db.execute("SELECT id, next_check_at, consecutive_failures FROM sources")
        by_id = {s.id: s for s in search_feeds(cluster)}
        stamps = {row[0]: (datetime.fromisoformat(row[1]), row[2]) for row in rows}
    finally:
        store.close()
    assert max(per_pass) <= 10 and sum(per_pass) == 221  # retried once in the day, spread
    assert all(by_id[i].on_slot(when) and failures == 2 for i, (when, failures) in stamps.items())
