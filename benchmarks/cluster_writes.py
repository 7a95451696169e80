"""``./dev bench --throughput --cluster``: a task's writes from N writer processes, on one
embedded Redis Stack against a 3-master loopback cluster (``tests/loopback.py``), same code,
same run.

The loopback cluster's search module (Redis Stack 7.4's) has no coordinator, so a component's
first use (indexes behind aliases) and every ``FT.*`` query fail there, and a pynenc runner
needs queries. What is measured is therefore the write path of a task, which needs none:
per task, in one writer process (:func:`write_one_task`),

1. orchestrator ``_register_new_invocations([invocation])`` (REGISTERED);
2. state backend ``_upsert_invocations`` of the invocation and ``add_histories`` (REGISTERED);
3. broker ``_route_invocations``, then ``retrieve_invocation`` (the take; it also acknowledges
   the writer's previous take);
4. orchestrator ``_atomic_status_transition`` to PENDING, then RUNNING, each followed by the
   state backend's ``add_history`` of the record it returned (no running concurrency);
5. state backend ``_set_result``, then the transition to SUCCESS and its ``add_history``.

Left out: the reads and queries a runner makes (which invocations to run, waiting for
results), and the client data store (small arguments stay inline).

Every component is given the topology's client directly (``store._client``, as
``tests/integration/test_scale_out_cluster.py`` does), on both topologies, so no first use
runs. The indexes exist on both, so each write is indexed as in production: on the single
server as the first use creates them (:func:`~pynenc_redis_stack.core.indexes.first_use.ensure_indexes`);
on the cluster, each node gets every index of the package (same ``FT.CREATE`` arguments)
under a name in its own slots, so each node indexes its own share, as a coordinator's
shards do. Each row starts from ``FLUSHALL`` on every node.

Each row: N writer processes (``python -m benchmarks.cluster_writes writer ...``) build their
invocations (ids unique per writer), write a few warm-up tasks (connections to every node,
scripts loaded), report ready, and start together when every writer is ready. tasks/s = all
tasks / (last writer's end - first writer's start); latency = one task's writes, start to end.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from pynenc import PynencBuilder
from pynenc.arguments import Arguments
from pynenc.call import Call
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import DistributedInvocation, TaskInvocation
from pynenc.invocation.status import InvocationStatus
from pynenc.runner.runner_context import RunnerContext
from redis.crc import key_slot

from benchmarks import tasks
from benchmarks.measure import SERVER_USEC, command_counts, machine, server_facts
from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.core.client import Client
from pynenc_redis_stack.core.client import run as run_command
from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.indexes.definition import create_command
from pynenc_redis_stack.core.indexes.first_use import ensure_indexes
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import IndexSpec, OrchestratorSchemas, load_schema_set, load_schemas
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.server import EmbeddedRedisStack
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend

if TYPE_CHECKING:
    from collections.abc import Callable

    from pynenc.task import Task
    from tests.loopback import LoopbackCluster, Node

SINGLE = "single"
CLUSTER = "cluster"
TOPOLOGIES = (SINGLE, CLUSTER)

WRITER_COUNTS = (1, 2, 4)
TASKS_PER_WRITER = {"quick": 100, "full": 400}
WARM_UP_TASKS = 12
"""Tasks each writer writes before the clock: enough to touch every node of the cluster."""

READY = "ready"
GO = "go"


@dataclass
class Row:
    """One measurement: ``writers`` processes writing ``tasks`` tasks in all on one topology."""

    topology: str
    writers: int
    tasks: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds per task
    keys_per_node: list[int] = field(default_factory=list)  # DBSIZE after the row
    commands: int = 0  # commands every node ran while the writers wrote (INFO commandstats)
    writer_cpu_seconds: float = 0.0  # CPU time of the writer processes while they wrote
    round: int = 0

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds

    @property
    def commands_per_task(self) -> float:
        return self.commands / self.tasks

    @property
    def writer_cpu_ms_per_task(self) -> float:
        return 1000 * self.writer_cpu_seconds / self.tasks

    def latency_ms(self, quantile: float) -> float:
        """Nearest-rank quantile of the per-task latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


# -- the writer process -----------------------------------------------------------------------


