"""The board's report: the store over a period (a year, a quarter, a month or a run of ISO
weeks) against another, as figures (`--json`), a self-contained HTML page and a PDF.

What it counts, so that every figure can be checked with SQL (docs/reporting.md):

- An article belongs to the period of its date: published, else first seen, in the
  schedule's time zone (the digest goes by first sight, to tell each article once; a
  report tells when the press wrote).
- Coverage is the (article, member) pairs of ``judged_mentions`` (the team's verdicts
  applied) for the cluster and its members (not persons), counted while the member is
  one (``joined``, ``left``), in earned media only (:data:`EARNED_SQL`).
- A story is counted in a period when one of its copies is; the outlets of a story are
  those of its copies in the period.
- Funding: the amounts of ``fundings`` whose (article, member) ``judged_mentions`` holds,
  one per deal as the digest keeps them (the same member and amount, or within 10 %,
  in several articles is one deal); the total is in euros, amounts in other currencies
  are shown apart (the analysis converts nothing). Owned media count for funding: a
  member's own release is how a raise is announced.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pipeline.outputs.digest import (
    TOPIC_LABELS,
    Formatter,
    Funding,
    _one_per_deal,
    line,
    safe_url,
)
from pipeline.outputs.outlets import OutletMap
from pipeline.settings.config import Config
from pipeline.storage.store import EARNED_SQL, WHILE_MEMBER_SQL, Store, from_iso, iso

# Earned or owned: an article is owned when it comes from a member's or the cluster's own
# site or newsroom (articles.owned, pipeline/analysis/owned.py), earned otherwise; press
# coverage counts earned media only. The store's one SQL condition over ``a`` (articles)
# decides it for every figure of the report, as for the digest and the dashboards.

SHARE_TOP = 10  # members named in the share of voice; the others are one bar
OUTLETS_TOP = 15
STORIES_TOP = 10
FUNDING_TOP = 10
DEALS_LISTED = 30  # the largest deals in the page and the PDF; --json has them all
MAX_WEEKS = 106  # a run of weeks is at most two years

PeriodKind = Literal["year", "quarter", "month", "weeks"]
Compare = Literal["previous", "year"]

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_WEEK = r"(\d{4})-?W(\d{1,2})"
_WEEKS = re.compile(rf"^{_WEEK}(?:\.\.{_WEEK})?$", re.IGNORECASE)
PERIOD_HELP = "2026, 2026-Q4, 2026-11, 2026-W48 or 2026-W40..2026-W52"


# ---------------------------------------------------------------- periods


def _monday(year: int, week: int, text: str) -> date:
    try:
        return date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{text!r}: {year} has no ISO week {week}") from None


@dataclass(frozen=True, slots=True)
class Period:
    """Days ``first`` (included) to ``stop`` (excluded) in a time zone, with their name."""

    kind: PeriodKind
    first: date
    stop: date
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo) -> Period:
        """``2026``, ``2026-Q4``, ``2026-11``, ``2026-W48``, ``2026-W40..2026-W52``;
        ValueError says what is wrong, in a sentence."""
        raw = text.strip()
        if match := _YEAR.match(raw):
            year = int(match.group(1))
            return cls("year", date(year, 1, 1), date(year + 1, 1, 1), zone)
        if match := _QUARTER.match(raw):
            year, quarter = int(match.group(1)), int(match.group(2))
            return cls.quarter(year, quarter, zone)
        if match := _MONTH.match(raw):
            year, month = int(match.group(1)), int(match.group(2))
            if not 1 <= month <= 12:
                raise ValueError(f"{text!r}: there is no month {month}")
            return cls.month(year, month, zone)
        if match := _WEEKS.match(raw):
            first = _monday(int(match.group(1)), int(match.group(2)), text)
            last = first
            if match.group(3):
                last = _monday(int(match.group(3)), int(match.group(4)), text)
            if last < first:
                raise ValueError(f"{text!r}: the last week comes before the first")
            stop = last + timedelta(days=7)
            if (stop - first).days // 7 > MAX_WEEKS:
                raise ValueError(f"{text!r}: more than {MAX_WEEKS} weeks; ask for years instead")
            return cls("weeks", first, stop, zone)
        raise ValueError(f"{text!r} is not a period (write {PERIOD_HELP})")

    @classmethod
    def quarter(cls, year: int, quarter: int, zone: ZoneInfo) -> Period:
        first = date(year, 3 * quarter - 2, 1)
        stop = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
        return cls("quarter", first, stop, zone)

    @classmethod
    def month(cls, year: int, month: int, zone: ZoneInfo) -> Period:
        stop = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        return cls("month", date(year, month, 1), stop, zone)

    @classmethod
    def last_complete(
        cls, every: Literal["month", "quarter"], now: datetime, zone: ZoneInfo
    ) -> Period:
        """The month or quarter that ended last, seen from ``now``."""
        today = now.astimezone(zone).date()
        if every == "month":
            year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
            return cls.month(year, month, zone)
        quarter = (today.month - 1) // 3  # the current one's number minus one
        return (
            cls.quarter(today.year, quarter, zone)
            if quarter
            else cls.quarter(today.year - 1, 4, zone)
        )

    @property
    def label(self) -> str:
        if self.kind == "year":
            return str(self.first.year)
        if self.kind == "quarter":
            return f"{self.first.year}-Q{(self.first.month - 1) // 3 + 1}"
        if self.kind == "month":
            return f"{self.first.year}-{self.first.month:02d}"
        first = self.first.isocalendar()
        last = (self.stop - timedelta(days=7)).isocalendar()
        start = f"{first.year}-W{first.week:02d}"
        return start if self.weeks == 1 else f"{start}..{last.year}-W{last.week:02d}"

    @property
    def weeks(self) -> int:
        return (self.stop - self.first).days // 7

    @property
    def last(self) -> date:
        return self.stop - timedelta(days=1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.stop, time(0), self.zone)

    def shift_years(self, years: int) -> Period:
        if self.kind == "weeks":
            first = self.first.isocalendar()
            last = (self.stop - timedelta(days=7)).isocalendar()
            start = _monday(first.year + years, min(first.week, 52), self.label)
            end = _monday(last.year + years, min(last.week, 52), self.label)
            return Period("weeks", start, end + timedelta(days=7), self.zone)
        return Period(
            self.kind,
            self.first.replace(year=self.first.year + years),
            self.stop.replace(year=self.stop.year + years),
            self.zone,
        )

    def previous(self) -> Period:
        """The period of the same kind just before (for weeks: as many weeks before)."""
        if self.kind == "year":
            return self.shift_years(-1)
        if self.kind == "quarter":
            quarter = (self.first.month - 1) // 3 + 1
            if quarter == 1:
                return Period.quarter(self.first.year - 1, 4, self.zone)
            return Period.quarter(self.first.year, quarter - 1, self.zone)
        if self.kind == "month":
            if self.first.month == 1:
                return Period.month(self.first.year - 1, 12, self.zone)
            return Period.month(self.first.year, self.first.month - 1, self.zone)
        return Period("weeks", self.first - (self.stop - self.first), self.first, self.zone)

    def compared(self, compare: Compare) -> Period:
        return self.previous() if compare == "previous" else self.shift_years(-1)

    def buckets(self) -> list[Bucket]:
        """The steps of the timeline: months for a year, ISO weeks (cut at the period's
        bounds) otherwise."""
        out: list[Bucket] = []
        if self.kind == "year":
            for month in range(1, 13):
                sub = Period.month(self.first.year, month, self.zone)
                out.append(Bucket(f"{sub.label}", "month", sub.first, sub.stop))
            return out
        day = self.first
        while day < self.stop:
            monday = day - timedelta(days=day.weekday())
            stop = min(monday + timedelta(days=7), self.stop)
            iso_week = (monday + timedelta(days=3)).isocalendar()
            out.append(Bucket(f"{iso_week.year}-W{iso_week.week:02d}", "week", day, stop))
            day = stop
        # a week cut to three days or less at either end joins its neighbour: a month
        # starting on a Sunday has no one-day bar
        if len(out) > 1 and (out[0].stop - out[0].first).days <= 3:
            out[:2] = [Bucket(out[1].label, "week", out[0].first, out[1].stop)]
        if len(out) > 1 and (out[-1].stop - out[-1].first).days <= 3:
            out[-2:] = [Bucket(out[-2].label, "week", out[-2].first, out[-1].stop)]
        return out

    def bounds(self) -> dict[str, str]:
        """The period in UTC, as stored times are."""
        return {"start": iso(self.start), "end": iso(self.end)}

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # 2026-11 or 2026-W48
    unit: Literal["month", "week"]
    first: date
    stop: date


# ---------------------------------------------------------------- content


@dataclass
class Figure:
    value: float
    previous: float

    @property
    def change(self) -> float | None:
        """Relative change, None when there was nothing to compare with."""
        if not self.previous:
            return None
        return (self.value - self.previous) / self.previous


@dataclass
class Step:
    label: str
    first: date
    stories: int
    mentions: int


@dataclass
class Share:
    id: str
    name: str
    stories: int
    share: float  # of the members' stories (a story naming two members counts for each)
    previous_stories: int = 0


@dataclass
class OutletRow:
    name: str
    tier: str
    stories: int
    articles: int


@dataclass
class TierRow:
    tier: str
    outlets: int
    stories: int
    articles: int
    previous_stories: int = 0


@dataclass
class Theme:
    topic: str
    stories: int
    previous: int


@dataclass
class Deal:
    date: date
    member_id: str
    member: str
    amount: float
    currency: str
    amount_eur: float | None
    round: str
    title: str
    url: str | None
    phrase: str


@dataclass
class FundingTotal:
    key: str  # a member's id or a round
    name: str
    amount_eur: float
    deals: int


@dataclass
class TopStory:
    story_key: int
    title: str
    url: str | None
    date: date
    outlets: list[str]
    members: list[str]
    line: str


@dataclass
class Quiet:
    id: str
    name: str


@dataclass
class Content:
    period: Period
    compared: Period
    compare: Compare
    generated_at: datetime
    cluster: str
    headline: dict[str, Figure]
    timeline: list[Step]
    timeline_before: list[Step]
    share_total: int
    shares: list[Share]
    others: Share | None  # the members after the top ten, as one
    outlets: list[OutletRow]
    outlet_count: int
    tiers: list[TierRow]
    themes: list[Theme]
    deals: list[Deal]
    by_member: list[FundingTotal]
    by_round: list[FundingTotal]
    funding_eur: float
    funding_eur_before: float
    other_currencies: dict[str, float]
    top_stories: list[TopStory]
    quiet: list[Quiet]
    members_total: int  # members during the period
    earned_sql: str = EARNED_SQL
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.headline["stories"].value == 0

    @property
    def listed_deals(self) -> list[Deal]:
        """The largest deals (in euros, then in their currency), in date order."""
        largest = sorted(self.deals, key=lambda d: (-(d.amount_eur or 0.0), -d.amount))
        return sorted(largest[:DEALS_LISTED], key=lambda d: (d.date, d.member))

    @property
    def more_deals(self) -> int:
        return max(0, len(self.deals) - DEALS_LISTED)

    def figures(self) -> dict[str, Any]:
        """What ``--json`` writes: every figure the report shows."""

        def day(value: date) -> str:
            return value.isoformat()

        return {
            "period": _period_json(self.period),
            "compared_with": {**_period_json(self.compared), "compare": self.compare},
            "generated_at": iso(self.generated_at),
            "cluster": self.cluster,
            "earned_only": True,
            "earned_sql": self.earned_sql,
            "headline": {
                name: {"value": fig.value, "previous": fig.previous, "change": fig.change}
                for name, fig in self.headline.items()
            },
            "timeline": {
                "unit": self.period.buckets()[0].unit if self.timeline else None,
                "steps": [{**asdict(s), "first": day(s.first)} for s in self.timeline],
                "compared": [{**asdict(s), "first": day(s.first)} for s in self.timeline_before],
            },
            "share_of_voice": {
                "member_stories": self.share_total,
                "members": [asdict(s) for s in self.shares],
                "others": asdict(self.others) if self.others else None,
            },
            "outlets": {
                "count": self.outlet_count,
                "top": [asdict(o) for o in self.outlets],
                "tiers": [asdict(t) for t in self.tiers],
            },
            "themes": [asdict(t) for t in self.themes],
            "funding": {
                "total_eur": self.funding_eur,
                "previous_total_eur": self.funding_eur_before,
                "other_currencies": self.other_currencies,
                "deals": [{**asdict(d), "date": day(d.date)} for d in self.deals],
                "by_member": [asdict(t) for t in self.by_member],
                "by_round": [asdict(t) for t in self.by_round],
            },
            "uncovered": {
                "count": len(self.quiet),
                "of": self.members_total,
                "members": [asdict(q) for q in self.quiet],
            },
            "top_stories": [{**asdict(s), "date": day(s.date)} for s in self.top_stories],
        }

    def to_json(self) -> str:
        return json.dumps(self.figures(), ensure_ascii=False, indent=2) + "\n"


def _period_json(period: Period) -> dict[str, Any]:
    return {
        "label": period.label,
        "kind": period.kind,
        "first_day": period.first.isoformat(),
        "last_day": period.last.isoformat(),
        **period.bounds(),
    }


# The period's coverage: one row per (article, member) pair that counts. The article's
# date is its publication, else when veille first saw it: written as an OR so that each
# half can use its index (published_at, first_seen_at).
IN_PERIOD_SQL = """
    ((a.published_at >= :start AND a.published_at < :end)
     OR (a.published_at IS NULL AND a.first_seen_at >= :start AND a.first_seen_at < :end))
