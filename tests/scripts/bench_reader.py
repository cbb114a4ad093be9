"""reader (the feed reader library on PyPI) over the bench's small feeds, beside veille.

`make bench`'s small section runs this module as a child process, so that reader has its
own interpreter, its own database in its own folder and nothing in common with veille's
runs but the loopback server both read:

    python -m tests.scripts.bench_reader --db DB --urls URLS --result OUT.json --workers 20 [--add]

``--add`` adds every URL of the file (one a line) first, as a first run does; then one
update of every feed with ``workers`` threads. The update passes ``scheduled=False``:
since reader 3.21 ``update_feeds()`` only updates the feeds that are due, and a feed
updated a minute ago is not, so a rerun with the defaults would send no request at all.
OUT.json gets the seconds spent adding and updating, what each feed's update gave (new
entries, not modified, an error by type), the feeds left with a ``last_exception``
(what reader calls broken) and the entries stored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.scripts.bench_common import ROOT, TreeUsage, run_tree

# reader's threads when getting the feeds: veille's default number of requests in flight
# (reader has no per-host limit; it retrieves in threads and parses in the calling one)
READER_WORKERS = 20


def _loopback_only(urls: list[str]) -> None:
    for url in urls:
        host = urlsplit(url).hostname or ""
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            raise SystemExit(f"bench_reader reads loopback addresses only, not {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--urls", type=Path, required=True, help="one feed URL a line")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=READER_WORKERS)
    parser.add_argument("--add", action="store_true", help="add the feeds first (a first run)")
    args = parser.parse_args()
    urls = args.urls.read_text(encoding="utf-8").split()
    _loopback_only(urls)
    # requests would send the feeds' requests to a proxy named in the environment
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]

    from reader import make_reader

    started = time.perf_counter()
    reader = make_reader(str(args.db))
    try:
        added = 0.0
        if args.add:
            for url in urls:
                reader.add_feed(url, exist_ok=True)
            added = time.perf_counter() - started
        outcomes: Counter[str] = Counter()
        new_entries = 0
        update_started = time.perf_counter()
        for result in reader.update_feeds_iter(scheduled=False, workers=args.workers):
            value = result.value
            if value is None:
                outcomes["not modified"] += 1
            elif isinstance(value, Exception):
                outcomes[f"error: {type(value).__name__}"] += 1
            else:
                outcomes["updated" if value.new or value.modified else "unchanged"] += 1
                new_entries += value.new
        updated = time.perf_counter() - update_started
        counts = reader.get_feed_counts()
        entries = reader.get_entry_counts().total
        examples = [
            f"{feed.url}: {feed.last_exception.type_name}: {feed.last_exception.value_str}"[:300]
            for _, feed in zip(range(3), reader.get_feeds(broken=True), strict=False)
            if feed.last_exception is not None
        ]
    finally:
        reader.close()
    args.result.write_text(
        json.dumps(
            {
                "add_seconds": added,
                "update_seconds": updated,
                "feeds": counts.total,
                "broken": counts.broken,
                "entries": entries,
                "new_entries": new_entries,
                "outcomes": dict(outcomes),
                "broken_examples": examples,
            }
        ),
        encoding="utf-8",
    )


@dataclass
class ReaderRun:
    """One child process of reader: what it used, and what it said of its update."""

    usage: TreeUsage
    add_seconds: float = 0.0
    update_seconds: float = 0.0
    feeds: int = 0
    broken: int = 0  # feeds whose last update failed (a last_exception): what reader refused
    entries: int = 0  # entries stored in reader's database after the update
    new_entries: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    broken_examples: list[str] = field(default_factory=list)
    requests: int = 0  # as the bench server counted them
    not_modified: int = 0

    @property
    def errors(self) -> int:
        return sum(n for kind, n in self.outcomes.items() if kind.startswith("error"))

    def line(self) -> str:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.outcomes.items()))
        return (
            f"{self.usage.wall:.1f} s (CPU {self.usage.cpu:.1f} s; update {self.update_seconds:.1f} s"
            + (f", adding the feeds {self.add_seconds:.1f} s" if self.add_seconds else "")
            + f"), {self.requests:,} requests, {self.not_modified:,} answered 304; "
            f"{kinds}; refused (last_exception) {self.broken:,}; {self.entries:,} entries stored"
        )


def run_reader(
    urls: Path, db: Path, *, add: bool, workers: int = READER_WORKERS, server: object = None
) -> ReaderRun:
    """One reader process over the feeds in ``urls``, into ``db`` (a folder of its own).
    ``server`` (a ServerProcess) has its counters reset before and read after."""
    result = db.with_suffix(".result.json")
    result.unlink(missing_ok=True)
    if server is not None:
        server.reset()  # type: ignore[attr-defined]
    command = [
        sys.executable,
        "-m",
        "tests.scripts.bench_reader",
        "--db",
        str(db),
        "--urls",
        str(urls),
        "--result",
        str(result),
        "--workers",
        str(workers),
    ] + (["--add"] if add else [])
    usage = run_tree(command, cwd=ROOT)
    if usage.returncode != 0 or not result.exists():
        raise RuntimeError(f"reader failed ({usage.returncode}): {usage.stderr[-2000:]}")
    data = json.loads(result.read_text(encoding="utf-8"))
    run = ReaderRun(usage=usage, **data)
    if server is not None:
        stats = server.stats()  # type: ignore[attr-defined]
        run.requests = int(stats["requests"])
        run.not_modified = int(stats["not_modified"])
    return run


def read_twice(
    urls: Path, folder: Path, *, workers: int = READER_WORKERS, server: object = None
) -> tuple[ReaderRun, ReaderRun]:
    """reader's first run (add the feeds, update them) and its rerun, into a database in
    ``folder`` (made here: nothing of veille's is in it); prints both."""
    folder.mkdir()
    db = folder / "reader.sqlite"
    first = run_reader(urls, db, add=True, workers=workers, server=server)
    again = run_reader(urls, db, add=False, workers=workers, server=server)
    print(f"    reader: first {first.line()}", flush=True)
    print(f"    reader: rerun {again.line()}", flush=True)
    for example in first.broken_examples:
        print(f"      reader refused {example}", flush=True)
    return first, again


def veille_counts(db: Path) -> tuple[int, int, dict[str, int]]:
    """A veille store's articles, the sources whose last pass failed, and the sources by
    their last status."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        articles = int(conn.execute("SELECT count(*) FROM articles").fetchone()[0])
        statuses = {
            str(status): int(n)
            for status, n in conn.execute(
                "SELECT coalesce(last_status, 'none'), count(*) FROM sources GROUP BY 1"
            )
        }
    finally:
        conn.close()
    failed = sum(n for status, n in statuses.items() if status not in ("ok", "not-modified"))
    return articles, failed, statuses


def version() -> str:
    """reader's version, read in a child process as the runs do (not imported here)."""
    out = subprocess.run(
        [sys.executable, "-c", "import reader; print(reader.__version__)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return out.stdout.strip() or "not installed"


if __name__ == "__main__":
    main()
