"""Members' forms + a window of stored articles -> `veille members check`: every form of
every member, why it is used, and how many articles each names its member in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipeline.analysis.folding import fold_alias
from pipeline.analysis.members import Form, MemberForms, derive
from pipeline.analysis.mentions import Matcher
from pipeline.settings.config import Config

CHECK_WEEKS = 8
# a form found in more than this share of the window's articles (and in SUSPICIOUS_MIN or more of
# them at least) is more likely a word than a company: it is listed for a person to look at
SUSPICIOUS_SHARE = 0.10
SUSPICIOUS_MIN = 5
# a form the team rejected (on the desk) at least this often, and in at least this share of
# the articles it matched, is flagged with a fix `members check --apply` writes
REJECTED_MIN = 3
REJECTED_SHARE = 1 / 3


@dataclass(frozen=True, slots=True)
class FormCount:
    form: Form
    articles: int  # articles of the window in which this form names the member
    rejected: int = 0  # of the window's mentions by this form, those the team rejected
    rejected_other_case: int = 0  # ... of them written in other capitals than the form

    @property
    def fix(self) -> str | None:
        """The rule that would stop the rejected matches: capitals first, then context
        words, then off; None when the team's rejections do not call for one."""
        if self.rejected < REJECTED_MIN or self.rejected < REJECTED_SHARE * max(
            self.articles, self.rejected
        ):
            return None
        # capitals help only when the rejected matches were written in other capitals
        if not self.form.case_sensitive and 2 * self.rejected_other_case > self.rejected:
            return "capitals"
        if not self.form.context:
            return "context"
        return "off"


@dataclass(frozen=True, slots=True)
class MemberCheck:
    forms: MemberForms
    counts: tuple[FormCount, ...]

    @property
    def articles(self) -> int:
        return sum(c.articles for c in self.counts)


@dataclass(frozen=True, slots=True)
class CheckReport:
    members: tuple[MemberCheck, ...]
    weeks: int
    articles: int | None  # in the window; None without a database
    since: str | None = None
    team: str | None = None  # the precision as the team judged it, in a sentence

    @property
    def flagged(self) -> list[tuple[MemberCheck, FormCount]]:
        return [(m, c) for m in self.members for c in m.counts if c.fix is not None]

    @property
    def never_found(self) -> list[MemberCheck]:
        return [m for m in self.members if self.articles is not None and m.articles == 0]

    @property
    def silent_forms(self) -> list[tuple[MemberCheck, Form]]:
        if self.articles is None:
            return []
        return [
            (m, c.form)
            for m in self.members
            if m.articles > 0
            for c in m.counts
            if c.form.used and c.articles == 0
        ]

    @property
    def suspicious(self) -> list[tuple[MemberCheck, FormCount]]:
        if not self.articles:
            return []
        limit = max(SUSPICIOUS_MIN, SUSPICIOUS_SHARE * self.articles)
        return [(m, c) for m in self.members for c in m.counts if c.articles >= limit]


def check(
    config: Config,
    *,
    articles: Iterable[tuple[str, str, str | None]] | None,
    weeks: int,
    rejected: Mapping[tuple[str, str], int] | None = None,
    team: str | None = None,
) -> CheckReport:
    """Forms of every member with, when ``articles`` (title, summary, text of the window)
    are given, the number of articles each form names its member in; ``rejected``: how
    many of the window's mentions the team rejected, by (member id, alias as written)."""
    refused: dict[tuple[str, str], dict[str, int]] = {}  # -> alias as written -> count
    for (member, alias), count in (rejected or {}).items():
        written = refused.setdefault((member, fold_alias(alias)), {})
        as_written = fold_alias(alias, keep_case=True)
        written[as_written] = written.get(as_written, 0) + count
    derived = derive(config.cluster, config.members)
    counts: dict[tuple[str, str], int] = {}
    total: int | None = None
    if articles is not None:
        total = 0
        matcher = Matcher.from_config(config)
        for title, summary, text in articles:
            total += 1
            whole = "\n".join(p for p in (title, summary, text) if p)
            seen = {
                (m.member_id, fold_alias(m.alias))
                for part in (title, summary, text)
                if part
                for m in matcher.find(part, snippets=False, evidence=whole)
            }
            for key in seen:
                counts[key] = counts.get(key, 0) + 1
    members = tuple(
        MemberCheck(
            forms=forms,
            counts=tuple(
                _count(f, forms.member_id, counts, refused if f.used else {}) for f in forms.forms
            ),
        )
        for forms in derived
    )
    return CheckReport(members=members, weeks=weeks, articles=total, team=team)


