"""The article-page decisions, without I/O: which pages to fetch, what they add, and how the
items reach the store. (The run's tests cover the same through a real server; these pin
the rules the page reader carries out.)"""

from __future__ import annotations

from pipeline.extract import Extracted
from pipeline.flow import Item, store_fields
from pipeline.models import Article
from pipeline.pages import apply_pages, choose_pages
from pipeline.robots import DISALLOWED

SITE = "https://www.ouest-sante.example"
SOURCE = f"{SITE}/rss/economie.xml"


def article(slug: str, *, fetchable: bool = True) -> Article:
    return Article(
        url=f"{SITE}/economie/{slug}.html",
        link=f"{SITE}/economie/{slug}.html",
        title=f"Xenothera : {slug.replace('-', ' ')}",
        summary="La biotech nantaise annonce une étape clé.",
        source_id="ouest-sante",
        fetchable=fetchable,
    )


def test_known_pages_are_skipped_retries_kept_and_the_overflow_left_pending() -> None:
    items = [Item(article(s)) for s in ("leve-12-millions", "essai-phase-2", "usine", "embauche")]
    items.append(Item(article("depeche-afp", fetchable=False)))
    known = {items[0].article.url, items[1].article.url}
    plan = choose_pages(items, known=known, retry={items[1].article.url}, max_articles=2)
    # the known page is not fetched again, the one to retry is, the 4th waits its turn
    assert plan.todo == [items[1].article.url, items[2].article.url]
    assert [it.text_status for it in plan.items] == [
        None,
        None,
        None,
        "pending: more than 2 new pages in one run",
        None,
    ]


def test_pages_fill_their_articles_and_failures_are_counted_but_not_robots() -> None:
    items = [Item(article(s)) for s in ("leve-12-millions", "essai-phase-2", "usine", "embauche")]
    urls = [it.article.url for it in items]
    plan = choose_pages(items, known=set(), retry=set(), max_articles=10)
    amp = f"{SITE}/economie/leve-12-millions.html?amp=1"
    results = {
        urls[0]: (Extracted(text="Xenothera lève 12 millions d'euros.", canonical=amp), "ok"),
        urls[1]: (None, DISALLOWED),
        urls[2]: (None, f"error: {urls[2]}: HTTP 500"),
        urls[3]: None,  # still in flight when the source's time ran out
    }
    applied = apply_pages(plan, results, pending="pending: out of time", source_url=SOURCE)
    first, robots, failed, late = applied.items
    assert first.article.text == "Xenothera lève 12 millions d'euros."
    assert first.article.url == amp and first.article.aliases == (urls[0],)
    assert first.text_status == "ok"
    assert (robots.text_status, failed.text_status) == (DISALLOWED, f"error: {urls[2]}: HTTP 500")
    assert late.text_status == "pending: out of time" and late.article.text is None
    assert applied.fetched == 3
    assert applied.note == (
        f"1 of 3 article pages failed, e.g. error: {urls[2]}: HTTP 500; "
        "1 article pages left for the next run (out of time)"
    )


def test_two_entries_naming_one_canonical_page_stay_two_articles() -> None:
    items = [Item(article("tag-biotech-1")), Item(article("tag-biotech-2"))]
    tag = f"{SITE}/tag/biotech"
    plan = choose_pages(items, known=set(), retry=set(), max_articles=10)
    results = {it.article.url: (Extracted(text="Texte.", canonical=tag), "ok") for it in plan.items}
    applied = apply_pages(plan, results, pending="pending: -", source_url=SOURCE)
    assert [it.article.url for it in applied.items] == [tag, items[1].article.url]
    assert applied.note is None


def test_a_canonical_pointing_at_the_home_page_is_ignored() -> None:
    items = [Item(article("usine"))]
    plan = choose_pages(items, known=set(), retry=set(), max_articles=10)
    results = {items[0].article.url: (Extracted(text="Texte.", canonical=f"{SITE}/"), "ok")}
    applied = apply_pages(plan, results, pending="pending: -", source_url=SOURCE)
    assert applied.items[0].article.url == items[0].article.url
    assert applied.items[0].article.aliases == ()


def test_store_fields_key_each_item_by_its_final_url() -> None:
    done = Item(article("usine"), text_status="ok", analysis_error="not analysed: timeout")
    waiting = Item(article("embauche"), text_status="pending: out of time")
    fields = store_fields([done, waiting, Item(article("essai-phase-2"))])
    assert [a.url for a in fields.articles] == [
        done.article.url,
        waiting.article.url,
        f"{SITE}/economie/essai-phase-2.html",
    ]
    assert fields.text_status == {
        done.article.url: "ok",
        waiting.article.url: "pending: out of time",
    }
    assert fields.analysis_errors == {done.article.url: "not analysed: timeout"}
    assert fields.analyses == {} and fields.story_keys == {}
