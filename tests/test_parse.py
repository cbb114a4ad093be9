"""The parse stage: feeds of every flavour in, plain-text entries out; hostile feeds refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import ParseError
from pipeline.sources.parse import (
    guard_feed_bytes,
    parse_feed_bytes,
    parse_feed_guarded,
    plain_text,
)
from pipeline.sources.sandbox import Limits
from tests.conftest import DEMO_FEEDS, FEEDS
from tests.fixture_server import entity_bomb

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def parse_file(path: Path, url: str = "https://feeds.example/feed") -> object:
    return parse_feed_bytes(path.read_bytes(), headers={}, url=url, now=NOW)


@pytest.mark.parametrize(
    ("name", "version", "count"),
    [
        ("ouest-sante.rss", "rss20", 6),
        ("biotech-daily.atom", "atom10", 6),
        ("labnews-fr.rdf", "rss10", 5),
        ("nantes-eco.atom", "atom10", 5),
    ],
)
def test_rss_and_atom_flavours_parse(name: str, version: str, count: int) -> None:
    feed = parse_feed_bytes(
        (DEMO_FEEDS / name).read_bytes(), headers={}, url="https://x.example/f", now=NOW
    )
    assert feed.version == version
    assert len(feed.entries) == count
    assert all(e.title and e.link and e.link.startswith("https://") for e in feed.entries)


def test_rss_091_with_netscape_doctype_and_latin1() -> None:
    feed = parse_feed_bytes(
        (FEEDS / "rss091.xml").read_bytes(), headers={}, url="https://x.example/", now=NOW
    )
    assert feed.version == "rss091n"
    (entry,) = feed.entries
    assert entry.summary.startswith("Le spécialiste de la radioprotection")
    assert entry.published_at is None and entry.date_source == "none"


def test_declared_latin1_feed_is_decoded() -> None:
    feed = parse_file(DEMO_FEEDS / "sante-grand-ouest.rss")
    text = " ".join(e.title + e.summary for e in feed.entries)
    assert "é" in text and "Ã©" not in text


def test_feed_that_only_declares_nbsp_still_parses() -> None:
    feed = parse_file(FEEDS / "nbsp-doctype.rss")
    assert feed.title == "Biotech Ouest"  # plain text: the non-breaking space is a space
    (entry,) = feed.entries
    assert entry.title == "Valneva : résultats positifs pour son vaccin"
    assert "données" in entry.summary


def test_entity_expansion_feed_is_refused_before_parsing() -> None:
    data = entity_bomb()
    assert b"<!ENTITY big\n" in data  # the multi-line DOCTYPE form of the trap
    with pytest.raises(ParseError, match="entity 'big' is 100,000 bytes long"):
        guard_feed_bytes(data)


@pytest.mark.parametrize(
    ("subset", "reason"),
    [
        ('<!ENTITY % pe "x">', "parameter entity"),
        ('<!ENTITY ext SYSTEM "file:///etc/passwd">', "external entity"),
        ('<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">', "refers to other entities"),
        ('<!ENTITY tag "<b>x</b>">', "contains markup"),
        ("%pe;", "parameter entity reference"),
        ('<!ENTITY a "x"', "never closed|malformed"),
    ],
)
def test_dangerous_doctypes_are_refused(subset: str, reason: str) -> None:
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{subset}\n]>\n<rss version="2.0"><channel/></rss>'
    )
    with pytest.raises(ParseError, match=reason):
        guard_feed_bytes(data.encode())


def test_many_references_to_a_small_entity_are_refused_past_the_budget() -> None:
    refs = "&w;" * 200_000
    data = f'<!DOCTYPE rss [<!ENTITY w "0123456789">]><rss version="2.0"><channel><title>{refs}</title></channel></rss>'
    with pytest.raises(ParseError, match="would add more than"):
        guard_feed_bytes(data.encode())


def test_utf16_with_bom_and_nul_bytes() -> None:
    text = (DEMO_FEEDS / "labnews-fr.rdf").read_text(encoding="utf-8")
    utf16 = b"\xff\xfe" + text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16-le")
    feed = parse_feed_bytes(utf16, headers={}, url="https://x.example/", now=NOW)
    assert len(feed.entries) == 5
    with_nuls = (DEMO_FEEDS / "ouest-sante.rss").read_bytes().replace(b"<item>", b"<item>\x00", 2)
    assert (
        len(parse_feed_bytes(with_nuls, headers={}, url="https://x.example/", now=NOW).entries) == 6
    )


def test_dates_fall_back_and_absurd_dates_are_dropped() -> None:
    feed = parse_file(FEEDS / "dates.atom")
    by_title = {e.title: e for e in feed.entries}
    assert by_title["Only updated"].published_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert by_title["Only updated"].date_source == "updated"
    assert by_title["Year 9999"].published_at is None
    assert by_title["Year 1900, but updated later"].published_at == datetime(
        2026, 11, 19, 8, 30, tzinfo=UTC
    )
    assert by_title["Unparseable"].published_at is None
    assert by_title["Published with an offset"].published_at == datetime(
        2026, 11, 18, 7, 0, tzinfo=UTC
    )
    assert by_title["Published with an offset"].date_source == "published"


def test_markup_and_script_never_survive_and_bad_links_are_dropped() -> None:
    feed = parse_file(FEEDS / "hostile.rss", url="https://hostile.example/feed.xml")
    assert feed.title == "Hostile markup"
    by_title = {e.title: e for e in feed.entries}
    clean = by_title["Clean Cells recrute"]  # the script's text is gone with its tag
    assert "<" not in clean.summary and "alert" not in clean.summary and "evil" not in clean.summary
    assert clean.summary == "Bonjour lien"
    assert by_title["A javascript link"].link is None
    assert by_title["A data link"].link is None
    assert (
        by_title["A relative link"].link == "https://hostile.example/actualites/relative-link.html"
    )
    # feedparser turns a non-URL GUID into a link on the feed's host: not a page
    assert by_title["A GUID that is not a URL"].link is None


def test_relative_links_resolve_against_xml_base() -> None:
    feed = parse_file(DEMO_FEEDS / "nantes-eco.atom", url="https://elsewhere.example/feed")
    assert all(
        e.link and e.link.startswith("https://www.nantes-eco.example/") for e in feed.entries
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (
            b"<!DOCTYPE html><html><head><title>x</title></head><body>Page</body></html>",
            "HTML page",
        ),
        (b"plain words, no markup at all", "not XML"),
    ],
)
def test_things_that_are_not_feeds_are_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed_bytes(body, headers={}, url="https://x.example/")


def test_truncated_feed_keeps_what_is_usable_and_says_it_is_malformed() -> None:
    feed = parse_file(DEMO_FEEDS / "broken-truncated.xml")
    assert feed.bozo
    assert len(feed.entries) >= 1


def test_guarded_parse_runs_in_a_child_and_returns_entries() -> None:
    data = (DEMO_FEEDS / "pharma-wire.rss").read_bytes()
    feed = parse_feed_guarded(
        data, headers={"content-type": "application/rss+xml"}, url="https://x.example/"
    )
    assert len(feed.entries) == 6


def test_guarded_parse_refuses_the_entity_bomb() -> None:
    with pytest.raises(ParseError, match="entity expansion"):
        parse_feed_guarded(entity_bomb(), headers={}, url="https://x.example/")


def test_guarded_parse_is_cut_off_past_its_time_limit() -> None:
    items = "".join(
        f"<item><title>t{i}</title><link>https://x.example/{i}</link><description>{'mot ' * 200}</description></item>"
        for i in range(3000)
    )
    data = f'<rss version="2.0"><channel><title>big</title>{items}</channel></rss>'.encode()
    with pytest.raises(ParseError, match="longer than"):
        parse_feed_guarded(data, headers={}, url="https://x.example/", limits=Limits(timeout=0.05))


def test_guarded_parse_is_cut_off_past_its_memory_limit() -> None:
    # 20,000 entries with 2 KB summaries: far more than 128 MB once parsed into Python objects
    items = "".join(
        f"<item><title>t{i}</title><link>https://x.example/{i}</link><description>{'x' * 2000}</description></item>"
        for i in range(20_000)
    )
    data = f'<rss version="2.0"><channel><title>big</title>{items}</channel></rss>'.encode()
    with pytest.raises(ParseError, match="more than 32 MB of memory"):
        parse_feed_guarded(
            data, headers={}, url="https://x.example/", limits=Limits(timeout=60, memory_mb=32)
        )


def test_plain_text_bounds_length_at_a_word() -> None:
    text = plain_text("<p>" + "Valneva " * 100 + "</p>", limit=50)
    assert len(text) <= 51 and text.endswith("…") and "Valne…" not in text


@pytest.mark.parametrize(
    "prefix",
    [
        b"<!-- <a href='x'> a comment with markup before the DOCTYPE -->\n",
        b"<?xml-stylesheet href='s.xsl' type='text/xsl'?>\n<!-- <rss> -->\n",
        b"junk before the prolog\n",
        b'<rss version="2.0"/>\n',
    ],
)
def test_entity_bomb_is_refused_whatever_precedes_its_doctype(prefix: bytes) -> None:
    data = entity_bomb()
    declaration, rest = data.split(b"\n", 1)
    with pytest.raises(ParseError, match="refused"):
        guard_feed_bytes(declaration + b"\n" + prefix + rest)


def test_invalid_character_references_are_replaced_not_fatal() -> None:
    data = (
        (DEMO_FEEDS / "ouest-sante.rss").read_bytes().replace(b"<title>", b"<title>&#xD800;&#0;", 3)
    )
    feed = parse_feed_bytes(data, headers={}, url="https://x.example/", now=NOW)
    assert len(feed.entries) == 6
    assert any("\ufffd" in e.title for e in feed.entries) or "\ufffd" in feed.title
