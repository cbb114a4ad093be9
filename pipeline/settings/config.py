"""sources.yaml -> a validated, frozen Config (every problem reported at once, by path)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pipeline import __version__
from pipeline.errors import ConfigError
from pipeline.settings import yamlcache

DEFAULT_CONFIG_PATH = Path("sources.yaml")
DEFAULT_CONTACT = "https://www.atlanpolebiotherapies.com"

SourceKind = Literal["feed", "search", "page", "sitemap"]
# a news search asks one host once per member: each of its feeds once a day by default
DEFAULT_SEARCH_INTERVAL_MINUTES = 24 * 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # as `review_deadline` writes them


def slugify(text: str) -> str:
    """ASCII, lower case, dashes: "Ceva Santé Animale" -> "ceva-sante-animale"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


HttpUrl = Annotated[str, Field(max_length=2048), AfterValidator(_check_http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AliasSpec(_Model):
    """An alias that needs evidence: `{alias: OSE, case_sensitive: true, context: true}`."""

    alias: str = Field(min_length=2)
    case_sensitive: bool = False  # match the capitals as written (acronyms, common words)
    context: bool = False  # only when one of the entity's context words is in the same text
    use: bool = True  # false: never match this spelling (a derived form a person turned off)


class _Entity(_Model):
    """What the matcher needs of the cluster, a member or a person."""

    name: str = Field(min_length=2)
    aliases: tuple[str | AliasSpec, ...] = ()
    context: tuple[str, ...] = ()  # evidence words for aliases marked `context: true`
    exclude: tuple[str, ...] = ()  # phrases in which an alias does not name this entity

    def alias_rules(self) -> list[AliasSpec]:
        """The name and every alias, each with its evidence rules (the name's may be overridden)."""
        specs = [a if isinstance(a, AliasSpec) else AliasSpec(alias=a) for a in self.aliases]
        if not any(spec.alias == self.name for spec in specs):
            specs.insert(0, AliasSpec(alias=self.name))
        return [spec for spec in specs if spec.use]

    @property
    def alias_names(self) -> list[str]:
        return [spec.alias for spec in self.alias_rules()]


class Cluster(_Entity):
    """The cluster itself is watched like a member."""

    website: HttpUrl | None = None
    search: bool = True
    query: str | None = None
    # the places that tell an article is about the cluster's region, for a member's name
    # shortened past a place ("Cellectis" of Cellectis Nantes); None: western France's
    # (pipeline.analysis.members.PLACES)
    region: tuple[str, ...] | None = None

    @property
    def id(self) -> str:
        return slugify(self.name)


class Member(_Entity):
    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: Literal["member", "person"] = "member"
    member_of: str | None = None  # for a person: the id of the member they lead
    website: HttpUrl | None = None
    city: str | None = None
    tags: tuple[str, ...] = ()
    search: bool = True  # one news-search feed per member for `kind: search` sources
    query: str | None = None  # override of the news-search query
    # false: only the name and the aliases as written, no derived forms (pipeline/analysis/members.py)
    derive: bool = True
    joined: date | None = None  # counted in digests and charts from this day ...
    left: date | None = None  # ... until the day before this one; its history stays stored

    @property
    def slug(self) -> str:
        return self.id or slugify(self.name)

    @model_validator(mode="after")
    def _left_after_joined(self) -> Member:
        if self.joined and self.left and self.left <= self.joined:
            raise ValueError(f"left ({self.left}) must come after joined ({self.joined})")
        if self.kind == "person" and (self.joined or self.left):
            raise ValueError("joined and left are for members, not persons")
        return self


def _css(value: str | None) -> str | None:
    if value is not None:
        import soupsieve

        try:
            soupsieve.compile(value)
        except soupsieve.SelectorSyntaxError as exc:
            raise ValueError(
                f"invalid CSS selector {value!r}: {str(exc).splitlines()[0]}"
            ) from None
    return value


CssSelector = Annotated[str | None, AfterValidator(_css)]
PAGE_OPTIONS = (
    "selector",
    "item_selector",
    "title_selector",
    "date_selector",
    "next_selector",
    "max_pages",
)
SITEMAP_OPTIONS = ("max_age_days", "max_urls")


class SourceOptions(_Model):
    """Per-source settings shared by what is written and what is polled."""

    lang: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    enabled: bool = True
    confirmed: bool = True  # false: written from documentation, check with `veille check --probe`
    interval_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    fetch_articles: bool = True  # fetch each new article's page for its full text
    max_articles: int = Field(default=50, ge=1, le=1000)  # pages per run; the rest wait
    site: HttpUrl | None = None  # the web site a feed belongs to (OPML's htmlUrl)
    # the member (or the cluster) whose own newsroom this is: what it publishes on its own
    # site is owned media, kept apart from press coverage (pipeline/analysis/owned.py)
    owner: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # kind: page -- a listing of article links
    selector: CssSelector = None  # the links (an <a>, or an element holding one)
    item_selector: CssSelector = None  # one block per article; the other selectors apply inside
    title_selector: CssSelector = None
    date_selector: CssSelector = None  # text or datetime/content attribute
    next_selector: CssSelector = None  # the link to the next listing page
    max_pages: int = Field(default=1, ge=1, le=20)
    # kind: sitemap
    max_age_days: int = Field(default=7, ge=1, le=366)  # older URLs are not fetched
    max_urls: int = Field(default=100, ge=1, le=5000)  # newest first, per run


class SourceSpec(SourceOptions):
    """A source as written in sources.yaml (`kind: search` is expanded per member)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80)
    kind: SourceKind
    url: HttpUrl
    name: str | None = None

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> SourceSpec:
        if self.kind == "page" and not self.selector:
            raise ValueError("a page source needs a `selector` for its article links")
        if (self.title_selector or self.date_selector) and not self.item_selector:
            raise ValueError("title_selector and date_selector apply inside an `item_selector`")
        misplaced = [
            name
            for name in self.model_fields_set
            if (name in PAGE_OPTIONS and self.kind != "page")
            or (name in SITEMAP_OPTIONS and self.kind != "sitemap")
        ]
        if misplaced:
            raise ValueError(f"{', '.join(sorted(misplaced))}: not an option of kind {self.kind!r}")
        return self


class Source(SourceOptions):
    """A source the pipeline polls: one per feed, page or sitemap, one per member for searches."""

    id: str
    kind: SourceKind
    url: str
    name: str
    member_id: str | None = None  # for news-search feeds: whose search this is

    @property
    def spread(self) -> bool:
        """A news-search feed is due at its own moment within its interval (its slot), so
        the feeds of one search are spread over the interval instead of all due at once."""
        return self.kind == "search" and bool(self.interval_minutes)

    @property
    def template(self) -> str:
        """The id of the sources.yaml entry this source comes from ("news" for "news:valneva")."""
        return self.id.split(":", 1)[0]

    def _period_and_offset(self) -> tuple[int, int]:
        period = (self.interval_minutes or 1) * 60
        # stable across restarts and machines (Python's hash() is salted per process)
        digest = hashlib.sha256(self.id.encode("utf-8")).digest()
        return period, int.from_bytes(digest[:8], "big") % period

    def next_slot(self, after: datetime) -> datetime:
        """The first of this feed's slots strictly after ``after``: its offset (from a hash
        of its id) plus a whole number of intervals since 1970-01-01 UTC."""
        period, offset = self._period_and_offset()
        seconds = int((after.astimezone(UTC) - _EPOCH).total_seconds())
        k = (seconds - offset) // period + 1
        return _EPOCH + timedelta(seconds=offset + k * period)

    def on_slot(self, when: datetime) -> bool:
        """Whether ``when`` is one of this feed's slots (a schedule written for this interval)."""
        period, offset = self._period_and_offset()
        seconds = (when.astimezone(UTC) - _EPOCH).total_seconds()
        return seconds == int(seconds) and (int(seconds) - offset) % period == 0


_DOW_NUMBER = re.compile(r"(?<![*/])\b\d+\b")


def _check_cron(expression: str) -> str:
    """Five crontab fields. Days of the week must be names: APScheduler reads 0 as Monday
    where cron reads it as Sunday, and a digest a day late is worse than an error."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r}: a cron expression has 5 fields (minute hour day month weekday)"
        )
    if _DOW_NUMBER.search(fields[4]):
        raise ValueError(
            f"{expression!r}: write days of the week as names (mon, tue, ..., sun, or mon-fri): "
            "numbers mean different days in different cron dialects"
        )
    try:
        CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"{expression!r}: {exc}") from None
    return expression


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name like Europe/Paris)") from None
    return name


CronExpression = Annotated[str, AfterValidator(_check_cron)]


class Schedule(_Model):
    """When `veille schedule` (or the crontab you write from it) runs a pass and sends the digest."""

    run: CronExpression = "*/30 * * * *"
    digest: CronExpression = "30 7 * * mon"
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Europe/Paris"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def trigger(self, which: Literal["run", "digest"]) -> CronTrigger:
        return CronTrigger.from_crontab(getattr(self, which), timezone=self.zone)

    def run_interval(self) -> timedelta:
        """The shortest gap between two runs over a week: the base of a failing source's backoff."""
        trigger = self.trigger("run")
        start = datetime(2026, 1, 5, tzinfo=self.zone)  # any Monday
        gaps: list[timedelta] = []
        previous: datetime | None = None
        moment = start
        while moment < start + timedelta(days=8) and len(gaps) < 2000:
            fire = trigger.get_next_fire_time(previous, moment)
            if fire is None:
                break
            if previous is not None:
                gaps.append(fire.astimezone(UTC) - previous.astimezone(UTC))
            previous, moment = fire, fire.astimezone(UTC) + timedelta(seconds=1)
        return min(gaps, default=timedelta(days=1))


def _check_address(value: str) -> str:
    """An e-mail address, optionally with a display name: "Veille <veille@example.org>"."""
    _, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or any(c.isspace() for c in address) or "\n" in value:
        raise ValueError(f"not an e-mail address: {value!r}")
    return value


EmailAddress = Annotated[str, Field(max_length=320), AfterValidator(_check_address)]


class Digest(_Model):
    language: Literal["fr", "en"] = "fr"
    from_: EmailAddress | None = Field(default=None, alias="from")
    recipients: tuple[EmailAddress, ...] = ()
    datasette_url: HttpUrl | None = None
    skip_empty: bool = False
    # an article published this many days before its week began is a back catalogue
    # (a new source's archive), left out of the digest
    backlog_days: int = Field(default=14, ge=0, le=3650)
    # true: the week's digest waits until the team approves it on the desk (`veille review
    # approve`); the scheduled and cron sends say so and send nothing before
    review: bool = False
    # with review: when an unapproved week goes out anyway ("mon 12:00": the Monday after
    # the week, in schedule.timezone); unset: an unapproved week is never sent
    review_deadline: str | None = Field(
        default=None, pattern=r"^(mon|tue|wed|thu|fri|sat|sun) ([01][0-9]|2[0-3]):[0-5][0-9]$"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def deadline(self, week_end: datetime) -> datetime | None:
        """The moment an unapproved week goes out: the first ``review_deadline`` time after
        the week ends (``week_end`` is aware, in the schedule's zone)."""
        if self.review_deadline is None:
            return None
        day, clock = self.review_deadline.split()
        hour, minute = (int(x) for x in clock.split(":"))
        offset = WEEKDAYS.index(day) - week_end.weekday()
        moment = (week_end + timedelta(days=offset % 7)).replace(hour=hour, minute=minute)
        return moment if moment >= week_end else moment + timedelta(days=7)


OutletTier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=40)]
# the tiers veille knows by name (labelled in the digest and the report, in this order);
# a team may add its own (shown as written, after these); an outlet not listed is "other"
KNOWN_TIERS = ("national", "international", "regional", "trade")
OTHER_TIER = "other"


