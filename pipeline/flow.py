"""What travels through one pass, and the CPU slots that carry its work.

An :class:`Item` is one article with everything the pass learns about it (how its page
went, its analysis, its story key), so the stages hand one record along instead of
dicts keyed by URL. :class:`Slots` is how the pass maps work onto the machine: a thread
holding one CPU slot per parser or extractor, and a document large enough to make its
worker grow holding all of them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.analysis.analyse import Analysis
from pipeline.analysis.stories import StoryKey
from pipeline.models import Article
from pipeline.sources.sandbox import retire_idle_workers

T = TypeVar("T")
KnownUrls = Callable[[Sequence[str]], set[str]]  # which of these URLs the store already holds
# a page or feed this large may make its parser grow to network.parse_memory_mb (an HTML
# page needs up to about 100 times its size): it is parsed alone
LARGE_DOCUMENT = 1_000_000


@dataclass(frozen=True, slots=True)
class Item:
    """One article of a source, with what the pass found out about it."""

    article: Article
    text_status: str | None = None  # how fetching its page went: "ok", "robots", "error: ..."
    analysis: Analysis | None = None
    story_key: StoryKey | None = None
    analysis_error: str | None = None  # why it was not analysed (stored all the same)


@dataclass(frozen=True, slots=True)
class StoreFields:
    """Items in the shape Store.save_source takes them (per canonical URL)."""

    articles: list[Article]
    text_status: dict[str, str]
    analyses: dict[str, Analysis]
    story_keys: dict[str, StoryKey]
    analysis_errors: dict[str, str]


def store_fields(items: Sequence[Item]) -> StoreFields:
    """The items as the store takes them; where two items share a URL the later one's
    values win, as they did when each stage wrote into dicts keyed by URL."""
    fields = StoreFields([], {}, {}, {}, {})
    for item in items:
        url = item.article.url
        fields.articles.append(item.article)
        if item.text_status is not None:
            fields.text_status[url] = item.text_status
        if item.analysis is not None and item.story_key is not None:
            fields.analyses[url], fields.story_keys[url] = item.analysis, item.story_key
        if item.analysis_error is not None:
            fields.analysis_errors[url] = item.analysis_error
    return fields


class Slots:
    """CPU slots of a pass: parsers, extractors and analyses at once, in threads."""

    def __init__(self, count: int | None = None) -> None:
        self.count = count or os.cpu_count() or 2
        self.cpu = asyncio.Semaphore(self.count)
        self.heavy = asyncio.Lock()  # one large document at a time, alone

    async def run(self, func: Callable[..., T], *args: Any, size: int = 0, **kwargs: Any) -> T:
        """``func`` in a thread, holding a CPU slot; a document of LARGE_DOCUMENT bytes or
        more holds them all, after the idle workers are retired: its worker may grow to
        parse_memory_mb, and nothing else grows beside it (the process tree stays within
        the run, the forkserver and that worker)."""
        if size < LARGE_DOCUMENT:
            async with self.cpu:
                return await asyncio.to_thread(func, *args, **kwargs)
        async with self.heavy:
            held = 0
            try:
                for _ in range(self.count):
                    await self.cpu.acquire()
                    held += 1

                def alone() -> T:
                    retire_idle_workers()  # stopping processes blocks: not on the event loop
                    return func(*args, **kwargs)

                return await asyncio.to_thread(alone)
            finally:
                for _ in range(held):
                    self.cpu.release()
