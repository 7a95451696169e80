"""Time ranges over history: seek pages over the history index (``iter_history_in_timerange``).

- Pages are complete and ordered by ``(ts, seq)`` however timestamps tie and batches cut them.
- A range is ``FT.AGGREGATE`` pages only: no set, list, sorted set or string is read.
- Entries deleted while a scan runs (prune) shift no page: nothing is skipped or repeated.
- Prune and purge take entries out of every range.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack.admin.retention import prune_state_backend
from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.keys import DocumentKind
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips
from tests.integration.test_large_answers import _history
from tests.integration.test_read_paths import _invocation_dto
from tests.integration.test_round_trips import Measure

BASE = datetime(2025, 7, 1, 9, 0, 0, tzinfo=UTC)
HOSTILE = "a:{b}|c@d*e?f\\\"g' h-é日😀"


def _app(redis_url: str, app_id: str, page: int = 100) -> Pynenc:
    builder = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url)
    builder._config.update({"redis_stack_batch_size": page})
    return builder.build()


def _write(backend: RedisStackStateBackend, offsets: list[int]) -> list[tuple[datetime, str]]:
    """One entry per offset (microseconds after BASE), each of its own runner context;
    return the expected order: (timestamp, runner context id), arrival order on equal ts."""
    expected = []
    for n, offset in enumerate(offsets):
        moment = BASE + timedelta(microseconds=offset)
        backend._add_histories(
            [InvocationId(f"{HOSTILE}-{n % 3}")], _history(f"{HOSTILE}-{n % 3}", moment, f"rc-{n}")
        )
        expected.append((moment, f"rc-{n}", n))
    expected.sort(key=lambda item: (item[0], item[2]))
    return [(moment, runner) for moment, runner, _ in expected]


def _read(
    backend: RedisStackStateBackend, start: datetime, end: datetime, batch: int
) -> list[tuple[datetime, str]]:
    batches = list(backend.iter_history_in_timerange(start, end, batch_size=batch))
    assert all(len(b) == batch for b in batches[:-1]) and all(0 < len(b) <= batch for b in batches)
    return [(h.timestamp, h.runner_context_id) for b in batches for h in b]


clusters = st.lists(
    st.tuples(st.integers(0, 10**12), st.integers(1, 12), st.integers(0, 3)),
    min_size=1,
    max_size=6,
)
"""Bursts of entries: (start offset in microseconds, entry count, spread: 0 = all tied)."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bursts=clusters, page=st.integers(1, 9), batch=st.integers(1, 11), data=st.data())
def test_pages_are_complete_and_ordered(
    redis_url: str, bursts: list[tuple[int, int, int]], page: int, batch: int, data: st.DataObject
) -> None:
    app_id = f"ranges-{uuid.uuid4().hex}"
    writer = _app(redis_url, app_id, page).state_backend
    offsets = [
        start + data.draw(st.integers(0, spread)) for start, count, spread in bursts for _ in range(count)
    ]
    expected = _write(writer, offsets)
    reader = _app(redis_url, app_id, page).state_backend
    low = data.draw(st.sampled_from(sorted(offsets)))
    high = data.draw(st.sampled_from([o for o in sorted(offsets) if o >= low] + [10**13]))
    start, end = BASE + timedelta(microseconds=low), BASE + timedelta(microseconds=high)

    assert _read(reader, start, end, batch) == [(m, r) for m, r in expected if start <= m <= end]
    reader.purge()


def test_a_range_is_index_queries_only(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    backend = _app(redis_url, unique_app_id(request), page=10).state_backend
    expected = _write(backend, [n // 4 for n in range(35)])  # ties in fours, across page edges
    measure = Measure(backend, redis_client, round_trips)

    commands, trips, got = measure(lambda: _read(backend, BASE, BASE + timedelta(days=1), 10))

    assert got == expected
    assert set(commands) == {"ft.aggregate"} and commands["ft.aggregate"] == trips >= 4


def test_entries_deleted_during_a_scan_shift_no_page(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    """Pages seek past the last (ts, seq) seen, so an entry deleted behind the scan moves
    nothing, and one deleted ahead of it is simply not read."""
    backend = _app(redis_url, unique_app_id(request), page=5).state_backend
    expected = _write(backend, [0] * 12 + [1] * 3)  # a run of 12 equal timestamps over 3 pages
    spec = backend.schemas.history
    request_filter = query.where(spec, backend.app.app_id)
    steps = (*query.sorted_top("ts", "seq", 100), *query.LOAD_KEY)
    aggregate = query.Aggregate(backend.namespace.alias(spec), request_filter, steps)
    keys = [row[-1] for row in redis_client.execute_command(*aggregate.args())[1:]]  # in (ts, seq) order

    batches = backend.iter_history_in_timerange(BASE, BASE + timedelta(days=1), batch_size=5)
    first = next(batches)
    assert redis_client.unlink(keys[0], keys[1], keys[9]) == 3  # two behind the scan, one ahead
    rest = [h for b in batches for h in b]

    assert [(h.timestamp, h.runner_context_id) for h in [*first, *rest]] == expected[:9] + expected[10:]


def test_a_full_page_whose_documents_vanished_still_places_the_next_page(
    request: pytest.FixtureRequest, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document deleted between its indexing and the page's LOAD leaves a row without
    ``doc`` (a race a test cannot time, so the first page's documents are dropped from its
    reply); the row's sort values still place the next page: the rest comes back, in order."""
    backend = _app(redis_url, unique_app_id(request), page=5).state_backend
    expected = _write(backend, list(range(12)))
    pages = 0

    def first_page_without_documents(target: Any, *args: str | int) -> Any:
        nonlocal pages
        reply = run(target, *args)
        if args[0] == "FT.AGGREGATE" and (pages := pages + 1) == 1:
            return [reply[0], *(row[:-2] if row[-2] == "doc" else row for row in reply[1:])]
        return reply

    monkeypatch.setattr("pynenc_redis_stack.core.reads.run", first_page_without_documents)
    got = _read(backend, BASE, BASE + timedelta(days=1), batch=5)
    assert got == expected[5:]


def test_prune_and_purge_take_entries_out_of_ranges(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = _app(redis_url, unique_app_id(request)).state_backend
    old, new = datetime(2020, 1, 1, tzinfo=UTC), datetime.now(UTC)
    for invocation_id, moment in (("old" + HOSTILE, old), ("new" + HOSTILE, new)):
        backend._upsert_invocations([_invocation_dto(invocation_id, "parent")])
        for status in (InvocationStatus.REGISTERED, InvocationStatus.RUNNING, InvocationStatus.SUCCESS):
            record = InvocationStatusRecord(status, "r", moment)
            history = InvocationHistory(InvocationId(invocation_id), record, runner_context_id="r")
            history._timestamp = moment
            backend._add_histories([InvocationId(invocation_id)], history)

    report = prune_state_backend(backend, datetime(2021, 1, 1, tzinfo=UTC))

    assert report.deleted[DocumentKind.INVOCATION] == 1 and report.deleted[DocumentKind.HISTORY] == 3
    left = [h.invocation_id for b in backend.iter_history_in_timerange(old, new) for h in b]
    assert left == ["new" + HOSTILE] * 3
    backend.purge()
    assert list(backend.iter_history_in_timerange(old, new)) == []
