"""The throughput benchmark's pynenc app, configured by the environment.

Imported by the process that submits the tasks and by every runner process (pynenc runs a task
by importing its module), so both build the same app from the same variables:

- ``PYNENC_BENCH_COMPOSITION``: ``redis-stack`` (this package's components,
  ``redis_stack(components="all")``) or ``sqlite`` (pynenc's SQLite components);
- ``PYNENC_BENCH_RUNNER``: ``ThreadRunner`` or ``MultiThreadRunner``;
- ``PYNENC_BENCH_APP_ID``; ``PYNENC__REDIS_STACK_URL`` and ``PYNENC__SQLITE_DB_PATH`` (read by
  pynenc's configuration).

``redis_stack(components="all")`` after ``.sqlite()`` selects every component of this package
over the SQLite ones.
"""

from __future__ import annotations

import os

from pynenc import PynencBuilder

COMPOSITIONS = ("redis-stack", "sqlite")
RUNNERS = ("ThreadRunner", "MultiThreadRunner")

composition = os.environ.get("PYNENC_BENCH_COMPOSITION", "redis-stack")
runner = os.environ.get("PYNENC_BENCH_RUNNER", "ThreadRunner")
if composition not in COMPOSITIONS or runner not in RUNNERS:
    raise ValueError(f"PYNENC_BENCH_COMPOSITION={composition!r}, PYNENC_BENCH_RUNNER={runner!r}")

_builder = PynencBuilder().app_id(os.environ.get("PYNENC_BENCH_APP_ID", "bench-throughput")).sqlite()
if composition == "redis-stack":
    _builder = _builder.redis_stack(components="all")
_builder = _builder.thread_runner() if runner == "ThreadRunner" else _builder.multi_thread_runner()
app = _builder.logging_level("error").build()


@app.task
def echo(value: int) -> int:
    """The smallest task: what is measured is the components' overhead per task."""
    return value
