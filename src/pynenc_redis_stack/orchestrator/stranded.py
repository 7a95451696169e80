"""Stranded invocations: waiting for a route that never came (a writer died, or its connection
dropped, between a status write and the route that goes with it). Found for the sweeper
(:meth:`RedisStackOrchestrator.reroute_stranded_invocations`) and the ``health`` report."""

from __future__ import annotations

from collections.abc import Callable

from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.orchestrator.store import OrchestratorStore

ROUTABLE_STATUSES = frozenset(InvocationStatus.get_available_for_run_statuses())
"""Statuses of an invocation that waits in a queue (REGISTERED, REROUTED, RETRY)."""

AWAITING_REROUTE_STATUSES = frozenset(
    {
        InvocationStatus.CONCURRENCY_CONTROLLED,
        InvocationStatus.KILLED,
        InvocationStatus.PENDING_RECOVERY,
        InvocationStatus.RUNNING_RECOVERY,
    }
)
"""Statuses pynenc sets just before rerouting (to REROUTED, then routed): an invocation left in
one was abandoned between the two writes."""


def find_stranded(
    store: OrchestratorStore,
    queued_and_taken: Callable[[], set[str]],
    grace_seconds: float,
) -> list[tuple[InvocationId, InvocationStatus]]:
    """Invocations whose status has waited ``grace_seconds`` (server clock) for a route: in a
    routable status with no queue entry and no taken entry, or in a status pynenc sets just
    before rerouting.

    Candidates come from the index; the broker's queues and taken set are read next
    (``queued_and_taken``, one MULTI), then the candidates' documents: only one still in the
    same status since before the cutoff is stranded (one routed or taken meanwhile is not).
    """
    statuses = ROUTABLE_STATUSES | AWAITING_REROUTE_STATUSES
    cutoff = store.server_micros() - int(grace_seconds * 1_000_000)
    request_filter = store.where(store.schemas.invocations).at_most("status_ts", cutoff)
    request_filter.tag_in("status", sorted(status.value for status in statuses))
    keys = store.matching_keys(store.schemas.invocations, request_filter)
    if not keys:
        return []
    present = queued_and_taken()
    candidates = [i for i in store.keys.orchestrator_invocation_ids_of(keys) if i not in present]
    documents = store.read_many([store.keys.orchestrator_invocation(i) for i in candidates])
    stranded = []
    for invocation_id, document in zip(candidates, documents, strict=True):
        if document is None or int(document["status_ts"]) > cutoff:
            continue  # purged, or its status moved since the candidates were found
        status = InvocationStatus(document["status"])
        if status in statuses:
            stranded.append((InvocationId(invocation_id), status))
    return stranded
