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

from pynenc_redis_stack.errors import LockLostError, LockTimeoutError
from pynenc_redis_stack.lifecycle.definition import create_command, definition_differences
from pynenc_redis_stack.lifecycle.first_use import connect, ensure_indexes
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