class Outlet(_Model):
    """An outlet as the report shows it: ``{name: Les Echos, tier: national, match:
    [lesechos.fr, Les Echos Industrie & Services]}``. ``match`` lists domains (a domain
    also covers its subdomains) and outlet or source names (case and spacing ignored);
    the display name matches too."""

    name: str = Field(min_length=1, max_length=200)
    tier: OutletTier
    match: tuple[Annotated[str, Field(min_length=2, max_length=200)], ...] = ()


class Report(_Model):
    """The board's report (`veille report`), and its scheduled sending."""

    # month or quarter: `veille schedule` and `veille report --send` mail the report of the
    # period just ended, once; unset: reports are only written on demand
    every: Literal["month", "quarter"] | None = None
    compare: Literal["previous", "year"] = "previous"
    language: Literal["fr", "en"] | None = None  # default: digest.language
    recipients: tuple[EmailAddress, ...] = ()
    from_: EmailAddress | None = Field(default=None, alias="from")  # default: digest.from
    # hours after the period ends before the scheduled report goes out: the last day's
    # articles are found by then (the first pass after it sends)
    delay_hours: int = Field(default=8, ge=0, le=24 * 14)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Network(_Model):
    user_agent: str | None = None  # default: "veille/<version> (+<contact>)"
    contact: HttpUrl = DEFAULT_CONTACT
    connect_timeout: float = Field(default=10.0, gt=0, le=120)
    read_timeout: float = Field(default=20.0, gt=0, le=300)
    total_timeout: float = Field(default=60.0, gt=0, le=600)
    concurrency: int = Field(default=20, ge=1, le=200)
    per_host_concurrency: int = Field(default=2, ge=1, le=20)
    per_host_delay: float = Field(default=1.0, ge=0, le=60)
    max_body_bytes: int = Field(default=10_000_000, ge=1_000, le=200_000_000)
    max_redirects: int = Field(default=5, ge=0, le=20)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=1.0, ge=0, le=60)
    max_retry_after: float = Field(default=30.0, ge=0, le=3600)
    backoff_cap_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    # the longest a feed's Cache-Control max-age or Expires may put off its next check
    # (0: ignore them); a longer interval_minutes still wins
    max_cache_hint_hours: float = Field(default=24.0, ge=0, le=24 * 14)
    parse_timeout: float = Field(default=30.0, gt=0, le=300)
    extract_timeout: float = Field(default=20.0, gt=0, le=300)  # one article page
    max_page_bytes: int = Field(default=5_000_000, ge=10_000, le=100_000_000)  # article pages
    # what one parser or extractor process may add to its address space; a large document
    # is read alone, so the run's whole process tree stays under about 600 MB
    parse_memory_mb: int = Field(default=256, ge=128, le=16_384)
    analysis_timeout: float = Field(default=60.0, gt=0, le=600)  # one source's new articles
    # all the article pages of one source, per run; what is left waits for the next run
    source_timeout: float = Field(default=300.0, gt=0, le=3600)
    # the whole run, in seconds; default: half the gap between two scheduled runs
    run_timeout: float | None = Field(default=None, gt=0, le=24 * 3600)
    allow_private: bool = False
    # processes that do a run's HTTP work beside its own process, which schedules and
    # writes (a host is always served by the same one); default: one per core beyond the
    # first, at most 4; 0: fetch in the run's own process
    fetch_processes: int | None = Field(default=None, ge=0, le=16)

    @property
    def agent(self) -> str:
        return self.user_agent or f"veille/{__version__} (+{self.contact})"


