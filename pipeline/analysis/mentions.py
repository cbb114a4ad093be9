"""Members + text -> mentions: where each member is named, as written, with a snippet.

1. The text is folded once: case, accents, apostrophes, dashes, non-breaking and
   repeated whitespace. An offset map leads every folded character back to the
   original, so offsets and snippets point at the text as written.
2. One Aho-Corasick automaton (pyahocorasick) holds every alias of every entity,
   folded the same way; one pass finds every candidate.
3. Candidates must sit on word boundaries (an apostrophe is one, so "d'AlgoSource"
   and "OSE Immunotherapeutics's" match), the leftmost-longest wins where they
   overlap, and those inside URLs or e-mail addresses are dropped.
4. Evidence rules: a case-sensitive alias must match its capitals as written (or be
   all in capitals, as headlines are); an
   alias marked ``context`` needs one of its member's context words in the same
   text; a match inside one of the member's exclusion phrases does not count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import ahocorasick

from pipeline.analysis.folding import fold, fold_alias
from pipeline.analysis.members import MemberForms, derive
from pipeline.settings.config import Config

SNIPPET_CHARS = 200
_ADDRESS_CHARS = frozenset("./@:-_")
# Inside a web address or an e-mail address a name is not a mention: the word around
# the match (up to the spaces on either side) is looked at, never the whole text.
# A host name starts where no name character precedes it: "a-a-a-a-..." is one start,
# not one per letter rescanning the rest of the word (quadratic in the word's length).
_ADDRESS = re.compile(
    r"://|@|\bwww\.|(?<![\w-])[\w-]+\.(?:com|fr|eu|org|net|io|bio|co|uk|de|be|ch|info|example)\b",
    re.IGNORECASE,
)


def _in_address(text: str, start: int, end: int) -> bool:
    # most names stand between spaces and commas: look further only when a neighbour
    # is a character addresses are made of
    if text[start - 1 : start] not in _ADDRESS_CHARS and text[end : end + 1] not in _ADDRESS_CHARS:
        return False
    low = max(0, start - 300)
    # no space within reach: the window starts 300 characters back, never at the text's
    # start (which made every candidate rescan the text before it)
    left = max(text.rfind(" ", low, start), text.rfind("\n", low, start), low - 1) + 1
    spaces = [
        i for i in (text.find(" ", end, end + 300), text.find("\n", end, end + 300)) if i != -1
    ]
    right = min(spaces) if spaces else min(len(text), end + 300)
    return bool(_ADDRESS.search(text, left, right))


@dataclass(frozen=True, slots=True)
class AliasRule:
    member_id: str
    member: str  # the member's name as in sources.yaml
    alias: str  # as configured
    case_sensitive: bool = False
    needs_context: bool = False


class Mention(NamedTuple):  # a tuple: thousands are made per document, cheaply
    member_id: str
    member: str
    alias: str  # as written in the text
    start: int  # offsets in the original text
    end: int
    snippet: str


def snippet(text: str, start: int, end: int, *, width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters around [start, end), cut at word boundaries, one line."""
    room = max(0, width - (end - start)) // 2
    left = max(0, start - room)
    right = min(len(text), end + room)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    piece = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + piece + ("…" if right < len(text) else "")


