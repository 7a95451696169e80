"""The read paths' mechanics: prepared queries, windowed seek pages, servers with low caps.

- Relation lookups (children, parent event, workflow) are one ``SMEMBERS``; on a store written
  before the relation sets existed they are one ``EVALSHA`` running one ``FT.SEARCH`` (a
  prepared query: only the values travel; past one reply, a cursor) until ``index migrate`` backfills them.
- ``iter_history_in_timerange`` pages through time windows sized from the previous page; a
  hypothesis test throws clustered timestamps with gaps, ties and odd batch sizes at it and
  compares with the sorted truth.
- A server whose ``MAXSEARCHRESULTS`` / ``MAXAGGREGATERESULTS`` are below our page sizes
  refuses the page (``LIMIT exceeds maximum``); the cap is learned and every answer is still
  complete and ordered (it would silently stop after the first page with ``SORTBY ... MAX``).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack import admin
from pynenc_redis_stack.backend import RedisStackStateBackend
from pynenc_redis_stack.cli.index_commands import format_migration
from pynenc_redis_stack.scripts import lua_literal
from pynenc_redis_stack.server import EmbeddedRedisStack
from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips
from tests.integration.strategies import identifiers
from tests.integration.test_large_answers import _build, _history
from tests.integration.test_round_trips import Measure

BASE = datetime(2025, 7, 1, 9, 0, 0, tzinfo=UTC)
TASK = TaskId("tasks", "work")


def _invocation_dto(
    invocation_id: str, parent: str, workflow_type: TaskId = TASK
) -> tuple[InvocationDTO, CallDTO]:
    call_id = CallId(TASK, f"args-{invocation_id}")
    workflow = WorkflowIdentity(InvocationId(f"wf-{parent}"), workflow_type)
    return InvocationDTO(InvocationId(invocation_id), call_id, workflow, InvocationId(parent)), CallDTO(
        call_id, {}
    )


def _write(app: Pynenc, entries: list[tuple[str, int]]) -> list[tuple[datetime, str]]:
    """Write one history entry per (invocation id, microsecond offset); return the expected
    order as (timestamp, runner context id), arrival order on equal timestamps."""
    backend = app.state_backend
    expected = []
    for n, (invocation_id, offset) in enumerate(entries):
        moment = BASE + timedelta(microseconds=offset)
        backend._add_histories([InvocationId(invocation_id)], _history(invocation_id, moment, f"rc-{n}"))
        expected.append((moment, f"rc-{n}", n))
    expected.sort(key=lambda item: (item[0], item[2]))
    return [(moment, runner) for moment, runner, _ in expected]


clusters = st.lists(
    st.tuples(st.integers(0, 10**12), st.integers(1, 12), st.integers(0, 50)),
    min_size=1,
    max_size=6,
)
"""Bursts of entries: (start offset in microseconds, entry count, spread within the burst)."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bursts=clusters, page=st.integers(1, 9), batch=st.integers(1, 11), data=st.data())
def test_timerange_pages_are_complete_and_ordered(
    request: pytest.FixtureRequest,
    redis_url: str,
    bursts: list[tuple[int, int, int]],
    page: int,
    batch: int,
    data: st.DataObject,
) -> None:
    app = _build(request, redis_url, f"-window-{uuid.uuid4().hex}", redis_stack_batch_size=page)
    offsets = [
        start + data.draw(st.integers(0, spread)) for start, count, spread in bursts for _ in range(count)
    ]
    expected = _write(app, [(f"inv-{n % 3}", offset) for n, offset in enumerate(offsets)])
    low = data.draw(st.sampled_from(sorted(offsets)))
    high = data.draw(st.sampled_from([o for o in sorted(offsets) if o >= low] + [10**13]))
    start, end = BASE + timedelta(microseconds=low), BASE + timedelta(microseconds=high)

    batches = list(app.state_backend.iter_history_in_timerange(start, end, batch_size=batch))

    assert all(len(b) == batch for b in batches[:-1]) and all(0 < len(b) <= batch for b in batches)
    got = [(h.timestamp, h.runner_context_id) for b in batches for h in b]
    assert got == [(moment, runner) for moment, runner in expected if start <= moment <= end]
    app.state_backend.purge()


def _forget_relation_sets(
    client: redis.Redis, backend: RedisStackStateBackend, parents: list[str], workflow_type: TaskId
) -> None:
    """Leave the store as versions before 0.3 wrote it: the same documents, no relation sets."""
    keys = backend.keys
    doomed = [keys.relation_set("parent_invocation_id", parent) for parent in parents]
    doomed += [keys.relation_set("workflow_id", f"wf-{parent}") for parent in parents]
    doomed += [
        keys.relation_set("workflow_type_key", workflow_type.key),
        keys.relation_sets_complete(),
    ]
    assert client.unlink(*doomed) == len(doomed)


