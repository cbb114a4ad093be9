"""Canonical URLs: the same page reached through tracking links, fragments and spellings is one key."""

from __future__ import annotations

import pytest

from pipeline.models import Entry
from pipeline.sources.dedupe import canonical_url, to_articles, unwrap_link

BASE = "https://www.ouest-sante.example/economie/xenothera-leve-12-millions.html"


@pytest.mark.parametrize(
    "variant",
    [
        BASE,
        BASE + "?utm_source=rss&utm_medium=feed&utm_campaign=flux#xtor=RSS-1",
        BASE + "?utm_source=newsletter&utm_content=top",
        BASE + "#commentaires",
        BASE + "?fbclid=IwAR0abc&gclid=xyz",
        "HTTPS://WWW.Ouest-Sante.example:443/economie/xenothera-leve-12-millions.html",
        "https://www.ouest-sante.example/economie//xenothera-leve-12-millions.html?mc_cid=1&mc_eid=2",
        "https://www.ouest-sante.example/economie/xenothera-leve-12-millions.html/",
    ],
)
def test_tracking_fragments_ports_and_case_do_not_make_a_new_article(variant: str) -> None:
    assert canonical_url(variant) == BASE


def test_meaningful_query_parameters_are_kept_and_sorted() -> None:
    assert canonical_url("https://x.example/article.php?page=2&id=17&utm_term=x") == (
        "https://x.example/article.php?id=17&page=2"
    )
    assert canonical_url("https://x.example/a?id=1") != canonical_url("https://x.example/a?id=2")


def test_root_keeps_its_slash_and_other_ports_are_kept() -> None:
    assert canonical_url("https://x.example") == "https://x.example/"
    assert canonical_url("http://127.0.0.1:8080/feed/a/") == "http://127.0.0.1:8080/feed/a"


def test_aggregator_links_are_unwrapped_when_they_carry_the_publisher_url() -> None:
    wrapped = "https://news.aggregator.example/rss/articles/CBMi?url=https%3A%2F%2Fpub.example%2Fa%3Fid%3D1"
    assert unwrap_link(wrapped) == "https://pub.example/a?id=1"
    opaque = "https://news.aggregator.example/rss/articles/CBMiXYZ"
    assert unwrap_link(opaque) == opaque
    assert (
        unwrap_link("https://x.example/share?url=javascript:alert(1)")
        == "https://x.example/share?url=javascript:alert(1)"
    )


def test_entries_without_a_link_are_kept_under_a_stable_key() -> None:
    entry = Entry(link=None, title="Naobios signe un contrat", summary="Sans lien.", guid="42")
    first = to_articles("src", [entry])
    again = to_articles("src", [entry])
    assert len(first) == 1 and first[0].url == again[0].url
    assert first[0].url.startswith("urn:veille:src:") and first[0].link == ""


def test_the_same_link_twice_in_one_feed_is_one_article() -> None:
    entries = [
        Entry(link=BASE + "?utm_source=a", title="first", summary="", guid="same"),
        Entry(link=BASE + "#b", title="second", summary="", guid="same"),
    ]
    (article,) = to_articles("src", entries)
    assert article.title == "first" and article.url == BASE