class Matcher:
    """Built once per run from the members in sources.yaml; ``find(text)`` per document."""

    def __init__(
        self,
        rules: Sequence[AliasRule],
        *,
        context: dict[str, Sequence[str]] | None = None,
        exclude: dict[str, Sequence[str]] | None = None,
    ) -> None:
        self.rules = list(rules)
        self._automaton = ahocorasick.Automaton()
        by_key: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            key = fold_alias(rule.alias)
            if key:
                by_key.setdefault(key, []).append(index)
        for key, indexes in by_key.items():
            self._automaton.add_word(key, (len(key), tuple(indexes)))
        self.empty = not by_key
        if not self.empty:
            self._automaton.make_automaton()
        self._context = {
            m: [fold_alias(w) for w in words if w.strip()] for m, words in (context or {}).items()
        }
        self._exclude = {
            m: [fold_alias(p) for p in phrases if p.strip()]
            for m, phrases in (exclude or {}).items()
        }
        # the last ``evidence`` given to find(): the text, folded, and which members'
        # context words it holds (filled as rules ask)
        self._evidence: tuple[str, str, dict[str, bool]] | None = None
        self._cased = {
            i: fold_alias(r.alias, keep_case=True)
            for i, r in enumerate(self.rules)
            if r.case_sensitive
        }

    @classmethod
    def from_config(cls, config: Config, *, forms: Sequence[MemberForms] | None = None) -> Matcher:
        """The cluster's aliases as written; each member's forms as pipeline.analysis.members derives
        them (hand-written rules first, then evidence from word frequency). ``forms``: the
        derivation already made (a worker process is given them, not the word lists)."""
        cluster = config.cluster
        # (entity id, entity name, alias, case_sensitive, needs_context): the cluster's
        # aliases as written, then every form a member's derivation keeps
        written = [
            (cluster.id, cluster.name, a.alias, a.case_sensitive, a.context)
            for a in cluster.alias_rules()
        ]
        context: dict[str, Sequence[str]] = {cluster.id: cluster.context}
        exclude: dict[str, Sequence[str]] = {cluster.id: cluster.exclude}
        by_id = {m.slug: m for m in config.members}
        for member_forms in forms if forms is not None else derive(cluster, config.members):
            written += [
                (member_forms.member_id, member_forms.name, f.alias, f.case_sensitive, f.context)
                for f in member_forms.used
            ]
            context[member_forms.member_id] = member_forms.context
            exclude[member_forms.member_id] = by_id[member_forms.member_id].exclude
        rules = [
            AliasRule(member_id=i, member=n, alias=a, case_sensitive=c, needs_context=x)
            for i, n, a, c, x in written
        ]
        return cls(rules, context=context, exclude=exclude)

    # ---------------------------------------------------------------- matching

    def find(
        self, text: str, *, snippets: bool = True, evidence: str | None = None
    ) -> list[Mention]:
        """Every mention in ``text``, in order, with offsets into ``text``.

        ``snippets=False`` leaves them empty (they cost more than the matching itself
        when a caller needs only one per member).
        """
        if self.empty or not text:
            return []
        folded = fold(text)
        haystack = folded.text
        size = len(haystack)
        candidates: list[tuple[int, int, tuple[int, ...]]] = []
        add = candidates.append
        for end_index, (length, indexes) in self._automaton.iter(haystack):
            start = end_index - length + 1
            end = end_index + 1
            if (start > 0 and haystack[start - 1].isalnum()) or (
                end < size and haystack[end].isalnum()
            ):
                continue
            add((start, end, indexes))
        # leftmost-longest, no overlaps
        candidates.sort(key=lambda c: (c[0], -(c[1] - c[0])))
        chosen: list[tuple[int, int, tuple[int, ...]]] = []
        last_end = -1
        for start, end, indexes in candidates:
            if start >= last_end:
                chosen.append((start, end, indexes))
                last_end = end
        mentions: list[Mention] = []
        # context words may sit anywhere in the article (``evidence``), not only here. They
        # are looked for only for a rule that needs them, once per member and article: the
        # sentences of one article (the funding search) share the answers.
        present_context: dict[str, bool] = {}
        evidence_text: str | None = None
        if evidence is not None:
            if self._evidence is None or self._evidence[0] != evidence:
                self._evidence = (evidence, fold(evidence).text, {})
            _, evidence_text, present_context = self._evidence
        for start, end, indexes in chosen:
            original_start = folded.original(start)
            original_end = folded.original(end - 1) + 1
            if _in_address(text, original_start, original_end):
                continue
            written = text[original_start:original_end]
            rule = self._accept(
                indexes, written, haystack, start, end, present_context, evidence_text
            )
            if rule is None:
                continue
            mentions.append(
                Mention(
                    member_id=rule.member_id,
                    member=rule.member,
                    alias=written,
                    start=original_start,
                    end=original_end,
                    snippet=snippet(text, original_start, original_end) if snippets else "",
                )
            )
        return mentions

    def _accept(
        self,
        indexes: tuple[int, ...],
        written: str,
        haystack: str,
        start: int,
        end: int,
        present_context: dict[str, bool],
        evidence_text: str | None,
    ) -> AliasRule | None:
        """The first rule whose evidence holds for this occurrence, if any."""
        for index in indexes:
            rule = self.rules[index]
            if rule.case_sensitive and not self._case_matches(index, written):
                continue
            if self._excluded(rule.member_id, haystack, start, end):
                continue
            if rule.needs_context:
                if rule.member_id not in present_context:
                    present_context[rule.member_id] = (
                        any(
                            _word_in(word, evidence_text)
                            for word in self._context.get(rule.member_id, ())
                        )
                        if evidence_text is not None
                        else self._has_context(rule.member_id, haystack, start, end)
                    )
                if not present_context[rule.member_id]:
                    continue
            return rule
        return None

    def _case_matches(self, index: int, written: str) -> bool:
        """As written, or all in capitals (headlines): "Clean Cells", "CLEAN CELLS", not "clean cells"."""
        cased = fold_alias(written, keep_case=True)
        expected = self._cased[index]
        return cased == expected or (expected != expected.upper() and cased == expected.upper())

    def _has_context(self, member_id: str, haystack: str, start: int, end: int) -> bool:
        # the alias itself is no evidence: its own span is skipped
        return any(
            _word_in(word, haystack, skip=(start, end)) for word in self._context.get(member_id, ())
        )

    def _excluded(self, member_id: str, haystack: str, start: int, end: int) -> bool:
        for phrase in self._exclude.get(member_id, ()):
            # a phrase holding the match starts at most len(phrase) before it: look there only
            left = max(0, end - len(phrase))
            position = haystack.find(phrase, left, start + len(phrase))
            while position != -1 and position <= start:
                if end <= position + len(phrase):
                    return True
                position = haystack.find(phrase, position + 1, start + len(phrase))
        return False


