"""A day of the soak (tests/scripts/soak.py) in the suite: 300 sources on loopback, one
simulated day from Sunday 25 October 2026 09:00 in Paris, passes from cron then from the
``veille schedule`` daemon with Monday's digest, under the day plan's faults (SIGKILLs in
the fetch, the writes, an alert send and the digest send, the webhook answering 500, the
SMTP server down, the disk full for a pass). The script's own checks are the assertions:
every entry published stored once, the digest received once, each alert story told once,
no lock left, integrity. `make soak` runs the week at 3,000 sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_day_of_soak_under_faults(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.scripts.soak", "--plan", "day", "--sources", "300",
         "--keep", str(tmp_path / "soak")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )  # fmt: skip
    output = result.stdout + result.stderr
    # the script checks everything itself, the faults included (each planned kill landed,
    # the pass on a full disk stopped cleanly): its verdict and its report
    assert result.returncode == 0, output[-8000:]
    assert "soak: passed" in result.stdout, output[-8000:]
    assert result.stdout.count("SIGKILL") >= 6, output[-8000:]