class Lexicon(_Model):
    """Keywords of one topic; an article gets the topic when they occur in it."""

    fr: tuple[str, ...] = ()
    en: tuple[str, ...] = ()

    @property
    def words(self) -> tuple[str, ...]:
        return self.fr + self.en


TopicId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]


class MembersFile(_Model):
    """The members file a sources.yaml names (`members_file:`), written by `veille members import`."""

    members: tuple[Member, ...] = ()


ALERT_MAX_AGE_DAYS = 3  # older news is not an alert
ALERT_MAX_PER_RUN = 10  # beyond it, one summary message


class AlertRule(_Model):
    """An alert rule: new stories that match it go, once, to the Apprise URLs held in the
    environment variable ``to`` (never in this file)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)
    to: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)
    # default: every member and the cluster; any topic, or none
    members: tuple[str, ...] | None = Field(default=None, min_length=1)
    topics: tuple[str, ...] | None = Field(default=None, min_length=1)
    in_title: bool = False  # the member is named in the headline
    max_age_days: int = Field(default=ALERT_MAX_AGE_DAYS, ge=1, le=3650)
    max_per_run: int = Field(default=ALERT_MAX_PER_RUN, ge=1, le=100)
    enabled: bool = True  # false: silenced, its stories are recorded as not sent
    # a story waits this long after it was first seen before it is sent: the team can drop
    # it on the desk meanwhile (the alert is sent by the first pass after the delay)
    delay_minutes: int = Field(default=0, ge=0, le=7 * 24 * 60)
    # false: press coverage only (earned); true: the members' own releases only (owned);
    # unset: both
    owned: bool | None = None


class RawConfig(_Model):
    cluster: Cluster
    members: tuple[Member, ...] = ()
    # a YAML file of more members, relative to sources.yaml (the imported directory)
    members_file: str | None = Field(default=None, min_length=1)
    sources: tuple[SourceSpec, ...] = ()
    topics: dict[TopicId, Lexicon] = {}
    schedule: Schedule = Schedule()
    digest: Digest = Digest()
    network: Network = Network()
    alerts: tuple[AlertRule, ...] = ()
    # the outlets' display names and tiers: a list, or the name of a YAML file (relative to
    # sources.yaml) holding the list under `outlets:`; validated apart (_outlets), so that
    # a problem is reported by its path (outlets[2].tier), not by pydantic's union
    outlets: Any = None
    report: Report = Report()

    @model_validator(mode="after")
    def _run_ends_before_the_next(self) -> RawConfig:
        interval = self.schedule.run_interval().total_seconds()
        if self.network.run_timeout is not None and self.network.run_timeout >= interval:
            raise ValueError(
                f"network.run_timeout: {self.network.run_timeout:g} s is not below the "
                f"{interval:g} s between two scheduled runs (schedule.run)"
            )
        return self


class Config(_Model):
    """The validated configuration, with news-search sources expanded per member."""

    path: str
    cluster: Cluster
    members: tuple[Member, ...]  # those of sources.yaml, then those of the members file
    members_file: str | None = None  # its path, as resolved from sources.yaml
    specs: tuple[SourceSpec, ...]
    sources: tuple[Source, ...]
    topics: dict[str, Lexicon] = {}
    schedule: Schedule
    digest: Digest
    network: Network
    alerts: tuple[AlertRule, ...] = ()
    outlets: tuple[Outlet, ...] = ()
    report: Report = Report()

    @property
    def report_language(self) -> Literal["fr", "en"]:
        return self.report.language or self.digest.language

    def run_deadline(self) -> float:
        """Seconds a run may take before what is left waits for the next one: well below
        the gap between two scheduled runs, so a run never overlaps the next."""
        if self.network.run_timeout is not None:
            return self.network.run_timeout
        return self.schedule.run_interval().total_seconds() / 2

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {error['input']!r}"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _problem(error: Any) -> str:
    """One line per problem, by path; a check across sections names its own key."""
    message = _message(error)
    if not error["loc"] and re.match(r"^[a-z_]+(\.[a-z_]+)+: ", message):
        return message
    return f"{_path(error['loc'])}: {message}"


def _read_yaml(path: Path) -> Any:
    yaml = YAML(typ="safe", pure=True)  # YAML 1.2: "no" stays a string, 07:30 stays a string
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"file not found: {path}"], path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], path=str(path)) from None
    try:
        return yamlcache.load(text, yaml.load)  # a large file: parsed once per content
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}{exc.problem or exc}"], path=str(path)) from None
    except YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], path=str(path)) from None


def _duplicates(data: dict[str, Any], file_members: list[Any], file_label: str) -> list[str]:
    """Cross-item checks pydantic cannot see: duplicate source ids and member slugs (over
    sources.yaml and the members file together)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data.get("sources") or []):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            sid = item["id"]
            if sid in seen:
                problems.append(
                    f'sources[{index}].id: duplicate "{sid}" (first at sources[{seen[sid]}])'
                )
            else:
                seen[sid] = index
    members: dict[str, str] = {}
    inline = data.get("members") or []
    labelled = [(f"members[{i}]", item) for i, item in enumerate(inline)]
    labelled += [(f"{file_label}: members[{i}]", item) for i, item in enumerate(file_members)]
    for where, item in labelled:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            slug = item.get("id") or slugify(item["name"])
            if slug in members:
                problems.append(f'{where}: duplicate member id "{slug}" (first at {members[slug]})')
            else:
                members[slug] = where
    return problems


