"""Alerts: stored stories that match a rule of sources.yaml -> one message each, sent with
Apprise to the URLs an environment variable holds, recorded in the `alerts` ledger.

After each pass (``veille run`` or a pass of ``veille schedule``) every rule is served in
three steps:

1. its destinations: the Apprise URLs in the environment variable ``to`` (checked here,
   not when sources.yaml is loaded, so a missing variable never stops a run's feeds: it
   is a WARNING line for the rule, and its stories wait for a later pass);
2. its new stories: the stories with a copy first seen within ``max_age_days`` that name
   one of the rule's members (in the headline with ``in_title``), with one of its topics,
   whose earliest copy is not older than ``max_age_days``, and that no message of the rule
   has told yet (a story is one for all its copies, so a copy found later sends nothing);
   each becomes one ledger row per destination, or, beyond ``max_per_run`` in one pass,
   one summary row; a silenced rule (``enabled: false``) records them as ``muted``;
3. the ledger's rows still to send, each to its own destination (one Apprise object per
   URL, since ``notify()`` answers one boolean for all of them).

A row moves from ``pending`` to ``sending`` (committed before the message leaves) to
``sent`` or ``failed``; a failed row is tried again on the next passes, ``MAX_ATTEMPTS``
times in all, then ``given-up``. A destination that fails is not tried again in the same
pass; the others go on. A process killed while sending leaves ``sending``: the next pass
sends that message again, marked as sent again, since nobody can tell whether it left. A
comms team would rather read a story twice than miss it; the window is one HTTP request.

Destinations are stored and logged in Apprise's privacy form only (``url(privacy=True)``):
webhook URLs carry their tokens. Apprise's own log (which names URLs at debug level) is
kept out of veille's; the warning it gives on a failure is recorded with the tokens masked.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import apprise
from apprise.conversion import convert_between
from babel.dates import format_date

from pipeline.errors import ConfigError
from pipeline.settings.config import AlertRule, Config
from pipeline.storage.store import EARNED_SQL, WHILE_MEMBER_SQL, Store, from_iso, iso

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # sends of one message to one destination, one per pass
TITLE_LIMIT = 200
SNIPPET_LIMIT = 300
NAMES_LIMIT = 200  # the members and the outlets lines
URL_LIMIT = 1000
SUMMARY_TITLES = 5  # headlines a summary message names
MAX_URLS_PER_RULE = 20
LIST_LIMIT = 30  # rows `veille alerts` shows by default
TO_SEND = ("pending", "sending", "failed")

# Apprise's debug lines name the URLs it posts to, tokens included: never in veille's log
_apprise_log = logging.getLogger("apprise")
_apprise_log.propagate = False
_apprise_log.setLevel(logging.WARNING)
# urllib3 (under Apprise's requests) logs every request line at debug: webhook paths are tokens
logging.getLogger("urllib3").setLevel(logging.ERROR)
_ASSET = apprise.AppriseAsset(storage_mode="memory")  # nothing written under $HOME

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "members": "Cité",
        "outlets": "Média",
        "also": "aussi dans",
        "date": "Date",
        "link": "Lien",
        "again": "(renvoyé : l'envoi précédent a été interrompu, il est peut-être déjà arrivé)",
        "summary_title": "Veille {cluster} : et {n} autres sujets",
        "summary_body": "Et {n} autres sujets nouveaux pour l'alerte « {rule} », "
        "au-delà de {limit} messages en un passage :",
        "summary_where": "Tous les sujets : {url}",
        "summary_digest": "Ils figureront dans la synthèse hebdomadaire ; `veille alerts` "
        "liste les alertes.",
        "test_title": "Veille {cluster} : message de test",
        "test_body": "Message de test de l'alerte « {rule} » : cette destination recevra "
        "les nouveaux sujets qui correspondent à la règle.",
    },
    "en": {
        "members": "Named",
        "outlets": "Outlet",
        "also": "also in",
        "date": "Date",
        "link": "Link",
        "again": "(sent again: the previous attempt was interrupted and may have arrived)",
        "summary_title": "Veille {cluster}: and {n} more stories",
        "summary_body": "And {n} more new stories for the alert “{rule}”, beyond "
        "{limit} messages in one pass:",
        "summary_where": "Every story: {url}",
        "summary_digest": "They will be in the weekly digest; `veille alerts` lists the alerts.",
        "test_title": "Veille {cluster}: test message",
        "test_body": "Test message of the alert “{rule}”: this destination will receive the "
        "new stories that match the rule.",
    },
}
_LOCALES = {"fr": "fr_FR", "en": "en_GB"}


# ---------------------------------------------------------------- text that stays text

_DROPPED = ("Cf", "Co", "Cs", "Cn")  # bidi overrides, zero-width marks, private, unassigned
_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)")  # @channel, @here, @everyone, @someone


def inert(text: object, limit: int) -> str:
    """Feed text made safe for a chat message: one line, no control or invisible
    characters, no @mention that would ping a channel, at most ``limit`` characters.
    (Markup is escaped by Apprise itself for the destinations that render it: the
    messages are sent as body_format text.)"""
    value = unicodedata.normalize("NFC", str(text or ""))
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category in _DROPPED:
            continue
        kept.append(" " if category in ("Cc", "Zl", "Zp") else char)
    value = " ".join("".join(kept).split())
    value = _MENTION.sub("\uff20", value)  # a full-width at sign: read as @, pings nobody
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


def link(url: str | None) -> str | None:
    """A URL fit to be a link in a message: http(s), a host, nothing invisible, bounded."""
    if not url or len(url) > URL_LIMIT:
        return None
    if any(c.isspace() or unicodedata.category(c)[0] == "C" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


# ---------------------------------------------------------------- destinations


@dataclass(frozen=True, slots=True)
class Destination:
    """One Apprise URL: ``label`` (the privacy form) is what is stored and logged."""

    label: str
    url: str = field(repr=False)


def destinations(rule: AlertRule, index: int, env: Mapping[str, str]) -> list[Destination]:
    """The Apprise URLs of ``rule`` (the ``index``-th of ``alerts:``) from the environment,
    separated by spaces, commas or new lines. Raises ConfigError by path; its lines never
    quote a URL (it carries a token)."""
    where = f"alerts[{index}].to"
    value = env.get(rule.to)
    if value is None:
        raise ConfigError([f"{where}: the environment variable {rule.to} is not set"])
    urls = [u for u in re.split(r"[\s,]+", value) if u]
    if not urls:
        raise ConfigError([f"{where}: the environment variable {rule.to} is empty"])
    if len(urls) > MAX_URLS_PER_RULE:
        raise ConfigError(
            [f"{where}: {rule.to} holds {len(urls)} URLs (at most {MAX_URLS_PER_RULE})"]
        )
    found: list[Destination] = []
    problems: list[str] = []
    for position, url in enumerate(urls, start=1):
        plugin = apprise.Apprise.instantiate(url, asset=_ASSET, suppress_exceptions=True)
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            problems.append(
                f"{where}: URL {position} of {rule.to} is not a valid Apprise URL "
                f"(scheme {inert(scheme, 20)!r}; see the README's section on alerts)"
            )
            continue
        label = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        if any(d.label == label for d in found):
            problems.append(
                f"{where}: URL {position} of {rule.to} repeats an earlier one ({label})"
            )
            continue
        found.append(Destination(label=label, url=url))
    if problems:
        raise ConfigError(problems)
    return found


def check_destinations(config: Config, env: Mapping[str, str]) -> list[str]:
    """The problems of every enabled rule's destinations (for `veille check`)."""
    problems: list[str] = []
    for index, rule in enumerate(config.alerts):
        if not rule.enabled:
            continue
        try:
            destinations(rule, index, env)
        except ConfigError as exc:
            problems += exc.problems
    return problems