def write_one_task(components: WriterComponents, invocation: DistributedInvocation[Any, Any]) -> None:
    """Every write of one task's life, in the order a submitter and a runner send them."""
    orchestrator, backend, broker = components.orchestrator, components.backend, components.broker
    invocation_id = invocation.invocation_id
    registered = orchestrator._register_new_invocations([invocation])
    backend._upsert_invocations([(invocation.to_dto(), invocation.call.to_dto())])
    backend.add_histories([invocation], registered, components.context)
    broker._route_invocations([invocation_id], components.queue, 0.0)
    # Writers share the app's queue, so this take may return another writer's invocation; it
    # is never empty (each writer routes before it takes) and costs the same either way.
    if broker.retrieve_invocation(components.queue) is None:
        raise RuntimeError("the broker's queue was empty right after a route")
    for status in (InvocationStatus.PENDING, InvocationStatus.RUNNING):
        record = orchestrator._atomic_status_transition(invocation_id, status, components.runner_id)
        backend.add_history(invocation_id, record, components.context)
    backend._set_result(invocation_id, '"ok"')
    record = orchestrator._atomic_status_transition(
        invocation_id, InvocationStatus.SUCCESS, components.runner_id
    )
    backend.add_history(invocation_id, record, components.context)


@dataclass
class WriterComponents:
    """This package's orchestrator, state backend and broker of one app, on one client."""

    orchestrator: RedisStackOrchestrator
    backend: RedisStackStateBackend
    broker: RedisStackBroker
    context: RunnerContext
    runner_id: str
    queue: str


def build_components(url: str, app_id: str, writer: int) -> tuple[WriterComponents, Task[Any, Any]]:
    """The components and the app's task (``benchmarks.tasks.task_00``, never run), each
    component on the topology's client (``get_client``: a ``ClusterClient`` for a
    ``redis+cluster://`` URL), so no first use runs."""
    app = PynencBuilder().app_id(app_id).memory().redis_stack(url=url, components=("broker",)).build()
    client: Client = get_client(ConfigRedisStackKeyspace(config_values={"redis_stack_url": url}))
    orchestrator = RedisStackOrchestrator(app)
    orchestrator.store._client = client
    backend = RedisStackStateBackend(app)
    backend.store._client = client
    broker = app.broker
    if not isinstance(broker, RedisStackBroker):
        raise TypeError(f"expected this package's broker, got {type(broker).__name__}")
    broker._client = client
    runner_id = f"bench-writer-{writer}-{uuid.uuid4().hex[:6]}"
    context = RunnerContext(runner_cls="BenchWriter", runner_id=runner_id, pid=os.getpid(), hostname="bench")
    components = WriterComponents(orchestrator, backend, broker, context, runner_id, broker.conf.queues[0])
    return components, app.task(tasks.TASKS[0])


def build_invocations(
    task: Task[Any, Any], writer: int, prefix: str, count: int
) -> list[DistributedInvocation[Any, Any]]:
    """``count`` invocations of ``task`` with ids unique to this writer; their call ids and
    DTOs computed here, before the clock."""
    invocations: list[DistributedInvocation[Any, Any]] = []
    for number in range(count):
        call = Call(task, Arguments({"x": number, "y": writer}))
        invocation = TaskInvocation(
            call=call,
            invocation_id=InvocationId(f"w{writer}-{prefix}{number}"),
            parent_invocation_id=None,
            workflow=None,
            stored_in_backend=True,
        )
        invocation.to_dto()  # computes (and caches) the call id and serialized arguments
        invocation.call.to_dto()
        invocations.append(invocation)
    return invocations


def _writer(url: str, app_id: str, writer: int, task_count: int) -> None:
    """Prepare, write the warm-up tasks, print :data:`READY`, wait for :data:`GO` on stdin,
    write ``task_count`` tasks, print ``{"started": ..., "finished": ..., "latencies": [...],
    "cpu_seconds": ...}`` (``time.monotonic()``: one clock for every process on Linux)."""
    components, task = build_components(url, app_id, writer)
    warm_up = build_invocations(task, writer, "warm-", WARM_UP_TASKS)
    invocations = build_invocations(task, writer, "", task_count)
    for invocation in warm_up:
        write_one_task(components, invocation)
    print(READY, flush=True)
    if sys.stdin.readline().strip() != GO:
        raise SystemExit("no start signal")
    latencies = []
    cpu_before = time.process_time()
    started = time.monotonic()
    for invocation in invocations:
        began = time.perf_counter()
        write_one_task(components, invocation)
        latencies.append(time.perf_counter() - began)
    finished = time.monotonic()
    cpu_seconds = time.process_time() - cpu_before
    report = {"started": started, "finished": finished, "latencies": latencies, "cpu_seconds": cpu_seconds}
    print(json.dumps(report), flush=True)


# -- the measuring process --------------------------------------------------------------------


@dataclass
class Topology:
    """One deployment under test: its URL and a direct client per node."""

    name: str
    url: str
    node_clients: list[redis.Redis]
    create_indexes: Callable[[], None]  # every index of the package, on an empty deployment


