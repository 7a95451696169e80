"""RedisStackOrchestrator on the real server: the atomic parts, recovery, hostile ids, caps.

- two (or eight) runners claiming the same invocations at once: exactly one claim wins each,
  and a claim that lost the compare-and-set validates again against what won;
- one RUNNING atomic-service execution per app, however many runners claim at once;
- concurrency-control lookups by task, arguments and key arguments, with hostile values;
- a runner whose heartbeat stops: its RUNNING invocations become recoverable (a runner that
  keeps beating keeps its own), and pynenc's recovery steps reroute them;
- ids with ``- . : { } | @ * ? " '``, spaces and unicode in apps, invocations and runners;
- complete answers on a server whose result caps are 25.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.arguments import Arguments
from pynenc.call import Call
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.exceptions import InvocationStatusError, InvocationStatusTransitionError
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation import DistributedInvocation, ReusedInvocation
from pynenc.invocation.status import InvocationStatus
from pynenc.orchestrator.atomic_service import AtomicServiceExecutionStatus, AtomicServiceRun
from pynenc.runner.runner_context import RunnerContext
from pynenc_tests.conftest import MockPynenc
from redis.crc import key_slot

from pynenc_redis_stack.core.errors import ConcurrencyLockTimeoutError
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.orchestrator.documents import concurrency_digest
from pynenc_redis_stack.orchestrator.orchestrator import running_slot_leases
from pynenc_redis_stack.server import EmbeddedRedisStack
from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips, commandstats, delta

HOSTILE = [
    "a-b.c:d",
    "{x}|y",
    "@id*?",
    'say "hi" it\'s',
    "with  spaces ",
    "ünï©ødé ✓",
    "x} | @status:{pending",
    "a\\b",
]
"""Identifiers that break unescaped tag queries, key parsing or quoting."""

placeholder = MockPynenc()


@placeholder.task
def add(x: str, y: str) -> str:
    return x + y


@placeholder.task(registration_concurrency=ConcurrencyControlType.ARGUMENTS)
def once_per_arguments(key: str, value: str) -> str:
    return key + value


@placeholder.task(
    registration_concurrency=ConcurrencyControlType.KEYS,
    key_arguments=("key",),
)
def once_per_key(key: str, value: str) -> str:
    return key + value


def build_app(app_id: str, url: str, sqlite_path: Path) -> Pynenc:
    return (
        PynencBuilder()
        .app_id(app_id)
        .sqlite(sqlite_db_path=str(sqlite_path))
        .redis_stack(url=url)
        .redis_stack_orchestrator()
        .build()
    )


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Pynenc]:
    built = build_app(unique_app_id(request), redis_url, tmp_path / "pynenc.db")
    for task in (add, once_per_arguments, once_per_key):
        task.app = built
    yield built
    built.orchestrator.purge()


def orchestrator(app: Pynenc) -> RedisStackOrchestrator:
    assert isinstance(app.orchestrator, RedisStackOrchestrator)
    return app.orchestrator


def invocation(invocation_id: str, x: str = "1", y: str = "2") -> DistributedInvocation[Any, Any]:
    """An invocation of ``add`` with a chosen id (pynenc's own ids are uuids)."""
    return DistributedInvocation(
        Call(add, Arguments({"x": x, "y": y})), InvocationId(invocation_id), None, None, False
    )


def runner_context(runner_id: str) -> RunnerContext:
    return RunnerContext(runner_cls="TestRunner", runner_id=runner_id, pid=1, hostname="test-host")


def test_builder_keeps_the_orchestrator_whatever_comes_after(redis_url: str, tmp_path: Path) -> None:
    built = (
        PynencBuilder()
        .redis_stack_orchestrator()
        .redis_stack(url=redis_url)
        .sqlite(sqlite_db_path=str(tmp_path / "p.db"))
        .build()
    )
    assert type(built.orchestrator).__name__ == "RedisStackOrchestrator"
    assert type(built.state_backend).__name__ == "RedisStackStateBackend"
    assert type(built.broker).__name__ == "SQLiteBroker"
    configured = Pynenc(config_values={"orchestrator_cls": "RedisStackOrchestrator", "redis_url": redis_url})
    assert isinstance(configured.orchestrator, RedisStackOrchestrator)


# -- claims ---------------------------------------------------------------------------------


def test_concurrent_claimers_of_one_invocation_exactly_one_wins(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Eight runners (each its own app instance and connection pool entry) try to move the
    same 40 invocations from REGISTERED to PENDING at the same moment."""
    app_id = unique_app_id(request)
    apps = [build_app(app_id, redis_url, tmp_path / "pynenc.db") for _ in range(8)]
    ids = [f"claim-{n}:{HOSTILE[n % len(HOSTILE)]}" for n in range(40)]
    orchestrator(apps[0])._register_new_invocations([invocation(i) for i in ids])
    barrier = threading.Barrier(len(apps))
    wins: dict[str, list[str]] = {i: [] for i in ids}
    refusals: list[BaseException] = []
    unexpected: list[BaseException] = []

    def claim(worker: int) -> None:
        runner_id = f"runner-{worker}-{HOSTILE[worker]}"
        barrier.wait()
        for invocation_id in ids:
            try:
                orchestrator(apps[worker])._atomic_status_transition(
                    InvocationId(invocation_id), InvocationStatus.PENDING, runner_id
                )
                wins[invocation_id].append(runner_id)
            except InvocationStatusError as refused:
                refusals.append(refused)
            except BaseException as error:  # noqa: BLE001 - reported below
                unexpected.append(error)

    threads = [threading.Thread(target=claim, args=(worker,)) for worker in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not unexpected
    assert all(len(winners) == 1 for winners in wins.values()), wins
    assert len(refusals) == 40 * 7
    for invocation_id, winners in wins.items():
        record = orchestrator(apps[0]).get_invocation_status_record(InvocationId(invocation_id))
        assert (record.status, record.runner_id) == (InvocationStatus.PENDING, winners[0])
    orchestrator(apps[0]).purge()


def test_a_claim_that_loses_the_compare_and_set_is_validated_again(
    app: Pynenc, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Runner A reads REGISTERED; before its write, runner B claims the invocation. A's
    compare-and-set must fail, and A must re-validate against PENDING (owned by B): refused."""
    invocation_id = InvocationId("raced")
    orchestrator(app)._register_new_invocations([invocation(invocation_id)])
    store = orchestrator(app).store
    original_read = store.read
    reads: list[dict[str, Any]] = []

    def read_then_let_b_win(key: str) -> Any:
        document = original_read(key)
        assert document is not None  # registered above
        reads.append(document)
        if len(reads) == 1:  # the interleaving a real race produces, forced here to be certain
            other = build_app(app.app_id, str(store.conf.redis_stack_url), tmp_path / "other.db")
            orchestrator(other)._atomic_status_transition(invocation_id, InvocationStatus.PENDING, "runner-B")
        return document

    monkeypatch.setattr(store, "read", read_then_let_b_win)
    with pytest.raises(InvocationStatusTransitionError):
        orchestrator(app)._atomic_status_transition(invocation_id, InvocationStatus.PENDING, "runner-A")
    assert [document["status"] for document in reads] == ["registered", "pending"]
    record = orchestrator(app).get_invocation_status_record(invocation_id)
    assert (record.status, record.runner_id) == (InvocationStatus.PENDING, "runner-B")


def test_a_status_change_validated_against_its_own_last_write_is_checked_again_after_another(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Runner A validates its next change against the document its last change wrote (no
    read). Runner B finishes the invocation meanwhile: A's compare-and-set fails, A reads what
    B wrote, and pynenc's rules refuse RUNNING after SUCCESS."""
    app_id = unique_app_id(request)
    first, second = (build_app(app_id, redis_url, tmp_path / "pynenc.db") for _ in range(2))
    invocation_id = InvocationId("known-then-changed")
    orchestrator(first)._register_new_invocations([invocation(invocation_id)])
    orchestrator(first)._atomic_status_transition(invocation_id, InvocationStatus.PENDING, "runner-a")
    for status in (InvocationStatus.RUNNING, InvocationStatus.SUCCESS):
        orchestrator(second)._atomic_status_transition(invocation_id, status, "runner-a")

    with pytest.raises(InvocationStatusTransitionError):
        orchestrator(first)._atomic_status_transition(invocation_id, InvocationStatus.RUNNING, "runner-a")

    record = orchestrator(first).get_invocation_status_record(invocation_id)
    assert record.status is InvocationStatus.SUCCESS
    orchestrator(first).purge()


def test_a_change_refused_by_a_kept_document_is_validated_against_the_stored_one(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Runner A keeps PENDING; the invocation's thread (another process here) moves it to
    RUNNING. SUCCESS is refused after PENDING but allowed after RUNNING: A reads the stored
    document and succeeds (a hang of parents waiting for children, before this)."""
    app_id = unique_app_id(request)
    first, second = (build_app(app_id, redis_url, tmp_path / "pynenc.db") for _ in range(2))
    invocation_id = InvocationId("kept-then-advanced")
    orchestrator(first)._register_new_invocations([invocation(invocation_id)])
    orchestrator(first)._atomic_status_transition(invocation_id, InvocationStatus.PENDING, "runner-a")
    orchestrator(second)._atomic_status_transition(invocation_id, InvocationStatus.RUNNING, "runner-a")

    record = orchestrator(first)._atomic_status_transition(
        invocation_id, InvocationStatus.SUCCESS, "runner-a"
    )

    assert record.status is InvocationStatus.SUCCESS
    assert orchestrator(second).get_invocation_status_record(invocation_id).status is InvocationStatus.SUCCESS
    orchestrator(first).purge()


def test_a_final_status_sets_auto_purge_in_its_own_write(
    app: Pynenc, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    """pynenc sets the final status, then asks for auto purge: the status script already
    stamped it, so the second call sends nothing; a call on its own still stamps."""
    invocation_id = InvocationId("final-then-purge")
    orchestrator(app)._register_new_invocations([invocation(invocation_id)])
    context = runner_context("runner-a")
    for status in (InvocationStatus.PENDING, InvocationStatus.RUNNING):
        orchestrator(app).set_invocation_status(invocation_id, status, context)
    before = commandstats(redis_client)

    orchestrator(app)._atomic_status_transition(invocation_id, InvocationStatus.SUCCESS, "runner-a")
    with round_trips.counting():
        orchestrator(app).set_up_invocation_auto_purge(invocation_id)

    assert round_trips.count == 0
    assert "json.set" not in delta(before, commandstats(redis_client))  # MARK_FOR_PURGE not run
    stamps = _purge_and_status_stamps(app, redis_client, invocation_id)
    assert stamps["$.auto_purge_ts"] == stamps["$.status_ts"]  # the final status's own write
    other = InvocationId("purge-on-its-own")
    orchestrator(app)._register_new_invocations([invocation(other)])
    assert _purge_and_status_stamps(app, redis_client, other)["$.auto_purge_ts"] in ([], [None])
    orchestrator(app).set_up_invocation_auto_purge(other)
    assert _purge_and_status_stamps(app, redis_client, other)["$.auto_purge_ts"][0] > 0


def _purge_and_status_stamps(app: Pynenc, client: redis.Redis, invocation_id: str) -> dict[str, Any]:
    key = orchestrator(app).store.keys.orchestrator_invocation(invocation_id)
    stamps: dict[str, Any] = orjson.loads(
        client.execute_command("JSON.GET", key, "$.auto_purge_ts", "$.status_ts")
    )
    return stamps


def test_concurrent_atomic_service_claims_admit_one_running_execution(app: Pynenc) -> None:
    runs = [AtomicServiceRun(runner_id=f"runner-{n}-{HOSTILE[n]}") for n in range(8)]
    orchestrator(app).register_runner_heartbeats([run.runner_id for run in runs], can_run_atomic_service=True)
    barrier = threading.Barrier(len(runs))
    admitted: list[AtomicServiceRun] = []

    def start(run: AtomicServiceRun) -> None:
        barrier.wait()
        if orchestrator(app).record_atomic_service_execution_start(run, None):
            admitted.append(run)

    threads = [threading.Thread(target=start, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(admitted) == 1
    active = orchestrator(app).get_active_atomic_service_executions()
    assert [e.atomic_service_run_id for e in active] == [admitted[0].atomic_service_run_id]
    assert active[0].runner_id == admitted[0].runner_id
    # the same run again is still admitted; the blocked ones name the running one
    assert orchestrator(app).record_atomic_service_execution_start(admitted[0], None)
    finished = admitted[0].started_at
    assert finished is not None
    window = orchestrator(app).get_atomic_service_executions_in_timerange(
        finished.replace(year=2000), finished.replace(year=2100), 100
    )
    blocked = [e for e in window if e.status == AtomicServiceExecutionStatus.BLOCKED]
    assert len(blocked) == 7
    assert all(
        e.reason == f"prior_running:{admitted[0].atomic_service_run_id} runner:{admitted[0].runner_id}"
        for e in blocked
    )


def test_a_running_pass_of_a_runner_without_heartbeat_is_abandoned_for_the_next(app: Pynenc) -> None:
    """A pass whose runner never beat (or stopped beating) cannot block the app for good: the
    next start abandons it. A runner id with ':' and '%' finds its heartbeat key exactly."""
    alive, dead = "alive:100%", "dead:100%"
    orchestrator(app).register_runner_heartbeats([alive], can_run_atomic_service=True)
    first = AtomicServiceRun(runner_id=alive)
    assert orchestrator(app).record_atomic_service_execution_start(first, None)
    assert not orchestrator(app).record_atomic_service_execution_start(AtomicServiceRun(runner_id=dead), None)
    orchestrator(app).finalize_atomic_service_execution(
        first, datetime.now(UTC), AtomicServiceExecutionStatus.COMPLETED
    )
    stuck = AtomicServiceRun(runner_id=dead)
    assert orchestrator(app).record_atomic_service_execution_start(stuck, None)
    assert orchestrator(app).record_atomic_service_execution_start(AtomicServiceRun(runner_id=alive), None)
    (active,) = orchestrator(app).get_active_atomic_service_executions()
    assert active.runner_id == alive
    assert stuck.started_at is not None
    window = orchestrator(app).get_atomic_service_executions_in_timerange(
        stuck.started_at.replace(year=2000), stuck.started_at.replace(year=2100), 100
    )
    (abandoned,) = [e for e in window if e.status == AtomicServiceExecutionStatus.ABANDONED]
    assert (abandoned.runner_id, abandoned.reason) == (dead, f"runner_dead:{dead}")


# -- concurrency control ------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_registration_concurrency_by_arguments_and_keys_with_hostile_values(app: Pynenc, value: str) -> None:
    first = once_per_arguments(value, value + "!")
    assert isinstance(once_per_arguments(value, value + "!"), ReusedInvocation)
    assert once_per_arguments(value, value + "!").invocation_id == first.invocation_id
    other = once_per_arguments(value, value + "?")
    assert other.invocation_id != first.invocation_id

    by_key = once_per_key(value, "one")
    reused = once_per_key(value, "two")  # same key argument: reused with the new arguments
    assert reused.invocation_id == by_key.invocation_id
    assert once_per_key(value + "x", "one").invocation_id != by_key.invocation_id

    existing = orchestrator(app).get_existing_invocations
    key_args = once_per_key(value, "one").call.serialized_args_for_concurrency_control(
        ConcurrencyControlType.KEYS
    )
    assert list(existing(once_per_key, key_args)) == [by_key.invocation_id]
    assert list(existing(once_per_key, key_args, [InvocationStatus.RUNNING])) == []
    all_args = first.call.serialized_arguments
    assert list(existing(once_per_arguments, all_args, [InvocationStatus.REGISTERED])) == [
        first.invocation_id
    ]
    assert list(existing(once_per_arguments, {**all_args, "value": '"nope"'})) == []


def test_concurrent_routers_of_one_call_register_it_once(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Eight routers (each its own app instance, as on eight hosts) route the same calls of a
    task with registration concurrency at the same moment: each call is registered once and
    every router gets that invocation (pynenc's look-up-then-register alone registers it
    several times: the registration lock is what makes it hold)."""
    app_id = unique_app_id(request)
    apps = [build_app(app_id, redis_url, tmp_path / "pynenc.db") for _ in range(8)]
    once_per_arguments.app = apps[0]
    values = [f"route-{n}:{HOSTILE[n % len(HOSTILE)]}" for n in range(10)]
    barrier = threading.Barrier(len(apps))
    routed: dict[str, list[str]] = {value: [] for value in values}
    unexpected: list[BaseException] = []

    def route(worker: int) -> None:
        for value in values:
            barrier.wait()
            try:
                call = Call(once_per_arguments, Arguments({"key": value, "value": "v"}))
                routed[value].append(orchestrator(apps[worker]).route_call(call).invocation_id)
            except BaseException as error:  # noqa: BLE001 - reported below
                unexpected.append(error)

    threads = [threading.Thread(target=route, args=(worker,)) for worker in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not unexpected
    assert all(len(ids) == len(apps) and len(set(ids)) == 1 for ids in routed.values()), routed
    registered = list(orchestrator(apps[0]).get_task_invocation_ids(once_per_arguments.task_id))
    assert sorted(registered) == sorted(ids[0] for ids in routed.values())
    assert not list(apps[0].orchestrator.store.client.scan_iter(match="*registration-lock*"))
    orchestrator(apps[0]).purge()


def test_a_router_waiting_too_long_for_the_registration_lock_gets_a_clear_error(app: Pynenc) -> None:
    key_arguments = Call(once_per_arguments, Arguments({"key": "k", "value": "v"}))
    concurrency = once_per_arguments.conf.registration_concurrency
    digest = concurrency_digest(key_arguments.serialized_args_for_concurrency_control(concurrency))
    name = orchestrator(app).store.keys.registration_lock(once_per_arguments.task_id.key, digest)
    held = orchestrator(app).store.client.lock(name, timeout=30)
    assert held.acquire(blocking=False)
    orchestrator(app).conf.redis_stack_concurrency_lock_sec = 0.3
    try:
        with pytest.raises(ConcurrencyLockTimeoutError, match="redis_stack_concurrency_lock_sec"):
            orchestrator(app).route_call(key_arguments)
    finally:
        held.release()
    assert orchestrator(app).route_call(key_arguments).invocation_id


def test_running_concurrency_by_task_sees_other_runners(app: Pynenc) -> None:
    add.conf.running_concurrency = ConcurrencyControlType.TASK
    try:
        first, second = add("a", "b"), add("c", "d")
        orchestrator(app)._atomic_status_transition(first.invocation_id, InvocationStatus.PENDING, "r1")
        assert orchestrator(app).is_authorize_to_run_by_concurrency_control(second)
        orchestrator(app)._atomic_status_transition(first.invocation_id, InvocationStatus.RUNNING, "r1")
        assert not orchestrator(app).is_authorize_to_run_by_concurrency_control(second)
    finally:
        add.conf.running_concurrency = ConcurrencyControlType.DISABLED


@pytest.mark.parametrize("concurrency", [ConcurrencyControlType.TASK, ConcurrencyControlType.KEYS])
def test_concurrent_starts_of_one_running_slot_run_one_and_reroute_the_rest(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    concurrency: ConcurrencyControlType,
) -> None:
    """Eight runners (each its own app instance, as on eight hosts) start eight PENDING
    invocations of one running-concurrency slot at the same moment: one runs, the others are
    rerouted (REROUTED, back in the broker) and their RUNNING transition fails as pynenc's
    runner expects from a lost race. pynenc's check-then-start alone runs several at once."""
    app_id = unique_app_id(request)
    apps = [build_app(app_id, redis_url, tmp_path / "pynenc.db") for _ in range(8)]
    once_per_key.app = apps[0]
    once_per_key.conf.running_concurrency = concurrency
    try:
        invocations = [
            DistributedInvocation(
                Call(once_per_key, Arguments({"key": "same:{k}", "value": f"v{n}"})),
                InvocationId(f"start-{n}:{HOSTILE[n]}"),
                None,
                None,
                False,
            )
            for n in range(len(apps))
        ]
        orchestrator(apps[0]).register_new_invocations(invocations)
        for n, inv in enumerate(invocations):
            orchestrator(apps[0])._atomic_status_transition(
                inv.invocation_id, InvocationStatus.PENDING, f"r{n}"
            )
        barrier = threading.Barrier(len(apps))
        started: list[str] = []
        lost: list[BaseException] = []
        unexpected: list[BaseException] = []

        def start(worker: int) -> None:
            inv = invocations[worker]
            barrier.wait()
            try:
                orchestrator(apps[worker])._atomic_status_transition(
                    inv.invocation_id, InvocationStatus.RUNNING, f"r{worker}"
                )
                started.append(inv.invocation_id)
            except InvocationStatusTransitionError as race_lost:
                lost.append(race_lost)
            except BaseException as error:  # noqa: BLE001 - reported below
                unexpected.append(error)

        threads = [threading.Thread(target=start, args=(worker,)) for worker in range(len(apps))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not unexpected, [str(e) for e in unexpected]
        assert len(started) == 1 and len(lost) == len(apps) - 1
        statuses = {
            inv.invocation_id: orchestrator(apps[0]).get_invocation_status(inv.invocation_id)
            for inv in invocations
        }
        queued = [apps[0].broker.retrieve_invocation() for _ in range(2 * len(apps))]
        assert sorted(filter(None, queued)) == sorted(  # routed at registration, then rerouted
            [inv.invocation_id for inv in invocations] + [i for i in statuses if i != started[0]]
        )
        assert statuses == {
            inv.invocation_id: InvocationStatus.RUNNING
            if inv.invocation_id == started[0]
            else InvocationStatus.REROUTED
            for inv in invocations
        }
        # another slot of the same task (KEYS: other key arguments) is not held back
        if concurrency is ConcurrencyControlType.KEYS:
            other = DistributedInvocation(
                Call(once_per_key, Arguments({"key": "other", "value": "v"})),
                InvocationId("other"),
                None,
                None,
                False,
            )
            orchestrator(apps[0]).register_new_invocations([other])
            orchestrator(apps[0])._atomic_status_transition(
                other.invocation_id, InvocationStatus.PENDING, "r"
            )
            orchestrator(apps[0])._atomic_status_transition(
                other.invocation_id, InvocationStatus.RUNNING, "r"
            )
        # each slot's lease names the invocation running in it; purge finds and deletes them
        store = orchestrator(apps[0]).store
        leases = running_slot_leases(redis_client, store.namespace, store.schemas.invocations, store.keys)
        holders = {redis_client.hget(lease, "invocation") for lease in leases}
        running = [started[0]] + (["other"] if concurrency is ConcurrencyControlType.KEYS else [])
        assert holders == {store.keys.orchestrator_invocation(i) for i in running}
        orchestrator(apps[0]).purge()
        assert redis_client.exists(*leases) == 0
    finally:
        once_per_key.conf.running_concurrency = ConcurrencyControlType.DISABLED
        orchestrator(apps[0]).purge()


# -- dead runners ---------------------------------------------------------------------------


def test_invocations_of_a_runner_whose_heartbeat_stops_are_recovered(app: Pynenc) -> None:
    app.conf.runner_considered_dead_after_minutes = 0.02  # 1.2 s without a heartbeat
    dead, alive = runner_context("dead " + HOSTILE[6]), runner_context("alive " + HOSTILE[1])
    orch = orchestrator(app)
    lost, kept = add("lost", "1"), add("kept", "2")
    for inv, ctx in ((lost, dead), (kept, alive)):
        orch.register_runner_heartbeats([ctx.runner_id])
        orch.set_invocation_status(inv.invocation_id, InvocationStatus.PENDING, ctx)
        orch.set_invocation_status(inv.invocation_id, InvocationStatus.RUNNING, ctx)
    assert list(orch.get_running_invocations_for_recovery()) == []

    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            orch.register_runner_heartbeats([alive.runner_id])
            stop.wait(0.1)

    beater = threading.Thread(target=beat)
    beater.start()
    try:
        deadline = time.monotonic() + 30
        recoverable: list[InvocationId] = []
        while time.monotonic() < deadline and not recoverable:
            recoverable = list(orch.get_running_invocations_for_recovery())
            time.sleep(0.05)
        assert recoverable == [lost.invocation_id]
        assert [r.runner_id for r in orch.get_active_runners()] == [alive.runner_id]
    finally:
        stop.set()
        beater.join()

    while app.broker.retrieve_invocation(add.broker_queue):
        pass  # the queue held both since their registration
    # pynenc's recover_running_invocations steps, run by a recovery runner
    recovery = runner_context("recovery")
    orch.set_invocation_status(lost.invocation_id, InvocationStatus.RUNNING_RECOVERY, recovery)
    orch.reroute_invocations({lost.invocation_id}, recovery)
    assert orch.get_invocation_status(lost.invocation_id) == InvocationStatus.REROUTED
    assert orch.get_invocation_status(kept.invocation_id) == InvocationStatus.RUNNING
    assert app.broker.retrieve_invocation(add.broker_queue) == lost.invocation_id
    assert list(orch.get_running_invocations_for_recovery()) == []


# -- hostile identifiers -------------------------------------------------------------------


def test_hostile_ids_are_stored_and_found_exactly_and_apps_stay_apart(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    base = unique_app_id(request)
    hostile_app = build_app(base + ' a?c:{x}|"é"', redis_url, tmp_path / "a.db")
    neighbour = build_app(base + ' abc:{x}|"é"', redis_url, tmp_path / "b.db")
    orch, other = orchestrator(hostile_app), orchestrator(neighbour)
    ids = [InvocationId(f"{value}#{n}") for n, value in enumerate(HOSTILE)]
    orch._register_new_invocations([invocation(i) for i in ids])
    other._register_new_invocations([invocation(i) for i in ids[:2]])
    for n, invocation_id in enumerate(ids):
        runner_id = f"{HOSTILE[-1 - n]} runner"
        orch._atomic_status_transition(invocation_id, InvocationStatus.PENDING, runner_id)
        assert orch.get_invocation_status_record(invocation_id).runner_id == runner_id
    orch._atomic_status_transition(ids[0], InvocationStatus.RUNNING, f"{HOSTILE[-1]} runner")
    assert set(orch.get_task_invocation_ids(add.task_id)) == set(ids)
    assert set(orch.get_invocation_ids_paginated(limit=100)) == set(ids)
    assert orch.get_invocation_ids_paginated(limit=3) == ids[::-1][:3]  # newest first
    assert orch.count_invocations(statuses=[InvocationStatus.PENDING]) == len(ids) - 1
    assert orch.filter_by_status(ids, frozenset({InvocationStatus.RUNNING})) == [ids[0]]

    runners = [f"{value} runner" for value in HOSTILE]
    orch.register_runner_heartbeats(runners, can_run_atomic_service=True, consumed_queues=HOSTILE)
    active = orch.get_active_runners()
    assert sorted(r.runner_id for r in active) == sorted(runners)
    assert all(r.consumed_queues == tuple(HOSTILE) for r in active)
    # every owner is alive, however its id reads as query syntax: nothing to recover
    assert list(orch._get_running_invocations_for_recovery(600)) == []

    orch.waiting_for_results(ids[1], [ids[2], ids[3]])
    orch._atomic_status_transition(ids[2], InvocationStatus.PENDING_RECOVERY, "recovery")
    orch._atomic_status_transition(ids[2], InvocationStatus.REROUTED, "recovery")
    assert list(orch.get_blocking_invocations(10)) == [ids[2]]  # ids[3] is PENDING: not available
    orch.release_waiters(ids[2])
    assert list(orch.get_blocking_invocations(10)) == []

    assert other.count_invocations() == 2
    assert other.get_active_runners() == []
    orch.purge()
    assert orch.count_invocations() == 0
    assert other.count_invocations() == 2
    assert set(other.get_task_invocation_ids(add.task_id)) == set(ids[:2])
    other.purge()


# -- result caps ----------------------------------------------------------------------------


def test_answers_stay_complete_on_a_server_with_low_result_caps(
    request: pytest.FixtureRequest, low_cap_url: str, tmp_path: Path
) -> None:
    capped = build_app(unique_app_id(request), low_cap_url, tmp_path / "pynenc.db")
    orch = orchestrator(capped)
    ids = [InvocationId(f"inv-{n:03d}") for n in range(70)]
    for start in range(0, 70, 10):  # registration order is the page order
        orch._register_new_invocations([invocation(i) for i in ids[start : start + 10]])
    for invocation_id in ids[:40]:
        orch._atomic_status_transition(invocation_id, InvocationStatus.PENDING, "gone")
        orch._atomic_status_transition(invocation_id, InvocationStatus.RUNNING, "gone")
    orch.register_runner_heartbeats([f"runner-{n}" for n in range(30)])

    assert sorted(orch.get_task_invocation_ids(add.task_id)) == ids
    assert orch.count_invocations(task_id=add.task_id) == 70
    newest_first = ids[::-1]
    assert orch.get_invocation_ids_paginated(limit=20, offset=0) == newest_first[:20]
    assert orch.get_invocation_ids_paginated(limit=15, offset=40) == newest_first[40:55]
    assert sorted(orch._get_running_invocations_for_recovery(600)) == ids[:40]
    assert len(orch.get_active_runners()) == 30


# -- round trips ----------------------------------------------------------------------------


def test_hot_paths_are_one_or_two_round_trips(
    app: Pynenc, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    """What every runner does per invocation costs one round trip per step (two for a status
    change: the read its validation needs, then the compare-and-set script)."""
    orch = orchestrator(app)
    orch._register_new_invocations([invocation("warm-up")])  # indexes checked, scripts loaded
    orch._atomic_status_transition(InvocationId("warm-up"), InvocationStatus.PENDING, "r")
    orch.register_runner_heartbeats(["r"])
    list(orch.get_existing_invocations(add, statuses=[InvocationStatus.RUNNING]))

    def measured(action: Any) -> tuple[dict[str, int], int]:
        orch.store.client.ping()  # the pooled connection's health check happens here
        before = commandstats(redis_client)
        with round_trips.counting():
            action()
        return delta(before, commandstats(redis_client)), round_trips.count

    fifty = [invocation(f"i{n}") for n in range(50)]  # creating one stores it in the state backend
    commands, trips = measured(lambda: orch._register_new_invocations(fifty))
    slots = {key_slot(orch.store.keys.orchestrator_invocation(i.invocation_id).encode()) for i in fifty}
    assert (commands["evalsha"], trips) == (len(slots), 1)  # one script call per hash slot
    assert commands["json.set"] == 50
    commands, trips = measured(
        lambda: orch._atomic_status_transition(InvocationId("i7"), InvocationStatus.PENDING, "r")
    )
    assert (commands["json.get"] >= 1, commands["evalsha"], trips) == (True, 1, 2)
    commands, trips = measured(lambda: orch.register_runner_heartbeats([f"r{n}" for n in range(20)]))
    assert (commands["evalsha"], trips) == (1, 1)
    commands, trips = measured(
        lambda: list(orch.get_existing_invocations(add, {"x": '"1"'}, [InvocationStatus.REGISTERED]))
    )
    assert (commands, trips) == ({"ft.search": 1}, 1)
