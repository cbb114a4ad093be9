"""The docs follow the program: generated blocks, every command documented, every link resolves."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
COGGED = sorted(
    path for path in DOCS.glob("*.md") if "\n<!-- [[[cog" in path.read_text(encoding="utf-8")
)


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command and subcommand of the `veille` group, as typed: "sources import"."""
    if path:
        yield " ".join(path)
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            yield from _commands(group.commands[name], (*path, name))


COMMANDS = list(_commands(cli))
TOP_LEVEL = sorted(cli.commands) if isinstance(cli, click.Group) else []


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_generated_blocks_match_the_program() -> None:
    """cog rewrites docs/*.md from the program; any difference means `make docs` was not run."""
    assert COGGED, "no page of docs/ holds a cog block"
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "-I", str(DOCS), *map(str, COGGED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        "docs/ is out of date with the program: run `make docs` and commit the result\n"
        + result.stdout
        + result.stderr
    )


def test_the_command_walk_finds_the_commands_and_their_subcommands() -> None:
    # the walk is what the two tests below are parametrised over: it must see nested groups
    assert {"run", "digest", "schedule", "sources import", "members check", "alerts test"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_help_in_the_cli_reference(command: str) -> None:
    assert f"## `veille {command}`" in _read(DOCS / "cli.md"), (
        f"docs/cli.md has no section for `veille {command}`: run `make docs`"
    )


@pytest.mark.parametrize("command", TOP_LEVEL)
def test_every_command_is_explained_for_its_reader(command: str) -> None:
    explained = _read(DOCS / "operating.md") + _read(DOCS / "analysing.md")
    assert re.search(rf"`veille {re.escape(command)}\b", explained), (
        f"`veille {command}` is explained neither in docs/operating.md nor in docs/analysing.md"
    )


def test_the_readme_fits_on_a_screen_or_two() -> None:
    assert len(_read(ROOT / "README.md").splitlines()) < 200


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower()
    text = "".join(
        char
        for char in text
        if char in " -_" or unicodedata.category(char)[0] in "LN"  # letters and digits, any script
    )
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in _read(page).splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"#{1,6} (.+)", line)
        if match and not in_code:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> Iterator[str]:
    text = re.sub(r"```.*?```", "", _read(page), flags=re.DOTALL)  # links in code are not links
    text = re.sub(r"`[^`\n]*`", "", text)
    for match in re.finditer(r"\]\(([^)\s]+)\)", text):
        yield match.group(1)


LINKS = [
    (page.relative_to(ROOT).as_posix(), target)
    for page in PAGES
    for target in _links(page)
    if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: are not checked
]


def test_the_pages_link_to_each_other() -> None:
    # the link check below must have something to check
    assert any(page == "README.md" and target.startswith("docs/") for page, target in LINKS)


@pytest.mark.parametrize(("page", "target"), LINKS)
def test_every_relative_link_resolves(page: str, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    source = ROOT / page
    destination = (source.parent / file_part).resolve() if file_part else source
    assert destination.exists(), f"{page}: link to {target}: no such file"
    if anchor:
        assert destination.suffix == ".md", f"{page}: link to {target}: an anchor outside Markdown"
        assert anchor in _anchors(destination), f"{page}: link to {target}: no such heading"


def test_the_slugs_follow_github() -> None:
    assert _slug("Run once: `veille run`") == "run-once-veille-run"
    assert _slug("Ce que contient la lettre") == "ce-que-contient-la-lettre"
    assert _slug("Limits, and how to change them") == "limits-and-how-to-change-them"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", _read(ROOT / "Makefile"), flags=re.MULTILINE))


@pytest.mark.parametrize("page", [page.relative_to(ROOT).as_posix() for page in PAGES])
def test_every_make_target_named_in_the_docs_exists(page: str) -> None:
    named = set(re.findall(r"`make ([a-z][a-z-]*)", _read(ROOT / page)))
    assert named - _make_targets() == set(), f"{page} names make targets the Makefile lacks"


def _sql_examples() -> list[str]:
    text = _read(DOCS / "analysing.md")
    return re.findall(r"^```sql\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_analysts_questions_have_their_queries() -> None:
    assert len(_sql_examples()) >= 5


@pytest.mark.parametrize("sql", _sql_examples())
def test_every_example_query_runs_on_the_current_schema(sql: str, tmp_path: Path) -> None:
    """The queries of docs/analysing.md name only tables and columns the migrations create."""
    from pipeline.storage.store import Store

    path = tmp_path / "veille.db"
    Store.open(path).close()
    connection = sqlite3.connect(path)
    try:
        parameters = {name: "x" for name in re.findall(r"(?<!:):([a-z_]+)", sql)}
        assert connection.execute(sql, parameters).fetchall() == []  # an empty database
    finally:
        connection.close()
