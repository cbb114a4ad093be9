"""Pure: text in, facts out (main text, mentions, members' forms, story keys), no network
and no database. May import: sources (the bounded workers, the feed parser), settings,
models, errors; never storage or outputs."""
