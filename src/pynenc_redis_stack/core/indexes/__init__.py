"""Index checks: read the live indexes, compare them with ``schemas/``, and create what is
missing.

One module per job, top to bottom:

- :mod:`.first_use`: :func:`connect` and :func:`ensure_indexes`, the check every component runs
  before its first command; it creates missing indexes with the same read, plan and executor as
  ``index migrate`` (:mod:`pynenc_redis_stack.admin.lifecycle`), but takes no lock and drops
  nothing;
- :mod:`.lock`: the lifecycle lock (redis-py's ``Lock``);
- :mod:`.snapshot`: the one place that reads the server (``FT._LIST``, ``FT.INFO``);
- :mod:`.plan` and :mod:`.status`: pure functions of (specs, snapshot): the steps that bring
  each index to its file, and what ``index status`` shows;
- :mod:`.definition`: ``FT.CREATE`` of a spec, and how a live index's ``FT.INFO`` differs;
- :mod:`.executor`: sends the steps, or prints them (``--dry-run``).

Index and lock names come from :class:`pynenc_redis_stack.core.keys.Namespace`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pynenc_redis_stack.core.indexes.first_use import connect, ensure_indexes

if TYPE_CHECKING:
    from pynenc_redis_stack.core.indexes.definition import create_command, definition_differences
    from pynenc_redis_stack.core.indexes.lock import LifecycleLock
    from pynenc_redis_stack.core.indexes.plan import Action, IndexPlan, drop_targets, plan_all, plan_index
    from pynenc_redis_stack.core.indexes.snapshot import ServerSnapshot, read_snapshot
    from pynenc_redis_stack.core.indexes.status import IndexState, IndexStatus, index_status

# Imported on first access (PEP 562): a process that only connects (every runner process)
# needs none of the lock or the FT.CREATE rendering (docs/performance.md, start cost).
_LAZY = {
    "create_command": "pynenc_redis_stack.core.indexes.definition",
    "definition_differences": "pynenc_redis_stack.core.indexes.definition",
    "LifecycleLock": "pynenc_redis_stack.core.indexes.lock",
    **dict.fromkeys(
        ("Action", "IndexPlan", "drop_targets", "plan_all", "plan_index"),
        "pynenc_redis_stack.core.indexes.plan",
    ),
    "ServerSnapshot": "pynenc_redis_stack.core.indexes.snapshot",
    "read_snapshot": "pynenc_redis_stack.core.indexes.snapshot",
    **dict.fromkeys(("IndexState", "IndexStatus", "index_status"), "pynenc_redis_stack.core.indexes.status"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Action",
    "IndexPlan",
    "IndexState",
    "IndexStatus",
    "LifecycleLock",
    "ServerSnapshot",
    "connect",
    "create_command",
    "definition_differences",
    "drop_targets",
    "ensure_indexes",
    "index_status",
    "plan_all",
    "plan_index",
    "read_snapshot",
]
