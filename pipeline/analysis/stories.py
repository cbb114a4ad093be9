"""An article's text -> the keys that find its other copies: one story, however many outlets.

Three signals, strongest first:
1. Exact copy: a hash of the normalised main text (title + summary when there is none).
2. Near copy: MinHash over word shingles of the normalised text (datasketch), found
   through locality-sensitive hashing whose band hashes live in SQLite, so a new
   article costs a few indexed lookups however large the store; candidates are then
   checked on their estimated Jaccard similarity (SIMILARITY_THRESHOLD).
3. Same headline: the normalised title (outlet suffix removed) within TITLE_WINDOW.

Publisher boilerplate must not make unrelated articles look alike: known footer lines
("Lire aussi", "The post ... appeared first on", newsletter and cookie text) are
dropped before shingling, and short texts fall back to the title rule only.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from pipeline.analysis.folding import fold

SCHEME = "minhash-word3-v1"  # what made the signatures; stored beside them
SEED = 20261128
NUM_PERM = 128
BANDS = 42
ROWS = 3  # BANDS x ROWS = 126 of the 128 permutations: candidates from about J = 0.3 up
SHINGLE = 3  # words per shingle
SIMILARITY_THRESHOLD = (
    0.3  # estimated Jaccard for "one story": middle of the 0.2-0.4 plateau of make eval
)
MIN_WORDS = 40  # fewer: too short for shingles to mean anything, the title rule decides
TITLE_WINDOW = timedelta(days=3)

_BOILERPLATE = re.compile(
    r"^\s*(lire aussi|a lire aussi|à lire aussi|read also|read more|related|voir aussi|"
    r"abonnez-vous|subscribe|inscrivez-vous|sign up|newsletter|cet article est paru|"
    r"this article (?:was|first) (?:published|appeared)|the post .* appeared first on|"
    r"l'article .* est apparu en premier sur|nous utilisons des cookies|we use cookies|"
    r"tous droits réservés|all rights reserved|©|partager|share this|suivez-nous|follow us)",
    re.IGNORECASE,
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")
# a run of spaces is a start only at its beginning: "a          b" is scanned once
_TITLE_SUFFIX = re.compile(r"(?<!\s)\s+[-|–—]\s+[^-|–—]{2,60}$")


@dataclass(frozen=True, slots=True)
class StoryKey:
    """What the store needs to place an article in a story."""

    text_hash: str
    title_key: str
    signature: bytes | None  # NUM_PERM uint32 values; None for texts too short to shingle
    bands: tuple[int, ...]  # the hash of each LSH band, by band number; empty without a signature
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class Candidate:
    article_id: int
    story_id: int
    text_hash: str
    title_key: str
    signature: bytes | None
    published_at: datetime | None


def clean_text(text: str) -> str:
    """Main text without the lines publishers add to every article."""
    kept = [line for line in text.splitlines() if line.strip() and not _BOILERPLATE.match(line)]
    return "\n".join(kept)


def words(text: str) -> list[str]:
    return [w for w in _NOT_WORD.split(fold(text).text) if w]


MIN_TITLE_WORDS = 4  # shorter headlines ("Communiqué de presse") say nothing about the story


def title_key(title: str) -> str:
    """ "Xenothera lève 12 M€ - Ouest Santé" -> "xenothera leve 12 m": the " - Outlet" suffix is
    dropped only when enough words remain ("Résultats annuels - Valneva" keeps its name);
    too short a headline gives no key."""
    full = words(title or "")
    trimmed = words(_TITLE_SUFFIX.sub("", title or ""))
    chosen = trimmed if len(trimmed) >= MIN_TITLE_WORDS else full
    return " ".join(chosen) if len(chosen) >= MIN_TITLE_WORDS else ""


_PERMUTATIONS: list[object] = []


def _permutations() -> object:
    """The permutations of (NUM_PERM, SEED), drawn once: drawing them costs more than hashing."""
    if not _PERMUTATIONS:
        from datasketch import MinHash

        _PERMUTATIONS.append(MinHash(num_perm=NUM_PERM, seed=SEED).permutations)
    return _PERMUTATIONS[0]


def _band_hash(values: np.ndarray) -> int:
    digest = hashlib.blake2b(values.tobytes(), digest_size=8).digest()
    return int(struct.unpack("<q", digest)[0])  # signed: SQLite integers are signed 64-bit


def story_key(
    *, title: str, summary: str, text: str | None, published_at: datetime | None
) -> StoryKey:
    body = clean_text(text) if text else ""
    tokens = words(body)
    if len(tokens) < MIN_WORDS:
        tokens = words(f"{title}\n{summary}")
        body_for_hash = " ".join(tokens)
        signature: bytes | None = None
        bands: tuple[int, ...] = ()
    else:
        body_for_hash = " ".join(tokens)
        # imported here: datasketch brings scipy (about 55 MB), which only the processes
        # that compute signatures need (the analysis workers, restory), not the run's own
        from datasketch import MinHash

        minhash = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_permutations())
        shingles = {
            " ".join(tokens[i : i + SHINGLE]).encode() for i in range(len(tokens) - SHINGLE + 1)
        }
        minhash.update_batch(list(shingles))
        values = minhash.hashvalues.astype(np.uint32)
        signature = values.tobytes()
        bands = tuple(_band_hash(values[b * ROWS : (b + 1) * ROWS]) for b in range(BANDS))
    return StoryKey(
        text_hash=hashlib.sha1(body_for_hash.encode()).hexdigest(),
        title_key=title_key(title),
        signature=signature,
        bands=bands,
        published_at=published_at,
    )


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures (share of equal values)."""
    first = np.frombuffer(a, dtype=np.uint32)
    second = np.frombuffer(b, dtype=np.uint32)
    return float(np.count_nonzero(first == second)) / len(first)


def choose(key: StoryKey, candidates: Sequence[Candidate]) -> int | None:
    """The story this article belongs to, or None for a new story."""
    best: tuple[float, int] | None = None
    for candidate in candidates:
        if candidate.text_hash == key.text_hash and key.signature is not None:
            score = 2.0  # exact copy of a real text
        elif key.signature is not None and candidate.signature is not None:
            score = similarity(key.signature, candidate.signature)
            if score < SIMILARITY_THRESHOLD:
                score = 0.0
        else:
            score = 0.0
        one_side_without_text = key.signature is None or candidate.signature is None
        if (
            score == 0.0
            and one_side_without_text  # two real texts that MinHash tells apart are two stories
            and key.title_key
            and candidate.title_key == key.title_key
            and _close(key, candidate)
        ):
            score = 1.0  # same headline within a few days
        if score > 0.0 and (best is None or score > best[0]):
            best = (score, candidate.story_id)
    return best[1] if best else None


def _close(key: StoryKey, candidate: Candidate) -> bool:
    if key.published_at is None or candidate.published_at is None:
        return False  # no dates, no window: the headline alone is not enough
    return abs(key.published_at - candidate.published_at) <= TITLE_WINDOW
