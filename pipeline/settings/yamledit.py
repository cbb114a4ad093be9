"""A person's YAML file + new lines -> the same file with only those lines added, written safely.

The commands that edit sources.yaml (`veille members import`, `veille sources import`)
never dump the whole document again: a YAML dumper would re-wrap the flow lists and
re-indent the blocks a person laid out. They splice new lines into the text, where
ruamel's round-trip loader says the list ends, in the style of its items and with the
file's own line endings; every byte of the rest stays as it was. The result must read
back as exactly the data intended (``reads_back``), or nothing is written, and files
are replaced atomically with their permissions kept (``atomic_write``).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

_ITEM = re.compile(r"^( *)-( +)")
_LONG_LINE = 4096  # new entries are written on one line each, as long as they need


class LayoutError(ValueError):
    """The file is laid out in a way new lines cannot be spliced into (the message says why)."""


def read_text(path: Path) -> str:
    """The file as it is, line endings included (``\\r\\n`` stays ``\\r\\n``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


def line_ending(text: str) -> str:
    """The file's own line endings: Windows ones when it has any."""
    return "\r\n" if "\r\n" in text else "\n"


def reads_back(text: str, expected: Any) -> bool:
    """Whether ``text`` loads (YAML 1.2, safe) as exactly ``expected``."""
    try:
        return bool(YAML(typ="safe", pure=True).load(text) == expected)
    except YAMLError:
        return False


def atomic_write(path: Path, text: str) -> None:
    """``text`` written as it is (its own line endings) in place of ``path``, atomically."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:  # mkstemp makes it 0600: a new file gets what the umask gives any other
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_lines(text: str, lines: list[str]) -> str:
    """``lines`` added at the end of the file after a blank line, in its line endings."""
    eol = line_ending(text)
    return text.rstrip("\r\n") + eol + eol.join(["", *lines, ""])


def _render(item: dict[str, Any], *, flow: bool) -> list[str]:
    """One mapping as YAML lines (quoted where YAML needs it), flow style on one line."""
    node = CommentedMap(item)
    if flow:
        node.fa.set_flow_style()
    yaml = YAML()
    yaml.width = _LONG_LINE
    buffer = io.StringIO()
    yaml.dump(node, buffer)
    return buffer.getvalue().rstrip("\n").split("\n")


def _is_trailer(line: str) -> bool:
    """A blank line, or a comment at the left margin: what leads into the next key."""
    stripped = line.rstrip("\r")
    return not stripped.strip() or stripped.startswith("#")


def append_to_list(
    text: str, key: str, items: list[dict[str, Any]], *, comments: dict[int, str] | None = None
) -> str:
    """``text`` with ``items`` added at the end of the top-level list ``key`` (created at
    the end of the file when absent), each as the list's last item is written (a flow
    mapping on one line, or a block mapping), ``comments[i]`` a comment line before item i.
    Raises LayoutError when the list is written inline (``key: [...]``) or the file is
    not a mapping."""
    comments = comments or {}
    if not items:
        return text
    eol = line_ending(text)
    try:
        document = YAML().load(text)  # round trip: where each node starts
    except YAMLError as exc:
        raise LayoutError(f"not readable as YAML: {exc}") from None
    if not isinstance(document, CommentedMap):
        raise LayoutError("the file is not a YAML mapping")
    existing = document.get(key)
    if key not in document:
        block = [f"{key}:"]
        for index, item in enumerate(items):
            if index in comments:
                block.append(f"  # {comments[index]}")
            first, *rest = _render(item, flow=False)
            block += [f"  - {first}", *(f"    {line}" for line in rest)]
        return append_lines(text, block)
    if not (isinstance(existing, CommentedSeq) and existing and not existing.fa.flow_style()):
        raise LayoutError(
            f"`{key}:` is written inline or empty: write its entries one per line, "
            "each starting with `- `, then import again"
        )
    if not text.endswith("\n"):
        text += eol
    lines = text.split("\n")  # each keeps its "\r" when the file has Windows line endings
    first_line, _ = existing.lc.item(0)
    found = _ITEM.match(lines[first_line])
    if found is None:
        raise LayoutError(f"cannot find where the items of `{key}:` start")
    indent, gap = found.group(1), found.group(2)
    last = existing[-1]
    last_line, column = existing.lc.item(len(existing) - 1)
    flow = isinstance(last, CommentedMap) and bool(last.fa.flow_style())
    keys = list(document.keys())
    position = keys.index(key)
    end = document.lc.key(keys[position + 1])[0] if position + 1 < len(keys) else len(lines) - 1
    # the list ends at its last line of content: blank lines and left-margin comments
    # before the next key belong to that key
    insert_at = end
    while insert_at - 1 > last_line and _is_trailer(lines[insert_at - 1]):
        insert_at -= 1
    cr = "\r" if eol == "\r\n" else ""
    block = []
    for index, item in enumerate(items):
        if index in comments:
            block.append(f"{indent}# {comments[index]}{cr}")
        first, *rest = _render(item, flow=flow)
        block.append(f"{indent}-{gap}{first}{cr}")
        block += [f"{' ' * column}{line}{cr}" for line in rest]
    lines[insert_at:insert_at] = block
    return "\n".join(lines)
