"""`veille` on a simulated clock: travel to a time given in the environment, then run the CLI.

    SOAK_NOW=2026-10-19T00:00:00+00:00 python -m tests.scripts.soak_clock run --config ... --db ...

The soak (tests/scripts/soak.py) starts every veille process through this module, so the
program itself has no clock switch: time-machine moves this process's wall clock
(``datetime.now``, ``time.time``; the clock then ticks at its real pace), and veille
runs unchanged. ``time.monotonic`` is left alone, so durations stay real. Child processes
started by veille (the forkserver's parsers and analysers) see the real time: they take
no decision on it but a feed date's sanity bound (a date far in the future is dropped),
which the soak's past week never reaches.

Two more variables, for faults and for the daemon:

``SOAK_PAGE_MARGIN=N``
    the database's disk is full: every SQLite connection this process opens may grow the
    file by N pages at most (``PRAGMA max_page_count``), so writes past it fail with
    SQLITE_FULL as on a full disk.
``SOAK_CONTROL=http://127.0.0.1:PORT``
    for ``veille schedule``: a thread moves the clock from one scheduled job to the next
    instead of waiting for it. Each time the daemon is idle (no job running), it asks the
    driver ``GET /advance?to=EPOCH`` with the next job's time; once the driver answers, it
    travels there and wakes the scheduler. The driver answers when it has set the web's
    clock and the faults of that moment, so the daemon runs in step with the world.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

# time-machine registers a pytest plugin when pytest can be imported: a quarter of a
# second at every start that veille's processes do not need
sys.modules.setdefault("pytest", None)  # type: ignore[arg-type]
import time_machine  # noqa: E402


def _full_disk(margin: int) -> None:
    """SQLite connections that cannot grow the database past its size + ``margin`` pages."""
    connect = sqlite3.connect

    def limited(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {int(pages) + margin}")
        return conn

    sqlite3.connect = limited  # type: ignore[assignment]


class DaemonClock:
    """Drives the clock of a ``veille schedule`` process from the driver's answers."""

    def __init__(self, traveller: time_machine.Traveller, control: str) -> None:
        self.traveller = traveller
        self.control = control.rstrip("/")
        self.daemon: Any = None

    def attach(self, daemon: Any) -> None:
        self.daemon = daemon
        threading.Thread(target=self.loop, name="soak-clock", daemon=True).start()

    def _next(self) -> datetime | None:
        """The next job's time once the scheduler is idle and has planned it, else None."""
        from apscheduler.schedulers.base import STATE_RUNNING

        scheduler = self.daemon.scheduler
        if scheduler.state != STATE_RUNNING:
            return None
        # jobs in the pool: counted by the executor before the job's next time is planned
        if any(self.daemon._executor._instances.values()):
            return None
        times = [j.next_run_time for j in scheduler.get_jobs() if j.next_run_time]
        if not times:
            return None
        upcoming = min(times)
        if upcoming <= datetime.now(UTC):
            return None  # due: the scheduler has not taken it yet
        return upcoming  # type: ignore[no-any-return]

    def loop(self) -> None:
        while True:
            upcoming = self._next()
            if upcoming is None:
                time.sleep(0.05)
                continue
            epoch = upcoming.timestamp()
            with urllib.request.urlopen(f"{self.control}/advance?to={epoch}", timeout=600) as r:
                answer = json.loads(r.read())
            if not answer.get("go"):
                return  # the driver stops this daemon (SIGTERM) when it wants
            self.traveller.move_to(datetime.fromtimestamp(epoch, UTC), tick=True)
            self.daemon.scheduler.wakeup()
            # until the scheduler has taken the job, its next time is not in the future
            deadline = time.monotonic() + 30
            while self._next() == upcoming and time.monotonic() < deadline:
                time.sleep(0.02)


def main() -> None:
    now = datetime.fromisoformat(os.environ["SOAK_NOW"])
    traveller = time_machine.travel(now, tick=True).start()
    if margin := os.environ.get("SOAK_PAGE_MARGIN"):
        _full_disk(int(margin))
    if control := os.environ.get("SOAK_CONTROL"):
        from pipeline.schedule import Daemon

        clock = DaemonClock(traveller, control)
        start = Daemon.start

        def started(self: Daemon) -> None:
            clock.attach(self)
            start(self)

        Daemon.start = started  # type: ignore[method-assign]
    from pipeline.cli import main as veille

    sys.argv = ["veille", *sys.argv[1:]]
    veille()


if __name__ == "__main__":
    main()
