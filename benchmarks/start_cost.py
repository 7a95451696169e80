"""The start cost of a new process: importing a state backend's package, then its first use
(``app.state_backend``, which stores the app info), this package against pynenc-redis 0.3.0's.

Each run is a fresh interpreter (``python -m benchmarks.start_cost child <subject> <url>``),
the two subjects alternating, against the same server (its indexes already there: a runner
process meets an initialised server). Both packages are installed in the venv and pynenc
imports every installed plugin, so a child hides the other package's ``pynenc.plugins``
entry points: each pays for its own package only, as in a venv holding only it.

Bytecode: the development venv installs this package editable and the environment may set
``PYTHONDONTWRITEBYTECODE``, so its modules would be compiled from source in every process
while pynenc-redis's come precompiled from its wheel. The children therefore share a
bytecode cache (``PYTHONPYCACHEPREFIX``) warmed by one untimed run of each subject, as a
wheel install would have it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SUBJECTS = {"redis-stack": "pynenc_redis_stack", "pynenc-redis": "pynenc_redis"}
STEPS = ("import", "first_use", "total")


@dataclass
class StartCost:
    """The seconds of each step, one list per subject, one entry per run."""

    runs: dict[str, dict[str, list[float]]]

    def median(self, subject: str, step: str) -> float:
        return statistics.median(self.runs[subject][step])

    def ratio(self, step: str) -> float:
        return self.median("redis-stack", step) / self.median("pynenc-redis", step)


def measure(url: str, runs: int, cache_dir: Path) -> StartCost:
    """Run ``runs`` fresh processes per subject, alternating, after one untimed warm-up each."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    repository = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repository, env.get("PYTHONPATH")]))
    results: dict[str, dict[str, list[float]]] = {s: {step: [] for step in STEPS} for s in SUBJECTS}
    for run in range(runs + 1):
        for subject in SUBJECTS if run % 2 else reversed(SUBJECTS):
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.start_cost", "child", subject, url],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"start cost of {subject}: the child failed:\n{done.stderr}")
            if run:  # the first run of each compiles the bytecode cache
                for step, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    results[subject][step].append(seconds)
    return StartCost(results)


def markdown(cost: StartCost) -> list[str]:
    runs = len(cost.runs["redis-stack"]["total"])
    lines = [
        f"## Start cost of a new process (median of {runs} fresh processes each, alternating)",
        "",
        "| step | redis-stack ms | pynenc-redis ms | ratio redis-stack / pynenc-redis |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "import": "`import` of the package (pynenc, redis-py and the plugins included)",
        "first_use": "build the app, first use (`app.state_backend`: connect, check, store the app info)",
        "total": "import + first use",
    }
    for step in STEPS:
        ours, theirs = cost.median("redis-stack", step), cost.median("pynenc-redis", step)
        lines.append(f"| {labels[step]} | {ours * 1000:.0f} | {theirs * 1000:.0f} | {cost.ratio(step):.2f} |")
    lines.append("")
    return lines


def _child(subject: str, url: str) -> None:
    """Import the subject's package, build an app on its state backend, use it once; print
    the seconds of each step as JSON."""
    started = time.perf_counter()
    import importlib.metadata

    entry_points = importlib.metadata.entry_points
    hidden = tuple(f"{package}." for name, package in SUBJECTS.items() if name != subject)

    def own_entry_points(**selection: str) -> importlib.metadata.EntryPoints:
        found = entry_points(**selection)
        return importlib.metadata.EntryPoints(ep for ep in found if not ep.value.startswith(hidden))

    importlib.metadata.entry_points = own_entry_points  # type: ignore[assignment]
    importlib.import_module(SUBJECTS[subject])
    imported = time.perf_counter()
    from pynenc import PynencBuilder

    builder = PynencBuilder().app_id("bench-start-cost")
    if subject == "redis-stack":
        app = builder.redis_stack(url=url).build()
    else:
        app = builder.custom_config(state_backend_cls="RedisStateBackend", redis_url=url).build()
    app.state_backend  # noqa: B018  the first use: connects, checks, stores the app info
    used = time.perf_counter()
    leaked = [m for m in sys.modules if m.startswith(hidden) or m in {p.rstrip(".") for p in hidden}]
    if leaked:
        raise SystemExit(f"{subject}: the other package was imported too ({leaked[:3]})")
    print(json.dumps({"import": imported - started, "first_use": used - imported, "total": used - started}))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "child" or sys.argv[2] not in SUBJECTS:
        raise SystemExit(f"usage: python -m benchmarks.start_cost child {'|'.join(SUBJECTS)} URL")
    _child(sys.argv[2], sys.argv[3])