def _index_specs() -> list[IndexSpec]:

    return [*load_schemas().all(), *load_schema_set(OrchestratorSchemas).all()]


def _namespace() -> Namespace:

    return Namespace(str(ConfigRedisStackKeyspace().redis_stack_namespace))


def single_topology(url: str) -> Topology:

    def create_indexes() -> None:
        client = get_client(ConfigRedisStackKeyspace(config_values={"redis_stack_url": url}))
        ensure_indexes(client, _namespace(), _index_specs(), create_missing=True)

    return Topology(
        SINGLE, url, [redis.Redis.from_url(url, protocol=2, decode_responses=True)], create_indexes
    )


def cluster_topology(cluster: LoopbackCluster) -> Topology:
    """A started loopback cluster, each node to get every index under a name in its own slots."""
    nodes = list(cluster.nodes)
    node_clients: list[redis.Redis] = [node.client() for node in nodes]

    def name_on(node: Node, base: str) -> str:
        # without a coordinator an index name is a key: the node must own its slot
        return next(
            f"{base}-{candidate}"
            for candidate in range(10_000)
            if cluster.node_for_slot(key_slot(f"{base}-{candidate}".encode())) is node
        )

    def create_indexes() -> None:
        namespace = _namespace()
        for node, client in zip(nodes, node_clients, strict=True):
            for spec in _index_specs():
                name = name_on(node, namespace.physical_index(spec))
                run_command(client, *create_command(namespace, spec, index=name))

    return Topology(CLUSTER, cluster.url, node_clients, create_indexes)


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYNENC__")}
    repository = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repository, env.get("PYTHONPATH")]))
    return env


