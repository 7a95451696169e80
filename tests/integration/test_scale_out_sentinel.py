"""A real Sentinel deployment on loopback (tests/loopback.py): one master, one replica, one
sentinel, built from the embedded server's binaries.

The state backend connects with a ``redis+sentinel://`` URL and ``redis_stack_wait_replicas=1``;
its master is SIGKILLed in the middle of a stream of writes. The client follows the
promotion, and every write acknowledged (returned without error, so after ``WAIT 1``
answered 1) reads back from the new master.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.call import Call
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import TaskInvocation

from pynenc_redis_stack.core.errors import ReplicaAcknowledgementError
from pynenc_redis_stack.core.topology import AcknowledgedClient
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id
from tests.loopback import LoopbackSentinel

WRITES_BEFORE_FAILOVER = 40
WRITES_AFTER_FAILOVER = 40


def add(x: int, y: int) -> int:
    return x + y


@pytest.fixture
def sentinel() -> Iterator[LoopbackSentinel]:
    with tempfile.TemporaryDirectory(prefix="prs-sentinel-") as directory:
        deployment = LoopbackSentinel(Path(directory))
        try:
            deployment.start()
            yield deployment
        finally:
            deployment.stop()


def _backend(url: str, app_id: str, **config: Any) -> RedisStackStateBackend:
    settings: dict[str, Any] = {"socket_timeout": 2.0, "max_connection_attempts": 2, **config}
    app = PynencBuilder().app_id(app_id).memory().redis_stack(url=url).custom_config(**settings).build()
    backend: RedisStackStateBackend = app.state_backend
    return backend


def _write(backend: RedisStackStateBackend, number: int) -> str:
    invocation = TaskInvocation(
        call=Call(backend.app.task(add)),
        invocation_id=InvocationId(f"inv-{number:05d}"),
        parent_invocation_id=None,
        workflow=None,
        stored_in_backend=True,
    )
    backend._upsert_invocations([(invocation.to_dto(), invocation.call.to_dto())])
    return str(invocation.invocation_id)


def _wait_calls(node_client: redis.Redis) -> int:
    return int(node_client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def test_every_write_waits_for_one_replica_on_its_own_connection(
    request: pytest.FixtureRequest, sentinel: LoopbackSentinel
) -> None:
    backend = _backend(sentinel.url, unique_app_id(request), redis_stack_wait_replicas=1)
    assert isinstance(backend.client, AcknowledgedClient)
    assert sentinel.master is not None and sentinel.replica is not None
    _write(backend, 0)  # first use: indexes created, server checked
    with sentinel.master.client() as master:
        before = _wait_calls(master)
        ids = [_write(backend, number) for number in range(1, 11)]
        # one WAIT per write (the upsert is one pipeline), none for the reads
        assert _wait_calls(master) - before == 10
        assert all(backend._get_invocation(InvocationId(i)) is not None for i in ids)
        assert _wait_calls(master) - before == 10
    # the replica has them as soon as the write returned: WAIT 1 answered 1
    with sentinel.replica.client() as replica:
        assert all(replica.exists(backend.keys.invocation(i)) for i in ids)


def test_a_write_that_too_few_replicas_acknowledge_raises_and_says_why(
    request: pytest.FixtureRequest, sentinel: LoopbackSentinel
) -> None:
    with pytest.raises(ReplicaAcknowledgementError, match=r"only 1 of the 2 replica\(s\)"):
        backend = _backend(
            sentinel.url,
            unique_app_id(request),
            redis_stack_wait_replicas=2,
            redis_stack_wait_replicas_timeout=0.05,
        )  # its first write (the app's info) is refused already
        _write(backend, 0)


def test_the_client_follows_a_failover_and_no_acknowledged_write_is_lost(
    request: pytest.FixtureRequest, sentinel: LoopbackSentinel
) -> None:
    backend = _backend(sentinel.url, unique_app_id(request), redis_stack_wait_replicas=1)
    assert sentinel.master is not None and sentinel.replica is not None
    old_master, replica = sentinel.master, sentinel.replica
    acknowledged: list[str] = []
    refused = 0
    number = 0

    def write() -> None:
        nonlocal number, refused
        number += 1
        assert number < 100_000, "the workload never got a write acknowledged again"
        try:
            acknowledged.append(_write(backend, number))
        except (redis.ConnectionError, redis.TimeoutError, ReplicaAcknowledgementError):
            refused += 1  # not acknowledged: allowed to be lost

    while len(acknowledged) < WRITES_BEFORE_FAILOVER:
        write()
    old_master.kill()  # mid-workload: the master dies without a word
    before_failover = len(acknowledged)
    # writes go on (and fail) until the sentinel promotes the replica
    while sentinel.sentinel_master_port() != replica.port:
        write()
    # the promoted master has no replica, so WAIT 1 refuses every write until one joins
    sentinel.add_replica(replica.port)
    while len(acknowledged) < before_failover + WRITES_AFTER_FAILOVER:
        write()

    with replica.client() as promoted:
        assert promoted.info("replication")["role"] == "master"
        # the client followed: the writes acknowledged after the failover are there
        keys = backend.keys
        assert all(promoted.exists(keys.invocation(i)) for i in acknowledged[before_failover:])
    assert refused >= 1, "no write failed while the master was down: the failover was not mid-workload"
    # every acknowledged write, before and after the failover, reads back through the client
    missing = [i for i in acknowledged if backend._get_invocation(InvocationId(i)) is None]
    assert missing == []
