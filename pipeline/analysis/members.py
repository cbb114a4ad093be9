"""Members -> the forms the press writes them in, each with its evidence rule and the reason.

1. Candidates from the bare name: the name as written; without its legal suffix
   ("Step Pharma SAS" -> "Step Pharma") or legal prefix ("SAS Kerolia" -> "Kerolia");
   without a word in brackets after it, and that word ("Institut du Thorax (ITX)");
   without its hyphens ("In-Cell-Art" -> "InCellArt"), or without its other inner
   symbols and with them as spaces ("Mab<>Lab" -> "MabLab", "Mab Lab"); its words
   apart or together as the press writes them ("GoLiver" -> "Go Liver", "Sea4Health" ->
   "Sea 4 Health", "Breizh Cell" -> "BreizhCell"); "Saint" as "St" and "St."; without
   trailing generic words, one at a time ("Mablink Bioscience" -> "Mablink"); without an
   institutional prefix, and that without its generic words ("Groupe Vetalis" ->
   "Vetalis"). Accents, case, a hyphen at a line break and an affiliation number glued
   to a name need no form of their own: the matcher folds them (folding.py, mentions.py).
2. The spellings a person wrote as plain aliases are candidates too; an alias written as
   a rule (`{alias: ..., case_sensitive: ..., context: ...}`) is used exactly as written
   and no derived rule replaces it. `{alias: ..., use: false}` turns a form off.
3. Evidence from word frequency (wordfreq's Zipf scale; 3 is about once per million
   words). A single word counts at the higher of French and English:
   - a single word at or above COMMON_ZIPF, or an acronym of up to four capitals that
     is also a word ("OSE"), needs its capitals as written and a context word; a
     shortened form that common is not used at all (the full name still is);
   - a single word at or above RARE_ZIPF, or an acronym, needs its capitals as written;
   - a shortened form that is an acronym is not used (the full name is); one that is a
     word at or above LISTED_ZIPF (an element, a place, a first name: "Astatine" of
     Astatine Pharma, "Lucine" of Lucine Therapeutics) needs its capitals, a context
     word, and to end the name (no capitalised word or number after it: "Lucine
     Martin", "Astatine-211");
   A phrase is judged as a phrase, in each language:
   - a phrase with a rare word (below RARE_ZIPF in both languages) never needs capitals
     ("OSE Immunotherapeutics", however it is written);
   - otherwise, with an acronym that is a word ("ERA Biologics"), it needs its capitals;
   - otherwise it needs its capitals in the languages where it is ordinary text, where
     its rarest word is at or above PHRASE_ZIPF ("Step Pharma" in both, "Good Cells" in
     English only), and nowhere else, and it ends the name ("Open Health Day" is an
     event); a shortened phrase ("Fast Track") is not used;
   - a name of ordinary words that starts with a place ("Nantes Biotech Services")
     needs every capital as written; a name shortened past a place ("Cellectis" of
     Cellectis Nantes) counts only where the article names the region (PLACES);
   - a form shorter than MIN_FORM_CHARS letters is not used.
4. Across members: a derived form that is another member's name (or one of its
   hand-written aliases) belongs to that member ("Nova Cell" is the member Nova Cell,
   not a shortening of Nova Cell Therapeutics); a derived form two members share is used
   by neither. Where one name is inside another in a text, the matcher's
   leftmost-longest rule gives it to the longer name.
"""

from __future__ import annotations

