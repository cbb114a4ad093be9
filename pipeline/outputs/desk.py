"""The team's desk: a week of stories as the digest shows them, with the verdicts' buttons.

Two faces over the same functions (pipeline/outputs/review.py):
- ``week_view`` -> what `veille review list` prints (text or JSON);
- a Datasette plugin (registered as a ``datasette`` entry point in pyproject.toml) that
  serves ``/-/desk`` (the week, filters, buttons, audit trail), ``/-/desk/preview`` (the
  digest exactly as it will be sent) and ``/-/desk/verdict`` (POST: one verdict).

Reading is open to whoever can read the Datasette; writing needs a logged-in account
with the ``veille-desk`` permission (the accounts of the desk's accounts file, see
pipeline/outputs/serve.py) and Datasette's CSRF token (asgi-csrf refuses a POST
without it). A GET never writes. Forms are plain HTML: the desk works without
JavaScript. Every text is escaped by the templates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from datasette import hookimpl
from datasette.utils.asgi import Response

from pipeline.errors import ReviewError, VeilleError
from pipeline.outputs.digest import Content, Story, Week, build, line, render
from pipeline.outputs.review import (
    MAX_COMMENT,
    Recorded,
    TeamPrecision,
    Verdict,
    add,
    add_article,
    approval,
    approve,
    drop,
    highlight,
    reject,
    review_week,
    team_precision,
    undo,
    week_verdicts,
)
from pipeline.settings.config import Config, load_config
from pipeline.storage.store import Store, utcnow

PLUGIN = "veille-desk"
PERMISSION = "veille-desk"  # the permission to write verdicts
T = TypeVar("T")


# ---------------------------------------------------------------- the week, as the desk shows it


@dataclass
class DeskStory:
    story: Story
    member_id: str  # the section it is shown in
    members: list[tuple[str, str]]  # (id, name) of every member the story names, as judged
    verdicts: list[Verdict]  # in force on this story

    @property
    def reviewed(self) -> bool:
        return bool(self.verdicts)


@dataclass
class DeskSection:
    member_id: str
    name: str
    stories: list[DeskStory]


@dataclass
class WeekView:
    week: Week
    content: Content
    sections: list[DeskSection]
    verdicts: list[Verdict]  # the week's audit trail, oldest first
    approved: Verdict | None
    precision: TeamPrecision
    review: bool  # digest.review: the digest waits for the approval
    deadline: datetime | None
    members: list[tuple[str, str]] = field(default_factory=list)  # every member, for "add"

    def as_json(self) -> dict[str, Any]:
        return {
            "week": self.week.label,
            "approved": _verdict_json(self.approved) if self.approved else None,
            "review": self.review,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "team_precision": self.precision.sentence(),
            "sections": [
                {
                    "member": s.member_id,
                    "name": s.name,
                    "stories": [
                        {
                            "url": d.story.article_url,
                            "link": d.story.url,
                            "title": d.story.title,
                            "outlet": d.story.outlet,
                            "also_in": d.story.also_in,
                            "date": d.story.when.isoformat(),
                            "topics": d.story.topics,
                            "members": [m for m, _ in d.members],
                            "highlighted": d.story.highlighted,
                            "comment": d.story.comment,
                            "verdicts": [v.id for v in d.verdicts],
                        }
                        for d in s.stories
                    ],
                }
                for s in self.sections
            ],
            "verdicts": [_verdict_json(v) for v in self.verdicts],
        }

    def as_text(self) -> str:
        state = (
            f"approved by {self.approved.by} at {self.approved.at}"
            if self.approved
            else "not approved"
        )
        lines = [f"{self.week} ({state}); {self.precision.sentence()}"]
        for section in self.sections:
            lines.append(f"\n== {section.name} ({section.member_id})")
            for d in section.stories:
                mark = "★ " if d.story.highlighted else ""
                lines.append(f"* {mark}{d.story.title}")
                lines.append(
                    f"  {d.story.when:%Y-%m-%d} · {d.story.outlet} · {d.story.article_url}"
                )
                if d.story.comment:
                    lines.append(f"  > {d.story.comment}")
        if self.verdicts:
            lines.append("\nverdicts:")
            lines += [f"  {v.describe()}" for v in self.verdicts]
        return "\n".join(lines) + "\n"


def _verdict_json(v: Verdict) -> dict[str, Any]:
    return {
        "id": v.id,
        "at": v.at,
        "by": v.by,
        "action": v.action,
        "url": v.url,
        "member": v.member_id,
        "week": v.week,
        "comment": v.comment,
        "undoes": v.undoes,
        "undone_by": v.undone_by,
    }


def week_view(
    config: Config,
    store: Store,
    week: Week,
    *,
    now: datetime,
    db_name: str,
    member: str | None = None,
    topic: str | None = None,
    unreviewed: bool = False,
) -> WeekView:
    """The week as the digest will show it, with the verdicts in force on each story."""
    content = build(config, store, week, now=now, db_name=db_name)
    verdicts = week_verdicts(store, week)
    on_story: dict[int, list[int]] = {}
    for key, verdict_id in store.rows(
        "reading the verdicts on the week's stories",
        "SELECT story_key, verdict_id FROM verdict_stories ORDER BY verdict_id",
    ):
        on_story.setdefault(int(key), []).append(int(verdict_id))
    by_id = {v.id: v for v in verdicts}
    names = {
        str(i): str(n)
        for i, n in store.rows(
            "reading the members",
            "SELECT id, name FROM members WHERE kind IN ('member', 'cluster') AND in_config = 1 "
            "ORDER BY kind != 'cluster', name",
        )
    }
    sections: list[DeskSection] = []
    releases = RELEASES[config.digest.language]
    press = [s for s in (content.cluster, *content.sections) if s is not None]
    for section in [*press, *content.releases]:
        if member and section.member.id != member:
            continue
        stories = []
        for story in section.stories:
            if topic and topic not in story.topics:
                continue
            desk = DeskStory(
                story=story,
                member_id=section.member.id,
                members=[(m, names.get(m, m)) for m in story.snippets],
                verdicts=[by_id[i] for i in on_story.get(story.story_key, []) if i in by_id],
            )
            if unreviewed and desk.reviewed:
                continue
            stories.append(desk)
        if stories:
            own = any(section is r for r in content.releases)
            name = f"{section.member.name} · {releases}" if own else section.member.name
            sections.append(DeskSection(section.member.id, name, stories))
    return WeekView(
        week=week,
        content=content,
        sections=sections,
        verdicts=verdicts,
        approved=approval(store, week),
        precision=team_precision(store, now=now),
        review=config.digest.review,
        deadline=config.digest.deadline(week.end) if config.digest.review else None,
        members=sorted(names.items(), key=lambda item: item[1].casefold()),
    )


# the heading of a member's own releases (owned media) on the desk, after its name
RELEASES = {"fr": "communiqués", "en": "own releases"}

# ---------------------------------------------------------------- the Datasette plugin

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Le desk",
        "week": "Semaine {number}",
        "previous": "← semaine précédente",
        "next": "semaine suivante →",
        "approved": "Semaine approuvée par {by} le {at}.",
        "not_approved": "Semaine pas encore approuvée.",
        "review_on": "Le digest attend l'approbation (digest.review).",
        "deadline": "Sans approbation, il part le {when}.",
        "never": "Sans approbation, il ne part pas.",
        "approve": "Approuver la semaine",
        "preview": "Aperçu du digest tel qu'il sera envoyé",
        "precision": "Précision jugée par l'équipe : {sentence}",
        "filters": "Filtrer",
        "member": "Membre",
        "topic": "Thème",
        "any": "tous",
        "unreviewed": "pas encore relus",
        "reject": "Pas à propos de {name}",
        "drop": "Pas pertinent",
        "highlight": "Mettre à la une",
        "comment": "commentaire (une ou deux phrases)",
        "add": "Ajouter un membre",
        "why": "pourquoi (facultatif)",
        "also_in": "aussi dans",
        "trail": "Journal des verdicts",
        "undo": "Annuler",
        "undone": "annulé par #{id}",
        "read_only": "Lecture seule : connectez-vous avec un compte du desk pour juger.",
        "login": "Se connecter",
        "nothing": "Aucun sujet cette semaine avec ces filtres.",
        "highlighted": "À la une",
        "by": "par",
        "stories": "sujets",
        "article": "Un article que veille n'a pas trouvé :",
        "article_button": "Ajouter l'article",
    },
    "en": {
        "title": "The desk",
        "week": "Week {number}",
        "previous": "← previous week",
        "next": "next week →",
        "approved": "Week approved by {by} on {at}.",
        "not_approved": "Week not approved yet.",
        "review_on": "The digest waits for the approval (digest.review).",
        "deadline": "Unapproved, it goes out on {when}.",
        "never": "Unapproved, it is never sent.",
        "approve": "Approve the week",
        "preview": "Preview the digest as it will be sent",
        "precision": "Precision as judged by the team: {sentence}",
        "filters": "Filter",
        "member": "Member",
        "topic": "Topic",
        "any": "any",
        "unreviewed": "not yet reviewed",
        "reject": "Not about {name}",
        "drop": "Not relevant",
        "highlight": "Highlight",
        "comment": "comment (one or two sentences)",
        "add": "Add a member",
        "why": "why (optional)",
        "also_in": "also in",
        "trail": "Verdicts",
        "undo": "Undo",
        "undone": "undone by #{id}",
        "read_only": "Read only: log in with a desk account to give verdicts.",
        "login": "Log in",
        "nothing": "No story this week with these filters.",
        "highlighted": "Highlighted",
        "by": "by",
        "stories": "stories",
        "article": "An article veille did not find:",
        "article_button": "Add the article",
    },
}


@dataclass(frozen=True, slots=True)
class DeskSettings:
    config_path: Path
    db_path: Path
    accounts: frozenset[str]


def settings(datasette: Any) -> DeskSettings | None:
    """The desk's settings from the metadata `veille datasette` writes; None: no desk."""
    raw = datasette.plugin_config(PLUGIN) or {}
    if not raw.get("config") or not raw.get("db"):
        return None
    return DeskSettings(
        config_path=Path(raw["config"]),
        db_path=Path(raw["db"]),
        accounts=frozenset(raw.get("accounts") or ()),
    )


