"""Command transcripts for the docs, written by cog (`make docs`) and checked by the tests.

Each transcript runs the real `veille` (`python -m pipeline`, the interpreter cog runs
under) in a fresh temporary directory holding only the files it is given, so what the
docs show is what the program prints. What changes from one run to the next is
normalised: the temporary directory, and any pattern the caller names (a date that
depends on today). Nothing here reaches the network.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a date and time printed relative to today, e.g. "next digest Mon 2026-12-07 07:30"
NEXT_DIGEST = (
    r"next digest \w{3} \d{4}-\d{2}-\d{2} \d{2}:\d{2}",
    "next digest Mon YYYY-MM-DD 07:30",
)
# OPML's <dateCreated>, written at export time
DATE_CREATED = (r"<dateCreated>[^<]*</dateCreated>", "<dateCreated>…</dateCreated>")


def repo_file(name: str) -> bytes:
    """A file of the repository, to copy into the transcript's directory."""
    return (ROOT / name).read_bytes()


def veille(
    *commands: str,
    files: Mapping[str, bytes | str] | None = None,
    stdin: str | None = None,
    normalise: Iterable[tuple[str, str]] = (),
) -> str:
    """Run each command line (`veille ...`, or `printf ... | veille ...`) in one directory.

    Returns the transcript: each command after `$ `, then what it printed on stdout and
    stderr, in order. `stdin` feeds the first command only. Raises when a command
    cannot start, so a broken transcript fails `make docs` rather than the page.
    """
    rules = list(normalise)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="veille-docs-") as tmp:
        for name, content in (files or {}).items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode("utf-8") if isinstance(content, str) else content
            path.write_bytes(data)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("VEILLE_", "COLUMNS", "LINES"))
        }
        env.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", "LC_ALL": "C.UTF-8"})
        for index, line in enumerate(commands):
            shown, given = line, stdin if index == 0 else None
            argv = shlex.split(line)
            if argv[0] != "veille":
                raise ValueError(f"a transcript runs veille, not {argv[0]!r}: {line}")
            result = subprocess.run(
                [sys.executable, "-m", "pipeline", *argv[1:]],
                cwd=tmp,
                env=env,
                input=given,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                timeout=60,
                check=False,
            )
            text = result.stdout.replace(os.path.realpath(tmp) + os.sep, "")
            text = text.replace(tmp + os.sep, "")
            for pattern, replacement in rules:
                text = re.sub(pattern, replacement, text)
            if given is not None:
                shown = f"printf {shlex.quote(given)} | {line}"
            out.append(f"$ {shown}")
            out.extend(text.rstrip("\n").splitlines())
            if result.returncode:
                out.append(f"(exit status {result.returncode})")
    return "\n".join(out)


def block(
    *commands: str,
    files: Mapping[str, bytes | str] | None = None,
    stdin: str | None = None,
    normalise: Iterable[tuple[str, str]] = (),
) -> str:
    """The transcript in a fenced code block, ready for `cog.outl`."""
    text = veille(*commands, files=files, stdin=stdin, normalise=normalise)
    return "```\n" + text + "\n```"