def _count(
    form: Form,
    member_id: str,
    counts: Mapping[tuple[str, str], int],
    refused: Mapping[tuple[str, str], Mapping[str, int]],
) -> FormCount:
    key = (member_id, fold_alias(form.alias))
    written = refused.get(key, {})
    same = fold_alias(form.alias, keep_case=True)
    return FormCount(
        form,
        counts.get(key, 0),
        sum(written.values()),
        sum(n for spelling, n in written.items() if spelling != same),
    )


def fix_rule(count: FormCount) -> dict[str, object]:
    """The members file's rule for a flagged form: `{alias: X, case_sensitive: true}`, ..."""
    rule: dict[str, object] = {"alias": count.form.alias}
    if count.fix == "capitals":
        rule["case_sensitive"] = True
    elif count.fix == "context":
        rule.update(case_sensitive=count.form.case_sensitive, context=True)
    else:
        rule["use"] = False
    return rule


def render_check(report: CheckReport, *, only: str | None = None) -> str:
    """The report as text: a summary a person reads first, then every member's forms."""
    lines: list[str] = []
    used = sum(len(m.forms.used) for m in report.members)
    unused = sum(len(m.forms.forms) for m in report.members) - used
    by_rule: dict[str, int] = {}
    for m in report.members:
        for f in m.forms.used:
            by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    rules = ", ".join(f"{n} {r}" for r, n in sorted(by_rule.items(), key=lambda x: -x[1]))
    lines.append(
        f"{len(report.members)} members and persons: {used} forms matched ({rules}), "
        f"{unused} not used"
    )
    if report.articles is None:
        lines.append("no database: forms and rules only (give --db for counts)")
    else:
        lines.append(f"{report.articles} articles first seen in the last {report.weeks} weeks")
        never = report.never_found
        lines.append(f"\nnever found in {report.weeks} weeks: {len(never)} members")
        for m in never:
            lines.append(f"  {m.forms.member_id}  ({', '.join(f.alias for f in m.forms.used)})")
        silent = report.silent_forms
        lines.append(f"\nforms that never matched (of members found otherwise): {len(silent)}")
        for m, f in silent:
            lines.append(f"  {m.forms.member_id}: {f.alias!r} [{f.rule}]")
        odd = report.suspicious
        lines.append(
            f"\nforms matching suspiciously often ({SUSPICIOUS_SHARE:.0%} of the articles, "
            f"{SUSPICIOUS_MIN} at least): {len(odd)}"
        )
        for m, c in odd:
            lines.append(
                f"  {m.forms.member_id}: {c.form.alias!r} in {c.articles} articles [{c.form.rule}]"
            )
    if report.team is not None:
        lines.append(f"\nas judged by the team: {report.team}")
        flagged = report.flagged
        lines.append(
            f"forms the team rejected {REJECTED_MIN} times or more, in a third of their "
            f"matches or more: {len(flagged)}"
        )
        for m, c in flagged:
            lines.append(
                f"  {m.forms.member_id}: {c.form.alias!r} rejected {c.rejected} of "
                f"{max(c.articles, c.rejected)} [{c.form.rule}] -> {c.fix} (--apply writes it)"
            )
    lines.append("")
    for m in report.members:
        if only and m.forms.member_id != only:
            continue
        found = "" if report.articles is None else f" — {m.articles} article(s)"
        lines.append(f"{m.forms.name} ({m.forms.member_id}){found}")
        for c in m.counts:
            f = c.form
            count = "" if report.articles is None or not f.used else f"{c.articles:5}  "
            refused = f" — rejected {c.rejected}x by the team" if c.rejected else ""
            lines.append(f"  {count}{f.alias!r:32} {f.rule:28} {f.origin}: {f.reason}{refused}")
        if any(f.context for f in m.forms.used):
            source = "derived" if m.forms.derived_context else "written"
            shown = ", ".join(m.forms.context[:8])
            more = f", … ({len(m.forms.context)} words)" if len(m.forms.context) > 8 else ""
            lines.append(f"  context ({source}): {shown}{more}")
    return "\n".join(lines) + "\n"
