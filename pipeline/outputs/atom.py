"""Datasette plugin: a canned query's rows -> an Atom feed, through datasette-atom, never a 500.

datasette-atom 0.9 turns a canned query that returns ``atom_id``, ``atom_title`` and
``atom_updated`` (and here ``atom_content``, ``atom_link``, ``atom_author_name``) into
Atom at ``/<db>/<query>.atom``. Two of its cases fail with a server error: a query that
returns no rows (it takes the newest ``atom_updated`` of none), and text holding a
character XML 1.0 cannot carry (a control character a feed wrote in a title: lxml refuses
to serialise it). This plugin registers the same ``.atom`` extension after datasette-atom
(``trylast``, so Datasette keeps this one): it removes those characters from every text
cell, answers a valid feed without entries when there are no rows, and hands every other
case to datasette-atom. Text stays text: the feeds use ``atom_content`` (type="text")
and feedgen escapes titles, so markup from a feed shows as written and never runs.

Registered as a ``datasette`` entry point in pyproject.toml, like pipeline.outputs.safe_csv.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import datasette_atom
from datasette import __version__, hookimpl
from datasette.utils.asgi import Response
from feedgen.feed import FeedGenerator

# what XML 1.0 cannot carry: C0 controls but tab, line feed and carriage return; lone
# surrogates; U+FFFE and U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> Any:
    """A cell as XML can carry it (text without its forbidden characters; others unchanged)."""
    return _NOT_XML.sub("", value) if isinstance(value, str) else value


def _title(datasette: Any, request: Any, sql: str, database: str, query_name: str | None) -> str:
    """The feed's title as datasette-atom gives it: the canned query's, else the SQL."""
    title = str(request.args.get("_feed_title", sql))
    if query_name:
        with contextlib.suppress(KeyError, TypeError):  # a query without a title: the SQL
            title = str(datasette.metadata(database=database)["queries"][query_name]["title"])
    return str(xml_text(title))


def empty_feed(title: str, url: str, *, now: datetime | None = None) -> bytes:
    """A valid Atom feed without entries (a member without news, an empty database)."""
    feed = FeedGenerator()
    feed.generator(generator="Datasette", version=__version__, uri="https://datasette.io/")
    feed.id(url)
    feed.link(href=url, rel="self")
    feed.title(title)
    feed.updated(now or datetime.now(UTC).replace(microsecond=0))
    return bytes(feed.atom_str(pretty=True))


def render_atom(
    datasette: Any,
    request: Any,
    sql: str,
    columns: Sequence[str],
    rows: Sequence[Any],
    database: str,
    table: str | None,
    query_name: str | None,
    view_name: str,
    data: dict[str, Any],
) -> Response:
    if datasette_atom.REQUIRED_COLUMNS.issubset(columns) and not rows:
        body = empty_feed(_title(datasette, request, sql, database, query_name), request.url)
        return Response(body, content_type="application/xml; charset=utf-8", status=200)
    clean = [{name: xml_text(row[name]) for name in columns} for row in rows]
    return datasette_atom.render_atom(
        datasette, request, sql, columns, clean, database, table, query_name, view_name, data
    )


@hookimpl(trylast=True)  # type: ignore[untyped-decorator]
def register_output_renderer() -> dict[str, Any]:
    return {
        "extension": "atom",
        "render": render_atom,
        "can_render": datasette_atom.can_render_atom,
    }
