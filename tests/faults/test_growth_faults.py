"""What a dead runner leaves behind goes by itself (issue 15, item 8): each heartbeat moves the
expiry of its runner's document, so the document of a runner that stopped beating (killed, or
one of the per-invocation runners ProcessRunner creates) expires; a live runner's never does.
The take reply a stopped consumer leaves goes at the next sweep; purge takes the rest. Client
data values no document refers to are reported by ``health`` and deleted by ``prune`` (not
one stored within the hour: a document may be about to refer to it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus
from pynenc.runner.runner_context import RunnerContext

from pynenc_redis_stack import RedisStackClientDataStore, RedisStackStateBackend
from pynenc_redis_stack.admin.client_data import delete_orphans, scan_client_data
from pynenc_redis_stack.admin.retention import prune_invocations
from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.client_data_store.store import STORED_AT, stored_at_field
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


LARGE = "x" * 50_000
"""Above pynenc's ``min_size_to_cache``: stored in the client data store by content hash."""


def echo(value: str) -> str:
    """A task body; registered on the test's app."""
    return value


def test_prune_deletes_client_data_no_document_refers_to_and_health_reports_it(
    app: Pynenc, admin: redis.Redis, fault_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task = app.task(echo)
    store = app.client_data_store
    backend = app.state_backend
    orchestrator = app.orchestrator
    assert isinstance(store, RedisStackClientDataStore)
    assert isinstance(backend, RedisStackStateBackend)
    assert isinstance(orchestrator, RedisStackOrchestrator)
    kept, done = task(LARGE + "kept"), task(LARGE + "done")  # each refers to its value
    ref = {name: store.serialize(LARGE + name) for name in ("kept", "done", "old", "new", "raced")}
    legacy = "__pynenc__client_data__:" + "a" * 64
    admin.hset(store.key, legacy, "stored before stamps existed")
    two_hours_ago = str(int(time.time() * 1000) - 2 * 3_600_000)
    for name in ("kept", "done", "old", "raced"):  # an hour is what prune leaves to a new value
        admin.hset(store.key, stored_at_field(ref[name]), two_hours_ago)
    owner = RunnerContext(runner_cls="ThreadRunner", runner_id="finisher", parent_ctx=None)
    for status in (InvocationStatus.PENDING, InvocationStatus.RUNNING, InvocationStatus.SUCCESS):
        orchestrator.set_invocation_status(done.invocation_id, status, owner)

    # a value stored again between the scan and the delete (a document about to refer to it) stays
    scan = scan_client_data(backend.client, backend.namespace, app.app_id)
    assert set(scan.orphaned) == {ref["old"], ref["raced"]} and scan.unstamped == (legacy,)
    store.serialize(LARGE + "raced")
    delete_orphans(
        backend.client, backend.namespace, app.app_id, replace(scan, orphaned=(ref["raced"],), unstamped=())
    )
    assert admin.hexists(store.key, ref["raced"])

    health = ["health", "--url", fault_server, "--app-id", app.app_id]
    assert main(health) == 3
    assert re.search(r"client data values no document refers to .* 2\n", capsys.readouterr().out)
    cutoff = datetime.now(UTC) + timedelta(days=1)  # every finished invocation: `done`
    arguments = (backend.client, backend.namespace, backend.schemas, app.app_id, cutoff)
    dry = prune_invocations(*arguments, allow_all=True, dry_run=True)
    report = prune_invocations(*arguments, allow_all=True)
    assert dry.other_counts()["client-data-value"] == report.other_counts()["client-data-value"] == 2
    values = {str(field) for field in admin.hkeys(store.key) if not str(field).startswith(STORED_AT)}
    # kept: referred to by `kept`; new and raced: stored within the hour; legacy: stamped now
    assert values == {ref["kept"], ref["new"], ref["raced"], legacy}
    assert admin.hexists(store.key, stored_at_field(legacy))
    assert main(health) == 0, capsys.readouterr().out
    assert store.resolve(kept.call.serialized_arguments["value"]) == LARGE + "kept"
