"""Stored values and history semantics pynenc-redis gets wrong: identical entries both
kept, empty strings as values, workflow filters as intersections, each id once per time range,
and the latest status winning whatever the arrival order or the writers' race."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import redis
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import to_micros
from pynenc_redis_stack.core.errors import InvalidDocumentError
from tests.conftest import unique_app_id
from tests.integration.traps import (
    T0,
    backend_of,
    ft_info,
    history_entry,
    make_app,
    runner_context,
    upsert,
)

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend


# -- stored values and history semantics --------------------------------------------------


def test_identical_history_entries_are_both_kept(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    entry = history_entry("twice", T0)
    backend._add_histories([InvocationId("twice")], entry)
    backend._add_histories([InvocationId("twice")], history_entry("twice", T0))
    assert [(h.timestamp, h.status_record.status) for h in backend.get_history(InvocationId("twice"))] == [
        (T0, InvocationStatus.RUNNING)
    ] * 2
    backend._add_histories([InvocationId("twice"), InvocationId("twice")], entry)  # same batch
    assert len(backend.get_history(InvocationId("twice"))) == 4


def test_empty_strings_are_stored_values(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    backend._set_result(InvocationId("empty"), "")
    backend._set_exception(InvocationId("empty"), "")
    assert backend._get_result(InvocationId("empty")) == ""
    assert backend._get_exception(InvocationId("empty")) == ""
    with pytest.raises(KeyError):
        backend._get_result(InvocationId("missing"))
    with pytest.raises(KeyError):
        backend._get_exception(InvocationId("missing"))


def test_empty_values_of_fields_never_looked_up_are_stored_and_indexed(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    """Without INDEXEMPTY the server indexes a document holding '' in a tag (only the empty
    value is not searchable): runner contexts with an empty hostname and runner class are
    stored and found. A field that is looked up by value refuses '', since the server
    cannot query it."""
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    index = backend.namespace.alias(backend.schemas.runner_contexts)
    failures = int(ft_info(redis_client, index)["hash_indexing_failures"])
    backend._store_runner_context(runner_context("empty-host", runner_cls="", hostname=""))
    assert [
        (c.runner_id, c.runner_cls, c.hostname) for c in backend.get_matching_runner_contexts("empty")
    ] == [("empty-host", "", "")]
    assert backend._get_runner_context("empty-host") == runner_context(
        "empty-host", runner_cls="", hostname=""
    )
    assert int(ft_info(redis_client, index)["hash_indexing_failures"]) == failures
    with pytest.raises(redis.ResponseError, match="INDEXEMPTY"):
        run(redis_client, "FT.SEARCH", index, "@hostname:{$p}", "PARAMS", "2", "p", "", "DIALECT", "2")
    with pytest.raises(InvalidDocumentError, match="parent_event_id=''"):
        upsert(backend, "child", event="")


def test_workflow_filter_is_an_intersection(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    flow, other_flow = TaskId("tests.flows", "flow"), TaskId("tests.flows", "other")
    upsert(backend, "in-1-flow", workflow=WorkflowIdentity(InvocationId("run-1"), flow))
    upsert(backend, "in-2-flow", workflow=WorkflowIdentity(InvocationId("run-2"), flow))
    upsert(
        backend,
        "in-3-other",
        workflow=WorkflowIdentity(InvocationId("run-3"), other_flow),
    )

    def ids(workflow_id: str | None, type_key: str | None) -> set[str]:
        return set(backend.get_invocation_ids_by_workflow(workflow_id, type_key))

    assert ids("run-1", flow.key) == {"in-1-flow"}
    assert ids(None, flow.key) == {"in-1-flow", "in-2-flow"}
    assert ids("run-1", None) == {"in-1-flow"}
    assert ids("run-1", other_flow.key) == set()
    assert ids("run-1", "tests.flows.nothing") == set()
    assert ids("no-run", flow.key) == set()
    assert ids("no-run", "tests.flows.nothing") == set()


def test_invocations_in_timerange_yields_each_id_once_across_batches(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    for n in range(50):
        backend._add_histories([InvocationId("busy")], history_entry("busy", T0 + timedelta(microseconds=n)))
    others = [InvocationId(f"quiet-{n}") for n in range(20)]
    backend._add_histories(others, history_entry("template", T0 + timedelta(microseconds=25)))

    batches = list(backend.iter_invocations_in_timerange(T0, T0 + timedelta(microseconds=49), batch_size=3))
    assert all(0 < len(batch) <= 3 for batch in batches)
    ids = [str(i) for batch in batches for i in batch]
    assert sorted(ids) == sorted(["busy", *others])


def _status_document(backend: RedisStackStateBackend, invocation_id: str) -> dict[str, Any]:
    raw = run(backend.client, "JSON.GET", backend.keys.invocation(invocation_id))
    return orjson.loads(raw)  # type: ignore[no-any-return]


def test_latest_status_wins_whatever_the_arrival_order(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    t1, t2, t3 = (T0 + timedelta(microseconds=m) for m in (1, 2, 3))
    inv = InvocationId("late")
    upsert(backend, inv)
    backend._add_histories([inv], history_entry(inv, t2, InvocationStatus.RUNNING))
    backend._add_histories([inv], history_entry(inv, t1, InvocationStatus.PENDING))  # older, arrives later
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == ("running", to_micros(t2))
    backend._add_histories([inv], history_entry(inv, t2, InvocationStatus.PAUSED))  # equal ts: later arrival
    backend._add_histories([inv], history_entry(inv, t3, InvocationStatus.SUCCESS))
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == ("success", to_micros(t3))
    assert [h.status_record.status for h in backend.get_history(inv)] == [
        InvocationStatus.PENDING,
        InvocationStatus.RUNNING,
        InvocationStatus.PAUSED,
        InvocationStatus.SUCCESS,
    ]

    # History before the upsert: the upsert keeps the status the history wrote.
    early = InvocationId("early")
    backend._add_histories([early], history_entry(early, t3, InvocationStatus.FAILED))
    backend._add_histories([early], history_entry(early, t1, InvocationStatus.REGISTERED))
    upsert(backend, early, parent="p")
    document = _status_document(backend, early)
    assert (document["status"], document["status_ts"]) == ("failed", to_micros(t3))
    assert backend._get_invocation(early) is not None


def test_latest_status_wins_before_1970(request: pytest.FixtureRequest, redis_url: str) -> None:
    """Epoch-microsecond timestamps are negative before 1970; the comparison must keep the sign."""
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    inv = InvocationId("old-times")
    earlier = datetime(1969, 12, 31, 23, 59, 59, 999_995, tzinfo=UTC)
    later = earlier + timedelta(microseconds=2)
    backend._add_histories([inv], history_entry(inv, earlier, InvocationStatus.REGISTERED))
    backend._add_histories([inv], history_entry(inv, later, InvocationStatus.RUNNING))

    assert [h.status_record.status for h in backend.get_history(inv)] == [
        InvocationStatus.REGISTERED,
        InvocationStatus.RUNNING,
    ]
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == ("running", to_micros(later))


def _race(workers: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_racing_add_history_ends_with_the_latest_timestamp(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    inv = InvocationId("raced")
    upsert(backend, inv)
    statuses = (InvocationStatus.RUNNING, InvocationStatus.SUCCESS)

    def writer(n: int) -> Callable[[], None]:
        context = runner_context(f"racer-{n}")

        def work() -> None:
            for _ in range(150):
                backend.add_history(inv, InvocationStatusRecord(statuses[n]), context)

        return work

    _race([writer(0), writer(1)])

    history = backend.get_history(inv)
    assert len(history) == 300
    winner = history[-1]  # (ts, arrival) order: the last entry is the latest one
    document = _status_document(backend, inv)
    assert (
        document["status_ts"] == max(to_micros(h.timestamp) for h in history) == to_micros(winner.timestamp)
    )
    assert document["status"] == winner.status_record.status.value


def test_racing_writers_with_shuffled_timestamps(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    inv = InvocationId("shuffled")
    upsert(backend, inv)
    moments = [T0 + timedelta(microseconds=m) for m in range(400)]
    random.Random(7).shuffle(moments)
    cycle = (
        InvocationStatus.RUNNING,
        InvocationStatus.PAUSED,
        InvocationStatus.SUCCESS,
        InvocationStatus.FAILED,
    )
    status_at = {m: cycle[to_micros(m) % 4] for m in moments}

    def writer(chunk: list[datetime]) -> Callable[[], None]:
        def work() -> None:
            for moment in chunk:
                backend._add_histories([inv], history_entry(inv, moment, status_at[moment]))

        return work

    _race([writer(moments[n::4]) for n in range(4)])

    latest = max(moments)
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == (
        status_at[latest].value,
        to_micros(latest),
    )
    assert [h.timestamp for h in backend.get_history(inv)] == sorted(moments)
