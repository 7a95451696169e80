"""Retention and purge with every component of this package (``redis_stack(components="all")``).

Two apps with hostile ids share the server. Each registers invocations through pynenc (the
orchestrator's documents, broker queue entries, client data store values for large arguments
and results), finishes some of them (history, results, blocking edges), leaves others queued or
taken. Pruning app A must remove every key of its finished invocations (the state backend's,
the orchestrator's, the broker entries naming them) and nothing else; ``purge_app`` of app A
must leave no key of A and every key of B as it was. Keys are counted by pattern with ``SCAN``
here only; the code under test finds everything through indexes and the apps' own keys.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation import DistributedInvocation
from pynenc.invocation.status import InvocationStatus
from pynenc.runner.runner_context import RunnerContext
from pynenc.trigger.monitoring import EventRecord, TriggerRunRecord

from pynenc_redis_stack.admin.purge import purge_app
from pynenc_redis_stack.admin.retention import prune_invocations
from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.core.keys import AppKeys, Namespace, encode_segment
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id

S = InvocationStatus
LARGE = "x" * 50_000
"""Above pynenc's ``min_size_to_cache``: stored in the client data store by content hash."""

placeholder = Pynenc()


@placeholder.task
def work(value: str) -> str:
    return value


@dataclass
class Loaded:
    app: Pynenc
    finished: list[str]
    """Invocations in a final status (prunable with a cutoff after now)."""
    unfinished: list[str]
    """Registered (queued), pending (taken) or running: never pruned."""

    @property
    def keys(self) -> AppKeys:
        return Namespace("pynenc").for_app(self.app.app_id)


def _build(app_id: str, redis_url: str) -> Pynenc:
    return (
        PynencBuilder()
        .app_id(app_id)
        .memory()
        .redis_stack(url=redis_url, components="all")
        .custom_config(redis_stack_batch_size=3)
        .build()
    )


def _load(app: Pynenc) -> Loaded:
    """Six invocations: three finished (two with large values, one waited for by an unfinished
    one), one finished but routed twice (an entry still queued), one taken and left PENDING,
    one RUNNING, one only registered (queued)."""
    work.app = app
    orchestrator = app.orchestrator
    context = RunnerContext("TestRunner", f"runner {app.app_id}", pid=1, hostname="h", thread_id=1)
    invocations: list[DistributedInvocation[Any, Any]] = []
    for value in ("small-0", LARGE + "-1", LARGE + "-2", "dup-3", "run-4", "pending-5", "queued-6"):
        invocation = work(value)
        assert isinstance(invocation, DistributedInvocation)
        invocations.append(invocation)
    ids = [invocation.invocation_id for invocation in invocations]
    broker = app.broker
    assert isinstance(broker, RedisStackBroker)
    # six runner threads take one each and stay alive (taking again would acknowledge the
    # take); the seventh stays queued; dup-3 is routed once more
    all_took = threading.Barrier(6)
    with ThreadPoolExecutor(6) as pool:
        taken = list(pool.map(lambda _n: (broker.retrieve_invocation(), all_took.wait())[0], range(6)))
    assert sorted(map(str, taken)) == sorted(ids[:6])
    broker.route_invocations([ids[3]], "default", 0)
    for invocation in invocations[:6]:
        orchestrator.set_invocation_status(invocation.invocation_id, S.PENDING, context)
    for invocation in invocations[:5]:
        orchestrator.set_invocation_status(invocation.invocation_id, S.RUNNING, context)
    # the RUNNING one waits for two of those that finish, and for the PENDING one
    orchestrator.waiting_for_results(ids[4], [ids[0], ids[1], ids[5]])
    orchestrator.set_invocation_result(invocations[0], "r0", context)
    orchestrator.set_invocation_result(invocations[1], LARGE + "-result", context)
    orchestrator.set_invocation_exception(invocations[2], ValueError(LARGE), context)
    orchestrator.set_invocation_result(invocations[3], "r3", context)
    # pynenc released the edges to the finished ones; write one back, as a runner that lost
    # the race would, so prune has a leftover edge to collect
    orchestrator.waiting_for_results(ids[4], [ids[1]])
    return Loaded(app, finished=ids[:4], unfinished=ids[4:])


