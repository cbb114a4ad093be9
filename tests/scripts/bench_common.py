"""What the benchmark sections share: table rows, process-tree measurement, the veille command."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VEILLE = str(Path(sys.executable).with_name("veille"))

# French and English press words for synthetic texts
WORDS = [
    "la",
    "société",
    "nantaise",
    "annonce",
    "une",
    "levée",
    "de",
    "fonds",
    "pour",
    "financer",
    "son",
    "essai",
    "clinique",
    "de",
    "phase",
    "the",
    "company",
    "said",
    "that",
    "its",
    "trial",
    "met",
    "the",
    "primary",
    "endpoint",
    "and",
    "will",
    "file",
    "for",
    "approval",
    "this",
    "year",
    "biotech",
    "vaccin",
    "anticorps",
    "production",
    "usine",
    "partenariat",
    "accord",
    "licence",
    "recherche",
    "patients",
    "Nantes",
    "Angers",
    "Rennes",
    "Tours",
    "Saint-Herblain",
    "Montaigu",
    "millions",
    "d’euros",
    "résultats",
    "données",
]


@dataclass
class Row:
    """One line of the table: a measure, veille's figure, the baseline's, a target."""

    section: str
    measure: str
    veille: float | None
    unit: str = ""
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None  # None: no target
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.veille is None or not self.baseline:
            return None
        return self.veille / self.baseline


@dataclass
class Section:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


@dataclass
class TreeUsage:
    """What a process and all its descendants used, sampled while it ran."""

    wall: float = 0.0
    peak_rss: int = 0  # bytes: the largest sum of RSS over the tree (shared pages counted twice)
    peak_pss: int = 0  # bytes: the largest sum of PSS (shared pages divided among sharers)
    cpu: float = 0.0  # seconds of user + system CPU, every process of the tree
    processes: int = 0  # distinct processes seen
    returncode: int = 0
    stderr: str = ""


def run_tree(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> TreeUsage:
    """Run a command; sample its process tree's memory and CPU every 50 ms until it ends.

    CPU: each process's own time plus the time of the children it reaped (the
    forkserver reaps the parsers and extractors it forks), last value seen per process,
    and never less than what getrusage(RUSAGE_CHILDREN) says for the whole tree.
    """
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage = TreeUsage()
    own: dict[int, float] = {}  # pid -> user + system of the process itself (last seen)
    reaped: dict[int, float] = {}  # pid -> user + system of the children it has reaped
    parent: dict[int, int] = {}
    stop = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    root = psutil.Process(proc.pid)

    def sample() -> None:
        tick = 0
        while not stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            rss = pss = 0
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    own[p.pid] = t.user + t.system
                    reaped[p.pid] = t.children_user + t.children_system
                    parent.setdefault(p.pid, p.ppid())
                    if tick % 4 == 0:
                        info = p.memory_full_info()
                        rss += info.rss
                        pss += info.pss
                    else:
                        rss += p.memory_info().rss
            usage.peak_rss = max(usage.peak_rss, rss)
            usage.peak_pss = max(usage.peak_pss, pss)
            tick += 1
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    usage.wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rusage_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    usage.cpu = max(rusage_cpu, _tree_cpu(own, reaped, parent))
    usage.processes = len(own)
    usage.returncode = proc.returncode
    usage.stderr = err
    return usage


def _tree_cpu(own: dict[int, float], reaped: dict[int, float], parent: dict[int, int]) -> float:
    """Every sampled process's own time, plus what each parent reaped beyond the children
    we sampled (children too short-lived to be seen, and their last moments)."""
    seen_children: dict[int, float] = {}
    for pid, ppid in parent.items():
        seen_children[ppid] = seen_children.get(ppid, 0.0) + own[pid]
    extra = sum(max(0.0, reaped[pid] - seen_children.get(pid, 0.0)) for pid in own)
    return sum(own.values()) + extra


def veille(*args: str | Path) -> list[str]:
    return [VEILLE, *(str(a) for a in args)]


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB RAM"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: {cpu}, {cores} cores, {ram}, {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def write_config(path: Path, *, sources: list[dict[str, Any]], network: dict[str, Any]) -> None:
    """A sources.yaml: the members, topics, schedule and digest of the project's own file,
    with these sources and network settings (written as JSON, which is YAML 1.2)."""
    import json

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    data = yaml.load((ROOT / "sources.yaml").read_text(encoding="utf-8"))
    data["sources"] = sources
    data["network"] = {**(data.get("network") or {}), **network}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def member_names() -> list[str]:
    from pipeline.settings.config import load_config

    config = load_config(ROOT / "sources.yaml")
    return [m.name for m in config.members if m.kind == "member"]
