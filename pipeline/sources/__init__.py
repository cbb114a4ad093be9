"""What comes in from the network, bounded and hostile-safe: fetch (the only httpx user),
robots, the network policy, the bounded workers (sandbox), canonical URLs (dedupe), OPML,
and parse/ (feeds, listing pages, sitemaps). May import: settings, models, errors."""