async def _in_thread(job: Callable[[], T]) -> T:
    return await asyncio.to_thread(job)


def _with_store(db_path: Path, job: Callable[[Store], T], *, migrate: bool = False) -> T:
    store = Store.open(db_path, migrate=migrate)
    try:
        return job(store)
    finally:
        store.close()


async def _may_write(datasette: Any, request: Any) -> bool:
    return request.actor is not None and bool(
        await datasette.permission_allowed(request.actor, PERMISSION, default=False)
    )


def _week_of(config: Config, store: Store, text: str | None) -> Week:
    if text:
        try:
            return Week.parse(text, config.schedule.zone)
        except ValueError:
            pass
    return review_week(store, utcnow(), config.schedule.zone)


async def desk_page(datasette: Any, request: Any) -> Any:
    desk = settings(datasette)
    if desk is None:
        return Response.text("the desk is served by `veille datasette`", status=404)
    config = load_config(desk.config_path)
    args = request.args
    member = (args.get("member") or "")[:100] or None
    topic = (args.get("topic") or "")[:100] or None
    unreviewed = args.get("unreviewed") == "1"

    def read(store: Store) -> WeekView:
        week = _week_of(config, store, args.get("week"))
        return week_view(
            config,
            store,
            week,
            now=utcnow(),
            db_name=desk.db_path.stem,
            member=member,
            topic=topic,
            unreviewed=unreviewed,
        )

    view = await _in_thread(lambda: _with_store(desk.db_path, read))
    lang = config.digest.language
    labels = LABELS[lang]
    topics = sorted({t for s in view.content.sections for st in s.stories for t in st.topics})
    context = {
        "v": view,
        "t": labels,
        "lang": lang,
        "can_write": await _may_write(datasette, request),
        "actor": request.actor,
        "member": member,
        "topic": topic,
        "unreviewed": unreviewed,
        "topics": topics,
        "max_comment": MAX_COMMENT,
        "week_link": lambda w: "?" + urlencode({"week": w.label}),
        "range": f"{view.week.monday:%d/%m} – {view.week.sunday:%d/%m/%Y}",
    }
    return Response.html(
        await datasette.render_template(_template(datasette), context, request=request)
    )


