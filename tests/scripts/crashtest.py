"""`make crashtest`: kill veille with SIGKILL at random moments, then check that nothing was lost,
doubled or corrupted.

    python -m tests.scripts.crashtest [--trials 20] [--seed S] [--scenario run|digest-send|alerts|all] [--keep DIR]

The demo corpus is served on 127.0.0.1 (tests/scripts/demo.py's server and configuration). A
clean ``veille run`` into a fresh database gives the reference and the typical run
duration. Then, against one other database, ``veille run`` is started and its whole
process group SIGKILLed after a random delay between 0 and that duration, ``--trials``
times; a last run goes to completion. The two databases must hold the same article
URLs, the same (article URL, source) carriers, the same (article URL, member)
mentions, the same story groupings (as sets of frozensets of article URLs) and the
same article text status, with no duplicate or orphan rows, no run left "running",
and ``PRAGMA integrity_check`` = ok after every kill.

Scenarios are pluggable (``SCENARIOS``): a scenario says how to prepare its world,
which command to kill, how to finish, and how to compare. ``digest-send`` kills
``veille digest --send`` mid-send, one week per trial, against an SMTP server on
loopback: every week must end recorded as sent and received, never recorded as sent
and lost. ``alerts`` kills ``veille run`` with an alert rule posting to a webhook
receiver on loopback: the same stories alerted as in a clean run, each once, every
message recorded as sent and received. ``make crashtest`` runs all three.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML

from pipeline.outputs.digest import Week
from tests.fixture_server import FixtureServer
from tests.scripts.demo import FEEDS, ROOT, WEB, demo_config
from tests.smtp_server import SmtpServer

KILL_GRACE = 10.0  # seconds to wait for a killed process group to be reaped
RUN_TIMEOUT = 300.0  # a run that has not finished by then is a finding too


# ------------------------------------------------------------------ what a database holds


@dataclass(frozen=True)
class Snapshot:
    """What must be the same after crashes as after a clean run (ids and times are not)."""

    articles: frozenset[str]
    carriers: frozenset[tuple[str, str]]  # (article url, source id)
    mentions: frozenset[tuple[str, str]]  # (article url, member id)
    stories: frozenset[frozenset[str]]  # article urls grouped by story
    text_status: frozenset[tuple[str, str | None]]  # (article url, text_status)


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return conn.execute(sql).fetchall()


def snapshot(db_path: Path) -> Snapshot:
    conn = sqlite3.connect(db_path)
    try:
        groups: dict[Any, set[str]] = {}
        for story_id, url in _rows(conn, "SELECT story_id, url FROM articles"):
            groups.setdefault(story_id if story_id is not None else ("none", url), set()).add(url)
        return Snapshot(
            articles=frozenset(r[0] for r in _rows(conn, "SELECT url FROM articles")),
            carriers=frozenset(
                _rows(
                    conn,
                    "SELECT a.url, s.source_id FROM article_sources s "
                    "JOIN articles a ON a.id = s.article_id",
                )
            ),
            mentions=frozenset(
                _rows(
                    conn,
                    "SELECT a.url, m.member_id FROM mentions m JOIN articles a ON a.id = m.article_id",
                )
            ),
            stories=frozenset(frozenset(urls) for urls in groups.values()),
            text_status=frozenset(_rows(conn, "SELECT url, text_status FROM articles")),
        )
    finally:
        conn.close()


def integrity(db_path: Path) -> str:
    """``PRAGMA integrity_check`` plus the full-text index's own check: "ok" or the problems."""
    if not db_path.exists():
        return "ok"  # killed before the database was created
    conn = sqlite3.connect(db_path)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            return "; ".join(problems)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "articles_fts" in tables:
            try:
                conn.execute("INSERT INTO articles_fts (articles_fts) VALUES ('integrity-check')")
            except sqlite3.DatabaseError as exc:
                return f"full-text index: {exc}"
        return "ok"
    finally:
        conn.close()