def _alert_problems(raw: RawConfig, members: tuple[Member, ...]) -> list[str]:
    """Alert rules that name a member, a topic or a rule id that does not exist. (Their
    environment variables are checked by `veille check` and when alerts are sent:
    pipeline/outputs/alerts.py.)"""
    problems: list[str] = []
    known_members = {raw.cluster.id, *(m.slug for m in members)}
    seen: dict[str, int] = {}
    for index, rule in enumerate(raw.alerts):
        if rule.id in seen:
            problems.append(
                f'alerts[{index}].id: duplicate "{rule.id}" (first at alerts[{seen[rule.id]}])'
            )
        seen.setdefault(rule.id, index)
        for position, member in enumerate(rule.members or ()):
            if member not in known_members:
                problems.append(
                    f"alerts[{index}].members[{position}]: no member with id {member!r}"
                )
        for position, topic in enumerate(rule.topics or ()):
            if topic not in raw.topics:
                known = ", ".join(sorted(raw.topics)) or "none configured"
                problems.append(
                    f"alerts[{index}].topics[{position}]: no topic {topic!r} (topics: {known})"
                )
    return problems


def _owner_problems(raw: RawConfig, members: tuple[Member, ...]) -> list[str]:
    """A source's `owner` names the cluster or a member (not a person); a news search
    belongs to nobody."""
    known = {raw.cluster.id, *(m.slug for m in members if m.kind == "member")}
    problems: list[str] = []
    for index, spec in enumerate(raw.sources):
        if spec.owner is None:
            continue
        if spec.kind == "search":
            problems.append(
                f"sources[{index}].owner: a news search is nobody's newsroom (owner is for "
                "a member's own feed, page or sitemap)"
            )
        elif spec.owner not in known:
            problems.append(f"sources[{index}].owner: no member with id {spec.owner!r}")
    return problems