def rule_by_id(config: Config, rule_id: str) -> tuple[int, AlertRule]:
    for index, rule in enumerate(config.alerts):
        if rule.id == rule_id:
            return index, rule
    known = ", ".join(r.id for r in config.alerts) or "none configured"
    raise ConfigError([f"no alert rule {rule_id!r} (rules: {known})"], path=config.path)


def _secrets(url: str, label: str) -> list[str]:
    """The parts of a URL its privacy form hides: what must never be written anywhere."""
    pieces = re.split(r"[/:@?&=#.,;+%\s]+", unquote(url))
    hidden = [p for p in pieces if len(p) >= 4 and p not in label]
    return sorted({url, unquote(url), *hidden}, key=len, reverse=True)


def redact(text: str, destination: Destination) -> str:
    for secret in _secrets(destination.url, destination.label):
        text = text.replace(secret, "****")
    return text


# Chats that render Markdown in a message Apprise sends them as plain text (their plugin
# takes text first, so Apprise converts nothing): veille escapes it for them. Apprise
# escapes plain text itself for the Markdown-first ones (Teams Workflows, Google Chat),
# and Slack's plugin escapes &, < and > (its links and mentions).
MARKDOWN_CHATS = frozenset(
    {"mmost", "mmosts", "discord", "zulip", "guilded", "revolt", "ryver", "rocket", "rockets"}
)
_URL = re.compile(r"(https?://[^\s<>]+)")


