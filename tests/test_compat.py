"""The reference `make compat` measures veille against: what counts as a link bare feedparser finds."""

from __future__ import annotations

import json

from tests.scripts.compat import FileResult, reason_of, reference_json, reference_xml

URL = "http://127.0.0.1:8000/own/feed.xml"


def test_a_link_after_a_non_url_id_counts_and_a_link_made_from_a_guid_does_not() -> None:
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>r</title>'
        b'<entry><id>t3_abc</id><title>a</title><link href="https://r.example/a"/></entry>'
        b"<entry><id>t3_def</id><title>b</title></entry>"
        b'<entry><id>https://r.example/c</id><title>c</title><link href="javascript:x()"/></entry>'
        b"</feed>"
    )
    result = FileResult("own/feed.xml", "f1")
    reference_xml(data, URL, "application/atom+xml", result)
    assert result.reference == {"https://r.example/a"}
    assert result.made_up == 1 and result.non_http == 1


def test_a_permalink_guid_counts_and_feedburner_origlink_stands_for_its_link() -> None:
    data = (
        b'<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0">'
        b"<channel><title>t</title>"
        b"<item><title>a</title><guid>https://s.example/p1</guid></item>"
        b"<item><title>b</title><link>https://fb.example/~r/x</link>"
        b"<feedburner:origLink>https://s.example/p2</feedburner:origLink></item>"
        b"</channel></rss>"
    )
    result = FileResult("own/feed.xml", "f1")
    reference_xml(data, URL, "application/rss+xml", result)
    assert result.reference == {"https://s.example/p1", "https://fb.example/~r/x"}
    assert result.equivalents == {"https://fb.example/~r/x": "https://s.example/p2"}


def test_json_feed_reference_reads_url_then_external_url_against_home_page() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "home_page_url": "https://j.example/blog/",
        "items": [{"url": "a.html"}, {"external_url": "https://k.example/b"}, {"id": "c"}, 3],
    }
    result = FileResult("own/feed.json", "f1")
    reference_json(json.dumps(document).encode(), URL, result)
    assert result.reference == {"https://j.example/blog/a.html", "https://k.example/b"}


def test_errors_are_grouped_without_what_is_particular_to_one_file() -> None:
    assert reason_of("not a valid feed: line 7, column 0: no element found") == (
        "not a valid feed: line N, column N: no element found"
    )
    assert reason_of("refused: parameter entity 'pe' in DOCTYPE") == reason_of(
        "refused: parameter entity 'other' in DOCTYPE"
    )
