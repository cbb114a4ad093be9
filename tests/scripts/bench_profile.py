"""Where the time of a first run goes, in every process: `veille run` under py-spy.

    python -m tests.scripts.bench_profile --py-spy /path/to/py-spy [--scale 0.5] [--small] [--rerun]

Serves the bench's synthetic corpus (or the many-small-sources one with --small), runs
`veille run` under ``py-spy record --subprocesses --idle --format raw`` (py-spy is not a
dependency of veille: install it anywhere, pass its path), then sums the samples by
process (the run, the forkserver, the bounded workers), by stage (the frame of
pipeline/ nearest the leaf that names one) and by state (working, or waiting: a leaf
in a wait, a select, a lock, a read from a pipe or a sleep). Prints the table; keeps the
folded stacks with --keep DIR.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.scripts.bench_common import ROOT, VEILLE, write_config
from tests.scripts.bench_corpus import build_corpus, build_small_corpus
from tests.scripts.bench_e2e import BENCH_NETWORK, LATENCY, corpus_sources, serve_corpus

# a leaf frame in one of these functions is a thread waiting, not working
WAITING = {
    "select",  # the event loop with nothing to do
    "poll",
    "wait",
    "_wait_for_tstate_lock",
    "acquire",
    "sleep",
    "recv",  # a pipe to or from a worker: waiting for the other end
    "_recv",
    "recv_bytes",
    "_recv_bytes",
    "read_signed",  # the forkserver waiting for an order
    "_worker",  # an idle thread of the thread pool
    "accept",
    "waitpid",
}
# the stage a sample belongs to: the innermost pipeline/ module the stack goes through
STAGES = (
    ("pipeline/analysis/analyse", "analyse (mentions, topics, fundings, story keys)"),
    ("pipeline/analysis/mentions", "analyse (mentions, topics, fundings, story keys)"),
    ("pipeline/analysis/stories", "analyse (mentions, topics, fundings, story keys)"),
    ("pipeline/analysis/members", "analyse: deriving the members' forms"),
    ("pipeline/analysis/extract", "extract (article pages: trafilatura)"),
    ("pipeline/sources/parse", "parse (feeds: feedparser)"),
    ("pipeline/storage/store", "store (SQLite writes and lookups)"),
    ("pipeline/sources/sandbox", "sandbox (bounded workers: start, pipes)"),
    ("pipeline/sources/fetch", "fetch (httpx)"),
    ("pipeline/sources/robots", "fetch (robots.txt)"),
    ("pipeline/sources/dedupe", "dedupe (canonical URLs, entries -> articles)"),
    ("pipeline/pages", "pages (choosing, fetching, merging)"),
    ("pipeline/collect", "collect (fetch and read a source)"),
    ("pipeline/run", "run (the pass itself)"),
    ("pipeline/settings/config", "config (loading sources.yaml)"),
    ("pipeline/cli", "cli"),
)


def _process(line: str) -> tuple[str, str]:
    """(the innermost process, the stack inside it) of one folded line: with
    --subprocesses py-spy writes each ancestor process as a frame of its own."""
    frames = line.split(";")
    nested = [i for i, f in enumerate(frames) if f.startswith("process ")]
    if not nested:
        return "process ?", line
    label = frames[nested[-1]]
    if len(nested) == 1:  # the process py-spy started: its command line is not always read
        label = "process veille run"
    return label, ";".join(frames[nested[-1] + 1 :])


def _role(process: str) -> str:
    if process == "process veille run":
        return "the run (veille run)"
    if "resource_tracker" in process:
        return "resource tracker"
    if "forkserver" in process:
        return "forkserver + workers"
    return "other"


def _waiting(leaf: str) -> bool:
    name = leaf.split(" (", 1)[0].rsplit(".", 1)[-1]
    return name in WAITING or "resource_tracker" in leaf


def _stage(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for needle, name in STAGES:
            if needle in frame:
                return name
    return "outside pipeline/ (interpreter start, imports, asyncio)"


def _leaf(stack: str) -> str:
    return stack.rsplit(";", 1)[-1].strip()


def summarise(raw: Path, *, rate: int) -> str:
    per_process: dict[str, Counter[str]] = {}
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        process, rest = _process(stack)
        per_process.setdefault(process, Counter())[rest] += int(count)
    table: Counter[tuple[str, str, str]] = Counter()
    for process, stacks in per_process.items():
        role = _role(process)
        if role == "forkserver + workers" and any("_serve" in s for s in stacks):
            role = "bounded workers"  # a forked worker (the forkserver never serves)
        for stack, count in stacks.items():
            state = "waiting" if _waiting(_leaf(stack)) else "working"
            table[(role, _stage(stack), state)] += count
    out = [f"{'process':22} {'stage':52} {'state':8} {'seconds':>8}"]
    for (role, stage, state), count in sorted(table.items(), key=lambda kv: -kv[1]):
        seconds = count / rate
        if seconds >= 0.1:
            out.append(f"{role:22} {stage:52} {state:8} {seconds:8.1f}")
    roles = Counter[str]()
    for (role, _, state), count in table.items():
        roles[f"{role}, {state}"] += count
    out.append("")
    out += [f"{k:40} {v / rate:8.1f} s" for k, v in sorted(roles.items())]
    out.append(f"({len(per_process)} processes sampled; seconds are thread-seconds at {rate} Hz)")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--py-spy", required=True, help="path of the py-spy executable")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rate", type=int, default=50, help="samples per second per process")
    parser.add_argument("--small", action="store_true", help="the many-small-sources corpus")
    parser.add_argument("--keep", type=Path, help="copy the folded stacks into this directory")
    parser.add_argument(
        "--rerun", action="store_true", help="profile a second run (the first is not sampled)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with serve_corpus(
            scale=args.scale,
            seed=args.seed,
            tmp=tmp,
            build=build_small_corpus if args.small else build_corpus,
            latency=0.0 if args.small else LATENCY,
        ) as served:
            config = tmp / "profile.yaml"
            write_config(config, sources=corpus_sources(served), network=BENCH_NETWORK)
            raw = tmp / "profile.txt"
            run = [VEILLE, "run", "--config", str(config), "--db", str(tmp / "profile.db")]
            if args.rerun:
                subprocess.run(run, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            started = time.perf_counter()
            subprocess.run(
                [
                    args.py_spy,
                    "record",
                    "--subprocesses",
                    "--idle",
                    "--nonblocking",
                    "--function",
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "-o",
                    str(raw),
                    "--",
                    *run,
                ],
                check=True,
                cwd=ROOT,
            )
            print(f"veille run under py-spy: {time.perf_counter() - started:.1f} s of wall time")
        print(summarise(raw, rate=args.rate))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(raw, args.keep / raw.name)


if __name__ == "__main__":
    main()
