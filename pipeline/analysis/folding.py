"""Text -> folded text for matching: case, accents, apostrophes, dashes, invisible
characters, words hyphenated across a line break and runs of spaces, with the map back to
the original offsets. The matcher (mentions.py) folds documents with it, the members'
forms (members.py) fold aliases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

_APOSTROPHES = "'’‘ʼ`´′"
_DASHES = "-‐‑‒–—―−"
_SPACES = "\t\n\r\v\f \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_QUOTES = "«»“”„"
_RUNS_OF_SPACES = re.compile(" {2,}")
# Characters that change nothing a reader sees: combining accents typed apart
# ("Xe\u0301nothera"), soft hyphens and zero-width spaces inside names. They are
# marked in the table, then dropped with the offset map kept right.
_DROP = "\x00"
_INVISIBLE = "".join(chr(c) for c in range(0x300, 0x370)) + "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_DROPPED_RUNS = re.compile("\x00+")
# A word hyphenated at a line break in extracted text ("Thera-\nvax", or "Thera- vax" where
# the extraction made the break a space) is one word again: the hyphen and the break are
# dropped when a letter precedes and a lower-case letter follows. A capital after the break
# keeps the hyphen, which is the name's own ("In-Cell-\nArt", "Saint-\nHerblain").
# A hyphen and a break fold to a run of spaces, so they are looked for only where the
# folded text has one (no scan of its own on the hot path).
_BREAK_HYPHENS = frozenset("-\u2010\u2011")
_SOFT_BREAK = re.compile("\x00+ +")  # a soft hyphen (dropped) before a line break


def _table(*, keep_case: bool) -> dict[str, str]:
    """A one-to-one character map: accents dropped, case folded (or kept), every apostrophe
    one "'", every dash and space one " ". One-to-one keeps offsets valid."""
    table: dict[str, str] = {}
    for code in range(0x20, 0x530):
        char = chr(code)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if not keep_case:
            base = base.lower()
        if len(base) == 1 and base != char:
            table[char] = base
    for char in _APOSTROPHES:
        table[char] = "'"
    for char in _DASHES + _SPACES:
        table[char] = " "
    for char in _INVISIBLE:
        table[char] = _DROP
    for char in _QUOTES:  # a boundary like any other punctuation; ASCII keeps the fast path
        table[char] = '"'
    table["…"] = "."
    return table


_FOLD = _table(keep_case=False)
_FOLD_KEEP_CASE = _table(keep_case=True)
# Plain printable ASCII but "-" and "`" needs nothing: only the other characters go
# through the table, so text with rarer characters still folds at regular-expression speed.
_SPECIAL = re.compile(r"[^\x20-\x2c\x2e-\x5f\x61-\x7e]")


# The characters French and English press text is made of beyond plain ASCII, replaced
# one by one first: most articles are plain ASCII after that, and take the fast path.
_COMMON = "éèêàâçùûôîïëÉÈÀÇ’‘«»“”–—…\u00a0-\n\t\r"


def _ascii_table(table: dict[str, str]) -> bytes:
    """The table's plain-ASCII part as a bytes.translate table (one byte to one byte)."""
    low = bytes(ord(table.get(chr(code), chr(code))) for code in range(128))
    return low + bytes(range(128, 256))


_ASCII_FOLD = _ascii_table(_FOLD)
_ASCII_KEEP_CASE = _ascii_table(_FOLD_KEEP_CASE)


def _lower_same_length(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # a few characters lower to two ("İ"): keep those as they are, so offsets stay valid
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


@dataclass(frozen=True, slots=True)
class Folded:
    text: str  # folded
    offsets: Sequence[int] | None  # folded index -> original index; None when they are equal

    def original(self, index: int) -> int:
        return index if self.offsets is None else self.offsets[index]


def fold(text: str, *, keep_case: bool = False) -> Folded:
    """Fold ``text`` for matching, keeping the map back to the original offsets.

    The common accented letters, quotes and dashes of press text by plain replaces; then,
    when what is left is plain ASCII (most articles), case and the ASCII dashes and
    spaces in one bytes.translate; otherwise lower case and every character that is not
    plain ASCII through the table (a regular expression finds them). Then the hyphens of
    words broken at a line break dropped with the break, then runs of spaces collapsed to
    one; the offset map is only built when something was dropped or collapsed.
    """
    table = _FOLD_KEEP_CASE if keep_case else _FOLD
    mapped = text
    for char in _COMMON:  # the frequent ones by plain replace (C speed), the rest below
        if char in mapped:
            mapped = mapped.replace(char, table[char])
    if mapped.isascii():  # the usual case once those are gone: one pass over bytes
        ascii_table = _ASCII_KEEP_CASE if keep_case else _ASCII_FOLD
        mapped = mapped.encode("ascii").translate(ascii_table).decode("ascii")
    else:
        if not keep_case:
            mapped = _lower_same_length(mapped)
        mapped = _SPECIAL.sub(lambda m: table.get(m.group(), m.group()), mapped)
    runs = "  " in mapped  # one scan: whether runs of spaces are to be collapsed
    if runs:
        mapped = _join_broken_words(text, mapped, _RUNS_OF_SPACES)
    offsets: list[int] | None = None
    if _DROP in mapped:
        if "\u00ad" in text:
            mapped = _join_broken_words(text, mapped, _SOFT_BREAK)
        mapped, offsets = _squeeze(mapped, _DROPPED_RUNS, keep=0, offsets=None)
        runs = "  " in mapped  # "a \u200b b" makes a run once the invisible one is gone
    if runs:
        mapped, offsets = _squeeze(mapped, _RUNS_OF_SPACES, keep=1, offsets=offsets)
    return Folded(mapped, offsets)


def _join_broken_words(text: str, mapped: str, runs: re.Pattern[str]) -> str:
    """``mapped`` (as long as ``text``) with the hyphen and line break of every word broken
    across lines in ``text`` marked to be dropped; ``runs`` finds where they may be in
    ``mapped`` (a hyphen and a break are a run of spaces there, a soft hyphen is dropped)."""
    pieces: list[str] = []
    position = 0
    for run in runs.finditer(mapped):
        start, end = run.span()
        if end == len(text) or start == 0 or not text[end].islower():
            continue
        if not text[start - 1].isalpha() or text.count("\n", start, end) > 1:
            continue
        if not (text[start] in _BREAK_HYPHENS or (text[start] == "\u00ad" and runs is _SOFT_BREAK)):
            continue
        pieces += [mapped[position:start], _DROP * (end - start)]
        position = end
    if not pieces:
        return mapped
    pieces.append(mapped[position:])
    return "".join(pieces)


def _squeeze(
    text: str, runs: re.Pattern[str], *, keep: int, offsets: list[int] | None
) -> tuple[str, list[int]]:
    """Shorten every run to ``keep`` characters; offsets map the result back through ``offsets``."""
    kept: list[int] = []
    position = 0
    for run in runs.finditer(text):
        kept.extend(range(position, run.start() + keep))
        position = run.end()
    kept.extend(range(position, len(text)))
    kept.append(len(text))
    squeezed = runs.sub(lambda m: m.group()[:keep], text)
    if offsets is not None:
        kept = [offsets[i] for i in kept]
    return squeezed, kept


def fold_alias(alias: str, *, keep_case: bool = False) -> str:
    return fold(alias, keep_case=keep_case).text.strip()
