"""An article's text -> its mentions, topics and funding events (no I/O).

Mentions come from the member matcher (mentions.py). Topics come from keyword
lexicons in sources.yaml, matched the same way. A funding event is a money amount
in the same sentence as a member: "lève 12 millions d'euros", "raised €3.5M",
"1,5 M€", "$25 million Series A", "300 000 euros".
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.analysis.members import MemberForms, derive
from pipeline.analysis.mentions import AliasRule, ArticleMention, Matcher, article_mentions
from pipeline.analysis.stories import StoryKey, story_key
from pipeline.models import ParsedFeed
from pipeline.settings.config import Config
from pipeline.sources.dedupe import strip_controls
from pipeline.sources.parse.feed import MAX_ENTRIES, parse_feed_bytes
from pipeline.sources.sandbox import Limits, Setup, run_bounded, worker_setup

TITLE_HITS = 1  # a topic keyword in the title is enough
BODY_HITS = 2  # in the body it takes two

_MULTIPLIERS = {
    "k": 1e3, "mille": 1e3,
    "m": 1e6, "mln": 1e6, "million": 1e6, "millions": 1e6,
    "md": 1e9, "mds": 1e9, "mrd": 1e9, "milliard": 1e9, "milliards": 1e9,
    "bn": 1e9, "billion": 1e9, "billions": 1e9,
}  # fmt: skip
_CURRENCIES = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "us$": "USD",
    "£": "GBP", "gbp": "GBP", "livre": "GBP", "livres": "GBP",
    "chf": "CHF", "francs suisses": "CHF", "franc suisse": "CHF",
}  # fmt: skip
# Every pattern here runs over fetched text and is linear in it: a match may start only
# where no digit or separator precedes it, and each start does a bounded amount of work.
# The thousands groups are bounded (5 reach the trillions): unbounded, "000 000 000 ..."
# made every group a start that rescanned the rest of the run (quadratic, minutes on
# 200 KB). tests/test_linear.py checks the growth of each pattern on such input.
_NUMBER = r"\d{1,3}(?:[ .,]\d{3}){1,5}(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_MULT = r"milliards?|mds|md|mrd|billions?|bn|millions?|mln|mille|m|k"
_CUR_BEFORE = r"us\$|€|\$|£|eur|usd|gbp|chf"
_CUR_AFTER = r"francs? suisses?|euros?|eur|€|dollars?|usd|us\$|\$|livres?|gbp|£|chf"
_AMOUNT = re.compile(
    rf"(?<![\w.,])(?:(?P<cur1>{_CUR_BEFORE})\s?(?P<num1>{_NUMBER})\s?(?P<mult1>{_MULT})?(?![\w])"
    rf"|(?P<num2>{_NUMBER})\s?(?:(?P<mult2>{_MULT})\s?)?(?:de\s|d['’]\s?)?(?P<cur2>{_CUR_AFTER}))(?![\w])",
    re.IGNORECASE,
)
_UNICODE_SPACES = re.compile(
    r"[\u00a0\u2000-\u200a\u202f\u205f\u3000]"
)  # same length: offsets hold
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[«\"“(A-ZÀ-Ý0-9])|\n\s*\n|\n(?=[A-ZÀ-Ý«])")


@dataclass(frozen=True, slots=True)
class Funding:
    member_id: str
    amount: float
    currency: str
    amount_eur: float | None
    phrase: str


@dataclass(frozen=True, slots=True)
class Analysis:
    mentions: tuple[ArticleMention, ...]
    topics: tuple[str, ...]
    fundings: tuple[Funding, ...]


def parse_number(text: str, *, has_multiplier: bool) -> float | None:
    """ "1,5" -> 1.5, "300 000" -> 300000, "1.250.000" -> 1250000, "3.5" -> 3.5, "1,500" -> 1500."""
    text = _UNICODE_SPACES.sub(" ", text).strip()
    text = text.replace(" ", "")
    if "," in text and "." in text:
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        text = text.replace(thousands, "").replace(decimal, ".")
    elif "," in text or "." in text:
        sep = "," if "," in text else "."
        head, _, tail = text.rpartition(sep)
        groups = text.split(sep)
        if len(groups) > 2 or (len(tail) == 3 and not has_multiplier):
            text = text.replace(sep, "")  # thousands: "1,500 euros", "1.250.000"
        else:
            text = f"{head.replace(sep, '')}.{tail}"
    try:
        return float(text)
    except ValueError:
        return None


def find_amounts(sentence: str) -> list[tuple[int, int, float, str]]:
    """(start, end, amount, ISO currency) for every money amount in ``sentence``."""
    found: list[tuple[int, int, float, str]] = []
    for match in _AMOUNT.finditer(_UNICODE_SPACES.sub(" ", sentence)):
        number = match.group("num1") or match.group("num2")
        mult = (match.group("mult1") or match.group("mult2") or "").lower()
        currency_word = (match.group("cur1") or match.group("cur2") or "").lower()
        currency_word = " ".join(currency_word.split())
        currency = _CURRENCIES.get(currency_word)
        value = parse_number(number, has_multiplier=bool(mult))
        if value is None or value <= 0 or currency is None:
            continue
        found.append((match.start(), match.end(), value * _MULTIPLIERS.get(mult, 1.0), currency))
    return found


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans: ends of sentences, blank lines, and line breaks before a capital."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


class Analyser:
    """Built once per run from sources.yaml; ``analyse(...)`` per article."""

    def __init__(self, config: Config, *, forms: Sequence[MemberForms] | None = None) -> None:
        self.members = Matcher.from_config(config, forms=forms)
        self.cluster_id = config.cluster.id
        rules = [
            AliasRule(member_id=topic, member=topic, alias=word)
            for topic, lexicon in config.topics.items()
            for word in lexicon.words
        ]
        self.topic_matcher = Matcher(rules)

    def topics(self, *, title: str, body: str) -> tuple[str, ...]:
        in_title = {m.member_id for m in self.topic_matcher.find(title)}
        counts: dict[str, int] = {}
        for match in self.topic_matcher.find(body):
            counts[match.member_id] = counts.get(match.member_id, 0) + 1
        chosen = {t for t in in_title} | {t for t, n in counts.items() if n >= BODY_HITS}
        return tuple(sorted(chosen))

    def fundings(self, text: str, *, evidence: str | None = None) -> list[Funding]:
        """Amounts tied to a member named in the same sentence (the cluster excluded): the
        last one named before the amount, else the first one after it."""
        events: dict[tuple[str, float, str], Funding] = {}
        if not text or not _AMOUNT.search(_UNICODE_SPACES.sub(" ", text)):
            return []  # one scan of the whole text spares most articles the sentence loop
        for start, end in sentences(text):
            sentence = text[start:end]
            amounts = find_amounts(sentence)
            if not amounts:
                continue
            found = self.members.find(sentence, snippets=False, evidence=evidence or text)
            named = [m for m in found if m.member_id != self.cluster_id]
            if not named:
                continue
            phrase = " ".join(sentence.split())[:400]
            for a_start, _a_end, amount, currency in amounts:
                # the subject usually comes first ("X lève 12 M€", "X, qui a levé 12 M€, et Y");
                # a member after the amount only when none is before it ("12 M€ pour X")
                before = [m for m in named if m.end <= a_start]
                nearest = before[-1] if before else named[0]
                key = (nearest.member_id, amount, currency)
                events.setdefault(
                    key,
                    Funding(
                        member_id=nearest.member_id,
                        amount=amount,
                        currency=currency,
                        amount_eur=amount if currency == "EUR" else None,
                        phrase=phrase,
                    ),
                )
        return list(events.values())

    def analyse(self, *, title: str, summary: str, text: str | None) -> Analysis:
        body = text or summary or ""
        article = "\n".join(part for part in (title, summary, text) if part)
        fundings = self.fundings(title, evidence=article)
        seen = {(f.member_id, f.amount, f.currency) for f in fundings}
        for source in (body, summary if text else ""):
            for event in self.fundings(source, evidence=article):
                if (event.member_id, event.amount, event.currency) not in seen:
                    seen.add((event.member_id, event.amount, event.currency))
                    fundings.append(event)
        return Analysis(
            mentions=tuple(article_mentions(self.members, title=title, summary=summary, text=text)),
            topics=self.topics(title=title, body=body),
            fundings=tuple(fundings),
        )


# ---------------------------------------------------------------- in a worker process

_ANALYSERS: dict[str, Analyser] = {}  # in a worker: the Analyser of the last configuration seen


AnalysisItem = tuple[str, str, str | None, datetime | None]  # title, summary, text, published


def derive_forms(config: Config) -> list[MemberForms]:
    """The members' forms, for ``run_bounded``: deriving them loads the word-frequency
    lists (about 75 MB), which the analysis workers then never need to hold."""
    return derive(config.cluster, config.members)


def analysis_setup(config: Config, forms: Sequence[MemberForms]) -> bytes:
    """What an Analyser is built from (the cluster, the members, the topics and the members'
    forms), pickled once per configuration by the run and sent once to each worker
    (``run_bounded(setup=...)``). The sources are left out: the Analyser never reads
    them, and with 3,000 sources they were most of the bytes."""
    slim = config.model_copy(update={"specs": (), "sources": (), "alerts": ()})
    return pickle.dumps((slim, list(forms)), protocol=pickle.HIGHEST_PROTOCOL)


def _analyser(key: str) -> Analyser:
    """In a worker: the Analyser of the configuration named by ``key``, built once from
    the setup the run sent (``worker_setup``)."""
    analyser = _ANALYSERS.get(key)
    if analyser is None:
        config, forms = pickle.loads(worker_setup(key))
        _ANALYSERS.clear()
        analyser = _ANALYSERS[key] = Analyser(config, forms=forms)
    return analyser


def analyse_batch(
    payload: tuple[str, list[AnalysisItem]],
) -> list[tuple[Analysis, StoryKey]]:
    """Analysis and story key of each article, for ``run_bounded`` (a worker process keeps
    the Analyser of the configuration named by the key, so the automaton is built once).
    ``payload`` is (key, items); the worker was sent :func:`analysis_setup`'s bytes under
    that key (``worker_setup``), from the run's own process, never from fetched content."""
    key, items = payload
    analyser = _analyser(key)
    return [
        (
            analyser.analyse(title=title, summary=summary, text=text),
            story_key(title=title, summary=summary, text=text, published_at=published),
        )
        for title, summary, text, published in items
    ]