def _template(datasette: Any) -> Any:
    """desk.html, compiled in Datasette's environment (it extends Datasette's base.html)."""
    source = resources.files("pipeline.outputs").joinpath("templates/desk.html")
    return datasette.jinja_env.from_string(source.read_text(encoding="utf-8"))


async def desk_preview(datasette: Any, request: Any) -> Any:
    """The digest of the week, HTML part, exactly as `veille digest --send` would render it."""
    desk = settings(datasette)
    if desk is None:
        return Response.text("the desk is served by `veille datasette`", status=404)
    config = load_config(desk.config_path)

    def read(store: Store) -> str:
        week = _week_of(config, store, request.args.get("week"))
        content = build(config, store, week, now=utcnow(), db_name=desk.db_path.stem)
        return render(config, content).html

    html = await _in_thread(lambda: _with_store(desk.db_path, read))
    return Response.html(html)


def _field(form: Any, name: str, limit: int = 2048) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    return str(value)[:limit].strip() or None


async def desk_verdict(datasette: Any, request: Any) -> Any:
    """POST: one verdict, then back to the desk (303). Refused without the permission."""
    if request.method != "POST":
        return Response.text("verdicts are given with POST", status=405)
    desk = settings(datasette)
    if desk is None:
        return Response.text("the desk is served by `veille datasette`", status=404)
    if not await _may_write(datasette, request):
        return Response.text("forbidden: log in with a desk account to give verdicts", status=403)
    form = await request.post_vars()
    by = str(request.actor.get("id"))
    action = _field(form, "action", 20)
    url = _field(form, "url") or ""
    member = _field(form, "member", 200) or ""
    text = _field(form, "comment", 4 * MAX_COMMENT)
    week_text = _field(form, "week", 20)
    config = load_config(desk.config_path)
    now = utcnow()

    lang = config.digest.language

    def act(store: Store) -> str:
        done = _act(store)
        return done.verdict.describe(lang) if done.verdict else done.message

    def _act(store: Store) -> Recorded:
        if action == "reject":
            return reject(store, url=url, member_id=member, by=by, why=text, now=now)
        if action == "drop":
            return drop(store, url=url, by=by, why=text, now=now)
        if action == "highlight":
            return highlight(store, url=url, by=by, comment=text, now=now)
        if action == "add":
            return add(store, url=url, member_id=member, by=by, now=now)
        if action == "undo":
            try:
                verdict_id = int(_field(form, "verdict", 12) or "")
            except ValueError:
                raise ReviewError("undo: which verdict?") from None
            return undo(store, verdict_id=verdict_id, by=by, now=now)
        if action == "approve":
            return approve(store, week=_week_of(config, store, week_text), by=by, now=now)
        if action == "article":
            return add_article(config, store, url=url, by=by, now=now, member_id=member or None)
        raise ReviewError(f"unknown action {line(action)!r}")

    try:
        said = await _in_thread(lambda: _with_store(desk.db_path, act))
        datasette.add_message(request, said, datasette.INFO)
    except VeilleError as exc:
        datasette.add_message(request, str(exc), datasette.ERROR)
    back = {"week": week_text or ""}
    for name in ("member_filter", "topic_filter"):
        if _field(form, name, 100):
            back[name.removesuffix("_filter")] = _field(form, name, 100) or ""
    return Response.redirect(datasette.urls.path("/-/desk?" + urlencode(back)), status=303)


@hookimpl  # type: ignore[untyped-decorator]
def register_routes() -> list[tuple[str, Any]]:
    return [
        (r"^/-/desk$", desk_page),
        (r"^/-/desk/preview$", desk_preview),
        (r"^/-/desk/verdict$", desk_verdict),
    ]


@hookimpl  # type: ignore[untyped-decorator]
def permission_allowed(datasette: Any, actor: Any, action: str) -> bool | None:
    """The desk permission: the accounts of the desk's accounts file, nobody else."""
    if action != PERMISSION:
        return None
    desk = settings(datasette)
    if desk is None or not actor or not isinstance(actor, dict):
        return False
    return str(actor.get("id")) in desk.accounts


@hookimpl  # type: ignore[untyped-decorator]
def menu_links(datasette: Any, actor: Any) -> list[dict[str, str]]:
    if settings(datasette) is None:
        return []
    return [{"href": datasette.urls.path("/-/desk"), "label": "Desk"}]
