"""The weekly digest: what the store holds for one ISO week, as an e-mail in French or English.

A week is Monday 00:00 to Monday 00:00 in the schedule's time zone. An article belongs
to the week in which veille first saw it, so every article is in exactly one digest
(nothing missed when a site publishes late, nothing twice). Two rules keep a digest
about news: an article published more than ``digest.backlog_days`` (14) before the week began (a
new source's back catalogue) is left out, and a story already reported in an earlier
week is not reported again when more outlets pick it up.

Everything shown comes from feeds and pages, so it is text: the templates escape it
(Jinja2 autoescaping), and only http(s) URLs become links.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_interval
from babel.dates import format_datetime as babel_datetime
from babel.numbers import format_compact_currency, format_decimal
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.errors import ConfigError
from pipeline.outputs.outlets import OutletMap
from pipeline.settings.config import Config
from pipeline.storage.store import EARNED_SQL, WHILE_MEMBER_SQL, Store, from_iso, iso

BACKLOG_DAYS = 14
CHART_WEEKS = 8
MAX_ERRORS_LISTED = 15
_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


# ---------------------------------------------------------------- weeks


@dataclass(frozen=True, slots=True)
class Week:
    """An ISO week in a time zone: ``Week.parse("2026-W48", zone)``."""

    year: int
    number: int
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo) -> Week:
        match = _WEEK.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not an ISO week (write it like 2026-W48)")
        year, number = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ValueError(f"{text!r}: {year} has no week {number}") from None
        return cls(year, number, zone)

    @classmethod
    def containing(cls, moment: datetime, zone: ZoneInfo) -> Week:
        year, number, _ = moment.astimezone(zone).isocalendar()
        return cls(year, number, zone)

    @classmethod
    def last_complete(cls, now: datetime, zone: ZoneInfo) -> Week:
        return cls.containing(now, zone).shift(-1)

    def shift(self, weeks: int) -> Week:
        monday = self.monday + timedelta(weeks=weeks)
        year, number, _ = monday.isocalendar()
        return Week(year, number, self.zone)

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.monday, time(0), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.monday + timedelta(days=7), time(0), self.zone)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    def __str__(self) -> str:
        return self.label


# ---------------------------------------------------------------- content


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    strong: bool = False


@dataclass
class Story:
    story_key: int
    title: str
    url: str | None  # the earliest copy; None when its URL is not http(s)
    when: datetime
    outlet: str
    also_in: list[str]
    topics: list[str]
    copies: int
    snippets: dict[str, list[Segment]] = field(default_factory=dict)  # member id -> snippet
    article_url: str = ""  # the earliest copy's canonical URL, as stored: the desk's key
    highlighted: bool = False  # the team highlighted it on the desk
    comment: str | None = None  # the highlight's comment
    tier_rank: int = 0  # its best outlet's tier, in the order of outlets.OutletMap.tiers
    owner: str | None = None  # a member's (or the cluster's) own release: its owner's id
    # press coverage: the owners whose own release is a copy of this story (their names)
    release_of: list[str] = field(default_factory=list)
    release_url: str | None = None  # the first such release, when its URL may be a link
    # a release: the outlets that carried the story at their own URL (press coverage)
    picked_up_by: list[str] = field(default_factory=list)


@dataclass
class MemberRow:
    id: str
    name: str
    kind: str
    stories: int  # in the press (earned media)
    mentions: int
    previous_mentions: int
    history: list[int]  # mentions per week, oldest first, this week last
    releases: int = 0  # its own releases this week that name it (owned media)

    @property
    def change(self) -> int:
        return self.mentions - self.previous_mentions


@dataclass
class Section:
    member: MemberRow
    stories: list[Story]


@dataclass
class Funding:
    member: str
    amount: float
    currency: str
    amount_eur: float | None
    phrase: str
    title: str
    url: str | None


@dataclass
class LateMention:
    """A member named in an article of a week whose digest was already sent, found since."""

    article_id: int
    member_id: str
    member: str
    title: str
    url: str | None
    when: datetime  # the article's date
    found: datetime  # when veille found the mention
    outlet: str
    snippet: list[Segment]


@dataclass
class SourceProblem:
    name: str
    error: str
    failures: int


@dataclass
class Content:
    week: Week
    generated_at: datetime
    stories: int
    articles: int
    mentions: int
    previous_stories: int
    previous_mentions: int
    members: list[MemberRow]  # every entity named this week or last, the table in the header
    quiet: int  # the other members (members during the week), without news this week or last
    chart_weeks: list[Week]
    cluster: Section | None
    sections: list[Section]  # the members in the press (earned media)
    fundings: list[Funding]
    problems: list[SourceProblem]
    more_problems: int
    links: list[tuple[str, str]]  # (label, URL) into Datasette
    late: list[LateMention] = field(default_factory=list)  # found after their week was sent
    # the stories the team highlighted, first, with the names of the members they name
    highlights: list[tuple[Story, list[str]]] = field(default_factory=list)
    reported: list[tuple[int, str]] = field(default_factory=list)  # (article, member) dealt with
    feeds: dict[str, str] = field(default_factory=dict)  # member id -> its Atom feed
    member_feed: str | None = None  # the member feeds' URL, the member's id to be added
    # the cluster's and the members' own releases (owned media), one section per owner,
    # the cluster first: apart from the press, never in its figures
    releases: list[Section] = field(default_factory=list)

    @property
    def release_count(self) -> int:
        return sum(len(section.stories) for section in self.releases)

    @property
    def empty(self) -> bool:
        return self.stories == 0 and not self.late and not self.releases


def safe_url(url: str | None) -> str | None:
    """The URL when it may be a link in a mail: http(s) with a host; otherwise None."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url.strip()


