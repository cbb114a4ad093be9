"""A fingerprint of what a run stored, so that two stores built from the same corpus can be
compared: the bench prints it, and a speed change must leave it as it was (or explain why).

It covers the articles (canonical URL, title, text), their mentions (member, alias,
count, in title), their funding events and the grouping of articles into stories, named
by canonical URLs rather than row ids (ids depend on the order in which sources finished,
which concurrency changes from one run to the next). Dates of the run itself
(first_seen_at, found_at) are left out: they differ between any two runs, and so is the
bench server's port, which every URL carries (``port``: written as PORT).

Stories depend on the order in which copies arrive (the first copy seen starts the
story, the next ones join it if they are near enough), so that part of the fingerprint
may differ between two runs of the same code on a corpus whose feeds finish in a
different order; the articles, mentions and fundings parts may not.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fingerprint:
    digest: str  # sha256 over everything below, hex
    parts: dict[str, str]  # the same, one digest per part, to see which part differs
    articles: int
    mentions: int
    fundings: int
    stories: int

    def line(self) -> str:
        parts = " ".join(f"{name}={value[:8]}" for name, value in self.parts.items())
        return (
            f"fingerprint {self.digest[:16]} ({self.articles:,} articles, {self.mentions:,} "
            f"mentions, {self.fundings:,} fundings, {self.stories:,} stories; {parts})"
        )


def _digest(rows: list[tuple[object, ...]], port: int | None) -> str:
    if port is not None:
        local = re.compile(rf"(127\.0\.0\.\d+|localhost):{port}\b")
        rows = [
            tuple(local.sub(r"\1:PORT", v) if isinstance(v, str) else v for v in row)
            for row in rows
        ]
    h = hashlib.sha256()
    for row in sorted(rows, key=lambda r: json.dumps(r, ensure_ascii=False)):
        h.update(json.dumps(row, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def fingerprint(db_path: Path, *, port: int | None = None) -> Fingerprint:
    """The store's fingerprint (read-only: the database is opened in mode=ro); ``port``:
    the bench server's, left out of the URLs."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        articles = [
            (url, title, text)
            for url, title, text in conn.execute("SELECT url, title, text FROM articles")
        ]
        mentions = [
            tuple(row)
            for row in conn.execute(
                "SELECT a.url, m.member_id, m.alias, m.count, m.in_title "
                "FROM mentions m JOIN articles a ON a.id = m.article_id"
            )
        ]
        fundings = [
            tuple(row)
            for row in conn.execute(
                "SELECT a.url, f.member_id, f.amount, f.currency, f.amount_eur, f.phrase "
                "FROM fundings f JOIN articles a ON a.id = f.article_id"
            )
        ]
        groups: dict[int, list[str]] = {}
        for story_id, url in conn.execute(
            "SELECT story_id, url FROM articles WHERE story_id IS NOT NULL"
        ):
            groups.setdefault(story_id, []).append(url)
    finally:
        conn.close()
    stories = [tuple(sorted(urls)) for urls in groups.values()]
    parts = {
        "articles": _digest(articles, port),
        "mentions": _digest(mentions, port),
        "fundings": _digest(fundings, port),
        "stories": _digest(stories, port),
    }
    whole = hashlib.sha256("".join(parts.values()).encode()).hexdigest()
    return Fingerprint(whole, parts, len(articles), len(mentions), len(fundings), len(stories))
