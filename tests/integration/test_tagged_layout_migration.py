"""``index migrate`` moves a store written with untagged keys to the hash-tagged layout
(admin/tagged_layout.py).

The store is written by this version through every component (state backend, orchestrator,
trigger), then rewritten key for key into the untagged layout
(:func:`tests.integration.legacy_layout.to_untagged_layout`): reads by key then miss. A dry
run prints every move and changes nothing; a run killed half-way leaves a store the next run
finishes; afterwards every read gives back what it gave before, no untagged key is left, and a
third run finds nothing to do.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.arguments import Arguments
from pynenc.call import Call
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import DistributedInvocation
from pynenc.invocation.status import InvocationStatus
from pynenc.orchestrator.atomic_service import AtomicServiceRun
from pynenc.trigger.conditions import CronCondition

from pynenc_redis_stack import admin
from pynenc_redis_stack.admin import tagged_layout
from pynenc_redis_stack.cli.index_commands import format_migration
from pynenc_redis_stack.core.command_line import split_redis_cli_line
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from pynenc_redis_stack.trigger import RedisStackTrigger
from tests.conftest import unique_app_id
from tests.integration.legacy_layout import to_untagged_layout
from tests.integration.test_legacy_migration import HOSTILE, _reads, _store
from tests.integration.test_orchestrator import invocation

TICK = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str) -> Pynenc:
    return PynencBuilder().app_id(unique_app_id(request) + HOSTILE).redis_stack(url=redis_url).build()


def _write(app: Pynenc) -> tuple[list[str], str]:
    backend: RedisStackStateBackend = app.state_backend
    orchestrator: RedisStackOrchestrator = app.orchestrator
    trigger: RedisStackTrigger = app.trigger
    ids = _store(backend)
    backend._set_result(InvocationId(ids[0]), '"result-0"')
    backend._set_exception(InvocationId(ids[1]), '"boom"')
    orchestrator._register_new_invocations([invocation(i) for i in ids[:3]])
    orchestrator._atomic_status_transition(InvocationId(ids[0]), InvocationStatus.PENDING, "runner:1")
    orchestrator.register_runner_heartbeats(["runner:1", "runner{2}"], can_run_atomic_service=True)
    assert orchestrator.record_atomic_service_execution_start(AtomicServiceRun(runner_id="runner:1"), None)
    condition = CronCondition("* * * * *")
    trigger.register_condition(condition)
    assert trigger.store_last_cron_execution(condition.condition_id, TICK)
    # an invocation running under running concurrency: its slot's lease names its document
    task = app.task(hold, running_concurrency=ConcurrencyControlType.TASK)
    held = DistributedInvocation(Call(task, Arguments({"v": "x"})), InvocationId(HELD), None, None, False)
    orchestrator._register_new_invocations([held])
    orchestrator._atomic_status_transition(held.invocation_id, InvocationStatus.PENDING, "runner:1")
    orchestrator._atomic_status_transition(held.invocation_id, InvocationStatus.RUNNING, "runner:1")
    return ids, condition.condition_id


def hold(v: str) -> str:
    """A task body (registered with running concurrency TASK on the test's app)."""
    return v


HELD = "held:{1}*"


def _all_reads(app: Pynenc, ids: list[str], condition_id: str) -> dict[str, Any]:
    backend: RedisStackStateBackend = app.state_backend
    orchestrator: RedisStackOrchestrator = app.orchestrator
    trigger: RedisStackTrigger = app.trigger
    reads = _reads(backend, ids)
    reads["result"] = backend._get_result(InvocationId(ids[0]))
    reads["exception"] = backend._get_exception(InvocationId(ids[1]))
    reads["statuses"] = [
        (record.status, record.runner_id)
        for record in (orchestrator.get_invocation_status_record(InvocationId(i)) for i in ids[:3])
    ]
    reads["runners"] = sorted(r.runner_id for r in orchestrator.get_active_runners())
    reads["cron"] = trigger.get_last_cron_execution(condition_id)
    condition = trigger.get_condition(condition_id)
    reads["condition"] = None if condition is None else condition.condition_id
    return reads


def _left(client: redis.Redis, moved: dict[str, str]) -> list[str]:
    """The untagged keys of ``moved`` still in the store."""
    return sorted(old for old in moved.values() if client.exists(old))


def test_migrate_moves_an_untagged_store_and_every_read_stays_equal(
    app: Pynenc, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend: RedisStackStateBackend = app.state_backend
    namespace = backend.namespace
    ids, condition_id = _write(app)
    before = _all_reads(app, ids, condition_id)
    assert before["cron"] == TICK and before["statuses"][0] == (InvocationStatus.PENDING, "runner:1")

    moved = to_untagged_layout(redis_client, namespace, app.app_id)
    kinds = {key.split(":")[1] for key in moved}
    assert {
        "invocation",
        "history",
        "result",
        "exception",
        "orchestrator-invocation",
        "runner-heartbeat",
    } <= kinds
    assert {"trigger-condition", "trigger-cron", "running-holder"} <= kinds
    assert backend._get_invocation(InvocationId(ids[0])) is None  # reads by key miss until migrated
    assert _left(redis_client, moved) == sorted(moved.values())

    # the dry run prints a COPY and an UNLINK per key and changes nothing
    out = io.StringIO()
    dry = admin.index_migrate(backend.conf, dry_run=True, out=out)
    printed = [split_redis_cli_line(line) for line in out.getvalue().splitlines()]
    copies = {args[1]: args[2] for args in printed if args[0] == "COPY"}
    lease = {old: new for new, old in moved.items() if ":atomic-service-lease:" in old}
    assert len(lease) == 1
    holders = {old for old in moved.values() if ":running-holders:" in old}  # split, not copied
    assert len(holders) == 1
    assert copies == {old: new for new, old in moved.items() if old not in {*lease, *holders}}
    assert dry.tagged_layout is not None and dry.tagged_layout.total >= len(moved)
    assert any(line.startswith("tagged keys: invocation:") for line in format_migration(dry))
    assert _left(redis_client, moved) == sorted(moved.values())

    # a run killed half-way (after two pages of documents) ...
    real_move = tagged_layout._move_documents
    calls = 0

    def killed(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("the run is killed here")
        real_move(*args, **kwargs)

    monkeypatch.setattr(tagged_layout, "_move_documents", killed)
    with pytest.raises(ConnectionError):
        admin.index_migrate(backend.conf)
    monkeypatch.setattr(tagged_layout, "_move_documents", real_move)
    assert _left(redis_client, moved)  # work left for the next run

    # ... is finished by the next one
    report = admin.index_migrate(backend.conf)
    assert report.tagged_layout is not None and report.tagged_layout.deleted == [
        f"{namespace.namespace}:{name}" for name in tagged_layout.COUNTERS
    ]
    assert _left(redis_client, moved) == []
    assert _all_reads(app, ids, condition_id) == before
    # the lease names the moved execution of a live runner: another start is blocked by it
    orchestrator: RedisStackOrchestrator = app.orchestrator
    assert not orchestrator.record_atomic_service_execution_start(
        AtomicServiceRun(runner_id="runner{2}"), None
    )
    for new in moved:
        assert redis_client.exists(new), new
    # the slot's lease names the moved document (a hash of its own, in the slot's hash slot)
    keys = orchestrator.store.keys
    [slot_lease] = [new for new, old in moved.items() if old in holders]
    assert redis_client.hget(slot_lease, "invocation") == keys.orchestrator_invocation(HELD)

    again = admin.index_migrate(backend.conf)
    assert again.tagged_layout is not None and again.tagged_layout.total == 0 and again.nothing_to_do


def test_history_written_after_the_move_comes_after_earlier_entries_of_equal_time(
    app: Pynenc, redis_client: redis.Redis
) -> None:
    """Moved entries keep their counter seq; new ones get arrival stamps, which are larger."""
    backend: RedisStackStateBackend = app.state_backend
    ids = _store(backend)
    first = [h.to_json() for h in backend.get_history(InvocationId(ids[0]))]
    to_untagged_layout(redis_client, backend.namespace, app.app_id)
    for key in redis_client.scan_iter(f"{backend.namespace.namespace}:history:*"):
        redis_client.execute_command("JSON.SET", key, "$.seq", "7")  # counter values are small
    admin.index_migrate(backend.conf)
    last = backend.get_history(InvocationId(ids[0]))[-1]
    from pynenc.invocation.status import InvocationStatusRecord
    from pynenc.state_backend.base_state_backend import InvocationHistory

    tie = InvocationHistory(
        InvocationId(ids[0]), InvocationStatusRecord(InvocationStatus.SUCCESS, "r", last.timestamp), "rc"
    )
    tie._timestamp = last.timestamp
    backend._add_histories([InvocationId(ids[0])], tie)
    history = backend.get_history(InvocationId(ids[0]))
    assert [h.to_json() for h in history[:-1]] == first
    assert history[-1].status_record.status == InvocationStatus.SUCCESS
    assert timedelta(0) == history[-1].timestamp - history[-2].timestamp
