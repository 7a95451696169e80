"""A runner killed while it runs pynenc's recovery task (issue 15, item 5).

``recover_running_invocations`` has running concurrency TASK: a copy left RUNNING by a dead
runner used to hold the slot for good, so every later copy ended CONCURRENCY_CONTROLLED_FINAL
and nothing RUNNING was ever recovered again. Concurrency checks now ignore an invocation
whose owner's heartbeat is older than ``runner_considered_dead_after_minutes``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest
import redis
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from tests.conftest import unique_app_id
from tests.faults.conftest import (
    ATOMIC_SERVICE_NOW,
    DEADLINE_SECONDS,
    RUNS,
    Processes,
    keys_without_ttl,
    observer,
    wait_for,
)

pytestmark = pytest.mark.faults


def test_a_recovery_task_left_running_by_a_dead_runner_does_not_block_the_next(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    app_id = unique_app_id(request)
    group = processes(
        app_id, fault_server, **ATOMIC_SERVICE_NOW, RECOVER_RUNNING_INVOCATIONS_CRON="* * * * *"
    )
    planter = group.start("planter", "plant_dead_recovery('victim')", stdout=subprocess.PIPE)
    out, _ = planter.communicate(timeout=DEADLINE_SECONDS)
    assert planter.returncode == 0, group.logs()
    victim = out.strip()
    app = observer(app_id, fault_server)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)
    assert orchestrator.get_invocation_status(victim) is InvocationStatus.RUNNING
    assert main(["health", "--url", fault_server, "--app-id", app_id]) == 3
    report = capsys.readouterr().out
    assert re.search(r"running invocations of dead runners .* 2\n", report) and victim in report, report

    runner = group.start("runner", "run_runner()")
    try:
        wait_for(
            "the victim recovered and run",
            lambda: orchestrator.get_invocation_status(victim) is InvocationStatus.SUCCESS,
        )
    except AssertionError:
        raise AssertionError(group.logs()) from None
    assert admin.lrange(f"{RUNS}:{app_id}", 0, -1) == ["victim"]  # the planted run never ran the body
    assert runner.poll() is None, group.logs()

    def holders_point_at_running_invocations() -> bool:
        holders = admin.hvals(orchestrator.store.keys.running_holders())
        return all(
            admin.execute_command("JSON.GET", holder, "$.status") == '["running"]' for holder in holders
        )

    wait_for("no slot holder left behind by a finished invocation", holders_point_at_running_invocations)
    assert "broker-sweep-claim" not in keys_without_ttl(admin, app_id)