def _expand(
    specs: tuple[SourceSpec, ...], cluster: Cluster, members: tuple[Member, ...]
) -> list[Source]:
    """One Source per feed; one per searched entity for each `kind: search` template."""
    sources: list[Source] = []
    for spec in specs:
        common: dict[str, Any] = spec.model_dump(exclude={"id", "url", "name"})
        if spec.kind != "search":
            sources.append(Source(id=spec.id, url=spec.url, name=spec.name or spec.id, **common))
            continue
        entities: list[tuple[str, str, str]] = []
        if cluster.search:
            entities.append((cluster.id, cluster.name, cluster.query or f'"{cluster.name}"'))
        for member in members:
            if member.search and member.kind == "member":
                entities.append((member.slug, member.name, member.query or f'"{member.name}"'))
        label = spec.name or spec.id
        # each feed once per interval, at its own moment (Source.next_slot): a day unless set
        common["interval_minutes"] = spec.interval_minutes or DEFAULT_SEARCH_INTERVAL_MINUTES
        for slug, name, query in entities:
            url = spec.url.replace("{query}", quote_plus(query)).replace("{id}", slug)
            sources.append(
                Source(
                    id=f"{spec.id}:{slug}",
                    url=url,
                    name=f"{label}: {name}",
                    member_id=slug,
                    **common,
                )
            )
    return sources