def test_a_store_without_relation_sets_is_read_through_the_index_until_backfilled(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    app_id = unique_app_id(request)
    writer = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build().state_backend
    workflow_type = TaskId("flows", "nightly")
    writer._upsert_invocations(
        [_invocation_dto(f"child-{n}", "the-parent", workflow_type=workflow_type) for n in range(30)]
    )
    _forget_relation_sets(redis_client, writer, ["the-parent"], workflow_type)

    def lookups(backend: RedisStackStateBackend) -> dict[str, Callable[[], Iterator[InvocationId]]]:
        return {
            "children": lambda: backend.get_child_invocations(InvocationId("the-parent")),
            "workflow": lambda: backend.get_invocation_ids_by_workflow(workflow_id="wf-the-parent"),
            "type": lambda: backend.get_invocation_ids_by_workflow(workflow_type_key=workflow_type.key),
        }

    expected = sorted(f"child-{n}" for n in range(30))
    legacy = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build().state_backend
    measure = Measure(legacy, redis_client, round_trips)
    for name, lookup in lookups(legacy).items():
        list(lookup())  # the prepared script is loaded on first use
        commands, trips, ids = measure(lambda lookup=lookup: list(lookup()))
        assert commands == {"evalsha": 1, "ft.search": 1}, name  # one prepared query
        assert trips == 1, name
        assert sorted(ids) == expected, name

    # what an operator runs: `pynenc-redis-stack index migrate` (a dry run first)
    dry = admin.index_migrate(legacy.conf, dry_run=True, out=io.StringIO())
    assert dry.relation_sets is not None and dry.relation_sets.per_app[app_id] == 30
    assert f"relation sets of app {app_id!r}: would add 30 invocations" in format_migration(dry)
    assert not redis_client.exists(legacy.keys.relation_set("parent_invocation_id", "the-parent"))
    report = admin.index_migrate(legacy.conf)
    assert report.relation_sets is not None and report.relation_sets.per_app[app_id] == 30
    again = admin.index_migrate(legacy.conf)
    assert again.relation_sets is not None and app_id not in again.relation_sets.per_app  # done once

    filled = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build().state_backend
    measure = Measure(filled, redis_client, round_trips)
    for name, lookup in lookups(filled).items():
        commands, trips, ids = measure(lambda lookup=lookup: list(lookup()))
        assert commands == {"smembers": 1}, name
        assert sorted(ids) == expected, name
    for name, lookup in lookups(legacy).items():  # a process started before keeps reading the index
        assert sorted(lookup()) == expected, name


def test_a_changed_relation_moves_the_id_between_sets(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .memory()
        .redis_stack(url=redis_url)
        .build()
        .state_backend
    )
    backend._upsert_invocations([_invocation_dto("moved", "first:parent%")])
    backend._upsert_invocations([_invocation_dto("moved", "second:parent%")])
    assert list(backend.get_child_invocations(InvocationId("first:parent%"))) == []
    assert list(backend.get_child_invocations(InvocationId("second:parent%"))) == ["moved"]
    assert list(backend.get_invocation_ids_by_workflow(workflow_id="wf-first:parent%")) == []
    assert list(backend.get_invocation_ids_by_workflow(workflow_id="wf-second:parent%")) == ["moved"]
    call_id = CallId(TASK, "args-moved")
    backend._upsert_invocations(
        [(InvocationDTO(InvocationId("moved"), call_id, None, None), CallDTO(call_id, {}))]
    )
    assert list(backend.get_child_invocations(InvocationId("second:parent%"))) == []
    assert list(backend.get_invocation_ids_by_workflow(workflow_type_key=TASK.key)) == []
    assert backend._get_invocation(InvocationId("moved")) is not None


@pytest.mark.parametrize("value", ["plain", "", "a\"b'c\\d", "\n\r\t\x00\x7f", "é日😀", "]]--[[", "%s %d"])
def test_lua_literals_are_exact(redis_client: redis.Redis, value: str) -> None:
    assert redis_client.eval(f"return {lua_literal(value)}", 0) == value


@given(value=identifiers)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_lua_literals_of_adversarial_identifiers(redis_client: redis.Redis, value: str) -> None:
    assert redis_client.eval(f"return {lua_literal(value)}", 0) == value


def test_answers_stay_complete_on_a_server_with_low_result_caps(
    request: pytest.FixtureRequest, low_cap_url: str
) -> None:
    app = PynencBuilder().app_id(unique_app_id(request)).memory().redis_stack(url=low_cap_url).build()
    backend = app.state_backend
    backend._upsert_invocations([_invocation_dto(f"kid-{n}", "parent") for n in range(60)])
    expected = _write(app, [("one", n // 2) for n in range(70)])  # 70 entries, ties in pairs

    history = backend.get_history(InvocationId("one"))
    in_range = [h for b in backend.iter_history_in_timerange(BASE, BASE + timedelta(days=1), 7) for h in b]

    assert [(h.timestamp, h.runner_context_id) for h in history] == expected
    assert [(h.timestamp, h.runner_context_id) for h in in_range] == expected
    assert sorted(backend.get_child_invocations(InvocationId("parent"))) == sorted(
        f"kid-{n}" for n in range(60)
    )
    # the same lookup through the index (a store without relation sets): past the cap too
    _forget_relation_sets(redis.Redis.from_url(low_cap_url, decode_responses=True), backend, ["parent"], TASK)
    legacy = PynencBuilder().app_id(app.app_id).memory().redis_stack(url=low_cap_url).build().state_backend
    assert sorted(legacy.get_child_invocations(InvocationId("parent"))) == sorted(
        f"kid-{n}" for n in range(60)
    )


def test_after_a_purge_a_new_process_still_reads_the_relation_sets(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    app_id = unique_app_id(request)
    first = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build().state_backend
    first._upsert_invocations([_invocation_dto("gone", "the-parent")])
    first.purge()
    assert list(first.get_child_invocations(InvocationId("the-parent"))) == []
    first._upsert_invocations([_invocation_dto("kept", "the-parent")])

    later = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build().state_backend
    commands, _trips, ids = Measure(later, redis_client, round_trips)(
        lambda: list(later.get_child_invocations(InvocationId("the-parent")))
    )

    assert ids == ["kept"]
    assert commands == {"smembers": 1}  # the store is still known complete: no index fallback
