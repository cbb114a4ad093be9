"""`make compat`: what veille stores from real-world feed files, beside what bare feedparser finds.

1. collect: the test feeds that feedparser, reader and podcastparser ship in their source
   distributions (`pip download --no-binary :all: feedparser==6.0.11`, ...), unpacked under
   the cache, ~/.cache/veille-compat by default (nothing downloaded is kept in the
   repository), plus the feeds in
   tests/fixtures/compat/ written after the cases those suites cover (reddit's Atom,
   feedburner, JSON Feed 1.0 and 1.1, which feedparser 6 does not read), and veille's
   own test and demo feeds.
2. reference: bare feedparser on the same bytes, with the headers the server sends
   (for a JSON Feed, the spec: each item's `url`, else `external_url`). A file counts
   when the reference finds at least one http(s) entry link in it; feedparser's own
   suites are full of files that test one element and carry no entry at all.
3. veille: every file served on 127.0.0.1, one feed source each, article pages not
   fetched, one `run` into a temporary SQLite file.
4. compare: a reference link is found when veille stored the same canonical URL for that
   source (its article URL, the link as the feed gave it, or an alias); feedburner's
   origLink stands for the feedburner link it replaces. Printed: coverage, what was lost
   and why, every refused file grouped by its reason, internal errors, time.

Links the reference makes up are left out and counted apart: feedparser turns a GUID
that is not a URL ("12345", "t3_abc") into a link on the feed's own host, which names no
page, and veille keeps such an entry under a key of its own instead.

    python -m tests.scripts.compat [--cache DIR] [--limit N] [--show N]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ruamel.yaml import YAML

from pipeline.run import run
from pipeline.settings.config import load_config
from pipeline.sources.dedupe import canonical_url
from tests.fixture_server import CONTENT_TYPES, FixtureServer

ROOT = Path(__file__).resolve().parents[2]
OWN_FEEDS = ROOT / "tests" / "fixtures" / "compat"
DEFAULT_CACHE = Path.home() / ".cache" / "veille-compat"
SUFFIXES = (".xml", ".rss", ".atom", ".rdf", ".json")
# (source distribution, its folder of test feeds, which files are feeds)
SUITES = (
    ("feedparser==6.0.11", "tests", SUFFIXES),
    ("reader==3.26", "tests/data", SUFFIXES),  # its .json files are JSON Feeds
    ("podcastparser==0.6.11", "tests/data", (".rss", ".xml", ".atom")),  # .json: expectations
)
TARGET = 0.99
OWN = ("own/", "fixtures/", "demo/")  # the suites written for veille
OTHER_BASE = "http://elsewhere.invalid/other/feed.xml"  # tells a relative GUID from a URL
_INTERNAL = re.compile(r"\b(failed|died)\b.*?\b[A-Z][A-Za-z]+(Error|Exception)\b|\bdied\b")


@dataclass
class FileResult:
    path: str  # relative to the corpus root
    source_id: str
    reference: set[str] = field(default_factory=set)  # canonical URLs
    equivalents: dict[str, str] = field(default_factory=dict)  # canonical -> another form
    made_up: int = 0  # links feedparser made from non-URL GUIDs
    non_http: int = 0  # javascript:, mailto:, tag: ... links


def collect(cache: Path) -> list[tuple[str, Path, tuple[str, ...]]]:
    """Each suite's test folder, its source distribution downloaded once into the cache."""
    folders: list[tuple[str, Path, tuple[str, ...]]] = []
    for spec, folder, suffixes in SUITES:
        name = spec.replace("==", "-")
        tests = cache / name / folder
        if not tests.is_dir():
            archive = cache / f"{name}.tar.gz"
            if not archive.exists():
                print(f"compat: downloading the {spec} source distribution into {cache}")
                cache.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "--quiet",
                        "--no-binary",
                        ":all:",
                        "--no-deps",
                        spec,
                        "-d",
                        str(cache),
                    ],
                    check=True,
                )
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if m.name.startswith(f"{name}/{folder}/")]
                tar.extractall(cache, members=members, filter="data")
        folders.append((spec.split("==")[0], tests, suffixes))
    folders.append(("own", OWN_FEEDS, SUFFIXES))
    # veille's own test and demo feeds (the hostile ones included)
    folders.append(("fixtures", ROOT / "tests" / "fixtures" / "feeds", SUFFIXES))
    folders.append(("demo", ROOT / "tests" / "fixtures" / "demo" / "feeds", SUFFIXES))
    return folders


