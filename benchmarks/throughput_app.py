"""The throughput benchmark's pynenc app, configured by the environment.

Imported by the process that submits the tasks and by every runner process (pynenc runs a task
by importing its module), so both build the same app from the same variables:

- ``PYNENC_BENCH_COMPOSITION``: one of :data:`COMPOSITIONS`. On pynenc 0.4: ``redis-stack``
  (this package's components, ``redis_stack(components="all")``) or ``sqlite`` (pynenc's SQLite
  components). On pynenc 0.3 (``.venv-pynenc03``): ``redis-stack-state`` (this package's state
  backend with pynenc-redis 0.3.0's orchestrator, broker, trigger and client data store:
  ``.redis(url).redis_stack()``) or ``pynenc-redis`` (pynenc-redis 0.3.0's components, state
  backend included: ``.redis(url)``);
- ``PYNENC_BENCH_RUNNER``: one of :data:`RUNNERS`;
- ``PYNENC_BENCH_APP_ID``; ``PYNENC__REDIS_STACK_URL`` and ``PYNENC__SQLITE_DB_PATH`` (read by
  pynenc's configuration); ``PYNENC__REDIS_URL`` (pynenc-redis's, the same server).

``redis_stack(components="all")`` after ``.sqlite()`` selects every component of this package
over the SQLite ones.

On the pynenc 0.3 line both compositions run pynenc-redis 0.3.0's orchestrator with the
``WATCH`` its status transition lacks (``tests/pynenc03/watched_status.py``, as
``tests/pynenc03`` runs it): unwatched, two runners can both move an invocation
from ``registered`` to ``pending``; a fan-out parent then waited minutes for a child in
measured runs, on either side. That race is the orchestrator's, not the state backend the
line compares.
"""

from __future__ import annotations

import os
import time

from pynenc import PynencBuilder

COMPOSITIONS = ("redis-stack", "sqlite", "redis-stack-state", "pynenc-redis")
RUNNERS = ("ThreadRunner", "MultiThreadRunner", "ProcessRunner", "PersistentProcessRunner")

composition = os.environ.get("PYNENC_BENCH_COMPOSITION", "redis-stack")
runner = os.environ.get("PYNENC_BENCH_RUNNER", "ThreadRunner")
if composition not in COMPOSITIONS or runner not in RUNNERS:
    raise ValueError(f"PYNENC_BENCH_COMPOSITION={composition!r}, PYNENC_BENCH_RUNNER={runner!r}")


if composition in ("redis-stack-state", "pynenc-redis"):
    from pynenc_redis.orchestrator.redis_orchestrator import RedisOrchestrator
    from tests.pynenc03.watched_status import watched_status_transition

    RedisOrchestrator._atomic_status_transition = watched_status_transition  # type: ignore[method-assign]

_builder = PynencBuilder().app_id(os.environ.get("PYNENC_BENCH_APP_ID", "bench-throughput"))
if composition in ("redis-stack", "sqlite"):
    _builder = _builder.sqlite()
else:
    _builder = _builder.redis(url=os.environ["PYNENC__REDIS_URL"])
if composition == "redis-stack":
    _builder = _builder.redis_stack(components="all")
elif composition == "redis-stack-state":
    _builder = _builder.redis_stack()  # on pynenc 0.3: the state backend alone
if runner == "ThreadRunner":
    _builder = _builder.thread_runner()
elif runner == "MultiThreadRunner":
    _builder = _builder.multi_thread_runner()
elif runner == "ProcessRunner":
    _builder = _builder.process_runner()
else:
    _builder = _builder.persistent_process_runner()
app = _builder.logging_level("error").build()

FAN_OUT_WIDTH = 10
"""Children of one :func:`fan_out` call."""


@app.task
def echo(value: int) -> int:
    """The smallest task: what is measured is the components' overhead per task."""
    return value


@app.task
def sleep_echo(value: int) -> int:
    """A task of 10 ms (a sleep: the runner's other work goes on meanwhile)."""
    time.sleep(0.01)
    return value


@app.task
def fan_out(value: int) -> int:
    """A workflow: :data:`FAN_OUT_WIDTH` children of ``echo``, their results summed."""
    children = [echo(value * FAN_OUT_WIDTH + k) for k in range(FAN_OUT_WIDTH)]
    return sum(child.result for child in children)
