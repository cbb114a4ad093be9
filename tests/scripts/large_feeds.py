"""Generated large feeds (RSS 2.0 and Atom), and how long veille takes to read them.

    python -m tests.scripts.large_feeds [--entries 20000]

prints, per format, the size, the time of the bounded parse (the one `veille run` uses),
how many entries are kept and which. The tests use the generators.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

NEWEST = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=7)  # one dispatch every 7 minutes, newest first


def large_rss(entries: int, *, oldest_first: bool = False) -> bytes:
    order = range(entries - 1, -1, -1) if oldest_first else range(entries)
    items = "".join(
        f"<item><title>Dépêche {i} : Valneva et Xenothera à Nantes</title>"
        f"<link>https://www.depeches.example/2026/{i}.html</link>"
        f'<guid isPermaLink="false">dep-{i}</guid>'
        f"<pubDate>{(NEWEST - STEP * i).strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
        f'<description>&lt;p&gt;Résumé de la dépêche {i}, avec &lt;a href="/x"&gt;un lien'
        "&lt;/a&gt; et un peu de texte pour lui donner une taille réaliste.&lt;/p&gt;"
        "</description></item>"
        for i in order
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Dépêches</title><link>https://www.depeches.example/</link>"
        f"<language>fr</language>{items}</channel></rss>"
    ).encode()


def large_atom(entries: int) -> bytes:
    items = "".join(
        f"<entry><id>urn:depeches:{i}</id><title>Dispatch {i}: Valneva and Xenothera</title>"
        f'<link href="https://www.depeches.example/en/{i}"/>'
        f"<updated>{(NEWEST - STEP * i).isoformat()}</updated><author><name>Desk</name></author>"
        f'<summary type="html">&lt;p&gt;Summary of dispatch {i}, with some text to give it '
        "a realistic size.&lt;/p&gt;</summary></entry>"
        for i in range(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xml:lang="en"><title>Dispatches</title><id>urn:depeches</id>'
        f"<updated>{NEWEST.isoformat()}</updated>{items}</feed>"
    ).encode()


def main() -> None:
    from pipeline.sources.parse import parse_feed_guarded
    from pipeline.sources.sandbox import Limits

    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--entries", type=int, default=20_000)
    args = options.parse_args()
    for name, data in (("rss", large_rss(args.entries)), ("atom", large_atom(args.entries))):
        parse_feed_guarded(b"<rss version='2.0'><channel/></rss>", headers={}, url="https://x/")
        started = time.perf_counter()
        feed = parse_feed_guarded(
            data, headers={}, url="https://www.depeches.example/feed", limits=Limits(timeout=300)
        )
        took = time.perf_counter() - started
        print(
            f"{name}: {args.entries:,} entries, {len(data) / 1e6:.1f} MB, parsed in {took:.1f} s; "
            f"kept {len(feed.entries):,} ({feed.entries[0].title!r} .. {feed.entries[-1].title!r}),"
            f" skipped {feed.skipped:,}"
        )


if __name__ == "__main__":
    main()
