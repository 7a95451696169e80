"""Index lifecycle: compare live indexes with ``schemas/``, create, migrate and drop them.

One module per job, top to bottom:

- :mod:`.operations`: :func:`migrate` / :func:`drop` take the lifecycle lock, read the server,
  plan, execute (``pynenc-redis-stack index``, through :mod:`pynenc_redis_stack.admin`);
- :mod:`.first_use`: :func:`connect` and :func:`ensure_indexes`, the check the backend,
  ``import-redis`` and ``prune`` run before their first command; it creates missing indexes
  with the same read, plan and executor as :func:`migrate` (no lock, nothing dropped);
- :mod:`.lock`: the lifecycle lock (redis-py's ``Lock``);
- :mod:`.snapshot`: the one place that reads the server (``FT._LIST``, ``FT.INFO``);
- :mod:`.plan` and :mod:`.status`: pure functions of (specs, snapshot): the steps that bring
  each index to its file, and what ``index status`` shows;
- :mod:`.definition`: ``FT.CREATE`` of a spec, and how a live index's ``FT.INFO`` differs;
- :mod:`.legacy`: the keys an earlier layout kept beside the documents, removed by migrate;
- :mod:`pynenc_redis_stack.executor`: sends the steps, or prints them (``--dry-run``).

Index and lock names come from :class:`pynenc_redis_stack.keys.Namespace`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pynenc_redis_stack.lifecycle.first_use import connect, ensure_indexes

if TYPE_CHECKING:
    from pynenc_redis_stack.errors import LockLostError, LockTimeoutError
    from pynenc_redis_stack.lifecycle.definition import create_command, definition_differences
    from pynenc_redis_stack.lifecycle.lock import LifecycleLock
    from pynenc_redis_stack.lifecycle.operations import (
        DropReport,
        IndexResult,
        MigrationReport,
        drop,
        inspect_indexes,
        migrate,
    )
    from pynenc_redis_stack.lifecycle.plan import Action, IndexPlan, drop_targets, plan_all, plan_index
    from pynenc_redis_stack.lifecycle.snapshot import ServerSnapshot, read_snapshot
    from pynenc_redis_stack.lifecycle.status import IndexState, IndexStatus, index_status

# Imported on first access (PEP 562): a process that only connects (every runner process)
# loads first_use alone; the operations, planning and status modules are for the CLI and
# for the full index check (docs/performance.md, start cost).
_LAZY = {
    "LockLostError": "pynenc_redis_stack.errors",
    "LockTimeoutError": "pynenc_redis_stack.errors",
    "create_command": "pynenc_redis_stack.lifecycle.definition",
    "definition_differences": "pynenc_redis_stack.lifecycle.definition",
    "LifecycleLock": "pynenc_redis_stack.lifecycle.lock",
    **dict.fromkeys(
        ("DropReport", "IndexResult", "MigrationReport", "drop", "inspect_indexes", "migrate"),
        "pynenc_redis_stack.lifecycle.operations",
    ),
    **dict.fromkeys(
        ("Action", "IndexPlan", "drop_targets", "plan_all", "plan_index"), "pynenc_redis_stack.lifecycle.plan"
    ),
    "ServerSnapshot": "pynenc_redis_stack.lifecycle.snapshot",
    "read_snapshot": "pynenc_redis_stack.lifecycle.snapshot",
    **dict.fromkeys(("IndexState", "IndexStatus", "index_status"), "pynenc_redis_stack.lifecycle.status"),
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
    "DropReport",
    "IndexPlan",
    "IndexResult",
    "IndexState",
    "IndexStatus",
    "LifecycleLock",
    "LockLostError",
    "LockTimeoutError",
    "MigrationReport",
    "ServerSnapshot",
    "connect",
    "create_command",
    "definition_differences",
    "drop",
    "drop_targets",
    "ensure_indexes",
    "index_status",
    "inspect_indexes",
    "migrate",
    "plan_all",
    "plan_index",
    "read_snapshot",
]
