"""Datasette plugin: CSV exports whose cells a spreadsheet cannot run as formulas.

A title a feed wrote as ``=cmd|' /C calc'!A0`` is stored as written, and Datasette's
CSV export (tables, canned queries, arbitrary SQL, ``_stream=1`` included) would hand
it to Excel or LibreOffice as a formula. This plugin wraps Datasette's ASGI app and
rewrites CSV responses only, record by record as they stream: a data cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` (the
OWASP rule), unless it is a plain number ("-12.5" stays a number). The header row, the
stored data, the HTML pages and the JSON are left as they are.

Registered as a ``datasette`` entry point in pyproject.toml, so every Datasette of this
installation (``veille datasette``, the tests) loads it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from datasette import hookimpl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(cell: str) -> str:
    """The cell as a spreadsheet may safely read it."""
    if cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


class CsvNeutraliser:
    """Bytes of a CSV stream in, the same CSV with its data cells neutralised out.

    Records are cut at line ends outside quotes (a quoted cell may hold line breaks):
    each line's quotes are counted once, so the work is linear in the export's size.
    """

    def __init__(self, *, header: bool = True) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line = ""  # the incomplete last line
        self._record: list[str] = []  # complete lines of a record still inside quotes
        self._quotes = 0
        self._header_seen = not header  # ?_header=off: every row is data

    def feed(self, data: bytes, *, final: bool = False) -> bytes:
        text = self._line + self._decoder.decode(data, final)
        lines = text.split("\n")
        self._line = "" if final else lines.pop()
        out = io.StringIO()
        writer = csv.writer(out)
        for line in lines:
            if final and not line and not self._record:
                continue  # the end of the stream after the last line break
            self._record.append(line)
            self._quotes += line.count('"')
            if self._quotes % 2:
                continue  # a quoted cell goes on to the next line
            record = "\n".join(self._record)
            self._record, self._quotes = [], 0
            self._write(record, writer, out)
        if final and self._record:  # unbalanced quotes at the end: pass it through as it is
            out.write("\n".join(self._record))
        return out.getvalue().encode("utf-8")

    def _write(self, record: str, writer: Any, out: io.StringIO) -> None:
        rows = list(csv.reader(io.StringIO(record + "\n")))
        if not self._header_seen or len(rows) != 1:
            self._header_seen = True
            out.write(record + "\n")  # the header (column names the analyst chose), or an odd line
            return
        writer.writerow([neutralise(cell) for cell in rows[0]])


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _asks_for_csv(scope: Scope) -> bool:
    # Datasette 0.65 serves CSV at a path ending in ".csv" (tables, queries, SQL); the
    # response's content type is checked too before anything is rewritten
    return str(scope.get("path", "")).endswith(".csv")


def wrap(app: App) -> App:
    async def safe_csv(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not _asks_for_csv(scope):
            await app(scope, receive, send)
            return
        neutraliser: CsvNeutraliser | None = None

        async def rewrite(message: Message) -> None:
            nonlocal neutraliser
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                kind = dict(headers).get(b"content-type", b"")
                if kind.startswith((b"text/csv", b"text/plain")):
                    neutraliser = CsvNeutraliser(
                        header="off" not in _query(scope).get("_header", [])
                    )
                    # the body changes length
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and neutraliser is not None:
                more = bool(message.get("more_body", False))
                message = {
                    **message,
                    "body": neutraliser.feed(message.get("body", b""), final=not more),
                }
            await send(message)

        await app(scope, receive, rewrite)

    return safe_csv


@hookimpl  # type: ignore[untyped-decorator]
def asgi_wrapper(datasette: Any) -> Callable[[App], App]:
    return wrap