def members_file_path(config_path: str | Path, members_file: str) -> Path:
    """The members file named in sources.yaml, relative to the directory of sources.yaml."""
    return Path(config_path).parent / members_file


def read_members_file(path: Path) -> list[Any]:
    """The raw member entries of a members file (an absent file is an error, an empty one is not)."""
    data = _read_yaml(path)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("members", []), list):
        raise ConfigError(["the file must be a mapping with a `members:` list"], path=str(path))
    members = data.get("members") or []
    assert isinstance(members, list)
    return members


def _outlet_problems(outlets: tuple[Outlet, ...], where: str) -> list[str]:
    """A domain or a name claimed by two outlets is an error: the report could not say
    which one an article belongs to."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, outlet in enumerate(outlets):
        for key in dict.fromkeys(outlet_key(k) for k in (outlet.name, *outlet.match)):
            if key in seen and seen[key] != index:
                problems.append(
                    f"{where}[{index}]: {key!r} already belongs to {where}[{seen[key]}]"
                )
            seen.setdefault(key, index)
    return problems


def outlet_key(text: str) -> str:
    """How an outlet's name or domain is compared: case and spacing folded, no "www."."""
    key = " ".join(text.casefold().split())
    return key.removeprefix("www.")


def _outlets(value: Any, path: Path) -> tuple[tuple[Outlet, ...], list[str]]:
    """The outlets of sources.yaml, or of the file it names."""
    if value is None:
        return (), []
    where = "outlets"
    if isinstance(value, str) and value:
        file = path.parent / value
        try:
            data = _read_yaml(file)
        except ConfigError as exc:
            return (), [f"outlets: {file}: {p}" for p in exc.problems]
        if not isinstance(data, dict) or not isinstance(data.get("outlets", []), list):
            return (), [f"outlets: {file}: the file must be a mapping with an `outlets:` list"]
        value, where = data.get("outlets") or [], f"{value}: outlets"
    if not isinstance(value, list):
        return (), ["outlets: a list of outlets, or the name of a file that holds them"]
    try:
        listed = _OutletsFile.model_validate({"outlets": value})
    except ValidationError as exc:
        return (), [
            f"{where}{_path(e['loc']).removeprefix('outlets')}: {_message(e)}" for e in exc.errors()
        ]
    return listed.outlets, _outlet_problems(listed.outlets, where)