"""

COVERAGE_SQL = f"""
    SELECT a.id, coalesce(a.story_id, -a.id), m.member_id, mb.kind, a.url, a.outlet,
           s.name, coalesce(a.published_at, a.first_seen_at), a.topics
    FROM articles a
    JOIN judged_mentions m ON m.article_id = a.id
    JOIN members mb ON mb.id = m.member_id AND mb.kind IN ('member', 'cluster')
    LEFT JOIN sources s ON s.id = a.source_id
    WHERE {IN_PERIOD_SQL} AND {WHILE_MEMBER_SQL} AND ({EARNED_SQL})
"""


@dataclass
class _Row:
    article: int
    story: int
    member: str
    kind: str
    outlet: str
    tier: str
    when: str  # the article's date as stored (UTC, ISO 8601, "Z"): compared as text, as SQL does
    topics: list[str]


@dataclass
class _Coverage:
    rows: list[_Row]

    def stories(self) -> set[int]:
        return {r.story for r in self.rows}

    def member_stories(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = defaultdict(set)
        for r in self.rows:
            if r.kind == "member":
                out[r.member].add(r.story)
        return out


def _coverage(store: Store, period: Period, outlets: OutletMap) -> _Coverage:
    rows: list[_Row] = []
    topics_of: dict[str, list[str]] = {}
    for article, story, member, kind, url, outlet, source, when, topics in store.rows(
        f"reading the coverage of {period}", COVERAGE_SQL, period.bounds()
    ):
        resolved = outlets.resolve(url, outlet, source)
        parsed = topics_of.get(topics or "[]")
        if parsed is None:
            parsed = topics_of[topics or "[]"] = list(json.loads(topics or "[]"))
        rows.append(
            _Row(
                article=int(article),
                story=int(story),
                member=str(member),
                kind=str(kind),
                outlet=resolved.name,
                tier=resolved.tier,
                when=str(when),
                topics=parsed,
            )
        )
    return _Coverage(rows)


def _timeline(coverage: _Coverage, period: Period) -> list[Step]:
    buckets = period.buckets()
    stories: list[set[int]] = [set() for _ in buckets]
    mentions = [0 for _ in buckets]
    # the steps' bounds in UTC, as stored times are written: a row's step is a bisection
    starts = [iso(datetime.combine(b.first, time(0), period.zone)) for b in buckets]
    end = iso(period.end)
    for row in coverage.rows:
        index = bisect_right(starts, row.when) - 1
        if 0 <= index < len(buckets) and row.when < end:
            stories[index].add(row.story)
            mentions[index] += 1
    return [
        Step(b.label, b.first, len(s), m)
        for b, s, m in zip(buckets, stories, mentions, strict=True)
    ]


# Round of a funding, from the sentence it comes from (French and English): the first
# pattern that matches names it.
ROUNDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ipo", re.compile(r"\b(ipo|introduction en bourse|cotation|listing)\b", re.I)),
    ("seed", re.compile(r"\b(seed|amor[cç]age|pre-seed|pré-amorçage)\b", re.I)),
    ("series-a", re.compile(r"\b(s[ée]ries?|tour)\s+a\b", re.I)),
    ("series-b", re.compile(r"\b(s[ée]ries?|tour)\s+b\b", re.I)),
    ("series-c", re.compile(r"\b(s[ée]ries?|tour)\s+[c-f]\b", re.I)),
    (
        "grant",
        re.compile(
            r"\b(subvention|grant|bpifrance|france 2030|horizon europe|eic|prix|award|"
            r"aide|appel à projets)\b",
            re.I,
        ),
    ),
    ("debt", re.compile(r"\b(prêt|pret|emprunt|loan|debt|dette|obligations?)\b", re.I)),
)


def funding_round(phrase: str) -> str:
    """``seed``, ``series-a``, ``series-b``, ``series-c`` (C and later), ``ipo``, ``grant``,
    ``debt``, or ``unspecified``."""
    for name, pattern in ROUNDS:
        if pattern.search(phrase):
            return name
    return "unspecified"


FUNDING_SQL = f"""
    SELECT f.member_id, mb.name, f.amount, f.currency, f.amount_eur, f.phrase, a.title,
           a.link, a.url, coalesce(a.published_at, a.first_seen_at)
    FROM fundings f
    JOIN articles a ON a.id = f.article_id
    JOIN members mb ON mb.id = f.member_id AND mb.kind IN ('member', 'cluster')
    JOIN judged_mentions jm ON jm.article_id = f.article_id AND jm.member_id = f.member_id
    WHERE {IN_PERIOD_SQL} AND {WHILE_MEMBER_SQL}
    ORDER BY coalesce(f.amount_eur, f.amount) DESC, coalesce(a.published_at, a.first_seen_at), a.id
