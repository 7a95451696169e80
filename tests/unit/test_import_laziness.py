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
    "pynenc_redis_stack.importer",
    "pynenc_redis_stack.lifecycle.lock",
    "pynenc_redis_stack.lifecycle.operations",
    "pynenc_redis_stack.prune",
    "pynenc_redis_stack.purge",
)

PLUGINS = """
import sys
import pynenc_redis_stack, pynenc_redis_stack.backend, pynenc_redis_stack.broker
import pynenc_redis_stack.client_data_store, pynenc_redis_stack.orchestrator, pynenc_redis_stack.trigger
print(" ".join(sorted(m for m in sys.modules if m.startswith("pynenc_redis_stack"))))
"""


def test_importing_the_plugins_leaves_the_cli_modules_unloaded() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", PLUGINS], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()

    for needed_on_first_use in (
        "lifecycle.first_use",
        "lifecycle.plan",
        "lifecycle.snapshot",
        "lifecycle.status",
        "server_check",
        "executor",
    ):
        assert f"pynenc_redis_stack.{needed_on_first_use}" in loaded
    assert [module for module in NOT_ON_THE_HOT_PATH if module in loaded] == []


def test_the_lazy_names_still_resolve() -> None:
    import pynenc_redis_stack
    from pynenc_redis_stack import lifecycle

    assert lifecycle.migrate.__module__ == "pynenc_redis_stack.lifecycle.operations"
    assert lifecycle.IndexState.OK.value == "ok"
    assert isinstance(pynenc_redis_stack.__version__, str)
