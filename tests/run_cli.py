"""`veille` as a user runs it: ``python -m pipeline`` in a child process, from the
repository's root, its output captured as text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def veille(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command's exit code, stdout and stderr; ``env`` adds to this environment;
    ``input_text`` is its standard input."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        input=input_text,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