def line(text: object) -> str:
    """One line of text: feed text may hold newlines that would forge lines in the text part."""
    return " ".join(str(text or "").split())


def emphasise(snippet: str, alias: str) -> list[Segment]:
    """The snippet cut around every occurrence of the alias, those marked strong."""
    if not alias:
        return [Segment(snippet)]
    folded, key = snippet.casefold(), alias.casefold()
    segments: list[Segment] = []
    position = 0
    if len(folded) == len(snippet):  # offsets agree: cut where the case-folded text matches
        start = folded.find(key)
        while start != -1:
            if start > position:
                segments.append(Segment(snippet[position:start]))
            segments.append(Segment(snippet[start : start + len(key)], strong=True))
            position = start + len(key)
            start = folded.find(key, position)
    if position < len(snippet):
        segments.append(Segment(snippet[position:]))
    return segments


def _chunks(values: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for index in range(0, len(values), size):
        yield values[index : index + size]


# The articles of a week: first seen in it, not a back catalogue, not a story told before.
# A story was told before when an earlier copy named someone and was fresh (published at
# most backlog_days before it was first seen: stricter than the rule of its own week, so
# a doubt reports a story twice rather than never).
_IN_WEEK = """
    a.first_seen_at >= :start AND a.first_seen_at < :end
    AND (a.published_at IS NULL OR a.published_at >= :oldest)
    AND (a.story_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM articles b JOIN judged_mentions mb ON mb.article_id = b.id
        WHERE b.story_id = a.story_id AND b.first_seen_at < :start
          AND (b.published_at IS NULL OR b.published_at >=
               strftime('%Y-%m-%dT%H:%M:%SZ', b.first_seen_at, :backlog))))
"""


def week_bounds(week: Week, backlog_days: int = BACKLOG_DAYS) -> dict[str, str]:
    """The week's bounds in UTC, and the oldest publication date it takes (the parameters
    of the `digest_mentions` canned query)."""
    return {
        "start": iso(week.start),
        "end": iso(week.end),
        "oldest": iso(week.start - timedelta(days=backlog_days)),
    }


def _params(week: Week, backlog_days: int) -> dict[str, str]:
    return {**week_bounds(week, backlog_days), "backlog": f"-{backlog_days} days"}


def week_counts(
    store: Store, week: Week, backlog_days: int = BACKLOG_DAYS
) -> dict[str, tuple[int, int]]:
    """member id -> (stories, mentions) in the press in a week; a mention is an article of
    the press (earned: not a member's own release) naming the member while it is one (its
    `joined` and `left` dates)."""
    rows = store.rows(
        f"counting the mentions of {week.label}",
        f"""
        SELECT m.member_id, count(DISTINCT coalesce(a.story_id, -a.id)), count(*)
        FROM judged_mentions m JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        WHERE {_IN_WEEK} AND {WHILE_MEMBER_SQL} AND {EARNED_SQL}
        GROUP BY m.member_id
        """,
        _params(week, backlog_days),
    )
    return {member: (stories, mentions) for member, stories, mentions in rows}


def week_releases(store: Store, week: Week, backlog_days: int = BACKLOG_DAYS) -> dict[str, int]:
    """member id -> the stories of its own (and the cluster's) releases naming it in a week
    (owned media, counted apart from the press)."""
    rows = store.rows(
        f"counting the releases of {week.label}",
        f"""
        SELECT m.member_id, count(DISTINCT coalesce(a.story_id, -a.id))
        FROM judged_mentions m JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id
        WHERE {_IN_WEEK} AND {WHILE_MEMBER_SQL} AND NOT ({EARNED_SQL})
        GROUP BY m.member_id
        """,
        _params(week, backlog_days),
    )
    return {member: int(count) for member, count in rows}


def _totals(store: Store, week: Week, backlog_days: int) -> tuple[int, int, int]:
    """(stories, articles, mentions) in the press in a week, counting only articles that
    name the cluster or a member: the others are in the database, not in the digest; the
    members' own releases are counted apart."""
    row = store.row(
        f"counting the stories of {week.label}",
        f"""
        SELECT count(DISTINCT coalesce(a.story_id, -a.id)), count(DISTINCT a.id), count(*)
        FROM articles a JOIN judged_mentions m ON m.article_id = a.id
        JOIN members mb ON mb.id = m.member_id AND mb.kind != 'person'
        WHERE {_IN_WEEK} AND {WHILE_MEMBER_SQL} AND {EARNED_SQL}
        """,
        _params(week, backlog_days),
    )
    assert row is not None  # an aggregate without GROUP BY always answers one row
    return int(row[0]), int(row[1]), int(row[2])


@dataclass
class WeekStories:
    """The week's stories seen two ways: as press coverage (from their earned copies, for
    the stories an outlet carried) and as the releases of their owners (from each owner's
    own copies). A release an outlet picked up is both, and each view names the other."""

    press: dict[int, Story]  # story key -> the story as the press told it
    releases: dict[tuple[int, str], Story]  # (story key, owner id) -> the owner's release

    def all(self) -> list[Story]:
        return [*self.press.values(), *self.releases.values()]


def _story(
    key: int,
    records: list[dict[str, Any]],
    week: Week,
    zone: ZoneInfo,
    *,
    owner: str | None,
    outlets: OutletMap,
) -> Story:
    """One view of a story from some of its copies (sorted, earliest first); outlets named
    and ranked by tier as sources.yaml's `outlets:` says."""
    first = records[0]
    resolved = [outlets.resolve(r["url"], r["outlet"], r["source"]) for r in records]
    outlet = resolved[0].name
    others: list[str] = []
    for copy in resolved[1:]:
        if copy.name and copy.name != outlet and copy.name not in others:
            others.append(copy.name)
    topics: list[str] = []
    for record in records:
        for topic in json.loads(record["topics"] or "[]"):
            if topic not in topics:
                topics.append(topic)
    return Story(
        story_key=key,
        title=line(first["title"] or first["url"]),
        url=safe_url(first["url"]) or safe_url(first["link"]),
        when=(first["when"] or week.start).astimezone(zone),
        outlet=outlet,
        also_in=others,
        topics=topics,
        copies=len(records),
        article_url=first["url"] or "",
        tier_rank=min(outlets.rank(copy.tier) for copy in resolved),
        owner=owner,
    )


def _stories(
    store: Store,
    week: Week,
    zone: ZoneInfo,
    backlog_days: int,
    names: dict[str, str],
    outlets: OutletMap | None = None,
) -> WeekStories:
    """Every story of the week with its copies (up to the week's end) and who it names,
    as press coverage and as its owners' releases (``names``: owner id -> name)."""
    outlets = outlets or OutletMap(())
    bounds = _params(week, backlog_days)
    keys = [
        row[0]
        for row in store.rows(
            f"reading the stories of {week.label}",
            f"SELECT DISTINCT coalesce(a.story_id, -a.id) FROM articles a WHERE {_IN_WEEK}",
            bounds,
        )
    ]
    copies: dict[int, list[dict[str, Any]]] = {}
    columns = (
        "a.id, a.url, a.link, a.title, a.outlet, s.name AS source, a.published_at, "
        "a.first_seen_at, a.topics, coalesce(a.story_id, -a.id) AS story_key, a.owner"
    )
    for chunk in _chunks(keys):
        story_ids = [k for k in chunk if k > 0]
        article_ids = [-k for k in chunk if k < 0]
        where = []
        if story_ids:
            where.append(f"a.story_id IN ({','.join('?' * len(story_ids))})")
        if article_ids:
            where.append(f"a.id IN ({','.join('?' * len(article_ids))})")
        for record in store.records(
            f"reading the articles of {week.label}",
            f"SELECT {columns} FROM articles a LEFT JOIN sources s ON s.id = a.source_id "
            f"WHERE ({' OR '.join(where)}) AND a.first_seen_at < ?",
            [*story_ids, *article_ids, bounds["end"]],
        ):
            copies.setdefault(record["story_key"], []).append(record)

    press: dict[int, Story] = {}
    releases: dict[tuple[int, str], Story] = {}
    views: list[tuple[Story, list[int]]] = []  # each view and its copies, its own first
    for key, records in copies.items():
        for record in records:
            record["when"] = from_iso(record["published_at"]) or from_iso(record["first_seen_at"])
        records.sort(key=lambda r: (r["when"] or datetime.max.replace(tzinfo=UTC), r["id"]))
        earned = [r for r in records if r["owner"] is None]
        owners = list(dict.fromkeys(r["owner"] for r in records if r["owner"] is not None))
        if earned:
            story = _story(key, earned, week, zone, owner=None, outlets=outlets)
            story.release_of = [line(names.get(o, o)) for o in owners]
            first_release = next((r for r in records if r["owner"] is not None), None)
            if first_release is not None:
                story.release_url = safe_url(first_release["url"]) or safe_url(
                    first_release["link"]
                )
            press[key] = story
            views.append((story, [r["id"] for r in earned]))
        carriers = list(
            dict.fromkeys(outlets.resolve(r["url"], r["outlet"], r["source"]).name for r in earned)
        )
        for owner in owners:
            own = [r for r in records if r["owner"] == owner]
            story = _story(key, own, week, zone, owner=owner, outlets=outlets)
            story.picked_up_by = [o for o in carriers if o]
            releases[(key, owner)] = story
            views.append((story, [r["id"] for r in own]))

    # who each view names: the snippet of its earliest copy naming them (press coverage
    # names whom the press named; a release whom its owner named)
    article_ids = sorted({aid for records in copies.values() for aid in (r["id"] for r in records)})
    named: dict[int, dict[str, tuple[str, str]]] = {}
    for chunk in _chunks(article_ids):
        marks = ",".join("?" * len(chunk))
        for article_id, member_id, alias, text in store.rows(
            f"reading the snippets of {week.label}",
            f"SELECT article_id, member_id, alias, snippet FROM judged_mentions WHERE article_id IN ({marks})",
            list(chunk),
        ):
            named.setdefault(article_id, {})[member_id] = (alias, text)
    for story, order in views:
        for article_id in order:
            for member_id, (alias, text) in named.get(article_id, {}).items():
                if member_id not in story.snippets:
                    story.snippets[member_id] = emphasise(line(text), line(alias))
    # the team's highlights (the latest one's comment), read from the verdicts in force
    by_key: dict[int, list[Story]] = {}
    for story, _ in views:
        by_key.setdefault(story.story_key, []).append(story)
    for key, comment in store.rows(
        f"reading the highlights of {week.label}",
        "SELECT story_key, comment FROM verdict_stories WHERE action = 'highlight' "
        "ORDER BY verdict_id",
    ):
        for story in by_key.get(key, []):
            story.highlighted = True
            story.comment = line(comment) or None
    return WeekStories(press=press, releases=releases)


def build(config: Config, store: Store, week: Week, *, now: datetime, db_name: str) -> Content:
    """Everything the digest of ``week`` says, read from the store."""
    zone = config.schedule.zone
    members = {
        row[0]: (row[1], row[2])
        for row in store.rows(
            "reading the members", "SELECT id, name, kind FROM members WHERE kind != 'person'"
        )
    }
    chart_weeks = [week.shift(offset) for offset in range(-(CHART_WEEKS - 1), 1)]
    backlog_days = config.digest.backlog_days
    counts = [week_counts(store, w, backlog_days) for w in chart_weeks]
    this, previous = counts[-1], counts[-2]
    released = week_releases(store, week, backlog_days)
    rows: list[MemberRow] = []
    for member_id in set(this) | set(previous) | set(released):
        if member_id not in members:
            continue
        name, kind = members[member_id]
        rows.append(
            MemberRow(
                id=member_id,
                name=name,
                kind=kind,
                stories=this.get(member_id, (0, 0))[0],
                mentions=this.get(member_id, (0, 0))[1],
                previous_mentions=previous.get(member_id, (0, 0))[1],
                history=[c.get(member_id, (0, 0))[1] for c in counts],
                releases=released.get(member_id, 0),
            )
        )
    rows.sort(
        key=lambda r: (r.kind != "cluster", -r.mentions, -r.previous_mentions, -r.releases, r.name)
    )

    stories = _stories(
        store,
        week,
        zone,
        backlog_days,
        {k: v[0] for k, v in members.items()},
        OutletMap(config.outlets),
    )
    cluster: Section | None = None
    sections: list[Section] = []
    for row in rows:
        told = [s for s in stories.press.values() if row.id in s.snippets]
        if not told:
            continue
        # highlights first, then by the best outlet's tier (national, international,
        # regional, trade, the team's own, other), then the most copies
        told.sort(key=lambda s: (not s.highlighted, s.tier_rank, -s.copies, s.when))
        section = Section(member=row, stories=told)
        if row.kind == "cluster":
            cluster = section
        else:
            sections.append(section)
    # the releases, one section per owner: the cluster first, then the members by name
    by_row = {row.id: row for row in rows}
    own: dict[str, list[Story]] = {}
    for (_, owner), story in stories.releases.items():
        own.setdefault(owner, []).append(story)
    releases: list[Section] = []
    for owner, told in own.items():
        name, kind = members.get(owner, (owner, "member"))
        row = by_row.get(owner) or MemberRow(owner, name, kind, 0, 0, 0, [])
        told.sort(key=lambda s: (not s.highlighted, s.when))
        releases.append(Section(member=row, stories=told))
    releases.sort(key=lambda s: (s.member.kind != "cluster", s.member.name.casefold()))

    names = {row.id: row.name for row in rows}
    highlighted = [*stories.press.values()] + [
        story for (key, _), story in stories.releases.items() if key not in stories.press
    ]
    highlights = [
        (story, [names[m] for m in story.snippets if m in names])
        for story in sorted(highlighted, key=lambda s: (-s.copies, s.when))
        if story.highlighted and any(m in names for m in story.snippets)
    ]
    quiet = _quiet_members(store, week, {row.id for row in rows})
    story_total, articles, mention_total = _totals(store, week, backlog_days)
    previous_stories, _, previous_mentions = _totals(store, week.shift(-1), backlog_days)
    fundings = _one_per_deal(
        Funding(
            member=name,
            amount=amount,
            currency=currency,
            amount_eur=amount_eur,
            phrase=line(phrase),
            title=line(title),
            url=safe_url(url) or safe_url(link),
        )
        for name, amount, currency, amount_eur, phrase, title, link, url in store.rows(
            f"reading the fundings of {week.label}",
            f"""
            SELECT mb.name, f.amount, f.currency, f.amount_eur, f.phrase, a.title, a.link, a.url
            FROM fundings f JOIN articles a ON a.id = f.article_id
            JOIN members mb ON mb.id = f.member_id
            JOIN judged_mentions jm ON jm.article_id = f.article_id AND jm.member_id = f.member_id
            WHERE {_IN_WEEK} AND {WHILE_MEMBER_SQL}
            ORDER BY coalesce(f.amount_eur, f.amount) DESC
            """,
            _params(week, backlog_days),
        )
    )
    problem_rows = store.rows(
        "reading the sources in error",
        """
        SELECT name, coalesce(last_error, last_status, 'failed'), consecutive_failures
        FROM sources WHERE in_config = 1 AND enabled = 1 AND consecutive_failures > 0
        ORDER BY consecutive_failures DESC, name
        """,
    )
    problems = [
        SourceProblem(name=line(n), error=line(e), failures=f)
        for n, e, f in problem_rows[:MAX_ERRORS_LISTED]
    ]
    late = late_mentions(store, week, backlog_days=backlog_days, told=stories.all())
    links = _datasette_links(config, week, db_name)
    return Content(
        week=week,
        generated_at=now.astimezone(zone),
        stories=story_total,
        articles=articles,
        mentions=mention_total,
        previous_stories=previous_stories,
        previous_mentions=previous_mentions,
        members=rows,
        quiet=quiet,
        chart_weeks=chart_weeks,
        cluster=cluster,
        sections=sections,
        fundings=fundings,
        problems=problems,
        more_problems=max(0, len(problem_rows) - MAX_ERRORS_LISTED),
        links=links,
        late=late,
        highlights=highlights,
        reported=_week_mentions(store, week) + [(m.article_id, m.member_id) for m in late],
        feeds=_member_feeds(config, db_name, [s.member.id for s in sections]),
        member_feed=member_feed_url(config, db_name, ""),
        releases=releases,
    )


DONE_STATUSES = ("sent", "partial", "skipped")  # a digest some reader has, or an empty week


def _week_mentions(store: Store, week: Week) -> list[tuple[int, str]]:
    """The mentions of the week's articles that no digest has reported yet: a digest of the
    week that is sent reports them (shown, or left out as back catalogue or a story told)."""
    return [
        (int(article_id), str(member_id))
        for article_id, member_id in store.rows(
            f"reading the mentions {week.label} reports",
            "SELECT m.article_id, m.member_id FROM judged_mentions m JOIN articles a ON a.id = m.article_id "
            "WHERE a.first_seen_at >= ? AND a.first_seen_at < ? AND m.digest_week IS NULL",
            [iso(week.start), iso(week.end)],
        )
    ]


def late_mentions(
    store: Store, week: Week, *, backlog_days: int = BACKLOG_DAYS, told: Iterable[Story] = ()
) -> list[LateMention]:
    """Mentions found after their week's digest was sent and not reported since, for the
    digest of ``week``: in an article of an earlier week whose digest was sent (or skipped
    as empty), not reported by any digest but this one (a retry of this week shows them
    again), in an article published at most ``backlog_days`` before the week began (a
    `veille remention` after a member was added finds its back catalogue: that is not
    news), and only one per story and member, none for a story and member already told
    (by an earlier digest, or by this one's ``told`` stories)."""
    oldest = week.start - timedelta(days=backlog_days)
    windows: list[Week] = []
    for (label,) in store.rows(
        "reading the digests sent",
        f"SELECT week FROM digests WHERE status IN ({','.join('?' * len(DONE_STATUSES))}) "
        "AND week < ? ORDER BY week",
        [*DONE_STATUSES, week.label],
    ):
        try:
            done = Week.parse(label, week.zone)
        except ValueError:
            continue
        if done.end > oldest and done.start < week.start:
            windows.append(done)
    if not windows:
        return []
    within = " OR ".join("(a.first_seen_at >= ? AND a.first_seen_at < ?)" for _ in windows)
    bounds = [iso(bound) for w in windows for bound in (w.start, min(w.end, week.start))]
    rows = store.rows(
        f"reading the late mentions for {week.label}",
        f"""
        SELECT m.article_id, m.member_id, mb.name, m.alias, m.snippet, m.found_at,
               a.url, a.link, a.title, coalesce(a.outlet, s.name), a.published_at,
               a.first_seen_at, coalesce(a.story_id, -a.id)
        FROM judged_mentions m JOIN articles a ON a.id = m.article_id
        JOIN members mb ON mb.id = m.member_id AND mb.kind != 'person'
        LEFT JOIN sources s ON s.id = a.source_id
        WHERE (m.digest_week IS NULL OR m.digest_week = ?)
          AND ({within})
          AND (a.published_at IS NULL OR a.published_at >= ?)
          AND {WHILE_MEMBER_SQL}
          AND (a.story_id IS NULL OR NOT EXISTS (
              SELECT 1 FROM articles b JOIN judged_mentions n ON n.article_id = b.id
              WHERE b.story_id = a.story_id AND b.id != a.id AND n.member_id = m.member_id
                AND n.digest_week IS NOT NULL AND n.digest_week < ?))
        ORDER BY mb.kind != 'cluster', mb.name, m.found_at, m.article_id
        """,
        [week.label, *bounds, iso(oldest), week.label],
    )
    seen = {(story.story_key, member) for story in told for member in story.snippets}
    late: list[LateMention] = []
    for (
        article_id,
        member_id,
        name,
        alias,
        snippet,
        found_at,
        url,
        link,
        title,
        outlet,
        published_at,
        first_seen_at,
        story_key,
    ) in rows:
        if (story_key, member_id) in seen:
            continue
        seen.add((story_key, member_id))
        when = from_iso(published_at) or from_iso(first_seen_at) or week.start
        late.append(
            LateMention(
                article_id=int(article_id),
                member_id=member_id,
                member=line(name),
                title=line(title or url),
                url=safe_url(url) or safe_url(link),
                when=when.astimezone(week.zone),
                found=(from_iso(found_at) or when).astimezone(week.zone),
                outlet=line(outlet),
                snippet=emphasise(line(snippet), line(alias)),
            )
        )
    return late


def _quiet_members(store: Store, week: Week, listed: set[str]) -> int:
    """Configured members that were members during the week and are not in the table."""
    rows = store.rows(
        "reading the members of the week",
        """
        SELECT id FROM members
        WHERE kind = 'member' AND in_config = 1
          AND (joined IS NULL OR joined <= :sunday) AND (left IS NULL OR left > :monday)
        """,
        {"monday": week.monday.isoformat(), "sunday": week.sunday.isoformat()},
    )
    return sum(1 for (member_id,) in rows if member_id not in listed)


def _one_per_deal(fundings: Iterable[Funding]) -> list[Funding]:
    """One line per member and amount: the biggest-first list keeps the first article that
    gave it; an amount within 10% of one already kept (a conversion, a rounding) is the same
    deal."""
    kept: list[Funding] = []
    for funding in fundings:
        value = funding.amount_eur
        duplicate = any(
            k.member == funding.member
            and (
                (k.amount == funding.amount and k.currency == funding.currency)
                or (
                    value is not None
                    and k.amount_eur is not None
                    and abs(k.amount_eur - value) <= 0.1 * max(k.amount_eur, value)
                )
            )
            for k in kept
        )
        if not duplicate:
            kept.append(funding)
    return kept


def _datasette_links(config: Config, week: Week, db_name: str) -> list[tuple[str, str]]:
    base = config.digest.datasette_url
    if not base:
        return []
    root = f"{base.rstrip('/')}/{quote(db_name)}"
    bounds = "&".join(
        f"{k}={quote(v)}" for k, v in week_bounds(week, config.digest.backlog_days).items()
    )
    return [
        ("mentions", f"{root}/digest_mentions?{bounds}"),
        ("stories", f"{root}/multi_outlet_stories"),
        ("fundings", f"{root}/funding_events"),
        ("sources", f"{root}/sources?consecutive_failures__gt=0"),
        ("feed_mentions", f"{root}/{MENTIONS_FEED}.atom"),
        ("feed_fundings", f"{root}/{FUNDING_FEED}.atom"),
    ]


# the canned queries of storage/metadata.yml that datasette-atom serves as Atom feeds
MEMBER_FEED = "member_feed"
MENTIONS_FEED = "mentions_feed"
FUNDING_FEED = "funding_feed"


def member_feed_url(config: Config, db_name: str, member_id: str) -> str | None:
    """The Atom feed of a member's news in Datasette, when the digest knows Datasette's URL."""
    base = config.digest.datasette_url
    if not base:
        return None
    return f"{base.rstrip('/')}/{quote(db_name)}/{MEMBER_FEED}.atom?member={quote(member_id)}"


def _member_feeds(config: Config, db_name: str, member_ids: Iterable[str]) -> dict[str, str]:
    feeds = {m: member_feed_url(config, db_name, m) for m in member_ids}
    return {m: url for m, url in feeds.items() if url}


# ---------------------------------------------------------------- rendering

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Veille presse",
        "week": "Semaine {number}",
        "summary_stories": "sujets",
        "summary_stories_one": "sujet",
        "summary_mentions": "mentions",
        "summary_mentions_one": "mention",
        "previous": "semaine précédente :",
        "member": "Membre",
        "stories": "Sujets",
        "mentions": "Mentions",
        "change": "Évol.",
        "weeks_short": "{n} sem.",
        "weeks_chart": "Mentions sur {n} semaines",
        "quiet_one": "et 1 autre membre sans actualité cette semaine ni la précédente",
        "quiet_many": "et {n} autres membres sans actualité cette semaine ni la précédente",
        "cluster": "Le cluster dans la presse",
        "highlights": "À la une",
        "members": "Les membres dans la presse",
        "releases": "Communiqués des membres",
        "releases_note": "Ce que le cluster et les membres publient eux-mêmes (leurs sites, leurs salles de presse) : à part de la presse, hors des chiffres ci-dessus.",
        "summary_releases": "communiqués",
        "summary_releases_one": "communiqué",
        "releases_short": "Comm.",
        "release_of": "d'après le communiqué de {names}",
        "picked_up": "repris par",
        "also_in": "aussi dans",
        "fundings": "Financements repérés",
        "problems": "Sources en erreur",
        "failures": "échecs consécutifs",
        "more_problems": "et {n} autres",
        "explore": "Explorer dans Datasette",
        "link_mentions": "toutes les mentions de la semaine",
        "link_stories": "sujets repris par plusieurs médias",
        "link_fundings": "financements",
        "link_sources": "sources en erreur",
        "link_feed_mentions": "flux Atom de toutes les mentions",
        "link_feed_fundings": "flux Atom des financements",
        "feeds_hint": "Suivre un membre dans un lecteur de flux : {url} suivi de son identifiant (le lien « flux Atom » de sa rubrique)",
        "feed": "flux Atom",
        "feed_line": "Flux Atom : {url}",
        "late": "Mentions trouvées après coup",
        "late_note": "Dans des articles de semaines déjà envoyées : veille les a trouvées depuis (une page relue, une nouvelle analyse).",
        "found": "trouvée le {day}",
        "nothing": "Rien cette semaine : aucun article ne cite le cluster ni ses membres.",
        "generated": "Généré par veille le {when}.",
        "subject": "{title} {cluster} · semaine {number} ({range}) : {counts}",
        "subject_nothing": "rien cette semaine",
        "late_mentions": "mentions trouvées après coup",
        "late_mentions_one": "mention trouvée après coup",
        "late_found": "trouvées après coup",
        "late_found_one": "trouvée après coup",
        "subject_releases": "communiqués",
        "subject_releases_one": "communiqué",
        "new": "nouveau",
        "timeline": "chronologie",
    },
    "en": {
        "title": "Press digest",
        "week": "Week {number}",
        "summary_stories": "stories",
        "summary_stories_one": "story",
        "summary_mentions": "mentions",
        "summary_mentions_one": "mention",
        "previous": "previous week:",
        "member": "Member",
        "stories": "Stories",
        "mentions": "Mentions",
        "change": "Change",
        "weeks_short": "{n} wk",
        "weeks_chart": "Mentions over {n} weeks",
        "quiet_one": "and 1 other member without news this week or last",
        "quiet_many": "and {n} other members without news this week or last",
        "cluster": "The cluster in the news",
        "highlights": "Highlights",
        "members": "Members in the news",
        "releases": "Members' own releases",
        "releases_note": "What the cluster and the members publish themselves (their sites, their newsrooms): apart from the press, not in the figures above.",
        "summary_releases": "releases",
        "summary_releases_one": "release",
        "releases_short": "Rel.",
        "release_of": "from the release of {names}",
        "picked_up": "picked up by",
        "also_in": "also in",
        "fundings": "Funding found",
        "problems": "Sources in error",
        "failures": "failures in a row",
        "more_problems": "and {n} more",
        "explore": "Explore in Datasette",
        "link_mentions": "every mention this week",
        "link_stories": "stories carried by several outlets",
        "link_fundings": "funding events",
        "link_sources": "sources in error",
        "link_feed_mentions": "Atom feed of every mention",
        "link_feed_fundings": "Atom feed of funding events",
        "feeds_hint": "Follow a member in your feed reader: {url} followed by its id (the “Atom feed” link of its section)",
        "feed": "Atom feed",
        "feed_line": "Atom feed: {url}",
        "late": "Mentions found late",
        "late_note": "In articles of weeks already sent: veille found them since (a page read again, a new analysis).",
        "found": "found {day}",
        "nothing": "Nothing this week: no article named the cluster or its members.",
        "generated": "Generated by veille on {when}.",
        "subject": "{title} {cluster} · week {number} ({range}): {counts}",
        "subject_nothing": "nothing this week",
        "late_mentions": "mentions found late",
        "late_mentions_one": "mention found late",
        "late_found": "found late",
        "subject_releases": "own releases",
        "subject_releases_one": "own release",
        "new": "new",
        "timeline": "timeline",
    },
}

