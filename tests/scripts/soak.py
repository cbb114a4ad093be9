"""`make soak`: a week of veille on a simulated clock, under faults, then checks.

    python -m tests.scripts.soak [--days 7.5] [--sources 3000] [--seed 2026] [--keep DIR]

veille runs as it would on a server for a week: a pass every 30 minutes started as cron
starts it (a ``veille run`` process each time), and for a stretch of the week as the
``veille schedule`` daemon (APScheduler 3), over thousands of sources on loopback that
publish news as the simulated clock advances (tests/scripts/soak_web.py), 5 % of them
from the hostile matrix of tests/fixture_server.py, some flapping between 200 and 500,
some answering 304 for days. The digest goes out every Monday to a real SMTP server on
loopback (aiosmtpd), from cron (``veille digest --send`` at 07:30 and every hour after
it that Monday, as operating.md suggests) and from the daemon in its stretch; an alert
rule posts to a webhook receiver on loopback.

The clock: every veille process is started through tests/scripts/soak_clock.py, which
travels with time-machine to the time the driver gives it and then calls veille's own
``main``. The default week starts on Monday 19 October 2026 at 00:00 in Paris and runs
7.5 days, to the Monday after Europe/Paris leaves summer time (25 October, 03:00 CEST
becomes 02:00 CET) past its 07:30 digest; the daemon has the clock change and that
Monday's digest.

Faults, each timed by what it interrupts (``WEEK_PLAN``): SIGKILL of the process group
in the fetch (when the web has served the n-th feed or article page of the pass), in the
write (at the n-th change of the WAL file during the pass), at start-up (after a delay),
in a digest send (when the SMTP server gets the message's DATA, which it then drops) and
in an alert send (when the webhook receiver gets the post, which it keeps: the documented
at-least-once); the SMTP server down for a day; the alert receiver answering 500 for
hours; the database's disk full for one pass (``PRAGMA max_page_count`` on that pass's
connections). A daemon killed is started again, as systemd's ``Restart=`` would.

After a last pass over every publishing source with the faults off, it checks (exit 1
on any failure, each with a line): every entry published during the week stored exactly
once; each week's digest received exactly once; each alert story told by one message,
received, and received twice only where a kill hit that very send; no lock held and no
run left running; the daemon's memory flat after warm-up; the database's size in line
with its rows, its WAL checkpointed; pass durations that do not grow;
``PRAGMA integrity_check`` after every kill and at the end. It prints the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import psutil  # type: ignore[import-untyped]
from ruamel.yaml import YAML

from pipeline.outputs.digest import Week
from pipeline.settings.config import load_config
from pipeline.sources.dedupe import canonical_url
from tests.alert_receiver import AlertReceiver, Post
from tests.fixture_server import FixtureServer
from tests.scripts.crashtest import consistency, integrity
from tests.scripts.soak_web import build_world
from tests.smtp_server import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
FEEDS = (
    ROOT / "tests" / "fixtures" / "demo" / "feeds"
)  # the fixture server's files (broken-html.rss)
DIRECTORY = ROOT / "tests" / "fixtures" / "demo" / "annuaire.csv"
ZONE = ZoneInfo("Europe/Paris")
TICK = 1800  # cron's */30
DEFAULT_START = "2026-10-19T00:00"  # a Monday, Paris time: the week of the autumn clock change
ALERT_VARIABLE = "VEILLE_ALERTS_SOAK"
RECIPIENT = "communication@example.org"
PASS_TIMEOUT = 900.0  # a pass still running after this long is a finding (run_timeout is 15 min)
DISK_FULL_PASSES = 8  # passes the disk stays full for at most, waiting for one to need a page
WARM_UP = 4  # daemon memory samples left out at the start of each life of the daemon


@dataclass(frozen=True)
class Event:
    """A fault or a change of the world, ``hours`` after the soak's start."""

    hours: float
    what: str  # kill, smtp-down, smtp-up, hook-500, hook-200, disk-full
    how: str = ""  # for a kill: fetch, pages, write, delay, digest, alert
    arg: float = 0.0  # requests (fetch, pages), WAL changes (write), seconds (delay)
    note: str = ""


@dataclass(frozen=True)
class Plan:
    start: str  # local time in Paris
    days: float
    daemon: tuple[float, float]  # hours after the start: the daemon's stretch
    events: tuple[Event, ...]


# The week: Monday 19 October 2026 00:00 (CEST) to Monday 26 October 12:00 (CET). Hours
# count from the start; 153 h is Sunday 25 at 08:00 CET, 147 h the clock change.
WEEK_PLAN = Plan(
    start=DEFAULT_START,
    days=7.5,
    daemon=(138 - 5 / 60, 178.0),  # Saturday 17:55 CEST to Monday 09:00 CET
    events=(
        Event(0.0, "kill", "write", 1500, "the first pass (the day's backlog), in its writes"),
        Event(0.5, "kill", "fetch", 150, "the second pass, in its feeds"),
        Event(7.0, "kill", "digest", note="Monday's digest from cron, as the server takes DATA"),
        Event(10.0, "kill", "alert", note="a pass sending an alert, as the webhook takes it"),
        Event(26.0, "kill", "delay", 0.8, "a pass at start-up"),
        Event(36.0, "hook-500", note="the webhook answers 500 (Tuesday 12:00 to 15:00)"),
        Event(39.0, "hook-200"),
        Event(44.0, "kill", "alert", note="a pass sending an alert, as the webhook takes it"),
        Event(50.0, "kill", "pages", 5, "a pass fetching article pages"),
        Event(60.0, "kill", "fetch", 30, "two passes in a row, in their feeds (1)"),
        Event(60.5, "kill", "fetch", 30, "two passes in a row, in their feeds (2)"),
        Event(80.0, "kill", "write", 3, "a pass, in its writes"),
        Event(90.0, "disk-full", note="the database's disk full, until a pass needs a new page"),
        Event(140.0, "kill", "fetch", 40, "the daemon, in a pass's feeds"),
        Event(153.0, "smtp-down", note="the SMTP server down (Sunday 08:00 to Monday 08:15)"),
        Event(160.0, "kill", "alert", note="the daemon, sending an alert"),
        Event(177.25, "smtp-up"),
        Event(177.25, "kill", "digest", note="the daemon's digest send, as the server takes DATA"),
    ),
)