@dataclass(frozen=True, slots=True)
class ArticleMention:
    """One row of the `mentions` table."""

    member_id: str
    alias: str  # first occurrence, as written
    count: int
    in_title: bool
    snippet: str


def article_mentions(
    matcher: Matcher, *, title: str, summary: str, text: str | None
) -> list[ArticleMention]:
    """Mentions of each member in an article: counted over the title and the body (the main
    text when there is one, else the summary); the snippet comes from the body when it can."""
    article = "\n".join(part for part in (title, summary, text) if part)
    in_title = matcher.find(title or "", evidence=article)
    body = text or summary or ""
    in_body = _with_first_snippets(matcher.find(body, snippets=False, evidence=article), body)
    if text and summary:
        # a member named only in the summary (a teaser the page does not repeat) still counts
        named = {m.member_id for m in in_body}
        in_body += [m for m in matcher.find(summary, evidence=article) if m.member_id not in named]
    rows: dict[str, ArticleMention] = {}
    for found in (in_body, in_title):
        for mention in found:
            current = rows.get(mention.member_id)
            if current is None:
                rows[mention.member_id] = ArticleMention(
                    member_id=mention.member_id,
                    alias=mention.alias,
                    count=1,
                    in_title=found is in_title,
                    snippet=mention.snippet,
                )
            else:
                rows[mention.member_id] = ArticleMention(
                    member_id=current.member_id,
                    alias=current.alias,
                    count=current.count + 1,
                    in_title=current.in_title or found is in_title,
                    snippet=current.snippet,
                )
    return list(rows.values())


def _word_in(word: str, haystack: str, *, skip: tuple[int, int] = (0, 0)) -> bool:
    """``word`` as a whole word in ``haystack``, outside the span ``skip``."""
    if not word:
        return False
    start = haystack.find(word)
    while start != -1:  # str.find: no pattern to build for every word and document
        end = start + len(word)
        if not skip[0] <= start < skip[1]:
            before = haystack[start - 1] if start > 0 else " "
            after = haystack[end] if end < len(haystack) else " "
            if not before.isalnum() and not after.isalnum():
                return True
        start = haystack.find(word, start + 1)
    return False


def _with_first_snippets(mentions: list[Mention], text: str) -> list[Mention]:
    """Fill the snippet of each member's first mention only: the one that is stored."""
    seen: set[str] = set()
    out: list[Mention] = []
    for mention in mentions:
        if mention.member_id not in seen:
            seen.add(mention.member_id)
            mention = mention._replace(snippet=snippet(text, mention.start, mention.end))
        out.append(mention)
    return out
