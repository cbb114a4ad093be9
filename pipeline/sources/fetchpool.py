"""Fetching in processes of their own: the run's process schedules and writes, and the
HTTP work (httpx's CPU per request, TLS, decompression) runs beside it on other cores.

``FetchPool(network)`` has the interface of :class:`~pipeline.sources.fetch.Fetcher`
(``fetch``, ``slow_down``, ``bytes_received``). Behind it, ``network.fetch_processes``
child processes each run an event loop and a ``Fetcher`` of their own. A host is
always served by the same child (its name decides which), so the per-host cap, the
delay between requests to it and its robots.txt Crawl-delay hold exactly as in one
process; the global cap, ``network.concurrency``, is shared out among the children.

Between the run and a child: length-prefixed pickles on a socket pair, private to
the two processes. A fetch that the run stops waiting for (its deadline, a source's
time running out) is cancelled in the child too. A redirect hop that needs the run's
judgement (an article page's robots.txt, ``hop_check``) is asked back of the run
while the child keeps serving its other requests. A child that dies fails the
fetches it held, each with a FetchError saying so, and the next fetch to its hosts
starts a new child. A child whose run's process is gone (killed) sees its socket
close and exits.

The children are started with ``python -m pipeline.sources.fetchpool FD``: a fresh
interpreter that imports the fetcher and nothing of the parsers or the store. They
ignore SIGINT and SIGTERM, which a terminal or a service manager sends to the whole
process group: the run decides when they stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import FetchError
from pipeline.models import Fetched
from pipeline.settings.config import Network
from pipeline.sources.fetch import Fetcher, HopCheck, HopRefused

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("!I")
START_TIMEOUT = 30.0  # seconds for a child to import the fetcher and say it is ready
STOP_TIMEOUT = 5.0  # seconds for a child to close its connections once told to stop


async def _send(writer: asyncio.StreamWriter, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_FRAME.pack(len(data)))
    writer.write(data)
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> Any:
    """The next message; raises asyncio.IncompleteReadError when the other side is gone."""
    (size,) = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    return pickle.loads(await reader.readexactly(size))


def _error_fields(exc: FetchError) -> tuple[str, str, str, int | None, float | None]:
    return str(exc), exc.url, exc.kind, exc.status, exc.retry_after


def _error_from(fields: tuple[str, str, str, int | None, float | None]) -> FetchError:
    message, url, kind, status, retry_after = fields
    return FetchError(message, url=url, kind=kind, status=status, retry_after=retry_after)


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def shares(total: int, parts: int) -> list[int]:
    """``total`` dealt into ``parts`` near-equal shares of at least 1 each."""
    base, extra = divmod(total, parts)
    return [max(1, base + (1 if k < extra else 0)) for k in range(parts)]


def open_fetcher(network: Network) -> Fetcher | FetchPool:
    """What a run fetches with: a FetchPool, or a Fetcher in this process when
    ``network.fetch_processes`` is 0."""
    if network.fetch_processes == 0:
        return Fetcher(network)
    return FetchPool(network)


def default_processes() -> int:
    """Fetch processes when ``network.fetch_processes`` is not set: one per core beyond
    the first, at most 4 (the run's process keeps a core for scheduling and writing)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


# ------------------------------------------------------------------ the run's side


@dataclass
class _Child:
    """One fetch process as the run sees it."""

    share: int  # its part of network.concurrency
    process: subprocess.Popen[bytes] | None = None
    sock: socket.socket | None = None  # its end of the socket pair, until connected
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    listener: asyncio.Task[None] | None = None
    ready: asyncio.Future[None] | None = None
    # request id -> (the future the caller awaits, its hop check, its URL)
    pending: dict[int, tuple[asyncio.Future[Fetched], HopCheck | None, str]] = field(
        default_factory=dict
    )
    slowed: dict[str, float] = field(default_factory=dict)  # Crawl-delays it was told


class FetchPool:
    """``async with FetchPool(network) as f: await f.fetch(url, etag=...)``: a Fetcher
    whose requests run in ``network.fetch_processes`` child processes."""

    def __init__(self, network: Network, *, processes: int | None = None) -> None:
        self.network = network
        count = processes or network.fetch_processes or default_processes()
        self._children = [_Child(share) for share in shares(network.concurrency, count)]
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.bytes_received = 0

    async def __aenter__(self) -> FetchPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---------------------------------------------------------------- the interface

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        trusted: bool = False,
        accept: str | None = None,
        max_bytes: int | None = None,
        hop_check: HopCheck | None = None,
    ) -> Fetched:
        """As Fetcher.fetch, in the child that serves ``url``'s host. Raises FetchError."""
        child = await self._child(host_of(url))
        loop = asyncio.get_running_loop()
        ident = next(self._ids)
        future: asyncio.Future[Fetched] = loop.create_future()
        child.pending[ident] = (future, hop_check, url)
        options = {
            "etag": etag,
            "last_modified": last_modified,
            "trusted": trusted,
            "accept": accept,
            "max_bytes": max_bytes,
        }
        try:
            assert child.writer is not None
            await _send(child.writer, ("fetch", ident, url, options, hop_check is not None))
            return await future
        except asyncio.CancelledError:
            # the caller stopped waiting: the child stops the request too
            if child.writer is not None and not child.writer.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    child.writer.write(self._frame(("cancel", ident)))
            raise
        except (ConnectionError, OSError) as exc:
            raise FetchError(
                f"the fetch process stopped: {exc}", url=url, kind="protocol"
            ) from None
        finally:
            child.pending.pop(ident, None)

    def slow_down(self, url: str, delay: float) -> None:
        """A host asked for more time between requests (robots.txt Crawl-delay): told to
        the child that serves it (now, or when it starts)."""
        host = host_of(url)
        child = self._children[self._index(host)]
        child.slowed[url] = max(child.slowed.get(url, 0.0), delay)
        if child.writer is not None and not child.writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                child.writer.write(self._frame(("slow", url, delay)))

    async def aclose(self) -> None:
        """Tell every child to stop, and wait for them (killed if they do not)."""
        self._closed = True
        for child in self._children:
            if child.writer is not None and not child.writer.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    child.writer.write(self._frame(("stop",)))
                    child.writer.write_eof()
            if child.sock is not None:  # spawned ahead and never asked anything
                child.sock.close()
                child.sock = None
        for child in self._children:
            await self._stop(child)

    # ---------------------------------------------------------------- the children

    @staticmethod
    def _frame(message: Any) -> bytes:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        return _FRAME.pack(len(data)) + data

    def _index(self, host: str) -> int:
        return zlib.crc32(host.encode()) % len(self._children)

    async def _child(self, host: str) -> _Child:
        """The live child serving ``host``; started (again) if it is not running."""
        if self._closed:
            raise FetchError("the run's fetching has stopped", url=host, kind="protocol")
        child = self._children[self._index(host)]
        if child.ready is None or (child.ready.done() and child.listener is None):
            child.ready = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._start(child))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(child.ready)
        except FetchError as exc:
            raise FetchError(str(exc), url=host, kind="protocol") from None
        return child

    def spawn(self) -> None:
        """Start every child now, without waiting for them: they import the fetcher while
        the run opens its database and reads its sources. Raises nothing: a child that
        cannot be started is tried again, and its error given, at its first request."""
        for child in self._children:
            if child.process is None:
                with contextlib.suppress(OSError):
                    self._spawn(child)

    def discard(self) -> None:
        """Stop children that were spawned but never used (the run failed before its
        pass): their socket closes, and they exit."""
        for child in self._children:
            if child.sock is not None:
                child.sock.close()
                child.sock = None
            if child.process is not None and child.process.poll() is None:
                try:
                    child.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()

    def _spawn(self, child: _Child) -> None:
        """Raises OSError."""
        ours, theirs = socket.socketpair()
        try:
            child.process = subprocess.Popen(
                # -P: the current directory is not searched, so a folder named
                # pipeline where the run was started is never imported instead
                [sys.executable, "-P", "-m", "pipeline.sources.fetchpool", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        child.sock = ours

    async def _start(self, child: _Child) -> None:
        assert child.ready is not None
        if child.sock is None:  # not spawned ahead, or a new child for a dead one
            try:
                self._spawn(child)
            except OSError as exc:
                child.ready.set_exception(
                    FetchError(f"cannot start a fetch process: {exc}", url="", kind="protocol")
                )
                child.ready.exception()  # retrieved: a caller may never await it
                return
        ours, child.sock = child.sock, None
        assert ours is not None
        reader, writer = await asyncio.open_connection(sock=ours)
        child.reader, child.writer = reader, writer
        try:
            network = self.network.model_copy(update={"concurrency": child.share})
            await _send(writer, ("start", network, logging.getLogger().getEffectiveLevel()))
            for url, delay in child.slowed.items():
                await _send(writer, ("slow", url, delay))
            async with asyncio.timeout(START_TIMEOUT):
                answer = await _receive(reader)
            if answer != ("ready",):
                raise ConnectionError(f"unexpected first message {answer!r}")
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            writer.close()
            await self._reap(child)
            child.ready.set_exception(
                FetchError(f"the fetch process did not start: {exc!r}", url="", kind="protocol")
            )
            child.ready.exception()  # retrieved: a caller may never await it
            return
        child.listener = asyncio.create_task(self._listen(child))
        child.ready.set_result(None)

    async def _listen(self, child: _Child) -> None:
        """The child's answers, until its socket closes."""
        assert child.reader is not None
        try:
            while True:
                message = await _receive(child.reader)
                kind, ident = message[0], message[1]
                entry = child.pending.get(ident)
                if kind == "ok":
                    self.bytes_received += message[3]
                    if entry and not entry[0].done():
                        entry[0].set_result(message[2])
                elif kind == "error":
                    self.bytes_received += message[3]
                    if entry and not entry[0].done():
                        entry[0].set_exception(_error_from(message[2]))
                elif kind == "hop":
                    task = asyncio.create_task(self._hop(child, ident, message[2]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, pickle.UnpicklingError):
            pass
        finally:
            await self._reap(child)
            code = child.process.returncode if child.process else None
            for future, _, url in list(child.pending.values()):
                if not future.done():
                    future.set_exception(
                        FetchError(
                            f"the fetch process stopped (exit status {code}) before answering",
                            url=url,
                            kind="protocol",
                        )
                    )
            child.pending.clear()
            child.listener = None
            if child.writer is not None:
                child.writer.close()
            if not self._closed and code not in (0, None):
                logger.warning(
                    "a fetch process stopped (exit status %s); a new one takes its hosts", code
                )

    async def _hop(self, child: _Child, ident: int, target: str) -> None:
        """A redirect hop of request ``ident``, judged here (robots.txt is the run's)."""
        entry = child.pending.get(ident)
        answer: HopRefused | None = None
        if entry is not None and entry[1] is not None:
            try:
                answer = await entry[1](target)
            except FetchError as exc:
                answer = HopRefused(str(exc), kind="refused")
        if child.writer is not None and not child.writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError, ConnectionError):
                await _send(child.writer, ("hop", ident, answer))

    async def _stop(self, child: _Child) -> None:
        if child.listener is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await asyncio.shield(child.listener)
        await self._reap(child)

    @staticmethod
    async def _reap(child: _Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        for _ in range(int(STOP_TIMEOUT / 0.05)):
            if process.poll() is not None:
                return
            await asyncio.sleep(0.05)
        process.kill()
        await asyncio.to_thread(process.wait)


# ------------------------------------------------------------------ the child's side


async def _serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        _, network, level = await _receive(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # spawned ahead for a run that ended before its pass

    logging.basicConfig(level=level, format="%(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    tasks: dict[int, asyncio.Task[None]] = {}
    hops: dict[int, asyncio.Future[HopRefused | None]] = {}
    lock = asyncio.Lock()  # one frame at a time on the socket

    async def answer(message: Any) -> None:
        async with lock:
            await _send(writer, message)

    async with Fetcher(network) as fetcher:
        reported = 0

        def received() -> int:
            nonlocal reported
            delta, reported = fetcher.bytes_received - reported, fetcher.bytes_received
            return delta

        def asker(ident: int) -> Callable[[str], Awaitable[HopRefused | None]]:
            async def ask(target: str) -> HopRefused | None:
                future: asyncio.Future[HopRefused | None] = (
                    asyncio.get_running_loop().create_future()
                )
                hops[ident] = future
                try:
                    await answer(("hop", ident, target))
                    return await future
                finally:
                    hops.pop(ident, None)

            return ask

        async def one(ident: int, url: str, options: dict[str, Any], hop: bool) -> None:
            try:
                fetched = await fetcher.fetch(
                    url, hop_check=asker(ident) if hop else None, **options
                )
            except FetchError as exc:
                message: Any = ("error", ident, _error_fields(exc), received())
            except Exception as exc:  # a bug in a request costs that request, not the others
                logger.exception("fetch url=%s failed in the fetch process", url)
                failure = FetchError(
                    f"internal error: {type(exc).__name__}: {exc}", url=url, kind="protocol"
                )
                message = ("error", ident, _error_fields(failure), received())
            else:
                message = ("ok", ident, fetched, received())
            finally:
                tasks.pop(ident, None)
            await answer(message)

        await answer(("ready",))
        while True:
            try:
                message = await _receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the run's process is gone, or told us to stop
            kind = message[0]
            if kind == "fetch":
                _, ident, url, options, hop = message
                tasks[ident] = asyncio.create_task(one(ident, url, options, hop))
            elif kind == "cancel":
                if (task := tasks.get(message[1])) is not None:
                    task.cancel()
            elif kind == "hop":
                if (future := hops.get(message[1])) is not None and not future.done():
                    future.set_result(message[2])
            elif kind == "slow":
                fetcher.slow_down(message[1], message[2])
            elif kind == "stop":
                break
        for task in list(tasks.values()):
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    writer.close()


def main(argv: list[str]) -> int:
    # a child lives exactly as long as its run: Ctrl-C in a terminal and a service
    # manager's SIGTERM reach the whole group, and the run decides (it stops its
    # children as it winds down, and a run that dies closes their socket)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    asyncio.run(_serve(sock))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
