"""Run a parser on hostile bytes in a child process bounded in wall time and memory.

``run_bounded(func, payload, limits=...)`` calls ``func(payload)`` in a worker process
that capped its own address space when it started. A regular-expression blow-up, an
entity bomb that slipped through or a parser bug costs that one input (ParseError
with a sentence), never the run.

Workers come from a forkserver (a clean single-threaded process with the parsers
already imported, so a fork never inherits the run's threads or sockets) and are
reused: starting a process and warming trafilatura costs far more than most
documents. A worker is replaced after a timeout (it is killed), after any failure
(its state is not trusted any more), after ``MAX_USES`` documents, or when its memory
has grown past half of its allowance or RETIRE_GROWTH_MB, so every document starts
with at least half of ``memory_mb`` free under the cap and an idle worker holds
little. ``retire_idle_workers()`` stops the idle ones before a document that may
need the whole allowance.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.errors import ParseError

T = TypeVar("T")

# pipeline.cli: a child started for the `veille` script imports that script again as
# its main module; preloaded, that import costs nothing
PRELOAD = [
    "pipeline.sources.parse",
    "pipeline.analysis.extract",
    "feedparser",
    "bs4",
    "lxml.etree",
    "trafilatura",
    "datasketch",  # story signatures, in the analysis workers
    "pipeline.cli",
]
MAX_USES = 200  # documents per worker before it is replaced
MAX_IDLE = 8  # idle workers kept per memory allowance
# a worker whose heap grew this much is replaced: the memory a large document made it
# take is not given back to the system while it lives, and an idle worker keeps it
RETIRE_GROWTH_MB = 96

Setup = tuple[str, bytes]  # (key, bytes) a worker keeps between documents: see run_bounded
_setup: Setup | None = None  # in a worker: the last setup the run sent it


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 30.0  # seconds of wall time for one input
    memory_mb: int = 256  # address space the child may add to what it starts with


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _work(func: Callable[[Any], Any], payload: Any, what: str, memory_mb: int) -> tuple[str, Any]:
    try:
        return "ok", func(payload)
    except ParseError as exc:
        return "error", str(exc)
    except MemoryError:
        return "fatal", f"refused: {what} needs more than {memory_mb} MB of memory"
    except RecursionError:
        return "fatal", "refused: the document nests elements too deeply"
    except Exception as exc:  # a parser bug on hostile input must cost one input, not the run
        return "fatal", f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}"


def worker_setup(key: str) -> bytes:
    """In a worker: the bytes ``run_bounded(..., setup=(key, bytes))`` sent it. Raises
    ParseError if this worker was never sent them (a caller's bug, not the input's)."""
    if _setup is None or _setup[0] != key:
        raise ParseError("the worker process was not given its setup")
    return _setup[1]


def _serve(conn: multiprocessing.connection.Connection, memory_mb: int) -> None:
    """Worker process: cap the address space, then answer one request after another.

    Each answer carries the worker's memory use, so the parent can retire a worker
    whose heap has grown. After a "fatal" answer the parent retires it too.
    """
    start = _vm_bytes()
    try:
        import resource

        ceiling = start + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    except (ImportError, ValueError, OSError):
        pass  # not on Linux: the wall-clock limit still holds
    global _setup
    conn.send(("ready", start))
    while True:
        try:
            func, payload, what, setup = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:  # the payload itself does not fit
            with contextlib.suppress(Exception):
                conn.send(("fatal", f"refused: the input needs more than {memory_mb} MB of memory"))
            return
        if setup is not None:
            _setup = setup
        status, result = _work(func, payload, what, memory_mb)
        del payload
        try:
            conn.send((status, result, _vm_bytes()))
        except Exception:
            return
        if status == "fatal":
            return


class _Worker:
    def __init__(self, ctx: Any, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_serve, args=(child, memory_mb), daemon=True)
        self.process.start()
        child.close()
        self.uses = 0
        self.setup_key: str | None = None  # the setup it holds (worker_setup)
        self.start_vm = 0
        self.vm = 0
        self.ready = False

    def wait_ready(self, timeout: float) -> bool:
        if self.ready:
            return True
        if not self.conn.poll(timeout):
            return False
        try:
            status, start = self.conn.recv()
        except (EOFError, OSError):
            return False
        self.ready = status == "ready"
        self.start_vm = self.vm = int(start)
        return self.ready

    @property
    def fresh_enough(self) -> bool:
        grown = self.vm - self.start_vm
        return (
            self.process.is_alive()
            and self.uses < MAX_USES
            and grown < min(self.memory_mb // 2, RETIRE_GROWTH_MB) * 1024 * 1024
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class _Pool:
    """Idle workers per memory allowance; any thread may take one and give it back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[int, list[_Worker]] = {}
        self._pid = os.getpid()

    def take(self, ctx: Any, memory_mb: int) -> _Worker:
        with self._lock:
            if self._pid != os.getpid():  # a forked copy of the pool: its workers are not ours
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.get(memory_mb, [])
            if idle:
                return idle.pop()
        return _Worker(ctx, memory_mb)

    def retire_idle(self) -> None:
        with self._lock:
            idle, self._idle = [w for ws in self._idle.values() for w in ws], {}
        for worker in idle:
            worker.stop()

    def give_back(self, worker: _Worker) -> None:
        if worker.fresh_enough:
            with self._lock:
                idle = self._idle.setdefault(worker.memory_mb, [])
                if len(idle) < MAX_IDLE:
                    idle.append(worker)
                    return
        worker.stop()


