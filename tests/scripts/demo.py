"""`make demo`: serve the bundled corpus on 127.0.0.1, run the pipeline twice into storage/demo.db,
then write this week's digest and send it to an SMTP server on loopback. The runs send
alerts to a webhook receiver on loopback, which prints what it receives.

Offline end to end: the members are those of sources.yaml plus the cluster's directory
(tests/fixtures/demo/annuaire.csv, imported as `veille members import` does); the sources
point at a local server that serves tests/fixtures/demo/feeds and misbehaves for a few of them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML

from pipeline.outputs.digest import Week
from pipeline.settings.config import load_config, slugify
from tests.alert_receiver import AlertReceiver
from tests.fixture_server import FixtureServer, closed_port
from tests.newsroom_web import demo_sites, serve
from tests.smtp_server import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
FEEDS = ROOT / "tests" / "fixtures" / "demo" / "feeds"
WEB = ROOT / "tests" / "fixtures" / "demo" / "web"
DEMO_DIR = ROOT / "storage" / "demo"
DEMO_DB = ROOT / "storage" / "demo.db"
DEMO_DIGEST = ROOT / "storage" / "demo-digest.html"
DEMO_REPORT = ROOT / "storage" / "demo-report"  # .html, .pdf and .json
# the corpus's outlets, named and tiered as sources.yaml's `outlets:` does for real ones
DEMO_OUTLETS = [
    {"name": "Ouest Santé", "tier": "regional", "match": ["ouest-sante.example"]},
    {"name": "Nantes Éco", "tier": "regional", "match": ["nantes-eco.example"]},
    {"name": "Santé Grand Ouest", "tier": "regional", "match": ["Santé Grand Ouest (ISO-8859-1)"]},
    {"name": "Loire Biotech Hebdo", "tier": "regional"},
    {"name": "Pharma Wire", "tier": "international", "match": ["pharma-wire.example"]},
    {"name": "Biotech Daily", "tier": "international"},
    {"name": "LabNews", "tier": "trade", "match": ["LabNews FR"]},
    {"name": "Invest Bio", "tier": "trade"},
]
# the cluster's directory as the CRM exports it for Excel: semicolons, Windows-1252
DEMO_DIRECTORY = ROOT / "tests" / "fixtures" / "demo" / "annuaire.csv"

# (id, name, lang, path on the local server); the cluster's own news feed is not here:
# `veille members newsrooms --write` finds it on the cluster's website, as the members' own
DEMO_SOURCES = [
    ("ouest-sante", "Ouest Santé", "fr", "ouest-sante.rss"),
    ("pharma-wire", "Pharma Wire", "en", "pharma-wire.rss"),
    ("biotech-daily", "Biotech Daily", "en", "biotech-daily.atom"),
    ("labnews-fr", "LabNews", "fr", "labnews-fr.rdf"),
    ("nantes-eco", "Nantes Éco", "fr", "nantes-eco.atom"),
    ("invest-bio", "Invest Bio", "en", "invest-bio.rss"),
    ("sante-grand-ouest", "Santé Grand Ouest (ISO-8859-1)", "fr", "sante-grand-ouest.rss"),
    # one press release rewritten by three outlets (new intros, own footers): one story
    ("presse-regionale", "Presse régionale (agrégat)", "fr", "presse-regionale.rss"),
    # broken on purpose: each must end as a clear error on its row, the run going on
    ("broken-html", "A page instead of a feed", "fr", "broken-html.rss"),
    (
        "truncated-xml",
        "A feed cut off mid-item (the usable part is kept)",
        "fr",
        "broken-truncated.xml",
    ),
    ("broken-500", "A server error", "fr", "_/status/500"),
    ("broken-bomb", "An entity-expansion feed", "en", "_/entity-bomb"),
]


def demo_config(server: FixtureServer, websites: dict[str, str] | None = None) -> dict[str, Any]:
    """sources.yaml with the sources on the local server, and the websites of the cluster
    and of the members written there (``websites``: member id -> local URL; the crash
    tests, which find no newsroom, go without)."""
    yaml = YAML(typ="safe", pure=True)
    config = yaml.load((ROOT / "sources.yaml").read_text(encoding="utf-8"))
    if websites:
        config["cluster"]["website"] = websites["atlanpole-biotherapies"]
        for member in config["members"]:
            slug = slugify(member["name"])
            if slug in websites:
                member["website"] = websites[slug]
    sources: list[dict[str, Any]] = [
        {"id": sid, "kind": "feed", "name": name, "lang": lang, "url": server.url(path)}
        for sid, name, lang, path in DEMO_SOURCES
    ]
    # a member's press page with no feed, read with CSS selectors, two pages deep, written
    # by hand: its own (owner), so `veille members newsrooms` leaves OSE alone
    sources.append(
        {
            "id": "ose-communiques",
            "kind": "page",
            "name": "OSE Immunotherapeutics – communiqués",
            "lang": "fr",
            "owner": "ose-immunotherapeutics",
            "url": server.url("ose-communiques.html"),
            "item_selector": "div.release",
            "selector": "h2.release-title a",
            "date_selector": "time",
            "next_selector": "a.next",
            "max_pages": 2,
        }
    )
    # a regional outlet's sitemap index: a news sitemap, and a pages sitemap too old to read
    sources.append(
        {
            "id": "loire-biotech",
            "kind": "sitemap",
            "name": "Loire Biotech Hebdo",
            "lang": "fr",
            "url": server.url("sitemap-index.xml"),
            "max_age_days": 366,
        }
    )
    sources.append(
        {
            "id": "broken-offline",
            "kind": "feed",
            "name": "A host that is down",
            "url": f"http://127.0.0.1:{closed_port()}/feed.rss",
        }
    )
    sources.append(
        {
            "id": "news-search",
            "kind": "search",
            "name": "News search",
            "lang": "fr",
            "url": server.url("search/{id}.rss"),
        }
    )
    config["sources"] = sources
    config["outlets"] = DEMO_OUTLETS
    # the digest links to the Datasette that `make datasette` serves
    # the bundled corpus is dated November 2026: a wide backlog window keeps its articles
    # in this week's digest whenever the demo runs
    config["digest"] = {
        **config.get("digest", {}),
        "datasette_url": "http://127.0.0.1:8001",
        "backlog_days": 3650,
    }
    config["network"] = {
        "contact": "https://www.atlanpolebiotherapies.com",
        "allow_private": True,  # the demo server is on loopback
        "per_host_concurrency": 8,  # one local host serves every source
        "per_host_delay": 0,
        "connect_timeout": 2,
        "read_timeout": 5,
        "retries": 1,
        "retry_backoff": 0.2,
    }
    return config


def veille(*args: str, env: dict[str, str] | None = None) -> int:
    shown = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    print(f"\n$ {shown + ' ' if shown else ''}veille {' '.join(args)}", flush=True)
    return subprocess.call(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT, env={**os.environ, **(env or {})}
    )


DESK_ACCOUNT = "equipe"
DESK_PASSWORD = "demo-desk-2026"  # the demo's own database only: choose a real one in use


def desk(rel_config: str, rel_db: str) -> None:
    """The team's desk: an account to log in with, and a verdict given as its button would,
    so that the digest below shows a highlight with its comment."""
    print("\n# the team's desk: an account, and one story highlighted with a comment")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "review",
            "account",
            DESK_ACCOUNT,
            "--db",
            rel_db,
            "--password-stdin",
        ],
        cwd=ROOT,
        input=DESK_PASSWORD + "\n",
        text=True,
        check=True,
    )
    with sqlite3.connect(DEMO_DB) as db:
        row = db.execute(
            "SELECT url FROM articles WHERE title LIKE 'Xenothera lève%' ORDER BY id LIMIT 1"
        ).fetchone()
    if row:
        veille(
            "review",
            "highlight",
            row[0],
            "--comment",
            "Une levée qui finance la phase 2 de XEN-407 : à relayer auprès du conseil.",
            "--by",
            DESK_ACCOUNT,
            "--config",
            rel_config,
            "--db",
            rel_db,
        )


def report(rel_config: str, rel_db: str) -> int:
    """The board's report of the corpus's month (its articles are dated November 2026),
    against the month before: HTML, PDF and the figures as JSON."""
    with sqlite3.connect(DEMO_DB) as db:
        # the month most of its articles are dated (a newsroom may hold a later one)
        busiest = db.execute(
            "SELECT substr(published_at, 1, 7) FROM articles WHERE published_at IS NOT NULL "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    month = busiest[0] if busiest else datetime.now(UTC).isoformat()[:7]
    print(f"\n# the board's report of {month}: HTML, PDF and its figures as JSON")
    out = DEMO_REPORT.relative_to(ROOT)
    return veille(
        "report", "--config", rel_config, "--db", rel_db, "--period", month,
        "--out", f"{out}.html", "--pdf", f"{out}.pdf", "--json", f"{out}.json",
    )  # fmt: skip


def digest(rel_config: str, rel_db: str) -> int:
    """This week's digest (the demo's articles were all first seen today): written to
    storage/demo-digest.html and .txt, then sent to an SMTP server on loopback."""
    week = Week.containing(datetime.now(UTC), ZoneInfo("Europe/Paris")).label
    print(f"\n# the weekly digest of {week}, as files, then by mail to a local SMTP server")
    rel_out = str(DEMO_DIGEST.relative_to(ROOT))
    common = ("--config", rel_config, "--db", rel_db, "--week", week)
    if veille("digest", *common, "--out", rel_out) != 0:
        return 1
    with SmtpServer() as smtp:
        # the demo's week is the current one, not over yet: --force sends it all the same
        code = veille("digest", *common, "--send", "--force", env=smtp.env())
        again = veille("digest", *common, "--send", env=smtp.env())
        for mail in smtp.received:
            parts = ", ".join(p.get_content_type() for p in mail.message.iter_parts())
            print(f"  the local SMTP server received: {mail.message['Subject']!r}")
            print(f"    to {', '.join(mail.recipients)}; {parts}")
        print(f"  {len(smtp.received)} message(s) received for two --send: a week is sent once")
    return code or again


# the alert rule of the demo: the example, over the corpus (dated November 2026:
# a wide max_age_days keeps its stories news whenever the demo runs)
DEMO_ALERT = {
    "id": "comms",
    "to": "VEILLE_ALERTS_COMMS",
    "members": ["goliver-therapeutics", "ng-biotech"],
    "max_age_days": 3650,
    "owned": False,  # press coverage only: not the members' own releases
}
# members of the directory (not written in sources.yaml) whose website it gives
DIRECTORY_WEBSITES = ("step-pharma", "mablink-bioscience")


def directory_with_websites(websites: dict[str, str], out: Path) -> Path:
    """The demo's directory as the CRM exports it, its website column filled for the
    members whose site the demo serves (names as written there, legal suffixes aside)."""
    text = DEMO_DIRECTORY.read_bytes().decode("cp1252")
    lines = text.split("\r\n")
    for number, row in enumerate(lines[1:], start=1):
        cells = row.split(";")
        if (
            len(cells) > 2
            and (slug := slugify(cells[0].removesuffix(" SAS"))) in DIRECTORY_WEBSITES
        ):
            cells[2] = websites[slug]
            lines[number] = ";".join(cells)
    out.write_bytes("\r\n".join(lines).encode("cp1252"))
    return out


def show_alert(post: Any) -> None:
    """What the local webhook receiver prints for each alert it takes."""
    print(f"  [webhook received] {post.body.get('title', '')}", flush=True)
    for text in str(post.body.get("message", "")).splitlines():
        print(f"      {text}", flush=True)


def summary(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    print("\n== What is in storage/demo.db")
    print(f"  articles         {one('SELECT count(*) FROM articles')}")
    print(f"  article_sources  {one('SELECT count(*) FROM article_sources')}")
    in_error = one("SELECT count(*) FROM sources WHERE last_status = 'error'")
    print(f"  sources          {one('SELECT count(*) FROM sources')} ({in_error} in error)")
    print(f"  members          {one('SELECT count(*) FROM members')}")
    print(f"  runs             {one('SELECT count(*) FROM runs')}")
    with_text = one("SELECT count(*) FROM articles WHERE text IS NOT NULL")
    print(f"  with full text   {with_text} (article pages fetched once, main text extracted)")
    print("\n== Members named in an article's body but not in its feed entry")
    for member in ("Clean Biologics", "Naobios", "Affilogic", "Biofortis", "GIP Arronax"):
        hit = conn.execute(
            "SELECT title FROM articles WHERE text LIKE ? AND title NOT LIKE ? AND summary NOT LIKE ? LIMIT 1",
            [f"%{member}%", f"%{member}%", f"%{member}%"],
        ).fetchone()
        if hit:
            print(f"  {member:16} in the text of: {hit[0][:60]}")
    print("\n== Mentions per member (articles naming it, of which in the title)")
    for member, articles, in_title in conn.execute(
        """SELECT m.name, count(*), sum(x.in_title) FROM mentions x JOIN members m ON m.id = x.member_id
           GROUP BY m.id ORDER BY count(*) DESC, m.name LIMIT 8"""
    ):
        print(f"  {member:28} {articles:3} ({in_title} in the title)")
    print("\n== Funding events")
    for member, amount, currency in conn.execute(
        """SELECT m.name, f.amount, f.currency FROM fundings f JOIN members m ON m.id = f.member_id
           GROUP BY m.id, f.amount, f.currency ORDER BY f.amount DESC LIMIT 6"""
    ):
        print(f"  {member:28} {amount:>14,.0f} {currency}")
    stories = one("SELECT count(*) FROM stories")
    print(
        f"\n== Stories: {stories} stories for {one('SELECT count(*) FROM articles')} articles; "
        "those with several copies at different URLs"
    )
    for title, count, outlets in conn.execute(
        "SELECT title, article_count, outlets FROM stories WHERE article_count > 1 "
        "ORDER BY article_count DESC, title LIMIT 6"
    ):
        print(f"  {count} copies: {title[:70]}\n      {outlets}")
    print("\n== Articles carried by several sources (stored once)")
    rows = conn.execute(
        """SELECT a.title, count(*) AS n, group_concat(s.source_id, ', ')
           FROM articles a JOIN article_sources s ON s.article_id = a.id
           GROUP BY a.id HAVING n > 1 ORDER BY n DESC, a.title LIMIT 8"""
    ).fetchall()
    for title, count, where in rows:
        print(f"  {count} x {title[:70]}\n      {where}")
    print("\n== Owned vs earned: the members' own releases, kept apart from the press")
    for owner, articles in conn.execute(
        "SELECT owner, count(*) FROM articles WHERE owned = 1 GROUP BY owner ORDER BY count(*) DESC"
    ):
        print(f"  {owner:28} {articles:3} own article(s)")
    press, releases = conn.execute(
        "SELECT sum(stories), sum(releases) FROM weekly_member_counts"
    ).fetchone()
    print(f"  share of voice counts {press} stories in the press; {releases} releases apart")
    print("\n== Sources in error (recorded on their row, the run went on)")
    for sid, error in conn.execute(
        "SELECT id, last_error FROM sources WHERE last_status = 'error' ORDER BY id"
    ):
        print(f"  {sid}: {error}")
    conn.close()


EMPTY_SEARCH = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
    "<title>Recherche : aucun résultat</title><link>http://news.example/</link>"
    "<description>Pas d'article récent</description></channel></rss>\n"
).encode()


def answer_quiet_searches(server: FixtureServer, config_path: Path) -> int:
    """A search engine answers an empty feed for a name it has no news of: the local
    server does the same for the members the corpus has no search file for."""

    def empty(handler: Any) -> None:
        server.send(handler, 200, EMPTY_SEARCH, {"Content-Type": "application/rss+xml"})

    count = 0
    for source in load_config(config_path).sources:
        path = urlsplit(source.url).path.lstrip("/")
        if source.template == "news-search" and not (FEEDS / path).is_file():
            server.routes[path] = empty
            count += 1
    return count


def main() -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for stale in (DEMO_DB, Path(f"{DEMO_DB}-wal"), Path(f"{DEMO_DB}-shm")):
        stale.unlink(missing_ok=True)
    # the local server stands in for every *.example site the corpus links to; the members'
    # own sites are each on a loopback address of their own (tests/newsroom_web.py)
    sites = demo_sites(FEEDS)
    with (
        FixtureServer(FEEDS, WEB, rewrite_hosts=True) as server,
        AlertReceiver() as hook,
        serve(list(sites.values()), DEMO_DIR / "sites", first_address=20) as served,
    ):
        websites = {member: s.url for member, s in zip(sites, served, strict=True)}
        # the corpus' links to the cluster's site lead to the cluster's own server
        server.hosts["www.atlanpole-biotherapies.example"] = websites["atlanpole-biotherapies"]
        config_path = DEMO_DIR / "sources.yaml"
        yaml = YAML()
        yaml.default_flow_style = False
        with config_path.open("w", encoding="utf-8") as handle:
            handle.write(
                "# written by `make demo`: sources.yaml's members, sources on a local server\n"
            )
            yaml.dump({**demo_config(server, websites), "alerts": [DEMO_ALERT]}, handle)
        print(f"demo: serving {FEEDS.relative_to(ROOT)} on {server.base}")
        print(f"demo: {len(sites)} members' websites on 127.0.0.20 and up")
        # alerts go to a webhook receiver on loopback (Apprise's json:// form)
        hook.log = show_alert
        os.environ["VEILLE_ALERTS_COMMS"] = hook.apprise_url("comms")
        print(f"demo: alert rule comms -> VEILLE_ALERTS_COMMS={hook.apprise_url('comms')}")
        rel_config = str(config_path.relative_to(ROOT))
        rel_db = str(DEMO_DB.relative_to(ROOT))
        (DEMO_DIR / "members.yaml").unlink(missing_ok=True)
        print(
            "\n# the whole cluster: its directory imported (with websites), forms and rules derived"
        )
        directory = directory_with_websites(websites, DEMO_DIR / "annuaire.csv")
        rel_directory = str(directory.relative_to(ROOT))
        if veille("members", "import", rel_directory, "--config", rel_config) != 0:
            return 1
        print("\n# where each member with a website publishes its news; --write adds them")
        if veille("members", "newsrooms", "--config", rel_config, "--write") != 0:
            return 1
        if veille("check", "--config", rel_config) != 0:
            return 1
        quiet = answer_quiet_searches(server, config_path)
        print(f"demo: {quiet} members have no news in the search: their feeds are empty")
        first = veille("run", "--config", rel_config, "--db", rel_db)
        print(
            "\n# the news search, named: all its feeds at once (unnamed, each feed waits for"
            "\n# its own time in the day, so a pass asks the search host a few times only)"
        )
        first = first or veille(
            "run", "--config", rel_config, "--db", rel_db, "--source", "news-search"
        )
        print("\n# a second run: validators are sent back, the server answers 304, nothing new")
        second = veille("run", "--config", rel_config, "--db", rel_db)
        conditional = sum(1 for r in server.requests if "if-none-match" in r.headers)
        print(
            f"\n# alerts: {len(hook.accepted)} received by the local webhook over three runs; "
            "each story once"
        )
        veille("alerts", "--db", rel_db, "--limit", "5")
        veille("alerts", "test", "comms", "--config", rel_config)
        veille("sources", "--db", rel_db)
    summary(DEMO_DB)
    print("\n# what a person reads before trusting 220 names (first lines)")
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "members",
            "check",
            "--config",
            rel_config,
            "--db",
            rel_db,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print("\n".join(check.stdout.splitlines()[:14]))
    desk(rel_config, rel_db)
    sent = digest(rel_config, rel_db)
    reported = report(rel_config, rel_db)
    print(f"\n{conditional} conditional requests (If-None-Match) in the second run.")
    print(f"\nThe digest: {DEMO_DIGEST.relative_to(ROOT)} (open it in a browser) and its text part")
    print(f"  {DEMO_DIGEST.with_suffix('.txt').relative_to(ROOT)}")
    rel_report = DEMO_REPORT.relative_to(ROOT)
    print(
        f"The board's report: {rel_report}.html and {rel_report}.pdf (figures in {rel_report}.json)"
    )
    print("\nOpen it in Datasette (canned queries, facets, full-text search, dashboards):")
    print(
        f"  make datasette DB={rel_db} CONFIG={rel_config}   # then http://127.0.0.1:8001/{DEMO_DB.stem}"
    )
    print(
        f"  The desk: http://127.0.0.1:8001/-/desk  (log in as {DESK_ACCOUNT!r}, password "
        f"{DESK_PASSWORD!r}: review the week, reject, drop, highlight, approve)"
    )
    feeds = f"http://127.0.0.1:8001/{DEMO_DB.stem}"
    print(f"  Atom feeds: {feeds}/member_feed.atom?member=xenothera  {feeds}/mentions_feed.atom")
    print("\nNext steps:")
    print(f"  .venv/bin/sqlite-utils tables {rel_db} --counts     # what was stored")
    print(
        f'  .venv/bin/sqlite-utils {rel_db} "select title, url from articles order by published_at desc limit 10"'
    )
    print(f"  .venv/bin/veille sources --db {rel_db}        # state of every source")
    print(
        f"  .venv/bin/veille remention --config {rel_config} --db {rel_db}   # after editing members"
    )
    print("  echo 'Il ose tout, NG-Biotech aussi.' | .venv/bin/veille match -   # tune aliases")
    print(
        "  make eval                                           # matcher and story grouping quality"
    )
    print(
        f"  .venv/bin/veille restory --config {rel_config} --db {rel_db}    # rebuild the stories"
    )
    print("  edit sources.yaml, then: make check && make run")
    return 0 if first == 0 and second == 0 and sent == 0 and reported == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