# One day for the test suite: Sunday 25 October 09:00 (after the clock change) to Monday
# 09:00, cron until 17:00, then the daemon with that Monday's digest.
DAY_PLAN = Plan(
    start="2026-10-25T09:00",
    days=1.0,
    daemon=(8 - 5 / 60, 24.0),
    events=(
        Event(0.0, "kill", "write", 100, "the first pass, in its writes"),
        Event(0.5, "kill", "fetch", 20, "the second pass, in its feeds"),
        Event(1.0, "kill", "alert", note="a pass sending an alert"),
        Event(2.0, "hook-500", note="the webhook answers 500 for two hours"),
        Event(4.0, "hook-200"),
        Event(4.5, "kill", "delay", 0.8, "a pass at start-up"),
        Event(5.5, "disk-full", note="the database's disk full, until a pass needs a new page"),
        Event(6.0, "kill", "pages", 2, "a pass fetching article pages"),
        Event(10.0, "kill", "fetch", 10, "the daemon, in a pass's feeds"),
        Event(20.0, "smtp-down", note="the SMTP server down (Monday 05:00 to 07:45)"),
        Event(22.75, "smtp-up"),
        Event(22.75, "kill", "digest", note="the daemon's digest send"),
    ),
)


@dataclass
class Kill:
    how: str
    note: str
    armed_at: float  # simulated epoch
    fired_at: float | None = None  # simulated epoch
    target: str = ""  # run, digest, daemon
    detail: str = ""