# ---------------------------------------------------------------- a feed read and analysed at once

EARLY_MAX_ENTRIES = 200  # a larger feed's entries are analysed the usual way, once known new
EntryKey = tuple[str, str, datetime | None]  # title, summary, published: what analysis reads


def entry_key(title: str, summary: str, published_at: datetime | None) -> EntryKey:
    """An article without page text, as its analysis sees it (controls already stripped)."""
    return (title, summary, published_at)


def parse_and_analyse(
    payload: tuple[bytes, dict[str, str], str, int, str],
) -> tuple[ParsedFeed, dict[EntryKey, tuple[Analysis, StoryKey]]]:
    """A feed parsed, and each of its entries analysed as the article it makes when no
    page is fetched for it (title and summary without control characters, no text), in
    the same worker: a source read for the first time without pages needs no second
    round trip to a worker (for ``run_bounded``, with the analysis setup sent under
    ``key``). Past EARLY_MAX_ENTRIES entries, nothing is analysed here.

    The analysis never costs the feed: if it raises, the feed comes back with no
    analyses, and its articles are analysed the usual way, each bounded on its own. It
    runs under the parse's time and memory bounds, on at most EARLY_MAX_ENTRIES titles
    and summaries of bounded length, with linear patterns."""
    data, headers, url, max_entries, key = payload
    parsed = parse_feed_bytes(data, headers=headers, url=url, max_entries=max_entries)
    if len(parsed.entries) > EARLY_MAX_ENTRIES:
        return parsed, {}
    analyses: dict[EntryKey, tuple[Analysis, StoryKey]] = {}
    try:
        analyser = _analyser(key)
        for entry in parsed.entries:
            title, summary = strip_controls(entry.title), strip_controls(entry.summary)
            found = entry_key(title, summary, entry.published_at)
            if found not in analyses:
                analyses[found] = (
                    analyser.analyse(title=title, summary=summary, text=None),
                    story_key(
                        title=title, summary=summary, text=None, published_at=entry.published_at
                    ),
                )
    except Exception:  # a bug on odd input must not cost the feed: the usual path retries
        return parsed, {}
    return parsed, analyses


def parse_and_analyse_guarded(
    data: bytes,
    *,
    headers: dict[str, str],
    url: str,
    limits: Limits,
    setup: Setup,
    max_entries: int = MAX_ENTRIES,
) -> tuple[ParsedFeed, dict[EntryKey, tuple[Analysis, StoryKey]]]:
    """:func:`parse_and_analyse` in a bounded worker. Blocking; raises ParseError."""
    return run_bounded(
        parse_and_analyse,
        (data, headers, url, max_entries, setup[0]),
        limits=limits,
        what="parsing the feed",
        setup=setup,
    )
