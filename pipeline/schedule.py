"""`veille schedule`: the daemon that runs passes and sends the digest at the times in sources.yaml.

APScheduler 3 (BlockingScheduler) in the schedule's time zone, one job per cron
expression. Runs take the same lock as `veille run` from cron, so the two never
overlap: whichever comes second skips its turn. Jobs coalesce (a backlog of missed
turns is one turn) and never run twice at once.

What was missed while the daemon was down is caught up on start: a pass when the
last one is older than the last scheduled time, and the digest when its time has
passed and the week is not sent. After every pass the digest is checked the same
way, so a send that failed (SMTP down) is retried every pass, up to
``MAX_DIGEST_ATTEMPTS``.

With ``report.every`` (month or quarter) the board's report of the period just ended is
mailed the same way: checked on start and after every pass, sent by the first one at
least ``report.delay_hours`` after the period ended, once (the `reports` ledger), retried
after each pass while it fails, up to ``MAX_REPORT_ATTEMPTS``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from pipeline.errors import LockHeld, VeilleError
from pipeline.lock import run_lock
from pipeline.outputs.digest import Week
from pipeline.outputs.report_send import MAX_REPORT_ATTEMPTS, due_period, send_report
from pipeline.outputs.send import DONE, send_digest
from pipeline.settings.config import Config
from pipeline.storage.store import Store, iso

logger = logging.getLogger(__name__)

DIGEST_GRACE = timedelta(hours=12)  # a machine asleep at digest time still sends on waking
MAX_DIGEST_ATTEMPTS = 10  # a digest that keeps failing stops being retried after this many
LOOKBACK = timedelta(days=8)  # how far back to look for a missed turn (a week and a day)


def previous_fire(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The last time ``trigger`` fired at or before ``now`` (within LOOKBACK)."""
    last: datetime | None = None
    moment = now - LOOKBACK
    while True:
        fire = trigger.get_next_fire_time(last, moment)
        if fire is None or fire > now:
            return last
        # step in UTC: wall-clock arithmetic loses the fold and loops on the autumn hour
        last, moment = fire, fire.astimezone(UTC) + timedelta(seconds=1)


def run_grace(config: Config) -> timedelta:
    """A pass that starts late by more than half the interval is dropped: the next one is near."""
    return max(timedelta(minutes=1), config.schedule.run_interval() / 2)


