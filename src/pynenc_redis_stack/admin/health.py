"""What ``pynenc-redis-stack health`` reports for one app: invocations stranded without a
route, RUNNING invocations whose runner is dead (waiting for pynenc's recovery), and orphaned
data: runner heartbeat documents without an expiry (written before heartbeats expired) and
client data values no document refers to (:mod:`.client_data`; prune deletes them).
docs/distributed.md says what each means and what clears it."""

from __future__ import annotations

from dataclasses import dataclass

from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.admin.client_data import scan_client_data
from pynenc_redis_stack.broker.broker import queued_and_taken_ids
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
from pynenc_redis_stack.orchestrator.store import OrchestratorStore
from pynenc_redis_stack.orchestrator.stranded import find_stranded


@dataclass(frozen=True)
class HealthReport:
    """One app's distributed state, as :func:`check_health` found it."""

    stranded: tuple[tuple[InvocationId, InvocationStatus], ...]
    """Waiting longer than the grace for a route that never came (the sweeper routes them)."""
    running_with_dead_owner: tuple[InvocationId, ...]
    """RUNNING, owned by a runner without a heartbeat within the dead-runner timeout
    (pynenc's ``recover_running_invocations`` reroutes them)."""
    heartbeats_without_expiry: int
    """Runner heartbeat documents that never expire (written before heartbeats expired; the
    next heartbeat of a live runner sets the expiry; a dead runner's stays until deleted)."""
    client_data_values: int
    """Values in the client data store."""
    orphaned_client_data: int
    """Client data values no document refers to, stored over an hour ago or before stamps
    existed (``prune`` deletes them)."""

    @property
    def healthy(self) -> bool:
        return not (
            self.stranded
            or self.running_with_dead_owner
            or self.heartbeats_without_expiry
            or self.orphaned_client_data
        )


def check_health(
    conf: ConfigRedisStackKeyspace, app_id: str, *, grace_seconds: float, dead_after_seconds: float
) -> HealthReport:
    """Inspect ``app_id``'s invocations, queues and heartbeats (reads only).

    :param grace_seconds: How long an invocation may wait for its route (the broker's lease).
    :param dead_after_seconds: pynenc's ``runner_considered_dead_after_minutes``, in seconds.
    """
    store = OrchestratorStore(conf, app_id)
    client = store.client
    stranded = find_stranded(store, lambda: queued_and_taken_ids(client, store.keys), grace_seconds)
    heartbeat_spec = store.schemas.heartbeats
    heartbeat_keys = store.matching_keys(heartbeat_spec, store.where(heartbeat_spec))
    pipe = client.pipeline(transaction=False)
    for key in heartbeat_keys:
        run(pipe, "PTTL", key)
    without_expiry = sum(1 for ttl in pipe.execute() if int(ttl) == -1) if heartbeat_keys else 0
    cutoff = store.server_micros() - int(dead_after_seconds * 1_000_000)
    alive = [
        document["runner_id"]
        for document in store.documents(
            heartbeat_spec, store.where(heartbeat_spec).at_least("last_heartbeat_ts", cutoff)
        )
    ]
    running = store.where(store.schemas.invocations, status=InvocationStatus.RUNNING.value)
    if alive:
        running.excluding(lambda owners: owners.tag_in("runner_id", alive))
    dead_owned = store.keys.orchestrator_invocation_ids_of(
        store.matching_keys(store.schemas.invocations, running)
    )
    client_data = scan_client_data(client, store.namespace, app_id)
    return HealthReport(
        stranded=tuple(stranded),
        running_with_dead_owner=tuple(InvocationId(i) for i in dead_owned),
        heartbeats_without_expiry=without_expiry,
        client_data_values=client_data.values,
        orphaned_client_data=len(client_data.orphaned) + len(client_data.unstamped),
    )
