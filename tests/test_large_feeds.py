"""Feeds past the entry cap: the newest entries kept, read fast, with the guarded path's fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.models import ParsedFeed
from pipeline.sources.parse import guard_feed_bytes, parse_feed_bytes, parse_feed_guarded
from pipeline.sources.parse.feed import MAX_ENTRIES
from pipeline.sources.parse.large import keep_newest
from pipeline.sources.sandbox import Limits
from tests.conftest import DEMO_FEEDS, FEEDS, FIXTURES
from tests.scripts.large_feeds import large_atom, large_rss

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
# every well-formed XML fixture with two entries or more (the fast path needs more
# entries than the cap, so each is read with a cap below its count)
WELL_FORMED = [
    *(
        DEMO_FEEDS / name
        for name in (
            "atlanpole-actus.rss",
            "biotech-daily.atom",
            "invest-bio.rss",
            "labnews-fr.rdf",
            "nantes-eco.atom",
            "ouest-sante.rss",
            "pharma-wire.rss",
            "presse-regionale.rss",
            "sante-grand-ouest.rss",  # declared ISO-8859-1
        )
    ),
    FEEDS / "dates.atom",
    FEEDS / "hostile.rss",
    *sorted((FIXTURES / "compat").glob("*.[ar]*")),  # .atom, .rss, .rdf
]


def parse(data: bytes, url: str, cap: int) -> ParsedFeed:
    return parse_feed_bytes(data, headers={}, url=url, max_entries=cap, now=NOW)


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_the_fast_path_gives_the_guarded_paths_fields(path: Path) -> None:
    data = path.read_bytes()
    url = f"https://feeds.example/{path.name}"
    full = parse(data, url, 10_000)
    total = len(full.entries) + full.skipped
    for cap in (1, total - 1):
        # the fast path is taken: entries are taken out before feedparser reads the rest
        assert keep_newest(guard_feed_bytes(data), cap)[1] == total - cap
        cut = parse(data, url, cap)
        assert (cut.title, cut.version, cut.lang) == (full.title, full.version, full.lang)
        assert len(cut.entries) + cut.skipped == total
        # every entry kept is exactly the entry the guarded path makes of it
        for entry in cut.entries:
            assert entry in full.entries, entry
        # and the newest are kept: no entry left out is newer than one kept
        kept = [e.published_at for e in cut.entries if e.published_at]
        dropped = [e.published_at for e in full.entries if e not in cut.entries and e.published_at]
        if kept and dropped:
            assert min(kept) >= max(dropped)


def test_an_oldest_first_feed_past_the_cap_keeps_its_newest_entries() -> None:
    feed = parse(
        large_rss(MAX_ENTRIES + 1_000, oldest_first=True), "https://d.example/f", MAX_ENTRIES
    )
    assert len(feed.entries) == MAX_ENTRIES and feed.skipped == 1_000
    titles = {e.title for e in feed.entries}
    assert "Dépêche 0 : Valneva et Xenothera à Nantes" in titles  # the newest
    assert f"Dépêche {MAX_ENTRIES - 1} : Valneva et Xenothera à Nantes" in titles
    assert f"Dépêche {MAX_ENTRIES} : Valneva et Xenothera à Nantes" not in titles  # older
    # kept in the feed's own order
    assert feed.entries[0].title.startswith(f"Dépêche {MAX_ENTRIES - 1} ")


def test_undated_entries_past_the_cap_are_kept_in_document_order_after_dated_ones() -> None:
    items = "".join(
        f"<item><title>Sans date {i}</title><link>https://d.example/u{i}</link></item>"
        for i in range(4)
    ) + (
        "<item><title>Datée</title><link>https://d.example/d</link>"
        "<pubDate>Wed, 25 Nov 2026 10:00:00 +0100</pubDate></item>"
    )
    data = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    feed = parse(data, "https://d.example/f", 3)
    assert [e.title for e in feed.entries] == ["Sans date 0", "Sans date 1", "Datée"]
    assert feed.skipped == 2


def test_an_ill_formed_feed_past_the_cap_keeps_its_first_entries_as_before() -> None:
    items = "".join(
        f"<item><title>Entrée {i} & co</title><link>https://d.example/{i}</link>"
        f"<pubDate>Wed, {10 + i} Nov 2026 10:00:00 +0100</pubDate></item>"
        for i in range(12)
    )
    data = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    assert keep_newest(guard_feed_bytes(data), 5) == (guard_feed_bytes(data), 0)  # bare "&"
    feed = parse(data, "https://d.example/f", 5)
    assert feed.bozo and feed.skipped == 7
    assert [e.link for e in feed.entries] == [f"https://d.example/{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("make", "newest"),
    [
        (large_rss, "Dépêche 0 : Valneva et Xenothera à Nantes"),
        (large_atom, "Dispatch 0: Valneva and Xenothera"),
    ],
    ids=["rss", "atom"],
)
def test_a_20000_entry_feed_is_read_within_the_default_parse_limits(
    make: Callable[[int], bytes], newest: str
) -> None:
    # the default limits (30 s, 256 MB): about 3 s alone on this machine, where feedparser
    # reading all 20,000 entries took 7 to 14 s
    feed = parse_feed_guarded(
        make(20_000), headers={}, url="https://www.depeches.example/feed", limits=Limits()
    )
    assert len(feed.entries) == MAX_ENTRIES and feed.skipped == 15_000
    assert feed.entries[0].title == newest