class Daemon:
    """The jobs and their state; ``start()`` blocks until SIGTERM or SIGINT."""

    def __init__(
        self,
        config: Config,
        *,
        db_path: str | Path,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.db_path = Path(db_path)
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.zone = config.schedule.zone
        self.run_trigger = config.schedule.trigger("run")
        self.digest_trigger = config.schedule.trigger("digest")
        self._executor = ThreadPoolExecutor(max_workers=2)
        self.scheduler = BlockingScheduler(
            timezone=self.zone,
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_job(
            self.run_job,
            self.run_trigger,
            id="run",
            name="veille run",
            misfire_grace_time=int(run_grace(config).total_seconds()),
        )
        self.scheduler.add_job(
            self.digest_job,
            self.digest_trigger,
            id="digest",
            name="veille digest --send",
            misfire_grace_time=int(DIGEST_GRACE.total_seconds()),
        )
        self.scheduler.add_listener(self._job_failed, EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)
        self._stopping = False
        self._digest_lock = threading.Lock()

    # ---------------------------------------------------------------- jobs

    def run_job(self) -> None:
        from pipeline.run import run

        try:
            report = run(self.config, db_path=self.db_path, env=self.env)
        except LockHeld as exc:
            logger.warning("pass skipped: %s", exc)
        except VeilleError as exc:
            logger.error("pass failed: %s", exc)
        else:
            logger.info("%s", report.summary())
        self.catch_up_digest()
        self.catch_up_report()

    def digest_job(self, week: Week | None = None) -> None:
        """Send the last complete week's digest (or ``week``); never raises."""
        with self._digest_lock:
            week = week or Week.last_complete(self.clock(), self.zone)
            try:
                result = send_digest(
                    self.config, db_path=self.db_path, week=week, env=self.env, now=self.clock()
                )
            except LockHeld as exc:
                logger.warning("digest %s not sent now: %s", week, exc)
            except VeilleError as exc:
                logger.error("digest %s not sent: %s; retried after the next pass", week, exc)
            else:
                if result.status == "partial":
                    logger.error(
                        "digest %s refused for %s; retried after the next pass",
                        week,
                        ", ".join(result.refused),
                    )
                else:
                    logger.info("digest %s: %s", week, result.status)

    def due_digest(self) -> Week | None:
        """The week whose digest time has passed and which is not sent yet, if any."""
        now = self.clock()
        fired = previous_fire(self.digest_trigger, now)
        if fired is None:
            return None
        # the week that the last digest time was for (down for a week and a day: still it)
        week = Week.last_complete(fired, self.zone)
        if not self.db_path.exists():
            return None
        store = Store.open(self.db_path)
        try:
            row = store.digest_row(week.label)
            # a week before veille's first pass has nothing to tell (a new installation)
            watched = store.row(
                "reading whether a pass ran before the week ended",
                "SELECT 1 FROM runs WHERE started_at < ? LIMIT 1",
                [iso(week.end)],
            )
        finally:
            store.close()
        if row is None:
            return week if watched else None
        if (
            row["status"] in DONE
            or row["attempts"] >= MAX_DIGEST_ATTEMPTS
            or row["permanent_error"]  # a refused login or no TLS: retrying will not help
        ):
            return None
        return week

    def catch_up_digest(self) -> None:
        try:
            week = self.due_digest()
        except VeilleError as exc:
            logger.error("cannot tell whether a digest is due: %s", exc)
            return
        if week is not None:
            logger.info("digest %s is due and not sent: sending it now", week)
            self.digest_job(week)

    def catch_up_report(self) -> None:
        """Mail the report of the period just ended, when one is due and not sent; never
        raises (the next pass tries again)."""
        with self._digest_lock:
            try:
                period = due_period(self.config, self.clock())
                if period is None or not self.db_path.exists():
                    return
                store = Store.open(self.db_path)
                try:
                    row = store.report_row(period.label)
                finally:
                    store.close()
                if row is not None and (
                    row["status"] == "sent"
                    or row["attempts"] >= MAX_REPORT_ATTEMPTS
                    or row["permanent_error"]
                ):
                    return
                logger.info("report %s is due and not sent: sending it now", period)
                result = send_report(
                    self.config,
                    db_path=self.db_path,
                    period=period,
                    env=self.env,
                    now=self.clock(),
                )
            except LockHeld as exc:
                logger.warning("report not sent now: %s", exc)
            except VeilleError as exc:
                logger.error("report not sent: %s; retried after the next pass", exc)
            else:
                if result.status == "partial":
                    logger.error(
                        "report %s refused for %s; retried after the next pass",
                        period,
                        ", ".join(result.refused),
                    )
                else:
                    logger.info("report %s: %s", period, result.status)

    def missed_run(self) -> bool:
        """True when no pass started since the last time one was scheduled."""
        fired = previous_fire(self.run_trigger, self.clock())
        if fired is None:
            return False
        if not self.db_path.exists():
            return True
        store = Store.open(self.db_path)
        try:
            row = store.row(
                "reading when the last pass started", "SELECT max(started_at) FROM runs"
            )
        finally:
            store.close()
        if not row or not row[0]:
            return True
        return datetime.fromisoformat(row[0].replace("Z", "+00:00")) < fired

    def _job_failed(self, event: JobExecutionEvent) -> None:
        # the type only: an exception's text may quote what it was given (credentials)
        logger.error(
            "job %s crashed (%s); the daemon goes on",
            event.job_id,
            type(event.exception).__name__,
        )

    # ---------------------------------------------------------------- life

    def next_times(self) -> dict[str, datetime | None]:
        now = self.clock()
        return {
            "run": self.run_trigger.get_next_fire_time(None, now),
            "digest": self.digest_trigger.get_next_fire_time(None, now),
        }

    def stop(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler: only a flag and a thread. Shutting down takes locks the
        interrupted main thread may hold, and logging from a handler can re-enter a write."""
        self._stopping = True
        threading.Thread(
            target=self._shutdown, args=(signal.Signals(signum).name,), daemon=True
        ).start()

    def _shutdown(self, why: str) -> None:
        logger.warning("%s received: stopping after the current job", why)
        with contextlib.suppress(SchedulerNotRunningError):  # not started yet, or a second signal
            self.scheduler.shutdown(wait=False)

    def _started(self, event: SchedulerEvent) -> None:
        if self._stopping:  # the signal came while starting: stop now that it can be stopped
            self.scheduler.shutdown(wait=False)

    def start(self) -> None:
        """Block until a signal; the lock keeps a second daemon on the same database out."""
        with run_lock(self.db_path, what="veille schedule", kind="schedule.lock"):
            previous = {
                sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                if self.missed_run():
                    logger.info("a pass was due while the daemon was down: running one now")
                    self._catch_up(self.run_job, "missed pass")  # the digest is checked after it
                else:
                    self._catch_up(self._catch_up_sends, "missed digest or report")
                upcoming = self.next_times()
                logger.info(
                    "veille schedule started (pid %d, %s): next pass %s, next digest %s",
                    os.getpid(),
                    self.config.schedule.timezone,
                    _local(upcoming["run"]),
                    _local(upcoming["digest"]),
                )
                self.scheduler.start()
            finally:
                # the executor waits for the job in progress before the lock is released
                self._executor.shutdown(wait=True)
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        logger.warning("veille schedule stopped")

    def _catch_up_sends(self) -> None:
        self.catch_up_digest()
        self.catch_up_report()

    def _catch_up(self, job: Callable[[], None], name: str) -> None:
        """Run ``job`` at once, as a job in the pool like the others."""
        self.scheduler.add_job(
            job,
            id="catch-up",
            name=name,
            next_run_time=self.clock(),
            misfire_grace_time=None,  # however late it starts, it runs
        )


def _local(when: datetime | None) -> str:
    return when.isoformat(timespec="minutes") if when else "never"
