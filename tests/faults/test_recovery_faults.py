"""A runner killed while it runs pynenc's recovery task (issue 15, item 5): planted (the state
a SIGKILL leaves, written directly), and for real (a runner SIGKILLed inside the task).

``recover_running_invocations`` has running concurrency TASK: a copy left RUNNING by a dead
runner used to hold the slot for good, so every later copy ended CONCURRENCY_CONTROLLED_FINAL
and nothing RUNNING was ever recovered again. Concurrency checks now ignore an invocation
whose owner's heartbeat is older than ``runner_considered_dead_after_minutes``.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable

import pytest
import redis
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.trigger import RedisStackTrigger
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

RECOVER_RUNNING = TaskId("pynenc.core_tasks", "recover_running_invocations")
DEAD_AFTER_SECONDS = 6.0  # ATOMIC_SERVICE_NOW's runner_considered_dead_after_minutes


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
        leases = admin.scan_iter(match=orchestrator.store.keys.running_holder_pattern())
        holders = [admin.hget(lease, "invocation") for lease in leases]
        return all(
            admin.execute_command("JSON.GET", holder, "$.status") == '["running"]' for holder in holders
        )

    wait_for("no slot holder left behind by a finished invocation", holders_point_at_running_invocations)
    assert "broker-sweep-claim" not in keys_without_ttl(admin, app_id)


def test_a_runner_sigkilled_inside_the_recovery_task_does_not_stop_recovery(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
) -> None:
    """Runner A runs ``hold('victim')`` and pynenc's recovery task, which it never finishes;
    A is SIGKILLed, leaving both RUNNING. Once A is dead (6 s without a heartbeat), runner
    B's next recovery task runs although A's copy is still RUNNING, and recovers the victim,
    which B runs once."""
    app_id = unique_app_id(request)
    group = processes(
        app_id, fault_server, **ATOMIC_SERVICE_NOW, RECOVER_RUNNING_INVOCATIONS_CRON="* * * * *"
    )
    client = group.start("client", "submit_hold('victim')", stdout=subprocess.PIPE)
    out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    assert client.returncode == 0, group.logs()
    victim = out.strip()
    stuck = group.start("runner-a", "run_runner_stuck_in_recovery()")
    app = observer(app_id, fault_server)
    orchestrator = app.orchestrator
    trigger = app.trigger
    assert isinstance(orchestrator, RedisStackOrchestrator) and isinstance(trigger, RedisStackTrigger)
    try:
        assert admin.blpop([f"faults:started:{app_id}"], timeout=DEADLINE_SECONDS) is not None
        assert admin.blpop([f"faults:recovering:{app_id}"], timeout=DEADLINE_SECONDS) is not None
        stuck.send_signal(signal.SIGKILL)
        stuck.wait(timeout=DEADLINE_SECONDS)
        killed_at = orchestrator.store.server_micros()
        (left_running,) = orchestrator.filter_by_status(
            list(orchestrator.get_task_invocation_ids(RECOVER_RUNNING)), frozenset({InvocationStatus.RUNNING})
        )
        # the next minute's tick of the recovery cron, brought forward: A fired this minute's,
        # so forget that firing as the next minute would (its schedule entry, its claim and its
        # run record: the tick's run id is per minute, and a recorded run never fires again)
        runs = trigger.store.schemas.runs
        recorded = trigger.store.matching_keys(runs, trigger.store.where(runs))
        admin.delete(trigger.keys.trigger_cron(), trigger.keys.trigger_run_claims(), *recorded)
        wait_for(
            "the dead-runner timeout",
            lambda: orchestrator.store.server_micros() - killed_at > (DEAD_AFTER_SECONDS + 1) * 1_000_000,
        )
        runner = group.start("runner-b", "run_runner()")
        wait_for(
            "the victim recovered",
            lambda: orchestrator.get_invocation_status(victim) is not InvocationStatus.RUNNING,
            # a firing at a minute's edge may still leave the tick to the next minute
            deadline=DEADLINE_SECONDS + 60,
        )
        admin.rpush(f"faults:release:{app_id}", "go", "go")  # enough for a second copy, if any
        wait_for(
            "the victim finished",
            lambda: orchestrator.get_invocation_status(victim) is InvocationStatus.SUCCESS,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    assert admin.lrange(f"{RUNS}:{app_id}", 0, -1) == ["victim"]  # A never finished its run
    assert orchestrator.get_invocation_status(left_running) is not InvocationStatus.RUNNING
    assert runner.poll() is None, group.logs()
    broker = app.broker
    assert isinstance(broker, RedisStackBroker)
    wait_for("an empty queue and taken set", lambda: broker.count_invocations() + broker.count_taken() == 0)
    assert "broker-sweep-claim" not in keys_without_ttl(admin, app_id)
    admin.delete(f"faults:release:{app_id}")