"""


def _deals(store: Store, period: Period) -> list[Deal]:
    rows = store.rows(f"reading the fundings of {period}", FUNDING_SQL, period.bounds())
    by_funding: dict[int, tuple[Any, ...]] = {}
    fundings: list[Funding] = []
    for row in rows:
        member_id, name, amount, currency, amount_eur, phrase, title, link, url, when = row
        funding = Funding(
            member=str(member_id),  # kept apart per member id, as the digest keeps per name
            amount=float(amount),
            currency=str(currency),
            amount_eur=None if amount_eur is None else float(amount_eur),
            phrase=line(phrase),
            title=line(title),
            url=safe_url(url) or safe_url(link),
        )
        by_funding[id(funding)] = row
        fundings.append(funding)
    deals: list[Deal] = []
    for kept in _one_per_deal(fundings):
        member_id, name, *_, when = by_funding[id(kept)]
        moment = from_iso(when) or period.start
        deals.append(
            Deal(
                date=moment.astimezone(period.zone).date(),
                member_id=str(member_id),
                member=line(name),
                amount=kept.amount,
                currency=kept.currency,
                amount_eur=kept.amount_eur,
                round=funding_round(kept.phrase),
                title=kept.title,
                url=kept.url,
                phrase=kept.phrase,
            )
        )
    deals.sort(key=lambda d: (d.date, d.member))
    return deals


def _totals(deals: Iterable[Deal], key: str) -> list[FundingTotal]:
    sums: dict[str, list[Any]] = {}
    for deal in deals:
        if deal.amount_eur is None:
            continue
        k = deal.member_id if key == "member" else deal.round
        name = deal.member if key == "member" else deal.round
        entry = sums.setdefault(k, [name, 0.0, 0])
        entry[1] += deal.amount_eur
        entry[2] += 1
    totals = [FundingTotal(k, v[0], v[1], v[2]) for k, v in sums.items()]
    totals.sort(key=lambda t: (-t.amount_eur, t.name))
    return totals


def _members_during(store: Store, period: Period) -> list[tuple[str, str]]:
    return [
        (str(i), str(n))
        for i, n in store.rows(
            "reading the members of the period",
            """
            SELECT id, name FROM members
            WHERE kind = 'member' AND in_config = 1
              AND (joined IS NULL OR joined <= :last) AND (left IS NULL OR left > :first)
            ORDER BY name COLLATE NOCASE, id
            """,
            {"first": period.first.isoformat(), "last": period.last.isoformat()},
        )
    ]


def _top_stories(
    store: Store, coverage: _Coverage, names: dict[str, str], period: Period
) -> list[TopStory]:
    outlets: dict[int, set[str]] = defaultdict(set)
    members: dict[int, list[str]] = defaultdict(list)
    articles: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for row in coverage.rows:
        outlets[row.story].add(row.outlet)
        if row.member not in members[row.story]:
            members[row.story].append(row.member)
        articles[row.story].append((row.when, row.article))
    # most outlets first, then most copies, then the earliest
    copies = {k: len({a for _, a in v}) for k, v in articles.items()}
    ranked = sorted(outlets, key=lambda k: (-len(outlets[k]), -copies[k], min(articles[k])))[
        :STORIES_TOP
    ]
    top: list[TopStory] = []
    for key in ranked:
        when, first = min(articles[key])
        record = store.records(
            "reading a story of the report",
            "SELECT a.title, a.url, a.link, a.summary, "
            "(SELECT m.snippet FROM judged_mentions m WHERE m.article_id = a.id "
            " ORDER BY m.in_title DESC, m.member_id LIMIT 1) AS snippet "
            "FROM articles a WHERE a.id = ?",
            [first],
        )[0]
        text = line(record["snippet"] or record["summary"] or "")
        top.append(
            TopStory(
                story_key=key,
                title=line(record["title"] or record["url"]),
                url=safe_url(record["url"]) or safe_url(record["link"]),
                date=(from_iso(when) or period.start).astimezone(period.zone).date(),
                outlets=sorted(outlets[key], key=str.casefold),
                members=[names.get(m, m) for m in members[key]],
                line=_shorten(text, 220),
            )
        )
    return top


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + " …"


def build(
    config: Config,
    store: Store,
    period: Period,
    *,
    compare: Compare = "previous",
    now: datetime,
) -> Content:
    """Everything the report of ``period`` says, read from the store."""
    compared = period.compared(compare)
    outlets = OutletMap(config.outlets)
    now_cov = _coverage(store, period, outlets)
    then_cov = _coverage(store, compared, outlets)
    names = {
        str(i): str(n) for i, n in store.rows("reading the members", "SELECT id, name FROM members")
    }

    # 1. headline figures
    def members_covered(cov: _Coverage) -> int:
        return len({r.member for r in cov.rows if r.kind == "member"})

    deals, deals_before = _deals(store, period), _deals(store, compared)
    funding_eur = sum(d.amount_eur or 0.0 for d in deals)
    funding_before = sum(d.amount_eur or 0.0 for d in deals_before)
    headline = {
        "stories": Figure(len(now_cov.stories()), len(then_cov.stories())),
        "mentions": Figure(len(now_cov.rows), len(then_cov.rows)),
        "members_covered": Figure(members_covered(now_cov), members_covered(then_cov)),
        "outlets": Figure(
            len({r.outlet for r in now_cov.rows}), len({r.outlet for r in then_cov.rows})
        ),
        "funding_eur": Figure(funding_eur, funding_before),
    }

    # 2. share of voice (members only: the cluster is not one of them)
    by_member = now_cov.member_stories()
    before_member = then_cov.member_stories()
    share_total = sum(len(s) for s in by_member.values())
    ranked = sorted(by_member, key=lambda m: (-len(by_member[m]), (names.get(m) or m).casefold()))
    shares = [
        Share(
            id=m,
            name=names.get(m, m),
            stories=len(by_member[m]),
            share=len(by_member[m]) / share_total,
            previous_stories=len(before_member.get(m, ())),
        )
        for m in ranked[:SHARE_TOP]
    ]
    rest = ranked[SHARE_TOP:]
    others = None
    if rest:
        count = sum(len(by_member[m]) for m in rest)
        others = Share(
            id="",
            name=str(len(rest)),  # the number of members in the slice; labelled when shown
            stories=count,
            share=count / share_total,
            previous_stories=sum(len(before_member.get(m, ())) for m in rest),
        )

    # 3. outlets and tiers
    outlet_stories: dict[str, set[int]] = defaultdict(set)
    outlet_articles: dict[str, set[int]] = defaultdict(set)
    outlet_tier: dict[str, str] = {}
    for row in now_cov.rows:
        outlet_stories[row.outlet].add(row.story)
        outlet_articles[row.outlet].add(row.article)
        outlet_tier[row.outlet] = row.tier
    top_outlets = sorted(
        outlet_stories,
        key=lambda o: (-len(outlet_stories[o]), -len(outlet_articles[o]), o.casefold()),
    )[:OUTLETS_TOP]
    tier_rows: list[TierRow] = []
    previous_tier: dict[str, set[int]] = defaultdict(set)
    for row in then_cov.rows:
        previous_tier[row.tier].add(row.story)
    for tier in sorted(
        {r.tier for r in now_cov.rows} | set(previous_tier), key=lambda t: (outlets.rank(t), t)
    ):
        rows = [r for r in now_cov.rows if r.tier == tier]
        tier_rows.append(
            TierRow(
                tier=tier,
                outlets=len({r.outlet for r in rows}),
                stories=len({r.story for r in rows}),
                articles=len({r.article for r in rows}),
                previous_stories=len(previous_tier.get(tier, ())),
            )
        )

    # 4. themes: stories per topic (a story has the topics of its copies in the period)
    def topic_stories(cov: _Coverage) -> Counter[str]:
        seen: set[tuple[str, int]] = set()
        counts: Counter[str] = Counter()
        for row in cov.rows:
            for topic in row.topics:
                if (topic, row.story) not in seen:
                    seen.add((topic, row.story))
                    counts[topic] += 1
        return counts

    topics_now, topics_then = topic_stories(now_cov), topic_stories(then_cov)
    order = list(TOPIC_LABELS["en"])
    themes = [
        Theme(t, topics_now.get(t, 0), topics_then.get(t, 0))
        for t in sorted(
            set(topics_now) | set(topics_then),
            key=lambda t: (-topics_now.get(t, 0), order.index(t) if t in order else 99, t),
        )
    ]

    # 5. funding
    other_currencies: dict[str, float] = {}
    for deal in deals:
        if deal.amount_eur is None:
            other_currencies[deal.currency] = other_currencies.get(deal.currency, 0.0) + deal.amount

    # 6. members never covered, 7. the most covered stories
    members = _members_during(store, period)
    covered = {r.member for r in now_cov.rows}
    quiet = [Quiet(i, n) for i, n in members if i not in covered]

    return Content(
        period=period,
        compared=compared,
        compare=compare,
        generated_at=now.astimezone(period.zone),
        cluster=config.cluster.name,
        headline=headline,
        timeline=_timeline(now_cov, period),
        timeline_before=_timeline(then_cov, compared),
        share_total=share_total,
        shares=shares,
        others=others,
        outlets=[
            OutletRow(o, outlet_tier[o], len(outlet_stories[o]), len(outlet_articles[o]))
            for o in top_outlets
        ],
        outlet_count=len(outlet_stories),
        tiers=tier_rows,
        themes=themes,
        deals=deals,
        by_member=_totals(deals, "member"),
        by_round=_totals(deals, "round"),
        funding_eur=funding_eur,
        funding_eur_before=funding_before,
        other_currencies=other_currencies,
        top_stories=_top_stories(store, now_cov, names, period),
        quiet=quiet,
        members_total=len(members),
    )


# ---------------------------------------------------------------- labels

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Rapport presse",
        "subtitle": "Le cluster dans la presse",
        "year": "Année {year}",
        "quarter": "{n}e trimestre {year}",
        "quarter_1": "1er trimestre {year}",
        "month": "{month}",
        "weeks": "Semaines {first} à {last}",
        "week": "Semaine {first}",
        "compared_previous": "comparé à la période précédente : {period}",
        "compared_year": "comparé à la même période un an plus tôt : {period}",
        "generated": "Généré par veille le {when}.",
        "contents": "Sommaire",
        "s_headline": "Chiffres clés",
        "s_timeline": "La couverture dans le temps",
        "s_share": "Part de voix des membres",
        "s_outlets": "Les médias",
        "s_tiers": "Par catégorie de médias",
        "s_themes": "Les thèmes",
        "s_funding": "Les financements",
        "s_stories": "Les sujets les plus repris",
        "s_quiet": "Annexe : les membres sans couverture",
        "s_method": "Comment lire ce rapport",
        "stories": "Sujets",
        "mentions": "Mentions",
        "members_covered": "Membres cités",
        "outlets": "Médias",
        "funding_eur": "Financements annoncés",
        "articles": "Articles",
        "previous": "avant : {value}",
        "new": "nouveau",
        "member": "Membre",
        "share": "Part",
        "rank": "Rang",
        "others": "Les {n} autres membres",
        "others_short": "Autres ({n})",
        "outlet": "Média",
        "tier": "Catégorie",
        "tier_national": "Nationale",
        "tier_international": "Internationale",
        "tier_regional": "Régionale",
        "tier_trade": "Spécialisée",
        "tier_other": "Autres",
        "theme": "Thème",
        "this_period": "Période",
        "compared_period": "Comparaison",
        "total": "Total",
        "round": "Tour",
        "round_seed": "Amorçage",
        "round_series-a": "Série A",
        "round_series-b": "Série B",
        "round_series-c": "Série C et au-delà",
        "round_ipo": "Bourse",
        "round_grant": "Subvention, prix",
        "round_debt": "Dette",
        "round_unspecified": "Non précisé",
        "deals": "Opérations",
        "deals_largest": "Les {n} plus importantes",
        "more_deals": "et {n} opérations plus petites, dans le fichier --json.",
        "date": "Date",
        "amount": "Montant",
        "source": "Source",
        "funding_total": "{total} annoncés en {n} opérations",
        "funding_other": "s'y ajoutent, non convertis : {amounts}",
        "funding_other_note": "Annoncés dans d'autres devises, ni convertis ni comptés ci-dessus : {amounts}.",
        "funding_none": "Aucun financement repéré sur la période.",
        "quiet_count": "{n} membres sur {total} n'ont été cités par aucun article de la période.",
        "quiet_none": "Tous les membres ont été cités au moins une fois sur la période.",
        "quiet_see": "La liste est en annexe.",
        "nothing": "Aucun article de la période ne cite le cluster ni ses membres.",
        "x_week": "Semaine",
        "x_month": "Mois",
        "y_stories": "Sujets",
        "y_eur": "Millions d'euros",
        "chart_timeline": "Sujets par {unit}",
        "chart_share": "Part des sujets des membres",
        "chart_outlets": "Sujets par média",
        "chart_tiers": "Sujets par catégorie de médias",
        "chart_themes": "Sujets par thème",
        "chart_funding": "Financements annoncés par membre (M€)",
        "in_outlets": "{n} médias",
        "in_outlet": "1 média",
        "share_note": "Part des sujets qui citent chaque membre, sur l'ensemble des sujets des membres (un sujet qui cite deux membres compte pour chacun) ; presse gagnée seulement.",
        "timeline_note": "Un sujet repris sur plusieurs {unit}s compte pour chacune.",
        "unit_week": "semaine",
        "unit_month": "mois",
        "page": "Page {n} sur {total}",
        "headline_row": "{label}",
    },
    "en": {
        "title": "Press report",
        "subtitle": "The cluster in the press",
        "year": "Year {year}",
        "quarter": "Q{n} {year}",
        "quarter_1": "Q1 {year}",
        "month": "{month}",
        "weeks": "Weeks {first} to {last}",
        "week": "Week {first}",
        "compared_previous": "compared with the period before: {period}",
        "compared_year": "compared with the same period a year earlier: {period}",
        "generated": "Generated by veille on {when}.",
        "contents": "Contents",
        "s_headline": "Headline figures",
        "s_timeline": "Coverage over time",
        "s_share": "Members' share of voice",
        "s_outlets": "Outlets",
        "s_tiers": "By outlet tier",
        "s_themes": "Themes",
        "s_funding": "Funding",
        "s_stories": "The most covered stories",
        "s_quiet": "Annex: members without coverage",
        "s_method": "How to read this report",
        "stories": "Stories",
        "mentions": "Mentions",
        "members_covered": "Members covered",
        "outlets": "Outlets",
        "funding_eur": "Funding announced",
        "articles": "Articles",
        "previous": "before: {value}",
        "new": "new",
        "member": "Member",
        "share": "Share",
        "rank": "Rank",
        "others": "The {n} other members",
        "others_short": "Others ({n})",
        "outlet": "Outlet",
        "tier": "Tier",
        "tier_national": "National",
        "tier_international": "International",
        "tier_regional": "Regional",
        "tier_trade": "Trade",
        "tier_other": "Other",
        "theme": "Theme",
        "this_period": "Period",
        "compared_period": "Compared",
        "total": "Total",
        "round": "Round",
        "round_seed": "Seed",
        "round_series-a": "Series A",
        "round_series-b": "Series B",
        "round_series-c": "Series C and later",
        "round_ipo": "IPO",
        "round_grant": "Grant, prize",
        "round_debt": "Debt",
        "round_unspecified": "Not stated",
        "deals": "Deals",
        "deals_largest": "The {n} largest",
        "more_deals": "and {n} smaller deals, in the --json file.",
        "date": "Date",
        "amount": "Amount",
        "source": "Source",
        "funding_total": "{total} announced in {n} deals",
        "funding_other": "plus, not converted: {amounts}",
        "funding_other_note": "Announced in other currencies, neither converted nor counted above: {amounts}.",
        "funding_none": "No funding found in the period.",
        "quiet_count": "{n} of {total} members were named by no article in the period.",
        "quiet_none": "Every member was named at least once in the period.",
        "quiet_see": "The list is in the annex.",
        "nothing": "No article of the period names the cluster or its members.",
        "x_week": "Week",
        "x_month": "Month",
        "y_stories": "Stories",
        "y_eur": "EUR million",
        "chart_timeline": "Stories per {unit}",
        "chart_share": "Share of the members' stories",
        "chart_outlets": "Stories per outlet",
        "chart_tiers": "Stories per outlet tier",
        "chart_themes": "Stories per theme",
        "chart_funding": "Funding announced per member (EUR M)",
        "in_outlets": "{n} outlets",
        "in_outlet": "1 outlet",
        "share_note": "Share of the stories naming each member, out of all the members' stories (a story naming two members counts for each); earned media only.",
        "timeline_note": "A story carried over several {unit}s counts in each.",
        "unit_week": "week",
        "unit_month": "month",
        "page": "Page {n} of {total}",
        "headline_row": "{label}",
    },
}

METHOD: dict[str, list[str]] = {
    "fr": [
        "Un article compte pour la période de sa date de publication (à défaut, du jour où veille l'a trouvé), dans le fuseau de l'horaire ({zone}).",
        "Un sujet regroupe les reprises d'une même information par plusieurs médias ; une mention est un article qui cite un membre.",
        "Les avis de l'équipe sont appliqués : les articles écartés et les mentions rejetées sur le bureau de veille ne comptent pas ; un membre n'est compté que pendant son adhésion.",
        "La part de voix et la couverture ne comptent que la presse gagnée (pas les communiqués des membres eux-mêmes).",
        "Les montants sont ceux que les articles annoncent, une fois par opération ; le total est en euros, les montants en d'autres devises sont donnés à part.",
    ],
    "en": [
        "An article counts in the period of its publication date (else the day veille found it), in the schedule's time zone ({zone}).",
        "A story groups the copies of one piece of news carried by several outlets; a mention is an article naming a member.",
        "The team's verdicts apply: stories dropped and mentions rejected on the desk do not count; a member counts only while it is one.",
        "Share of voice and coverage count earned media only (not the members' own releases).",
        "Amounts are those the articles announce, once per deal; the total is in euros, amounts in other currencies are shown apart.",
    ],
}

HEADLINE_ORDER = ("stories", "mentions", "members_covered", "outlets", "funding_eur")


class ReportFormatter(Formatter):
    """The digest's formatter (dates, numbers, money, topics) with the report's labels."""

    def __init__(self, language: str) -> None:
        super().__init__(language)
        self.labels = {**self.labels, **LABELS[language]}

    def method(self, zone: str) -> list[str]:
        return [text.format(zone=zone) for text in METHOD[self.language]]

    def period_name(self, period: Period) -> str:
        from babel.dates import format_date

        if period.kind == "year":
            return self.t("year", year=period.first.year)
        if period.kind == "quarter":
            n = (period.first.month - 1) // 3 + 1
            key = "quarter_1" if n == 1 else "quarter"
            return self.t(key, n=n, year=period.first.year)
        if period.kind == "month":
            month = format_date(period.first, "LLLL y", locale=self.locale)
            return self.t("month", month=month[:1].upper() + month[1:])
        first = period.first.isocalendar()
        last = period.last.isocalendar()
        if period.weeks == 1:
            return self.t("week", first=f"{first.week} ({first.year})")
        if first.year == last.year:
            return self.t("weeks", first=first.week, last=f"{last.week} ({last.year})")
        return self.t(
            "weeks", first=f"{first.week} ({first.year})", last=f"{last.week} ({last.year})"
        )

    def span(self, period: Period) -> str:
        from babel.dates import format_interval

        return str(format_interval(period.first, period.last, "yMMMd", locale=self.locale))

    def compared(self, content: Content) -> str:
        key = "compared_previous" if content.compare == "previous" else "compared_year"
        return self.t(key, period=self.period_name(content.compared))

    def tier(self, tier: str) -> str:
        return self.labels.get(f"tier_{tier}", tier.replace("-", " ").capitalize())

    def round_name(self, name: str) -> str:
        return self.labels.get(f"round_{name}", name)

    def eur(self, amount: float) -> str:
        return self.money(amount, "EUR")

    def figure(self, name: str, value: float) -> str:
        return self.eur(value) if name == "funding_eur" else self.number(value)

    def change(self, fig: Figure) -> str:
        """+12 % / −8 % / = ; "new" when there was nothing before."""
        if fig.change is None:
            return self.t("new") if fig.value else "="
        percent = round(fig.change * 100)
        if percent == 0:
            return "="
        return ("+" if percent > 0 else "−") + self.number(abs(percent)) + "\u00a0%"

    def percent(self, share: float) -> str:
        return str(self.number(round(share * 100, 1))) + "\u00a0%"

    def bucket(self, step: Step, unit: str) -> str:
        from babel.dates import format_date

        if unit == "month":
            return str(format_date(step.first, "MMM", locale=self.locale)).rstrip(".")
        return step.label.split("-W")[1]

    def other_amounts(self, amounts: dict[str, float]) -> str:
        return ", ".join(self.money(v, c) for c, v in sorted(amounts.items()))


def chart_unit(content: Content) -> str:
    return "month" if content.period.kind == "year" else "week"


# ---------------------------------------------------------------- rendering

SECTIONS = (
    ("headline", "s_headline"),
    ("timeline", "s_timeline"),
    ("share", "s_share"),
    ("outlets", "s_outlets"),
    ("themes", "s_themes"),
    ("funding", "s_funding"),
    ("stories", "s_stories"),
    ("quiet", "s_quiet"),
    ("method", "s_method"),
)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    charts: dict[str, str]  # name -> SVG, for the PDF
    images: dict[str, bytes] = field(default_factory=dict)  # name -> PNG, for a mail's body


def charts(content: Content, fmt: ReportFormatter) -> dict[str, Any]:
    """Every chart of the report as a matplotlib figure, labelled in its language
    (report_charts.svg and report_charts.png write them out)."""
    from pipeline.outputs import report_charts as draw

    unit = chart_unit(content)
    legend = (fmt.period_name(content.period), fmt.period_name(content.compared))
    out: dict[str, Any] = {}
    out["timeline"] = draw.timeline(
        [fmt.bucket(s, unit) for s in content.timeline],
        [s.stories for s in content.timeline],
        [s.stories for s in content.timeline_before],
        title=fmt.t("chart_timeline", unit=fmt.t(f"unit_{unit}")),
        xlabel=fmt.t(f"x_{unit}"),
        ylabel=fmt.t("y_stories"),
        legend=legend,
    )
    if content.shares:
        slices = [*content.shares, *([content.others] if content.others else [])]
        names = [s.name for s in content.shares]
        if content.others:
            names.append(fmt.t("others_short", n=content.others.name))
        out["share"] = draw.hbars(
            names,
            [s.share * 100 for s in slices],
            title=fmt.t("chart_share"),
            texts=[f"{fmt.percent(s.share)} ({fmt.number(s.stories)})" for s in slices],
            muted_last=content.others is not None,
        )
    if content.outlets:
        out["outlets"] = draw.hbars(
            [o.name for o in content.outlets],
            [o.stories for o in content.outlets],
            title=fmt.t("chart_outlets"),
            texts=[fmt.number(o.stories) for o in content.outlets],
        )
    if content.tiers:
        out["tiers"] = draw.paired_hbars(
            [fmt.tier(r.tier) for r in content.tiers],
            [r.stories for r in content.tiers],
            [r.previous_stories for r in content.tiers],
            title=fmt.t("chart_tiers"),
            legend=legend,
            number=fmt.number,
        )
    if content.themes:
        out["themes"] = draw.paired_hbars(
            [fmt.topic(t.topic) for t in content.themes],
            [t.stories for t in content.themes],
            [t.previous for t in content.themes],
            title=fmt.t("chart_themes"),
            legend=legend,
            number=fmt.number,
        )
    if content.by_member:
        top = content.by_member[:FUNDING_TOP]
        rest = content.by_member[FUNDING_TOP:]
        names = [t.name for t in top]
        values = [t.amount_eur for t in top]
        if rest:
            names.append(fmt.t("others_short", n=len(rest)))
            values.append(sum(t.amount_eur for t in rest))
        out["funding"] = draw.hbars(
            names,
            [v / 1e6 for v in values],
            title=fmt.t("chart_funding"),
            texts=[fmt.eur(v) for v in values],
            muted_last=bool(rest),
        )
    return out


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("pipeline.outputs", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def subject(content: Content, language: str) -> str:
    fmt = ReportFormatter(language)
    return f"{fmt.t('title')} {content.cluster} · {fmt.period_name(content.period)}"


def render(
    config: Config, content: Content, *, language: str | None = None, mail: bool = False
) -> Rendered:
    """The report as one HTML page: the charts inline, the font inline, no link out but
    the articles'. In ``language``, else the report's (report.language, digest.language).

    ``mail``: the page as a mail's body, its charts PNG images of the same mail
    (``cid:chart-NAME@veille``, in ``images``): mail readers show no inline SVG."""
    from pipeline.outputs import report_charts as draw
    from pipeline.outputs.report_fonts import font_faces

    language = language or config.report_language
    fmt = ReportFormatter(language)
    figures = charts(content, fmt)
    drawn = {name: draw.svg(fig) for name, fig in figures.items()}
    images = {name: draw.png(fig) for name, fig in figures.items()} if mail else {}
    title = subject(content, language)
    context = {
        "c": content,
        "f": fmt,
        "t": fmt.t,
        "lang": language,
        "title": title,
        "charts": drawn,
        "mail": mail,
        "unit": chart_unit(content),
        "headline_order": HEADLINE_ORDER,
        "sections": [(anchor, fmt.t(key)) for anchor, key in SECTIONS],
        "method": fmt.method(config.schedule.timezone),
        "fonts": "",
    }
    env = _environment()
    page = env.get_template("report.html").render(context)
    # the font, cut down to the characters the page uses
    context["fonts"] = font_faces(page)
    page = env.get_template("report.html").render(context)
    return Rendered(subject=title, html=page, charts=drawn, images=images)
