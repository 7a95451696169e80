"""What a dead runner leaves behind goes by itself (issue 15, item 8): each heartbeat moves the
expiry of its runner's document, so the document of a runner that stopped beating (killed, or
one of the per-invocation runners ProcessRunner creates) expires; a live runner's never does.
The take reply a stopped consumer leaves goes at the next sweep; purge takes the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId

from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from pynenc_redis_stack.orchestrator.orchestrator import HEARTBEAT_RETENTION_MIN_MS
from tests.conftest import unique_app_id
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.faults


@pytest.fixture
def app(request: pytest.FixtureRequest, fault_server: str) -> Iterator[Pynenc]:
    built = PynencBuilder().app_id(unique_app_id(request)).redis_stack(url=fault_server).build()
    yield built
    built.orchestrator.purge()


def test_a_runner_heartbeat_document_expires_after_its_last_heartbeat(
    app: Pynenc, admin: redis.Redis
) -> None:
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)
    orchestrator.register_runner_heartbeats(["alive", "dies"])
    keys = {runner: orchestrator.store.keys.runner_heartbeat(runner) for runner in ("alive", "dies")}
    for key in keys.values():
        assert 0 < admin.pttl(key) <= HEARTBEAT_RETENTION_MIN_MS
    # "dies" stops beating; its retention is cut short here to see it go (the server expires it)
    admin.pexpire(keys["dies"], 200)
    orchestrator.register_runner_heartbeats(["alive"])
    wait_for("the dead runner's document expired", lambda: not admin.exists(keys["dies"]))
    assert admin.pttl(keys["alive"]) > HEARTBEAT_RETENTION_MIN_MS - 60_000  # moved by the beat
    assert [runner.runner_id for runner in orchestrator.get_active_runners()] == ["alive"]


def test_the_take_reply_of_a_consumer_that_stopped_goes_at_the_next_sweep(
    app: Pynenc, admin: redis.Redis
) -> None:
    broker = app.broker
    assert isinstance(broker, RedisStackBroker)
    broker.route_invocation(InvocationId("one"), "default", 0.0)
    assert broker.retrieve_invocation() == "one"
    replies = broker.keys.broker_take_replies()
    (live,) = admin.hkeys(replies)
    admin.hset(replies, "stopped-consumer", "1|token|")  # a lease deadline long past
    admin.delete(broker.keys.broker_sweep_claim())  # the next interval (the take's pass claimed this one)
    broker._sweep_if_claimed()
    assert admin.hkeys(replies) == [live]
    broker.purge()
    assert not admin.exists(replies, broker.keys.broker_sweep_claim())