import dataclasses
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
# A phrase is ordinary text in a language when its rarest word is at or above this there:
# "step pharma", "open health", "good cells" in English. Then it needs its capitals in
# articles in that language, and only there: "Good cells" in a French article is the name
# (cells is 2.6 in French). Measured on the tuning and press-forms passages
# (tests/scripts/eval_mentions.py): every value from 2.7 to 2.9 gives the same figures; at
# 3.0 "genomics" (2.99 in English) stops being ordinary English and "Red genomics was a
# joke name" becomes Red Genomics; at 2.6 "biotech" (2.67 in French) makes "Harmony
# biotech signe un partenariat" ordinary French. 2.8 is the middle of the plateau.
PHRASE_ZIPF = 2.8
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
        # what a company makes or sells, written after the name the press keeps
        "Ingredients",
        "Ingrédients",
        "Technics",
        "Expression",
        "Scientific",
        "Scientifique",
        "Systems",
        "Biopharma",
        "Biotherapeutics",
        "Biologicals",
    ]
)
# Of those, the words that name a place: a name shortened past one is the group's name
# ("Cellectis" of Cellectis Nantes, "Erytech" of Erytech Ouest), and it is the member only
# in an article that names the member's region (PLACES, its city, the word dropped). Two
# sets of passages written blind to the matcher, by two writers, both read "Cellectis, the
# Paris gene-editing company" as the group, not the member.
PLACE_WORDS = frozenset(["france", "ouest", "atlantique", "bretagne", "loire", "nantes"])
# The cluster's region as articles name it (folded like aliases; "Ouest" alone is not
# one: "Ouest-France" signs articles about everywhere)
PLACES = (
    "Nantes",
    "Saint-Herblain",
    "Angers",
    "Rennes",
    "Brest",
    "Saint-Nazaire",
    "La Roche-sur-Yon",
    "Laval",
    "Le Mans",
    "Cholet",
    "Quimper",
    "Lorient",
    "Vannes",
    "Roscoff",
    "Concarneau",
    "Plouzané",
    "Pays de la Loire",
    "Loire-Atlantique",
    "Maine-et-Loire",
    "Vendée",
    "Sarthe",
    "Mayenne",
    "Bretagne",
    "Brittany",
    "Grand Ouest",
    "western France",
    "Atlanpole",
    # their people, as the press writes "son site nantais"
    "nantais",
    "nantaise",
    "nantaises",
    "angevin",
    "angevine",
    "angevins",
    "rennais",
    "rennaise",
    "brestois",
    "brestoise",
    "nazairien",
    "nazairienne",
    "ligérien",
    "ligérienne",
    "vendéen",
    "vendéenne",
    "breton",
    "bretonne",
    "bretons",
)
# Words written before a name that say what kind of body it is, not which: the press
# often drops them ("GIP Arronax" -> "Arronax", "Laboratoires Mérilis" -> "Mérilis").
# What is left is a shortened form, which must be distinctive on its own.
INSTITUTIONAL_PREFIXES = frozenset(
    w.lower()
    for w in [
        "GIP",
        "GIE",
        "Groupe",
        "Group",
        "Laboratoires",
        "Laboratoire",
        "Laboratories",
        "Labo",
        "Labos",
        "Institut",
        "Institute",
        "Société",
        "Societe",
        "Fondation",
        "Établissements",
        "Etablissements",
        "Ets",
    ]
)
# Legal forms written before a name ("SAS Kerolia"): what is left is the name itself, as
# with a legal suffix. Only in capitals: "Sa" and "Sas" are words.
LEGAL_PREFIXES = frozenset(["SA", "SAS", "SASU", "SARL", "EURL", "SCOP", "SCIC"])
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
    "essai",
    "essais",
    "trial",
    "trials",
    "anticorps",
    "antibody",
    "vaccin",
    "vaccine",
    "diagnostic",
    "molecule",
    "oncologie",
    "oncology",
    "patients",
    # care: a group of clinics or a hospital's partner is named beside these
    "clinique",
    "cliniques",
    "clinic",
    "hopital",
    "hospital",
    "chirurgie",
    "surgery",
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
FUNCTION_WORDS = frozenset(
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
    origin: str  # name, without legal suffix, without "X", without prefix "X", alias, hand rule
    case_sensitive: bool = False
    context: bool = False
    used: bool = True
    reason: str = ""
    # capitals are needed only in articles in these languages (and where the language is
    # not known); empty: in every article
    cased_in: tuple[str, ...] = ()
    # a shortened word that must end the name it stands for: not followed by another
    # capitalised word or a number ("Lucine Martin", "Curium Pharma", "Astatine-211")
    ends_name: bool = False
    shortened: bool = False  # words of the name dropped: it may not take another's name
    # a place dropped from the name ("Erytech" of Erytech Ouest): the article names the region
    needs_place: bool = False
    # every capital of the name as written ("Nantes Biotech Services": in lower case after
    # the place, "Nantes biotech services firms", it is the place's trade)
    strict_capitals: bool = False
    # the words written together right after "@" or "#": a social handle or a hashtag
    # ("@NaogenPharma"); written so anywhere else, it is another word
    handle: bool = False

    @property
    def rule(self) -> str:
        if not self.used:
            return "not used"
        if self.handle:
            return "after @ or #"
        place = " + a place" if self.needs_place else ""
        if self.case_sensitive and self.context:
            return "capitals + context" + place
        if self.case_sensitive and self.cased_in:
            return f"capitals in {'/'.join(self.cased_in)}" + place
        if self.case_sensitive:
            return "capitals" + place
        if self.context:
            return "context" + place
        return "a place" if place else "plain"


@dataclass(frozen=True, slots=True)
class MemberForms:
    member_id: str
    name: str
    forms: tuple[Form, ...]
    context: tuple[str, ...]  # the evidence words its context rules look for
    derived_context: bool  # True when they are DOMAIN_CONTEXT and the member's city and tags
    places: tuple[str, ...] = ()  # what a form that needs a place looks for (PLACES, city)

    @property
    def used(self) -> list[Form]:
        return [f for f in self.forms if f.used]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What word frequency says of a spelling: whether it is used, and its rule."""

    used: bool
    case_sensitive: bool
    context: bool
    reason: str
    cased_in: tuple[str, ...] = ()
    ends_name: bool = False


LANGUAGES = ("fr", "en")


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


def evidence(alias: str, *, shortened: bool, split: bool = False) -> Evidence:
    """The rule of a spelling, from word frequency alone.

    ``shortened``: a name with words dropped, which must still be distinctive on its own.
    ``split``: the name with its symbols made spaces ("Mab<>Lab" -> "Mab Lab"), a looser
    spelling that keeps its capitals unless a word of it is rare.
    """
    tokens = _tokens(alias)
    letters = sum(c.isalnum() for c in alias)
    if letters < MIN_FORM_CHARS or not tokens:
        return Evidence(False, False, False, f"shorter than {MIN_FORM_CHARS} letters")
    if len(tokens) == 1:
        return _word_evidence(tokens[0], shortened=shortened)
    return _phrase_evidence(tokens, shortened=shortened, split=split)


def _word_evidence(token: str, *, shortened: bool) -> Evidence:
    score = _frequency(token)
    freq = f"zipf fr/en {_shown(token)}"
    if _is_acronym(token):
        if shortened:  # "MGI" of MGI Ouest is also MGI Tech, and a dozen others
            return Evidence(False, False, False, f"acronym left by a shortening ({freq})")
        if score >= COMMON_ZIPF:
            return Evidence(True, True, True, f"acronym that is a common word ({freq})")
        return Evidence(True, True, False, f"acronym ({freq})")
    if score >= COMMON_ZIPF:
        if shortened:
            return Evidence(False, False, False, f"common word ({freq} >= {COMMON_ZIPF})")
        return Evidence(True, True, True, f"common word ({freq} >= {COMMON_ZIPF})")
    if score >= RARE_ZIPF:
        if shortened:  # "Biomarkers" opens English sentences: capitals are not enough
            return Evidence(
                True, True, True, f"word ({freq} >= {RARE_ZIPF}), ends the name", ends_name=True
            )
        return Evidence(True, True, False, f"word ({freq} >= {RARE_ZIPF})")
    if shortened and score >= LISTED_ZIPF:
        # an element, a place, a first name as often as a company ("Astatine-211", "les landes
        # de Lanvaux", "Lucine Martin"): its capitals, a context word, and nothing after it
        # that makes it part of another name
        return Evidence(
            True,
            True,
            True,
            f"a listed word ({freq} >= {LISTED_ZIPF}), ends the name",
            ends_name=True,
        )
    return Evidence(True, False, False, f"not a word ({freq})")


def _phrase_evidence(tokens: Sequence[str], *, shortened: bool, split: bool) -> Evidence:
    """A phrase needs capitals where, written in lower case, it is ordinary text: where its
    rarest word is at or above PHRASE_ZIPF in the article's language. A phrase with a rare
    word (below RARE_ZIPF in both languages) never does: "OSE Immunotherapeutics" is the
    company however it is written."""
    shown = ", ".join(_shown(t) for t in tokens)
    rare = [t for t in tokens if _frequency(t) < RARE_ZIPF]
    if rare:
        return Evidence(
            True,
            False,
            False,
            f"{rare[0].lower()!r} is rare (zipf fr/en {shown}; < {RARE_ZIPF}): no capitals needed",
        )
    if shortened:  # "Fast Track", "Blue Ocean", "Loire Valley": phrases of their own
        return Evidence(False, False, False, f"a phrase of words (zipf fr/en {shown})")
    if split:  # "Mab Lab": the capitals say it is Mab<>Lab
        return Evidence(True, True, False, f"the name's words apart (zipf fr/en {shown})")
    worded = [t for t in tokens if _is_acronym(t) and _frequency(t) >= COMMON_ZIPF]
    if worded:  # "ERA Biologics": "the post-pandemic era biologics manufacturers"
        return Evidence(
            True,
            True,
            False,
            f"{worded[0]!r} is an acronym and a word (zipf fr/en {shown}): capitals",
        )
    rarest = {lang: min(zipf(t.lower())[i] for t in tokens) for i, lang in enumerate(LANGUAGES)}
    ordinary = tuple(lang for lang in LANGUAGES if rarest[lang] >= PHRASE_ZIPF)
    lowest = ", ".join(f"{lang} {rarest[lang]:.1f}" for lang in LANGUAGES)
    if not ordinary:
        return Evidence(
            True,
            False,
            False,
            f"not ordinary text (rarest word zipf {lowest}; < {PHRASE_ZIPF}; {shown})",
        )
    # ordinary words in capitals are a name, but not always this one: "Open Health Day" is
    # an event, "Open Health Hackathon" another; so it ends the name it stands for
    if len(ordinary) == len(LANGUAGES):
        return Evidence(
            True,
            True,
            False,
            f"ordinary text (rarest word zipf {lowest}; >= {PHRASE_ZIPF}; {shown}), ends the name",
            ends_name=True,
        )
    return Evidence(
        True,
        True,
        False,
        f"ordinary text in {ordinary[0]} only (rarest word zipf {lowest}; "
        f">= {PHRASE_ZIPF}; {shown}), ends the name",
        cased_in=ordinary,
        ends_name=True,
    )


# characters inside a name that the press writes several ways ("Mab<>Lab", "Onco.Path",
# "Bio·Sphère": "Mab-Lab", "MabLab", "Mab Lab"); an apostrophe is the matcher's boundary
_INNER_SYMBOLS = re.compile(r"(?<=[^\W_])[^\w\s'’]+(?=[^\W_])")


def _symbol_variants(name: str) -> list[tuple[str, str, bool, bool]]:
    """The name without its inner symbols, and with them as spaces (a hyphen is folded to a
    space by the matcher already)."""
    if not _INNER_SYMBOLS.search(name):
        return []
    symbols = set(_INNER_SYMBOLS.findall(name))
    if symbols <= {"-"}:  # "In-Cell-Art" is often written "InCellArt"
        return [(_INNER_SYMBOLS.sub("", name), "without hyphens", False, False)]
    spaced = _INNER_SYMBOLS.sub(" ", name)
    if spaced == spaced.lower():  # "x<>lab" is written "X-Lab" by the press
        spaced = " ".join(w[:1].upper() + w[1:] for w in spaced.split())
    return [
        (_INNER_SYMBOLS.sub("", name), "symbols dropped", False, False),
        (spaced, "symbols as spaces", False, True),
    ]


# a word of two parts written together: "GoLiver", "AlgoSource", "NeuroNantes" (the press
# also writes "Go- Liver", "Algo Source", "Neuro-Nantes"), each part two letters or more
_CAMEL = re.compile(r"(?<=[^\W\d_][a-zà-ÿ])(?=[A-ZÀ-Þ][a-zà-ÿ])")
# letters and digits written together: "IRS2", "Sea4Health" ("IRS-2", "Sea-4-Health")
_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_SAINT = re.compile(r"\b(Saint|Sainte)(?=[ -][A-ZÀ-Þ])")
# what a handle or a hashtag leaves out of a name of several words
_HANDLE_GAPS = re.compile(r"[\s\-'’.&]+")
HANDLE_ORIGIN = "words together after @ or #"


def _spelling_variants(name: str) -> list[tuple[str, str, bool, bool]]:
    """The name's words written apart or together, as the press writes them: a word of two
    capitalised parts apart ("Go Liver Therapeutics"), letters and digits apart ("Sea 4
    Health"), two short words together ("BreizhCell", "ArMor Therapeutics"), all its words
    together in a handle or a hashtag ("@NaogenPharma"), "Saint" as "St" ("St-Nazaire
    Bioprocess")."""
    out: list[tuple[str, str, bool, bool]] = []
    apart = _CAMEL.sub(" ", name)
    if apart != name:
        out.append((apart, "parts of a word apart", False, True))
    digits = _LETTER_DIGIT.sub(" ", name)
    if digits != name:
        out.append((digits, "digits apart", False, True))
    words = name.split(" ")
    if 2 <= len(words) <= 3:  # its first two words, short and capitalised, not acronyms
        first, second = words[0], words[1]
        if (
            first[:1].isupper()
            and second[:1].isupper()
            and first.isalpha()
            and second.isalpha()
            and max(len(first), len(second)) <= 6  # "Breizh Cell", "Ar Mor"
            and not (first.isupper() or second.isupper())  # "CHU Angers", "ABS Bio"
            and first.lower() not in FUNCTION_WORDS  # "La Roche Biotech"
            # "Ceva Santé Animale": a generic word inside a longer name stays apart
            and (len(words) == 2 or second.lower() not in GENERIC_WORDS)
        ):
            joined = " ".join([first + second, *words[2:]])
            out.append((joined, f'"{first} {second}" together', False, False))
    glued = _HANDLE_GAPS.sub("", name)
    if len(words) >= 2 and glued.isalnum():  # "@NaogenPharma", "#TBFGenieTissulaire"
        out.append((glued, HANDLE_ORIGIN, False, False))
    saint = _SAINT.search(name)
    if saint:
        short = "St" if saint.group(1) == "Saint" else "Ste"
        rest = name[saint.end() + 1 :]  # "St-Nazaire", "St Nazaire", "St. Nazaire"
        for written in (short, short + "."):
            variant = name[: saint.start()] + written + name[saint.end()] + rest
            if written.endswith("."):
                variant = name[: saint.start()] + written + " " + rest
            out.append((variant, f'"{saint.group(1)}" as "{written}"', False, False))
    return out


def _without_prefix(name: str) -> tuple[str, str, bool] | None:
    """(the rest, the prefix, legal) for "SAS Kerolia" or "Groupe Vetalis"; None when the
    name has no such prefix, or what follows it is not a name ("Institut de la Vision")."""
    words = name.split()
    if len(words) < 2:
        return None
    first = words[0].strip(".,")
    rest = " ".join(words[1:])
    if words[1].lower() in FUNCTION_WORDS or not words[1][:1].isalnum():
        return None
    if first in LEGAL_PREFIXES:
        return rest, first, True
    if first.lower() in INSTITUTIONAL_PREFIXES:
        return rest, first, False
    return None


def _shortenings(stem: str, origin: str) -> list[tuple[str, str, bool, bool]]:
    """``stem`` without trailing generic words, one at a time ("Mablink Bioscience" ->
    "Mablink"); never ending on a function word ("EFS Pays de la")."""
    out: list[tuple[str, str, bool, bool]] = []
    words = stem.split()
    while len(words) > 1 and words[-1].lower().strip(".,") in GENERIC_WORDS:
        dropped = words.pop()
        if words[-1].lower().strip(".,") in FUNCTION_WORDS:
            break
        out.append((" ".join(words), f'{origin}without "{dropped}"', True, False))
    return out


# a name's own acronym or legal form in brackets after it: "Institut du Thorax (ITX)"
_BRACKETED = re.compile(r"^(.*?\S)\s*\(([^()]+)\)$")


def _candidates(member: Member) -> list[tuple[str, str, bool, bool]]:
    """(spelling, origin, shortened, split) from the bare name, the name's own first."""
    out: list[tuple[str, str, bool, bool]] = [(member.name, "name", False, False)]
    name = member.name.strip()
    bracketed = _BRACKETED.match(name)
    if bracketed:  # the press writes the name, or its acronym, without the brackets
        name, inside = bracketed.group(1), bracketed.group(2).strip()
        out.append((name, "without brackets", False, False))
        # one word: its acronym ("ITX"), not a legal form ("SAS") nor a parent ("Groupe X")
        if " " not in inside and without_legal_suffix(f"{name} {inside}") == f"{name} {inside}":
            out.append((inside, "in brackets", False, False))
    base = without_legal_suffix(name)
    if base != name:
        out.append((base, "without legal suffix", False, False))
    prefixed = _without_prefix(base)
    if prefixed is not None and prefixed[2]:  # "SAS Kerolia" is Kerolia
        base = prefixed[0]
        out.append((base, f'without legal prefix "{prefixed[1]}"', False, False))
        prefixed = _without_prefix(base)
    out += _symbol_variants(base)
    out += _spelling_variants(base)
    out += _shortenings(base, "")
    if prefixed is not None:  # "Groupe Vetalis" -> "Vetalis"
        rest, prefix = prefixed[0], prefixed[1]
        out.append((rest, f'without prefix "{prefix}"', True, False))
        out += _shortenings(rest, f'without prefix "{prefix}", ')
    return out


def _member_context(member: Member, stripped: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if member.context:
        return member.context, False
    words = list(DOMAIN_CONTEXT) + list(stripped) + list(member.tags)
    if member.city:
        words.append(member.city)
    return tuple(dict.fromkeys(w for w in words if w.strip())), True


# the origins that are the member's own name written another way: they own their key
# against another member's shortened forms
_OWN_NAME = ("name", "without legal suffix", "without hyphens", "symbols dropped", "hand rule")
_OWN_NAME_PREFIX = (
    "without legal prefix",
    "symbols as spaces",
    "parts of a word apart",
    "digits apart",
    '"',  # '"Breizh Cell" together', '"Saint" as "St"'
    "alias",
    "without brackets",
    "in brackets",
)


def _owns(form: Form) -> bool:
    return form.origin in _OWN_NAME or form.origin.startswith(_OWN_NAME_PREFIX)


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
        named = _candidates(member) if derive_forms else [(member.name, "name", False, False)]
        # a spelling a person wrote as an alias is not a shortening, even when it is one
        candidates = [c for c in named if not c[2] and c[1] != HANDLE_ORIGIN]
        candidates += [(a, "alias", False, False) for a in member.aliases if isinstance(a, str)]
        candidates += [c for c in named if c[2]]
        # last: any other spelling of the same letters counts anywhere, not only after @ or #
        candidates += [c for c in named if c[1] == HANDLE_ORIGIN]
        for alias, origin, shortened, split in candidates:
            key = _key(alias)
            if not key or key in seen:
                continue
            seen.add(key)
            if shortened:
                dropped = _dropped_word(origin)
                if dropped:
                    stripped.append(dropped)
            spec = written.get(key)
            if spec is not None:
                forms.append(_hand_form(spec))
                continue
            if not derive_forms:
                forms.append(Form(alias=alias, origin=origin, reason="derive: false"))
                continue
            if origin == HANDLE_ORIGIN:
                reason = "a handle or a hashtag, in any capitals"
                forms.append(Form(alias, origin, reason=reason, handle=True))
                continue
            found = evidence(alias, shortened=shortened, split=split)
            place = shortened and _past_a_place(member.name, alias)
            if found.used and _starts_with_a_place(alias):
                found = dataclasses.replace(
                    found,
                    case_sensitive=True,
                    cased_in=(),
                    reason=f"{found.reason}; starts with a place: its capitals as written",
                )
                strict = True
            else:
                strict = False
            forms.append(
                Form(
                    alias,
                    origin,
                    found.case_sensitive,
                    found.context,
                    found.used,
                    found.reason + (", a place dropped: the group's name" if place else ""),
                    cased_in=found.cased_in,
                    ends_name=found.ends_name,
                    shortened=shortened,
                    needs_place=place,
                    strict_capitals=strict,
                )
            )
        for key, spec in written.items():
            if key not in seen:
                seen.add(key)
                forms.append(_hand_form(spec))
        for form in forms:  # a form a person turned off belongs to no one
            if form.used and _owns(form):
                hand_keys.setdefault(_key(form.alias), member.slug)
        drafts.append((member, forms, stripped))

    # 4. across members: names and written aliases own their key; shared derived forms go
    derived_owners: dict[str, set[str]] = {}
    for member, forms, _ in drafts:
        for form in forms:
            if form.used and form.shortened:
                derived_owners.setdefault(_key(form.alias), set()).add(member.slug)
    names = {m.slug: m.name for m in members}
    names[cluster.id] = cluster.name
    result: list[MemberForms] = []
    for member, forms, stripped in drafts:
        settled: list[Form] = []
        for form in forms:
            key = _key(form.alias)
            if form.shortened:
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
                places=_member_places(member, cluster.region),
            )
        )
    return result


def _past_a_place(name: str, alias: str) -> bool:
    """Whether ``alias`` is ``name`` shortened past a place word ("Erytech" of "Erytech
    Ouest", "Kelia" of "Kelia Diagnostics Nantes")."""
    words = _key(without_legal_suffix(name)).split()
    kept = _key(alias).split()
    if words[: len(kept)] != kept:
        return False
    return any(w in PLACE_WORDS for w in words[len(kept) :])


_PLACE_KEYS = tuple(sorted({_key(p) for p in PLACES} | PLACE_WORDS))


def _starts_with_a_place(alias: str) -> bool:
    """Whether a name of several words, none of them rare, starts with a place ("Nantes
    Biotech Services", "Loire Valley Biotech", "Brest Marine Biotech")."""
    key = _key(alias)
    if not any(key.startswith(place + " ") for place in _PLACE_KEYS):
        return False
    # a rare word is the name however it is written ("Nantes Xenogen")
    return all(_frequency(t) >= RARE_ZIPF for t in _tokens(alias))


def _member_places(member: Member, region: Sequence[str] | None) -> tuple[str, ...]:
    places = list(PLACES if region is None else region)
    if member.city:
        places.append(member.city)
    return tuple(dict.fromkeys(places))


def _dropped_word(origin: str) -> str | None:
    """The generic word a shortening dropped ('without "Pharma"' -> "Pharma"): a context word."""
    if 'without "' not in origin:
        return None
    return origin.rsplit('without "', 1)[1].rstrip('"')


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
    return dataclasses.replace(form, used=False, reason=why)
