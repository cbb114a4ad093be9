"""`make eval` (stories): pairwise precision and recall of the story grouping.

tests/fixtures/stories/articles.jsonl holds articles labelled with their story. They
are stored one by one, oldest first, through the same code path as a run; every pair
of articles is then right when the labels and the grouping agree on "same story".
A sweep over the similarity threshold shows where the chosen value sits.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime
from itertools import combinations
from pathlib import Path

from ruamel.yaml import YAML

from pipeline.analysis import stories
from pipeline.models import Article, SourceOutcome
from pipeline.settings.config import load_config, slugify
from pipeline.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "tests" / "fixtures" / "stories" / "articles.jsonl"
TARGET = 0.95


def load_articles(path: Path = ARTICLES) -> list[dict[str, str]]:
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return sorted(rows, key=lambda r: (r["published_at"], r["id"]))


def group(articles: list[dict[str, str]], workdir: Path) -> dict[str, int]:
    """Store the articles as a run would; return article id -> story id."""
    outlets = sorted({a["outlet"] for a in articles})
    config_path = workdir / "sources.yaml"
    with config_path.open("w", encoding="utf-8") as handle:
        YAML().dump(
            {
                "cluster": {"name": "Atlanpole Biotherapies"},
                "sources": [
                    {
                        "id": slugify(o),
                        "kind": "feed",
                        "name": o,
                        "url": f"https://{slugify(o)}.example/rss",
                    }
                    for o in outlets
                ],
            },
            handle,
        )
    store = Store.open(workdir / "stories.db")
    store.sync_config(load_config(config_path))
    for row in articles:
        when = datetime.fromisoformat(row["published_at"].replace("Z", "+00:00"))
        article = Article(
            url=row["url"],
            link=row["url"],
            title=row["title"],
            summary="",
            source_id=slugify(row["outlet"]),
            text=row["text"],
            published_at=when,
            lang=row.get("lang"),
        )
        key = stories.story_key(
            title=article.title, summary="", text=article.text, published_at=when
        )
        store.save_source(
            SourceOutcome(article.source_id, "ok"),
            [article],
            run_id=None,
            now=when,
            next_check_at=when,
            story_keys={article.url: key},
        )
    by_url = dict(store.db.execute("SELECT url, story_id FROM articles").fetchall())
    store.close()
    return {row["id"]: by_url[row["url"]] for row in articles}


def pairwise(
    articles: list[dict[str, str]], predicted: dict[str, int]
) -> tuple[float, float, list[str]]:
    tp = fp = fn = 0
    errors: list[str] = []
    for a, b in combinations(articles, 2):
        same_label = a["story"] == b["story"]
        same_group = predicted[a["id"]] == predicted[b["id"]]
        if same_label and same_group:
            tp += 1
        elif same_group:
            fp += 1
            errors.append(f"joined  {a['id']}/{b['id']} ({a['story']} vs {b['story']})")
        elif same_label:
            fn += 1
            errors.append(f"split   {a['id']}/{b['id']} ({a['story']})")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, errors


def evaluate(threshold: float | None = None) -> tuple[float, float, list[str]]:
    articles = load_articles()
    saved = stories.SIMILARITY_THRESHOLD
    if threshold is not None:
        stories.SIMILARITY_THRESHOLD = threshold
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pairwise(articles, group(articles, Path(tmp)))
    finally:
        stories.SIMILARITY_THRESHOLD = saved


def main() -> int:
    articles = load_articles()
    labels = {a["story"] for a in articles}
    print(f"stories: {len(articles)} articles in {len(labels)} labelled stories")
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7}")
    for threshold in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7):
        precision, recall, _ = evaluate(threshold)
        mark = "  <- chosen" if threshold == stories.SIMILARITY_THRESHOLD else ""
        print(f"{threshold:9.2f} {precision:9.3f} {recall:7.3f}{mark}")
    precision, recall, errors = evaluate()
    print(
        f"chosen {stories.SIMILARITY_THRESHOLD}: pairwise precision {precision:.3f}, recall {recall:.3f} "
        f"(target >= {TARGET} each)"
    )
    for error in errors:
        print(f"  {error}")
    return 0 if precision >= TARGET and recall >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