def consistency(db_path: Path) -> list[str]:
    """Duplicate, orphan and dangling rows, and bookkeeping a killed run could leave wrong."""
    checks = {
        "articles sharing a URL": "SELECT url FROM articles GROUP BY url HAVING count(*) > 1",
        "article URLs known twice": "SELECT url FROM article_urls GROUP BY url HAVING count(*) > 1",
        "article URL rows without their article": (
            "SELECT u.url FROM article_urls u LEFT JOIN articles a ON a.id = u.article_id "
            "WHERE a.id IS NULL"
        ),
        "articles missing from article_urls": (
            "SELECT a.url FROM articles a LEFT JOIN article_urls u ON u.url = a.url "
            "WHERE u.url IS NULL"
        ),
        "articles without a carrier": (
            "SELECT a.url FROM articles a WHERE NOT EXISTS "
            "(SELECT 1 FROM article_sources s WHERE s.article_id = a.id)"
        ),
        "carriers without their article": (
            "SELECT s.article_id FROM article_sources s LEFT JOIN articles a "
            "ON a.id = s.article_id WHERE a.id IS NULL"
        ),
        "mentions without their article": (
            "SELECT m.article_id FROM mentions m LEFT JOIN articles a ON a.id = m.article_id "
            "WHERE a.id IS NULL"
        ),
        "duplicate funding events": (
            "SELECT article_id FROM fundings GROUP BY article_id, member_id, amount, currency "
            "HAVING count(*) > 1"
        ),
        "articles without a story": "SELECT url FROM articles WHERE story_id IS NULL",
        "articles in a missing story": (
            "SELECT a.url FROM articles a LEFT JOIN stories s ON s.id = a.story_id "
            "WHERE a.story_id IS NOT NULL AND s.id IS NULL"
        ),
        "stories without an article": (
            "SELECT s.id FROM stories s WHERE NOT EXISTS "
            "(SELECT 1 FROM articles a WHERE a.story_id = s.id)"
        ),
        "stories with a wrong article_count": (
            "SELECT s.id FROM stories s WHERE s.article_count != "
            "(SELECT count(*) FROM articles a WHERE a.story_id = s.id)"
        ),
        "articles without a signature": (
            "SELECT a.url FROM articles a LEFT JOIN article_signatures g "
            "ON g.article_id = a.id WHERE g.article_id IS NULL"
        ),
        "signatures without their article": (
            "SELECT g.article_id FROM article_signatures g LEFT JOIN articles a "
            "ON a.id = g.article_id WHERE a.id IS NULL"
        ),
        "runs still marked running": "SELECT id FROM runs WHERE status = 'running'",
    }
    conn = sqlite3.connect(db_path)
    try:
        found = []
        for label, sql in checks.items():
            rows = conn.execute(sql).fetchall()
            if rows:
                sample = ", ".join(str(r[0]) for r in rows[:3])
                found.append(f"{label}: {len(rows)} ({sample})")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            found.append(f"foreign key violations: {len(fk)} (first: {fk[0]})")
        return found
    finally:
        conn.close()


def compare(clean: Snapshot, crashed: Snapshot) -> list[str]:
    """One line per difference between the clean database and the crashed one."""
    out: list[str] = []
    for name in ("articles", "carriers", "mentions", "stories", "text_status"):
        want, got = getattr(clean, name), getattr(crashed, name)
        missing, extra = sorted(map(str, want - got)), sorted(map(str, got - want))
        if missing:
            out.append(f"{name}: {len(missing)} missing after crashes, e.g. {missing[0][:200]}")
        if extra:
            out.append(f"{name}: {len(extra)} extra after crashes, e.g. {extra[0][:200]}")
    return out


# ------------------------------------------------------------------ processes


def veille_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