TOPIC_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "funding": "Financement",
        "clinical-trial": "Essai clinique",
        "partnership": "Partenariat",
        "regulatory": "Réglementaire",
        "award": "Prix",
        "appointment": "Nomination",
        "acquisition": "Acquisition",
        "manufacturing": "Production",
    },
    "en": {
        "funding": "Funding",
        "clinical-trial": "Clinical trial",
        "partnership": "Partnership",
        "regulatory": "Regulatory",
        "award": "Award",
        "appointment": "Appointment",
        "acquisition": "Acquisition",
        "manufacturing": "Manufacturing",
    },
}

BAR_HEIGHT = 28  # pixels of the tallest bar in the chart


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pipeline.outputs", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


class _Formatter:
    """Dates, numbers and labels in the digest's language (babel)."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.locale = {"fr": "fr_FR", "en": "en_GB"}[language]
        self.labels = LABELS[language]
        self.plural = Locale.parse(self.locale).plural_form

    def t(self, key: str, **values: Any) -> str:
        return self.labels[key].format(**values)

    def day(self, when: datetime | date) -> str:
        return format_date(when, "EEE d MMM", locale=self.locale)

    def range(self, week: Week) -> str:
        return str(format_interval(week.monday, week.sunday, "yMMMd", locale=self.locale))

    def stamp(self, when: datetime) -> str:
        return str(babel_datetime(when, "d MMMM y HH:mm", tzinfo=when.tzinfo, locale=self.locale))

    def number(self, value: float) -> str:
        return str(format_decimal(value, locale=self.locale))

    def label(self, value: int, key: str) -> str:
        """The label of ``value`` things in the plural the language wants: "sujet" for 0
        and 1 in French, "story" for 1 only in English (CLDR's rules, through babel)."""
        if self.plural(value) == "one":
            return self.labels.get(f"{key}_one", self.labels[key])
        return self.labels[key]

    def count(self, value: int, key: str) -> str:
        """ "1 sujet", "58 sujets", "1 story", "0 stories"."""
        return f"{self.number(value)} {self.label(value, key)}"

    def signed(self, value: int) -> str:
        if value == 0:
            return "="
        return ("+" if value > 0 else "−") + self.number(abs(value))

    def money(self, amount: float, currency: str) -> str:
        try:
            return str(
                format_compact_currency(amount, currency, locale=self.locale, fraction_digits=1)
            )
        except (ValueError, KeyError):
            return f"{self.number(amount)} {currency}"

    def topic(self, topic: str) -> str:
        return TOPIC_LABELS[self.language].get(topic, topic.replace("-", " ").capitalize())

    def plain(self, segments: Sequence[Segment]) -> str:
        """A snippet for the text part: the member's name between asterisks."""
        return "".join(f"*{s.text}*" if s.strong else s.text for s in segments)

    def badges(self, topics: Sequence[str]) -> str:
        return " ".join(f"[{self.topic(topic)}]" for topic in topics)

    def bars(self, history: Sequence[int], peak: int) -> list[int]:
        """Bar heights in pixels, 0 for an empty week, at least 2 for a week with mentions."""
        if peak <= 0:
            return [0 for _ in history]
        return [0 if v == 0 else max(2, round(v * BAR_HEIGHT / peak)) for v in history]


def _subject_counts(fmt: _Formatter, content: Content) -> list[str]:
    """What the subject says the week holds: "58 sujets, 120 mentions, 2 trouvées après
    coup, 7 communiqués"; only the late mentions when no story is new (not "0 sujet")."""
    if content.empty:
        return [fmt.t("subject_nothing")]
    late = len(content.late)
    if content.stories == 0 and late:
        counts = [fmt.count(late, "late_mentions")]
    else:
        counts = [
            fmt.count(content.stories, "summary_stories"),
            fmt.count(content.mentions, "summary_mentions"),
        ]
        if late:
            counts.append(fmt.count(late, "late_found"))
    if content.release_count:
        counts.append(fmt.count(content.release_count, "subject_releases"))
    return counts


def render(config: Config, content: Content) -> Rendered:
    fmt = _Formatter(config.digest.language)
    env = _environment()
    values = {
        "number": content.week.number,
        "range": fmt.range(content.week),
        "title": fmt.t("title"),
        "cluster": config.cluster.name,
    }
    subject = fmt.t("subject", **values, counts=", ".join(_subject_counts(fmt, content)))
    peak = max((max(r.history) for r in content.members), default=0)
    context = {
        "c": content,
        "f": fmt,
        "t": fmt.t,
        "cluster_name": config.cluster.name,
        "subject": subject,
        "peak": peak,
        "bar_height": BAR_HEIGHT,
        "lang": config.digest.language,
    }
    html = env.get_template("digest.html").render(context)
    text = env.get_template("digest.txt").render(context)
    return Rendered(subject=" ".join(subject.split()), html=html, text=text)


def message(
    config: Config, rendered: Rendered, *, recipients: Sequence[str], week: Week, now: datetime
) -> EmailMessage:
    """A multipart/alternative message: the text part first, the HTML part preferred."""
    sender = config.digest.from_
    if not sender:
        raise ConfigError(["digest.from: the sender's address is not set"], path=config.path)
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "veille.invalid"
    msg["Message-ID"] = make_msgid(idstring=f"digest-{week.label}", domain=domain)
    msg["X-Veille-Week"] = week.label
    msg.set_content(rendered.text, cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return msg


def write_preview(rendered: Rendered, out: Path) -> tuple[Path, Path]:
    """The HTML part to ``out`` and the text part beside it (``.txt``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text_path = out.with_suffix(".txt") if out.suffix != ".txt" else out.with_suffix(".text.txt")
    out.write_text(rendered.html, encoding="utf-8")
    text_path.write_text(rendered.text, encoding="utf-8")
    return out, text_path


Formatter = _Formatter  # the report (pipeline/outputs/report.py) formats as the digest does
