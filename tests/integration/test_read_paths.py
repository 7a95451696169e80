"""The read paths' mechanics: index lookups, windowed seek pages, servers with low caps.

- Lookups (children, parent event, workflow) are ``FT.SEARCH NOCONTENT`` queries over the
  invocations index; a changed parent or workflow moves the invocation between answers.
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
from pynenc_redis_stack.cli.index_commands import format_migration
from pynenc_redis_stack.server import EmbeddedRedisStack
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
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


def test_a_changed_parent_or_workflow_moves_the_invocation_between_answers(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
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


def test_after_a_purge_lookups_find_only_what_was_written_since(
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
    assert commands == {"ft.search": 1}
