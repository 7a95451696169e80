"""Starters of one running-concurrency slot under faults (issue 15, item 6).

Starter A has checked the slot (nothing RUNNING) and not yet written RUNNING when every lock of
the app expires (``PEXPIRE`` from the test: what a pause longer than the lock's TTL does); then
starter B starts. No lock guards the start: A's RUNNING write goes through, its claim of the
slot's lease finds B holding it and RUNNING, so A puts its status back and is rerouted: only
one starts. (With a TTL lock around a check-then-write, both started.) The pause is a wrapper
around A's slot query that waits for the test; the server does the rest.

A start whose claim fails (its connection lost for good) puts its status back before the
error reaches the runner: no RUNNING invocation is left without the slot's lease.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.arguments import Arguments
from pynenc.call import Call
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.exceptions import InvocationStatusTransitionError
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation import DistributedInvocation
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.orchestrator import scripts as orchestrator_scripts
from tests.conftest import unique_app_id
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.faults


def once_at_a_time(value: str) -> str:
    """A task body; registered with running concurrency TASK on the test's app."""
    return value


def _orchestrator(app: Pynenc) -> RedisStackOrchestrator:
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)
    return orchestrator


@pytest.fixture
def apps(request: pytest.FixtureRequest, fault_server: str) -> Iterator[tuple[Pynenc, Pynenc]]:
    """Two instances of one app (two hosts), sharing only the server."""
    app_id = unique_app_id(request)
    made = tuple(PynencBuilder().app_id(app_id).redis_stack(url=fault_server).build() for _ in range(2))
    yield made[0], made[1]
    _orchestrator(made[0]).purge()


def test_a_lock_expiring_mid_start_does_not_let_a_second_starter_in(
    apps: tuple[Pynenc, Pynenc], admin: redis.Redis
) -> None:
    app_a, app_b = apps
    task = app_a.task(once_at_a_time, running_concurrency=ConcurrencyControlType.TASK)
    a, b = _orchestrator(app_a), _orchestrator(app_b)
    first, second = (
        DistributedInvocation(
            Call(task, Arguments({"value": v})), InvocationId(f"start-{v}"), None, None, False
        )
        for v in ("a", "b")
    )
    a.register_new_invocations([first, second])
    a.register_runner_heartbeats(["runner-a", "runner-b"])  # both owners alive
    for invocation, owner in ((first, "runner-a"), (second, "runner-b")):
        a._atomic_status_transition(invocation.invocation_id, InvocationStatus.PENDING, owner)

    checked, go = threading.Event(), threading.Event()
    slot_query = a._ids

    def paused_slot_query(**tags: str) -> list[InvocationId]:
        found = slot_query(**tags)
        if tags.get("status") == InvocationStatus.RUNNING.value and not checked.is_set():
            checked.set()
            assert go.wait(timeout=30)
        return found

    a._ids = paused_slot_query  # type: ignore[method-assign]
    outcome: dict[str, Any] = {}

    def start_a() -> None:
        try:
            outcome["a"] = a._atomic_status_transition(
                first.invocation_id, InvocationStatus.RUNNING, "runner-a"
            )
        except InvocationStatusTransitionError as lost:
            outcome["a"] = lost

    starter = threading.Thread(target=start_a)
    starter.start()
    try:
        assert checked.wait(timeout=30)
        app_keys = [  # every lock of the app: keys '<ns>:<kind>-lock:<app>:...'
            key
            for key in admin.scan_iter(match="*-lock:*")
            if key.split(":")[1].endswith("-lock") and app_a.app_id in key
        ]
        for key in app_keys:
            admin.pexpire(key, 1)
        wait_for("the app's locks expired", lambda: not any(admin.exists(key) for key in app_keys))
        b._atomic_status_transition(second.invocation_id, InvocationStatus.RUNNING, "runner-b")
    finally:
        go.set()
        starter.join(timeout=30)

    statuses = {i.invocation_id: a.get_invocation_status(i.invocation_id) for i in (first, second)}
    assert statuses == {
        first.invocation_id: InvocationStatus.REROUTED,
        second.invocation_id: InvocationStatus.RUNNING,
    }, statuses
    assert isinstance(outcome["a"], InvocationStatusTransitionError)
    # the slot is free again once its holder leaves RUNNING: nothing of it is left behind
    b._atomic_status_transition(second.invocation_id, InvocationStatus.SUCCESS, "runner-b")
    assert list(admin.scan_iter(match=a.store.keys.running_holder_pattern())) == []


def test_a_start_whose_claim_fails_puts_its_status_back(
    apps: tuple[Pynenc, Pynenc], admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_a, _ = apps
    task = app_a.task(once_at_a_time, running_concurrency=ConcurrencyControlType.TASK)
    a = _orchestrator(app_a)
    starter = DistributedInvocation(
        Call(task, Arguments({"value": "c"})), InvocationId("start-c"), None, None, False
    )
    a.register_new_invocations([starter])
    a._atomic_status_transition(starter.invocation_id, InvocationStatus.PENDING, "runner-a")

    def lost(*_args: Any, **_kwargs: Any) -> Any:  # the client gave up re-sending the claim
        raise redis.ConnectionError("connection lost while claiming the slot")

    monkeypatch.setattr(orchestrator_scripts.claim_running_slot_script, "run", lost)
    with pytest.raises(redis.ConnectionError):
        a._atomic_status_transition(starter.invocation_id, InvocationStatus.RUNNING, "runner-a")
    monkeypatch.undo()
    record = a.get_invocation_status_record(starter.invocation_id)
    assert (record.status, record.runner_id) == (InvocationStatus.PENDING, "runner-a")
    assert list(admin.scan_iter(match=a.store.keys.running_holder_pattern())) == []
    # and it starts once the connection is back
    a._atomic_status_transition(starter.invocation_id, InvocationStatus.RUNNING, "runner-a")
    assert a.get_invocation_status(starter.invocation_id) is InvocationStatus.RUNNING