def measure_row(topology: Topology, writers: int, tasks_per_writer: int, timeout: float) -> Row:
    """Empty the deployment, create the indexes, run ``writers`` writer processes together.

    :raises RuntimeError: If a writer fails or does not finish within ``timeout`` seconds.
    """
    for client in topology.node_clients:
        client.flushall()  # also drops the indexes (RediSearch follows FLUSHALL)
    topology.create_indexes()
    app_id = f"bench-cluster-writes-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "benchmarks.cluster_writes", "writer", topology.url, app_id]
    processes = [
        subprocess.Popen(
            [*command, str(writer), str(tasks_per_writer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_environment(),
        )
        for writer in range(writers)
    ]
    label = f"{topology.name}, {writers} writers"
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            while line and line.strip() != READY:  # anything a library prints first
                line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{label}: a writer exited before it was ready")
        commands_before = _commands_run(topology)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(GO + "\n")
            process.stdin.flush()
        reports = []
        for process in processes:
            out, _ = process.communicate(timeout=timeout)
            if process.returncode != 0:
                raise RuntimeError(f"{label}: a writer failed (exit status {process.returncode})")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{label}: no report after {timeout:.0f} s") from exc
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    latencies = [float(latency) for r in reports for latency in r["latencies"]]
    commands = _commands_run(topology) - commands_before
    keys = [int(client.dbsize()) for client in topology.node_clients]
    cpu_seconds = sum(float(r["cpu_seconds"]) for r in reports)
    return Row(
        topology.name, writers, writers * tasks_per_writer, seconds, latencies, keys, commands, cpu_seconds
    )


def _commands_run(topology: Topology) -> int:
    """Every command the deployment's nodes have run (a script's own commands included), but
    ``INFO``."""
    return sum(
        count
        for client in topology.node_clients
        for name, count in command_counts(client).items()
        if name not in ("info", SERVER_USEC)
    )


def _median_rate(rows: list[Row]) -> float:
    return statistics.median(row.tasks_per_second for row in rows)


def _pooled(rows: list[Row]) -> Row:
    return Row(
        rows[0].topology,
        rows[0].writers,
        sum(r.tasks for r in rows),
        sum(r.seconds for r in rows),
        [latency for r in rows for latency in r.latencies],
        rows[-1].keys_per_node,
        sum(r.commands for r in rows),
        sum(r.writer_cpu_seconds for r in rows),
    )


def markdown(rows: list[Row], facts: dict[str, Any]) -> str:
    """One line per (writers, topology); cluster/single ratios on the cluster's line."""
    several = any(row.round > 0 for row in rows)
    lines = [
        "# A task's writes on a 3-master cluster against a single server",
        "",
        f"Machine: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores (shared: quote the "
        "ratios of one run, not absolutes); "
        f"Redis {facts.get('redis_server', '?')}, search {facts.get('search_module', '?')}, "
        f"JSON {facts.get('json_module', '?')}; {facts.get('mode', '')}; "
        f"{facts.get('tasks_per_writer', '?')} tasks per writer"
        + (f", median of {facts.get('rounds')} rounds" if several else "")
        + ".",
        "",
        "Per task: register, upsert + REGISTERED history, route + take, PENDING, RUNNING, result, "
        "SUCCESS, each status with its history entry (`benchmarks/cluster_writes.py`). single: one "
        "embedded Redis Stack; cluster: 3 masters on loopback, every index on every node.",
        "",
        "| writers | topology | tasks/s | write p50 ms | write p99 ms | Redis commands per task | "
        "writer CPU ms per task | keys per node | tasks/s cluster/single | p50 cluster/single |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for writers in sorted({row.writers for row in rows}):
        found = {
            topology: [r for r in rows if r.writers == writers and r.topology == topology]
            for topology in TOPOLOGIES
        }
        for topology in TOPOLOGIES:
            if not found[topology]:
                continue
            pooled = _pooled(found[topology])
            rate = _median_rate(found[topology])
            ratios = ["", ""]
            if topology == CLUSTER and found[SINGLE]:
                single = _pooled(found[SINGLE])
                ratios = [
                    f"{rate / _median_rate(found[SINGLE]):.2f}",
                    f"{pooled.latency_ms(0.5) / single.latency_ms(0.5):.2f}",
                ]
            lines.append(
                f"| {writers} | {topology} | {rate:.0f} | {pooled.latency_ms(0.5):.2f} | "
                f"{pooled.latency_ms(0.99):.2f} | {pooled.commands_per_task:.1f} | "
                f"{pooled.writer_cpu_ms_per_task:.2f} | "
                f"{' / '.join(str(k) for k in pooled.keys_per_node)} | "
                f"{' | '.join(ratios)} |"
            )
    return "\n".join(lines) + "\n"


def run(
    quick: bool,
    out: Path,
    timeout: float,
    rounds: int = 1,
    writer_counts: tuple[int, ...] = WRITER_COUNTS,
    tasks_per_writer: int | None = None,
) -> list[Row]:
    """Start an embedded Redis Stack and a 3-master loopback cluster, measure every writer
    count on both (alternating which goes first, round after round), stop both, and write
    ``throughput-cluster.md`` and ``.json`` to ``out``.

    :raises RuntimeError: If a measurement fails (see :func:`measure_row`).
    """
    from tests.loopback import LoopbackCluster  # the repository root is on sys.path

    per_writer = tasks_per_writer or TASKS_PER_WRITER["quick" if quick else "full"]
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pynenc-redis-stack-cluster-writes-") as tmp:
        server = EmbeddedRedisStack(Path(tmp) / "single", persistent=False)
        cluster = LoopbackCluster(Path(tmp) / "cluster")
        topologies: list[Topology] = []
        try:
            single = single_topology(server.start())
            cluster.start()
            topologies = [single, cluster_topology(cluster)]
            facts: dict[str, Any] = {
                **machine(),
                **server_facts(single.node_clients[0]),
                "mode": "--quick" if quick else "full run",
                "tasks_per_writer": per_writer,
                "rounds": rounds,
            }
            for round_index in range(rounds):
                for writers in writer_counts:
                    order = topologies if (round_index + writers) % 2 == 0 else topologies[::-1]
                    for topology in order:
                        row = measure_row(topology, writers, per_writer, timeout)
                        row.round = round_index
                        rows.append(row)
                        print(
                            f"{topology.name:8} {writers} writers r{round_index}: "
                            f"{row.tasks_per_second:7.1f} tasks/s, p50 {row.latency_ms(0.5):.2f} ms, "
                            f"keys per node {row.keys_per_node}",
                            file=sys.stderr,
                        )
        finally:
            for topology in topologies:
                for client in topology.node_clients:
                    client.close()
            cluster.stop()
            server.stop()
    facts["total_seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(rows, facts)
    print(table)
    (out / "throughput-cluster.md").write_text(table)
    (out / "throughput-cluster.json").write_text(
        json.dumps(
            {
                "facts": facts,
                "rows": [
                    {
                        **asdict(row),
                        "tasks_per_second": round(row.tasks_per_second, 2),
                        "p50_ms": row.latency_ms(0.5),
                        "p99_ms": row.latency_ms(0.99),
                    }
                    for row in rows
                ],
            },
            indent=2,
        )
    )
    print(f"wrote {out}/throughput-cluster.md, .json in {facts['total_seconds']:.0f} s", file=sys.stderr)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "writer":
        _writer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit("usage: python -m benchmarks.cluster_writes writer URL APP_ID WRITER TASK_COUNT")
