"""What a new process loads when pynenc imports this package's plugins: the modules a runner
needs, not the CLI's (index migrate and drop, prune, purge, import), which cost start time in
every process (docs/performance.md, start cost).

What first use needs (the index check and its planning) is imported with the plugins, never
on first use: a ProcessRunner forks while other threads run, and a child that imports while
the fork caught another thread holding the import lock waits forever (pynenc's
``test_status_owner_match_a_runner_id[SQLite+RedisStack Process Pickle]`` hung so)."""

from __future__ import annotations

import subprocess
import sys

NOT_ON_THE_HOT_PATH = (
    "pynenc_redis_stack.admin",
    "pynenc_redis_stack.cli",
    "pynenc_redis_stack.admin.importer",
    "pynenc_redis_stack.core.indexes.lock",
    "pynenc_redis_stack.admin.lifecycle",
    "pynenc_redis_stack.admin.retention",
    "pynenc_redis_stack.admin.purge",
)

PLUGINS = """
import sys
import pynenc_redis_stack, pynenc_redis_stack.state_backend.backend, pynenc_redis_stack.broker
import pynenc_redis_stack.client_data_store, pynenc_redis_stack.orchestrator, pynenc_redis_stack.trigger
print(" ".join(sorted(m for m in sys.modules if m.startswith("pynenc_redis_stack"))))
"""


def test_importing_the_plugins_leaves_the_cli_modules_unloaded() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", PLUGINS], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()

    for needed_on_first_use in (
        "core.indexes.first_use",
        "core.indexes.plan",
        "core.indexes.snapshot",
        "core.indexes.status",
        "core.server_check",
        "core.indexes.executor",
    ):
        assert f"pynenc_redis_stack.{needed_on_first_use}" in loaded
    assert [module for module in NOT_ON_THE_HOT_PATH if module in loaded] == []


def test_the_lazy_names_still_resolve() -> None:
    import pynenc_redis_stack
    from pynenc_redis_stack.core import indexes

    assert indexes.plan_all.__module__ == "pynenc_redis_stack.core.indexes.plan"
    assert indexes.IndexState.OK.value == "ok"
    assert isinstance(pynenc_redis_stack.__version__, str)
