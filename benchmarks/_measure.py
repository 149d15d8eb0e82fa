"""How the benchmarks measure: A and B interleaved in one process, medians, ratios.

Absolute times on a shared machine move with its load; two paths measured in alternating
rounds in the same process see the same load, so their ratio is what a figure means here.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def interleaved(paths: dict[str, Callable[[], Any]], n: int, rounds: int) -> dict[str, float]:
    """Median seconds per call of each path: ``rounds`` rounds of ``n`` calls, the paths
    taking turns (in alternating order, so neither always runs right after the other)."""
    for fn in paths.values():
        fn()  # warm connections, statement caches, pools
    samples: dict[str, list[float]] = {name: [] for name in paths}
    items = list(paths.items())
    for r in range(rounds):
        for name, fn in (items if r % 2 == 0 else items[::-1]):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(values) for name, values in samples.items()}


def throughput(make_call: Callable[[int], Callable[[], Any]], threads: int,
               duration: float) -> float:
    """Calls per second of ``threads`` threads running for ``duration`` seconds; thread i
    calls ``make_call(i)`` (built before the clock starts)."""
    calls = [make_call(i) for i in range(threads)]
    for call in calls:
        call()
    counts = [0] * threads
    start_line = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def run(i: int) -> None:
        call = calls[i]
        start_line.wait()
        done = 0
        while time.perf_counter() < stop_at[0]:
            call()
            done += 1
        counts[i] = done

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    stop_at[0] = time.perf_counter() + duration
    start = time.perf_counter()
    start_line.wait()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def fmt_time(seconds: float) -> str:
    if seconds != seconds:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s"


@dataclass
class Row:
    """One line of a section's table."""

    what: str
    value: str
    floor: str = "—"
    floor_value: str = "—"
    ratio: str = "—"
    budget: str = "—"
    holds: bool | None = None
    command: str = ""

    def cells(self) -> list[str]:
        verdict = {True: "yes", False: "**no**", None: "—"}[self.holds]
        return [self.what, self.value, self.floor, self.floor_value, self.ratio, self.budget,
                verdict, f"`{self.command}`" if self.command else ""]


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        header = ["path", "licenzy-embed", "floor", "floor value", "ratio", "budget", "holds",
                  "reproduce"]
        lines = [f"### {self.title}", ""]
        if self.rows:
            lines += ["| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r.cells()) + " |" for r in self.rows]
            lines.append("")
        lines += self.notes
        if self.notes:
            lines.append("")
        return "\n".join(lines)


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unavailable"


def machine(server_versions: dict[str, str]) -> str:
    """The machine the figures come from, as Markdown."""
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    import sqlalchemy

    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem}; load average at the start "
        f"(1/5/15 min) {load}",
        f"- {platform.system()} {platform.release()}; Python {sys.version.split()[0]} "
        f"({platform.python_implementation()}); SQLAlchemy {sqlalchemy.__version__}; "
        f"SQLite {_sqlite_version()}",
    ]
    lines += [f"- {name}: {version}" for name, version in server_versions.items()]
    lines.append(f"- wrk: {_version(['wrk', '--version'])}")
    return "\n".join(lines)


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version
