"""Send a week's digest once: the `digests` row says who has it, and only the others get it.

The row moves through ``sending`` (written before the SMTP transaction starts) to
``sent``, ``partial`` (some recipients refused: only they are tried next time) or
``failed`` (nothing delivered: the next attempt sends to everyone). A process killed
mid-send leaves ``sending``: nothing was recorded as delivered, so the next attempt
sends the whole message again. A week is never recorded as sent and lost; the price
is that a crash in the instant between the server's acceptance and our commit can
deliver one message twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, StoreError
from pipeline.lock import run_lock
from pipeline.outputs.digest import Week, build, message, render
from pipeline.outputs.mail import MailError, SmtpSettings, deliver
from pipeline.outputs.review import approval
from pipeline.settings.config import Config
from pipeline.storage.store import Store, iso

logger = logging.getLogger(__name__)

DONE = ("sent", "skipped")
RECORD_ATTEMPTS = 4


@dataclass
class SendResult:
    week: Week
    status: str  # sent, partial, skipped, already-sent, held (waits for the team's approval)
    subject: str = ""
    delivered: list[str] = field(default_factory=list)  # by this attempt
    refused: dict[str, str] = field(default_factory=dict)
    stories: int = 0
    mentions: int = 0
    sent_at: str | None = None
    deadline: datetime | None = None  # held: when it goes out unapproved (None: never)


def send_digest(
    config: Config,
    *,
    db_path: str | Path,
    week: Week,
    env: Mapping[str, str],
    now: datetime,
    force: bool = False,
) -> SendResult:
    """Send ``week``'s digest to the configured recipients who do not have it yet.

    Raises ConfigError (settings), LockHeld (another send is running), StoreError and
    MailError (nothing delivered; the row says ``failed`` and the next call retries).
    """
    recipients = list(dict.fromkeys(config.digest.recipients))
    problems = []
    if not recipients:
        problems.append("digest.recipients: nobody to send the digest to")
    if not config.digest.from_:
        problems.append("digest.from: the sender's address is not set")
    if problems:
        raise ConfigError(problems, path=config.path)
    settings = SmtpSettings.from_env(env)  # before anything is recorded

    with run_lock(db_path, what="veille digest --send", kind="digest.lock"):
        store = Store.open(db_path)
        try:
            return _send(config, store, settings, week, recipients, now=now, force=force)
        finally:
            store.close()


def record_delivery(store: Store, what: str, write: Callable[[], None]) -> None:
    """The server has the mail: ``write`` that down in one transaction, trying hard (a busy
    database or a full disk must not turn a delivered mail into one sent again). ``what``
    names the mail ("the digest of 2026-W48") in the error left when every try failed."""
    for attempt in range(RECORD_ATTEMPTS):
        try:
            with store.transaction(f"recording {what}"):
                write()
            return
        except StoreError as exc:
            if attempt == RECORD_ATTEMPTS - 1:
                raise StoreError(
                    f"{what} was delivered but could not be recorded ({exc}); do not send it "
                    "again: fix the database, then mark it as sent"
                ) from None
            time.sleep(2**attempt)


def _record_delivery(
    store: Store, week: Week, reported: Sequence[tuple[int, str]] = (), **fields: Any
) -> None:
    """The digest's delivery, and the mentions it reported (its week's, and those found
    late) in the same transaction: none is reported again, none is lost if the recording
    fails."""

    def write() -> None:
        store.save_digest(week.label, **fields)
        store.mark_reported(week.label, reported)

    record_delivery(store, f"the digest of {week}", write)


def _send(
    config: Config,
    store: Store,
    settings: SmtpSettings,
    week: Week,
    recipients: list[str],
    *,
    now: datetime,
    force: bool,
) -> SendResult:
    row = store.digest_row(week.label)
    if row and row["status"] in DONE and not force:
        return SendResult(
            week=week,
            status="already-" + row["status"],
            subject=row["subject"] or "",
            sent_at=row["sent_at"],
        )
    if now < week.end and not force:
        raise ConfigError(
            [
                f"--week {week}: the week is not over until "
                f"{week.end.isoformat(timespec='minutes')}; sent now, the articles of its last "
                "days would never be sent (--force sends it anyway)"
            ],
            path="command line",
        )
    if config.digest.review and not force:
        approved = approval(store, week)
        deadline = config.digest.deadline(week.end)
        if approved is None and (deadline is None or now < deadline):
            logger.info("digest week=%s held: waiting for the team's approval", week.label)
            return SendResult(week=week, status="held", deadline=deadline)
        if approved is None:
            logger.warning(
                "digest week=%s not approved by the deadline (%s): sent as it is",
                week.label,
                config.digest.review_deadline,
            )
    delivered: list[str] = [] if force or not row else json.loads(row["delivered"])
    pending = [r for r in recipients if r not in delivered]

    content = build(config, store, week, now=now, db_name=Path(store.path).stem)
    if content.empty and config.digest.skip_empty:
        with store.transaction(f"recording the digest of {week}"):
            store.save_digest(
                week.label,
                status="skipped",
                generated_at=iso(now),
                recipients=json.dumps(recipients),
            )
            store.mark_reported(week.label, content.reported)
        return SendResult(week=week, status="skipped")
    rendered = render(config, content)
    counts = {
        "story_count": content.stories,
        "article_count": content.articles,
        "mention_count": content.mentions,
    }
    if not pending:  # everyone has it (recipients removed from the config since): done
        store.save_digest(week.label, status="sent", sent_at=iso(now))
        return SendResult(week=week, status="sent", subject=rendered.subject, sent_at=iso(now))

    msg = message(config, rendered, recipients=pending, week=week, now=now)
    store.save_digest(
        week.label,
        status="sending",
        generated_at=iso(now),
        sending_at=iso(now),
        recipients=json.dumps(recipients),
        delivered=json.dumps(delivered),
        subject=rendered.subject,
        message_id=str(msg["Message-ID"]),
        attempts_increment=True,
        **counts,
    )
    sender = config.digest.from_
    assert sender is not None
    try:
        refused = deliver(settings, msg, sender=sender, recipients=pending)
    except MailError as exc:
        store.save_digest(
            week.label,
            status="failed",
            last_error=str(exc),
            permanent_error=int(not exc.temporary),
        )
        raise
    except BaseException:  # a bug or Ctrl-C: nothing is known to be delivered
        store.save_digest(week.label, status="failed", last_error="interrupted while sending")
        raise
    accepted = [r for r in pending if r not in refused]
    all_delivered = delivered + accepted
    complete = all(r in all_delivered for r in recipients)
    status = "sent" if complete else "partial"
    _record_delivery(
        store,
        week,
        content.reported,
        status=status,
        sent_at=iso(now) if complete else None,
        delivered=json.dumps(all_delivered),
        refused=json.dumps(refused),
        last_error=None
        if complete
        else "refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items()),
        permanent_error=0,
    )
    logger.info(
        "digest week=%s status=%s delivered=%d refused=%d",
        week.label,
        status,
        len(accepted),
        len(refused),
    )
    return SendResult(
        week=week,
        status=status,
        subject=rendered.subject,
        delivered=accepted,
        refused=refused,
        stories=content.stories,
        mentions=content.mentions,
        sent_at=iso(now) if complete else None,
    )
