"""A real 3-master cluster on loopback (tests/loopback.py), reached through this package's
cluster client (``redis+cluster://``, :class:`~pynenc_redis_stack.core.topology.ClusterClient`).

Its search module (Redis Stack 7.4's) has no coordinator: an index name is a key (the node
owning its slot holds the index), an index sees only its own node's documents, and
``FT.ALIASADD`` refuses an alias in another slot than its index. Redis 8's coordinator has
none of these limits; ``./dev test --url`` runs the suites there (docs/scale-out.md).

What works today is tested as working. What cannot work yet is marked ``xfail(strict=True)``
with the reason: it is not counted as a pass, and the marker must go when it starts to pass.

The state backend's and orchestrator's writes, scripts and compare-and-set are tested through
components given the cluster client directly: their first use (index checks behind aliases)
is what this coordinator-less cluster refuses, not their commands.
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.call import Call
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.exceptions import InvocationStatusError
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import TaskInvocation
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.orchestrator.atomic_service import AtomicServiceRun
from pynenc.runner.runner_context import RunnerContext
from redis.crc import key_slot

from pynenc_redis_stack.core.client import Client
from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.topology import ClusterClient
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.orchestrator import scripts as orchestrator_scripts
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id
from tests.loopback import LoopbackCluster, Node, wait_until

NO_COORDINATOR = (
    "on this coordinator-less Stack 7.4 cluster only: the first use's FT.ALIASADD refuses an alias "
    "in another slot than its index, and a query sees one node (Redis 8's coordinator does not)"
)


def add(x: int, y: int) -> int:
    return x + y


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    with tempfile.TemporaryDirectory(prefix="prs-cluster-") as directory:
        deployment = LoopbackCluster(Path(directory))
        try:
            deployment.start()
            yield deployment
        finally:
            deployment.stop()


@pytest.fixture
def client(cluster: LoopbackCluster) -> ClusterClient:
    made = get_client(ConfigRedisStackKeyspace(config_values={"redis_stack_url": cluster.url}))
    assert isinstance(made, ClusterClient)
    return made


def _app(cluster: LoopbackCluster, request: pytest.FixtureRequest, *components: str) -> Pynenc:
    builder = PynencBuilder().app_id(unique_app_id(request)).memory()
    return builder.redis_stack(url=cluster.url, components=components).build()


def _owner(cluster: LoopbackCluster, key: str) -> int:
    """Index in ``cluster.nodes`` of the node that stores ``key``, asked of the nodes themselves."""
    owners = []
    for number, node in enumerate(cluster.nodes):
        with node.client() as direct:
            if direct.execute_command("CLUSTER", "COUNTKEYSINSLOT", key_slot(key.encode())):
                owners.append(number)
    assert len(owners) == 1, f"{key!r} is on nodes {owners}"
    return owners[0]


def _done_indexing(direct: redis.Redis, index: str) -> bool:
    info = direct.execute_command("FT.INFO", index)
    fields = dict(zip(info[::2], info[1::2], strict=True))
    return int(fields["indexing"]) == 0


def test_the_cluster_client_keeps_the_package_policy_and_routes_search_listing(client: ClusterClient) -> None:
    # redis-py internals relied on (topology.ClusterClient): no cluster-level retries, so
    # only RetryingCommands decides what is sent again; FT._LIST routed to one node
    assert client.retry.get_retries() == 0
    assert client.command_retry.get_retries() == 2  # max_connection_attempts 3
    assert isinstance(client.execute_command("FT._LIST"), list)


def _stall(node: Node, seconds: float) -> threading.Thread:
    """Block ``node`` for ``seconds`` (DEBUG SLEEP on its own connection); return once a PING
    on another connection goes unanswered."""

    def sleep() -> None:
        with node.client() as direct:
            direct.execute_command("DEBUG", "SLEEP", str(seconds))

    sleeper = threading.Thread(target=sleep, daemon=True)
    sleeper.start()
    wait_until(lambda: not node.answers(timeout=0.1), "the node to block on DEBUG SLEEP")
    return sleeper


def test_only_repeatable_commands_are_sent_again_after_a_timeout(
    cluster: LoopbackCluster, request: pytest.FixtureRequest
) -> None:
    settings = {"redis_stack_url": cluster.url, "socket_timeout": 0.5, "max_connection_attempts": 4}
    client = get_client(ConfigRedisStackKeyspace(config_values=settings))
    key = f"retry:{unique_app_id(request)}"
    client.set(key, "0")
    node = cluster.nodes[_owner(cluster, key)]
    # GET times out while the node sleeps (2 s, 0.5 s per attempt) and is answered on a retry
    _stall(node, 2.0)
    assert client.get(key) == "0"
    # INCR is not repeatable: the timeout reaches the caller, and no layer sends it again
    # (redis-py's cluster-level retry would, were it not built with none)
    sleeper = _stall(node, 2.0)
    with pytest.raises(redis.TimeoutError):
        client.incr(key)
    sleeper.join()
    with node.client() as direct:
        assert direct.get(key) == "1"  # the server ran the one INCR it got, once awake


def test_each_node_stores_and_indexes_its_own_share(
    cluster: LoopbackCluster, client: ClusterClient, request: pytest.FixtureRequest
) -> None:
    prefix = f"shares:{unique_app_id(request)}:"
    keys = [f"{prefix}{number}" for number in range(60)]
    pipe = client.pipeline(transaction=False)
    for number, key in enumerate(keys):
        pipe.execute_command("JSON.SET", key, "$", orjson.dumps({"n": number}).decode())
    pipe.execute()
    stored: dict[int, set[str]] = {number: set() for number in range(len(cluster.nodes))}
    for key in keys:
        stored[_owner(cluster, key)].add(key)
    assert all(stored.values()), f"the keys did not spread over every node: {stored}"
    for number, node in enumerate(cluster.nodes):
        with node.client() as direct:
            # an index whose name hashes to this node (without a coordinator the name is a key)
            name = next(
                f"{prefix}idx-{candidate}"
                for candidate in range(10_000)
                if cluster.node_for_slot(key_slot(f"{prefix}idx-{candidate}".encode())) is node
            )
            direct.execute_command(
                "FT.CREATE", name, "ON", "JSON", "PREFIX", "1", prefix, "SCHEMA", "$.n", "AS", "n", "NUMERIC"
            )
            wait_until(functools.partial(_done_indexing, direct, name), f"{name} to index its documents")
            reply = direct.execute_command("FT.SEARCH", name, "*", "NOCONTENT", "LIMIT", "0", "1000")
            assert set(reply[1:]) == stored[number]


def test_broker_queue_and_leases_work_and_stay_on_the_node_of_the_app_tag(
    cluster: LoopbackCluster, request: pytest.FixtureRequest
) -> None:
    app = _app(cluster, request, "broker")
    broker = app.broker
    ids = [InvocationId(f"inv-{number}") for number in range(12)]
    broker._route_invocations(ids[:6], "default", 0.0)
    broker._route_invocations(ids[6:], "default", 5.0)  # higher priority: taken first
    assert broker.count_invocations() == 12
    # the app's broker keys share one slot (its hash tag), so they live on one node
    keys = [broker.keys.broker_queue("default"), broker.keys.broker_seq(), broker.keys.broker_taken()]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert _owner(cluster, keys[0]) == _owner(cluster, keys[1])
    taken = [broker.retrieve_invocation() for _ in ids]
    assert taken == ids[6:] + ids[:6]
    assert broker.count_taken() == 1  # each take acknowledged the previous one
    broker.acknowledge_taken()
    assert broker.count_taken() == 0
    assert broker.retrieve_invocation() is None


def test_the_client_data_store_works_on_the_cluster(
    cluster: LoopbackCluster, request: pytest.FixtureRequest
) -> None:
    store = _app(cluster, request, "client_data_store").client_data_store
    store._store("k1", "v" * 10_000)
    store._store("k2", "w")
    assert (store._retrieve("k1"), store._retrieve("k2")) == ("v" * 10_000, "w")
    store._purge()
    with pytest.raises(KeyError):
        store._retrieve("k1")


def test_locks_work_on_the_cluster(client: ClusterClient, request: pytest.FixtureRequest) -> None:
    name = f"pynenc:lock:{unique_app_id(request)}"
    first = client.lock(name, timeout=10)
    second = client.lock(name, timeout=10)
    assert first.acquire(blocking=False)
    assert not second.acquire(blocking=False)
    first.release()
    assert second.acquire(blocking=False)
    second.release()


def test_the_orchestrators_compare_and_set_works_on_one_invocation(
    client: Client,  # a ClusterClient, typed as get_client types it
    request: pytest.FixtureRequest,
) -> None:
    key = Namespace("pynenc").for_app(unique_app_id(request)).orchestrator_invocation("inv-1")
    document: dict[str, Any] = {"status": "REGISTERED", "runner_id": None, "status_version": 0}
    client.execute_command("JSON.SET", key, "$", orjson.dumps(document).decode())
    # a task without running concurrency: the invocation's document is the script's only key
    outcome = orchestrator_scripts.set_status_if_version_script.run(
        client, [key], ["0", '"PENDING"', '"r-1"', '"token-1"', "0"]
    )
    assert outcome[0] == "ok"
    stale = orchestrator_scripts.set_status_if_version_script.run(
        client, [key], ["0", '"RUNNING"', '"r-2"', '"token-2"', "0"]
    )
    assert stale == ["conflict"]
    stored = orjson.loads(client.execute_command("JSON.GET", key, "$"))[0]
    assert (stored["status"], stored["runner_id"], stored["status_version"]) == ("PENDING", "r-1", 1)


@pytest.mark.xfail(strict=True, raises=(redis.RedisError,), reason=NO_COORDINATOR)
def test_state_backend_writes_and_reads_an_invocation_on_the_cluster(
    cluster: LoopbackCluster, request: pytest.FixtureRequest
) -> None:
    app = _app(cluster, request, "state_backend")
    invocation = TaskInvocation(
        call=Call(app.task(add)),
        invocation_id=InvocationId("inv-1"),
        parent_invocation_id=InvocationId("parent"),
        workflow=None,
        stored_in_backend=True,
    )
    app.state_backend._upsert_invocations([(invocation.to_dto(), invocation.call.to_dto())])
    assert list(app.state_backend.get_child_invocations(InvocationId("parent"))) == ["inv-1"]


@pytest.mark.xfail(strict=True, raises=(redis.RedisError,), reason=NO_COORDINATOR)
def test_orchestrator_registers_invocations_on_the_cluster(
    cluster: LoopbackCluster, request: pytest.FixtureRequest
) -> None:
    app = _app(cluster, request, "orchestrator")
    task = app.task(add)
    invocations = [
        TaskInvocation(
            call=Call(task),
            invocation_id=InvocationId(f"inv-{number}"),
            parent_invocation_id=None,
            workflow=None,
            stored_in_backend=True,
        )
        for number in range(3)
    ]
    app.orchestrator._register_new_invocations(invocations)
    assert app.orchestrator.get_invocation_status_record(InvocationId("inv-2")).status.value == "REGISTERED"


def _node_index(cluster: LoopbackCluster, node: Node, prefix: str) -> str:
    """An index name that hashes to ``node`` (without a coordinator an index name is a key)."""
    return next(
        f"{prefix}idx-{candidate}"
        for candidate in range(10_000)
        if cluster.node_for_slot(key_slot(f"{prefix}idx-{candidate}".encode())) is node
    )


def _task_invocations(app: Pynenc, count: int) -> list[TaskInvocation[Any, Any]]:
    task = app.task(add)
    return [
        TaskInvocation(
            call=Call(task),
            invocation_id=InvocationId(f"inv-{number}"),
            parent_invocation_id=InvocationId("parent"),
            workflow=None,
            stored_in_backend=True,
        )
        for number in range(count)
    ]


def test_state_backend_writes_spread_over_every_node_and_each_invocation_stays_on_one(
    cluster: LoopbackCluster, client: ClusterClient, request: pytest.FixtureRequest
) -> None:
    """Batches spanning invocations go as one script call per slot through the cluster
    pipeline; an invocation's document, history entries and result share its node; each
    node's own history index answers for the entries it stores."""
    app = _app(cluster, request, "state_backend")
    backend = RedisStackStateBackend(app)  # app.state_backend would store the app info on first use
    backend.store._client = cast(Client, client)  # the commands, not the first use (module docstring)
    invocations = _task_invocations(app, 30)
    backend._upsert_invocations([(i.to_dto(), i.call.to_dto()) for i in invocations])
    context = RunnerContext(runner_cls="TestRunner", runner_id="runner:1", pid=1, hostname="h")
    for status in (InvocationStatus.REGISTERED, InvocationStatus.PENDING):
        backend.add_histories(invocations, InvocationStatusRecord(status), context)
    for invocation in invocations:
        backend._set_result(invocation.invocation_id, '"ok"')

    keys = backend.keys
    nodes = set()
    history_prefix = keys.history("", "").split("{")[0]
    entries_on: dict[int, int] = dict.fromkeys(range(len(cluster.nodes)), 0)
    for invocation in invocations:
        invocation_id = invocation.invocation_id
        node = _owner(cluster, keys.invocation(invocation_id))
        nodes.add(node)
        assert _owner(cluster, keys.result(invocation_id)) == node
        stored = orjson.loads(client.execute_command("JSON.GET", keys.invocation(invocation_id)))
        assert (stored["task_func"], stored["status"]) == ("add", "pending")  # upsert and history met
        with cluster.nodes[node].client() as direct:
            entries = list(direct.scan_iter(f"{keys.history(invocation_id, '')}*"))
        assert len(entries) == 2
        entries_on[node] += 2
        assert backend._get_invocation(invocation_id) is not None
    assert nodes == {0, 1, 2}, "one app's invocations spread over every node"
    assert backend._get_runner_contexts(["runner:1", "missing"])[0].runner_id == "runner:1"

    for number, member in enumerate(cluster.nodes):
        with member.client() as direct:
            name = _node_index(cluster, member, history_prefix)
            direct.execute_command(
                "FT.CREATE", name, "ON", "JSON", "PREFIX", "1", history_prefix,
                "SCHEMA", "$.invocation_id", "AS", "invocation_id", "TAG",
            )  # fmt: skip
            wait_until(functools.partial(_done_indexing, direct, name), f"{name} to index its documents")
            reply = direct.execute_command("FT.SEARCH", name, "*", "NOCONTENT", "LIMIT", "0", "0")
            assert reply[0] == entries_on[number]