@dataclass
class PassRecord:
    at: float  # simulated epoch of the tick
    role: str  # run, digest, drain
    seconds: float
    code: int | None
    killed: bool = False
    disk_full: bool = False
    line: str = ""


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'}  {message}", flush=True)
        if not ok:
            self.failures.append(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone(ZONE).strftime("%a %d %H:%M %Z")


def slope_per_day(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (epoch, value) points, per day."""
    if len(points) < 3:
        return 0.0
    xs = [p[0] / 86400 for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def tree_rss(pid: int) -> tuple[float, float]:
    """(MB resident of the process alone, MB of the process and its descendants)."""
    try:
        process = psutil.Process(pid)
        own = process.memory_info().rss
        total = own
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    except psutil.Error:
        return 0.0, 0.0
    return own / 1e6, total / 1e6


def killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Soak:
    def __init__(self, args: argparse.Namespace, plan: Plan, workdir: Path) -> None:
        self.args = args
        self.plan = plan
        self.workdir = workdir
        self.db = workdir / "veille.db"
        self.config_path = workdir / "sources.yaml"
        self.log = (workdir / "veille.log").open("a", encoding="utf-8")
        start = datetime.fromisoformat(args.start or plan.start).replace(tzinfo=ZONE)
        self.start = start.timestamp()
        self.end = self.start + (args.days if args.days is not None else plan.days) * 86400
        self.daemon_from = self.start + plan.daemon[0] * 3600
        self.daemon_to = min(self.end, self.start + plan.daemon[1] * 3600)
        self.events = sorted(
            (e for e in plan.events if self.start + e.hours * 3600 < self.end),
            key=lambda e: e.hours,
        )
        self.applied = 0
        self.kills: list[Kill] = []
        self.pending: list[Kill] = []  # kills of the next veille process (fetch, write ...)
        self.hooked: dict[str, Kill] = {}  # kills fired by a server hook (digest, alert)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.passes: list[PassRecord] = []
        self.memory: list[tuple[int, float, float, float]] = []  # life, epoch, own MB, tree MB
        self.daemon_ticks: list[float] = []
        self.daemon_life = 0
        self.wal_max = 0
        self.problems: list[str] = []  # found during the week (exit codes, integrity)
        self.lock = threading.RLock()
        self.disk_full_next: int | None = None
        self.sim_now = self.start
        self.sim_set = time.monotonic()
        self.daemon_done = threading.Event()
        self.watch: dict[str, Any] | None = None  # a write or delay kill being watched
        self.stop_watching = threading.Event()
        self.alert_killed_posts: list[Post] = []
        self.disk_full_passes: list[PassRecord] = []

    # ------------------------------------------------------------ the world

    def prepare(self, stack: contextlib.ExitStack) -> None:
        self.smtp = stack.enter_context(SmtpServer())
        self.smtp.handler.on_data = self._smtp_data
        self.hook = stack.enter_context(AlertReceiver())
        self.hook.on_post = self._alert_post
        self.hostile = stack.enter_context(FixtureServer(FEEDS))
        self.web_port = free_port()
        # the configuration: sources.yaml's members, topics and outlets; the demo's directory
        yaml_safe = YAML(typ="safe", pure=True)
        base = yaml_safe.load((ROOT / "sources.yaml").read_text(encoding="utf-8"))
        base.pop("sources", None)
        base["sources"] = [{"id": "placeholder", "kind": "feed", "url": "http://127.0.0.1:9/x.xml"}]
        self._write_config(base)
        self.veille_sync("members", "import", str(DIRECTORY), "--config", str(self.config_path))
        config = load_config(self.config_path)
        members = [m.name for m in config.members if m.kind == "member"]
        slugs = [m.slug for m in config.members if m.kind == "member"]
        self.world = build_world(
            members=members,
            seed=self.args.seed,
            sources=self.args.sources,
            start=int(self.start),
            end=int(self.end),
        )
        # two members a little down the list: a story or two a day each
        self.alert_members = [slugs[24], slugs[31]]
        sources = []
        for s in self.world.sources:
            if s.kind == "hostile":
                url = f"{self.hostile.base}{s.path}"
            else:
                url = f"http://{s.host}:{self.web_port}{s.path}"
            # the keys an operator writes for a feed, no more: every `veille run` from cron
            # reads the whole file, in pure Python (about 1 s per 100 KB here)
            entry: dict[str, Any] = {
                "id": s.id,
                "kind": "feed",
                "url": url,
                "interval_minutes": s.interval,
            }
            if not s.pages:
                entry["fetch_articles"] = False
            sources.append(entry)
        updated = yaml_safe.load(self.config_path.read_text(encoding="utf-8"))
        updated["sources"] = sources
        updated["digest"] = {
            **updated.get("digest", {}),
            "recipients": [RECIPIENT],
            "from": "veille@example.org",
        }
        updated["schedule"] = {
            "run": "*/30 * * * *",
            "digest": "30 7 * * mon",
            "timezone": "Europe/Paris",
        }
        updated["alerts"] = [{"id": "comms", "to": ALERT_VARIABLE, "members": self.alert_members}]
        updated["network"] = {
            "contact": "https://www.atlanpolebiotherapies.com",
            "allow_private": True,  # every source is on loopback
            "per_host_concurrency": 4,
            "per_host_delay": 0,
            "connect_timeout": 2,
            "read_timeout": 2,
            "total_timeout": 5,
            "retries": 1,
            "retry_backoff": 0.2,
        }
        self._write_config(updated)
        self.env = {
            **os.environ,
            **self.smtp.env(),
            ALERT_VARIABLE: self.hook.apprise_url("comms"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("SOAK_PAGE_MARGIN", None)
        self.veille_sync("check", "--config", str(self.config_path))
        world_path = self.workdir / "world.json"
        world_path.write_text(
            json.dumps({"world": self.world.to_json(), "members": members}), encoding="utf-8"
        )
        web = subprocess.Popen(
            [sys.executable, "-m", "tests.scripts.soak_web", str(world_path),
             "--port", str(self.web_port)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

        def stop_web() -> None:
            web.terminate()
            web.wait(10)

        stack.callback(stop_web)
        line = web.stdout.readline() if web.stdout else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"the soak web did not start: {line!r}")
        self.web_pid = web.pid
        # the daemon's clock asks the driver before each move
        control = self._control_server()
        stack.callback(control.shutdown)
        watcher = threading.Thread(target=self._watch_files, daemon=True)
        watcher.start()
        stack.callback(self.stop_watching.set)

    def _write_config(self, data: dict[str, Any]) -> None:
        yaml = YAML()
        yaml.default_flow_style = None  # one line per source, as sources.yaml writes them
        yaml.width = 4096
        with self.config_path.open("w", encoding="utf-8") as handle:
            handle.write("# written by the soak (tests/scripts/soak.py)\n")
            yaml.dump(data, handle)

    def veille_sync(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=getattr(self, "env", None),
        )
        if result.returncode != 0:
            raise RuntimeError(f"veille {' '.join(args)}: {result.stderr[-800:]}")

    def web(self, path: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.web_port}/_soak/{path}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    # ------------------------------------------------------------ the clock and the faults

    def now(self) -> float:
        """The simulated time: the last tick, plus the real time since."""
        return self.sim_now + (time.monotonic() - self.sim_set)

    def set_time(self, epoch: float) -> None:
        self.sim_now, self.sim_set = epoch, time.monotonic()
        self.web(f"time?t={int(epoch)}")

    def apply_events(self, epoch: float) -> None:
        """The world's changes and the faults due by ``epoch``."""
        while self.applied < len(self.events):
            event = self.events[self.applied]
            if self.start + event.hours * 3600 > epoch:
                return
            self.applied += 1
            at = self.start + event.hours * 3600
            if event.what == "smtp-down":
                self.smtp.pause()
            elif event.what == "smtp-up":
                self.smtp.resume()
            elif event.what == "hook-500":
                self.hook.status = 500
            elif event.what == "hook-200":
                self.hook.status = 200
            elif event.what == "disk-full":
                self.disk_full_next = int(event.arg)
            elif event.what == "kill":
                kill = Kill(event.how, event.note, at)
                self.kills.append(kill)
                if event.how in ("digest", "alert"):
                    self.hooked[event.how] = kill
                else:
                    self.pending.append(kill)
            print(f"  {local(at)}  {event.what} {event.how} {event.note}".rstrip(), flush=True)

    def arm(self, role: str, process: subprocess.Popen[bytes]) -> None:
        """Give the next pending kill (fetch, pages, write, delay) to this process."""
        if not self.pending:
            return
        kill = self.pending.pop(0)
        kill.target = role
        if kill.how in ("fetch", "pages"):
            prefix = "/f/" if kill.how == "fetch" else "/a/"
            self.web(f"arm?pgid={process.pid}&after={int(self._arg(kill))}&prefix={prefix}")
            self.watch = {"kill": kill, "pid": process.pid, "web": True}
        elif kill.how == "write":
            self.watch = {
                "kill": kill,
                "pid": process.pid,
                "articles": int(self._arg(kill)),
                "from": self._last_article(),
            }
        elif kill.how == "delay":
            self.watch = {
                "kill": kill,
                "pid": process.pid,
                "deadline": time.monotonic() + self._arg(kill),
            }

    def _arg(self, kill: Kill) -> float:
        for event in self.events:
            if event.what == "kill" and self.start + event.hours * 3600 == kill.armed_at:
                return event.arg
        return 1.0

    def _fired(self, kill: Kill, detail: str) -> None:
        kill.fired_at = self.now()
        kill.detail = detail
        print(
            f"  {local(kill.fired_at)}  SIGKILL {kill.target}: {kill.note} ({detail})", flush=True
        )

    def _last_article(self) -> int:
        """The newest article's id, read as a reader would (0 before there is any)."""
        if not self.db.exists():
            return 0
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
            with contextlib.closing(conn):
                return int(conn.execute("SELECT coalesce(max(id), 0) FROM articles").fetchone()[0])
        except sqlite3.Error:
            return 0

    def _watch_files(self) -> None:
        """The WAL's largest size (polled every 5 ms), and the write and delay kills: a
        write kill fires once the pass has committed its n-th new article, while its next
        saves are in their open transaction."""
        wal = Path(f"{self.db}-wal")
        turn = 0
        while not self.stop_watching.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.wal_max = max(self.wal_max, wal.stat().st_size)
            watch = self.watch
            turn += 1
            if watch is not None and "articles" in watch and turn % 4 == 0:
                if self._last_article() - watch["from"] >= watch["articles"]:
                    killpg(watch["pid"])
                    self.watch = None
                    self._fired(watch["kill"], f"{watch['articles']} new articles committed")
            elif (
                watch is not None and "deadline" in watch and time.monotonic() >= watch["deadline"]
            ):
                killpg(watch["pid"])
                self.watch = None
                self._fired(watch["kill"], "after its delay")
            time.sleep(0.005)

    def _target(self, *roles: str) -> tuple[str, int] | None:
        for role in roles:
            process = self.procs.get(role)
            if process is not None and process.poll() is None:
                return role, process.pid
        return None

    def _smtp_data(self) -> bool:
        kill = self.hooked.get("digest")
        target = self._target("digest", "daemon")
        if kill is None or target is None:
            return False
        del self.hooked["digest"]
        kill.target = target[0]
        killpg(target[1])
        self._fired(kill, "the SMTP server got the DATA and dropped it")
        return True

    def _alert_post(self, post: Post) -> None:
        kill = self.hooked.get("alert")
        target = self._target("run", "daemon")
        if kill is None or target is None or self.hook.status >= 400:
            return
        del self.hooked["alert"]
        kill.target = target[0]
        killpg(target[1])
        title = str(post.body.get("title", ""))
        self.alert_killed_posts.append(post)
        self._fired(kill, f"the webhook got {title[:50]!r} and keeps it")

    # ------------------------------------------------------------ veille processes

    def start_veille(
        self, role: str, args: list[str], at: float, **extra: str
    ) -> subprocess.Popen[bytes]:
        env = {**self.env, "SOAK_NOW": datetime.fromtimestamp(at, UTC).isoformat(), **extra}
        self.log.write(f"\n== {local(at)} {role}: veille {' '.join(args[:1])}\n")
        self.log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.scripts.soak_clock", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.procs[role] = process
        return process

    def finish(self, role: str, process: subprocess.Popen[bytes], at: float, began: float,
               disk_full: bool = False) -> PassRecord:  # fmt: skip
        try:
            _, err = process.communicate(timeout=PASS_TIMEOUT)
        except subprocess.TimeoutExpired:
            killpg(process.pid)
            _, err = process.communicate()
            self.problems.append(f"{local(at)} {role}: still running after {PASS_TIMEOUT:.0f} s")
        killpg(process.pid)  # children the leader left (a killed group is already gone)
        text = err.decode("utf-8", "replace")
        self.log.write(text)
        self.log.flush()
        code = process.returncode
        killed = code == -signal.SIGKILL
        lines = [ln for ln in text.splitlines() if ln.strip()]
        record = PassRecord(at, role, time.monotonic() - began, code, killed, disk_full,
                            lines[-1] if lines else "")  # fmt: skip
        self.passes.append(record)
        watch = self.watch
        if watch is not None and watch["pid"] == process.pid:
            self.watch = None
            if watch.get("web"):
                kills = self.web("disarm")["kills"]
                if killed and kills and kills[-1]["pid"] == process.pid:
                    self._fired(watch["kill"], f"the web served {kills[-1]['path']}")
                    watch = None
            if watch is not None:
                # the process ended before its kill came: the next process gets it
                self.pending.insert(0, watch["kill"])
        # a completed pass in which every source that ran failed exits 1 (documented)
        complete = code == 1 and role != "digest" and lines and "veille run" in lines[-1]
        if not killed and code != 0 and not disk_full and not complete:
            self.problems.append(f"{local(at)} {role} exited {code}: {text.strip()[-600:]}")
        if "Traceback" in text:
            # (a full disk once left the other sources of its pass reported as internal
            # errors, each with a traceback; run.run_sources now cancels them)
            self.problems.append(f"{local(at)} {role}: a traceback on stderr: {text[-600:]}")
        return record

    def after_kill(self, at: float) -> None:
        state = integrity(self.db)
        if state != "ok":
            self.problems.append(f"{local(at)}: integrity after a kill: {state}")

    def cron_digest_due(self, epoch: float) -> bool:
        """cron's ``30 7-10 * * 1`` in Paris: the digest at 07:30 Monday, then every hour
        until 10:30 for a send that failed (operating.md: "or every hour on Monday")."""
        moment = datetime.fromtimestamp(epoch, UTC).astimezone(ZONE)
        return moment.weekday() == 0 and moment.minute == 30 and 7 <= moment.hour <= 10

    def cron_tick(self, at: float) -> None:
        self.set_time(at)
        self.apply_events(at)
        began = time.monotonic()
        extra = {}
        # the disk stays full until a pass needs a page more than the file has: a pass
        # whose writes fit in its pages' free room completes, as on a real full disk
        disk_full = self.disk_full_next is not None
        if disk_full:
            extra["SOAK_PAGE_MARGIN"] = str(self.disk_full_next)
        config = ["--config", str(self.config_path), "--db", str(self.db)]
        run = self.start_veille("run", ["run", *config], at, **extra)
        if not disk_full:  # that pass meets its own fault; a kill waits for the next
            self.arm("run", run)
        digest = None
        if self.cron_digest_due(at):
            digest = self.start_veille("digest", ["digest", "--send", *config], at)
        records = [self.finish("run", run, at, began, disk_full)]
        if digest is not None:
            records.append(self.finish("digest", digest, at, began))
        if any(r.killed for r in records):
            self.after_kill(at)
        if disk_full:
            self.disk_full_passes.append(records[0])
            hit = records[0].code == 1 and "disk is full" in records[0].line
            if hit or len(self.disk_full_passes) >= DISK_FULL_PASSES:
                self.disk_full_next = None
            print(f"  {local(at)}  disk full: the pass exited {records[0].code}: "
                  f"{records[0].line[:160]}", flush=True)  # fmt: skip

    # ------------------------------------------------------------ the daemon

    def _control_server(self) -> ThreadingHTTPServer:
        soak = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                to = float(parse_qs(parts.query)["to"][0])
                body = json.dumps(soak.advance(to)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.control_url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def advance(self, to: float) -> dict[str, bool]:
        """The daemon is idle and its next job is at ``to``: sample, set the world, go."""
        with self.lock:
            daemon = self.procs.get("daemon")
            if daemon is not None:
                own, tree = tree_rss(daemon.pid)
                self.memory.append((self.daemon_life, self.now(), own, tree))
            if to >= self.daemon_to:
                self.daemon_done.set()
                return {"go": False}
            self.set_time(to)
            self.apply_events(to)
            if daemon is not None:
                self.arm("daemon", daemon)
            self.daemon_ticks.append(to)
            return {"go": True}

    def daemon_stretch(self) -> None:
        at = self.daemon_from
        print(f"  {local(at)}  veille schedule starts (the daemon until {local(self.daemon_to)})")
        config = ["--config", str(self.config_path), "--db", str(self.db)]
        while True:
            began = time.monotonic()
            self.set_time(at)
            daemon = self.start_veille("daemon", ["schedule", *config], at,
                                       SOAK_CONTROL=self.control_url)  # fmt: skip
            while daemon.poll() is None and not self.daemon_done.is_set():
                time.sleep(0.1)
            if self.daemon_done.is_set():
                daemon.send_signal(signal.SIGTERM)
                record = self.finish("daemon", daemon, at, began)
                print(f"  {local(self.daemon_to)}  veille schedule stopped (SIGTERM): exit "
                      f"{record.code}", flush=True)  # fmt: skip
                return
            record = self.finish("daemon", daemon, at, began)
            if not record.killed:
                self.problems.append(f"the daemon exited {record.code} by itself")
                return
            self.after_kill(self.now())
            # systemd's Restart=on-failure: a minute later
            at = self.now() + 60
            self.daemon_life += 1
            print(f"  {local(at)}  veille schedule started again", flush=True)

    # ------------------------------------------------------------ the week

    def week(self) -> None:
        tick = self.start
        total = int((self.end - self.start) // TICK)
        began = time.monotonic()
        done = 0
        while tick < self.end:
            if self.daemon_from <= tick < self.daemon_to:
                self.daemon_stretch()
                while tick < self.daemon_to:
                    tick += TICK
                continue
            self.cron_tick(tick)
            done += 1
            if done % 48 == 0:
                elapsed = time.monotonic() - began
                print(f"  {local(tick)}  {int((tick - self.start) // TICK) + 1}/{total} ticks, "
                      f"{elapsed:.0f} s so far", flush=True)  # fmt: skip
            tick += TICK
        # the last pass: every publishing source named, the faults off
        self.web("calm?on=1")
        self.set_time(self.end)
        self.hook.status = 200
        if not self.smtp.running:
            self.smtp.resume()
        self.drain_at = self.end
        names = [s.id for s in self.world.sources if s.kind != "hostile"]
        args = ["run", "--config", str(self.config_path), "--db", str(self.db)]
        for name in names:
            args += ["--source", name]
        began = time.monotonic()
        process = self.start_veille("drain", args, self.end)
        self.finish("drain", process, self.end, began)

    # ------------------------------------------------------------ the checks

    def checks(self, seconds: float) -> list[str]:
        found = Findings()
        conn = sqlite3.connect(self.db)
        with contextlib.closing(conn):
            self._check_entries(conn, found)
            self._check_digests(conn, found)
            self._check_alerts(conn, found)
            self._check_faults(found)
            self._check_health(conn, found)
            self._check_growth(conn, found)
        return found.failures

    def _check_entries(self, conn: sqlite3.Connection, found: Findings) -> None:
        print("\n== Entries")
        published = self.world.published(int(self.end))
        hosts = {s.id: s.host for s in self.world.sources}
        by_url: dict[str, list[int]] = {}
        for url, article_id in conn.execute("SELECT url, article_id FROM article_urls"):
            by_url.setdefault(url, []).append(article_id)
        for url, article_id in conn.execute("SELECT url, id FROM articles"):
            if article_id not in by_url.get(url, []):
                by_url.setdefault(url, []).append(article_id)
        seen = {row[0]: row[1] for row in conn.execute("SELECT id, first_seen_at FROM articles")}
        missing, doubled, by_drain = [], [], 0
        lags: list[float] = []
        for path, (sid, _title, when) in published.items():
            url = canonical_url(f"http://{hosts[sid]}:{self.web_port}{path}")
            ids = set(by_url.get(url, []))
            if not ids:
                missing.append(url)
                continue
            if len(ids) > 1:
                doubled.append(url)
            first = min(
                datetime.fromisoformat(seen[i].replace("Z", "+00:00")).timestamp() for i in ids
            )
            if first >= self.drain_at:
                by_drain += 1
            else:
                lags.append(max(0.0, first - when) / 3600)
        dups = conn.execute(
            "SELECT count(*) FROM (SELECT url FROM articles GROUP BY url HAVING count(*) > 1)"
        ).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        print(f"  published during the soak: {len(published):,} entries by "
              f"{sum(1 for s in self.world.sources if s.kind != 'hostile'):,} sources; "
              f"{total:,} articles stored in all (the day's backlog and hostile feeds too)")  # fmt: skip
        if lags:
            lags.sort()
            print(f"  hours from publication to storage: median {statistics.median(lags):.1f}, "
                  f"95th percentile {lags[int(len(lags) * 0.95)]:.1f}, max {lags[-1]:.1f}; "
                  f"{by_drain} first stored by the last pass")  # fmt: skip
        found.check(not missing, f"every entry published stored ({len(missing)} missing"
                    + (f", e.g. {missing[0]}" if missing else "") + ")")  # fmt: skip
        found.check(not doubled and not dups, f"each stored once ({len(doubled)} entries in "
                    f"several articles, {dups} URLs stored twice)")  # fmt: skip

    def _check_digests(self, conn: sqlite3.Connection, found: Findings) -> None:
        print("\n== Digests")
        expected: list[Week] = []
        moment = datetime.fromtimestamp(self.start, UTC).astimezone(ZONE)
        day = moment.replace(hour=7, minute=30, second=0, microsecond=0)
        while day.timestamp() <= self.end:
            if day.weekday() == 0 and day.timestamp() >= self.start:
                expected.append(Week.last_complete(day, ZONE))
            day = (day + timedelta(days=1)).replace(hour=7, minute=30)
        received = Counter(str(m.message["X-Veille-Week"]) for m in self.smtp.received)
        rows = dict(conn.execute("SELECT week, status FROM digests").fetchall())
        attempts = dict(conn.execute("SELECT week, attempts FROM digests").fetchall())
        for week in expected:
            print(f"  {week.label}: received {received[week.label]} time(s), recorded "
                  f"{rows.get(week.label)!r} after {attempts.get(week.label)} attempt(s)")  # fmt: skip
            found.check(received[week.label] == 1 and rows.get(week.label) == "sent",
                        f"the digest of {week.label} received exactly once, recorded as sent")  # fmt: skip
        others = {w: n for w, n in received.items() if w not in {e.label for e in expected}}
        found.check(not others, f"no other week's digest sent ({others or 'none'})")

    def _check_alerts(self, conn: sqlite3.Connection, found: Findings) -> None:
        print("\n== Alerts")
        rows = conn.execute(
            "SELECT id, kind, articles, title, status, attempts, url FROM alerts "
            "WHERE rule_id = 'comms'"
        ).fetchall()
        statuses = Counter(r[4] for r in rows)
        kinds = Counter(r[1] for r in rows)
        told: Counter[int] = Counter()
        for row in rows:
            for article in json.loads(row[2]):
                told[article] += 1
        twice = [a for a, n in told.items() if n > 1]
        posts = self.hook.posts
        taken = [p for p in posts if p.status < 400]
        refused = len(posts) - len(taken)

        def message(row: tuple[Any, ...]) -> list[Post]:
            # a message is its headline and its link: two stories may share a headline
            return [
                p
                for p in taken
                if p.body.get("title") == row[3] and (row[6] or "") in str(p.body.get("message"))
            ]

        print(f"  ledger: {len(rows)} messages ({dict(kinds)}), {dict(statuses)}; "
              f"{max((r[5] for r in rows), default=0)} attempts at most")  # fmt: skip
        print(f"  webhook: {len(posts)} posts, {len(taken)} taken, {refused} answered 500")
        found.check(bool(rows), "alert stories were found and told")
        found.check(set(statuses) <= {"sent"}, f"every message ends sent ({dict(statuses)})")
        found.check(not twice, f"each story in one message only ({len(twice)} articles twice)")
        received = {row[0]: message(row) for row in rows}
        lost = [r[3] for r in rows if r[4] == "sent" and not received[r[0]]]
        found.check(not lost, f"every message sent was received ({len(lost)} lost"
                    + (f", e.g. {lost[0][:60]!r}" if lost else "") + ")")  # fmt: skip
        killed = [id(p) for p in self.alert_killed_posts]
        resent, extra = 0, []
        for row in rows:
            copies = received[row[0]]
            hit = sum(1 for p in copies if id(p) in killed)  # a kill in that very send
            if len(copies) > 1 + hit:
                extra.append(row[3])
            resent += min(len(copies) - 1, hit) if copies else 0
        print(f"  received twice after a kill in that very send (at-least-once): {resent}")
        found.check(not extra, f"no message received twice otherwise ({len(extra)}"
                    + (f", e.g. {extra[0][:60]!r}" if extra else "") + ")")  # fmt: skip
        (self.workdir / "webhook.json").write_text(
            json.dumps([{"status": p.status, **p.body} for p in posts], ensure_ascii=False),
            encoding="utf-8",
        )

    def _check_faults(self, found: Findings) -> None:
        print("\n== Faults")
        for kill in self.kills:
            when = local(kill.fired_at) if kill.fired_at else "never"
            print(f"  kill {kill.how:6} armed {local(kill.armed_at)}, fired {when} in "
                  f"{kill.target or '-'}: {kill.note}; {kill.detail}")  # fmt: skip
        fired = [k for k in self.kills if k.fired_at]
        found.check(len(fired) == len(self.kills), f"{len(fired)} of {len(self.kills)} planned "
                    "kills landed where they were aimed")  # fmt: skip
        if self.disk_full_passes:
            last = self.disk_full_passes[-1]
            found.check(
                last.code == 1 and "disk is full" in last.line,
                f"a pass met the full disk and stopped with one line and exit 1, after "
                f"{len(self.disk_full_passes) - 1} pass(es) whose writes fit (exit {last.code}: "
                f"{last.line[-120:]!r})",
            )
        killed = sum(1 for p in self.passes if p.killed)
        print(f"  processes SIGKILLed: {killed}; passes and sends: {len(self.passes)}")
        for problem in self.problems:
            print(f"  problem: {problem[:1500]}")
        found.check(not self.problems, f"no unexpected exit, traceback or integrity problem "
                    f"during the week ({len(self.problems)})")  # fmt: skip

    def _check_health(self, conn: sqlite3.Connection, found: Findings) -> None:
        print("\n== Database")
        state = integrity(self.db)
        found.check(state == "ok", f"PRAGMA integrity_check and the full-text index: {state}")
        problems = consistency(self.db)
        for problem in problems:
            print(f"  {problem}")
        found.check(not problems, "no duplicate, orphan or dangling row, no run left 'running'")
        held = []
        for kind in ("lock", "digest.lock", "schedule.lock"):
            path = Path(f"{self.db}.{kind}")
            if not path.exists():
                continue
            with path.open("rb+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(handle, fcntl.LOCK_UN)
                except BlockingIOError:
                    held.append(path.name)
        found.check(not held, f"no lock held at the end ({held or 'none'})")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        payload = conn.execute(
            "SELECT coalesce(sum(length(url) + length(coalesce(title, '')) + "
            "length(coalesce(summary, '')) + length(coalesce(text, ''))), 0) FROM articles"
        ).fetchone()[0]
        size = pages * page_size
        per = size / max(1, articles)
        print(f"  {size / 1e6:.1f} MB: {pages:,} pages of {page_size}, {free:,} free; "
              f"{articles:,} articles, {per / 1024:.1f} KB each; their text "
              f"{payload / 1e6:.1f} MB")  # fmt: skip
        # every article costs its text (twice: the row and the full-text index) plus rows
        # of fixed size: sources, mentions, story keys and indexes (about 4 KB measured)
        bound = 3 * payload + 8192 * articles + 4_000_000
        found.check(free <= pages * 0.2, f"free pages {free:,} of {pages:,} (20 % at most)")
        found.check(size <= bound, f"size {size / 1e6:.1f} MB within 3 x the articles' text "
                    f"+ 8 KB an article + 4 MB ({bound / 1e6:.1f} MB)")  # fmt: skip
        wal = Path(f"{self.db}-wal")
        final = wal.stat().st_size if wal.exists() else 0
        print(f"  WAL: {self.wal_max / 1e6:.1f} MB at most during the soak, {final / 1e6:.1f} MB "
              "at the end")  # fmt: skip
        found.check(self.wal_max <= 64e6, "the WAL checkpointed: never above 64 MB")

    def _check_growth(self, conn: sqlite3.Connection, found: Findings) -> None:
        print("\n== Growth")
        runs = conn.execute(
            "SELECT started_at, duration_s, status, new_articles, sources_total FROM runs "
            "WHERE duration_s IS NOT NULL ORDER BY id"
        ).fetchall()
        points = []
        for started, duration, status, _new, _total in runs[2:-1]:  # backlog and drain aside
            if status in ("ok", "partial"):
                when = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
                points.append((when, float(duration)))
        statuses = Counter(r[2] for r in runs)
        print(f"  passes recorded: {len(runs)} ({dict(statuses)}); first pass "
              f"{runs[0][1]:.1f} s for {runs[0][4]} sources" if runs else "  no pass recorded")  # fmt: skip
        if points:
            durations = [p[1] for p in points]
            slope = slope_per_day(points)
            first_day = [d for w, d in points if w < self.start + 86400 * 1.5]
            last_day = [d for w, d in points if w >= self.end - 86400]
            print(f"  pass duration: median {statistics.median(durations):.2f} s, max "
                  f"{max(durations):.1f} s; slope {slope:+.3f} s/day")  # fmt: skip
            if first_day and last_day:
                a, b = statistics.median(first_day), statistics.median(last_day)
                print(f"  median of the first day and a half {a:.2f} s, of the last day {b:.2f} s")
                # generous: twice as long and a second more is growth, noise is not
                found.check(b <= 2 * a + 1, "pass durations do not grow (last day <= 2 x "
                            "first + 1 s)")  # fmt: skip
        cron = [p.seconds for p in self.passes if p.role == "run" and not p.killed]
        if cron:
            print(f"  cron passes (process start to exit): median {statistics.median(cron):.2f} s,"
                  f" max {max(cron):.1f} s, {len(cron)} passes")  # fmt: skip
        if self.memory:
            lives: dict[int, list[tuple[float, float, float]]] = {}
            for life, when, own, tree in self.memory:
                lives.setdefault(life, []).append((when, own, tree))
            longest = max(lives.values(), key=len)[WARM_UP:]
            own_slope = slope_per_day([(w, o) for w, o, _ in longest])
            tree_slope = slope_per_day([(w, t) for w, _, t in longest])
            trees = [t for _, _, t in longest]
            if longest:
                hours = (longest[-1][0] - longest[0][0]) / 3600
                print(f"  daemon memory (idle, between jobs), over {hours:.0f} h of its longest "
                      f"life after {WARM_UP} warm-up samples: own RSS "
                      f"{longest[0][1]:.0f} -> {longest[-1][1]:.0f} MB, slope "
                      f"{own_slope:+.1f} MB/day; process tree {min(trees):.0f} to "
                      f"{max(trees):.0f} MB, slope {tree_slope:+.1f} MB/day")  # fmt: skip
                if hours >= 12:
                    # a leak of half a megabyte a pass is 24 MB a day: that, not noise, fails
                    found.check(own_slope <= 24, "the daemon's memory is flat (own RSS slope "
                                "<= 24 MB/day)")  # fmt: skip
                else:
                    print("  (under 12 hours: too short to judge a slope; the week's soak does)")
        if self.daemon_ticks:
            change = [t for t in self.daemon_ticks
                      if 0 <= t - datetime(2026, 10, 25, 0, 0, tzinfo=UTC).timestamp() < 3 * 3600]  # fmt: skip
            if change:
                print("  the daemon's jobs around the clock change: "
                      + ", ".join(local(t) for t in change))  # fmt: skip
            steps = [b - a for a, b in zip(self.daemon_ticks, self.daemon_ticks[1:], strict=False)]
            found.check(all(s > 0 for s in steps), "the daemon's clock only moves forward")
            found.check(all(s <= TICK for s in steps), "no pass of the daemon skipped (steps "
                        f"of {min(steps, default=0) / 60:.0f} to {max(steps, default=0) / 60:.0f} "
                        "minutes)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, help="simulated days (default: the plan's: 7.5)")
    parser.add_argument("--sources", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--plan", choices=("week", "day"), default="week",
                        help="the faults' timetable: the week's, or the test suite's one day")  # fmt: skip
    parser.add_argument("--start", help="local time in Paris (default: the plan's)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    plan = WEEK_PLAN if args.plan == "week" else DAY_PLAN
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        soak = Soak(args, plan, workdir)
        print(f"soak: {args.sources} sources, {local(soak.start)} to {local(soak.end)}, the "
              f"daemon from {local(soak.daemon_from)} to {local(soak.daemon_to)}; in {workdir}",
              flush=True)  # fmt: skip
        soak.prepare(stack)
        published = len(soak.world.published(int(soak.end)))
        print(f"soak: the web publishes {published:,} entries during the soak; "
              f"alert rule on {', '.join(soak.alert_members)}", flush=True)  # fmt: skip
        soak.week()
        seconds = time.monotonic() - began
        failures = soak.checks(seconds)
    print(f"\nsoak: {seconds / 60:.1f} minutes", flush=True)
    if failures:
        print(f"soak: FAILED, {len(failures)} check(s):")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
