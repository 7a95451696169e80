"""Arrival stamps: what orders writes of equal timestamp without a counter shared by every
shard (a cluster cannot update one key from scripts whose keys live in other slots).

A stamp is the writing process's wall clock in epoch microseconds, moved up to the next value
of the process's residue modulo :data:`WRITERS`: each process takes a writer number once per
namespace (one ``INCR``, a single key, so any topology allows it), and two processes live at
the same time never share a residue unless :data:`WRITERS` processes started in between. So
stamps are unique across processes, strictly increasing within one (each above the last),
and ordered by the hosts' clocks across processes to within :data:`WRITERS` microseconds. A
stamp stays an exact JSON and RediSearch number (below 2**53) until year 2255, as the
timestamps do.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from pynenc_redis_stack.core.client import run

if TYPE_CHECKING:
    import redis

    from pynenc_redis_stack.core.keys import Namespace

WRITERS = 1024
"""Residues stamps are spread over: how many processes may write at once with unique stamps."""

_lock = threading.Lock()
_last: dict[int, int] = {}
_writers: dict[tuple[int, str], int] = {}


def writer_number(client: redis.Redis, namespace: Namespace) -> int:
    """Return this process's residue for ``namespace`` (taken from the server once per client)."""
    cache_key = (id(client), namespace.namespace)
    writer = _writers.get(cache_key)
    if writer is None:
        writer = _writers[cache_key] = int(run(client, "INCR", namespace.writers())) % WRITERS
    return writer


def arrival_stamps(count: int, writer: int) -> list[int]:
    """Return ``count`` stamps of ``writer``, strictly increasing, each above every earlier one."""
    with _lock:
        first = max(time.time_ns() // 1000, _last.get(writer, 0) + 1)
        first += (writer - first) % WRITERS
        stamps = [first + WRITERS * n for n in range(count)]
        _last[writer] = stamps[-1] if stamps else _last.get(writer, 0)
    return stamps
