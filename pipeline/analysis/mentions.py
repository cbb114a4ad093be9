"""Members + text -> mentions: where each member is named, as written, with a snippet.

1. The text is folded once: case, accents, apostrophes, dashes, non-breaking and
   repeated whitespace. An offset map leads every folded character back to the
   original, so offsets and snippets point at the text as written.
2. One Aho-Corasick automaton (pyahocorasick) holds every alias of every entity,
   folded the same way; one pass finds every candidate.
3. Candidates must sit on word boundaries (an apostrophe is one, so "d'AlgoSource"
   and "OSE Immunotherapeutics's" match; so is an affiliation number glued to a name of
   five letters or more, "1Xenothera, Nantes" or "Valneva²"), the leftmost-longest wins
   where they overlap, and those inside URLs or e-mail addresses are dropped.
4. Evidence rules: a case-sensitive alias must match its capitals as written (or be
   all in capitals, as headlines are); a phrase may also have every capital word of the
   name capitalised ("Arc Therapeutics" for ARC Therapeutics), or only its first where no
   sentence starts ("chez Clean cells"); a rule that wants capitals only in some languages
   ("Good Cells" in English) asks the article's language, given or guessed from its
   commonest words; an alias marked ``context`` needs one of its member's context words in
   the same text; a shortened word that ends a name is not followed by another capitalised
   word or a number ("Lucine Martin", "Astatine-211"); a match inside one of the member's
   exclusion phrases does not count.
5. What makes a name another's: a "+" glued after it ("Biodiversa+"); capitals in
   brackets that spell out the words just before them ("Office of Surveillance and
   Epidemiology (OSE)"); a name in lower case after "a", "an", "un", "une" ("an organoid
   factory"); a shortened name followed by a legal form from abroad or a generic word its
   member's name does not have ("ImmunoQure AG", "Erytech Pharma"); an acronym that is
   also a word, in a line written in capitals ("IL OSE LE TOUR DE FRANCE").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import ahocorasick

from pipeline.analysis.folding import fold, fold_alias
from pipeline.analysis.members import FUNCTION_WORDS, GENERIC_WORDS, MemberForms, derive
from pipeline.settings.config import Config

SNIPPET_CHARS = 200
# An affiliation number glued to a name ("1Xenothera", "Valneva²") is a boundary when the
# name has at least this many letters and the number at most GLUED_DIGITS digits: shorter
# names glued to digits are gene and product names ("ARC1", "OSE2101").
GLUED_MIN_CHARS = 5
GLUED_DIGITS = 2
WRITTEN_CACHE = 4096  # names as written, folded with their capitals, kept between calls
# A single word written in capitals in the configuration is an acronym up to this length
# ("OSE" wants its capitals); from it on, it is a name in capitals ("ONIRIS" is "Oniris").
CAPITALS_WORD_MIN = 5
# The article's language, for rules that want capitals in one language only, is guessed
# from its commonest words over its first LANGUAGE_SAMPLE characters.
LANGUAGE_SAMPLE = 20_000
_FRENCH_WORDS = re.compile(
    r"\b(?:le|la|les|des|du|de|et|est|une|un|pour|dans|sur|avec|qui|que|au|aux|par|ses|son"
    r"|sa|ce|cette|il|elle|sont|ont|pas|plus)\b"
)
_ENGLISH_WORDS = re.compile(
    r"\b(?:the|and|of|to|is|with|for|its|has|in|by|from|at|was|are|this|that|an|it|have"
    r"|were|will|which|said|says)\b"
)
# where a capital says nothing: after these (skipping spaces and opening quotes) a sentence
# or a line starts
_SENTENCE_ENDS = frozenset(".!?:;…\n\r•|–—-*")
_OPENERS = frozenset(" \t\u00a0\"'«“‘([")
_ADDRESS_CHARS = frozenset("./@:-_")
# Inside a web address or an e-mail address a name is not a mention: the word around
# the match (up to the spaces on either side) is looked at, never the whole text. An "@"
# that starts a word is a handle ("@Kerbio"), not an e-mail address.
# A host name starts where no name character precedes it: "a-a-a-a-..." is one start,
# not one per letter rescanning the rest of the word (quadratic in the word's length).
_ADDRESS = re.compile(
    r"://|(?<=[\w.+-])@|\bwww\.|(?<![\w-])[\w-]+\.(?:com|fr|eu|org|net|io|bio|co|uk|de|be|ch|info|example)\b",
    re.IGNORECASE,
)


def _in_address(text: str, start: int, end: int) -> bool:
    # most names stand between spaces and commas: look further only when a neighbour
    # is a character addresses are made of (a full stop that ends a sentence is not: no
    # letter follows it)
    before = text[start - 1 : start] if start else " "
    after = text[end : end + 1]
    if after == "." and not text[end + 1 : end + 2].isalnum():
        after = " "
    if before not in _ADDRESS_CHARS and after not in _ADDRESS_CHARS:
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


def guess_language(folded: str) -> str | None:
    """ "fr" or "en" from the commonest words of a folded text; None when they do not say."""
    sample = folded[:LANGUAGE_SAMPLE]
    french = len(_FRENCH_WORDS.findall(sample))
    english = len(_ENGLISH_WORDS.findall(sample))
    if french == english:
        return None
    return "fr" if french > english else "en"


def _sentence_start(text: str, start: int) -> bool:
    """Whether a sentence or a line starts at ``start`` (quotes and spaces skipped)."""
    index = start - 1
    while index >= 0 and text[index] in _OPENERS:
        index -= 1
    return index < 0 or text[index] in _SENTENCE_ENDS


def _glued_digits(haystack: str, start: int, end: int) -> bool:
    """Whether the letters or digits touching [start, end) are a short number, on one side
    only and standing alone otherwise: an affiliation or footnote number ("1xenothera,
    nantes", "valneva2"), not a code ("12naobios34", "xenothera2026")."""
    size = len(haystack)
    before = start > 0 and haystack[start - 1].isalnum()
    after = end < size and haystack[end].isalnum()
    if before and after:
        return False
    if before:  # at most GLUED_DIGITS digits, then no letter or digit
        low = max(-1, start - 2 - GLUED_DIGITS)
        index = start - 1
        while index > low and haystack[index].isdigit():
            index -= 1
        digits = start - 1 - index
        return 0 < digits <= GLUED_DIGITS and (index < 0 or not haystack[index].isalnum())
    high = min(size, end + GLUED_DIGITS + 1)
    index = end
    while index < high and haystack[index].isdigit():
        index += 1
    digits = index - end
    return 0 < digits <= GLUED_DIGITS and (index == size or not haystack[index].isalnum())


def _followed_by_name(text: str, end: int) -> bool:
    """Whether another capitalised word or a number follows at ``end``: "Lucine Martin, ...",
    "Curium Pharma rachète", "Astatine-211" (a title in capitals, "Orphea Doses First", is
    not)."""
    after = text[end : end + 80]
    if len(after) >= 2 and after[0] in "-‐‑–" and after[1].isdigit():
        return True
    words = after.lstrip(" \u00a0").split(None, 4)
    if not words or len(after) - len(after.lstrip(" \u00a0")) == 0:
        return False
    first = words[0]
    if not (len(first) > 1 and first[0].isupper() and first[1].islower()):
        return False
    # every word capitalised is a title, not a name ("Pure Cells Raises $5M To Scale": the
    # next word of letters is capitalised too)
    lettered = [w for w in words[1:4] if w[:1].isalpha()]
    return not (first[-1].isalpha() and lettered and lettered[0][:1].isupper())


# Legal forms of companies abroad: "ImmunoQure AG" is not the member Immunoqure Santé
_FOREIGN_LEGAL_FORMS = frozenset(
    [
        "AG",
        "GmbH",
        "Inc",
        "Ltd",
        "LLC",
        "plc",
        "PLC",
        "Corp",
        "Corporation",
        "Limited",
        "NV",
        "BV",
        "AB",
        "ASA",
        "Oy",
        "SpA",
        "Srl",
        "KK",
        "Pty",
        "LP",
    ]
)
_GENERIC_FOLDED = frozenset(fold_alias(w) for w in GENERIC_WORDS)
_WORD = re.compile(r"[^\W_]+")
# words an acronym's spelled-out name may leave out of its letters
_LINK_WORDS = FUNCTION_WORDS | {"on", "in", "pour", "sur"}
_INDEFINITE = frozenset(["a", "an", "un", "une"])
_GAP = " \u00a0\u202f'\"«“‘’"  # between an article and the name it makes a thing


def _another_company_after(text: str, end: int, own: Sequence[str]) -> bool:
    """Whether a shortened name is followed by what makes it another company's name: a
    legal form from abroad ("ImmunoQure AG") or a generic word its member's name does not
    have ("Erytech Pharma" is not Erytech Ouest; "Mablink Biosciences" is Mablink
    Bioscience)."""
    if text[end : end + 1] != " ":
        return False
    word = _WORD.match(text, end + 1)
    if word is None:
        return False
    written = word.group()
    if written in _FOREIGN_LEGAL_FORMS:
        return True
    if not written[:1].isupper():
        return False
    folded = fold_alias(written)
    return folded in _GENERIC_FOLDED and not any(folded[:5] == w[:5] for w in own)


def _spelled_out_before(text: str, start: int, end: int) -> bool:
    """Whether the capitals at [start, end), in brackets, are the initials of the words
    just before the bracket: "Office of Surveillance and Epidemiology (OSE)" is that office's
    acronym, whoever else it names."""
    if not (start > 0 and text[start - 1] == "(" and text[end : end + 1] == ")"):
        return False
    letters = text[start:end]
    if not (letters.isalpha() and letters.isupper() and 2 <= len(letters) <= 6):
        return False
    words = [
        w
        for w in _WORD.findall(text, max(0, start - 200), start - 1)
        if w.lower() not in _LINK_WORDS
    ]
    initials = "".join(w[0] for w in words[-len(letters) :]).upper()
    return len(words) >= len(letters) and initials == letters


def _indefinite_before(text: str, start: int) -> bool:
    """Whether "a", "an", "un" or "une" is the word just before ``start``, spaces and
    quotes between: "an organoid factory", "une « organoid factory »" in lower case is a
    thing, not the company Organoid Factory."""
    gap = start
    while gap > 0 and start - gap < 4 and text[gap - 1] in _GAP:
        gap -= 1
    between = text[gap:start]
    if not (" " in between or "\u00a0" in between or "\u202f" in between):
        return False
    word = gap
    while word > 0 and gap - word < 4 and text[word - 1].isalpha():
        word -= 1
    if word > 0 and text[word - 1].isalnum():
        return False
    return text[word:gap].lower() in _INDEFINITE


def _in_capitals(text: str, start: int, end: int) -> bool:
    """Whether the words around [start, end) on its line are written in capitals too (a
    headline in capitals): there, capitals do not tell an acronym from a word ("IL OSE LE
    TOUR DE FRANCE")."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    around = _WORD.findall(text, max(line_start, start - 40), start)[-2:]
    around += _WORD.findall(text, end, min(line_end, end + 40))[:2]
    lettered = [w for w in around if any(c.isalpha() for c in w)]
    return len(lettered) >= 2 and all(w.upper() == w for w in lettered)


@dataclass(frozen=True, slots=True)
class AliasRule:
    member_id: str
    member: str  # the member's name as in sources.yaml
    alias: str  # as configured
    case_sensitive: bool = False
    needs_context: bool = False
    cased_in: tuple[str, ...] = ()  # capitals needed in these languages only (empty: in all)
    ends_name: bool = False  # not followed by another capitalised word or a number
    # a shortened name: the folded words of the whole name ("erytech", "ouest"); not
    # followed by a legal form from abroad or a generic word the name does not have
    shortened_of: tuple[str, ...] = ()
    needs_place: bool = False  # the article names the member's region (or its city)
    strict_capitals: bool = False  # every capital as written (or all in capitals)
    handle: bool = False  # only right after "@" or "#" ("@NaogenPharma")


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
        places: dict[str, Sequence[str]] | None = None,
    ) -> None:
        self.rules = list(rules)
        self._automaton = ahocorasick.Automaton()
        by_key: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            key = fold_alias(rule.alias)
            if key:
                by_key.setdefault(key, []).append(index)
        for key, indexes in by_key.items():
            glue = (
                len(key) >= GLUED_MIN_CHARS
                and key[0].isalpha()
                and key[-1].isalpha()
                and all(any(c.islower() for c in self.rules[i].alias) for i in indexes)
            )
            self._automaton.add_word(key, (len(key), tuple(indexes), glue))
        self.empty = not by_key
        if not self.empty:
            self._automaton.make_automaton()
        # every member has much the same context words and places: each is folded once
        folded: dict[str, str] = {}

        def fold_words(words: Sequence[str]) -> list[str]:
            out = []
            for word in words:
                if word.strip():
                    if word not in folded:
                        folded[word] = fold_alias(word)
                    out.append(folded[word])
            return out

        self._context = {m: fold_words(words) for m, words in (context or {}).items()}
        # a form shortened past a place: the member's region, named in the article
        self._places = {m: fold_words(words) for m, words in (places or {}).items()}
        self._exclude = {
            m: [fold_alias(p) for p in phrases if p.strip()]
            for m, phrases in (exclude or {}).items()
        }
        # the last ``evidence`` given to find(): the text, folded, and which members'
        # context words it holds (filled as rules ask)
        self._evidence: tuple[str, str, dict[str, bool], list[str | None]] | None = None
        self._cased = {
            i: fold_alias(r.alias, keep_case=True)
            for i, r in enumerate(self.rules)
            if r.case_sensitive
        }
        # the words of a case-sensitive phrase, whose capitals may be written otherwise
        self._cased_words = {i: c.split(" ") for i, c in self._cased.items() if " " in c}
        self._written: dict[str, str] = {}  # names as written -> folded with their capitals

    @classmethod
    def from_config(cls, config: Config, *, forms: Sequence[MemberForms] | None = None) -> Matcher:
        """The cluster's aliases as written; each member's forms as pipeline.analysis.members derives
        them (hand-written rules first, then evidence from word frequency). ``forms``: the
        derivation already made (a worker process is given them, not the word lists)."""
        cluster = config.cluster
        # (entity id, entity name, alias, case_sensitive, needs_context): the cluster's
        # aliases as written, then every form a member's derivation keeps
        written = [
            AliasRule(cluster.id, cluster.name, a.alias, a.case_sensitive, a.context)
            for a in cluster.alias_rules()
        ]
        context: dict[str, Sequence[str]] = {cluster.id: cluster.context}
        exclude: dict[str, Sequence[str]] = {cluster.id: cluster.exclude}
        places: dict[str, Sequence[str]] = {}
        by_id = {m.slug: m for m in config.members}
        for member_forms in forms if forms is not None else derive(cluster, config.members):
            written += [
                AliasRule(
                    member_forms.member_id,
                    member_forms.name,
                    f.alias,
                    f.case_sensitive,
                    f.context,
                    cased_in=f.cased_in,
                    ends_name=f.ends_name,
                    shortened_of=tuple(fold_alias(member_forms.name).split())
                    if f.shortened
                    else (),
                    needs_place=f.needs_place,
                    strict_capitals=f.strict_capitals,
                    handle=f.handle,
                )
                for f in member_forms.used
            ]
            context[member_forms.member_id] = member_forms.context
            places[member_forms.member_id] = member_forms.places
            exclude[member_forms.member_id] = by_id[member_forms.member_id].exclude
        return cls(written, context=context, exclude=exclude, places=places)

    # ---------------------------------------------------------------- matching

    def find(
        self,
        text: str,
        *,
        snippets: bool = True,
        evidence: str | None = None,
        lang: str | None = None,
    ) -> list[Mention]:
        """Every mention in ``text``, in order, with offsets into ``text``.

        ``snippets=False`` leaves them empty (they cost more than the matching itself
        when a caller needs only one per member). ``evidence``: the whole article, where
        context words are looked for. ``lang``: the article's language ("fr", "en"),
        guessed from ``evidence`` (or ``text``) when a rule needs it and it is not given.
        """
        if self.empty or not text:
            return []
        folded = fold(text)
        haystack = folded.text
        size = len(haystack)
        candidates: list[tuple[int, int, tuple[int, ...]]] = []
        add = candidates.append
        for end_index, (length, indexes, glue) in self._automaton.iter(haystack):
            start = end_index - length + 1
            end = end_index + 1
            touching = (start > 0 and haystack[start - 1].isalnum()) or (
                end < size and haystack[end].isalnum()
            )
            if touching and not (glue and _glued_digits(haystack, start, end)):
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
        # the article's language, guessed once when a rule asks (a list: filled on demand)
        language: list[str | None] = [lang] if lang is not None else []
        if evidence is not None:
            if self._evidence is None or self._evidence[0] != evidence:
                self._evidence = (evidence, fold(evidence).text, {}, [])
            _, evidence_text, present_context, guessed = self._evidence
            if lang is None:
                language = guessed
        where = _Occurrence(text, haystack, evidence_text, language)
        for start, end, indexes in chosen:
            original_start = folded.original(start)
            original_end = folded.original(end - 1) + 1
            if _in_address(text, original_start, original_end):
                continue
            if text[original_end : original_end + 1] == "+":  # "Biodiversa+", "Canal+"
                continue
            if _spelled_out_before(text, original_start, original_end):
                continue
            rule = self._accept(
                indexes, where, start, end, original_start, original_end, present_context
            )
            if rule is None:
                continue
            mentions.append(
                Mention(
                    member_id=rule.member_id,
                    member=rule.member,
                    alias=text[original_start:original_end],
                    start=original_start,
                    end=original_end,
                    snippet=snippet(text, original_start, original_end) if snippets else "",
                )
            )
        return mentions

    def _accept(
        self,
        indexes: tuple[int, ...],
        where: _Occurrence,
        start: int,
        end: int,
        original_start: int,
        original_end: int,
        present_context: dict[str, bool],
    ) -> AliasRule | None:
        """The first rule whose evidence holds for this occurrence, if any."""
        text, haystack = where.text, where.haystack
        for index in indexes:
            rule = self.rules[index]
            if rule.handle and text[original_start - 1 : original_start] not in ("@", "#"):
                continue  # "naogenpharma" is a handle or a hashtag, or nothing
            if (
                rule.case_sensitive
                and not self._case_matches(index, text, original_start, original_end)
                and (not rule.cased_in or where.language() in (None, *rule.cased_in))
            ):
                continue  # wrong capitals, in a language where they are needed
            if self._excluded(rule.member_id, haystack, start, end):
                continue
            if rule.needs_context and not self._in_article(
                rule.member_id, self._context, where, start, end, present_context
            ):
                continue
            if rule.needs_place and not self._in_article(
                f"{rule.member_id}\x00place", self._places, where, start, end, present_context
            ):
                continue
            if rule.ends_name and _followed_by_name(text, original_end):
                continue
            if (
                not rule.alias.islower()
                and text[original_start:original_end].islower()
                and _indefinite_before(text, original_start)
            ):
                continue  # a name in lower case after "a", "an", "un", "une": a thing
            if rule.shortened_of and _another_company_after(text, original_end, rule.shortened_of):
                continue
            if (
                rule.case_sensitive
                and rule.needs_context
                and rule.alias.isupper()
                and len(rule.alias) < CAPITALS_WORD_MIN
                and _in_capitals(text, original_start, original_end)
            ):
                continue  # an acronym that is also a word, in a headline in capitals
            return rule
        return None

    def _case_matches(self, index: int, text: str, start: int, end: int) -> bool:
        """As written, or all in capitals (headlines): "Clean Cells", "CLEAN CELLS", not
        "clean cells". A phrase may also have every word the name capitalises capitalised
        ("Arc Therapeutics" for ARC Therapeutics), or only its first where no sentence
        starts ("chez Clean cells", not "Clean cells are required"); a word in capitals
        longer than an acronym, its first capital ("Oniris" for ONIRIS)."""
        written = text[start:end]
        cased = self._written.get(written)
        if cased is None:  # a name is written the same way again and again: fold it once
            if len(self._written) >= WRITTEN_CACHE:
                self._written.clear()
            cased = self._written[written] = fold_alias(written, keep_case=True)
        expected = self._cased[index]
        if cased == expected or (expected != expected.upper() and cased == expected.upper()):
            return True
        if self.rules[index].strict_capitals:
            return False
        words = self._cased_words.get(index)
        if words is None:
            # a word the directory writes in capitals and too long for an acronym ("ONIRIS"):
            # written with its first capital, as the press writes names
            return len(expected) >= CAPITALS_WORD_MIN and expected.isupper() and cased[:1].isupper()
        if not words[0][:1].isupper():
            return False
        split = cased.split(" ")
        if len(split) != len(words) or not split[0][:1].isupper():
            return False
        if all(w[:1].isupper() or not e[:1].isupper() for w, e in zip(split, words, strict=True)):
            return True
        # an acronym then a word in lower case is the acronym and an ordinary word ("ABS
        # bio-sourcé", "ARC protein"), not a name whose later words lost their capitals
        if len(words[0]) > 1 and words[0].isupper():
            return False
        return not _sentence_start(text, start)

    @staticmethod
    def _in_article(
        key: str,
        lists: dict[str, list[str]],
        where: _Occurrence,
        start: int,
        end: int,
        found: dict[str, bool],
    ) -> bool:
        """Whether one of the words of ``lists`` for ``key`` (a member's context words, or
        its places under "<id>\\x00place") is in the article: asked once per article."""
        if key not in found:
            words = lists.get(key.split("\x00", 1)[0], ())
            if where.evidence is not None:
                found[key] = any(_word_in(word, where.evidence) for word in words)
            else:  # the alias itself is no evidence: its own span is skipped
                found[key] = any(_word_in(w, where.haystack, skip=(start, end)) for w in words)
        return found[key]

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


class _Occurrence:
    """What the rules of one find() call look at: the text as written, folded, the folded
    article the context words are looked for in, and its language (guessed on demand)."""

    __slots__ = ("_language", "evidence", "haystack", "text")

    def __init__(
        self, text: str, haystack: str, evidence: str | None, language: list[str | None]
    ) -> None:
        self.text = text
        self.haystack = haystack
        self.evidence = evidence  # None: the text is the whole article
        self._language = language

    def language(self) -> str | None:
        if not self._language:
            whole = self.evidence if self.evidence is not None else self.haystack
            self._language.append(guess_language(whole))
        return self._language[0]


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