def test_orchestrator_registration_heartbeats_and_compare_and_set_through_the_cluster(
    cluster: LoopbackCluster, client: ClusterClient, request: pytest.FixtureRequest
) -> None:
    app = _app(cluster, request, "orchestrator")
    orchestrator = RedisStackOrchestrator(app)
    orchestrator.store._client = cast(Client, client)  # the commands, not the first use (module docstring)
    invocations = _task_invocations(app, 12)
    orchestrator._register_new_invocations(invocations)
    keys = orchestrator.store.keys
    owners = {_owner(cluster, keys.orchestrator_invocation(i.invocation_id)) for i in invocations}
    assert owners == {0, 1, 2}
    documents = [
        orjson.loads(client.execute_command("JSON.GET", keys.orchestrator_invocation(i.invocation_id)))
        for i in invocations
    ]
    seqs = [document["registered_seq"] for document in documents]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # arrival order, no counter

    orchestrator._atomic_status_transition(InvocationId("inv-3"), InvocationStatus.PENDING, "runner:1")
    record = orchestrator.get_invocation_status_record(InvocationId("inv-3"))
    assert (record.status, record.runner_id) == (InvocationStatus.PENDING, "runner:1")
    with pytest.raises(InvocationStatusError):
        orchestrator._atomic_status_transition(InvocationId("inv-3"), InvocationStatus.REGISTERED, "runner:2")

    orchestrator.register_runner_heartbeats(["runner:1", "runner:2", "runner{3}"])
    beats = [keys.runner_heartbeat(runner) for runner in ("runner:1", "runner:2", "runner{3}")]
    assert len({_owner(cluster, key) for key in beats}) == 1  # the app's slot: one script call
    assert all(client.exists(key) for key in beats)

    # the atomic-service lease, its executions and the heartbeats share the app's slot, so
    # admitting a run (which reads the holder and its runner's heartbeat) is one slot's script
    run = AtomicServiceRun(runner_id="runner:1")
    assert orchestrator.record_atomic_service_execution_start(run, None)
    lease = keys.atomic_service_lease()
    assert client.get(lease) == keys.atomic_service_execution(run.atomic_service_id.atomic_service_run_id)
    assert _owner(cluster, lease) == _owner(cluster, beats[0])


