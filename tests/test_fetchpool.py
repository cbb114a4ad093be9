"""Fetching in processes of their own (pipeline.sources.fetchpool): the same answers and
errors as a Fetcher in the run's process, the same politeness per host, cancellation
carried to the child, a dead child costing only its own requests, and no child outliving
a killed run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.errors import FetchError
from pipeline.settings.config import Network
from pipeline.sources.fetch import Fetcher, HopRefused
from pipeline.sources.fetchpool import FetchPool, open_fetcher, shares
from tests.conftest import FAST_NETWORK, WriteConfig
from tests.fixture_server import FixtureServer


def network(**changes: object) -> Network:
    return Network.model_validate({**FAST_NETWORK, **changes})


def test_concurrency_is_shared_out_and_zero_means_in_process() -> None:
    assert shares(20, 1) == [20]
    assert shares(20, 3) == [7, 7, 6]
    assert shares(2, 4) == [1, 1, 1, 1]  # at least one each
    assert isinstance(open_fetcher(network(fetch_processes=0)), Fetcher)
    assert isinstance(open_fetcher(network()), FetchPool)


def test_answers_and_errors_are_those_of_a_fetcher(server: FixtureServer) -> None:
    async def both() -> list[object]:
        out: list[object] = []
        for opened in (Fetcher(network()), FetchPool(network(), processes=2)):
            async with opened as fetcher:
                fetched = await fetcher.fetch(server.url("atlanpole-actus.rss"))
                again = await fetcher.fetch(server.url("atlanpole-actus.rss"), etag=fetched.etag)
                with pytest.raises(FetchError) as missing:
                    await fetcher.fetch(server.url("_/status/404"))
                with pytest.raises(FetchError) as busy:
                    await fetcher.fetch(server.url("_/retry-after/503/3600"))
                out.append(
                    (
                        fetched.status,
                        fetched.body,
                        fetched.final_url,
                        again.status,
                        (missing.value.kind, missing.value.status, str(missing.value)),
                        (busy.value.kind, busy.value.retry_after),
                        fetcher.bytes_received > len(fetched.body) // 2,
                    )
                )
        return out

    in_process, pooled = asyncio.run(both())
    assert pooled == in_process
    assert in_process[0] == 200 and in_process[3] == 304  # type: ignore[index]


def test_a_host_keeps_its_cap_and_its_delay_across_processes(server: FixtureServer) -> None:
    """One request at a time to a host, and a Crawl-delay told before and after its child
    started: the server sees the requests spaced, though the pool has four processes."""

    async def go() -> None:
        pool = FetchPool(network(per_host_concurrency=1, per_host_delay=0), processes=4)
        async with pool:
            slow = server.url("_/slow/0.3/atlanpole-actus.rss")
            await asyncio.gather(*(pool.fetch(slow) for _ in range(4)))
            pool.slow_down(server.url(""), 0.6)
            await asyncio.gather(*(pool.fetch(server.url("atlanpole-actus.rss")) for _ in range(3)))

    asyncio.run(go())
    slow = [r.at for r in server.requests if r.path.startswith("/_/slow")]
    delayed = [r.at for r in server.requests if r.path == "/atlanpole-actus.rss"]
    assert len(slow) == 4 and len(delayed) == 3
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(slow)), slow
    assert all(b - a >= 0.4 for a, b in itertools.pairwise(delayed)), delayed


def test_a_crawl_delay_told_before_the_child_starts_is_kept(server: FixtureServer) -> None:
    async def go() -> None:
        async with FetchPool(network(per_host_delay=0), processes=2) as pool:
            pool.slow_down(server.url("robots.txt"), 0.5)
            await asyncio.gather(*(pool.fetch(server.url("atlanpole-actus.rss")) for _ in range(2)))

    asyncio.run(go())
    first, second = (r.at for r in server.requests)
    # the delay spaces the starts; the first also opened the connection (without it: ~0)
    assert second - first >= 0.3


def test_a_redirect_hop_is_judged_by_the_run(server: FixtureServer) -> None:
    asked: list[str] = []

    async def refuse(target: str) -> HopRefused | None:
        asked.append(target)
        return HopRefused("disallowed by the site's robots.txt", kind="robots")

    async def go() -> FetchError:
        async with FetchPool(network()) as pool:
            with pytest.raises(FetchError) as refused:
                await pool.fetch(server.url("_/redirect/1/atlanpole-actus.rss"), hop_check=refuse)
            # the same request without a check follows the hop
            fetched = await pool.fetch(server.url("_/redirect/1/atlanpole-actus.rss"))
            assert fetched.final_url == server.url("atlanpole-actus.rss")
            return refused.value

    error = asyncio.run(go())
    assert error.kind == "robots" and "robots.txt" in str(error)
    assert asked == [server.url("atlanpole-actus.rss")]


def test_a_fetch_given_up_is_cancelled_and_the_pool_goes_on(server: FixtureServer) -> None:
    async def go() -> None:
        async with FetchPool(network(), processes=1) as pool:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await pool.fetch(server.url("_/silence/5"))
            fetched = await pool.fetch(server.url("atlanpole-actus.rss"))
            assert fetched.status == 200
            assert all(not child.pending for child in pool._children)

    asyncio.run(go())


def test_a_dead_child_fails_its_requests_and_a_new_one_takes_over(server: FixtureServer) -> None:
    """A fault no server can cause: the child is killed while it holds a request."""

    async def go() -> FetchError:
        async with FetchPool(network(), processes=1) as pool:
            await pool.fetch(server.url("atlanpole-actus.rss"))
            (child,) = pool._children
            assert child.process is not None
            first = child.process.pid
            pending = asyncio.create_task(pool.fetch(server.url("_/slow/5/atlanpole-actus.rss")))
            while not any(r.path.startswith("/_/slow") for r in server.requests):
                await asyncio.sleep(0.02)
            os.kill(child.process.pid, signal.SIGKILL)
            with pytest.raises(FetchError) as lost:
                await pending
            again = await pool.fetch(server.url("atlanpole-actus.rss"))
            assert again.status == 200
            assert child.process.pid != first  # a new process took the dead one's hosts
            return lost.value

    error = asyncio.run(go())
    assert "fetch process stopped" in str(error)
    assert "-9" in str(error)  # killed by SIGKILL
    assert error.url.endswith("/_/slow/5/atlanpole-actus.rss")  # the request it held


def test_no_fetch_process_outlives_a_killed_run(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    """SIGKILL to the run's process alone (not its group): its fetch processes see their
    socket close and exit."""
    config = write_config(
        sources=[
            {"id": "lent", "kind": "feed", "url": server.url("_/slow/30/atlanpole-actus.rss")}
        ],
        network={"fetch_processes": 2},
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "--config",
            str(config.path),
            "--db",
            str(db_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(r.path.startswith("/_/slow") for r in server.requests):
            assert time.monotonic() < deadline, "the run never fetched its feed"
            time.sleep(0.05)
        fetchers = [
            p
            for p in psutil.Process(run.pid).children(recursive=True)
            if "pipeline.sources.fetchpool" in " ".join(p.cmdline())
        ]
        assert fetchers, "no fetch process found"
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        _, alive = psutil.wait_procs(fetchers, timeout=10)
        assert not alive, alive
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # the parser workers it left, if any
        run.wait(10)


def fetch_children() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "pipeline.sources.fetchpool" in " ".join(p.cmdline())
    ]


def test_children_spawned_ahead_and_never_asked_exit_at_once(server: FixtureServer) -> None:
    async def go() -> list[int | None]:
        pool = FetchPool(network(), processes=2)
        pool.spawn()
        async with pool:
            pass
        return [child.process.returncode if child.process else None for child in pool._children]

    codes = asyncio.run(go())
    assert len(codes) == 2 and None not in codes  # both ended with the pool
    assert not fetch_children()


def test_a_run_with_nothing_due_leaves_no_fetch_process(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    from pipeline.run import run

    config = write_config(
        sources=[
            {
                "id": "actus",
                "kind": "feed",
                "url": server.url("atlanpole-actus.rss"),
                "interval_minutes": 600,
            }
        ]
    )
    assert run(config, db_path=db_path).status == "ok"
    again = run(config, db_path=db_path)  # the feed is not due yet: no pass
    assert again.not_due == ["actus"] and not again.outcomes
    assert not fetch_children()
