"""The `veille` command line: parse options, call the library, map errors to exit codes.

Exit codes: 0 done (failed sources are reported, not fatal); 1 every source failed
or an internal error; 2 configuration or usage error; 75 another run holds the lock
(EX_TEMPFAIL: cron may simply try again next time).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

import click

from pipeline import __version__
from pipeline.analysis.formcheck import CHECK_WEEKS
from pipeline.errors import (
    ConfigError,
    FetchError,
    LockHeld,
    ParseError,
    ReviewError,
    StoreError,
    VeilleError,
)
from pipeline.models import SourceOutcome
from pipeline.settings.config import DEFAULT_CONFIG_PATH, Config, load_config
from pipeline.storage.store import DEFAULT_DB_PATH, Store, utcnow

logger = logging.getLogger("pipeline")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"veille: {message}", err=True)
    sys.exit(code)


def _load(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="The configuration file.",
)
db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_DB_PATH,
    show_default=True,
    help="The SQLite database.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="veille")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """veille: press monitoring for the Atlanpole Biotherapies cluster."""
    _setup_logging(verbose)


# ------------------------------------------------------------------ run


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[tuple[Any, Any]]:
    """A progress bar on a terminal; nothing at all under cron."""
    if not enabled:
        yield (lambda total: None), (lambda outcome: None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]veille run"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def start(total: int) -> None:
            bar.update(task, total=total)

        def advance(outcome: SourceOutcome) -> None:
            bar.update(task, advance=1, description=outcome.source_id)

        yield start, advance


@cli.command()
@config_option
@db_option
@click.option(
    "--source",
    "source_ids",
    multiple=True,
    metavar="ID",
    help="Only this source (repeatable); a search source's id selects all its feeds.",
)
def run(config_path: Path, db_path: Path, source_ids: tuple[str, ...]) -> None:
    """Fetch every due source once and store new articles.

    Silent on success but for one summary line on stderr; one WARNING line per
    failed source. At network.run_timeout (default half the gap between two
    scheduled runs) no source starts any more: what is left waits for the next
    run. Exit 0 when the run completed, 1 when every source failed, 2 on a
    configuration error, 75 when another run holds the lock.

    \b
    Example:

        veille run --config sources.yaml --db storage/veille.db
    """
    from pipeline.run import run as run_once

    config = _load(config_path)
    interactive = sys.stderr.isatty()

    def report_failure(outcome: SourceOutcome) -> None:
        if outcome.failed:
            logger.warning(
                "source=%s kind=%s %s", outcome.source_id, outcome.error_kind, outcome.error
            )
        for note in outcome.warnings:
            logger.info("source=%s %s", outcome.source_id, note)

    try:
        with _progress_bar(interactive) as (start, advance):

            def progress(outcome: SourceOutcome) -> None:
                advance(outcome)
                report_failure(outcome)

            report = run_once(
                config, db_path=db_path, source_ids=source_ids, progress=progress, on_start=start
            )
    except KeyboardInterrupt:
        _fail(
            "interrupted; sources already saved are kept, the run is marked as an error",
            EXIT_INTERRUPTED,
        )
    alerts = report.alerts
    sent = f"; {alerts.sent} alert(s) sent" if alerts is not None and alerts.sent else ""
    click.echo(report.summary() + sent, err=True)
    if report.status == "failed":
        sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------ digest


@cli.command()
@config_option
@db_option
@click.option(
    "--week",
    metavar="YYYY-Www",
    help="The ISO week, in the schedule's time zone (default: the last complete week).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the HTML part to this file and the text part beside it (.txt).",
)
@click.option(
    "--send", is_flag=True, help="Send it to digest.recipients (SMTP settings from VEILLE_SMTP_*)."
)
@click.option(
    "--force", is_flag=True, help="With --send: send a week that was already sent, to everyone."
)
def digest(
    config_path: Path, db_path: Path, week: str | None, out: Path | None, send: bool, force: bool
) -> None:
    """Build the weekly digest; print its text, write it to files, or send it.

    Without --out or --send the text part is printed. A week is sent once: a
    second --send says so and sends nothing, unless --force. After a failure the
    next --send retries; when some recipients were refused, only they are retried.
    A week that is not over yet is sent only with --force.
    Exit 0 when done (or already sent), 1 when the mail was not (fully) delivered,
    2 on a configuration or usage error, 75 when another send is running.

    \b
    SMTP settings come from the environment, never from sources.yaml:
      VEILLE_SMTP_HOST, VEILLE_SMTP_PORT, VEILLE_SMTP_USER, VEILLE_SMTP_PASSWORD,
      VEILLE_SMTP_SECURITY (starttls, the default; ssl; none for a local relay),
      VEILLE_SMTP_CAFILE (a private CA, optional)

    \b
    Examples:

        veille digest --week 2026-W48 --out storage/digest.html
        VEILLE_SMTP_HOST=smtp.example.org veille digest --send
    """
    import os
    from datetime import UTC, datetime

    from pipeline.outputs.digest import Week, build, render, write_preview
    from pipeline.outputs.mail import MailError
    from pipeline.outputs.send import send_digest

    if force and not send:
        _fail("--force only goes with --send", EXIT_USAGE)
    config = _load(config_path)
    zone = config.schedule.zone
    now = datetime.now(UTC)
    try:
        chosen = Week.parse(week, zone) if week else Week.last_complete(now, zone)
    except ValueError as exc:
        _fail(f"--week: {exc}", EXIT_USAGE)
    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)

    if out is not None or not send:
        store = Store.open(db_path)
        try:
            content = build(config, store, chosen, now=now, db_name=db_path.stem)
        finally:
            store.close()
        rendered = render(config, content)
        if out is not None:
            html_path, text_path = write_preview(rendered, out)
            click.echo(f"{chosen}: {rendered.subject}", err=True)
            click.echo(f"wrote {html_path} and {text_path}", err=True)
        elif not send:
            click.echo(f"Subject: {rendered.subject}\n")
            click.echo(rendered.text, nl=False)
    if not send:
        return

    try:
        result = send_digest(
            config, db_path=db_path, week=chosen, env=os.environ, now=now, force=force
        )
    except MailError as exc:
        _fail(
            f"digest {chosen} not sent: {exc}. Nothing is recorded as delivered; "
            "the next `veille digest --send` tries again",
            EXIT_FAILED,
        )
    if result.status.startswith("already-"):
        what = "sent" if result.status == "already-sent" else "skipped (empty week)"
        when = f" on {result.sent_at}" if result.sent_at else ""
        click.echo(
            f"digest {chosen} was already {what}{when}: nothing sent (--force sends it again)",
            err=True,
        )
    elif result.status == "skipped":
        click.echo(f"digest {chosen}: nothing this week, not sent (digest.skip_empty)", err=True)
    elif result.status == "held":
        later = (
            f"; unapproved, it goes out at {result.deadline.astimezone(zone):%a %Y-%m-%d %H:%M}"
            if result.deadline
            else "; unapproved, it is never sent"
        )
        click.echo(
            f"digest {chosen} waits for the team's approval on the desk (digest.review): "
            f"nothing sent{later}. `veille review approve --week {chosen}` approves it",
            err=True,
        )
    elif result.status == "sent":
        click.echo(
            f"digest {chosen} sent to {len(result.delivered)} recipient(s): {result.subject}",
            err=True,
        )
    else:
        refused = "; ".join(f"{a} ({r})" for a, r in result.refused.items())
        _fail(
            f"digest {chosen} sent to {len(result.delivered)} recipient(s) but refused for "
            f"{refused}; the next `veille digest --send` sends it to those only",
            EXIT_FAILED,
        )


# ------------------------------------------------------------------ report


@cli.command()
@config_option
@db_option
@click.option(
    "--period",
    metavar="PERIOD",
    help="2026, 2026-Q4, 2026-11, 2026-W48 or 2026-W40..2026-W52, in the schedule's time "
    "zone (default: the last complete month, or quarter with report.every: quarter).",
)
@click.option(
    "--compare",
    type=click.Choice(["previous", "year"]),
    help="Compare with the period just before, or with the same period a year earlier "
    "(default: report.compare, else previous).",
)
@click.option(
    "--lang",
    type=click.Choice(["fr", "en"]),
    help="The report's language (default: report.language, else digest.language).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report as one self-contained HTML page.",
)
@click.option(
    "--pdf", type=click.Path(path_type=Path, dir_okay=False), help="Write the report as a PDF (A4)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write the report's figures as JSON (- for stdout).",
)
@click.option(
    "--send",
    is_flag=True,
    help="Mail the report (HTML body, PDF attached) to report.recipients, once per period.",
)
@click.option(
    "--force", is_flag=True, help="With --send: send a period already sent, or not over yet."
)
def report(
    config_path: Path,
    db_path: Path,
    period: str | None,
    compare: str | None,
    lang: str | None,
    out: Path | None,
    pdf: Path | None,
    json_path: Path | None,
    send: bool,
    force: bool,
) -> None:
    """The board's report: the cluster in the press over a period, against another.

    Headline figures, coverage over time, members' share of voice, outlets and
    their tiers, themes, funding, the members never covered and the most covered
    stories, read from the stored mentions as the team judged them (earned media).
    --out writes one HTML page that opens offline (charts, styles and font inline),
    --pdf an A4 PDF with contents and page numbers, --json the figures both show.
    --send mails it to report.recipients (SMTP settings from VEILLE_SMTP_*, as the
    digest): a period is sent once, a second --send sends nothing. Exit 0 when
    done, 1 when the mail was not (fully) delivered, 2 on a configuration or usage
    error (a period that cannot be read), 75 when another send is running.

    \b
    Examples:

        veille report --period 2026-Q4 --out q4.html --pdf q4.pdf
        veille report --period 2026 --compare year --lang en --json 2026.json
        veille report --period 2026-W40..2026-W52 --out autumn.html
        VEILLE_SMTP_HOST=smtp.example.org veille report --send
    """
    import os
    from datetime import UTC, datetime

    from pipeline.outputs.mail import MailError
    from pipeline.outputs.report import Period, build, render
    from pipeline.outputs.report_send import send_report

    if force and not send:
        _fail("--force only goes with --send", EXIT_USAGE)
    if not (out or pdf or json_path or send):
        _fail(
            "say what to write: --out FILE.html, --pdf FILE.pdf, --json FILE or --send", EXIT_USAGE
        )
    config = _load(config_path)
    zone = config.schedule.zone
    now = datetime.now(UTC)
    try:
        chosen = (
            Period.parse(period, zone)
            if period
            else Period.last_complete(config.report.every or "month", now, zone)
        )
    except ValueError as exc:
        _fail(f"--period: {exc}", EXIT_USAGE)
    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    compared: Literal["previous", "year"] = (
        "year" if (compare or config.report.compare) == "year" else "previous"
    )
    language = lang or config.report_language

    if out or pdf or json_path:
        from pipeline.outputs.report_pdf import write_pdf

        store = Store.open(db_path)
        try:
            content = build(config, store, chosen, compare=compared, now=now)
        finally:
            store.close()

        def write(path: Path, data: str | bytes) -> None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(data, bytes):
                    path.write_bytes(data)
                else:
                    path.write_text(data, encoding="utf-8")
            except OSError as exc:
                _fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED)
            click.echo(f"wrote {path}", err=True)

        if json_path is not None:
            if str(json_path) == "-":
                click.echo(content.to_json(), nl=False)
            else:
                write(json_path, content.to_json())
        if out or pdf:
            rendered = render(config, content, language=language)
            if out is not None:
                write(out, rendered.html)
            if pdf is not None:
                write(
                    pdf,
                    write_pdf(
                        content, rendered.charts, language=language, zone=config.schedule.timezone
                    ),
                )
    if not send:
        return
    try:
        result = send_report(
            config, db_path=db_path, period=chosen, env=os.environ, now=now, force=force
        )
    except MailError as exc:
        _fail(
            f"report {chosen} not sent: {exc}. Nothing is recorded as delivered; "
            "the next `veille report --send` tries again",
            EXIT_FAILED,
        )
    if result.status == "already-sent":
        click.echo(
            f"report {chosen} was already sent on {result.sent_at}: nothing sent "
            "(--force sends it again)",
            err=True,
        )
    elif result.status == "sent":
        click.echo(
            f"report {chosen} sent to {len(result.delivered)} recipient(s): {result.subject}",
            err=True,
        )
    else:
        refused = "; ".join(f"{a} ({r})" for a, r in result.refused.items())
        _fail(
            f"report {chosen} sent to {len(result.delivered)} recipient(s) but refused for "
            f"{refused}; the next `veille report --send` sends it to those only",
            EXIT_FAILED,
        )


# ------------------------------------------------------------------ schedule


@cli.command()
@config_option
@db_option
def schedule(config_path: Path, db_path: Path) -> None:
    """Run passes and send the digest at the times in sources.yaml's `schedule:`, until stopped.

    Cron expressions in the schedule's time zone. Shares the run lock with
    `veille run` from cron (whichever comes second skips its turn). On start, a
    pass or a digest missed while the daemon was down is done at once. SIGTERM
    or Ctrl-C stop it after the job in progress. Logs go to stderr (one line per
    pass, per digest and per alert rule that sent). Exit 0 when stopped, 2 on a configuration error, 75
    when another daemon serves the same database.

    \b
    Example:

        veille schedule --config sources.yaml --db storage/veille.db
    """
    from pipeline.schedule import Daemon

    config = _load(config_path)
    logging.getLogger("pipeline.schedule").setLevel(logging.INFO)
    logging.getLogger("pipeline.outputs.send").setLevel(logging.INFO)
    logging.getLogger("pipeline.outputs.alerts").setLevel(logging.INFO)  # a line per rule that sent
    Daemon(config, db_path=db_path).start()


# ------------------------------------------------------------------ check


@cli.command()
@config_option
@click.option("--probe", is_flag=True, help="Also fetch and read every source once and report it.")
def check(config_path: Path, probe: bool) -> None:
    """Validate the configuration and print a summary; every problem is listed with its path.

    Exit 0 when valid (and, with --probe, every source could be fetched and read
    as its kind says: feed, page or sitemap),
    1 when a probed source failed, 2 when the configuration is invalid.

    \b
    Example:

        veille check --config sources.yaml --probe
    """
    config = _load(config_path)
    _check_alerts(config)
    by_kind: dict[str, int] = {}
    for spec in config.specs:
        by_kind[spec.kind] = by_kind.get(spec.kind, 0) + 1
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items()))
    feeds = sum(1 for s in config.sources if s.enabled)
    unconfirmed = [s.id for s in config.specs if not s.confirmed]
    click.echo(f"{config.path}: valid")
    click.echo(f"  cluster   {config.cluster.name} ({len(config.cluster.aliases)} aliases)")
    click.echo(f"  members   {len(config.members)}")
    click.echo(f"  sources   {len(config.specs)} configured ({kinds}) -> {feeds} to poll")
    from datetime import UTC, datetime

    next_digest = config.schedule.trigger("digest").get_next_fire_time(None, datetime.now(UTC))
    click.echo(
        f"  schedule  runs '{config.schedule.run}', digest '{config.schedule.digest}' "
        f"({config.schedule.timezone}; next digest "
        f"{next_digest.strftime('%a %Y-%m-%d %H:%M') if next_digest else 'never'})"
    )
    digest_to = (
        f"from {config.digest.from_} to {len(config.digest.recipients)} recipient(s)"
        if config.digest.from_ and config.digest.recipients
        else "not sendable: set digest.from and digest.recipients"
    )
    click.echo(f"  digest    {config.digest.language}, {digest_to}")
    if config.outlets:
        tiers = Counter(outlet.tier for outlet in config.outlets)
        click.echo(
            f"  outlets   {len(config.outlets)} named ("
            + ", ".join(f"{tier} {n}" for tier, n in tiers.most_common())
            + ")"
        )
    click.echo(
        f"  report    every {config.report.every}, {config.report_language}, "
        f"to {len(config.report.recipients)} recipient(s)"
        if config.report.every
        else f"  report    on demand ({config.report_language}; report.every sends it)"
    )
    click.echo(
        f"  network   {config.network.agent!r}, private addresses "
        f"{'allowed' if config.network.allow_private else 'refused'}"
    )
    if config.alerts:
        silenced = sum(1 for rule in config.alerts if not rule.enabled)
        click.echo(
            f"  alerts    {len(config.alerts)} rule(s)"
            + (f", {silenced} silenced (enabled: false)" if silenced else "")
            + f": {', '.join(f'{r.id} -> ${r.to}' for r in config.alerts)}"
        )
    if unconfirmed and not probe:
        click.echo(f"  to confirm with --probe: {', '.join(unconfirmed)}")
    if not probe:
        return
    from pipeline.run import probe as probe_sources

    results = probe_sources(config)
    failed = 0
    for source_id, status, detail in sorted(results):
        failed += status != "ok"
        click.echo(f"  {status:5} {source_id}: {detail}")
    click.echo(f"probe: {len(results) - failed} ok, {failed} failed")
    if failed:
        sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------ discover


@cli.command()
@click.argument("url")
@config_option
def discover(url: str, config_path: Path) -> None:
    """Print the feeds a web page advertises, one URL per line, ready for sources.yaml.

    The page is fetched once with the network settings of the configuration.
    Exit 1 when the page cannot be fetched or advertises no feed.

    \b
    Example:

        veille discover https://www.ose-immuno.com/actualites/
    """
    from pipeline.analysis.extract import discover_guarded
    from pipeline.sources.fetch import ACCEPT_HTML, Fetcher
    from pipeline.sources.sandbox import Limits

    config = _load(config_path)

    async def go() -> list[str]:
        async with Fetcher(config.network) as fetcher:
            fetched = await fetcher.fetch(url, trusted=True, accept=ACCEPT_HTML)
        limits = Limits(
            timeout=config.network.parse_timeout, memory_mb=config.network.parse_memory_mb
        )
        return await asyncio.to_thread(
            discover_guarded, fetched.body, url=fetched.final_url, limits=limits
        )

    try:
        found = asyncio.run(go())
    except (FetchError, ParseError) as exc:
        _fail(f"{url}: {exc}", EXIT_FAILED)
    if not found:
        _fail(f"{url}: the page advertises no feed", EXIT_FAILED)
    for feed_url in found:
        click.echo(feed_url)


# ------------------------------------------------------------------ match


@cli.command()
@config_option
@click.argument("files", nargs=-1, required=True, metavar="FILE... | -")
def match(config_path: Path, files: tuple[str, ...]) -> None:
    """Print the mentions of members found in text files, one JSON object per line.

    Each line has file, member (the name in sources.yaml), member_id, alias (as
    written), start and end (character offsets in the file's text) and snippet.
    Use - to read standard input.

    Examples:

    \b
        veille match article.txt
        echo "Il ose tout, NG-Biotech aussi." | veille match -
    """
    import json

    from pipeline.analysis.mentions import Matcher

    matcher = Matcher.from_config(_load(config_path))
    for name in files:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"{name}: cannot read: {exc}", EXIT_USAGE)
        for mention in matcher.find(text):
            record = {
                "file": name,
                "member": mention.member,
                "member_id": mention.member_id,
                "alias": mention.alias,
                "start": mention.start,
                "end": mention.end,
                "snippet": mention.snippet,
            }
            click.echo(json.dumps(record, ensure_ascii=False))


# ------------------------------------------------------------------ remention


@cli.command()
@config_option
@db_option
def remention(config_path: Path, db_path: Path) -> None:
    """Recompute the mentions, topics and funding events of every stored article.

    Run it after changing members, aliases, context words or topics in
    sources.yaml. Holds the same lock as `veille run` (exit 75 if one is running).

    \b
    Example:

        veille remention --config sources.yaml --db storage/veille.db
    """
    from pipeline.run import remention as remention_all

    _rebuild("veille remention", remention_all, config_path, db_path)


# ------------------------------------------------------------------ datasette


@cli.command()
@config_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--hash-password", is_flag=True, help="Read a password on the terminal, print its hash."
)
def datasette(config_path: Path, db_path: Path, host: str, port: int, hash_password: bool) -> None:
    """Serve the database in Datasette with veille's metadata, queries, dashboards and the desk.

    Readable while a run writes (WAL, not immutable mode). Beyond loopback
    (--host 0.0.0.0) analysts log in as "analyst": set
    VEILLE_DATASETTE_PASSWORD_HASH to the output of --hash-password. The desk is
    at /-/desk; the accounts made by `veille review account` log in there to give
    verdicts (without a login it is read-only).

    \b
    Example:

        veille datasette --db storage/veille.db
        VEILLE_DATASETTE_PASSWORD_HASH=... veille datasette --host 0.0.0.0
        veille review account claire && veille datasette   # then open /-/desk
    """
    import os
    import tempfile

    from pipeline.outputs.serve import (
        accounts_path,
        datasette_command,
        desk_environment,
        is_loopback,
        load_accounts,
        metadata_for,
        write_metadata,
    )

    if hash_password:
        from datasette_auth_passwords.utils import hash_password as make_hash

        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        click.echo(make_hash(password))
        return
    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    try:
        store = Store.open(db_path)  # brings the schema (views included) up to date
        store.close()
        accounts = load_accounts(accounts_path(db_path))
        metadata = metadata_for(
            db_path,
            protect=not is_loopback(host),
            config_path=config_path if config_path.exists() else None,
            accounts=accounts,
        )
    except (ConfigError, StoreError) as exc:
        _fail(str(exc), EXIT_USAGE)
    os.environ.update(desk_environment(accounts))  # the hashes reach Datasette, not its metadata
    with tempfile.TemporaryDirectory() as tmp:
        metadata_file = write_metadata(metadata, Path(tmp) / "metadata.json")
        command = datasette_command(db_path, metadata_file=metadata_file, host=host, port=port)
        click.echo(f"veille: Datasette on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
        code = _run_child([sys.executable, *command])
    sys.exit(code)


CHILD_GRACE_SECONDS = 10.0  # a child asked to stop gets this long before it is killed


def _run_child(argv: list[str]) -> int:
    """Run ``argv`` until it exits; SIGTERM, SIGHUP or SIGINT sent to veille reach it too.

    A supervisor (systemd, a container runtime, ``kill``) signals veille, not its child:
    without this the child would outlive veille and keep its port. The child is asked to
    stop with the same signal, then killed if it has not after CHILD_GRACE_SECONDS.
    """
    import signal
    import subprocess

    child = subprocess.Popen(argv)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    wanted = [signal.SIGTERM, signal.SIGINT] + (
        [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
    )
    previous = {signum: signal.signal(signum, forward) for signum in wanted}
    try:
        while True:
            try:
                code = child.wait(timeout=CHILD_GRACE_SECONDS if received else None)
                break
            except subprocess.TimeoutExpired:
                child.kill()  # asked and given time: it did not stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        return 0 if code in (0, -received[0], 128 + received[0]) else code
    return code


# ------------------------------------------------------------------ restory


@cli.command()
@config_option
@db_option
def restory(config_path: Path, db_path: Path) -> None:
    """Rebuild all stories (syndicated copies grouped) from the stored articles.

    Run it after changing the similarity threshold or the signature scheme. Holds
    the same lock as `veille run` (exit 75 if one is running).

    \b
    Example:

        veille restory --db storage/veille.db
    """
    from pipeline.run import restory as restory_all

    _rebuild("veille restory", restory_all, config_path, db_path)


def _rebuild(label: str, job: Any, config_path: Path, db_path: Path) -> None:
    """Run a whole-database pass (remention, restory): progress on a terminal, one summary line."""
    config = _load(config_path)
    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(label, total=None)
            report = job(
                config,
                db_path=db_path,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        report = job(config, db_path=db_path)
    click.echo(report.summary(), err=True)


# ------------------------------------------------------------------ sources


@cli.group(invoke_without_command=True)
@db_option
@click.pass_context
def sources(ctx: click.Context, db_path: Path) -> None:
    """Show each source's state (with no subcommand, or `list`); import or export OPML.

    Examples:

    \b
        veille sources --db storage/veille.db
        veille sources import abonnements.opml --dry-run
        veille sources export > veille.opml
    """
    ctx.obj = db_path
    if ctx.invoked_subcommand is None:
        _show_sources(db_path)


@sources.command("list")
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"The SQLite database.  [default: {DEFAULT_DB_PATH}]",
)
@click.pass_context
def sources_list(ctx: click.Context, db_path: Path | None) -> None:
    """Show each source's last status, failures, last new article and next check.

    A news search's feeds are each due at their own time within the interval; a line
    per search says how many come due in the next 24 hours, and at most in one hour.
    The next check is the source's interval after its last one, or later when the
    feed's Cache-Control max-age or Expires says its answer stays fresh longer.

    \b
    Example:

        veille sources list --db storage/veille.db
    """
    _show_sources(db_path or ctx.obj)


@sources.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@config_option
@click.option("--dry-run", is_flag=True, help="Check the file and list what would be added.")
def sources_import(file: Path, config_path: Path, dry_run: bool) -> None:
    """Add the feeds of an OPML file (a feed reader's export) to sources.yaml.

    Ids come from the feeds' titles; folders are not kept (a comment names each).
    Feeds already configured (same canonical URL) are skipped and listed. The new
    entries are added after the last source, the rest of the file left as it is. A
    broken file, or an xmlUrl that is not http(s), is refused with its line and
    nothing is written. Exit 0 when done, 2 when the file or the configuration is
    refused.

    \b
    Example:

        veille sources import abonnements.opml --config sources.yaml
    """
    from pipeline.sources.opml import import_opml

    report = import_opml(file, config_path=config_path, dry_run=dry_run)
    click.echo(report.summary(dry_run=dry_run), err=True)


@sources.command("export")
@config_option
def sources_export(config_path: Path) -> None:
    """Print the configured feeds as OPML 2.0, for Miniflux, FreshRSS or Thunderbird.

    Every `kind: feed` source is exported (disabled ones too). News searches (one
    feed per member), listing pages and sitemaps are not feeds a reader can take:
    they are left out, and counted on stderr.

    \b
    Example:

        veille sources export --config sources.yaml > veille.opml
    """
    from pipeline.sources.opml import export_opml

    exported = export_opml(_load(config_path))
    click.echo(exported.text, nl=False)
    click.echo(exported.summary(), err=True)


@sources.command("suggest")
@config_option
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_DB_PATH,
    show_default=True,
    help="The SQLite database the news searches were stored in.",
)
@click.option(
    "--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="The window."
)
@click.option(
    "--min",
    "minimum",
    default=3,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Member stories an outlet carried in the window.",
)
@click.option(
    "--outlet",
    "chosen",
    multiple=True,
    metavar="SITE",
    help="Only this outlet (its site, as listed; repeatable): the ones --write adds.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--write", is_flag=True, help="Add the feeds found to sources.yaml.")
@click.option(
    "--dry-run", is_flag=True, help="With --write: say what would be added, write nothing."
)
@click.option(
    "--site-timeout",
    default=90.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds one outlet's discovery may take.",
)
def sources_suggest(
    config_path: Path,
    db_path: Path,
    days: int,
    minimum: int,
    chosen: tuple[str, ...],
    as_json: bool,
    write: bool,
    dry_run: bool,
    site_timeout: float,
) -> None:
    """Suggest outlets the news searches show that are not sources yet, with their feed.

    An outlet is the site a news-search entry names (Google News' <source url>, or the
    publisher's URL a Bing News link carries). Those that carried at least --min
    stories naming a member (or the cluster) in the last --days, whose site is not
    already a source, a member's website or a news search's, are listed with how many
    stories, which members, and the feed their home page advertises, found as
    `veille members newsrooms` does (robots.txt, at most 30 requests and
    --site-timeout seconds an outlet). --write adds those with a feed (or sitemap, or
    press page) to sources.yaml, --outlet choosing which; a second run adds nothing.
    Exit 0, or 2 on a configuration error or without a database.

    \b
    Examples:

        veille sources suggest --days 90 --min 3
        veille sources suggest --outlet ouest-france.fr --write
    """
    import json
    from datetime import date, timedelta

    from pipeline.sources.newsroom import Proposal, Website, add_sources, discover_all
    from pipeline.sources.suggest import Carried, outlets

    if dry_run and not write:
        _fail("--dry-run only goes with --write", EXIT_USAGE)
    config = _load(config_path)
    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    store = Store.open(db_path)
    try:
        carried = [Carried(*row) for row in store.search_carried(utcnow() - timedelta(days=days))]
    finally:
        store.close()
    found = outlets(carried, config, minimum=minimum)
    if chosen:
        found = [o for o in found if o.site in chosen]
    sites = [Website(o.site, o.name, o.home) for o in found]
    results = asyncio.run(discover_all(sites, config.network, budget=site_timeout))
    for outlet, result in zip(found, results, strict=True):
        members = outlet.member_names()
        if as_json:
            record = {
                "outlet": outlet.site,
                "name": outlet.name,
                "home": outlet.home,
                "stories": len(outlet.stories),
                "members": members,
                **{k: v for k, v in result.as_json().items() if k != "member"},
            }
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        shown = ", ".join(members[:6]) + (
            f" and {len(members) - 6} more" if len(members) > 6 else ""
        )
        where = result.url or "-"
        if result.selector:
            where += f" selector {result.selector!r}"
        click.echo(
            f"{outlet.site} ({outlet.name}): {len(outlet.stories)} member stories ({shown})\n"
            f"    {result.kind:11} {where}\n    {result.reason}"
        )
    click.echo(
        f"suggest: {len(found)} outlet(s) with {minimum}+ member stories in {days} days "
        f"that are not sources; {sum(r.kind.found for r in results)} with a feed, sitemap or page",
        err=True,
    )
    if write:
        proposals = [
            Proposal(found=r, base_id=o.name or o.site, name=o.name, site=o.home)
            for o, r in zip(found, results, strict=True)
        ]
        report = add_sources(
            proposals,
            config_path=config_path,
            dry_run=dry_run,
            comment=f"outlets the news searches showed (veille sources suggest, {date.today()})",
        )
        click.echo(report.summary(dry_run=dry_run, what="source(s)"), err=True)


def _show_sources(db_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    now = utcnow()
    try:
        store = Store.open(db_path, migrate=False)
        rows = store.sources_report()
        store.close()
    except StoreError as exc:
        _fail(str(exc), EXIT_FAILED)
    table = Table(title=f"sources in {db_path}", title_justify="left")
    for column in (
        "source",
        "status",
        "fails",
        "articles",
        "last checked",
        "last new",
        "next check",
        "error",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row["last_status"] or "never run"
        if row["last_http_status"] and row["last_status"] != "error":
            status += f" ({row['last_http_status']})"
        if not row["enabled"]:
            status = "disabled"
        table.add_row(
            row["id"],
            status,
            str(row["consecutive_failures"] or 0),
            str(row["articles"]),
            _short(row["last_checked_at"]),
            _short(row["last_new_at"]),
            _next_check(row["next_check_at"], now),
            (row["last_error"] or row["last_warning"] or "")[:160],
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for line in _search_schedule(rows, now):
        console.print(line, highlight=False)


def _next_check(stamp: str | None, now: datetime) -> str:
    """ "next run" when due; else the UTC time and how far off it is."""
    if stamp is None or datetime.fromisoformat(stamp) <= now:
        return "next run"
    minutes = int((datetime.fromisoformat(stamp) - now).total_seconds() // 60)
    return f"{_short(stamp)} (in {minutes // 60} h {minutes % 60:02d})"


def _search_schedule(rows: list[dict[str, Any]], now: datetime) -> list[str]:
    """Per news search: its feeds, how many come due in the next 24 h, the busiest hour."""
    searches: dict[str, list[datetime | None]] = {}
    for row in rows:
        if row["kind"] == "search" and row["enabled"]:
            stamp = row["next_check_at"]
            searches.setdefault(row["id"].split(":", 1)[0], []).append(
                datetime.fromisoformat(stamp) if stamp else None
            )
    lines = []
    for template, times in sorted(searches.items()):
        now_due = sum(1 for t in times if t is None or t <= now)
        hours = [int((t - now).total_seconds() // 3600) for t in times if t and t > now]
        per_hour = Counter(h for h in hours if h < 24)
        lines.append(
            f"{template}: {len(times)} news-search feeds; due at the next run: {now_due}; "
            f"in the next 24 h: {sum(per_hour.values())}, at most "
            f"{max(per_hour.values(), default=0)} in one hour"
        )
    return lines


# ------------------------------------------------------------------ members


@cli.group()
def members() -> None:
    """The member directory: import the CRM's export, check the forms veille matches."""


@members.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@config_option
@click.option("--dry-run", is_flag=True, help="Check the file and report; write nothing.")
def members_import(file: Path, config_path: Path, dry_run: bool) -> None:
    """Merge a directory export (CSV) into the members file that sources.yaml names.

    A header row names the columns: `name` or `nom` (required), `aliases` (separated
    by ; or |), `website` or `site`, `city` or `ville`, `tags`, `joined`, `left`.
    Comma or semicolon, UTF-8 (with or without BOM) or Windows-1252. A bad file is
    refused with its line numbers and nothing is written; importing the same file
    again changes nothing. Exit 0 when done, 2 when the file or the configuration
    is refused.

    \b
    Example:

        veille members import annuaire.csv --config sources.yaml
    """
    from pipeline.settings.directory import import_directory

    report = import_directory(file, config_path=config_path, dry_run=dry_run)
    click.echo(report.summary() + (" (dry run: nothing written)" if dry_run else ""), err=True)


@members.command("check")
@config_option
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_DB_PATH,
    show_default=True,
    help="The SQLite database whose articles are matched again (forms only if it is absent).",
)
@click.option(
    "--weeks",
    default=CHECK_WEEKS,
    show_default=True,
    type=click.IntRange(1, 520),
    help="The window.",
)
@click.option("--member", "member_id", metavar="ID", help="Show this member's forms only.")
@click.option(
    "--apply",
    "apply_fixes",
    is_flag=True,
    help="Write the fixes suggested for the forms the team rejected to the members file.",
)
def members_check(
    config_path: Path, db_path: Path, weeks: int, member_id: str | None, apply_fixes: bool
) -> None:
    """Show every member's forms, the rule on each and why, and how often each matched.

    The articles first seen in the last --weeks are matched again with the current
    configuration: members never found, forms that never matched and forms that match
    suspiciously often come first, then the precision as the team judged it on the
    desk, the forms it rejected 3 times or more (in a third of their matches or more)
    with a fix (capitals, context words, or off; --apply writes them), then each
    member's forms. Exit 0, or 2 on a configuration error or an unknown --member.

    \b
    Example:

        veille members check --config sources.yaml --db storage/veille.db
        veille members check --member step-pharma
    """
    from datetime import UTC, datetime, timedelta

    from pipeline.analysis.formcheck import check, render_check

    config = _load(config_path)
    if member_id and member_id not in {m.slug for m in config.members}:
        _fail(f"--member: no member with id {member_id!r} in {config_path}", EXIT_USAGE)
    articles = None
    rejected: dict[tuple[str, str], int] | None = None
    team: str | None = None
    if db_path.exists():
        from pipeline.outputs.review import rejected_aliases, team_precision

        now = datetime.now(UTC)
        since = (now - timedelta(weeks=weeks)).strftime("%Y-%m-%dT%H:%M:%SZ")
        store = Store.open(db_path)
        try:
            articles = store.articles_since(since)
            rejected = rejected_aliases(store, since=now - timedelta(weeks=weeks))
            team = team_precision(store, now=now, weeks=weeks).sentence()
        finally:
            store.close()
    report = check(config, articles=articles, weeks=weeks, rejected=rejected, team=team)
    click.echo(render_check(report, only=member_id), nl=False)
    if apply_fixes:
        from pipeline.analysis.formcheck import fix_rule
        from pipeline.settings.directory import apply_form_rules

        fixes = [(m.forms.member_id, fix_rule(c)) for m, c in report.flagged]
        if not fixes:
            click.echo("--apply: no form to fix", err=True)
        for said in apply_form_rules(config_path, fixes):
            click.echo(f"--apply: {said}", err=True)


@members.command("newsrooms")
@config_option
@click.option("--member", "member_id", metavar="ID", help="Only this member (or the cluster's id).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line: member, kind, url, selector, reason.",
)
@click.option(
    "--write", is_flag=True, help="Add the newsrooms found to sources.yaml, each with its owner."
)
@click.option(
    "--dry-run", is_flag=True, help="With --write: say what would be added, write nothing."
)
@click.option(
    "--site-timeout",
    default=90.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds one site's discovery may take.",
)
def members_newsrooms(
    config_path: Path,
    member_id: str | None,
    as_json: bool,
    write: bool,
    dry_run: bool,
    site_timeout: float,
) -> None:
    """Find where each member with a website publishes its news: a feed, a sitemap or a press page.

    For the cluster and every member with a `website`: robots.txt, the home page, the
    feeds it advertises (comment feeds aside), the pages its navigation calls news,
    actualités, presse, communiqués or newsroom and their feeds, the usual feed paths,
    the news sitemaps robots.txt names, and last a press listing page with the CSS
    selector of its article links (tried on the page). One line per member: kind (feed,
    sitemap, page, none, unreachable, robots), URL, selector and why. Politely: robots.txt
    on every request, the User-Agent and per-host delay of sources.yaml, at most 30
    requests and --site-timeout seconds a site, no retries, the address policy. A member
    that already owns a source (`owner:`) is not asked again. --write adds what was found
    to sources.yaml with `owner: <member id>` (spliced after the last source, validated,
    atomic; a second run adds nothing). Exit 0, or 2 on a configuration error or an
    unknown --member.

    \b
    Examples:

        veille members newsrooms --json
        veille members newsrooms --member valneva
        veille members newsrooms --write
    """
    import json

    from pipeline.sources.newsroom import (
        Kind,
        Newsroom,
        add_newsrooms,
        discover_all,
        websites,
    )

    if dry_run and not write:
        _fail("--dry-run only goes with --write", EXIT_USAGE)
    config = _load(config_path)
    known = {config.cluster.id, *(m.slug for m in config.members)}
    if member_id and member_id not in known:
        _fail(f"--member: no member with id {member_id!r} in {config_path}", EXIT_USAGE)
    sites = websites(config, member=member_id)
    if member_id and not sites:
        _fail(f"--member: {member_id!r} has no website in the directory", EXIT_USAGE)
    owned = {spec.owner: spec for spec in config.specs if spec.owner}
    already = [
        Newsroom(
            site.member,
            Kind(owned[site.member].kind),
            url=owned[site.member].url,
            selector=owned[site.member].selector,
            reason=f'already the source "{owned[site.member].id}" (owner: {site.member})',
        )
        for site in sites
        if site.member in owned
    ]
    todo = [site for site in sites if site.member not in owned]

    def show(found: Newsroom) -> None:
        if as_json:
            click.echo(json.dumps(found.as_json(), ensure_ascii=False))
            return
        where = found.url or "-"
        if found.selector:
            where += f" selector {found.selector!r}"
        click.echo(f"{found.kind:11} {found.member}: {where}\n            {found.reason}")

    for found in already:
        show(found)
    results = asyncio.run(discover_all(todo, config.network, budget=site_timeout, progress=show))
    counts = Counter(str(r.kind) for r in results)
    spent = sum(r.requests for r in results)
    click.echo(
        f"newsrooms: {len(sites)} site(s), {len(already)} already sources; asked {len(todo)}: "
        + ", ".join(f"{counts.get(str(k), 0)} {k}" for k in Kind)
        + f"; {spent} requests",
        err=True,
    )
    if write:
        report = add_newsrooms(results, config_path=config_path, dry_run=dry_run)
        click.echo(report.summary(dry_run=dry_run), err=True)


# ------------------------------------------------------------------ alerts


def _check_alerts(config: Config) -> None:
    """The alert rules' environment variables and Apprise URLs: configuration errors for
    `veille check` (a run only warns, and sends the other rules' alerts)."""
    import os

    from pipeline.outputs.alerts import check_destinations

    if problems := check_destinations(config, os.environ):
        _fail(str(ConfigError(problems, path=config.path)), EXIT_USAGE)


alerts_limit_option = click.option(
    "--limit", default=30, show_default=True, type=click.IntRange(1, 10_000), help="Rows shown."
)


@cli.group(invoke_without_command=True)
@db_option
@alerts_limit_option
@click.pass_context
def alerts(ctx: click.Context, db_path: Path, limit: int) -> None:
    """Alerts sent after each pass: list recent deliveries and failures, send a test.

    `veille alerts` alone is `veille alerts list`.

    Examples:

    \b
        veille alerts
        veille alerts test comms
    """
    if ctx.invoked_subcommand is None:
        _list_alerts(db_path, limit)


@alerts.command("list")
@db_option
@alerts_limit_option
def alerts_list(db_path: Path, limit: int) -> None:
    """List the latest alerts, newest first: rule, status, attempts, destination, headline.

    Destinations are shown in Apprise's privacy form (tokens masked). A failed alert
    is tried again on the next passes; its last error is shown below it.

    \b
    Example:

        veille alerts list --db storage/veille.db --limit 50
    """
    _list_alerts(db_path, limit)


def _list_alerts(db_path: Path, limit: int) -> None:
    from pipeline.outputs.alerts import recent, waiting

    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    store = Store.open(db_path)  # brings the schema (the ledger) up to date
    try:
        with store.transaction("reading the alerts"):  # one snapshot for both reads
            rows = recent(store, limit=limit)
            to_send = waiting(store)
    finally:
        store.close()
    if not rows:
        click.echo(f"no alerts in {db_path} yet")
        return
    for row in rows:
        what = (
            f"summary of {row['story_count']} stories: {row['title']}"
            if row["kind"] == "summary"
            else f"{row['story_count']} stories not sent (rule silenced)"
            if row["kind"] == "muted"
            else row["title"]
        )
        when = _short(row["sent_at"] or row["created_at"])
        click.echo(
            f"{when}  {row['rule_id']}  {row['status']:8} x{row['attempts']}  "
            f"{_where(row['destination'])}  {what[:100]}"
        )
        if row["last_error"] and row["status"] != "sent":
            click.echo(f"    last error: {row['last_error']}")
    click.echo(f"{to_send} alert(s) waiting to be sent or retried", err=True)


def _where(destination: str) -> str:
    """A destination as a person reads it: its privacy form without Apprise's options."""
    return destination.split("?", 1)[0] or "-"


@alerts.command("test")
@click.argument("rule_id", metavar="ID")
@config_option
def alerts_test(rule_id: str, config_path: Path) -> None:
    """Send a test message to every destination of an alert rule; say what each answered.

    Exit 0 when every destination took it, 1 when one refused it, 2 for an unknown
    rule or a variable that is not set or holds an invalid URL.

    \b
    Example:

        VEILLE_ALERTS_COMMS='json://127.0.0.1:8000/hook' veille alerts test comms
    """
    import os

    from pipeline.outputs.alerts import send_test

    config = _load(config_path)
    try:
        results = send_test(config, rule_id, env=os.environ)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    failed = 0
    for label, error in results:
        failed += error is not None
        click.echo(
            f"  {'ok' if error is None else 'error':5} {_where(label)}"
            + (f": {error}" if error else "")
        )
    click.echo(f"alert {rule_id}: {len(results) - failed} ok, {failed} failed")
    if failed:
        sys.exit(EXIT_FAILED)


def _short(stamp: str | None) -> str:
    return stamp.replace("T", " ").removesuffix("Z")[:16] if stamp else "-"


# ------------------------------------------------------------------ review


@cli.group()
def review() -> None:
    """The team's verdicts, as the desk's buttons record them: reject, drop, highlight, add, undo, approve.

    URL is any copy's URL, as stored or as the feed gave it; a verdict holds for
    every copy of its story, later ones included. Unknown URL or member: exit 2,
    nothing written. --by names who decides (default "cli").
    """


by_option = click.option(
    "--by", default="cli", show_default=True, help="Who gives the verdict (an account name)."
)


@contextmanager
def _review_store(db_path: Path) -> Iterator[Store]:
    if not db_path.exists():
        _fail(f"no database at {db_path}: run `veille run` first", EXIT_USAGE)
    store = Store.open(db_path)
    try:
        yield store
    finally:
        store.close()


def _review_week(config: Config, store: Store, week: str | None) -> Any:
    from pipeline.outputs.digest import Week
    from pipeline.outputs.review import review_week

    zone = config.schedule.zone
    if week is None:
        return review_week(store, utcnow(), zone)
    try:
        return Week.parse(week, zone)
    except ValueError as exc:
        _fail(f"--week: {exc}", EXIT_USAGE)


def _said(recorded: Any) -> None:
    click.echo(recorded.message, err=True)


@review.command("list")
@config_option
@db_option
@click.option(
    "--week", metavar="W", help="The ISO week (2026-W48); default: the week under review."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def review_list(config_path: Path, db_path: Path, week: str | None, as_json: bool) -> None:
    """The week as the digest will show it, with the verdicts given on it.

    \b
    Example:

        veille review list --week 2026-W48
    """
    import json

    from pipeline.outputs.desk import week_view

    config = _load(config_path)
    with _review_store(db_path) as store:
        chosen = _review_week(config, store, week)
        view = week_view(config, store, chosen, now=utcnow(), db_name=db_path.stem)
    if as_json:
        click.echo(json.dumps(view.as_json(), ensure_ascii=False, indent=2))
        return
    click.echo(view.as_text(), nl=False)


@review.command("reject")
@click.argument("url")
@click.option(
    "--member", "member_id", required=True, metavar="ID", help="The member wrongly found."
)
@click.option("--why", help="Why (kept with the verdict).")
@config_option
@db_option
@by_option
def review_reject(
    url: str, member_id: str, why: str | None, config_path: Path, db_path: Path, by: str
) -> None:
    """Not about this member: the story no longer names it anywhere.

    \b
    Example:

        veille review reject https://www.example.org/a --member ose-immunotherapeutics --why "l'OSE, pas la société"
    """
    from pipeline.outputs.review import reject

    with _review_store(db_path) as store:
        _said(reject(store, url=url, member_id=member_id, by=by, why=why, now=utcnow()))


@review.command("drop")
@click.argument("url")
@click.option("--why", help="Why (kept with the verdict).")
@config_option
@db_option
@by_option
def review_drop(url: str, why: str | None, config_path: Path, db_path: Path, by: str) -> None:
    """Not relevant: the story leaves the digest, the alerts and the feeds.

    \b
    Example:

        veille review drop https://www.example.org/a --why "publi-reportage"
    """
    from pipeline.outputs.review import drop

    with _review_store(db_path) as store:
        _said(drop(store, url=url, by=by, why=why, now=utcnow()))


@review.command("highlight")
@click.argument("url")
@click.option("--comment", help="One or two sentences, shown with the story in the digest.")
@config_option
@db_option
@by_option
def review_highlight(
    url: str, comment: str | None, config_path: Path, db_path: Path, by: str
) -> None:
    """First in the digest, with a comment.

    \b
    Example:

        veille review highlight https://www.example.org/a --comment "Première levée de la société."
    """
    from pipeline.outputs.review import highlight

    with _review_store(db_path) as store:
        _said(highlight(store, url=url, by=by, comment=comment, now=utcnow()))


@review.command("add")
@click.argument("url")
@click.option(
    "--member", "member_id", required=True, metavar="ID", help="The member veille missed."
)
@config_option
@db_option
@by_option
def review_add(url: str, member_id: str, config_path: Path, db_path: Path, by: str) -> None:
    """A mention veille missed: the story names this member.

    \b
    Example:

        veille review add https://www.example.org/a --member xenothera
    """
    from pipeline.outputs.review import add

    with _review_store(db_path) as store:
        _said(add(store, url=url, member_id=member_id, by=by, now=utcnow()))


@review.command("article")
@click.argument("url")
@click.option("--member", "member_id", metavar="ID", help="A member it names, if veille misses it.")
@config_option
@db_option
@by_option
def review_article(
    url: str, member_id: str | None, config_path: Path, db_path: Path, by: str
) -> None:
    """Add an article veille did not find, by its URL: read with the same network rules
    and bounds as any page, analysed and stored; with --member, that member added to it.

    \b
    Example:

        veille review article https://www.example.org/interview --member xenothera
    """
    from pipeline.outputs.review import add_article

    config = _load(config_path)
    with _review_store(db_path) as store:
        _said(add_article(config, store, url=url, member_id=member_id, by=by, now=utcnow()))


@review.command("undo")
@click.argument("verdict_id", type=int)
@config_option
@db_option
@by_option
def review_undo(verdict_id: int, config_path: Path, db_path: Path, by: str) -> None:
    """Cancel a verdict (recorded as another verdict; nothing is deleted).

    \b
    Example:

        veille review undo 12
    """
    from pipeline.outputs.review import undo

    with _review_store(db_path) as store:
        _said(undo(store, verdict_id=verdict_id, by=by, now=utcnow()))


@review.command("approve")
@click.option(
    "--week", metavar="W", help="The ISO week (2026-W48); default: the week under review."
)
@config_option
@db_option
@by_option
def review_approve(week: str | None, config_path: Path, db_path: Path, by: str) -> None:
    """Approve the week: with digest.review, its digest may now be sent.

    \b
    Example:

        veille review approve --week 2026-W48 --by claire
    """
    from pipeline.outputs.review import approve

    config = _load(config_path)
    with _review_store(db_path) as store:
        _said(approve(store, week=_review_week(config, store, week), by=by, now=utcnow()))


@review.command("account")
@click.argument("name")
@db_option
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
def review_account(name: str, db_path: Path, password_stdin: bool) -> None:
    """Add a desk account (or change its password): it logs in to the desk and gives verdicts.

    The account's password hash goes to the accounts file beside the database
    (storage/veille.desk.json for storage/veille.db, readable by its owner only);
    `veille datasette` reads it at start.

    \b
    Example:

        veille review account claire --db storage/veille.db
    """
    from datasette_auth_passwords.utils import hash_password as make_hash

    from pipeline.outputs.serve import accounts_path, save_account

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        _fail("the password needs 8 characters or more", EXIT_USAGE)
    path = accounts_path(db_path)
    save_account(path, name, make_hash(password))
    click.echo(f"desk account {name!r} saved in {path}; restart `veille datasette`", err=True)


def main() -> None:
    """Entry point of the `veille` script."""
    try:
        cli.main(standalone_mode=True)
    # the exit codes of the library's errors, for every command: one clean line, no traceback
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except LockHeld as exc:
        _fail(str(exc), EXIT_LOCKED)
    except ReviewError as exc:
        _fail(str(exc), EXIT_USAGE)
    except VeilleError as exc:
        _fail(str(exc), EXIT_FAILED)
