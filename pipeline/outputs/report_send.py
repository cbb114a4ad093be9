"""Mail a period's report once: the HTML as the body (its charts as PNG images of the same
mail), the PDF attached; the `reports` row says who has it, and only the others get it.

The same journal as the digest's (pipeline/outputs/send.py): ``sending`` is written before
the SMTP transaction, then ``sent``, ``partial`` (only the refused are tried again) or
``failed`` (the next attempt sends to everyone). A period is never recorded as sent and
lost; a crash between the server's acceptance and our commit can deliver it twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.lock import run_lock
from pipeline.outputs.mail import MailError, SmtpSettings, deliver
from pipeline.outputs.report import Period, build, render
from pipeline.outputs.report_pdf import write_pdf
from pipeline.outputs.send import record_delivery
from pipeline.settings.config import Config
from pipeline.storage.store import Store, iso

logger = logging.getLogger(__name__)

DONE = ("sent",)
MAX_REPORT_ATTEMPTS = 10  # the daemon stops retrying a report that keeps failing


@dataclass
class ReportResult:
    period: Period
    status: str  # sent, partial, already-sent, not-due
    subject: str = ""
    delivered: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    sent_at: str | None = None


def due_period(config: Config, now: datetime) -> Period | None:
    """The month or quarter whose report is due (``report.every``): the last one that
    ended, once ``report.delay_hours`` have passed since; None when reports are not
    scheduled or the delay is not over."""
    every = config.report.every
    if every is None:
        return None
    period = Period.last_complete(every, now, config.schedule.zone)
    if now < period.end + timedelta(hours=config.report.delay_hours):
        return None
    return period


def report_message(
    config: Config,
    *,
    subject: str,
    html: str,
    pdf: bytes,
    images: dict[str, bytes],
    period: Period,
    recipients: list[str],
    now: datetime,
) -> EmailMessage:
    sender = config.report.from_ or config.digest.from_
    if not sender:
        raise ConfigError(["report.from: the sender's address is not set"], path=config.path)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "veille.invalid"
    msg["Message-ID"] = make_msgid(idstring=f"report-{period.label}", domain=domain)
    msg["X-Veille-Report"] = period.label
    msg.set_content(
        f"{subject}\n\nThe report is attached as a PDF; its HTML version is this message's "
        "other part.\nLe rapport est joint en PDF ; sa version HTML est l'autre partie de ce "
        "message.\n",
        cte="quoted-printable",
    )
    msg.add_alternative(html, subtype="html", cte="base64")
    # the charts, as images of the HTML part (multipart/related): mail readers show no
    # inline SVG, and most block data: images
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for name, image in images.items():
        html_part.add_related(
            image,
            maintype="image",
            subtype="png",
            cid=f"<chart-{name}@veille>",
            disposition="inline",
        )
    msg.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=f"rapport-{period.label}.pdf"
    )
    return msg


def send_report(
    config: Config,
    *,
    db_path: str | Path,
    period: Period,
    env: Mapping[str, str],
    now: datetime,
    force: bool = False,
) -> ReportResult:
    """Send ``period``'s report to ``report.recipients`` who do not have it yet.

    Raises ConfigError (settings, or a period not over), LockHeld (another send is
    running), StoreError and MailError (nothing delivered; the next call retries)."""
    recipients = list(dict.fromkeys(config.report.recipients))
    problems = []
    if not recipients:
        problems.append("report.recipients: nobody to send the report to")
    if not (config.report.from_ or config.digest.from_):
        problems.append("report.from: the sender's address is not set (nor digest.from)")
    if now < period.end and not force:
        problems.append(
            f"--period {period}: the period is not over until "
            f"{period.end.isoformat(timespec='minutes')} (--force sends it anyway)"
        )
    if problems:
        raise ConfigError(problems, path=config.path)
    settings = SmtpSettings.from_env(env)

    with run_lock(db_path, what="veille report --send", kind="report.lock"):
        store = Store.open(db_path)
        try:
            return _send(config, store, settings, period, recipients, now=now, force=force)
        finally:
            store.close()


def _send(
    config: Config,
    store: Store,
    settings: SmtpSettings,
    period: Period,
    recipients: list[str],
    *,
    now: datetime,
    force: bool,
) -> ReportResult:
    row = store.report_row(period.label)
    if row and row["status"] in DONE and not force:
        return ReportResult(
            period=period,
            status="already-sent",
            subject=row["subject"] or "",
            sent_at=row["sent_at"],
        )
    delivered: list[str] = [] if force or not row else json.loads(row["delivered"])
    pending = [r for r in recipients if r not in delivered]
    if not pending:
        store.save_report(period.label, status="sent", sent_at=iso(now))
        return ReportResult(period=period, status="sent", sent_at=iso(now))

    language = config.report_language
    content = build(config, store, period, compare=config.report.compare, now=now)
    rendered = render(config, content, language=language, mail=True)
    pdf = write_pdf(content, rendered.charts, language=language, zone=config.schedule.timezone)
    msg = report_message(
        config,
        subject=rendered.subject,
        html=rendered.html,
        pdf=pdf,
        images=rendered.images,
        period=period,
        recipients=pending,
        now=now,
    )
    store.save_report(
        period.label,
        status="sending",
        language=language,
        compare=config.report.compare,
        generated_at=iso(now),
        sending_at=iso(now),
        recipients=json.dumps(recipients),
        delivered=json.dumps(delivered),
        subject=rendered.subject,
        message_id=str(msg["Message-ID"]),
        story_count=int(content.headline["stories"].value),
        attempts_increment=True,
    )
    sender = config.report.from_ or config.digest.from_
    assert sender is not None
    try:
        refused = deliver(settings, msg, sender=sender, recipients=pending)
    except MailError as exc:
        store.save_report(
            period.label,
            status="failed",
            last_error=str(exc),
            permanent_error=int(not exc.temporary),
        )
        raise
    except BaseException:
        store.save_report(period.label, status="failed", last_error="interrupted while sending")
        raise
    accepted = [r for r in pending if r not in refused]
    everyone = delivered + accepted
    complete = all(r in everyone for r in recipients)
    status = "sent" if complete else "partial"
    fields: dict[str, Any] = dict(
        status=status,
        sent_at=iso(now) if complete else None,
        delivered=json.dumps(everyone),
        refused=json.dumps(refused),
        last_error=None
        if complete
        else "refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items()),
        permanent_error=0,
    )
    record_delivery(
        store,
        f"the report of {period.label}",
        lambda: store.save_report(period.label, **fields),
    )
    logger.info(
        "report period=%s status=%s delivered=%d refused=%d",
        period.label,
        status,
        len(accepted),
        len(refused),
    )
    return ReportResult(
        period=period,
        status=status,
        subject=rendered.subject,
        delivered=accepted,
        refused=refused,
        sent_at=iso(now) if complete else None,
    )
