"""A ProcessRunner parent SIGKILLed while its child runs an invocation (issue 15, item 7).

The child outlives its parent (pynenc starts it as a daemon, which only a clean exit of the
parent stops). pynenc reports a child's heartbeat from the parent alone, so once the parent's
heartbeat went stale a second runner's recovery rerouted the invocation and ran a second copy
beside the orphan. The child now beats for itself while its invocation is RUNNING: recovery
leaves it alone, and the task runs once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable

import pytest
import redis
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from tests.conftest import unique_app_id
from tests.faults.conftest import (
    ATOMIC_SERVICE_NOW,
    DEADLINE_SECONDS,
    RUNS,
    Processes,
    observer,
    running_entries,
    wait_for,
)

pytestmark = pytest.mark.faults

RECOVER_RUNNING = TaskId("pynenc.core_tasks", "recover_running_invocations")
DEAD_AFTER_SECONDS = 6.0  # ATOMIC_SERVICE_NOW's runner_considered_dead_after_minutes


def test_a_sigkilled_process_runner_parent_leaves_its_child_running_once(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
) -> None:
    app_id = unique_app_id(request)
    group = processes(
        app_id, fault_server, **ATOMIC_SERVICE_NOW, RECOVER_RUNNING_INVOCATIONS_CRON="* * * * *"
    )
    client = group.start("client", "submit_hold('one')", stdout=subprocess.PIPE)
    out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    assert client.returncode == 0, group.logs()
    invocation_id = out.strip()
    parent = group.start("process-runner", "run_process_runner()")
    started = admin.blpop([f"faults:started:{app_id}"], timeout=DEADLINE_SECONDS)
    assert started is not None, group.logs()
    child_pid, _tag = json.loads(started[1])
    assert child_pid != parent.pid

    app = observer(app_id, fault_server)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=DEADLINE_SECONDS)
    killed_at = orchestrator.store.server_micros()
    try:
        os.kill(child_pid, 0)  # the orphan runs on
        # past the dead-runner timeout (server clock), a second runner's first atomic-service
        # pass runs pynenc's recovery task
        wait_for(
            "the dead-runner timeout",
            lambda: orchestrator.store.server_micros() - killed_at > (DEAD_AFTER_SECONDS + 1) * 1_000_000,
        )
        group.start("runner", "run_runner()")
        wait_for(
            "a recovery task finished",
            lambda: orchestrator.filter_by_status(
                list(orchestrator.get_task_invocation_ids(RECOVER_RUNNING)),
                frozenset({InvocationStatus.SUCCESS}),
            ),
        )
        assert orchestrator.get_invocation_status(invocation_id) is InvocationStatus.RUNNING
        admin.rpush(f"faults:release:{app_id}", "go", "go")  # enough for a second copy, if any
        wait_for(
            "the invocation finished",
            lambda: orchestrator.get_invocation_status(invocation_id) is InvocationStatus.SUCCESS,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    finally:
        try:
            os.kill(child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert admin.lrange(f"{RUNS}:{app_id}", 0, -1) == ["one"]
    statuses, running = running_entries(app, invocation_id)
    assert running == 1, statuses
    admin.delete(f"faults:release:{app_id}")
