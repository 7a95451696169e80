"""RedisStackBroker on the real server: order, isolation, the reliable-queue rule, hostile ids.

Apps here use this package's broker, client data store and state backend with pynenc's
SQLite orchestrator (whose statuses the recovery rule reads). Takers that die are real
processes killed with SIGKILL between taking and acknowledging.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation import DistributedInvocation
from pynenc.invocation.status import InvocationStatus
from pynenc.runner.runner_context import RunnerContext
from redis.crc import key_slot

from pynenc_redis_stack import RedisStackBroker, RedisStackClientDataStore, RedisStackStateBackend
from pynenc_redis_stack.broker.broker import ROUTE_BATCH, RecoveryReport
from pynenc_redis_stack.core.errors import InvalidDocumentError
from pynenc_redis_stack.core.server_check import acl_rule
from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips, commandstats, delta
from tests.integration.test_security import MakeUser, acl_user, namespace, refusals  # noqa: F401 - fixtures

SPAWN = multiprocessing.get_context("spawn")
DEADLINE = 30.0
"""Seconds to wait for a condition (a child process, an expired lease); a healthy run needs
a fraction of it."""

HOSTILE_IDS = [
    "a:b",
    "{tag}",
    "}x{",
    "-.:{}|@*?\"' \\",
    "tab\tnew\nline",
    "ünïcødé ✓ 日本",
    "%3A%25",
    "x" * 2000,
    "0000000000000000001:looks-like-a-member",
]

base_app = Pynenc()


@base_app.task
def work(value: int) -> int:
    return value


def config(app_id: str, redis_url: str, sqlite_db_path: str, **extra: object) -> dict[str, object]:
    """Config values of an app with this package's components and pynenc's SQLite orchestrator."""
    return {
        "app_id": app_id,
        "orchestrator_cls": "SQLiteOrchestrator",
        "trigger_cls": "SQLiteTrigger",
        "runner_cls": "DummyRunner",
        "state_backend_cls": "RedisStackStateBackend",
        "broker_cls": "RedisStackBroker",
        "client_data_store_cls": "RedisStackClientDataStore",
        "redis_stack_url": redis_url,
        "sqlite_db_path": sqlite_db_path,
        **extra,
    }


@pytest.fixture
def make_app(
    request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str
) -> Callable[..., Pynenc]:
    """Build an app (``suffix`` makes a second app id; other keywords are config values)."""

    def make(suffix: str = "", **extra: object) -> Pynenc:
        values = config(unique_app_id(request, suffix), redis_url, temp_sqlite_db_path, **extra)
        return Pynenc(config_values=values)

    return make


@pytest.fixture
def app(make_app: Callable[..., Pynenc]) -> Pynenc:
    app = make_app()
    assert isinstance(app.broker, RedisStackBroker)
    app.broker.purge()
    return app


def broker_of(app: Pynenc) -> RedisStackBroker:
    assert isinstance(app.broker, RedisStackBroker)
    return app.broker


def ids(*names: str) -> list[InvocationId]:
    return [InvocationId(name) for name in names]


def drain(broker: RedisStackBroker, queue: str = "default") -> list[InvocationId]:
    taken = []
    while (invocation_id := broker.retrieve_invocation(queue)) is not None:
        taken.append(invocation_id)
    return taken


def register(app: Pynenc, value: int) -> DistributedInvocation[Any, Any]:
    """Call ``work`` on ``app``: registered (REGISTERED) in the orchestrator and routed."""
    work.app = app
    invocation = work(value)
    assert isinstance(invocation, DistributedInvocation)
    return invocation


def poll_recovery(broker: RedisStackBroker, done: Callable[[RecoveryReport], bool]) -> RecoveryReport:
    """Run recovery until ``done`` holds for what it did (leases expire on the server's clock)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        report = broker.recover_expired_takes()
        if done(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


# -- order ---------------------------------------------------------------------------------


def test_priority_order_then_first_routed_first_across_calls_and_batches(app: Pynenc) -> None:
    """Random priorities (boundaries, fractions, negative zero) routed one by one and in
    batches larger than one script call: taken highest priority first, FIFO within one."""
    broker = broker_of(app)
    rng = random.Random(7)
    priorities = [-100.0, 100.0, 0.0, -0.0, 0.5, 0.25, -0.25, 99.999999, -1e-9, 1e-9]
    routed: list[tuple[float, int, InvocationId]] = []
    arrival = 0
    for round_number in range(40):
        priority = rng.choice(priorities)
        size = rng.choice([1, 1, 3, ROUTE_BATCH + 7]) if round_number % 10 == 0 else rng.choice([1, 2, 5])
        batch = ids(*(f"r{round_number}-{i}" for i in range(size)))
        if size == 1:
            broker.route_invocation(batch[0], "default", priority)
        else:
            broker.route_invocations(batch, "default", priority)
        for invocation_id in batch:
            routed.append((-priority, arrival, invocation_id))
            arrival += 1
    expected = [invocation_id for _score, _arrival, invocation_id in sorted(routed)]
    assert broker.count_invocations() == len(expected)
    assert drain(broker) == expected
    assert broker.count_invocations() == 0


def test_the_same_id_may_be_queued_twice_and_leaves_twice(app: Pynenc) -> None:
    broker = broker_of(app)
    broker.route_invocations(ids("a", "b", "a"), "default", 1.0)
    broker.route_invocation(InvocationId("a"), "default", 1.0)
    assert drain(broker) == ids("a", "b", "a", "a")


def test_one_round_trip_per_route_batch_take_and_count(
    app: Pynenc, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    """A route_invocations call of 2 500 ids (three scripts), a take (acknowledging the previous one)
    and a count over three queues are one round trip each (commands inside scripts counted)."""
    broker = broker_of(app)
    broker.route_invocation(InvocationId("warm-up"), "default", 0.0)  # loads the scripts; the
    assert broker.retrieve_invocation() == "warm-up"  # first take checks the server and recovers
    for operation, expected in (
        (
            lambda: broker.route_invocations(ids(*map(str, range(2500))), "default", 1.0),
            {"evalsha": 3, "incrby": 3, "sadd": 3, "zadd": 2500},
        ),
        (
            lambda: broker.retrieve_invocation(),
            # hget/hset: the attempt's reply, kept for a re-send after a lost reply
            {"evalsha": 1, "hget": 1, "zrem": 1, "zpopmin": 1, "time": 1, "zadd": 1, "hset": 1},
        ),
        (lambda: broker.count_invocations(("default", "a", "b")), {"multi": 1, "zcard": 3, "exec": 1}),
    ):
        before = commandstats(redis_client)
        with round_trips.counting():
            operation()
        assert delta(before, commandstats(redis_client)) == expected
        assert round_trips.count == 1


# -- isolation -------------------------------------------------------------------------------


def test_queues_are_isolated_and_counted_separately(app: Pynenc) -> None:
    broker = broker_of(app)
    broker.route_invocations(ids("p1", "p2"), "payments", 0.0)
    broker.route_invocations(ids("r1"), "reports", 50.0)
    broker.route_invocations(ids("d1"), "default", -50.0)
    assert broker.count_invocations(("payments",)) == 2
    assert broker.count_invocations(("reports", "default")) == 2
    assert broker.count_invocations(()) == 0
    assert broker.retrieve_invocation("reports") == "r1"
    assert broker.retrieve_invocation("reports") is None  # the high priority elsewhere is not seen
    assert drain(broker, "payments") == ids("p1", "p2")
    assert drain(broker, "default") == ids("d1")


@pytest.mark.parametrize("suffix", ["", "-a{b}c", "}x", "{", "a:b", "a%3Ab"])
def test_apps_sharing_queue_names_are_isolated_and_each_in_one_hash_slot(
    make_app: Callable[..., Pynenc], redis_client: redis.Redis, suffix: str
) -> None:
    """Two apps (the second id made hostile: braces, ':', an escape look-alike) with the same
    queues: each sees only its own invocations, purging one leaves the other, and every
    broker key of one app is in one hash slot."""
    first, second = make_app(), make_app(f"-2{suffix}")
    for app in (first, second):
        broker_of(app).purge()
    broker_of(first).route_invocations(ids("first-1", "first-2"), "default", 0.0)
    broker_of(second).route_invocations(ids("second-1"), "default", 0.0)
    broker_of(second).route_invocations(ids("second-2"), "other", 0.0)
    assert broker_of(second).retrieve_invocation("default") == "second-1"  # something taken
    assert broker_of(first).count_invocations() == 2
    assert broker_of(second).count_invocations(("default", "other")) == 1
    app_keys = {}
    for app in (first, second):
        keys = broker_of(app).keys
        app_keys[app.app_id] = [
            keys.broker_queue("default"),
            keys.broker_queue("other"),
            keys.broker_queues(),
            keys.broker_seq(),
            keys.broker_taken(),
        ]
        assert len({key_slot(key.encode()) for key in app_keys[app.app_id]}) == 1, app_keys
    assert not set(app_keys[first.app_id]) & set(app_keys[second.app_id])
    broker_of(second).purge()
    assert broker_of(second).count_invocations(("default", "other")) == 0
    assert broker_of(second).count_taken() == 0
    assert redis_client.exists(*app_keys[second.app_id]) == 0
    assert redis_client.exists(*app_keys[first.app_id]) == 3  # its queue, queue names, counter
    assert drain(broker_of(first)) == ids("first-1", "first-2")


# -- the reliable-queue rule -----------------------------------------------------------------


def _take_and_die(values: dict[str, object], record: bool) -> None:
    """Child process: take one invocation (recording it as PENDING if ``record``), then die
    by SIGKILL before acknowledging it (before any further take)."""
    app = Pynenc(config_values=values)
    invocation_id = app.broker.retrieve_invocation()
    assert invocation_id is not None
    if record:
        runner_ctx = RunnerContext.from_runner(app.runner)
        app.orchestrator.set_invocation_status(invocation_id, InvocationStatus.PENDING, runner_ctx)
    os.kill(os.getpid(), signal.SIGKILL)


def _run_taker(values: dict[str, object], record: bool) -> None:
    process = SPAWN.Process(target=_take_and_die, args=(values, record))
    process.start()
    process.join(DEADLINE)
    assert process.exitcode == -signal.SIGKILL


def test_a_taker_killed_before_recording_gets_its_invocation_delivered_again_in_place(
    app: Pynenc,
) -> None:
    """The taker dies holding the first invocation: nothing is lost (it goes back to the front
    of its priority), nothing is duplicated (once back and taken again, one entry)."""
    broker = broker_of(app)
    first, second = register(app, 1), register(app, 2)
    _run_taker({**app.config_values, "redis_stack_broker_lease_sec": 0.2}, record=False)
    assert broker.count_invocations() == 1 and broker.count_taken() == 1
    report = poll_recovery(broker, lambda report: bool(report.requeued))
    assert report == RecoveryReport(requeued=(first.invocation_id,), acknowledged=())
    assert broker.count_taken() == 0 and broker.count_invocations() == 2
    assert broker.recover_expired_takes() == RecoveryReport((), ())  # requeued once only
    assert broker.retrieve_invocation() == first.invocation_id  # its old place: before the second
    assert broker.retrieve_invocation() == second.invocation_id
    broker.acknowledge_taken()
    assert broker.count_taken() == 0 and broker.count_invocations() == 0
    assert broker.recover_expired_takes() == RecoveryReport((), ())


def test_a_taker_killed_after_recording_leaves_its_invocation_to_pynenc(app: Pynenc) -> None:
    """Recorded as PENDING before the kill: recovery acknowledges the take and queues nothing
    (pynenc's own pending-timeout recovery owns it now); no duplicate delivery."""
    broker = broker_of(app)
    invocation = register(app, 1)
    _run_taker({**app.config_values, "redis_stack_broker_lease_sec": 0.2}, record=True)
    report = poll_recovery(broker, lambda report: bool(report.acknowledged))
    assert report == RecoveryReport(requeued=(), acknowledged=(invocation.invocation_id,))
    assert broker.count_taken() == 0 and broker.count_invocations() == 0
    assert app.orchestrator.get_invocation_status(invocation.invocation_id) == InvocationStatus.PENDING


def test_taking_again_acknowledges_the_previous_take(make_app: Callable[..., Pynenc]) -> None:
    """pynenc records a take before its next one, so the next take acknowledges it: an
    acknowledged take is never delivered again, however long ago it was taken."""
    app = make_app(redis_stack_broker_lease_sec=0.001)
    broker = broker_of(app)
    first, second = register(app, 1), register(app, 2)
    assert broker.retrieve_invocation() == first.invocation_id
    assert broker.count_taken() == 1
    assert broker.retrieve_invocation() == second.invocation_id  # acknowledges the first
    assert broker.count_taken() == 1
    assert broker.retrieve_invocation() is None  # acknowledges the second
    assert broker.count_taken() == 0
    assert broker.recover_expired_takes() == RecoveryReport((), ())
    assert broker.count_invocations() == 0


def test_concurrent_recoveries_requeue_an_expired_take_once(make_app: Callable[..., Pynenc]) -> None:
    app = make_app(redis_stack_broker_lease_sec=0.001)
    broker = broker_of(app)
    invocation = register(app, 1)
    assert broker.retrieve_invocation() == invocation.invocation_id  # taken, never recorded
    others = [broker_of(make_app(redis_stack_broker_lease_sec=0.001)) for _ in range(3)]
    reports = [poll_recovery(others[0], lambda report: bool(report.requeued))]
    reports += [other.recover_expired_takes() for other in others[1:]]
    assert [report.requeued for report in reports] == [(invocation.invocation_id,), (), ()]
    assert broker.count_invocations() == 1
    broker.acknowledge_taken()  # a late acknowledgement of a requeued take changes nothing
    assert broker.count_invocations() == 1 and broker.count_taken() == 0


def test_a_take_unknown_to_the_orchestrator_is_dropped_on_expiry(
    make_app: Callable[..., Pynenc], caplog: pytest.LogCaptureFixture
) -> None:
    """No runner could run an id the orchestrator does not know (pynenc's loop fails on it):
    recovery drops it with a warning instead of handing it to every runner in turn."""
    broker = broker_of(make_app(redis_stack_broker_lease_sec=0.001))
    broker.route_invocation(InvocationId("never-registered"), "default", 0.0)
    assert broker.retrieve_invocation() == "never-registered"
    report = poll_recovery(broker, lambda report: bool(report.acknowledged))
    assert report == RecoveryReport(requeued=(), acknowledged=(InvocationId("never-registered"),))
    assert "unknown to the orchestrator" in caplog.text


def _take_all(values: dict[str, object], queue: multiprocessing.Queue[list[str]]) -> None:
    app = Pynenc(config_values=values)
    taken: list[str] = []
    while (invocation_id := app.broker.retrieve_invocation()) is not None:
        taken.append(invocation_id)
    queue.put(taken)


def test_concurrent_takers_each_take_every_invocation_exactly_once(app: Pynenc) -> None:
    """Four processes drain one queue at once: every routed id is taken by exactly one, and
    each taker sees its share in routed order."""
    broker = broker_of(app)
    routed = ids(*(f"inv-{i:05d}" for i in range(3000)))
    broker.route_invocations(routed, "default", 0.0)
    results: multiprocessing.Queue[list[str]] = SPAWN.Queue()
    takers = [SPAWN.Process(target=_take_all, args=(app.config_values, results)) for _ in range(4)]
    for taker in takers:
        taker.start()
    shares = [results.get(timeout=DEADLINE * 4) for _ in takers]
    for taker in takers:
        taker.join(DEADLINE)
        assert taker.exitcode == 0
    taken = [invocation_id for share in shares for invocation_id in share]
    assert sorted(taken) == sorted(routed)  # nothing lost, nothing twice
    assert all(share == sorted(share) for share in shares)
    assert broker.count_invocations() == 0


# -- hostile ids and bad input ---------------------------------------------------------------


def test_hostile_ids_round_trip_through_queue_and_recovery(make_app: Callable[..., Pynenc]) -> None:
    broker = broker_of(make_app(redis_stack_broker_lease_sec=0.001))
    broker.route_invocations(ids(*HOSTILE_IDS), "default", 0.0)
    taken = []
    for _ in HOSTILE_IDS:
        invocation_id = broker.retrieve_invocation()
        assert invocation_id is not None
        taken.append(invocation_id)
        broker.acknowledge_taken()
    assert taken == HOSTILE_IDS
    broker.route_invocation(InvocationId(HOSTILE_IDS[3]), "default", 0.0)
    assert broker.retrieve_invocation() == HOSTILE_IDS[3]
    report = poll_recovery(broker, lambda report: bool(report.acknowledged))
    assert report.acknowledged == (HOSTILE_IDS[3],)  # unknown to the orchestrator, parsed whole


def test_an_id_with_a_lone_surrogate_is_refused_naming_the_fix(app: Pynenc) -> None:
    with pytest.raises(InvalidDocumentError, match="lone surrogate.*errors='replace'"):
        broker_of(app).route_invocations(ids("fine", "bad\udcff"), "default", 0.0)
    assert broker_of(app).count_invocations() == 0  # refused whole, before anything was sent


def test_the_least_privilege_user_runs_broker_and_client_data_store(
    request: pytest.FixtureRequest,
    redis_client: redis.Redis,
    acl_user: MakeUser,  # noqa: F811 - the fixture imported above
    namespace: str,  # noqa: F811
    temp_sqlite_db_path: str,
) -> None:
    """The documented ACL rule covers every command of the broker (its scripts included) and
    of the client data store: the server refuses that user nothing (ACL LOG)."""
    url, user, _password = acl_user(acl_rule(namespace))
    values = config(unique_app_id(request), url, temp_sqlite_db_path, redis_stack_namespace=namespace)
    app = Pynenc(config_values={**values, "redis_stack_broker_lease_sec": 0.001})
    broker = broker_of(app)
    first = register(app, 1)
    assert broker.retrieve_invocation() == first.invocation_id
    assert poll_recovery(broker, lambda report: bool(report.requeued)).requeued == (first.invocation_id,)
    assert broker.count_invocations() == 1
    broker.purge()
    store = app.client_data_store
    reference = store.serialize("x" * 5000)
    store._deserialized_cache.clear()
    assert store.resolve(reference) == "x" * 5000
    store.purge()
    assert refusals(redis_client, user) == []


# -- builder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["stack-last", "stack-first"])
def test_builder_all_components_in_either_order(
    request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str, order: str
) -> None:
    builder = PynencBuilder().app_id(unique_app_id(request))
    if order == "stack-last":
        builder = builder.sqlite(sqlite_db_path=temp_sqlite_db_path).redis_stack(
            url=redis_url, components="all"
        )
    else:
        builder = builder.redis_stack(url=redis_url, components="all").sqlite(
            sqlite_db_path=temp_sqlite_db_path
        )
    app = builder.build()
    assert isinstance(app.state_backend, RedisStackStateBackend)
    assert isinstance(app.broker, RedisStackBroker)
    assert isinstance(app.client_data_store, RedisStackClientDataStore)
    assert type(app.orchestrator).__name__ == "RedisStackOrchestrator"  # "all": every component of ours
    assert type(app.trigger).__name__ == "RedisStackTrigger"
    invocation = register(app, 5)
    assert app.broker.retrieve_invocation() == invocation.invocation_id


def test_builder_default_and_named_components(redis_url: str, temp_sqlite_db_path: str) -> None:
    default = PynencBuilder().sqlite(sqlite_db_path=temp_sqlite_db_path).redis_stack(url=redis_url).build()
    assert isinstance(default.state_backend, RedisStackStateBackend)
    assert type(default.broker).__name__ == "SQLiteBroker"  # the state-backend-only composition
    broker_only = (
        PynencBuilder()
        .redis_stack(url=redis_url, components=["broker"])
        .sqlite(sqlite_db_path=temp_sqlite_db_path)
        .build()
    )
    assert isinstance(broker_only.broker, RedisStackBroker)
    assert type(broker_only.state_backend).__name__ == "SQLiteStateBackend"
    with pytest.raises(ValueError, match=r"unknown \['brokers'\]. Use 'all' or names from state_backend"):
        PynencBuilder().redis_stack(url=redis_url, components=["brokers"])
