"""The bounded workers: what a reused worker keeps between documents."""

from __future__ import annotations

import os

import pytest

from pipeline.errors import ParseError
from pipeline.sources.sandbox import Limits, retire_idle_workers, run_bounded, worker_setup

LIMITS = Limits(timeout=20.0, memory_mb=256)


def setup_and_pid(key: str) -> tuple[bytes, int]:
    """In the worker: the setup it holds under ``key``, and which process it is."""
    return worker_setup(key), os.getpid()


@pytest.fixture(autouse=True)
def fresh_workers() -> None:
    retire_idle_workers()  # each test starts with no idle worker holding a setup


def test_a_setup_crosses_the_pipe_once_per_worker_and_key() -> None:
    first, pid = run_bounded(setup_and_pid, "k1", limits=LIMITS, setup=("k1", b"forms v1"))
    assert first == b"forms v1"
    # the same key again: the worker is not sent the bytes again, it answers from what it
    # kept (the key names the bytes, so different bytes under it never reach it)
    again, same_pid = run_bounded(setup_and_pid, "k1", limits=LIMITS, setup=("k1", b"ignored"))
    assert (again, same_pid) == (b"forms v1", pid)
    # a new key replaces what it holds
    other, other_pid = run_bounded(setup_and_pid, "k2", limits=LIMITS, setup=("k2", b"forms v2"))
    assert (other, other_pid) == (b"forms v2", pid)


def test_a_worker_never_sent_a_setup_says_so() -> None:
    with pytest.raises(ParseError, match="not given its setup"):
        run_bounded(setup_and_pid, "k1", limits=LIMITS)
