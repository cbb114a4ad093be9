"""The article-page decisions, without I/O: which pages to fetch, what they add, and how the
items reach the store. (The run's tests cover the same through a real server; these pin
the rules the page reader carries out.)"""

from __future__ import annotations

from pathlib import Path

from pipeline.analysis.extract import Extracted
from pipeline.flow import Item, store_fields
from pipeline.models import Article
from pipeline.pages import apply_pages, choose_pages
from pipeline.run import run
from pipeline.sources.robots import DISALLOWED
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer

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
    applied = apply_pages(plan, results, pending="out of time", source_url=SOURCE)
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
    applied = apply_pages(plan, results, pending="-", source_url=SOURCE)
    assert [it.article.url for it in applied.items] == [tag, items[1].article.url]
    assert applied.note is None


def test_a_canonical_pointing_at_the_home_page_is_ignored() -> None:
    items = [Item(article("usine"))]
    plan = choose_pages(items, known=set(), retry=set(), max_articles=10)
    results = {items[0].article.url: (Extracted(text="Texte.", canonical=f"{SITE}/"), "ok")}
    applied = apply_pages(plan, results, pending="-", source_url=SOURCE)
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


def _feed(site: str, title: str, links: list[str]) -> str:
    items = "".join(
        f"<item><title>{title} {n}</title><link>{link}</link>"
        f"<description>Xenothera, installée à Nantes, annonce un essai.</description></item>"
        for n, link in enumerate(links)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{site}</title><link>http://{site}/</link>{items}</channel></rss>"
    )


def test_one_sites_queued_pages_do_not_hold_back_another_sites_page(
    tmp_path: Path, write_config: WriteConfig, db_path: Path
) -> None:
    # two sites on two loopback addresses: a slow one whose feed names many pages, and a
    # quick one whose single page must not wait for the slow site's queue to drain
    page = (Path(__file__).parent / "fixtures" / "articles" / "en-01-pharma-wire.html").read_bytes()
    slow_root, quick_root = tmp_path / "slow", tmp_path / "quick"
    for root in (slow_root, quick_root):
        root.mkdir()
        (root / "page.html").write_bytes(page)
    with (
        FixtureServer(slow_root, host="127.0.0.1") as slow,
        FixtureServer(quick_root, host="127.0.0.2") as quick,
    ):
        links = [slow.url(f"_/slow/0.2/page.html?n={n}") for n in range(34)]
        (slow_root / "feed.rss").write_text(_feed("slow.example", "Lent", links))
        (quick_root / "feed.rss").write_text(
            _feed("quick.example", "Rapide", [quick.url("page.html")])
        )
        config = write_config(
            sources=[
                {"id": "slow", "kind": "feed", "url": slow.url("feed.rss"), "fetch_articles": True},
                # its feed comes later: the slow site's pages are all queued by then
                {
                    "id": "quick",
                    "kind": "feed",
                    "url": quick.url("_/slow/0.5/feed.rss"),
                    "fetch_articles": True,
                },
            ],
            network={"per_host_concurrency": 2, "source_timeout": 60},
        )
        report = run(config, db_path=db_path)
        assert report.status == "ok", report.summary()
        quick_at = quick.requests_for("page.html")[0].at
        slow_pages = [r for r in slow.requests if "/_/slow/0.2/page.html" in r.path]
    assert len(slow_pages) == 34
    # 2 at a time, 0.2 s each: by the time the quick page is asked for, the slow site has
    # had a few of its pages asked for, not the 19 that would free one of the 16 page slots
    before = sum(1 for r in slow_pages if r.at < quick_at)
    assert before <= 12, f"the quick site's page waited for {before} of the slow site's pages"