@pytest.fixture
def two_apps(request: pytest.FixtureRequest, redis_url: str) -> Iterator[tuple[Loaded, Loaded]]:
    ours = _load(_build(unique_app_id(request, "-a{b}:c|@*? ü"), redis_url))
    neighbour = _load(_build(unique_app_id(request, "-a{b}:c|@*? ü-2"), redis_url))
    yield ours, neighbour
    for loaded in (ours, neighbour):
        loaded.app.purge()


def _glob(text: str) -> str:
    for special in "\\*?[]":
        text = text.replace(special, "\\" + special)
    return text


def app_keys(client: redis.Redis, app_id: str) -> dict[str, str]:
    """Every key of the app (by SCAN, test only) -> a dump of its value."""
    segment = _glob(encode_segment(app_id))
    tagged_segment = _glob(encode_segment(app_id).replace("{", "%7B").replace("}", "%7D"))  # tagged keys'
    hash_tag = "{" + tagged_segment + "}"
    found = set(client.scan_iter(match=f"pynenc:*:{segment}", count=1000))
    found |= set(client.scan_iter(match=f"pynenc:*:{segment}:*", count=1000))
    found |= set(client.scan_iter(match=f"pynenc:*:{tagged_segment}:*", count=1000))
    found |= set(client.scan_iter(match=f"pynenc:*:{hash_tag}", count=1000))
    found |= set(client.scan_iter(match=f"pynenc:*:{hash_tag}:*", count=1000))
    return {key: repr(client.dump(key)) for key in sorted(found)}


def keys_naming(keys: dict[str, str], client: redis.Redis, invocation_ids: list[str]) -> set[str]:
    """The keys whose name, history entry document, or sorted-set members (broker entries)
    name one of ``invocation_ids``."""
    segments = [encode_segment(i) for i in invocation_ids]
    named = {key for key in keys if any(segment in key for segment in segments)}
    for key in keys:
        key_type = client.type(key)
        if key_type == "ReJSON-RL" and ":history:" in key:
            if client.json().get(key, "$.invocation_id") in [[i] for i in invocation_ids]:
                named.add(key)
        elif key_type == "zset":
            members = [str(member) for member in client.zrange(key, 0, -1)]
            if any(member.endswith(":" + i) for member in members for i in invocation_ids):
                named.add(key)
    return named