def renders_markdown(plugin: Any) -> bool:
    formats = plugin.notify_format
    first = formats[0] if isinstance(formats, tuple) else formats
    schemes = {plugin.protocol, plugin.secure_protocol}
    names = {s for item in schemes for s in (item if isinstance(item, tuple) else (item,))}
    return bool(first == apprise.NotifyFormat.TEXT and names & MARKDOWN_CHATS)


def for_markdown(text: str) -> str:
    """Plain text that a Markdown renderer shows as written: every Markdown character
    escaped (Apprise's own converter), the links as autolinks (no escape inside them)."""
    parts = _URL.split(text)
    return "".join(
        f"<{part}>"
        if index % 2
        else convert_between(apprise.NotifyFormat.TEXT, apprise.NotifyFormat.MARKDOWN, part)  # type: ignore[no-untyped-call]
        for index, part in enumerate(parts)
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def notify(destination: Destination, *, title: str, body: str) -> str | None:
    """Send one message to one destination; None when it was accepted, else why not
    (Apprise's own words, tokens masked)."""
    collect = _Collect()
    _apprise_log.addHandler(collect)
    try:
        plugin = apprise.Apprise.instantiate(destination.url, asset=_ASSET)
        sender = apprise.Apprise(asset=_ASSET)
        if plugin is None or not sender.add(plugin):
            return "not a valid Apprise URL"
        if renders_markdown(plugin):
            title, body = for_markdown(title), for_markdown(body)
        ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    except Exception as exc:  # a plugin's bug: this destination fails, the others go on
        return f"internal error in Apprise: {type(exc).__name__}"
    finally:
        _apprise_log.removeHandler(collect)
    if ok:
        return None
    said = " ".join(" ".join(line.split()) for line in collect.lines[-2:])
    return inert(redact(said, destination), 300) or "the destination refused the message"


# ---------------------------------------------------------------- stories to tell


@dataclass(frozen=True, slots=True)
class Candidate:
    """A story a rule has not told yet, as its message shows it."""

    story_key: int
    articles: tuple[int, ...]  # every stored copy (the ledger records them all)
    title: str
    url: str | None
    when: datetime
    members: tuple[str, ...]
    outlets: tuple[str, ...]
    snippet: str


def _told(store: Store, rule_id: str) -> set[int]:
    """Article ids some message (or muted row) of the rule already covers."""
    return {
        int(row[0])
        for row in store.rows(
            f"reading the alerts of rule {rule_id}",
            "SELECT j.value FROM alerts l, json_each(l.articles) j WHERE l.rule_id = ?",
            [rule_id],
        )
    }


def candidates(store: Store, rule: AlertRule, *, now: datetime) -> list[Candidate]:
    """The rule's stories not told yet, newest first."""
    since = iso(now - timedelta(days=rule.max_age_days))
    # a story waits delay_minutes after it was first seen: the team may drop it meanwhile
    ready = iso(now - timedelta(minutes=rule.delay_minutes))
    where = ["a.first_seen_at >= :since", "a.first_seen_at <= :ready", WHILE_MEMBER_SQL]
    params: dict[str, Any] = {"since": since, "ready": ready}
    if rule.members is None:
        where.append("mb.kind IN ('member', 'cluster')")
    else:
        names = [f":m{i}" for i in range(len(rule.members))]
        where.append(f"m.member_id IN ({', '.join(names)})")
        params.update({f"m{i}": member for i, member in enumerate(rule.members)})
    if rule.in_title:
        where.append("m.in_title = 1")
    if rule.owned is not None:  # false: press coverage only; true: the members' own releases
        where.append(f"NOT ({EARNED_SQL})" if rule.owned else EARNED_SQL)
    if rule.topics is not None:
        names = [f":t{i}" for i in range(len(rule.topics))]
        where.append(
            f"EXISTS (SELECT 1 FROM json_each(coalesce(a.topics, '[]')) t "
            f"WHERE t.value IN ({', '.join(names)}))"
        )
        params.update({f"t{i}": topic for i, topic in enumerate(rule.topics)})
    matches: dict[int, list[tuple[str, str, int, str, str]]] = {}
    for key, member, in_title, snippet, seen, name in store.rows(
        "reading the mentions an alert rule may tell",
        f"""
        SELECT coalesce(a.story_id, -a.id), m.member_id, m.in_title, m.snippet,
               coalesce(a.published_at, a.first_seen_at), mb.name
        FROM articles a JOIN judged_mentions m ON m.article_id = a.id
        JOIN members mb ON mb.id = m.member_id
        WHERE {" AND ".join(where)}
        """,
        params,
    ):
        matches.setdefault(int(key), []).append((member, name, int(in_title), snippet, seen))
    if not matches:
        return []
    told = _told(store, rule.id)
    found: list[Candidate] = []
    for key, hits in matches.items():
        # a story's copies (by the story's index), or the article alone when it has none
        which = "a.story_id = :key" if key > 0 else "a.id = -:key"
        copies = store.rows(
            "reading a story's copies",
            f"""
            SELECT a.id, a.title, a.url, a.link, coalesce(a.outlet, s.name),
                   coalesce(a.published_at, a.first_seen_at)
            FROM articles a LEFT JOIN sources s ON s.id = a.source_id
            WHERE {which} AND a.first_seen_at <= :now
            ORDER BY coalesce(a.published_at, a.first_seen_at), a.id
            """,
            {"key": key, "now": iso(now)},
        )
        if not copies or any(int(c[0]) in told for c in copies):
            continue  # told before (perhaps through another copy)
        first = copies[0]
        when = from_iso(first[5]) or now
        if first[5] < since:
            continue  # an old story that gained a copy: not news
        hits.sort(key=lambda h: (-h[2], h[4], h[1]))
        members = tuple(dict.fromkeys(h[1] for h in hits))
        outlets = tuple(dict.fromkeys(str(c[4]) for c in copies if c[4]))
        found.append(
            Candidate(
                story_key=key,
                articles=tuple(int(c[0]) for c in copies),
                title=first[1] or first[2],
                url=link(first[2]) or link(first[3]),
                when=when,
                members=members,
                outlets=outlets,
                snippet=hits[0][3] or "",
            )
        )
    found.sort(key=lambda c: (c.when, c.story_key), reverse=True)
    return found


# ---------------------------------------------------------------- messages


def _labels(config: Config) -> dict[str, str]:
    return LABELS[config.digest.language]


def story_message(config: Config, story: Candidate) -> tuple[str, str]:
    """(title, body) of one story's alert, in the digest's language, as plain text."""
    t = _labels(config)
    day = format_date(
        story.when.astimezone(config.schedule.zone),
        "EEE d MMM y",
        locale=_LOCALES[config.digest.language],
    )
    outlets = inert(story.outlets[0], 80) if story.outlets else ""
    if len(story.outlets) > 1:
        outlets += f" ({t['also']} {', '.join(story.outlets[1:])})"
    colon = " :" if config.digest.language == "fr" else ":"
    named = t["members"] + (
        "s" if len(story.members) > 1 and config.digest.language == "fr" else ""
    )
    lines = [f"{named}{colon} {inert(', '.join(story.members), NAMES_LIMIT)}"]
    if outlets:
        lines.append(f"{t['outlets']}{colon} {inert(outlets, NAMES_LIMIT)}")
    lines.append(f"{t['date']}{colon} {day}")
    if snippet := inert(story.snippet, SNIPPET_LIMIT):
        lines.append(f"« {snippet} »" if config.digest.language == "fr" else f"“{snippet}”")
    if story.url:
        lines.append(f"{t['link']}{colon} {story.url}")
    return inert(story.title, TITLE_LIMIT), "\n".join(lines)


def summary_message(
    config: Config, rule: AlertRule, stories: Sequence[Candidate], *, db_name: str, now: datetime
) -> tuple[str, str]:
    """(title, body) of the message that stands for ``stories`` beyond max_per_run."""
    t = _labels(config)
    n = len(stories)
    title = t["summary_title"].format(cluster=config.cluster.name, n=n)
    lines = [t["summary_body"].format(n=n, rule=rule.id, limit=rule.max_per_run)]
    lines += [f"- {inert(s.title, 120)}" for s in stories[:SUMMARY_TITLES]]
    if n > SUMMARY_TITLES:
        lines.append("- …")
    if config.digest.datasette_url:
        since = (now - timedelta(days=rule.max_age_days)).strftime("%Y-%m-%d")
        where = (
            f"{config.digest.datasette_url.rstrip('/')}/{quote(db_name)}/mention_details"
            f"?date__gte={since}&_sort_desc=date"
        )
        lines.append(t["summary_where"].format(url=where))
    else:
        lines.append(t["summary_digest"])
    return inert(title, TITLE_LIMIT), "\n".join(lines)


def test_message(config: Config, rule: AlertRule) -> tuple[str, str]:
    t = _labels(config)
    return (
        t["test_title"].format(cluster=config.cluster.name),
        t["test_body"].format(rule=rule.id),
    )


# ---------------------------------------------------------------- the pass


@dataclass
class RuleOutcome:
    rule_id: str
    new_stories: int = 0
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # "<destination>: <why>"
    problem: str | None = None  # the rule could not be served (its variable, ...)


@dataclass
class AlertsReport:
    rules: list[RuleOutcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.rules)


def _record(
    store: Store,
    rule: AlertRule,
    *,
    kind: str,
    articles: Sequence[int],
    count: int,
    title: str,
    body: str,
    url: str | None,
    targets: Sequence[Destination],
    status: str,
    now: datetime,
) -> None:
    with store.transaction(f"recording alerts of rule {rule.id}"):
        for target in targets or [Destination(label="", url="")]:
            store.execute(
                f"recording an alert of rule {rule.id}",
                """
                INSERT INTO alerts (rule_id, kind, articles, story_count, destination, title,
                                    body, url, status, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    rule.id,
                    kind,
                    json.dumps(list(articles)),
                    count,
                    target.label,
                    title,
                    body,
                    url,
                    status,
                    iso(now),
                ],
            )


def plan(
    config: Config,
    store: Store,
    rule: AlertRule,
    targets: Sequence[Destination],
    *,
    now: datetime,
) -> int:
    """Step 2: the rule's new stories -> ledger rows (pending, or muted). Returns how many."""
    stories = candidates(store, rule, now=now)
    if not stories:
        return 0
    if not rule.enabled:
        _record(
            store,
            rule,
            kind="muted",
            articles=[a for s in stories for a in s.articles],
            count=len(stories),
            title="",
            body="",
            url=None,
            targets=[],
            status="muted",
            now=now,
        )
        return len(stories)
    alone, summed = stories[: rule.max_per_run], stories[rule.max_per_run :]
    # oldest first: the channel reads in the order the news came
    for story in reversed(alone):
        title, body = story_message(config, story)
        _record(
            store,
            rule,
            kind="story",
            articles=story.articles,
            count=1,
            title=title,
            body=body,
            url=story.url,
            targets=targets,
            status="pending",
            now=now,
        )
    if summed:
        title, body = summary_message(config, rule, summed, db_name=store.path.stem, now=now)
        _record(
            store,
            rule,
            kind="summary",
            articles=[a for s in summed for a in s.articles],
            count=len(summed),
            title=title,
            body=body,
            url=None,
            targets=targets,
            status="pending",
            now=now,
        )
    return len(stories)


def _set(store: Store, row_id: int, **values: Any) -> None:
    assignments = ", ".join(f"{name} = ?" for name in values)
    with store.transaction("recording an alert"):
        store.execute(
            "recording an alert",
            f"UPDATE alerts SET {assignments} WHERE id = ?",
            [*values.values(), row_id],
        )


def deliver(
    config: Config,
    store: Store,
    rule: AlertRule,
    targets: Sequence[Destination],
    outcome: RuleOutcome,
    *,
    now: datetime,
) -> None:
    """Step 3: the rule's rows still to send, oldest first, each to its destination."""
    t = _labels(config)
    by_label = {d.label: d for d in targets}
    down: set[str] = set()
    rows = store.rows(
        f"reading the alerts of rule {rule.id} to send",
        f"SELECT id, destination, title, body, status, attempts FROM alerts "
        f"WHERE rule_id = ? AND status IN ({', '.join('?' * len(TO_SEND))}) ORDER BY id",
        [rule.id, *TO_SEND],
    )
    for row_id, label, title, body, status, attempts in rows:
        target = by_label.get(label)
        if target is None:
            _set(
                store, row_id, status="dropped", last_error=f"no longer a destination in {rule.to}"
            )
            continue
        if label in down:
            continue  # it failed a moment ago: tried again on the next pass
        if status == "sending":  # killed while sending: it may have arrived
            body = f"{body}\n{t['again']}"
        _set(store, row_id, status="sending", attempts=attempts + 1, sending_at=iso(now))
        error = notify(target, title=title, body=body)
        if error is None:
            _set(store, row_id, status="sent", sent_at=iso(now), last_error=None)
            outcome.sent += 1
            continue
        final = attempts + 1 >= MAX_ATTEMPTS
        _set(store, row_id, status="given-up" if final else "failed", last_error=error)
        down.add(label)
        outcome.failed.append(f"{label}: {error}" + (" (given up)" if final else ""))


def send_alerts(
    config: Config, store: Store, *, env: Mapping[str, str], now: datetime
) -> AlertsReport:
    """Serve every rule after a pass. Never raises: what failed is in the report and in
    one WARNING line per rule (alerts never change a run's exit code)."""
    report = AlertsReport()
    for index, rule in enumerate(config.alerts):
        outcome = RuleOutcome(rule.id)
        report.rules.append(outcome)
        try:
            targets: list[Destination] = []
            if rule.enabled:
                targets = destinations(rule, index, env)
            outcome.new_stories = plan(config, store, rule, targets, now=now)
            if rule.enabled:
                deliver(config, store, rule, targets, outcome, now=now)
        except ConfigError as exc:
            outcome.problem = "; ".join(exc.problems) + "; its stories wait for a later pass"
        except Exception as exc:  # the database or a bug: the run's own work is saved
            outcome.problem = f"{type(exc).__name__}: {inert(exc, 300)}"
        if outcome.problem:
            logger.warning("alert=%s not sent: %s", rule.id, outcome.problem)
        for failure in outcome.failed:
            logger.warning("alert=%s failed: %s; tried again on the next pass", rule.id, failure)
        if outcome.sent or outcome.new_stories:
            logger.info(
                "alert=%s new_stories=%d sent=%d failed=%d",
                rule.id,
                outcome.new_stories,
                outcome.sent,
                len(outcome.failed),
            )
    return report


def send_test(
    config: Config, rule_id: str, *, env: Mapping[str, str]
) -> list[tuple[str, str | None]]:
    """(destination label, None or why it failed) for a test message to each destination
    of a rule. Raises ConfigError (unknown rule, its variable)."""
    index, rule = rule_by_id(config, rule_id)
    try:
        targets = destinations(rule, index, env)
    except ConfigError as exc:
        raise ConfigError(exc.problems, path=config.path) from None
    title, body = test_message(config, rule)
    return [(target.label, notify(target, title=title, body=body)) for target in targets]


def recent(store: Store, *, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The latest ledger rows, newest first (muted rows included)."""
    return store.records(
        "reading the alerts",
        "SELECT id, rule_id, kind, story_count, destination, title, status, attempts, "
        "created_at, sent_at, last_error FROM alerts ORDER BY id DESC LIMIT ?",
        [limit],
    )


def waiting(store: Store) -> int:
    """How many ledger rows are still to be sent or retried."""
    found = store.row(
        "counting the alerts to send",
        f"SELECT count(*) FROM alerts WHERE status IN ({', '.join('?' * len(TO_SEND))})",
        list(TO_SEND),
    )
    return int(found[0]) if found else 0