class _OutletsFile(_Model):
    outlets: tuple[Outlet, ...] = ()


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Read and validate a sources.yaml (and the members file it names); raise ConfigError
    listing every problem."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            ["the file must be a mapping with at least `cluster` and `sources`"], path=str(path)
        )
    file_members: list[Any] = []
    members_name = data.get("members_file")
    if isinstance(members_name, str) and members_name:
        members_path = members_file_path(path, members_name)
        try:
            file_members = read_members_file(members_path)
        except ConfigError as exc:
            raise ConfigError(
                [f"members_file: {members_path}: {p}" for p in exc.problems], path=str(path)
            ) from None
    return build_config(data, path=path, file_members=file_members)


def build_config(data: dict[str, Any], *, path: Path, file_members: list[Any]) -> Config:
    """Validate the data of a sources.yaml and of its members file into a Config."""
    file_label = str(data.get("members_file") or "members_file")
    problems = _duplicates(data, file_members, file_label)
    for index, item in enumerate(data.get("sources") or []):
        if isinstance(item, dict) and item.get("kind") == "search":
            url = str(item.get("url", ""))
            if "{query}" not in url and "{id}" not in url:
                problems.append(
                    f"sources[{index}].url: a search source needs {{query}} or {{id}} in its URL"
                )
    raw: RawConfig | None = None
    listed: MembersFile | None = None
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()] + problems
    try:
        listed = MembersFile.model_validate({"members": file_members})
    except ValidationError as exc:
        problems = problems + [
            f"{file_label}: {_path(e['loc'])}: {_message(e)}" for e in exc.errors()
        ]
    if raw is not None and listed is not None:
        problems += _alert_problems(raw, raw.members + listed.members)
        problems += _owner_problems(raw, raw.members + listed.members)
    outlets: tuple[Outlet, ...] = ()
    if raw is not None:
        outlets, outlet_problems = _outlets(raw.outlets, path)
        problems += outlet_problems
        if raw.report.every and not raw.report.recipients:
            problems.append("report.recipients: nobody to send the scheduled report to")
        if raw.report.every and not (raw.report.from_ or raw.digest.from_):
            problems.append("report.from: the sender's address is not set (nor digest.from)")
    if problems or raw is None or listed is None:
        raise ConfigError(problems, path=str(path))
    members = raw.members + listed.members
    sources = _expand(raw.sources, raw.cluster, members)
    return Config(
        path=str(path),
        cluster=raw.cluster,
        members=members,
        members_file=str(members_file_path(path, raw.members_file)) if raw.members_file else None,
        specs=raw.sources,
        sources=tuple(sources),
        topics=raw.topics,
        schedule=raw.schedule,
        digest=raw.digest,
        network=raw.network,
        alerts=raw.alerts,
        outlets=outlets,
        report=raw.report,
    )
