"""The team's word -> verdicts in the store: a mention rejected, a story dropped or
highlighted, a member added, a verdict undone, a week approved.

The desk's buttons (desk.py) and `veille review` call these same functions. A verdict
is a row of `verdicts`, never edited or deleted; it names an article by its canonical
URL and holds for every copy of the story that article is in now, later copies
included. Every output reads the mentions as judged (the `judged_mentions` view of
pipeline/storage/migrations.py); a member added by hand is also a row of `mentions`
(``origin = 'desk'``), kept when the article is analysed again.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pipeline.analysis.analyse import Analyser
from pipeline.analysis.extract import Extracted, extract_guarded
from pipeline.analysis.stories import story_key
from pipeline.errors import FetchError, ParseError, ReviewError
from pipeline.models import Article as StoredArticle
from pipeline.models import PageState, SourceOutcome
from pipeline.outputs.digest import Week, line
from pipeline.settings.config import Config
from pipeline.sources.dedupe import canonical_url, same_site
from pipeline.sources.fetch import ACCEPT_HTML, Fetcher, HopRefused
from pipeline.sources.robots import Access, RobotsCache
from pipeline.sources.sandbox import Limits
from pipeline.storage.store import Store, iso

ACTIONS = ("reject", "drop", "highlight", "add", "undo", "approve", "article")
MAX_COMMENT = 400  # one or two sentences
MAX_URL = 2048
MAX_ACCOUNT = 64
ACCOUNT = re.compile(r"^[\w][\w .@'-]*$")
DEFAULT_ACCOUNT = "cli"  # `veille review` without --by
PRECISION_WEEKS = 8


@dataclass(frozen=True, slots=True)
class Verdict:
    id: int
    at: str
    by: str
    action: str
    url: str | None
    title: str | None
    member_id: str | None
    member: str | None
    week: str | None
    comment: str | None
    undoes: int | None
    undone_by: int | None

    @property
    def live(self) -> bool:
        return self.undone_by is None

    def describe(self, lang: str = "en") -> str:
        """One line for a person: '#12 not about Valneva on "Title" by claire at ...'."""
        words = _WORDS[lang]
        what = words[self.action].format(member=self.member, undoes=self.undoes, week=self.week)
        on = f' {words["on"]} "{line(self.title or self.url)}"' if self.url else ""
        note = f" ({self.comment})" if self.comment else ""
        undone = f" [{words['undone']} #{self.undone_by}]" if self.undone_by else ""
        return (
            f"#{self.id} {what}{on}{note} {words['by']} {self.by} {words['at']} {self.at}{undone}"
        )


_WORDS = {
    "en": {
        "reject": "not about {member}",
        "drop": "not relevant",
        "highlight": "highlighted",
        "add": "{member} added",
        "undo": "undoes #{undoes}",
        "approve": "week {week} approved",
        "article": "article added",
        "on": "on",
        "by": "by",
        "at": "at",
        "undone": "undone by",
    },
    "fr": {
        "reject": "pas à propos de {member}",
        "drop": "pas pertinent",
        "highlight": "à la une",
        "add": "{member} ajouté",
        "undo": "annule #{undoes}",
        "approve": "semaine {week} approuvée",
        "article": "article ajouté",
        "on": "sur",
        "by": "par",
        "at": "le",
        "undone": "annulé par",
    },
}


@dataclass(frozen=True, slots=True)
class Recorded:
    """What an action did: the verdict written, or None and why nothing was."""

    verdict: Verdict | None
    message: str


@dataclass(frozen=True, slots=True)
class Article:
    id: int
    url: str  # canonical, as stored
    title: str
    story_key: int


_VERDICT_COLUMNS = (
    "id, at, by, action, url, title, member_id, member, week, comment, undoes, undone_by"
)


def _text(value: str | None, *, limit: int, what: str) -> str | None:
    """One line of text, at most ``limit`` characters; None when empty."""
    if value is None:
        return None
    text = " ".join("".join(c for c in value if c.isprintable() or c.isspace()).split())
    if len(text) > limit:
        raise ReviewError(f"{what}: at most {limit} characters ({len(text)} given)")
    return text or None


def account(by: str | None) -> str:
    """The account a verdict is recorded under: a login name, bounded."""
    name = (by or "").strip()
    if not name or len(name) > MAX_ACCOUNT or not ACCOUNT.match(name):
        raise ReviewError(
            f"--by {by!r}: a name of letters, digits, spaces, '.', '@', '-' "
            f"(at most {MAX_ACCOUNT} characters)"
        )
    return name


def find_article(store: Store, url: str) -> Article:
    """The stored article of a URL: as stored (canonical), as the feed gave it, or the
    canonical form of the URL given."""
    given = (url or "").strip()
    if not given or len(given) > MAX_URL:
        raise ReviewError(f"{given[:80]!r}: not a URL veille could have stored")
    for candidate in dict.fromkeys([given, canonical_url(given)]):
        # article_urls holds every URL an article is known by: its key, the feed links
        # that led to it (tracking parameters and all), AMP and mobile variants
        row = store.row(
            "finding an article by its URL",
            "SELECT a.id, a.url, coalesce(a.title, a.url), coalesce(a.story_id, -a.id) "
            "FROM article_urls u JOIN articles a ON a.id = u.article_id WHERE u.url = ?",
            [candidate],
        )
        if row is not None:
            return Article(int(row[0]), str(row[1]), line(row[2]), int(row[3]))
    raise ReviewError(f"{given}: no article with this URL in {store.path}")


def member_name(store: Store, member_id: str) -> str:
    row = store.row(
        "finding a member",
        "SELECT name FROM members WHERE id = ? AND kind IN ('member', 'cluster')",
        [member_id],
    )
    if row is None:
        raise ReviewError(
            f"--member {member_id!r}: no such member (the ids are in the members table "
            "and in `veille members check`)"
        )
    return str(row[0])


def _verdicts(store: Store, where: str, params: list[Any]) -> list[Verdict]:
    return [
        Verdict(**record)
        for record in store.records(
            "reading the verdicts",
            f"SELECT {_VERDICT_COLUMNS} FROM verdict_log WHERE {where} ORDER BY id",
            params,
        )
    ]


def verdict(store: Store, verdict_id: int) -> Verdict | None:
    found = _verdicts(store, "id = ?", [verdict_id])
    return found[0] if found else None


def _insert(
    store: Store,
    *,
    action: str,
    by: str,
    now: datetime,
    url: str | None = None,
    member_id: str | None = None,
    week: str | None = None,
    comment: str | None = None,
    undoes: int | None = None,
) -> int:
    store.execute(
        f"recording a verdict ({action})",
        "INSERT INTO verdicts (at, by, action, url, member_id, week, comment, undoes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [iso(now), by, action, url, member_id, week, comment, undoes],
    )
    row = store.row("reading the verdict just recorded", "SELECT max(id) FROM verdicts")
    assert row is not None
    return int(row[0])


def _story_filter(key: int) -> tuple[str, list[Any]]:
    return ("a.story_id = ?", [key]) if key > 0 else ("a.id = ?", [-key])


def _live_on_story(store: Store, action: str, key: int, member_id: str | None = None) -> int | None:
    """The id of the verdict in force of this kind on the story (and member), if any."""
    row = store.row(
        "reading the verdicts on a story",
        "SELECT max(verdict_id) FROM verdict_stories WHERE action = ? AND story_key = ? "
        "AND (? IS NULL OR member_id = ?)",
        [action, key, member_id, member_id],
    )
    return int(row[0]) if row and row[0] is not None else None


def _named(store: Store, key: int, member_id: str, *, table: str) -> bool:
    where, params = _story_filter(key)
    row = store.row(
        "reading who a story names",
        f"SELECT 1 FROM {table} m JOIN articles a ON a.id = m.article_id "
        f"WHERE {where} AND m.member_id = ? LIMIT 1",
        [*params, member_id],
    )
    return row is not None


def reject(
    store: Store, *, url: str, member_id: str, by: str, now: datetime, why: str | None = None
) -> Recorded:
    """Not about this member: the story (every copy) no longer names it anywhere."""
    by, why = account(by), _text(why, limit=MAX_COMMENT, what="--why")
    article = find_article(store, url)
    name = member_name(store, member_id)
    if _live_on_story(store, "reject", article.story_key, member_id):
        return Recorded(None, f"{name} is already rejected on this story")
    if not _named(store, article.story_key, member_id, table="judged_mentions"):
        raise ReviewError(f"{url}: this story does not name {name}; nothing to reject")
    new = _insert(
        store, action="reject", by=by, now=now, url=article.url, member_id=member_id, comment=why
    )
    return Recorded(verdict(store, new), f"#{new}: {name} rejected on {article.title!r}")


def drop(store: Store, *, url: str, by: str, now: datetime, why: str | None = None) -> Recorded:
    """Not relevant: the story leaves the digest, the alerts and the feeds."""
    by, why = account(by), _text(why, limit=MAX_COMMENT, what="--why")
    article = find_article(store, url)
    if _live_on_story(store, "drop", article.story_key):
        return Recorded(None, "this story is already dropped")
    new = _insert(store, action="drop", by=by, now=now, url=article.url, comment=why)
    return Recorded(verdict(store, new), f"#{new}: dropped {article.title!r}")


def highlight(
    store: Store, *, url: str, by: str, now: datetime, comment: str | None = None
) -> Recorded:
    """First in the digest, with the comment (the latest highlight's comment wins)."""
    by, comment = account(by), _text(comment, limit=MAX_COMMENT, what="--comment")
    article = find_article(store, url)
    new = _insert(store, action="highlight", by=by, now=now, url=article.url, comment=comment)
    return Recorded(verdict(store, new), f"#{new}: highlighted {article.title!r}")


def add(store: Store, *, url: str, member_id: str, by: str, now: datetime) -> Recorded:
    """A mention veille missed: the article (and so its story) names the member."""
    by = account(by)
    article = find_article(store, url)
    name = member_name(store, member_id)
    rejected = _live_on_story(store, "reject", article.story_key, member_id)
    if rejected:
        raise ReviewError(f"{name} was rejected on this story by #{rejected}: undo that instead")
    if _named(store, article.story_key, member_id, table="judged_mentions"):
        return Recorded(None, f"this story already names {name}")
    summary = store.row(
        "reading the article's summary",
        "SELECT coalesce(summary, title, '') FROM articles WHERE id = ?",
        [article.id],
    )
    snippet = line(summary[0] if summary else "")[:200]
    with store.transaction(f"adding {member_id} to an article"):
        new = _insert(store, action="add", by=by, now=now, url=article.url, member_id=member_id)
        store.execute(
            "adding a mention by hand",
            "INSERT INTO mentions (article_id, member_id, alias, count, in_title, snippet, "
            "found_at, digest_week, origin) VALUES (?, ?, ?, 1, 0, ?, ?, NULL, 'desk')",
            [article.id, member_id, name, snippet, iso(now)],
        )
    return Recorded(verdict(store, new), f"#{new}: {name} added to {article.title!r}")


def undo(store: Store, *, verdict_id: int, by: str, now: datetime) -> Recorded:
    """Cancel a verdict by recording another; an added mention leaves `mentions`."""
    by = account(by)
    target = verdict(store, verdict_id)
    if target is None:
        raise ReviewError(f"#{verdict_id}: no such verdict")
    if target.action == "undo":
        raise ReviewError(f"#{verdict_id} is an undo; record the verdict again instead")
    if target.undone_by is not None:
        return Recorded(None, f"#{verdict_id} is already undone by #{target.undone_by}")
    with store.transaction(f"undoing verdict #{verdict_id}"):
        new = _insert(store, action="undo", by=by, now=now, undoes=verdict_id)
        if target.action == "add" and target.url and target.member_id:
            store.execute(
                "removing a mention added by hand",
                "DELETE FROM mentions WHERE origin = 'desk' AND member_id = ? AND article_id = "
                "(SELECT id FROM articles WHERE url = ?)",
                [target.member_id, target.url],
            )
    return Recorded(verdict(store, new), f"#{new}: undid {target.describe()}")


def approve(store: Store, *, week: Week, by: str, now: datetime) -> Recorded:
    """The week's digest may be sent (digest.review)."""
    by = account(by)
    done = approval(store, week)
    if done is not None:
        return Recorded(None, f"{week} is already approved (#{done.id} by {done.by})")
    new = _insert(store, action="approve", by=by, now=now, week=week.label)
    return Recorded(verdict(store, new), f"#{new}: {week} approved")


def approval(store: Store, week: Week) -> Verdict | None:
    """The approval in force of a week, if any."""
    found = _verdicts(store, "action = 'approve' AND week = ? AND undone_by IS NULL", [week.label])
    return found[-1] if found else None


def week_verdicts(store: Store, week: Week) -> list[Verdict]:
    """The verdicts on the week's articles and on the week itself, and their undos."""
    on_week = _verdicts(
        store,
        "week = ? OR url IN (SELECT url FROM articles WHERE first_seen_at >= ? "
        "AND first_seen_at < ?)",
        [week.label, iso(week.start), iso(week.end)],
    )
    ids = [v.id for v in on_week]
    undos = _verdicts(store, f"undoes IN ({','.join('?' * len(ids))})", list(ids)) if ids else []
    return sorted({v.id: v for v in on_week + undos}.values(), key=lambda v: v.id)


@dataclass(frozen=True, slots=True)
class TeamPrecision:
    rejected: int
    mentions: int
    weeks: int

    @property
    def precision(self) -> float | None:
        return 1 - self.rejected / self.mentions if self.mentions else None

    def sentence(self, lang: str = "en") -> str:
        """ "4 of 312 mentions rejected in 8 weeks: 98.7 %"."""
        value = self.precision
        if lang == "fr":
            figure = f" : {value * 100:.1f} %".replace(".", ",") if value is not None else ""
            return (
                f"{self.rejected} mentions rejetées sur {self.mentions} "
                f"en {self.weeks} semaines{figure}"
            )
        figure = f": {value * 100:.1f} %" if value is not None else ""
        return f"{self.rejected} of {self.mentions} mentions rejected in {self.weeks} weeks{figure}"


def team_precision(
    store: Store, *, now: datetime, weeks: int = PRECISION_WEEKS, member_id: str | None = None
) -> TeamPrecision:
    """The matcher's precision as the team judged it: mentions veille found in the articles
    of the last ``weeks`` weeks, and how many of them the team rejected."""
    row = store.row(
        "counting the mentions the team rejected",
        """
        SELECT count(*),
               sum((coalesce(a.story_id, -a.id), m.member_id) IN
                   (SELECT story_key, member_id FROM verdict_stories WHERE action = 'reject'))
        FROM mentions m JOIN articles a ON a.id = m.article_id
        WHERE m.origin = 'matcher' AND a.first_seen_at >= ? AND (? IS NULL OR m.member_id = ?)
        """,
        [iso(now - timedelta(weeks=weeks)), member_id, member_id],
    )
    total, rejected = (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)
    return TeamPrecision(rejected=rejected, mentions=total, weeks=weeks)


def review_week(store: Store, now: datetime, zone: ZoneInfo) -> Week:
    """The week under review: the last complete one while its digest is not sent, then
    the current one."""
    last = Week.last_complete(now, zone)
    row = store.digest_row(last.label)
    if row is not None and row["status"] in ("sent", "skipped"):
        return Week.containing(now, zone)
    return last


def rejected_aliases(store: Store, *, since: datetime) -> dict[tuple[str, str], int]:
    """The mentions veille found in articles first seen since ``since`` that the team
    rejected, counted by (member id, alias as written): `veille members check` reads them."""
    counts: dict[tuple[str, str], int] = {}
    for member_id, alias, count in store.rows(
        "reading the mentions the team rejected",
        """
        SELECT m.member_id, m.alias, count(*)
        FROM mentions m JOIN articles a ON a.id = m.article_id
        WHERE m.origin = 'matcher' AND a.first_seen_at >= ?
          AND (coalesce(a.story_id, -a.id), m.member_id) IN
              (SELECT story_key, member_id FROM verdict_stories WHERE action = 'reject')
        GROUP BY m.member_id, m.alias
        """,
        [iso(since)],
    ):
        counts[(str(member_id), str(alias))] = int(count)
    return counts


# ---------------------------------------------------------------- an article added by its URL

DESK_SOURCE = "veille-desk"  # the source row of the articles the team adds by URL
DESK_SOURCE_NAME = "Added on the desk"
SUMMARY_CHARS = 500


async def _read_page(config: Config, url: str) -> tuple[str, Extracted]:
    """The page at ``url`` as any article page is read: robots.txt first, the address
    policy on every hop, the body bounded, the extraction in a bounded worker."""
    async with Fetcher(config.network) as fetcher:
        robots = RobotsCache(fetcher)

        async def hop_allowed(target: str) -> HopRefused | None:
            verdict = await robots.verdict(target)
            if verdict.allowed:
                return None
            kind = "robots" if verdict.kind is Access.DISALLOWED else "refused"
            return HopRefused(verdict.reason, kind=kind)

        verdict = await robots.verdict(url)
        if not verdict.allowed:
            raise ReviewError(f"{url}: not read: {verdict.reason}")
        try:
            fetched = await fetcher.fetch(
                url,
                accept=ACCEPT_HTML,
                max_bytes=config.network.max_page_bytes,
                hop_check=hop_allowed,
            )
        except FetchError as exc:
            raise ReviewError(f"{url}: not read: {exc}") from None
    kind = fetched.headers.get("content-type", "text/html").lower()
    if "html" not in kind and "xml" not in kind:
        raise ReviewError(f"{url}: {kind.split(';')[0]}, not a page")
    limits = Limits(
        timeout=config.network.extract_timeout, memory_mb=config.network.parse_memory_mb
    )
    try:
        page = await asyncio.to_thread(
            extract_guarded, fetched.body, url=fetched.final_url, limits=limits
        )
    except ParseError as exc:
        raise ReviewError(f"{url}: no article text: {exc}") from None
    return fetched.final_url, page


def add_article(
    config: Config,
    store: Store,
    *,
    url: str,
    by: str,
    now: datetime,
    member_id: str | None = None,
) -> Recorded:
    """An article veille did not find, read from its URL with the same network rules and
    bounds as any page, analysed, stored (source "veille-desk") and placed in its story;
    with ``member_id``, the member added to it if the matcher did not find it."""
    by = account(by)
    given = (url or "").strip()
    if len(given) > MAX_URL or urlsplit(given).scheme not in ("http", "https"):
        raise ReviewError(f"{given[:80]!r}: an article's URL starts with http:// or https://")
    if member_id is not None:
        member_name(store, member_id)
    try:
        known = find_article(store, given)
    except ReviewError:
        known = None
    if known is None:
        final, page = asyncio.run(_read_page(config, given))
        key = canonical_url(final)
        if page.canonical and same_site(page.canonical, final):
            key = canonical_url(page.canonical)
        try:
            known = find_article(store, key)
        except ReviewError:
            known = None
    if known is not None:
        said = f"already stored: {known.title!r}"
        if member_id is None:
            return Recorded(None, said)
        return add(store, url=known.url, member_id=member_id, by=by, now=now)
    text = page.text or ""
    article = StoredArticle(
        url=key,
        link=given,
        title=line(page.title) or key,
        summary=line(text)[:SUMMARY_CHARS],
        source_id=DESK_SOURCE,
        author=page.author,
        published_at=page.published_at,
        lang=page.lang,
        fetchable=False,
        text=text or None,
        aliases=tuple(u for u in {canonical_url(given), canonical_url(final)} if u != key),
    )
    analysis = Analyser(config).analyse(
        title=article.title, summary=article.summary, text=article.text
    )
    story = story_key(
        title=article.title,
        summary=article.summary,
        text=article.text,
        published_at=article.published_at,
    )
    with store.transaction(f"adding {key} from the desk"):
        store.execute(
            "recording the desk's source",
            "INSERT OR IGNORE INTO sources (id, name, kind, url, in_config, enabled) "
            "VALUES (?, ?, 'page', '', 0, 0)",
            [DESK_SOURCE, DESK_SOURCE_NAME],
        )
        store.save_source(
            SourceOutcome(source_id=DESK_SOURCE, status="ok", entries=1),
            [article],
            run_id=None,
            now=now,
            next_check_at=now + timedelta(days=3650),
            text_status={key: PageState.OK.status()},
            analyses={key: analysis},
            story_keys={key: story},
        )
        new = _insert(store, action="article", by=by, now=now, url=key)
    said = f"#{new}: article added: {article.title!r}"
    if member_id is not None:
        added = add(store, url=key, member_id=member_id, by=by, now=now)
        said += f"; {added.message}"
    return Recorded(verdict(store, new), said)
