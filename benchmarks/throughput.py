"""``./dev bench --throughput``: tasks per second end to end, this package's components against
pynenc's SQLite ones, with the same runners on the same machine in one run.

For each runner setup (one ``ThreadRunner`` process, two ``ThreadRunner`` processes, one
``MultiThreadRunner``) and each composition (``redis_stack(components="all")`` on an embedded
Redis Stack; pynenc's SQLite components on a file of their own):

1. the runner processes start (``python -m benchmarks.throughput runner``), sharing only the
   environment that configures :mod:`benchmarks.throughput_app`;
2. a submitting process (``python -m benchmarks.throughput submit M``) waits for one warm-up
   task's result (the runners are up, the indexes exist), then times: submit ``M`` tasks one
   call at a time, then wait for every result (each is checked); it prints the seconds;
3. the runners are stopped (``SIGTERM`` to their process group, ``SIGKILL`` after a grace),
   then the app's state is purged.

Tasks/s = M / seconds. The table gives both compositions per setup and their ratio
(redis-stack / sqlite: above 1, this package is faster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import machine

COMPOSITIONS = ("redis-stack", "sqlite")
STOP_GRACE = 15.0
"""Seconds runners get to stop after ``SIGTERM`` before ``SIGKILL``."""


@dataclass(frozen=True)
class Setup:
    """Runner processes of one kind."""

    label: str
    runner: str
    processes: int


SETUPS = (
    Setup("1 ThreadRunner process", "ThreadRunner", 1),
    Setup("2 ThreadRunner processes", "ThreadRunner", 2),
    Setup("1 MultiThreadRunner", "MultiThreadRunner", 1),
)


@dataclass
class Measurement:
    composition: str
    setup: str
    runner: str
    processes: int
    tasks: int
    seconds: float

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds


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
        # throughput by the sleep rather than by the components being compared)
        PYNENC__RUNNER_LOOP_SLEEP_TIME_SEC=str(POLL_SECONDS),
        PYNENC__INVOCATION_WAIT_RESULTS_SLEEP_TIME_SEC=str(POLL_SECONDS),
        PYTHONPATH=os.pathsep.join(filter(None, [repository, env.get("PYTHONPATH")])),
    )
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
    composition: str, setup: Setup, tasks: int, url: str, workdir: Path, timeout: float
) -> Measurement:
    """Run one composition with one runner setup; return the end-to-end time of ``tasks`` tasks.

    :raises RuntimeError: If the submitting process fails or times out (a result was wrong or
        never came).
    """
    sqlite_path = workdir / f"{composition}-{setup.runner}-{setup.processes}-{uuid.uuid4().hex[:6]}.sqlite3"
    env = _environment(composition, setup, url, sqlite_path)
    command = [sys.executable, "-m", "benchmarks.throughput"]
    runners = [
        subprocess.Popen([*command, "runner"], env=env, start_new_session=True)
        for _ in range(setup.processes)
    ]
    try:
        submitted = subprocess.run(
            [*command, "submit", str(tasks)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{composition}, {setup.label}: no result after {timeout:.0f} s") from exc
    finally:
        _stop(runners)
        # only now: a runner may still be reporting on an invocation whose result is back
        subprocess.run([*command, "purge"], env=env, timeout=timeout, check=True)
    if submitted.returncode != 0:
        raise RuntimeError(
            f"{composition}, {setup.label}: the submitting process failed:\n{submitted.stderr}"
        )
    seconds = float(json.loads(submitted.stdout.strip().splitlines()[-1])["seconds"])
    return Measurement(composition, setup.label, setup.runner, setup.processes, tasks, seconds)


def markdown(measurements: list[Measurement], facts: dict[str, Any]) -> str:
    """One row per runner setup: tasks/s of each composition and their ratio."""
    tasks = measurements[0].tasks if measurements else 0
    lines = [
        f"# Throughput: {tasks} tasks end to end (submit, run, every result back)",
        "",
        f"Machine: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores; "
        f"Redis {facts.get('redis_server', '?')}, search {facts.get('search_module', '?')}, "
        f"JSON {facts.get('json_module', '?')}; pynenc {facts.get('packages', {}).get('pynenc', '?')}.",
        "",
        "| runners | redis-stack tasks/s | sqlite tasks/s | ratio redis-stack / sqlite |",
        "|---|---:|---:|---:|",
    ]
    for setup in SETUPS:
        found = {m.composition: m for m in measurements if m.setup == setup.label}
        if len(found) < len(COMPOSITIONS):
            continue
        ours, sqlite = found["redis-stack"], found["sqlite"]
        ratio = ours.tasks_per_second / sqlite.tasks_per_second
        lines.append(
            f"| {setup.label} | {ours.tasks_per_second:.1f} | {sqlite.tasks_per_second:.1f} | {ratio:.2f} |"
        )
    lines += [
        "",
        'redis-stack: `PynencBuilder().sqlite().redis_stack(components="all")` (every component on '
        "Redis Stack: state backend, orchestrator, broker, trigger, client data store). sqlite: "
        f"`PynencBuilder().sqlite()`. Runners and the client poll every {POLL_SECONDS:g} s in both. "
        "One run, same machine: compare the ratio, not the absolute numbers.",
        "",
    ]
    return "\n".join(lines)


def run(tasks: int, out: Path, timeout: float) -> int:
    """Start an embedded Redis Stack, measure every setup on both compositions, write
    ``throughput.md`` and ``throughput.json`` to ``out``."""
    import redis

    from benchmarks.__main__ import server_facts
    from pynenc_redis_stack.server import EmbeddedRedisStack

    out.mkdir(parents=True, exist_ok=True)
    measurements: list[Measurement] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pynenc-redis-stack-throughput-") as tmp:
        workdir = Path(tmp)
        server = EmbeddedRedisStack(workdir / "redis", persistent=False)
        url = server.start()
        client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
        try:
            facts = {**machine(), **server_facts(client)}
            for setup in SETUPS:
                for composition in COMPOSITIONS:
                    measurement = measure(composition, setup, tasks, url, workdir, timeout)
                    measurements.append(measurement)
                    print(
                        f"{composition:12} {setup.label:26} {measurement.tasks_per_second:8.1f} tasks/s "
                        f"({tasks} in {measurement.seconds:.2f} s)",
                        file=sys.stderr,
                    )
        finally:
            client.close()
            server.stop()
    facts["total_seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(measurements, facts)
    print(table)
    (out / "throughput.md").write_text(table)
    (out / "throughput.json").write_text(
        json.dumps(
            {
                "facts": facts,
                "tasks": tasks,
                "measurements": [
                    {**asdict(m), "tasks_per_second": round(m.tasks_per_second, 2)} for m in measurements
                ],
            },
            indent=2,
        )
    )
    print(f"wrote {out}/throughput.md, throughput.json in {facts['total_seconds']:.0f} s", file=sys.stderr)
    return 0


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


def _submit(tasks: int) -> None:
    """Warm up, then time ``tasks`` submissions and every result; print ``{"seconds": ...}``."""
    from benchmarks.throughput_app import echo

    if echo(-1).result != -1:
        raise SystemExit("warm-up task returned a wrong result")
    started = time.perf_counter()
    invocations = [echo(value) for value in range(tasks)]
    results = [invocation.result for invocation in invocations]
    seconds = time.perf_counter() - started
    if results != list(range(tasks)):
        wrong = [(value, result) for value, result in enumerate(results) if value != result]
        raise SystemExit(f"{len(wrong)} wrong results, e.g. {wrong[:3]}")
    print(json.dumps({"seconds": seconds}), flush=True)


def _purge() -> None:
    """Delete the measurement's state (the runners are stopped)."""
    from benchmarks.throughput_app import app

    app.purge()


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "runner":
        _runner()
    elif role == "submit":
        _submit(int(sys.argv[2]))
    elif role == "purge":
        _purge()
    else:
        raise SystemExit("usage: python -m benchmarks.throughput runner | submit M | purge")
