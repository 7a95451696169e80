"""Arrival stamps: what orders writes of equal timestamp without a counter shared by every
shard (a cluster cannot update one key from scripts whose keys live in other slots).

A stamp is this process's wall clock in epoch microseconds, made strictly increasing within
the process (a stamp equal to or below the last one becomes the last one plus one). So the
writes of one process keep their order exactly, and writes of several processes are ordered
by their hosts' clocks. It stays an exact JSON and RediSearch number (below 2**53) until year
2255, as the timestamps do. Two stamps of two processes are equal only when both took the same
microsecond; a history entry is then still told apart by its timestamp, which must be equal
too.
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_last = 0


def arrival_stamps(count: int) -> list[int]:
    """Return ``count`` stamps, strictly increasing, each above every earlier one of this process."""
    global _last
    with _lock:
        first = max(time.time_ns() // 1000, _last + 1)
        _last = first + count - 1
    return list(range(first, first + count))
