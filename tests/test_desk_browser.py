"""The desk in a real browser: Debian's chromium driven by Playwright against `veille
datasette` run as its own process. Log in, reject a mention, drop a story, highlight one
with a comment, approve the week; the digest a local SMTP server then receives shows it.

Skipped, with the reason, where chromium is not installed (.ci/run installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.outputs.send import send_digest
from pipeline.run import run
from pipeline.settings.config import Config
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.run_cli import ROOT
from tests.smtp_server import SmtpServer
from tests.test_desk import PASSWORD, make_account
from tests.test_review import GLIOCURE, VALNEVA_FR, _config, this_week

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)
XENO = "https://www.ouest-sante.example/economie/xenothera-leve-12-millions.html"
COMMENT = "Un essai de phase 2 pour une start-up angevine."
# what Chromium needs on a machine without a network or a display (see the machine notes)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(
    write_config: WriteConfig, server: FixtureServer, db_path: Path
) -> Iterator[tuple[str, Config, Path]]:
    """The desk of a run's database, served by `veille datasette`, with one desk account."""
    config = _config(write_config, server, review=True)
    run(config, db_path=db_path)
    made = make_account(db_path, "claire")
    assert made.returncode == 0, made.stderr
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "datasette",
            "--config",
            str(config.path),
            "--db",
            str(db_path),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "Datasette did not start"
            try:
                with urllib.request.urlopen(f"{base}/-/desk", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        yield base, config, db_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_team_reviews_the_week_in_a_browser_and_the_mail_shows_it(
    served: tuple[str, Config, Path], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    base, config, db_path = served
    week = this_week()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{base}/-/desk?week={week.label}")
        assert page.locator("#read-only").is_visible()  # no login: nothing to click
        assert page.locator("button[data-action=drop]").count() == 0

        page.click("#read-only a")  # "Se connecter"
        page.fill("input[name=username]", "claire")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        page.goto(f"{base}/-/desk?week={week.label}")
        assert page.locator("#read-only").count() == 0

        story = page.locator(f'#member-valneva article[data-url="{VALNEVA_FR}"]')
        story.locator("button[data-action=reject]").click()
        page.wait_for_load_state()
        assert page.locator(f'#member-valneva article[data-url="{VALNEVA_FR}"]').count() == 0

        page.locator(
            f'#member-xenothera article[data-url="{XENO}"] button[data-action=drop]'
        ).click()
        page.wait_for_load_state()

        card = page.locator(f'#member-gliocure article[data-url="{GLIOCURE}"]')
        card.locator("form:has(button[data-action=highlight]) input[name=comment]").fill(COMMENT)
        card.locator("button[data-action=highlight]").click()
        page.wait_for_load_state()
        assert page.locator(f'article.highlighted[data-url="{GLIOCURE}"]').count() >= 1

        page.click("button[name=approve]")
        page.wait_for_load_state()
        assert "approuvée par claire" in page.locator("#approval").inner_text()
        page.screenshot(path=str(tmp_path / "desk.png"), full_page=True)
        trail = page.locator("table.trail").inner_text()
        browser.close()
    # the audit trail: the four verdicts, each by the account logged in
    assert trail.count("par claire") == 4
    assert "pas à propos de Valneva" in trail and "pas pertinent" in trail and COMMENT in trail

    with SmtpServer() as smtp:
        result = send_digest(
            config,
            db_path=db_path,
            week=week,
            env=smtp.env(),
            now=week.end + timedelta(hours=7, minutes=30),
        )
        assert result.status == "sent", result
        assert len(smtp.received) == 1
        message = smtp.received[0].message
    for kind in ("plain", "html"):
        body = message.get_body((kind,))
        assert body is not None
        text = body.get_content()
        assert "À la une" in text and COMMENT in text.replace("&#39;", "'")
        assert "Saint-Herblain recrute" not in text  # the rejected mention's story
        assert "Xenothera lève 12 millions" not in text  # the dropped story
