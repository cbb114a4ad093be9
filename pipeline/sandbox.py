"""Run a parser on hostile bytes in a child process bounded in wall time and memory.

``run_bounded(func, payload, limits=...)`` calls ``func(payload)`` in a child that
first caps its own address space, then receives the payload. A regular-expression
blow-up, an entity bomb that slipped through or a parser bug costs that one input
(ParseError with a sentence), never the run. Children come from a forkserver: a
clean single-threaded process with the parsers already imported, so each fork is
cheap and never inherits the run's threads or sockets.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.errors import ParseError

T = TypeVar("T")

PRELOAD = ["pipeline.parse", "pipeline.extract", "feedparser", "bs4", "lxml.etree", "trafilatura"]


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 30.0  # seconds of wall time for one input
    memory_mb: int = 384  # address space the child may add to what it starts with


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _child(
    conn: multiprocessing.connection.Connection,
    func: Callable[[Any], Any],
    limits: Limits,
    what: str,
) -> None:
    """Child process: cap the address space first, then receive the input and work on it."""
    try:
        import resource

        ceiling = _vm_bytes() + limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    except (ImportError, ValueError, OSError):
        pass  # not on Linux: the wall-clock limit still holds
    try:
        payload = conn.recv()
        conn.send(("ok", func(payload)))
    except ParseError as exc:
        conn.send(("error", str(exc)))
    except MemoryError:
        conn.send(("error", f"refused: {what} needs more than {limits.memory_mb} MB of memory"))
    except RecursionError:
        conn.send(("error", "refused: the document nests elements too deeply"))
    except Exception as exc:  # a parser bug on hostile input must cost one input, not the run
        conn.send(("error", f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        conn.close()


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


def run_bounded(
    func: Callable[[Any], T], payload: Any, *, limits: Limits, what: str = "parsing"
) -> T:
    """``func(payload)`` in a bounded child. Blocking; raises ParseError on any failure.

    ``func`` must be a module-level function (it is pickled by name).
    """
    ctx = _mp_context()
    parent, child = ctx.Pipe(duplex=True)
    process = ctx.Process(target=_child, args=(child, func, limits, what), daemon=True)
    started = time.monotonic()
    process.start()
    child.close()
    message: tuple[str, Any] | None = None
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            parent.send(payload)  # a child that died before reading is reported below
        remaining = max(0.0, limits.timeout - (time.monotonic() - started))
        if parent.poll(remaining):
            with contextlib.suppress(EOFError, OSError):  # the child died mid-answer
                message = parent.recv()
    finally:
        parent.close()
        if process.is_alive():
            process.kill()
        process.join(5)
    if message is None:
        if time.monotonic() - started >= limits.timeout:
            raise ParseError(f"refused: {what} took longer than {limits.timeout:g} s")
        raise ParseError(f"{what} died (exit code {process.exitcode})")
    status, result = message
    if status == "ok":
        return result  # type: ignore[no-any-return]
    raise ParseError(str(result))
