"""A connection dropped while an invocation is registered and routed (issue 15, items 4 and 9).

The client process shuts its socket down around one command of the registration (before it is
written, or after: the server ran it and the reply is lost): the registration lock, the state
backend's write, the orchestrator's registration, the history entry, the route, the lock's
release. Each is sent again after a drop (a second route only adds a duplicate queue entry,
which runners skip), and an invocation whose route never arrived at all is routed again by the
sweeper once it has waited one lease: either way the invocation runs exactly once.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import cast

import pytest
import redis
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from tests.conftest import unique_app_id
from tests.faults.conftest import (
    DEADLINE_SECONDS,
    RUNS,
    Processes,
    keys_without_ttl,
    observer,
    running_entries,
    wait_for,
)

pytestmark = pytest.mark.faults

RECORD_RUN = TaskId("tests.faults.faults_app", "record_run")


def _client_outcome(group: Processes, when: str, step: str = "route", **settings: str) -> dict[str, object]:
    client = group.start(
        "client", f"route_with_drop('one', {when!r}, {step!r})", stdout=subprocess.PIPE, **settings
    )
    out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    assert client.returncode == 0, group.logs()
    assert "dropping the connection" in group.logs()  # the fault happened
    outcome: dict[str, object] = json.loads(out)
    return outcome


def _the_invocation_runs_once(app_id: str, url: str, admin: redis.Redis, group: Processes) -> None:
    app = observer(app_id, url)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)

    def finished() -> list[str] | None:
        ids = list(orchestrator.get_task_invocation_ids(RECORD_RUN))
        done = orchestrator.filter_by_status(ids, frozenset({InvocationStatus.SUCCESS}))
        return done or None

    try:
        (invocation_id,) = wait_for("the invocation finished", finished)
    except AssertionError:
        raise AssertionError(group.logs()) from None
    assert admin.lrange(f"{RUNS}:{app_id}", 0, -1) == ["one"]  # ran once
    statuses, running = running_entries(app, invocation_id)
    assert running == 1, statuses
    assert len(list(orchestrator.get_task_invocation_ids(RECORD_RUN))) == 1
    broker = app.broker
    assert isinstance(broker, RedisStackBroker)
    wait_for("an empty queue and taken set", lambda: broker.count_invocations() + broker.count_taken() == 0)
    assert "broker-sweep-claim" not in keys_without_ttl(admin, app_id)
    assert not [key for key in admin.scan_iter(match="*registration-lock*") if app_id in key]  # released
    _replies_expire(admin, broker)


def _replies_expire(admin: redis.Redis, broker: RedisStackBroker) -> None:
    """Each take reply goes once its lease passed (the next sweep drops it)."""
    deadline_ms = int(admin.time()[0]) * 1000 + broker.lease_ms
    replies = cast(list[str], admin.hvals(broker.keys.broker_take_replies()))  # a decode_responses client
    for raw in replies:
        assert int(raw.split("|", 1)[0]) <= deadline_ms + 1000, raw


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", ["lock", "upsert", "register", "history", "route", "unlock"])
def test_a_registration_whose_connection_drops_at_any_step_is_sent_again_and_runs_once(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
    when: str,
    step: str,
) -> None:
    """The connection drops at one step of ``record_run('one')`` (registration concurrency
    TASK): the registration lock's acquisition, the state backend's invocation write, the
    orchestrator's registration, the history entry, the route, the lock's release. Each is
    sent again; the call returns its invocation, which runs once."""
    app_id = unique_app_id(request)
    group = processes(app_id, fault_server)
    assert _client_outcome(group, when, step) == {"routed": True, "error": ""}
    group.start("runner", "run_runner()")
    _the_invocation_runs_once(app_id, fault_server, admin, group)


def test_an_invocation_whose_route_never_arrived_is_routed_again_by_the_sweeper(
    request: pytest.FixtureRequest,
    fault_server: str,
    admin: redis.Redis,
    processes: Callable[..., Processes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    app_id = unique_app_id(request)
    group = processes(app_id, fault_server)
    # one attempt only: the route fails for good, the invocation stays REGISTERED, unqueued
    outcome = _client_outcome(group, "before", MAX_CONNECTION_ATTEMPTS="1")
    assert outcome["routed"] is False, outcome
    health = ["health", "--url", fault_server, "--app-id", app_id, "--grace", "1"]
    wait_for("health reports the stranded invocation", lambda: main(health) == 3)
    report = capsys.readouterr().out
    assert re.search(r"stranded invocations .* 1\n", report) and "(registered)" in report, report
    group.start("runner", "run_runner()")
    _the_invocation_runs_once(app_id, fault_server, admin, group)
    capsys.readouterr()
    assert main(health) == 0, capsys.readouterr().out
