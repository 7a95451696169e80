"""Results: the markdown table, the JSON file and the log-log plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.backends import OURS, PYNENC_REDIS, SQLITE, Subject
from benchmarks.measure import Summary

BACKENDS = (OURS, PYNENC_REDIS, SQLITE)


@dataclass
class CallResult:
    """One call on one backend at one size."""

    summary: Summary | None  # None when the call did not run on this backend
    not_run: str | None = None
    commands_per_call: float | None = None
    server_ms_per_call: float | None = None  # the server's own time (INFO commandstats usec)
    round_trips_per_call: float | None = None
    commands: dict[str, float] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)  # the first few distinct problems
    wrong_answers: int = 0
    known_deviation: str | None = None  # documented behaviour of a reference backend, not a failure
    known_deviation_answers: int = 0

    def record(self, problem: str | None, known: str | None) -> None:
        """Record one answer's check: ``known`` explains a problem that is a documented deviation."""
        if problem is None:
            return
        if known is not None:
            self.known_deviation = known
            self.known_deviation_answers += 1
            return
        self.wrong_answers += 1
        if problem not in self.mismatches and len(self.mismatches) < 3:
            self.mismatches.append(problem)

    def verdict(self) -> str:
        if self.wrong_answers:
            return f"{self.wrong_answers} of {self.calls} answers wrong: {'; '.join(self.mismatches)}"
        if self.known_deviation:
            return f"known: {self.known_deviation} ({self.known_deviation_answers} of {self.calls} answers)"
        return ""

    @property
    def calls(self) -> int:
        return self.summary.samples if self.summary else 0


@dataclass
class SizeResult:
    n: int
    calls: dict[str, dict[str, CallResult]] = field(default_factory=dict)  # call -> backend -> result
    targets: dict[str, float] = field(default_factory=dict)  # call -> highest ratio allowed
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

    @property
    def wrong_answers(self) -> int:
        return sum(
            result.wrong_answers for by_backend in self.calls.values() for result in by_backend.values()
        )


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


MEMORY_TARGET = 1.1
"""Memory per invocation, indexes included, as a ratio to pynenc-redis's."""


def _server(result: CallResult) -> str:
    return "-" if result.server_ms_per_call is None else _ms(result.server_ms_per_call)


def _target(ratio: float, target: float | None) -> str:
    if target is None:
        return "-"
    return f"≤ {target:.1f} {'✓' if ratio <= target else '✗'}"


def markdown(size: SizeResult, facts: dict[str, Any]) -> str:
    lines = [
        f"## n = {size.n:,} invocations ({5 * size.n:,} history entries)",
        "",
        f"Machine: {facts['cpu']}, {facts['cores']} cores, Python {facts['python']}, "
        f"Redis {facts.get('redis_server', '?')} (RediSearch {facts.get('search_module', '?')}, "
        f"RedisJSON {facts.get('json_module', '?')}).",
        "",
        "Times in ms (median / p99 of the repetitions), ratio = redis-stack median / pynenc-redis median; "
        "server = the server's own time per call in ms (INFO commandstats usec; the rest of the median "
        "is the client's share and the network); cmds and RTs = Redis commands and round trips per call "
        "(redis-stack / pynenc-redis).",
        "",
        "| call | reps | redis-stack | pynenc-redis | sqlite | ratio | target | server | cmds | RTs | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for call, by_backend in size.calls.items():
        ours, theirs = by_backend[OURS], by_backend[PYNENC_REDIS]
        assert ours.summary is not None and theirs.summary is not None  # both Redis backends run every call
        ratio = ours.summary.median_ms / theirs.summary.median_ms
        cells = []
        for backend in BACKENDS:
            result = by_backend[backend]
            if result.summary is None:
                cells.append("not run¹")
                notes.append(f"¹ {backend}, {call}: {result.not_run}.")
            else:
                cells.append(f"{_ms(result.summary.median_ms)} / {_ms(result.summary.p99_ms)}")
        wrong = any(by_backend[b].wrong_answers for b in BACKENDS)
        verdicts = [f"{b}: {by_backend[b].verdict()}" for b in BACKENDS if by_backend[b].verdict()]
        target = size.targets.get(call)
        lines.append(
            f"| {call} | {ours.summary.samples} | {' | '.join(cells)} | {ratio:.2f} | {_target(ratio, target)} | "
            f"{_server(ours)} / {_server(theirs)} | "
            f"{_num(ours.commands_per_call)} / {_num(theirs.commands_per_call)} | "
            f"{_num(ours.round_trips_per_call)} / {_num(theirs.round_trips_per_call)} | "
            f"{'MISMATCH' if wrong else 'ok'}{': ' + ' / '.join(verdicts) if verdicts else ''} |"
        )
    ours_mem = size.load[OURS]["bytes_per_invocation"]
    theirs_mem = size.load[PYNENC_REDIS]["bytes_per_invocation"]
    memory_ratio = ours_mem / theirs_mem
    lines += [
        f"| memory per invocation incl. indexes (B) | - | {ours_mem:,.0f} | {theirs_mem:,.0f} | "
        f"{size.load[SQLITE]['bytes_per_invocation']:,.0f} (file) | {memory_ratio:.2f} | "
        f"{_target(memory_ratio, MEMORY_TARGET)} | - | - | - | - |",
        "",
        *(f"{note}  " for note in notes),
        "Target: the highest ratio the row may have (✓ met, ✗ not met). Write rows time the "
        "backend's own call, the caller's objects built before the clock starts. "
        "Load (public write API, batches of 100): "
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
    import matplotlib.ticker

    calls = list(sizes[0].calls) if sizes else []
    columns = 4
    rows = max(1, -(-len(calls) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, call in zip(axes.flat, calls, strict=False):
        for backend in BACKENDS:
            points = [
                (size.n, summary.median_ms)
                for size in sizes
                if (summary := size.calls[call][backend].summary) is not None
            ]
            axis.plot([n for n, _ in points], [ms for _, ms in points], marker="o", label=backend)
        axis.set_xscale("log")
        axis.set_yscale("log")
        sizes_n = [size.n for size in sizes]
        axis.set_xticks(sizes_n, [f"{n:,}" for n in sizes_n])
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
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