def _canonical(link: str) -> str | None:
    try:
        return canonical_url(link)
    except ValueError:
        return None


def _http(link: Any) -> bool:
    return isinstance(link, str) and link.lower().startswith(("http://", "https://"))


def reference_xml(data: bytes, url: str, content_type: str, result: FileResult) -> None:
    import feedparser

    def parse(location: str) -> Any:
        headers = {"content-location": location, "content-type": content_type}
        return feedparser.parse(io.BytesIO(data), response_headers=headers)

    parsed = parse(url)
    if not parsed.entries:
        return
    other = parse(OTHER_BASE)
    other_links = [e.get("link") for e in other.entries]
    for index, entry in enumerate(parsed.entries):
        link = entry.get("link")
        if not link:
            continue
        moved = index < len(other_links) and other_links[index] != link
        hrefs = [item.get("href") for item in entry.get("links") or ()]
        if entry.get("guidislink") and link not in hrefs and moved:
            result.made_up += 1  # an id that is not a URL, resolved against the feed's host
            continue
        if not _http(link):
            result.non_http += 1
            continue
        key = _canonical(link)
        if key is None:
            continue
        result.reference.add(key)
        original = entry.get("feedburner_origlink")
        if _http(original) and (alias := _canonical(original)):
            result.equivalents[key] = alias


