"""``./dev bench --throughput``: tasks per second end to end, this package's components against
pynenc's SQLite ones, with every pynenc runner on the same machine in one run; and the start
cost of a new process (:mod:`benchmarks.start_cost`), which every ProcessRunner task pays.
``./dev bench --throughput --pynenc03``: the same on the pynenc 0.3 line instead (:data:`LINES`).

For each runner setup (:data:`SETUPS`: ThreadRunner, MultiThreadRunner, ProcessRunner,
PersistentProcessRunner; one and two runner processes), each workload (:data:`WORKLOADS`:
tasks of 0 ms, tasks of 10 ms, a fan-out workflow) and each composition of the line
(pynenc 0.4: ``redis_stack(components="all")`` on an embedded Redis Stack against pynenc's SQLite
components on a file of their own; pynenc 0.3: this package's state backend with pynenc-redis
0.3.0's other components against pynenc-redis 0.3.0's components, both on the same embedded
Redis Stack):

1. the runner processes start (``python -m benchmarks.throughput runner``), sharing only the
   environment that configures :mod:`benchmarks.throughput_app`;
2. a submitting process (``python -m benchmarks.throughput submit WORKLOAD M K``) waits for
   one warm-up call's result (the runners are up, the indexes exist), then
   - burst: submits ``M`` calls one after the other, then reads every result back (each is
     checked); tasks/s = tasks run / seconds (a fan-out call runs 1 + its children);
     Redis commands per task come from ``INFO commandstats`` around the burst (every
     command the server ran, the runners' polling meanwhile and the scripts' own commands
     included);
   - latency: ``K`` calls one at a time, each from the call to its result read back (no
     queue: what one task costs end to end, process start included for a ProcessRunner);
3. the runners are stopped (``SIGTERM`` to their process group, ``SIGKILL`` after a grace),
   then the app's state is purged.

The pynenc 0.3 line's runner, submitting and purging processes run the interpreter of
``.venv-pynenc03`` (pynenc 0.3.1, pynenc-redis 0.3.0, this package; ``./dev bench --pynenc03``
builds it); the embedded server and the report stay in this process. On pynenc 0.3 this
package provides only its state backend, so both compositions there share pynenc-redis's
orchestrator, broker, trigger and client data store, and the ratio is the state backend's.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import start_cost

STOP_GRACE = 15.0
"""Seconds runners get to stop after ``SIGTERM`` before ``SIGKILL``."""


@dataclass(frozen=True)
class Line:
    """What one run compares: this package's composition against a baseline, on one pynenc line
    (``benchmarks.throughput_app`` builds each composition)."""

    pynenc: str
    ours: str
    baseline: str
    stem: str  # output files: <stem>.md, .json, .png
    note: str  # what each composition runs, for the table's footnote

    @property
    def compositions(self) -> tuple[str, str]:
        return (self.ours, self.baseline)


ON_REDIS = frozenset({"redis-stack", "redis-stack-state", "pynenc-redis"})
"""Compositions whose Redis commands are counted (``INFO commandstats``)."""

LINES = {
    "0.4": Line(
        "0.4",
        "redis-stack",
        "sqlite",
        "throughput",
        'redis-stack: `PynencBuilder().sqlite().redis_stack(components="all")` (every component on '
        "Redis Stack: state backend, orchestrator, broker, trigger, client data store). sqlite: "
        "`PynencBuilder().sqlite()`.",
    ),
    "0.3": Line(
        "0.3",
        "redis-stack-state",
        "pynenc-redis",
        "throughput-pynenc03",
        "redis-stack-state: `PynencBuilder().redis(url).redis_stack()` on pynenc 0.3.1 (this "
        "package's state backend; pynenc-redis 0.3.0's orchestrator, broker, trigger and client "
        "data store). pynenc-redis: `PynencBuilder().redis(url)` (pynenc-redis 0.3.0's five "
        "components, its state backend included). Both on the same embedded Redis Stack, db 0: "
        "only the state backend differs.",
    ),
}


@dataclass(frozen=True)
class Setup:
    """Runner processes of one kind."""

    runner: str
    processes: int

    @property
    def label(self) -> str:
        return f"{self.runner} x{self.processes}"

    @property
    def spawns_per_task(self) -> bool:
        """A ProcessRunner starts a process per invocation: fewer tasks keep its run short."""
        return self.runner == "ProcessRunner"

    @property
    def process_pool(self) -> bool:
        """Runs each invocation in a process of a pool of one per core: a parent waiting for
        its children holds one, so on 2 cores two parents at once leave none for the children
        (pynenc's runner then waits forever, with SQLite as with Redis Stack)."""
        return self.runner in ("ProcessRunner", "PersistentProcessRunner")


SETUPS = tuple(
    Setup(runner, processes)
    for runner in ("ThreadRunner", "MultiThreadRunner", "ProcessRunner", "PersistentProcessRunner")
    for processes in (1, 2)
)


@dataclass(frozen=True)
class Workload:
    """What the submitting process calls: ``task`` of ``benchmarks.throughput_app``."""

    name: str
    task: str
    tasks_per_call: int  # invocations one call runs
    calls: dict[str, int]  # --quick / full: calls of the burst (ProcessRunner: a fifth)

    def burst(self, quick: bool, setup: Setup) -> int:
        count = self.calls["quick" if quick else "full"]
        if self.tasks_per_call > 1 and setup.process_pool:
            return 1  # one parent at a time (Setup.process_pool)
        return max(2, count // 5) if setup.spawns_per_task else count


FAN_OUT_WIDTH = 10  # benchmarks.throughput_app.FAN_OUT_WIDTH (not imported: it builds an app)
WORKLOADS = (
    Workload("0 ms tasks", "echo", 1, {"quick": 150, "full": 1500}),
    Workload("10 ms tasks", "sleep_echo", 1, {"quick": 150, "full": 1500}),
    Workload(f"fan-out of {FAN_OUT_WIDTH}", "fan_out", 1 + FAN_OUT_WIDTH, {"quick": 6, "full": 60}),
)
LATENCY_CALLS = {"quick": 10, "full": 50}


@dataclass
class Measurement:
    composition: str
    setup: str
    workload: str
    calls: int
    tasks: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    commands: int | None = None  # Redis commands during the burst (compositions ON_REDIS)
    round: int = 0  # --rounds: which round of its (composition, setup, workload)

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds

    @property
    def commands_per_task(self) -> float | None:
        return None if self.commands is None else self.commands / self.tasks

    def latency(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


POLL_SECONDS = 0.01


def _environment(composition: str, setup: Setup, url: str, sqlite_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYNENC__", "PYNENC_BENCH_"))  # only what is set here configures
    }
    repository = str(Path(__file__).resolve().parents[1])
    env.update(
        PYNENC_BENCH_COMPOSITION=composition,
        PYNENC_BENCH_RUNNER=setup.runner,
        PYNENC_BENCH_APP_ID=f"bench-throughput-{uuid.uuid4().hex[:8]}",
        PYNENC__REDIS_STACK_URL=url,
        PYNENC__SQLITE_DB_PATH=str(sqlite_path),
        # both compositions poll every 10 ms (pynenc's defaults, 0.1 s, bound a small task's
        # throughput and latency by the sleep rather than by the components being compared);
        # an invocation's status is cached as long (pynenc's cached_status_time, 0.1 s)
        PYNENC__RUNNER_LOOP_SLEEP_TIME_SEC=str(POLL_SECONDS),
        PYNENC__INVOCATION_WAIT_RESULTS_SLEEP_TIME_SEC=str(POLL_SECONDS),
        PYNENC__CACHED_STATUS_TIME=str(POLL_SECONDS),
        PYTHONPATH=os.pathsep.join(filter(None, [repository, env.get("PYTHONPATH")])),
    )
    if composition in LINES["0.3"].compositions:
        env["PYNENC__REDIS_URL"] = url  # pynenc-redis's components
    return env


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop each runner's process group (a MultiThreadRunner has children): SIGTERM, then
    SIGKILL for what is still there after the grace period."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # children left behind, if any
        except ProcessLookupError:
            pass
        process.wait()


def measure(
    composition: str,
    setup: Setup,
    workload: Workload,
    quick: bool,
    url: str,
    workdir: Path,
    timeout: float,
    python: str = sys.executable,
) -> Measurement:
    """Run one composition with one runner setup and one workload; ``python`` runs the runner,
    submitting and purging processes (``.venv-pynenc03``'s for the pynenc 0.3 line).

    :raises RuntimeError: If the submitting process fails or times out (a result was wrong or
        never came).
    """
    sqlite_path = workdir / f"{composition}-{setup.runner}-{setup.processes}-{uuid.uuid4().hex[:6]}.sqlite3"
    env = _environment(composition, setup, url, sqlite_path)
    command = [python, "-m", "benchmarks.throughput"]
    calls = workload.burst(quick, setup)
    latency_calls = LATENCY_CALLS["quick" if quick else "full"]
    if setup.spawns_per_task:
        latency_calls = max(3, latency_calls // 2)
    runners = [
        subprocess.Popen([*command, "runner"], env=env, start_new_session=True)
        for _ in range(setup.processes)
    ]
    label = f"{composition}, {setup.label}, {workload.name}"
    try:
        submitted = subprocess.run(
            [*command, "submit", workload.task, str(calls), str(latency_calls)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{label}: no result after {timeout:.0f} s") from exc
    finally:
        _stop(runners)
        # only now: a runner may still be reporting on an invocation whose result is back
        subprocess.run([*command, "purge"], env=env, timeout=timeout, check=True)
    if submitted.returncode != 0:
        raise RuntimeError(f"{label}: the submitting process failed:\n{submitted.stderr}")
    report = json.loads(submitted.stdout.strip().splitlines()[-1])
    return Measurement(
        composition,
        setup.label,
        workload.name,
        calls,
        calls * workload.tasks_per_call,
        float(report["seconds"]),
        [float(x) for x in report["latencies"]],
        report.get("commands"),
    )


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _rounds(
    measurements: list[Measurement], composition: str, setup: Setup, workload: Workload
) -> list[Measurement]:
    return sorted(
        (
            m
            for m in measurements
            if m.composition == composition and m.setup == setup.label and m.workload == workload.name
        ),
        key=lambda m: m.round,
    )


def _pooled(rounds: list[Measurement]) -> Measurement:
    """The rounds of one row as one measurement: every latency, every command and task (its
    tasks/s is the pooled rate; the table shows the median of the rounds' rates)."""
    commands = [m.commands for m in rounds]
    return Measurement(
        rounds[0].composition,
        rounds[0].setup,
        rounds[0].workload,
        sum(m.calls for m in rounds),
        sum(m.tasks for m in rounds),
        sum(m.seconds for m in rounds),
        [latency for m in rounds for latency in m.latencies],
        None if None in commands else sum(c for c in commands if c is not None),
    )


def median_rate(rounds: list[Measurement]) -> float:
    """Tasks/s of a row: the median of its rounds' (a load spike from other jobs on the shared
    cores slows one round, not the row)."""
    return statistics.median(m.tasks_per_second for m in rounds)


def markdown(
    measurements: list[Measurement],
    facts: dict[str, Any],
    cost: start_cost.StartCost | None,
    line: Line = LINES["0.4"],
) -> str:
    """The start-cost table, then one row per (workload, runner setup): both compositions."""
    ours_name, baseline_name = line.compositions
    counted = [c for c in line.compositions if c in ON_REDIS]
    several = any(m.round > 0 for m in measurements)
    round_count = 1 + max((m.round for m in measurements), default=0)
    command_headers = (
        ["Redis commands per task"]
        if len(counted) == 1
        else [f"{c} Redis commands per task" for c in counted]
    )
    lines = [
        f"# Throughput on the pynenc {line.pynenc} line: every pynenc runner, end to end "
        "(call, run, result read back)",
        "",
        f"Machine: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores (shared: numbers are "
        "ratios in one run, not absolutes); "
        f"Redis {facts.get('redis_server', '?')}, search {facts.get('search_module', '?')}, "
        f"JSON {facts.get('json_module', '?')}; pynenc {facts.get('packages', {}).get('pynenc', '?')}; "
        f"{facts.get('mode', '')}.",
        "",
    ]
    if cost is not None:
        lines += start_cost.markdown(cost)
    lines += [
        "## Tasks per second",
        "",
        f"| workload | runners | {ours_name} tasks/s | {baseline_name} tasks/s | ratio "
        + ("| ratio per round, lowest–highest " if several else "")
        + f"| {ours_name} p50 / p99 ms | {baseline_name} p50 / p99 ms | {' | '.join(command_headers)} |",
        "|---|---|" + "---:|" * (5 + several + len(command_headers)),
    ]
    for workload in WORKLOADS:
        for setup in SETUPS:
            rounds = {c: _rounds(measurements, c, setup, workload) for c in line.compositions}
            if not all(rounds.values()):
                continue
            found = {c: _pooled(found_rounds) for c, found_rounds in rounds.items()}
            ours, baseline = found[ours_name], found[baseline_name]
            ours_rate, baseline_rate = (median_rate(rounds[ours_name]), median_rate(rounds[baseline_name]))
            ratio = ours_rate / baseline_rate
            per_round = [
                a.tasks_per_second / b.tasks_per_second
                for a, b in zip(rounds[ours_name], rounds[baseline_name], strict=False)
            ]
            spread = f"{min(per_round):.2f}–{max(per_round):.2f} | " if several else ""
            per_task = [found[c].commands_per_task for c in counted]
            lines.append(
                f"| {workload.name} | {setup.label} | {ours_rate:.1f} | "
                f"{baseline_rate:.1f} | {ratio:.2f} | {spread}"
                f"{_milliseconds(ours.latency(0.5))} / {_milliseconds(ours.latency(0.99))} | "
                f"{_milliseconds(baseline.latency(0.5))} / {_milliseconds(baseline.latency(0.99))} | "
                + " | ".join("" if n is None else f"{n:.1f}" for n in per_task)
                + " |"
            )
    lines += [
        "",
        f"{line.note} Runners and the client poll every {POLL_SECONDS:g} s in both "
        "(and cache a status as long). "
        "`xN`: N runner processes. Tasks/s: a burst of calls submitted one after the other, "
        "every result read back (a fan-out call counts its children). Latency: calls one at a "
        "time, call to result read back. Redis commands per task: every command the server ran "
        "during the burst (polling and the scripts' own commands included) over the tasks run.",
        "",
    ]
    if several:
        lines[-1:-1] = [
            "",
            f"{round_count} rounds per row, the compositions alternating (A B, B A, ...): tasks/s is "
            "the median of the rounds' rates, the ratio the ratio of the medians, and the ratio "
            "per round each round's pair; latencies and commands pooled over the rounds.",
        ]
    return "\n".join(lines)


def plot(path: Path, measurements: list[Measurement], line: Line = LINES["0.4"]) -> None:
    """Horizontal bars: tasks/s of both compositions per (workload, runners)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (f"{workload.name}, {setup.label}", workload.name, setup.label)
        for workload in WORKLOADS
        for setup in SETUPS
    ]
    values = {
        (composition, workload.name, setup.label): median_rate(found)
        for composition in line.compositions
        for workload in WORKLOADS
        for setup in SETUPS
        if (found := _rounds(measurements, composition, setup, workload))
    }
    rows = [row for row in rows if all((c, row[1], row[2]) in values for c in line.compositions)]
    figure, axes = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.5))
    height = 0.4
    for offset, composition in enumerate(line.compositions):
        axes.barh(
            [index + offset * height for index in range(len(rows))],
            [values[(composition, workload, setup)] for _label, workload, setup in rows],
            height=height,
            label=composition,
        )
    axes.set_yticks([index + height / 2 for index in range(len(rows))], [label for label, _w, _s in rows])
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel(f"tasks/s (log scale; pynenc {line.pynenc} line, one run, 2 shared cores)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


PACKAGES_03 = ("pynenc", "pynenc-redis", "pynenc-redis-stack", "redis")


def _packages(python: str) -> dict[str, str]:
    """The versions ``python`` runs (the pynenc 0.3 line's venv is not this process's)."""
    listed = subprocess.run(
        [
            python,
            "-c",
            "import json, sys; from importlib.metadata import version; "
            "print(json.dumps({name: version(name) for name in sys.argv[1:]}))",
            *PACKAGES_03,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    versions: dict[str, str] = json.loads(listed.stdout)
    return versions


def run(quick: bool, out: Path, timeout: float, python03: Path | None = None, rounds: int = 1) -> int:
    """Start an embedded Redis Stack; on the pynenc 0.4 line (``python03`` None) measure the
    start cost, then every setup and workload on both compositions of the line, and write
    ``throughput.md``, ``.json`` and ``.png``; on the pynenc 0.3 line (the runners run
    ``python03``) no start cost, and ``throughput-pynenc03.*``. ``rounds``: measurements of each
    row per composition, alternating the order (A B, B A, ...)."""
    import redis

    from benchmarks.measure import machine, server_facts
    from pynenc_redis_stack.server import EmbeddedRedisStack

    line = LINES["0.4" if python03 is None else "0.3"]
    python = sys.executable if python03 is None else str(python03.absolute())  # a venv: no resolve()
    out.mkdir(parents=True, exist_ok=True)
    measurements: list[Measurement] = []
    failures: list[str] = []
    cost: start_cost.StartCost | None = None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pynenc-redis-stack-throughput-") as tmp:
        workdir = Path(tmp)
        server = EmbeddedRedisStack(workdir / "redis", persistent=False)
        url = server.start()
        client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
        try:
            facts = {**machine(), **server_facts(client), "mode": "--quick" if quick else "full run"}
            if python03 is None:
                cost = start_cost.measure(url, 8 if quick else 20, workdir / "bytecode")
                print("\n".join(start_cost.markdown(cost)), file=sys.stderr)
            else:
                facts["packages"] = _packages(python)
                facts["python"] = python
            for workload in WORKLOADS:
                for setup in SETUPS:
                    for round_index in range(rounds):
                        order = line.compositions if round_index % 2 == 0 else line.compositions[::-1]
                        for composition in order:
                            try:
                                measurement = measure(
                                    composition, setup, workload, quick, url, workdir, timeout, python
                                )
                            except RuntimeError as exc:  # reported with the table; the rest still runs
                                failures.append(str(exc).splitlines()[0])
                                print(f"FAILED {exc}", file=sys.stderr)
                                continue
                            measurement.round = round_index
                            measurements.append(measurement)
                            print(
                                f"{composition:17} {workload.name:14} {setup.label:27} r{round_index} "
                                f"{measurement.tasks_per_second:8.1f} tasks/s "
                                f"({measurement.tasks} in {measurement.seconds:.2f} s), "
                                f"p50 {_milliseconds(measurement.latency(0.5))} ms",
                                file=sys.stderr,
                            )
        finally:
            client.close()
            server.stop()
    facts["total_seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(measurements, facts, cost, line)
    if failures:
        table += "\nFailed measurements (not in the table):\n\n" + "".join(f"- {f}\n" for f in failures)
    print(table)
    (out / f"{line.stem}.md").write_text(table)
    (out / f"{line.stem}.json").write_text(
        json.dumps(
            {
                "facts": facts,
                "start_cost": None if cost is None else cost.runs,
                "failures": failures,
                "measurements": [
                    {
                        **asdict(m),
                        "tasks_per_second": round(m.tasks_per_second, 2),
                        "commands_per_task": m.commands_per_task,
                    }
                    for m in measurements
                ],
            },
            indent=2,
        )
    )
    plot(out / f"{line.stem}.png", measurements, line)
    print(f"wrote {out}/{line.stem}.md, .json, .png in {facts['total_seconds']:.0f} s", file=sys.stderr)
    return 1 if failures else 0


# -- the child processes ----------------------------------------------------------------------


def _runner() -> None:
    """Run the configured runner until SIGTERM."""
    # pynenc's advice for macOS/Windows spawning; this entry point is already guarded
    warnings.filterwarnings("ignore", "(?s).*MultiThreadRunner requires", RuntimeWarning)
    from benchmarks.throughput_app import app

    def stop(_signum: int, _frame: Any) -> None:
        app.runner.stop_runner_loop()

    signal.signal(signal.SIGTERM, stop)
    app.runner.run()


def _expected(task: str, value: int) -> int:
    if task == "fan_out":
        return sum(value * FAN_OUT_WIDTH + k for k in range(FAN_OUT_WIDTH))
    return value


def _server_commands() -> int | None:
    """Every command the server has run (``INFO commandstats``), or None off Redis."""
    from benchmarks.throughput_app import composition

    if composition not in ON_REDIS:
        return None
    import redis

    client = redis.Redis.from_url(os.environ["PYNENC__REDIS_STACK_URL"], protocol=2, decode_responses=True)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(values["calls"]) for name, values in stats.items() if name != "cmdstat_info")


def _submit(task_name: str, calls: int, latency_calls: int) -> None:
    """Warm up, time a burst of ``calls`` calls and every result, then ``latency_calls`` calls
    one at a time; print ``{"seconds": ..., "latencies": [...], "commands": ...}``."""
    import benchmarks.throughput_app as bench_app

    task = getattr(bench_app, task_name)
    if task(-1).result != _expected(task_name, -1):
        raise SystemExit("warm-up call returned a wrong result")
    commands_before = _server_commands()
    started = time.perf_counter()
    invocations = [task(value) for value in range(calls)]
    results = [invocation.result for invocation in invocations]
    seconds = time.perf_counter() - started
    commands_after = _server_commands()
    wrong = [(value, result) for value, result in enumerate(results) if result != _expected(task_name, value)]
    if wrong:
        raise SystemExit(f"{len(wrong)} wrong results, e.g. {wrong[:3]}")
    latencies = []
    for value in range(calls, calls + latency_calls):
        called = time.perf_counter()
        if task(value).result != _expected(task_name, value):
            raise SystemExit(f"wrong result for {value}")
        latencies.append(time.perf_counter() - called)
    commands = None
    if commands_before is not None and commands_after is not None:
        commands = commands_after - commands_before
    report = {"seconds": seconds, "latencies": latencies, "commands": commands}
    print(json.dumps(report), flush=True)


def _purge() -> None:
    """Delete the measurement's state (the runners are stopped)."""
    from benchmarks.throughput_app import app

    app.purge()


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "runner":
        _runner()
    elif role == "submit" and len(sys.argv) == 5:
        _submit(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif role == "purge":
        _purge()
    else:
        raise SystemExit("usage: python -m benchmarks.throughput runner | submit TASK M K | purge")
