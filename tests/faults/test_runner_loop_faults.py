"""A connection dropped under the runner loop (issue 15, item 9): its take, its status
compare-and-set, its recovery pass, its atomic-service claim and trigger pass.

The runner process shuts its own socket down around one script (before it is written, or
once its reply has arrived: the server ran it, the reply is lost). The take and the status
compare-and-set are sent again (the take's attempt token and the write's token make a second
run answer as the first did); a recovery pass or trigger pass that fails is logged and runs
again at the next interval. Either way the runner goes on and the invocation runs exactly once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import redis
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from tests.conftest import unique_app_id
from tests.faults.conftest import (
    ATOMIC_SERVICE_NOW,
    DEADLINE_SECONDS,
    RUNS,
    Processes,
    keys_without_ttl,
    observer,
    running_entries,
    wait_for,
)

pytestmark = pytest.mark.faults


@pytest.mark.parametrize(
    ("script", "when", "times", "attempts"),
    [
        ("take", "after", 1, "3"),
        ("take", "before", 1, "3"),
        ("status", "after", 3, "3"),
        ("status", "before", 3, "3"),
        # one attempt: the recovery pass itself fails (nothing re-sends it)
        ("expired", "before", 1, "1"),
        # the atomic-service claim: pynenc's runner ends its loop on an error there
        ("atomic-service", "before", 1, "1"),
        # a command of the trigger pass (in the atomic service): the same
        ("trigger", "before", 1, "1"),
        ("trigger", "after", 1, "1"),
    ],
)
def test_a_dropped_connection_under_the_runner_loop_neither_stops_it_nor_runs_twice(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
    script: str,
    when: str,
    times: int,
    attempts: str,
) -> None:
    app_id = unique_app_id(request)
    group = processes(app_id, fault_server)
    client = group.start("client", "submit('one')", stdout=subprocess.PIPE)
    out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    assert client.returncode == 0, group.logs()
    invocation_id = out.strip()
    runner = group.start(
        "runner",
        f"run_runner_with_drops({script!r}, {when!r}, {times})",
        MAX_CONNECTION_ATTEMPTS=attempts,
        **ATOMIC_SERVICE_NOW,  # type: ignore[arg-type]  # settings, none of them named stdout
    )
    app = observer(app_id, fault_server)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)

    def finished() -> bool:
        assert runner.poll() is None, f"the runner loop ended\n{group.logs()}"
        return orchestrator.get_invocation_status(invocation_id) is InvocationStatus.SUCCESS

    wait_for("the invocation finished", finished)
    assert "dropping the connection" in (group.log_dir / "runner.log").read_text()  # the fault happened
    assert admin.lrange(f"{RUNS}:{app_id}", 0, -1) == ["one"]
    statuses, running = running_entries(app, invocation_id)
    assert running == 1, statuses
    broker = app.broker
    assert isinstance(broker, RedisStackBroker)
    wait_for("an empty queue and taken set", lambda: broker.count_invocations() + broker.count_taken() == 0)
    assert runner.poll() is None, group.logs()
    assert "broker-sweep-claim" not in keys_without_ttl(admin, app_id)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_retry_whose_count_loses_its_connection_is_counted_once(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
    when: str,
) -> None:
    """``fail_once`` fails its first run; the connection drops while pynenc counts the retry.
    The increment is sent again (its token makes a second run count nothing): one retry
    counted, two runs, SUCCESS, the runner going on."""
    app_id = unique_app_id(request)
    group = processes(app_id, fault_server)
    client = group.start("client", "submit_fail_once('one')", stdout=subprocess.PIPE)
    out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    assert client.returncode == 0, group.logs()
    invocation_id = out.strip()
    runner = group.start("runner", f"run_runner_with_drops('retries', {when!r}, 1)")
    app = observer(app_id, fault_server)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)

    def finished() -> bool:
        assert runner.poll() is None, f"the runner loop ended\n{group.logs()}"
        return orchestrator.get_invocation_status(invocation_id) is InvocationStatus.SUCCESS

    try:
        wait_for("the invocation finished", finished)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    assert "dropping the connection" in (group.log_dir / "runner.log").read_text()
    assert admin.lrange(f"{RUNS}:{app_id}", 0, -1) == ["one", "one"]
    assert orchestrator.get_invocation_retries(invocation_id) == 1
    broker = app.broker
    assert isinstance(broker, RedisStackBroker)
    wait_for("an empty queue and taken set", lambda: broker.count_invocations() + broker.count_taken() == 0)
    assert runner.poll() is None, group.logs()
