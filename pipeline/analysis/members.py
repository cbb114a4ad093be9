"""Members -> the forms the press writes them in, each with its evidence rule and the reason.

1. Candidates from the bare name: the name as written; without its legal suffix
   ("Step Pharma SAS" -> "Step Pharma"); without its hyphens ("In-Cell-Art" ->
   "InCellArt"); without trailing generic words, one at a time ("Mablink Bioscience"
   -> "Mablink"). Accents and case need no form of their own:
   the matcher folds them.
2. The spellings a person wrote as plain aliases are candidates too; an alias written as
   a rule (`{alias: ..., case_sensitive: ..., context: ...}`) is used exactly as written
   and no derived rule replaces it. `{alias: ..., use: false}` turns a form off.
3. Evidence from word frequency (wordfreq's Zipf scale, the higher of French and
   English; 3 is about once per million words):
   - a single word at or above COMMON_ZIPF, or an acronym of up to four capitals that
     is also a word ("OSE"), needs its capitals as written and a context word; a
     shortened form that common is not used at all (the full name still is);
   - a single word at or above RARE_ZIPF, or an acronym, needs its capitals as written;
   - a shortened form that is an acronym, or a word at or above LISTED_ZIPF (an
     element, a place: "Astatine" of Astatine Pharma), is not used (the full name is);
   - a phrase whose every word is at or above LISTED_ZIPF ("Step Pharma", "Vital Ouest",
     "Organoid Factory") needs its capitals as written;
   - a form shorter than MIN_FORM_CHARS letters is not used.
4. Across members: a derived form that is another member's name (or one of its
   hand-written aliases) belongs to that member ("Nova Cell" is the member Nova Cell,
   not a shortening of Nova Cell Therapeutics); a derived form two members share is used
   by neither. Where one name is inside another in a text, the matcher's
   leftmost-longest rule gives it to the longer name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from pipeline.analysis.folding import fold_alias
from pipeline.settings.config import AliasSpec, Cluster, Member
from pipeline.settings.directory import without_legal_suffix

COMMON_ZIPF = 3.0  # at or above: a common word (about once per million words or more)
RARE_ZIPF = 2.0  # at or above: a word people write; below: a name only
# at or above: in the word lists at all (a chemical element, a place, a rare term):
# "Astatine-211" and "les landes de Lanvaux" are not Astatine Pharma and Lanvaux Pharma
LISTED_ZIPF = 1.0
MIN_FORM_CHARS = 3
ACRONYM_MAX = 4
# Words a company name ends with that say what it does, not who it is. Dropping them
# gives the form the press uses ("Mablink" for Mablink Bioscience) when what is left is
# still distinctive.
GENERIC_WORDS = frozenset(
    w.lower()
    for w in [
        "Therapeutics",
        "Therapeutic",
        "Thérapeutique",
        "Thérapeutiques",
        "Therapies",
        "Therapy",
        "Thérapies",
        "Immunotherapeutics",
        "Pharma",
        "Pharmaceuticals",
        "Pharmaceutical",
        "Pharmaceutique",
        "Pharm",
        "Bioscience",
        "Biosciences",
        "Biotech",
        "Biotechnologies",
        "Biotechnology",
        "Biotechnologie",
        "Bio",
        "Santé",
        "Sante",
        "Health",
        "Healthcare",
        "Diagnostics",
        "Diagnostic",
        "Medical",
        "Médical",
        "Medicine",
        "Biomedicals",
        "Biomedical",
        "Biologics",
        "Genomics",
        "Imaging",
        "Labs",
        "Lab",
        "Laboratoires",
        "Laboratories",
        "Technologies",
        "Technology",
        "Innovation",
        "Innovations",
        "Solutions",
        "Sciences",
        "Science",
        "Group",
        "Groupe",
        "France",
        "Ouest",
        "Atlantique",
        "Bretagne",
        "Loire",
        "Nantes",
        "Recherche",
        "Research",
        "Partners",
        "Services",
        "Vaccins",
        "Vaccines",
        "Cells",
        "Cell",
        "Oncology",
    ]
)
# Evidence for a derived rule that wants context, when the member has no `context` of its
# own: what an article about a life-science company says (folded like aliases).
DOMAIN_CONTEXT = (
    "biotech",
    "biotechs",
    "biotechnologie",
    "biotechnology",
    "start-up",
    "startup",
    "jeune pousse",
    "laboratoire",
    "laboratory",
    "pharmaceutique",
    "pharmaceutical",
    "medicament",
    "drug",
    "therapie",
    "therapy",
    "therapeutique",
    "therapeutic",
    "essai clinique",
    "clinical trial",
    "clinical",
    "anticorps",
    "antibody",
    "vaccin",
    "vaccine",
    "diagnostic",
    "molecule",
    "oncologie",
    "oncology",
    "patients",
    "levee de fonds",
    "leve",
    "raises",
    "financement",
    "funding",
    "Atlanpole",
    "societe",
    "entreprise",
    "company",
    "PDG",
    "CEO",
    "fondateur",
    "founder",
    "directeur general",
)
_TOKEN = re.compile(r"[^\W_]+")  # "In-Cell-Art" is three words, "d'Angers" two
# a shortened name never ends on one of these ("EFS Pays de la Loire" is not "EFS Pays de la")
_FUNCTION_WORDS = frozenset(
    [
        "de",
        "du",
        "des",
        "la",
        "le",
        "les",
        "l",
        "d",
        "et",
        "en",
        "of",
        "the",
        "and",
        "for",
        "&",
        "à",
        "a",
        "au",
        "aux",
    ]
)


@dataclass(frozen=True, slots=True)
class Form:
    """One spelling of a member, its rule, and why."""

    alias: str
    origin: str  # name, without legal suffix, without "X", alias, hand rule
    case_sensitive: bool = False
    context: bool = False
    used: bool = True
    reason: str = ""

    @property
    def rule(self) -> str:
        if not self.used:
            return "not used"
        if self.case_sensitive and self.context:
            return "capitals + context"
        if self.case_sensitive:
            return "capitals"
        if self.context:
            return "context"
        return "plain"


@dataclass(frozen=True, slots=True)
class MemberForms:
    member_id: str
    name: str
    forms: tuple[Form, ...]
    context: tuple[str, ...]  # the evidence words its context rules look for
    derived_context: bool  # True when they are DOMAIN_CONTEXT and the member's city and tags

    @property
    def used(self) -> list[Form]:
        return [f for f in self.forms if f.used]


@lru_cache(maxsize=65536)
def zipf(word: str) -> tuple[float, float]:
    """The Zipf frequency of ``word`` in French and in English (0 for a word never seen)."""
    from wordfreq import zipf_frequency  # 58 MB of lists: loaded on first use only

    return zipf_frequency(word, "fr"), zipf_frequency(word, "en")


def _key(text: str) -> str:
    return fold_alias(text)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_acronym(token: str) -> bool:
    letters = [c for c in token if c.isalpha()]
    return 2 <= len(letters) <= ACRONYM_MAX and all(c.isupper() for c in letters)


def _frequency(token: str) -> float:
    fr, en = zipf(token.lower())
    return max(fr, en)


def _shown(token: str) -> str:
    fr, en = zipf(token.lower())
    return f"{token.lower()} {fr:.1f}/{en:.1f}"


def evidence(alias: str, *, shortened: bool) -> tuple[bool, bool, bool, str]:
    """(used, case_sensitive, context, reason) for a spelling, from word frequency alone.

    ``shortened``: a name with words dropped, which must still be distinctive on its own.
    """
    tokens = _tokens(alias)
    letters = sum(c.isalnum() for c in alias)
    if letters < MIN_FORM_CHARS or not tokens:
        return False, False, False, f"shorter than {MIN_FORM_CHARS} letters"
    if len(tokens) == 1:
        token = tokens[0]
        score = _frequency(token)
        freq = f"zipf fr/en {_shown(token)}"
        if _is_acronym(token):
            if shortened:  # "MGI" of MGI Ouest is also MGI Tech, and a dozen others
                return False, False, False, f"acronym left by a shortening ({freq})"
            if score >= COMMON_ZIPF:
                return True, True, True, f"acronym that is a common word ({freq})"
            return True, True, False, f"acronym ({freq})"
        if score >= COMMON_ZIPF:
            if shortened:
                return False, False, False, f"common word ({freq} >= {COMMON_ZIPF})"
            return True, True, True, f"common word ({freq} >= {COMMON_ZIPF})"
        if score >= RARE_ZIPF:
            if shortened:  # "Biomarkers" opens English sentences: capitals are not enough
                return True, True, True, f"word ({freq} >= {RARE_ZIPF})"
            return True, True, False, f"word ({freq} >= {RARE_ZIPF})"
        if shortened and score >= LISTED_ZIPF:
            return False, False, False, f"a listed word ({freq} >= {LISTED_ZIPF})"
        return True, False, False, f"not a word ({freq})"
    scores = [_frequency(t) for t in tokens]
    shown = ", ".join(_shown(t) for t in tokens)
    if all(s >= LISTED_ZIPF for s in scores):
        if shortened:  # "Fast Track", "Blue Ocean", "Loire Valley": phrases of their own
            return False, False, False, f"every word is a word (zipf fr/en {shown})"
        return True, True, False, f"every word is a word (zipf fr/en {shown})"
    rare = [t for t, s in zip(tokens, scores, strict=True) if s < LISTED_ZIPF]
    return True, False, False, f"{rare[0]!r} is not a word (zipf fr/en {shown})"


def _candidates(member: Member) -> list[tuple[str, str, bool]]:
    """(spelling, origin, shortened) from the bare name, longest first."""
    out: list[tuple[str, str, bool]] = [(member.name, "name", False)]
    base = without_legal_suffix(member.name)
    if base != member.name:
        out.append((base, "without legal suffix", False))
    if re.search(r"\w-\w", base):  # "In-Cell-Art" is often written "InCellArt"
        out.append((re.sub(r"(?<=\w)-(?=\w)", "", base), "without hyphens", False))
    words = base.split()
    while len(words) > 1 and words[-1].lower().strip(".,") in GENERIC_WORDS:
        dropped = words.pop()
        if words[-1].lower().strip(".,") in _FUNCTION_WORDS:
            break
        out.append((" ".join(words), f'without "{dropped}"', True))
    return out


def _member_context(member: Member, stripped: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if member.context:
        return member.context, False
    words = list(DOMAIN_CONTEXT) + list(stripped) + list(member.tags)
    if member.city:
        words.append(member.city)
    return tuple(dict.fromkeys(w for w in words if w.strip())), True


def derive(cluster: Cluster, members: Sequence[Member]) -> list[MemberForms]:
    """The forms of every member (persons keep their hand-written aliases only)."""
    drafts: list[tuple[Member, list[Form], list[str]]] = []
    hand_keys: dict[str, str] = {_key(a): cluster.id for a in cluster.alias_names}
    for member in members:
        hand = [a for a in member.aliases if isinstance(a, AliasSpec)]
        written = {_key(a.alias): a for a in hand}
        forms: list[Form] = []
        stripped: list[str] = []
        seen: set[str] = set()
        derive_forms = member.derive and member.kind == "member"
        named = _candidates(member) if derive_forms else [(member.name, "name", False)]
        # a spelling a person wrote as an alias is not a shortening, even when it is one
        candidates = [c for c in named if not c[2]]
        candidates += [(a, "alias", False) for a in member.aliases if isinstance(a, str)]
        candidates += [c for c in named if c[2]]
        for alias, origin, shortened in candidates:
            key = _key(alias)
            if not key or key in seen:
                continue
            seen.add(key)
            if origin.startswith('without "'):
                stripped.append(origin.split('"')[1])
            spec = written.get(key)
            if spec is not None:
                forms.append(_hand_form(spec))
                continue
            if not derive_forms:
                forms.append(Form(alias=alias, origin=origin, reason="derive: false"))
                continue
            used, cased, wants_context, reason = evidence(alias, shortened=shortened)
            forms.append(Form(alias, origin, cased, wants_context, used, reason))
        for key, spec in written.items():
            if key not in seen:
                seen.add(key)
                forms.append(_hand_form(spec))
        for form in forms:  # a form a person turned off belongs to no one
            if form.used and form.origin in (
                "name",
                "without legal suffix",
                "without hyphens",
                "hand rule",
                "alias",
            ):
                hand_keys.setdefault(_key(form.alias), member.slug)
        drafts.append((member, forms, stripped))

    # 4. across members: names and written aliases own their key; shared derived forms go
    derived_owners: dict[str, set[str]] = {}
    for member, forms, _ in drafts:
        for form in forms:
            if form.used and form.origin.startswith('without "'):
                derived_owners.setdefault(_key(form.alias), set()).add(member.slug)
    names = {m.slug: m.name for m in members}
    names[cluster.id] = cluster.name
    result: list[MemberForms] = []
    for member, forms, stripped in drafts:
        settled: list[Form] = []
        for form in forms:
            key = _key(form.alias)
            if form.origin.startswith('without "'):
                owner = hand_keys.get(key)
                sharing = derived_owners.get(key, set()) - {member.slug}
                if owner is not None and owner != member.slug:
                    form = _drop(form, f"the name or an alias of {names.get(owner, owner)}")
                elif sharing:
                    others = ", ".join(sorted(names[s] for s in sharing))
                    form = _drop(form, f"shared with {others}")
            settled.append(form)
        context, derived_context = _member_context(member, stripped)
        result.append(
            MemberForms(
                member_id=member.slug,
                name=member.name,
                forms=tuple(settled),
                context=context,
                derived_context=derived_context,
            )
        )
    return result


def _hand_form(spec: AliasSpec) -> Form:
    """A rule a person wrote: used exactly as written (or turned off)."""
    return Form(
        alias=spec.alias,
        origin="hand rule",
        case_sensitive=spec.case_sensitive,
        context=spec.context,
        used=spec.use,
        reason="written in the configuration" if spec.use else "turned off",
    )


def _drop(form: Form, why: str) -> Form:
    return Form(form.alias, form.origin, form.case_sensitive, form.context, False, why)