def test_prune_leaves_nothing_of_pruned_invocations_and_touches_nothing_else(
    two_apps: tuple[Loaded, Loaded], redis_client: redis.Redis
) -> None:
    ours, neighbour = two_apps
    backend = ours.app.state_backend
    orchestrator = ours.app.orchestrator
    broker = ours.app.broker
    assert isinstance(backend, RedisStackStateBackend)
    assert isinstance(orchestrator, RedisStackOrchestrator)
    assert isinstance(broker, RedisStackBroker)
    before = app_keys(redis_client, ours.app.app_id)
    sets_before = {key: redis_client.smembers(key) for key in before if redis_client.type(key) == "set"}
    neighbour_before = app_keys(redis_client, neighbour.app.app_id)
    named_before = keys_naming(before, redis_client, ours.finished)
    assert {ours.keys.broker_queue("default"), ours.keys.broker_taken()} < named_before
    assert broker.count_invocations() == 2 and broker.count_taken() == 6  # queued-6, dup-3 again
    client_data = redis_client.hgetall(ours.keys.client_data())
    assert len(client_data) >= 3  # two large arguments, a large result, a large exception

    cutoff = datetime.now(UTC) + timedelta(days=1)
    arguments = (backend.client, backend.namespace, backend.schemas, ours.app.app_id, cutoff)
    dry = prune_invocations(*arguments, allow_all=True, dry_run=True)
    assert app_keys(redis_client, ours.app.app_id) == before  # a dry run changes nothing
    report = prune_invocations(*arguments, allow_all=True)
    assert report.other_counts() == dry.other_counts()
    assert report.counts() == dry.counts()
    assert report.other_counts() == {
        "orchestrator-invocation": 4,
        "orchestrator-wait": 1,  # the leftover edge to invocation 1
        "broker-entry": 5,  # four taken entries (never acknowledged) and dup-3's second routing
        "trigger-event": 0,
        "trigger-run": 0,
        "client-data-value": 0,  # the pruned invocations' values were stored within the hour
    }

    after = app_keys(redis_client, ours.app.app_id)
    assert keys_naming(after, redis_client, ours.finished) == set()
    # the unfinished invocations are whole; what changed is only what named the pruned ones
    for invocation_id in ours.unfinished:
        assert orchestrator.get_invocation_status(InvocationId(invocation_id)) in (
            S.RUNNING,
            S.PENDING,
            S.REGISTERED,
        )
        assert backend.get_history(InvocationId(invocation_id))
    changed = {key for key in before if before[key] != after.get(key)}
    # sets (the trigger's) lost exactly the pruned ids
    for key in changed & set(sets_before):
        assert redis_client.smembers(key) == sets_before[key] - set(ours.finished), key
    assert changed - set(sets_before) <= named_before
    assert set(after) <= set(before)  # nothing written
    assert broker.count_invocations() == 1 and broker.count_taken() == 2  # queued-6; 4 and 5 taken
    assert _waited_by(orchestrator, ours.unfinished[0]) == [ours.unfinished[1]]
    # client data stored within the hour is kept, referred to or not (admin/client_data.py)
    assert redis_client.hgetall(ours.keys.client_data()) == client_data
    assert app_keys(redis_client, neighbour.app.app_id) == neighbour_before

    again = prune_invocations(*arguments, allow_all=True)
    assert again.deleted_documents == 0 and again.other_counts() == dict.fromkeys(again.other_counts(), 0)


def _waited_by(orchestrator: RedisStackOrchestrator, waiter_id: str) -> list[str]:
    store = orchestrator.store
    spec = store.schemas.waits
    return sorted(
        str(document["waited_id"])
        for document in store.documents(spec, store.where(spec, waiter_id=waiter_id))
    )


def test_purge_app_of_one_app_leaves_the_other_intact(
    two_apps: tuple[Loaded, Loaded], redis_client: redis.Redis
) -> None:
    ours, neighbour = two_apps
    backend = ours.app.state_backend
    assert isinstance(backend, RedisStackStateBackend)
    for loaded in two_apps:  # the trigger's keys and documents too
        assert loaded.app.trigger.claim_trigger_run(f"run of {loaded.app.app_id}")
        loaded.app.trigger.store_event(
            EventRecord(event_id="e:1", event_code="code", timestamp=datetime.now(UTC), payload={})
        )
    before = app_keys(redis_client, ours.app.app_id)
    neighbour_before = app_keys(redis_client, neighbour.app.app_id)
    kinds = {key.split(":")[1] for key in before}
    assert {
        "invocation",
        "history",
        "orchestrator-invocation",
        "orchestrator-wait",
        "broker-queue",
        "broker-taken",
        "broker-queues",
        "client-data",
        "trigger-run-claims",
        "trigger-event",
    } <= kinds, kinds

    purge_app(backend.client, backend.namespace, ours.app.app_id, page_size=2)

    left = app_keys(redis_client, ours.app.app_id)
    assert set(left) <= {ours.keys.app_info()}  # its registration
    assert app_keys(redis_client, neighbour.app.app_id) == neighbour_before
    neighbour_orchestrator = neighbour.app.orchestrator
    assert neighbour_orchestrator.get_invocation_status(InvocationId(neighbour.finished[0])) is S.SUCCESS