_pool = _Pool()
_context: Any = None  # a ForkServerContext or SpawnContext, made on first use


def _mp_context() -> Any:
    global _context
    if _context is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        else:
            _context = multiprocessing.get_context("spawn")
    return _context


def retire_idle_workers() -> None:
    """Stop the workers waiting for work (before a document that may need all the memory)."""
    _pool.retire_idle()


def run_bounded(
    func: Callable[[Any], T],
    payload: Any,
    *,
    limits: Limits,
    what: str = "parsing",
    reuse: bool = True,
    setup: Setup | None = None,
) -> T:
    """``func(payload)`` in a bounded worker. Blocking; raises ParseError on any failure.

    ``func`` must be a module-level function (it is pickled by name). ``reuse=False``
    stops the worker afterwards (a one-off job that leaves it holding memory).
    ``setup``: (key, bytes) that ``func`` reads with :func:`worker_setup` (the run's own
    data, never fetched content). A reused worker keeps them, so they cross the pipe
    once per worker and key, not with every document.
    """
    started = time.monotonic()
    worker = _pool.take(_mp_context(), limits.memory_mb)
    healthy = False
    message: tuple[Any, ...] | None = None
    try:
        # a new worker's start-up counts toward the limit: a cold start is bounded too
        if not worker.wait_ready(max(0.0, limits.timeout - (time.monotonic() - started))):
            if time.monotonic() - started >= limits.timeout:
                raise ParseError(
                    f"refused: {what} took longer than {limits.timeout:g} s "
                    "(the worker process was still starting)"
                )
            raise ParseError(f"{what} died: the worker process did not start")
        # a worker that died reading the input may have left its last words: read below
        sent = setup if setup is not None and worker.setup_key != setup[0] else None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError, OSError):
            worker.conn.send((func, payload, what, sent))
        remaining = max(0.0, limits.timeout - (time.monotonic() - started))
        if worker.conn.poll(remaining):
            with contextlib.suppress(EOFError, OSError):  # the worker died mid-answer
                message = worker.conn.recv()
        if message is None:
            if time.monotonic() - started >= limits.timeout:
                raise ParseError(f"refused: {what} took longer than {limits.timeout:g} s")
            worker.process.join(1)
            raise ParseError(f"{what} died (exit code {worker.process.exitcode})")
        status, result = message[0], message[1]
        worker.uses += 1
        if len(message) > 2:
            worker.vm = int(message[2])
        healthy = status in ("ok", "error")
        if setup is not None:
            worker.setup_key = setup[0]
        if status == "ok":
            return result  # type: ignore[no-any-return]
        raise ParseError(str(result))
    finally:
        if healthy and reuse:
            _pool.give_back(worker)
        else:
            worker.stop()
