"""pynenc-redis 0.3.0's orchestrator status transition with the ``WATCH`` it lacks: what the
pynenc 0.3 line's tests (tests/pynenc03/conftest.py) and its throughput benchmark
(benchmarks/throughput_app.py) run instead of theirs."""

from __future__ import annotations

import json

import redis
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord, status_record_transition
from pynenc_redis.orchestrator.redis_orchestrator import RedisOrchestrator


def watched_status_transition(
    self: RedisOrchestrator, invocation_id: str, status: InvocationStatus, runner_id: str | None = None
) -> InvocationStatusRecord:
    """pynenc-redis 0.3.0's ``_atomic_status_transition`` with the ``WATCH`` it lacks.

    Theirs reads the status, validates and writes in a ``MULTI`` that does not watch what it
    read, so two runners can both move an invocation from ``registered`` to ``pending`` and both
    record it: pynenc's history check then fails with ``pending -> pending`` (seen in CI on the
    MultiThreadRunner). That race is pynenc-redis's orchestrator, not the state backend under
    test, so the 0.3 line runs their code with the read watched (a loser re-reads and gets
    pynenc's own InvocationStatusTransitionError, as with pynenc's SQLite orchestrator).
    """
    status_key = self.key.invocation_to_status(invocation_id)

    def transition(pipe: redis.client.Pipeline) -> InvocationStatusRecord:
        encoded = pipe.get(status_key)
        if encoded is None:
            raise KeyError(f"Invocation status {invocation_id} not found in Redis")
        current = InvocationStatusRecord.from_json(json.loads(encoded))
        new = status_record_transition(current, status, runner_id)
        pipe.multi()
        pipe.srem(self.key.status_to_invocations(current.status), invocation_id)
        pipe.sadd(self.key.status_to_invocations(new.status), invocation_id)
        pipe.set(status_key, json.dumps(new.to_json()))
        return new

    new_record: InvocationStatusRecord = self.client.transaction(
        transition, status_key, value_from_callable=True
    )
    return new_record
