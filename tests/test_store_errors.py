"""The store's one error boundary: a database that fails under a command's reads (a damaged
page, a table dropped by hand, a lock held by another process) gives a StoreError that
names the file and what was being read, and the command answers one line and its exit
code, never a traceback. The faults are real: bytes overwritten in a real SQLite file, a
second connection holding the lock."""

from __future__ import annotations

import ast
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import pipeline.storage.store as store_module
from pipeline import cli
from pipeline.errors import StoreError
from pipeline.outputs.alerts import recent, waiting
from pipeline.outputs.digest import Week, build
from pipeline.run import run
from pipeline.schedule import Daemon
from pipeline.settings.config import Config
from pipeline.storage.store import Store
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.run_cli import veille

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
DIGEST = {"from": "veille@atlanpole.example", "recipients": ["communication@atlanpole.example"]}
MALFORMED = "database disk image is malformed"


def damage(db_path: Path, table: str) -> None:
    """Overwrite the root pages of ``table`` and of its indexes with bytes no SQLite page
    starts with; the schema (page 1) and the header stay whole, so the file still opens
    and migrates."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    roots = [
        root
        for (root,) in conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 1", [table]
        )
    ]
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    assert roots, table
    with db_path.open("r+b") as handle:
        for root in roots:
            handle.seek((root - 1) * size)
            handle.write(b"\xde\xad\xbe\xef" * (size // 4))


def one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def config(write_config: WriteConfig, server: FixtureServer) -> Config:
    return write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        digest=DIGEST,
        schedule={"run": "*/30 * * * *", "digest": "30 7 * * mon", "timezone": "Europe/Paris"},
    )


@pytest.fixture
def stored(config: Config, db_path: Path) -> Config:
    """A real pass over a press feed: articles, mentions, a run row."""
    report = run(config, db_path=db_path)
    assert report.status == "ok" and report.new_articles > 0
    return config


# ------------------------------------------------------------------ damaged pages


def test_the_digest_preview_on_a_damaged_table_is_one_line_and_exit_1(
    stored: Config, db_path: Path
) -> None:
    damage(db_path, "mentions")
    week = Week.containing(datetime.now(UTC), PARIS).label
    result = veille("digest", "--config", stored.path, "--db", str(db_path), "--week", week)
    line = one_clear_line(result, str(db_path), MALFORMED, "restore it from a backup")
    assert line.startswith("veille: ") and week in line  # what was being read
    assert result.returncode == 1 and result.stdout == ""


def test_alerts_list_on_a_damaged_ledger_is_one_line_and_exit_1(
    stored: Config, db_path: Path
) -> None:
    damage(db_path, "alerts")
    result = veille("alerts", "list", "--db", str(db_path))
    one_clear_line(result, str(db_path), "reading the alerts", MALFORMED)
    assert result.returncode == 1 and result.stdout == ""


def test_the_daemon_refuses_to_start_on_a_damaged_runs_table_with_one_line(
    stored: Config, db_path: Path
) -> None:
    damage(db_path, "runs")
    result = veille("schedule", "--config", stored.path, "--db", str(db_path))
    one_clear_line(result, str(db_path), "reading when the last pass started", MALFORMED)
    assert result.returncode == 1


def test_the_schedulers_status_reads_raise_store_errors_and_the_catch_up_goes_on(
    stored: Config, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damage(db_path, "runs")
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)
    daemon = Daemon(stored, db_path=db_path, env={}, clock=lambda: monday)
    with pytest.raises(StoreError, match=f"{db_path}: reading when the last pass started"):
        daemon.missed_run()
    with pytest.raises(StoreError, match="reading whether a pass ran before the week ended"):
        daemon.due_digest()
    with caplog.at_level(logging.ERROR, logger="pipeline.schedule"):
        daemon.catch_up_digest()  # logs and returns: the daemon stays up
    assert any(
        "cannot tell whether a digest is due" in r.getMessage() and MALFORMED in r.getMessage()
        for r in caplog.records
    )


def test_a_table_dropped_by_hand_is_named_as_a_schema_problem(
    stored: Config, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE alerts")
    conn.close()
    store = Store.open(db_path)  # the version says the ledger is there: nothing to migrate
    try:
        with pytest.raises(StoreError) as info:
            recent(store)
    finally:
        store.close()
    assert str(info.value) == (
        f"{db_path}: reading the alerts: no such table: alerts (its schema is not the one "
        "this veille expects; was it changed by hand?)"
    )


def test_reads_inside_a_transaction_are_translated_too(stored: Config, db_path: Path) -> None:
    damage(db_path, "mentions")
    store = Store.open(db_path)
    week = Week.containing(datetime.now(UTC), PARIS)
    try:
        with pytest.raises(StoreError, match=MALFORMED), store.transaction("a digest"):
            build(stored, store, week, now=datetime.now(UTC), db_name="veille")
    finally:
        store.close()


# ------------------------------------------------------------------ locks


@pytest.fixture
def exclusive_holder(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the database in a write transaction it does
    not finish; in exclusive locking mode, so that even WAL readers wait for it."""
    Store.open(db_path).close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO runs (started_at, status) VALUES ('2026-12-01T10:00:00Z', 'x')")
    yield holder
    holder.execute("ROLLBACK")
    holder.close()


def test_a_lock_held_past_the_busy_timeout_is_one_line_from_the_command(
    exclusive_holder: sqlite3.Connection,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(sys, "argv", ["veille", "alerts", "list", "--db", str(db_path)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(db_path) in err and "database is locked" in err
    assert "longer than the 0.2 s busy timeout" in err


def test_a_write_waits_for_the_busy_timeout_then_fails_with_the_lock_named(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store = Store.open(db_path)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a pass in the middle of writing a source
    try:
        with pytest.raises(StoreError) as info:
            store.execute("recording an alert", "UPDATE alerts SET attempts = attempts + 1")
        assert waiting(store) == 0  # reads still go on beside the writer (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
    assert str(info.value).startswith(f"{db_path}: recording an alert: database is locked")


# ------------------------------------------------------------------ the boundary holds


def test_only_the_store_and_its_migrations_import_sqlite() -> None:
    allowed = {"store.py", "migrations.py"}
    offenders = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            uses_sqlite = any(n.split(".")[0] in ("sqlite3", "sqlite_utils") for n in names)
            if uses_sqlite and path.name not in allowed:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_no_module_reaches_into_the_stores_connection() -> None:
    """Other modules read and write through Store's methods, whose errors are StoreErrors."""
    offenders = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        if path.name == "store.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "db":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
