"""Fetched bytes -> entries: feeds (feed.py; JSON Feed in jsonfeed.py, feeds past the entry
cap cut in large.py), listing pages (listing.py), sitemaps (sitemap.py)."""

from pipeline.sources.parse.feed import (
    guard_feed_bytes,
    parse_feed_bytes,
    parse_feed_guarded,
    plain_text,
)

__all__ = ["guard_feed_bytes", "parse_feed_bytes", "parse_feed_guarded", "plain_text"]
