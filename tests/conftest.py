"""Shared fixtures: a real HTTP server on 127.0.0.1, configs written to tmp_path, real SQLite files."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from pipeline.settings.config import Config, load_config
from tests.fixture_server import FixtureServer

# large configurations' parsed YAML is cached (pipeline/settings/yamlcache.py): the tests
# and the veille processes they start keep it in a directory of their own, not ~/.cache
_CACHE = tempfile.mkdtemp(prefix="veille-test-cache-")
os.environ["VEILLE_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

FIXTURES = Path(__file__).parent / "fixtures"
DEMO_FEEDS = FIXTURES / "demo" / "feeds"
FEEDS = FIXTURES / "feeds"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests reach 127.0.0.0/8 and ::1 only: resolving any other name fails loudly here,
    in this process, instead of reaching a resolver (the CLI tests in subprocesses use
    configurations that name only 127.0.0.1)."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("localhost", "::1") and not name.startswith("127."):
            raise socket.gaierror(socket.EAI_NONAME, f"tests reach loopback only, not {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


CHILD_GUARD = Path(__file__).parent / "childguard"


@pytest.fixture(scope="session", autouse=True)
def children_loopback_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every Python process the tests start (CLI runs, the run's fetch processes, parser
    workers) loads tests/childguard/sitecustomize.py: loopback only, the refusals logged."""
    log = tmp_path_factory.mktemp("childguard") / "refused.log"
    log.touch()
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "VEILLE_TESTS_NET_LOG")}
    paths = [str(CHILD_GUARD), *filter(None, [saved["PYTHONPATH"]])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ["VEILLE_TESTS_NET_LOG"] = str(log)
    try:
        yield log
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def no_child_beyond_loopback(children_loopback_only: Path) -> Iterator[None]:
    """A child process that tried to connect beyond loopback fails the test it ran in."""
    before = children_loopback_only.stat().st_size
    yield
    with children_loopback_only.open(encoding="utf-8") as log:
        log.seek(before)
        refused = log.read()
    assert not refused, f"child processes tried to connect beyond loopback:\n{refused}"


FAST_NETWORK: dict[str, Any] = {
    "allow_private": True,
    "per_host_concurrency": 8,
    "per_host_delay": 0,
    "connect_timeout": 2,
    "read_timeout": 3,
    "total_timeout": 10,
    "retries": 1,
    "retry_backoff": 0.05,
    "max_retry_after": 2,
}


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    """A served directory holding the demo corpus and the test feeds; tests may add files."""
    root = tmp_path / "www"
    shutil.copytree(DEMO_FEEDS, root)
    for path in FEEDS.iterdir():
        shutil.copy(path, root / path.name)
    return root


@pytest.fixture
def server(feed_dir: Path) -> Iterator[FixtureServer]:
    with FixtureServer(feed_dir) as srv:
        yield srv


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "veille.db"


WriteConfig = Callable[..., Config]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """write_config(sources=[...], network={...}, members=[...], digest={...}) -> a loaded
    Config on disk."""

    def write(
        *,
        sources: list[dict[str, Any]],
        network: dict[str, Any] | None = None,
        members: list[dict[str, Any]] | None = None,
        topics: dict[str, Any] | None = None,
        digest: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
        name: str = "sources.yaml",
    ) -> Config:
        data = {
            "cluster": {"name": "Atlanpole Biotherapies", "aliases": ["Atlanpole Biothérapies"]},
            "members": members
            if members is not None
            else [
                {"name": "Xenothera", "aliases": ["Xénothera"]},
                {"name": "Valneva"},
            ],
            # article pages are opt-in here: tests of the feed stage must not look up the
            # publishers' hosts named in the fixtures (nothing but loopback is reached)
            "sources": [{"fetch_articles": False, **s} for s in sources],
            "network": {**FAST_NETWORK, **(network or {})},
            "topics": topics or {},
        }
        if digest is not None:
            data["digest"] = digest
        if schedule is not None:
            data["schedule"] = schedule
        path = tmp_path / name
        with path.open("w", encoding="utf-8") as handle:
            YAML().dump(data, handle)
        return load_config(path)

    return write