def reference_json(data: bytes, url: str, result: FileResult) -> None:
    """The JSON Feed spec read plainly: an item's url, else its external_url."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        return
    home = document.get("home_page_url")
    base: str = home if isinstance(home, str) and _http(home) else url
    for item in document["items"]:
        if not isinstance(item, dict):
            continue
        for key in ("url", "external_url"):
            value = item.get(key)
            if isinstance(value, str) and value:
                link = urljoin(base, value)
                if _http(link) and (canonical := _canonical(link)):
                    result.reference.add(canonical)
                break


def stored_links(db_path: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(db_path)
    try:
        found: dict[str, set[str]] = {}
        query = """
            SELECT s.source_id, a.url, s.link FROM article_sources s
            JOIN articles a ON a.id = s.article_id
            UNION ALL
            SELECT s.source_id, u.url, NULL FROM article_sources s
            JOIN article_urls u ON u.article_id = s.article_id
        """
        for source_id, url, link in conn.execute(query):
            keys = found.setdefault(source_id, set())
            keys.add(url)
            if link and (canonical := _canonical(link)):
                keys.add(canonical)
        return found
    finally:
        conn.close()


def source_rows(db_path: Path) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(db_path)
    try:
        return {
            row[0]: (row[1], row[2])
            for row in conn.execute("SELECT id, last_status, last_error FROM sources")
        }
    finally:
        conn.close()


def reason_of(error: str) -> str:
    """An error message without what is particular to one file: a reason to group by."""
    reason = re.sub(r"line \d+, column \d+", "line N, column N", error)
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    reason = re.sub(r"\d[\d,.]*", "N", reason)
    return reason[:140]


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    options.add_argument("--limit", type=int, default=0, help="read only the first N files")
    options.add_argument("--show", type=int, default=15, help="lost links and files to print")
    args = options.parse_args(argv)
    started = time.monotonic()
    suites = collect(args.cache)
    work = Path(tempfile.mkdtemp(prefix="veille-compat-"))
    try:
        return _compare(suites, work, args, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _corpus(suites: list[tuple[str, Path, tuple[str, ...]]], www: Path) -> list[str]:
    """Copy the files to serve under www/<suite>/...; their paths."""
    paths: list[str] = []
    for prefix, root, suffixes in suites:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in suffixes:
                relative = f"{prefix}/{path.relative_to(root).as_posix()}"
                target = www / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                paths.append(relative)
    return paths


def _compare(
    suites: list[tuple[str, Path, tuple[str, ...]]],
    work: Path,
    args: argparse.Namespace,
    started: float,
) -> int:
    www = work / "www"
    paths = _corpus(suites, www)
    if args.limit:
        paths = paths[: args.limit]
    with FixtureServer(www, conditional=False) as server:
        results: list[FileResult] = []
        for number, path in enumerate(paths):
            result = FileResult(path, f"f{number:05d}")
            data = (www / path).read_bytes()
            url = server.url(path)
            if path.endswith(".json"):
                reference_json(data, url, result)
            else:
                content_type = CONTENT_TYPES.get(Path(path).suffix, "text/html; charset=utf-8")
                reference_xml(data, url, content_type, result)
            results.append(result)
        reference_time = time.monotonic() - started
        config_path = work / "sources.yaml"
        document = {
            "cluster": {"name": "Atlanpole Biotherapies"},
            "members": [{"name": "Valneva"}],
            "sources": [
                {
                    "id": r.source_id,
                    "kind": "feed",
                    "url": server.url(r.path),
                    "fetch_articles": False,
                }
                for r in results
            ],
            "network": {
                "allow_private": True,
                "per_host_concurrency": 8,
                "per_host_delay": 0,
                "retries": 0,
                "run_timeout": 1700,
            },
        }
        with config_path.open("w", encoding="utf-8") as handle:
            YAML().dump(document, handle)
        config = load_config(config_path)
        db_path = work / "compat.db"
        run_started = time.monotonic()
        report = run(config, db_path=db_path)
        run_time = time.monotonic() - run_started
    stored = stored_links(db_path)
    states = source_rows(db_path)
    return _print(results, stored, states, report.status, reference_time, run_time, started, args)


def _print(
    results: list[FileResult],
    stored: dict[str, set[str]],
    states: dict[str, tuple[str, str | None]],
    run_status: str,
    reference_time: float,
    run_time: float,
    started: float,
    args: argparse.Namespace,
) -> int:
    counted = [r for r in results if r.reference]
    expected = found = 0
    by_suite: dict[str, list[int]] = {}  # suite -> [found, expected]
    lost: list[tuple[str, str, str]] = []
    for result in counted:
        have = stored.get(result.source_id, set())
        tally = by_suite.setdefault(result.path.split("/", 1)[0], [0, 0])
        for link in sorted(result.reference):
            expected += 1
            tally[1] += 1
            if link in have or result.equivalents.get(link) in have:
                found += 1
                tally[0] += 1
            else:
                status, error = states.get(result.source_id, ("?", None))
                lost.append((result.path, link, error or f"source {status}, link not stored"))
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    internal: list[tuple[str, str]] = []
    for result in results:
        status, error = states.get(result.source_id, ("?", None))
        if status == "error" and error:
            reason = reason_of(error)
            errors[reason] += 1
            examples.setdefault(reason, result.path)
            if _INTERNAL.search(error):
                internal.append((result.path, error))
    coverage = found / expected if expected else 0.0
    print(
        f"compat: {len(results)} files read ({sum(1 for r in results if r.path.startswith(OWN))}"
        f" written for veille); {len(counted)} count: bare feedparser (or the JSON Feed spec)"
        " finds at least one http(s) entry link in them"
    )
    print(
        f"compat: links left out of the count: {sum(r.made_up for r in results)} made up by"
        f" feedparser from a GUID that is not a URL, {sum(r.non_http for r in results)} not"
        " http(s) (javascript:, mailto:, tag: ...)"
    )
    print(
        f"compat: coverage {found}/{expected} = {coverage:.2%} of the reference links stored"
        f" (target {TARGET:.0%}); run status {run_status}"
    )
    print(
        "compat: by suite: "
        + ", ".join(f"{name} {f}/{e}" for name, (f, e) in sorted(by_suite.items()))
    )
    if lost:
        print(f"compat: {len(lost)} links lost, by file (first {args.show}):")
        for path, link, why in lost[: args.show]:
            print(f"  {path}: {link}  [{why}]")
    refused = sum(errors.values())
    print(f"compat: {refused} files refused, by reason:")
    for reason, count in errors.most_common():
        print(f"  {count:5d}  {reason}   e.g. {examples[reason]}")
    print(f"compat: {len(internal)} internal errors")
    for path, error in internal[: args.show]:
        print(f"  {path}: {error}")
    total = time.monotonic() - started
    print(
        f"compat: time {total:.1f} s (reference {reference_time:.1f} s, "
        f"veille run of {len(results)} sources {run_time:.1f} s)"
    )
    return 0 if coverage >= TARGET and not internal else 1


if __name__ == "__main__":
    sys.exit(main())