def run_to_end(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def run_and_kill(command: Sequence[str], delay: float) -> int | None:
    """Start ``command`` in its own process group and SIGKILL the whole group after ``delay``
    seconds (parser children included, as the OOM killer or a power cut would). Returns
    the exit status when it finished before the kill, else None."""
    process = subprocess.Popen(
        list(command),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        return process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=KILL_GRACE)
    # the group may hold children that outlived the leader for an instant: reap them too
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return None


# ------------------------------------------------------------------ scenarios


class Scenario:
    """What one kind of crash trial does. Subclasses override the four steps.

    - ``prepare(workdir)``: start what the command needs (servers), write its config.
    - ``command(db_path)``: the command line to run to the end or to kill.
    - ``finish(db_path)``: bring a crashed database to completion (a last clean command).
    - ``check(clean_db, crashed_db)``: differences, one line each (empty when the same).

    A future ``DigestSendScenario`` would start an aiosmtpd server on loopback in
    ``prepare``, kill ``veille digest --send`` mid-send in the trials, run it once more in
    ``finish``, and in ``check`` compare the digests row and count the messages each
    recipient received (at most one per week unless forced).
    """

    name = "scenario"

    def prepare(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        raise NotImplementedError

    def command(self, db_path: Path) -> list[str]:
        raise NotImplementedError

    def finish(self, db_path: Path) -> list[str]:
        """Run to completion; return problems (a failing command is one)."""
        result = run_to_end(self.command(db_path))
        if result.returncode != 0:
            return [f"final {self.name} exited {result.returncode}: {result.stderr[-500:]}"]
        return []

    def check(self, clean_db: Path, crashed_db: Path) -> list[str]:
        raise NotImplementedError

    def progress(self, db_path: Path) -> str:
        """A few words on what the database holds so far, for the trial log."""
        return ""


class RunScenario(Scenario):
    """``veille run`` on the demo corpus (feeds, a press page, a sitemap, news searches,
    broken sources, article pages for their full text)."""

    name = "run"

    def prepare(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        # never 304: every pass reads and writes every source again, so a kill after the
        # first complete pass still lands in parsing and in the store's transactions
        server = stack.enter_context(
            FixtureServer(FEEDS, WEB, rewrite_hosts=True, conditional=False)
        )
        self.config_path = workdir / "sources.yaml"
        yaml = YAML()
        yaml.default_flow_style = False
        with self.config_path.open("w", encoding="utf-8") as handle:
            yaml.dump(demo_config(server), handle)

    def command(self, db_path: Path) -> list[str]:
        return veille_command("run", "--config", str(self.config_path), "--db", str(db_path))

    def finish(self, db_path: Path) -> list[str]:
        # sources that failed in an earlier (completed) pass wait out their backoff; name
        # none of them: the last run covers exactly what a cron run would
        return super().finish(db_path)

    def progress(self, db_path: Path) -> str:
        if not db_path.exists():
            return "no database"
        conn = sqlite3.connect(db_path)
        with contextlib.closing(conn):
            try:
                articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
                runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                return "schema not created yet"
        return f"{articles} articles, {runs} runs"

    def check(self, clean_db: Path, crashed_db: Path) -> list[str]:
        return compare(snapshot(clean_db), snapshot(crashed_db)) + [
            f"crashed database: {p}" for p in consistency(crashed_db)
        ]


class DigestSendScenario(RunScenario):
    """``veille digest --send`` killed mid-send, one ISO week per trial, against an SMTP
    server on loopback that takes a moment to accept each message.

    After the kills every week is sent to completion; each must then be recorded as sent
    and have reached the server at least once: never recorded as sent and lost. A week
    whose send was killed after the server took the message but before the row said so
    is sent again in full (counted, and allowed)."""

    name = "digest-send"

    def prepare(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        super().prepare(workdir, stack)
        template = workdir / "template.db"
        result = run_to_end(super().command(template))
        if result.returncode != 0:
            raise RuntimeError(f"the run that fills the database failed: {result.stderr[-500:]}")
        for name in ("clean.db", "crashed.db"):
            source, target = sqlite3.connect(template), sqlite3.connect(workdir / name)
            with contextlib.closing(source), contextlib.closing(target):
                source.backup(target)
        self.smtp = stack.enter_context(SmtpServer())
        self.smtp.handler.data_delay = 2.0  # a wide window for kills mid-send
        saved = {k: os.environ.get(k) for k in self.smtp.env()}
        os.environ.update(self.smtp.env())  # the commands inherit the SMTP settings

        def restore() -> None:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

        stack.callback(restore)
        # weeks that are over (the demo's articles are in the current one: these are
        # "nothing this week" mails, sent like any other)
        self.this_week = Week.last_complete(datetime.now(UTC), ZoneInfo("Europe/Paris"))
        self.weeks: dict[Path, list[Week]] = {}
        self.first_mail: dict[Path, int] = {}

    def _send(self, db_path: Path, week: Week) -> list[str]:
        return veille_command(
            "digest", "--config", str(self.config_path), "--db", str(db_path),
            "--week", week.label, "--send",
        )  # fmt: skip

    def command(self, db_path: Path) -> list[str]:
        if db_path not in self.weeks:  # the mails before belong to the other database
            self.first_mail[db_path] = len(self.smtp.received)
        weeks = self.weeks.setdefault(db_path, [])
        weeks.append(self.this_week.shift(-len(weeks)))  # a fresh week for every trial
        return self._send(db_path, weeks[-1])

    def finish(self, db_path: Path) -> list[str]:
        problems = []
        for week in self.weeks.get(db_path, []):
            result = run_to_end(self._send(db_path, week))
            if result.returncode != 0:
                problems.append(
                    f"final send of {week} exited {result.returncode}: {result.stderr[-300:]}"
                )
        return problems

    def progress(self, db_path: Path) -> str:
        conn = sqlite3.connect(db_path)
        with contextlib.closing(conn):
            try:
                rows = conn.execute(
                    "SELECT status, count(*) FROM digests GROUP BY status"
                ).fetchall()
            except sqlite3.OperationalError:
                return "no digests yet"
        received = len(self.smtp.received)
        return ", ".join(f"{n} {status}" for status, n in rows) + f"; {received} mails received"

    def check(self, clean_db: Path, crashed_db: Path) -> list[str]:
        mine = self.smtp.received[self.first_mail.get(crashed_db, 0) :]
        per_week = Counter(str(m.message["X-Veille-Week"]) for m in mine)
        problems: list[str] = []
        self.resent = 0
        conn = sqlite3.connect(crashed_db)
        with contextlib.closing(conn):
            rows = dict(conn.execute("SELECT week, status FROM digests").fetchall())
        for week in self.weeks.get(crashed_db, []):
            status, received = rows.get(week.label), per_week[week.label]
            if status != "sent":
                problems.append(f"{week}: recorded as {status!r} after the final send")
            if received == 0:
                problems.append(f"{week}: recorded as {status!r} but never received: lost")
            self.resent += max(0, received - 1)
        return problems + [f"crashed database: {p}" for p in consistency(crashed_db)]


class AlertsScenario(RunScenario):
    """``veille run`` with an alert rule whose destination is a webhook receiver on loopback
    that takes a moment to answer each post, so kills land while alerts are sent too.

    Each database has its own rule variable and receiver path. After the kills and a last
    run: the stories alerted must be those of the clean run, each told by exactly one
    message, every message recorded as sent and received at least once: never recorded as
    sent and lost, never a story sent twice except a message whose send was killed after
    the receiver took it and before the ledger said so (sent again, marked; counted)."""

    name = "alerts"
    DELAY = 0.3  # seconds the receiver waits before answering each post

    def prepare(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        from tests.alert_receiver import AlertReceiver

        super().prepare(workdir, stack)
        self.hook = stack.enter_context(AlertReceiver())
        self.hook.delay = self.DELAY
        yaml = YAML()
        yaml.default_flow_style = False
        base = YAML(typ="safe", pure=True).load(self.config_path.read_text(encoding="utf-8"))
        self.configs: dict[str, Path] = {}
        saved: dict[str, str | None] = {}
        for name in ("clean", "crashed"):
            variable = f"VEILLE_ALERTS_CRASHTEST_{name.upper()}"
            # the corpus is dated November 2026: a wide window keeps its stories news; every
            # story alone, so the sending phase is long enough for kills to land in it
            rule = {"id": "comms", "to": variable, "max_age_days": 3650, "max_per_run": 100}
            self.configs[name] = workdir / f"sources-{name}.yaml"
            with self.configs[name].open("w", encoding="utf-8") as handle:
                yaml.dump({**base, "alerts": [rule]}, handle)
            saved[variable] = os.environ.get(variable)
            os.environ[variable] = self.hook.apprise_url(name)

        def restore() -> None:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

        stack.callback(restore)

    def command(self, db_path: Path) -> list[str]:
        config = self.configs[db_path.stem]
        return veille_command("run", "--config", str(config), "--db", str(db_path))

    def progress(self, db_path: Path) -> str:
        done = super().progress(db_path)
        if not db_path.exists():
            return done
        conn = sqlite3.connect(db_path)
        with contextlib.closing(conn):
            try:
                rows = conn.execute(
                    "SELECT status, count(*) FROM alerts GROUP BY status"
                ).fetchall()
            except sqlite3.OperationalError:
                return done
        posts = sum(1 for p in self.hook.posts if p.path == f"/{db_path.stem}")
        alerts = ", ".join(f"{n} {status}" for status, n in rows) or "none"
        return f"{done}; alerts {alerts}; {posts} received"

    def _told(self, db_path: Path) -> tuple[dict[frozenset[str], int], list[tuple[str, str]]]:
        """(story as its article URLs -> messages telling it, (status, title) per message)."""
        conn = sqlite3.connect(db_path)
        with contextlib.closing(conn):
            urls = dict(conn.execute("SELECT id, url FROM articles").fetchall())
            story_of: dict[str, frozenset[str]] = {}
            for story in snapshot(db_path).stories:
                for url in story:
                    story_of[url] = story
            told: Counter[frozenset[str]] = Counter()
            messages = []
            for status, title, articles in conn.execute(
                "SELECT status, title, articles FROM alerts WHERE rule_id = 'comms'"
            ):
                messages.append((status, title))
                stories = {story_of[urls[a]] for a in json.loads(articles)}
                told.update(stories)
        return dict(told), messages

    def check(self, clean_db: Path, crashed_db: Path) -> list[str]:
        problems = super().check(clean_db, crashed_db)
        clean_told, _ = self._told(clean_db)
        crashed_told, messages = self._told(crashed_db)
        if not clean_told:
            problems.append("the clean run sent no alert: nothing was tested")
        missing = set(clean_told) - set(crashed_told)
        extra = set(crashed_told) - set(clean_told)
        if missing:
            problems.append(f"alerts: {len(missing)} stories never alerted after crashes")
        if extra:
            problems.append(f"alerts: {len(extra)} stories alerted only after crashes")
        twice = [s for s, n in crashed_told.items() if n > 1]
        if twice:
            problems.append(f"alerts: {len(twice)} stories told by more than one message")
        received = Counter(
            p.body.get("title", "") for p in self.hook.accepted if p.path == "/crashed"
        )
        self.resent = 0
        self.messages = len(messages)
        for status, title in messages:
            if status != "sent":
                problems.append(f"alert {title[:60]!r}: {status!r} after the final run")
            elif received[title] == 0:
                problems.append(f"alert {title[:60]!r}: recorded as sent but never received: lost")
            self.resent += max(0, received[title] - 1)
        return problems


SCENARIOS: dict[str, type[Scenario]] = {
    "run": RunScenario,
    "digest-send": DigestSendScenario,
    "alerts": AlertsScenario,
}
WHAT_IS_COMPARED = {
    "run": "articles, carriers, mentions, stories, text",
    "digest-send": "every week recorded as sent and received at least once",
    "alerts": "articles, carriers, mentions, stories, text; the stories alerted, once each, "
    "every message recorded as sent and received",
}


# ------------------------------------------------------------------ the trials


@dataclass
class CrashReport:
    scenario: str
    trials: int = 0
    killed: int = 0  # trials where the kill landed before the command finished
    finished_early: int = 0
    delays: list[float] = field(default_factory=list)
    typical_duration: float = 0.0
    integrity_failures: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    interrupted_runs: int = 0
    notes: list[str] = field(default_factory=list)  # scenario-specific figures

    @property
    def ok(self) -> bool:
        return not self.integrity_failures and not self.differences

    def summary(self) -> str:
        lines = [
            f"crashtest {self.scenario}: {self.trials} trials, {self.killed} killed mid-way, "
            f"{self.finished_early} finished before the kill "
            f"(delays 0-{self.typical_duration:.1f} s: the clean run's duration, then the last "
            "uninterrupted pass's)",
            *(f"  {note}" for note in self.notes),
            f"  integrity: {'ok after every kill' if not self.integrity_failures else 'FAILED'}",
        ]
        lines += [f"    {p}" for p in self.integrity_failures]
        lines.append(
            f"  differences from a clean run: {len(self.differences)}"
            + ("" if self.differences else f" ({WHAT_IS_COMPARED.get(self.scenario, '')})")
        )
        lines += [f"    {d}" for d in self.differences]
        lines.append("crashtest: " + ("OK" if self.ok else "FAILED"))
        return "\n".join(lines)


def crash_trials(
    *,
    trials: int = 20,
    seed: int | None = None,
    scenario: str = "run",
    workdir: Path | None = None,
    log: Any = None,
) -> CrashReport:
    """Run the trials of one scenario; ``log`` (a callable) receives a line per trial."""
    say = log or (lambda line: None)
    rng = random.Random(seed)
    report = CrashReport(scenario=scenario)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crashtest-")))
        workdir.mkdir(parents=True, exist_ok=True)
        world = SCENARIOS[scenario]()
        world.prepare(workdir, stack)
        clean_db, crashed_db = workdir / "clean.db", workdir / "crashed.db"
        # 1. the reference, and how long one run takes
        started = time.monotonic()
        result = run_to_end(world.command(clean_db))
        report.typical_duration = time.monotonic() - started
        if result.returncode != 0:
            report.differences.append(
                f"clean {scenario} exited {result.returncode}: {result.stderr[-500:]}"
            )
            return report
        say(f"clean {scenario}: {report.typical_duration:.1f} s")
        # 2. the same command, killed at random moments, against one database
        # The typical duration is the clean run's until a trial finishes before its kill;
        # then that trial's (passes over an already filled database are shorter).
        typical = report.typical_duration
        for trial in range(1, trials + 1):
            delay = rng.uniform(0, typical)
            report.delays.append(delay)
            before = world.progress(crashed_db)
            started = time.monotonic()
            status = run_and_kill(world.command(crashed_db), delay)
            report.trials += 1
            if status is None:
                report.killed += 1
            else:
                report.finished_early += 1
                typical = time.monotonic() - started
            verdict = integrity(crashed_db)
            if verdict != "ok":
                report.integrity_failures.append(
                    f"trial {trial} (kill at {delay:.2f} s): {verdict}"
                )
            outcome = "killed" if status is None else f"finished first (exit {status})"
            say(
                f"trial {trial:3}: kill at {delay:5.2f} s, {outcome}, integrity {verdict}; "
                f"{before} -> {world.progress(crashed_db)}"
            )
        # 3. one last command to completion, then compare with the reference
        report.differences += world.finish(crashed_db)
        verdict = integrity(crashed_db)
        if verdict != "ok":
            report.integrity_failures.append(f"after the final {scenario}: {verdict}")
        report.differences += world.check(clean_db, crashed_db)
        if isinstance(world, DigestSendScenario):
            report.notes.append(
                f"weeks sent: {len(world.weeks.get(crashed_db, []))}; sent again in full after "
                f"a kill that came after the server took the message: {world.resent} (allowed)"
            )
        if isinstance(world, AlertsScenario):
            report.notes.append(
                f"alert messages: {world.messages}; sent again after a kill that came after the "
                f"receiver took the message: {world.resent} (allowed, marked as sent again)"
            )
        if scenario in ("run", "alerts") and crashed_db.exists():
            conn = sqlite3.connect(crashed_db)
            with contextlib.closing(conn):
                statuses = Counter(r[0] for r in conn.execute("SELECT status FROM runs"))
            report.interrupted_runs = statuses.get("interrupted", 0)
            report.notes.append(f"runs marked interrupted afterwards: {report.interrupted_runs}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.scripts.crashtest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--trials", type=int, default=20, help="kills per scenario (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--scenario", choices=[*sorted(SCENARIOS), "all"], default="all", help="default: all"
    )
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR and keep it")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    scenarios = sorted(SCENARIOS, reverse=True) if args.scenario == "all" else [args.scenario]
    reports = []
    for scenario in scenarios:
        print(f"crashtest {scenario}: {args.trials} trials, seed {seed}", flush=True)
        report = crash_trials(
            trials=args.trials,
            seed=seed,
            scenario=scenario,
            workdir=args.keep / scenario if args.keep else None,
            log=lambda line: print(line, flush=True),
        )
        reports.append(report)
    print("", flush=True)
    for report in reports:
        print(report.summary(), flush=True)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
