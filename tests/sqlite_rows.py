"""Reading a test's SQLite file as a person would: a fresh connection, closed at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def rows(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def source_row(db_path: Path, source_id: str) -> dict[str, Any]:
    """A source's row of the `sources` table, by column name."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM sources WHERE id = ?", [source_id]).fetchone())
    finally:
        conn.close()