def test_an_invocation_the_orchestrator_moved_on_is_kept_whole(
    two_apps: tuple[Loaded, Loaded], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: between selection and delete, the orchestrator retries a finished
    invocation (its document says RETRY; the history entry is not written yet). The delete
    script reads the orchestrator's document too, and keeps the invocation whole."""
    from pynenc_redis_stack.admin import retention as prune_module

    ours, _neighbour = two_apps
    backend = ours.app.state_backend
    assert isinstance(backend, RedisStackStateBackend)
    moved = ours.finished[0]
    orchestrator_key = ours.keys.orchestrator_invocation(moved)
    original = prune_module._Pruner.dependents

    def racing_dependents(self: Any, invocation_ids: list[str]) -> Any:
        found = original(self, invocation_ids)
        if moved in invocation_ids:
            redis_client.execute_command("JSON.SET", orchestrator_key, "$.status", '"retry"')
        return found

    monkeypatch.setattr(prune_module._Pruner, "dependents", racing_dependents)
    cutoff = datetime.now(UTC) + timedelta(days=1)
    report = prune_invocations(
        backend.client, backend.namespace, backend.schemas, ours.app.app_id, cutoff, allow_all=True
    )
    assert report.skipped == 1 and report.orchestrator_invocations == len(ours.finished) - 1
    assert redis_client.exists(orchestrator_key, ours.keys.invocation(moved)) == 2
    assert [h.status_record.status for h in backend.get_history(InvocationId(moved))][-1] is S.SUCCESS
    assert ours.app.orchestrator.get_invocation_status(InvocationId(moved)) is S.RETRY


def test_prune_takes_trigger_events_and_runs_older_than_the_cutoff(
    two_apps: tuple[Loaded, Loaded], redis_client: redis.Redis
) -> None:
    """Events before the cutoff go, with every run linked to them whatever its time; runs
    executed before the cutoff go; newer ones and the other app's stay. A dry run counts the
    same and deletes nothing."""
    ours, neighbour = two_apps
    backend = ours.app.state_backend
    assert isinstance(backend, RedisStackStateBackend)
    now = datetime.now(UTC)
    old, new = now - timedelta(days=3), now - timedelta(minutes=1)
    for loaded in two_apps:
        trigger = loaded.app.trigger
        for event_id, at in (("old:{e}|1", old), ("old:{e}|2", old), ("new e", new)):
            trigger.store_event(EventRecord(event_id=event_id, event_code="code", timestamp=at, payload={}))
        runs: tuple[tuple[str, datetime, list[str]], ...] = (
            ("run-old", old, []),
            ("run-new-of-old-event", new, ["old:{e}|1"]),
            ("run-new", new, ["new e"]),
        )
        for run_id, at, event_ids in runs:
            trigger.store_trigger_run(
                TriggerRunRecord(
                    trigger_run_id=run_id,
                    executed_at=at,
                    trigger_id="t",
                    task_id_key="tasks.x",
                    logic_value="and",
                    event_ids=event_ids,
                )
            )
    cutoff = now - timedelta(days=1)
    neighbour_before = app_keys(redis_client, neighbour.app.app_id)

    def prune(dry_run: bool) -> Any:
        return prune_invocations(
            backend.client, backend.namespace, backend.schemas, ours.app.app_id, cutoff, dry_run=dry_run
        )

    planned = prune(dry_run=True)
    assert (planned.trigger_events, planned.trigger_runs) == (2, 2)
    assert ours.app.trigger.get_trigger_run("run-old") is not None
    report = prune(dry_run=False)
    assert (report.trigger_events, report.trigger_runs) == (2, 2)
    assert report.other_counts()["trigger-event"] == 2
    trigger = ours.app.trigger
    assert [e.event_id for e in trigger.get_events()] == ["new e"]
    assert trigger.get_trigger_run("run-new") is not None
    assert (
        trigger.get_trigger_run("run-old") is None and trigger.get_trigger_run("run-new-of-old-event") is None
    )
    assert app_keys(redis_client, neighbour.app.app_id) == neighbour_before
