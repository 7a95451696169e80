"""Blocking control: which invocations wait for which, as one document per edge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus
from pynenc.orchestrator.base_orchestrator import BaseBlockingControl

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import dumps, validated

if TYPE_CHECKING:
    from pynenc.app import Pynenc

    from pynenc_redis_stack.orchestrator.store import OrchestratorStore


class StoreOwner(Protocol):
    """What the blocking control needs of its orchestrator (``RedisStackOrchestrator``)."""

    @property
    def app(self) -> Pynenc: ...

    @property
    def store(self) -> OrchestratorStore: ...


class RedisStackBlockingControl(BaseBlockingControl):
    """Edges ``waiter -> waited`` as ``orchestrator-wait`` documents, found by index.

    An invocation blocks others when some invocation waits for it and it waits for none,
    and its status is one a runner may pick up (pynenc's SQLite orchestrator's rule).
    """

    def __init__(self, orchestrator: StoreOwner) -> None:
        self.orchestrator = orchestrator
        self.app = orchestrator.app

    def waiting_for_results(
        self, caller_invocation_id: InvocationId, result_invocation_ids: list[InvocationId]
    ) -> None:
        """Store one edge per waited invocation (one MULTI/EXEC; storing an edge twice changes nothing)."""
        store = self.orchestrator.store
        spec = store.schemas.waits
        pipe = store.client.pipeline()
        for waited_id in dict.fromkeys(result_invocation_ids):
            edge = {"app_id": self.app.app_id, "waiter_id": caller_invocation_id, "waited_id": waited_id}
            run(
                pipe,
                "JSON.SET",
                store.keys.orchestrator_wait(caller_invocation_id, waited_id),
                "$",
                dumps(validated(spec, edge)),
            )
        pipe.execute()

    def release_waiters(self, waited_invocation_id: InvocationId) -> None:
        """Delete every edge pointing at ``waited_invocation_id`` (its waiters stop waiting for it)."""
        store = self.orchestrator.store
        spec = store.schemas.waits
        store.unlink(store.matching_keys(spec, store.where(spec, waited_id=waited_invocation_id)))

    def get_blocking_invocations(self, max_num_invocations: int) -> Iterator[InvocationId]:
        """Yield up to ``max_num_invocations`` waited-for invocations that wait for nothing and
        are available for run, oldest registration first.

        The edges stream through a cursor (every one is needed to know who waits); the
        candidates' statuses are one ``JSON.MGET`` per batch.
        """
        if max_num_invocations <= 0:
            return
        store = self.orchestrator.store
        spec = store.schemas.waits
        waiters: set[str] = set()
        waited: dict[str, None] = {}
        for row in store.rows(spec, store.where(spec), *query.load_fields("waiter_id", "waited_id")):
            waiters.add(row["waiter_id"])
            waited[row["waited_id"]] = None
        candidates = [invocation_id for invocation_id in waited if invocation_id not in waiters]
        available = {status.value for status in InvocationStatus.get_available_for_run_statuses()}
        documents = store.read_many([store.keys.orchestrator_invocation(i) for i in candidates])
        ready = sorted(
            (int(document["registered_seq"]), invocation_id)
            for invocation_id, document in zip(candidates, documents, strict=True)
            if document is not None and document["status"] in available
        )
        for _seq, invocation_id in ready[:max_num_invocations]:
            yield InvocationId(invocation_id)
