"""`make bench --only members`: the matcher at the cluster's size, 220 members and their
derived forms (sources.yaml plus the evaluation directory, imported as an operator would)."""

from __future__ import annotations

import random

from tests.scripts.bench_common import Row, Section


def bench_members(*, megabytes: float, repeat: int, seed: int) -> Section:
    from pipeline.analysis.mentions import Matcher
    from tests.scripts.bench import median_seconds, synthetic_text
    from tests.scripts.eval_mentions import cluster_config

    config = cluster_config()
    matcher = Matcher.from_config(config)
    members = sum(1 for m in config.members if m.kind == "member")
    forms = len(matcher.rules)
    rng = random.Random(seed)
    # the press forms of the names and the common words inside them ("step", "vital")
    written = [r.alias for r in matcher.rules]
    written += [w.lower() for r in matcher.rules for w in r.alias.split() if len(w) > 3]
    text = synthetic_text(int(megabytes * 1_000_000), written, rng)
    size_mb = len(text.encode("utf-8")) / 1_000_000
    found = len(matcher.find(text, snippets=False))
    took = median_seconds(lambda: matcher.find(text, snippets=False), repeat)
    build = median_seconds(lambda: Matcher.from_config(config), max(1, repeat // 2))
    rate = size_mb / took
    print(
        f"members: {members} members, {forms} forms matched, {size_mb:.1f} MB of text, "
        f"{found} mentions, median of {repeat}"
    )
    print(f"  {'matcher at 220 members':40} {rate:8.1f} MB/s")
    print(f"  {'building it (derivation + automaton)':40} {build * 1000:8.0f} ms")
    section = Section("6. matching at the cluster's size")
    section.notes.append(
        f"{members} members with {forms} derived and hand-written forms, {size_mb:.1f} MB of "
        f"text salted with the forms and their words, {found} mentions, median of {repeat}"
    )
    section.rows += [
        Row(
            "members",
            f"matcher, {members} members and their forms",
            rate,
            "MB/s",
            target=">= 25 MB/s",
            met=rate >= 25,
        ),
        Row(
            "members",
            "Matcher.from_config (derivation + automaton)",
            build * 1000,
            "ms",
            higher_is_better=False,
            note="once per run and per worker",
        ),
    ]
    return section
