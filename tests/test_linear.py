"""Every pattern that runs over fetched text takes time linear in its input.

Each case feeds one pattern (through the function that uses it) the input that made it,
or a pattern of its shape, backtrack: a unit repeated until the text is N characters,
then 8 N. A linear pattern takes about 8 times as long on the longer text; a quadratic
one about 64 times. The check is that ratio, with room for a noisy machine (below 24),
never an absolute time: how fast is the business of `make bench`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.analysis import analyse, extract, stories
from pipeline.analysis.analyse import Analyser
from pipeline.analysis.mentions import Matcher
from pipeline.settings.config import load_config
from pipeline.sources.parse.feed import guard_feed_bytes, plain_text

ROOT = Path(__file__).resolve().parent.parent
FACTOR = 8
LIMIT = 3 * FACTOR  # linear: about 8; quadratic: about 64

CONFIG = load_config(ROOT / "sources.yaml")
ANALYSER = Analyser(CONFIG)
MATCHER = Matcher.from_config(CONFIG)


def _guard(data: bytes) -> None:
    try:
        guard_feed_bytes(data)
    except Exception:  # refusing the input is an answer too; only its time matters here
        return


# name -> (the function that runs the pattern, the repeated unit, the text's start)
CASES: dict[str, tuple[Callable[[Any], object], Any, Any]] = {
    # analysis: money amounts, sentences, whole articles
    "amount after a run of thousands groups": (analyse.find_amounts, "000 ", ""),
    "amount after a run of decimal groups": (analyse.find_amounts, "0,0 ", ""),
    "amount after a run of digits": (analyse.find_amounts, "1", ""),
    "amount after currencies without numbers": (analyse.find_amounts, "€ $ ", ""),
    "sentences in a run of spaces after a stop": (analyse.sentences, " ", "Fin."),
    "sentences in blank lines": (analyse.sentences, "\n \n", ""),
    "funding events in a member's sentence of zeros": (ANALYSER.fundings, "000 ", "Valneva "),
    "whole analysis of an article of zeros": (
        lambda text: ANALYSER.analyse(title="Valneva", summary="", text=text),
        "000 ",
        "Valneva lève ",
    ),
    # mentions: names inside addresses
    "member names inside a dashed word": (MATCHER.find, "a-", "Valneva-"),
    "member names inside a dotted word": (MATCHER.find, "valneva.", ""),
    # stories: the " - Outlet" suffix of a title, boilerplate lines
    "title suffix after a run of spaces": (stories.title_key, " ", "Valneva"),
    "title suffix after repeated separators": (stories.title_key, " - a", "Valneva"),
    "boilerplate lines": (stories.clean_text, "the post ", ""),
    # pages: <html lang>, <link rel=canonical> and its attributes
    "html lang in unclosed html tags": (extract.html_lang, b"<html ", b""),
    "canonical link in unclosed link tags": (
        lambda html: extract.canonical_link(html, url="https://x.example/"),
        b"<link ",
        b"",
    ),
    "canonical link with one long attribute name": (
        lambda html: extract.canonical_link(html + b">", url="https://x.example/"),
        b"a",
        b"<link ",
    ),
    "canonical link with unclosed quotes": (
        lambda html: extract.canonical_link(html + b">", url="https://x.example/"),
        b'a="',
        b"<link ",
    ),
    # feeds: the DOCTYPE guard and plain text
    "doctype with unclosed declarations": (_guard, b"<!A ", b'<?xml version="1.0"?><!DOCTYPE r ['),
    "doctype with unclosed quotes": (_guard, b'<!A "<!A ', b'<?xml version="1.0"?><!DOCTYPE r ['),
    "plain text of markup fragments": (lambda text: plain_text(text, limit=10**9), "<b ", ""),
}


def _best_time(func: Callable[[Any], object], text: Any) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        func(text)
        best = min(best, time.perf_counter() - started)
    return best


def _text(unit: Any, start: Any, size: int) -> Any:
    return start + unit * (size // len(unit))


@pytest.mark.parametrize("name", list(CASES))
def test_time_grows_linearly_with_hostile_input(name: str) -> None:
    func, unit, start = CASES[name]
    small = 8_000
    func(_text(unit, start, 200))  # warm up caches and lazy imports
    short = _best_time(func, _text(unit, start, small))
    long = _best_time(func, _text(unit, start, small * FACTOR))
    ratio = long / max(short, 1e-6)
    assert ratio < LIMIT, (
        f"{FACTOR}x the input took {ratio:.0f}x the time ({short * 1e3:.2f} ms -> {long * 1e3:.2f} ms)"
    )


def test_the_funding_pattern_still_reads_real_amounts() -> None:
    text = "GoLiver lève 12 millions d'euros, 1 500 000 € et 300 000 euros ; $25 million."
    assert [(a, c) for _, _, a, c in analyse.find_amounts(text)] == [
        (12_000_000.0, "EUR"),
        (1_500_000.0, "EUR"),
        (300_000.0, "EUR"),
        (25_000_000.0, "USD"),
    ]
    # five thousands groups reach the trillions; zeros alone are no amount
    assert analyse.find_amounts("1 000 000 000 000 000 €")[0][2] == 1e15
    assert analyse.find_amounts("000 000 000 €") == []


def test_pages_still_give_their_language_and_canonical_link() -> None:
    html = (
        b'<!doctype html><html data-lang="de" lang="fr-FR"><head>'
        b'<link rel="stylesheet" href="/s.css"><link href="/actu/a?x=1" rel="canonical">'
        b"</head><body></body></html>"
    )
    assert extract.html_lang(html) == "fr"
    assert extract.canonical_link(html, url="https://x.example/p") == "https://x.example/actu/a?x=1"
    assert extract.canonical_link(b"<link rel=canonical", url="https://x.example/") is None
