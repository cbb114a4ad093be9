"""The package's layout by stage: no import cycle, no stage importing a later one, and httpx
only in fetch, read from the source with ast.

Every import counts, those inside functions and under TYPE_CHECKING too: a cycle hidden in
a function is still a cycle a reader has to hold in their head."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

# The order data flows in. A module may import its own stage and the stages before it.
BASE = 0  # models, errors, lock and the package itself: every stage may use them
RANKS = {"settings": 1, "sources": 2, "analysis": 3, "storage": 4, "outputs": 5}
TOP = 6  # cli, schedule, run and the run's steps (flow, collect, pages): they call every stage
BASE_MODULES = {"pipeline", "pipeline.models", "pipeline.errors", "pipeline.lock"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def rank(module: str) -> int:
    if module in BASE_MODULES:
        return BASE
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in RANKS:
        return RANKS[parts[1]]
    return TOP


def imported(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(module of this package, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pipeline":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "pipeline":
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield (submodule if submodule in known else node.module), node.lineno


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {target for target, _ in imported(path, known) if target != name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_function_level_imports_and_finds_a_planted_cycle() -> None:
    edges = graph()
    # run.py's imports are at module level, cli.py imports some commands' modules lazily
    assert "pipeline.storage.store" in edges["pipeline.run"]
    assert "pipeline.analysis.formcheck" in edges["pipeline.cli"]
    planted = {**edges, "pipeline.models": edges["pipeline.models"] | {"pipeline.run"}}
    assert any("pipeline.models" in c and "pipeline.run" in c for c in cycles(planted))


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_no_stage_imports_a_later_stage() -> None:
    known = modules()
    upward = [
        f"{name} (line {line}) imports {target}"
        for name, path in known.items()
        for target, line in imported(path, known)
        if rank(target) > rank(name)
    ]
    assert upward == []


def test_every_module_sits_in_a_stage_or_is_named_at_the_top() -> None:
    top = {n for n in modules() if rank(n) == TOP}
    assert top == {
        "pipeline.__main__",
        "pipeline.cli",
        "pipeline.schedule",
        "pipeline.run",
        "pipeline.flow",
        "pipeline.collect",
        "pipeline.pages",
    }


def test_only_fetch_imports_httpx() -> None:
    """(The same check for sqlite3 and sqlite_utils is in test_store_errors.py.)"""
    users = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "httpx" for n in names):
                users.add(name)
    assert users == {"pipeline.sources.fetch"}