def test_running_concurrency_claims_its_slot_lease_beside_the_status_on_other_nodes(
    cluster: LoopbackCluster, client: ClusterClient, request: pytest.FixtureRequest
) -> None:
    """A start under running concurrency is the status compare-and-set (the invocation's
    slot), then the claim of the slot's lease (the lease's own slot): no script spans both.
    The second starter finds the first RUNNING and holding the lease; once the first leaves
    RUNNING its lease is gone and the second claims it. (The index query before the claim is
    what this coordinator-less cluster cannot answer, so the claim is driven directly.)"""
    app = _app(cluster, request, "orchestrator")
    orchestrator = RedisStackOrchestrator(app)
    orchestrator.store._client = cast(Client, client)
    task = app.task(add, running_concurrency=ConcurrencyControlType.TASK)
    first, second = (
        TaskInvocation(Call(task), InvocationId(f"slot-{n}"), None, None, stored_in_backend=True)
        for n in range(2)
    )
    orchestrator._register_new_invocations([first, second])
    orchestrator.register_runner_heartbeats(["runner:1", "runner:2"])
    documents: dict[InvocationId, dict[str, Any]] = {}
    for invocation, runner in ((first, "runner:1"), (second, "runner:2")):
        orchestrator._atomic_status_transition(invocation.invocation_id, InvocationStatus.PENDING, runner)
        stored = orchestrator.store.read(orchestrator._key(invocation.invocation_id))
        assert stored is not None
        documents[invocation.invocation_id] = stored
    lease = orchestrator._running_holder(documents[first.invocation_id])

    orchestrator._write_status(first.invocation_id, InvocationStatus.RUNNING, "runner:1", None)
    assert orchestrator._claim_running_slot(first.invocation_id, documents[first.invocation_id]) is None
    assert client.hget(lease, "invocation") == orchestrator._key(first.invocation_id)
    nodes = {_owner(cluster, lease), *(_owner(cluster, orchestrator._key(i)) for i in documents)}
    assert len(nodes) > 1  # the lease and the statuses are not one slot's keys
    _, replaced = orchestrator._write_status(second.invocation_id, InvocationStatus.RUNNING, "runner:2", None)
    holder = orchestrator._claim_running_slot(second.invocation_id, replaced)
    assert holder == first.invocation_id
    orchestrator._undo_start(second.invocation_id, replaced)
    assert orchestrator.get_invocation_status(second.invocation_id) is InvocationStatus.PENDING

    orchestrator._atomic_status_transition(first.invocation_id, InvocationStatus.SUCCESS, "runner:1")
    assert not client.exists(lease)
    orchestrator._write_status(second.invocation_id, InvocationStatus.RUNNING, "runner:2", None)
    assert orchestrator._claim_running_slot(second.invocation_id, replaced) is None
    assert client.hget(lease, "invocation") == orchestrator._key(second.invocation_id)
