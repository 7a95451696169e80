"""The history timeline (timeline.py): each app's entries in one sorted set by time.

- ``iter_history_in_timerange`` reads it with one ``ZRANGE`` per page and no index query;
  pages are complete and ordered however timestamps tie, on the timeline and through the index.
- Entries removed while a scan runs (prune) shift no page: nothing is skipped or repeated.
- A store written before the timeline is read through the index until ``index migrate``
  backfills it (once, adding nothing the history script already added).
- Prune removes a deleted invocation's entries from the timeline; purge drops it.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack import admin
from pynenc_redis_stack.backend import RedisStackStateBackend
from pynenc_redis_stack.cli.index_commands import format_migration
from pynenc_redis_stack.keys import DocumentKind
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


def _forget_timeline(client: redis.Redis, backend: RedisStackStateBackend) -> None:
    """Leave the store as versions before 0.4 wrote it: the same documents, no timeline."""
    assert client.unlink(backend.keys.history_timeline(), backend.keys.history_timeline_complete()) == 2


clusters = st.lists(
    st.tuples(st.integers(0, 10**12), st.integers(1, 12), st.integers(0, 3)),
    min_size=1,
    max_size=6,
)
"""Bursts of entries: (start offset in microseconds, entry count, spread: 0 = all tied)."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bursts=clusters,
    page=st.integers(1, 9),
    batch=st.integers(1, 11),
    through_index=st.booleans(),
    data=st.data(),
)
def test_pages_are_complete_and_ordered_on_the_timeline_and_through_the_index(
    redis_url: str,
    redis_client: redis.Redis,
    bursts: list[tuple[int, int, int]],
    page: int,
    batch: int,
    through_index: bool,
    data: st.DataObject,
) -> None:
    app_id = f"timeline-{uuid.uuid4().hex}"
    writer = _app(redis_url, app_id, page).state_backend
    offsets = [
        start + data.draw(st.integers(0, spread)) for start, count, spread in bursts for _ in range(count)
    ]
    expected = _write(writer, offsets)
    if through_index:
        _forget_timeline(redis_client, writer)
    reader = _app(redis_url, app_id, page).state_backend
    low = data.draw(st.sampled_from(sorted(offsets)))
    high = data.draw(st.sampled_from([o for o in sorted(offsets) if o >= low] + [10**13]))
    start, end = BASE + timedelta(microseconds=low), BASE + timedelta(microseconds=high)

    assert _read(reader, start, end, batch) == [(m, r) for m, r in expected if start <= m <= end]
    assert reader._timeline is not through_index
    reader.purge()


def test_a_range_is_one_zrange_per_page_and_no_index_query(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    backend = _app(redis_url, unique_app_id(request), page=10).state_backend
    expected = _write(backend, [n // 4 for n in range(35)])  # ties in fours, across page edges
    measure = Measure(backend, redis_client, round_trips)

    commands, trips, got = measure(lambda: _read(backend, BASE, BASE + timedelta(days=1), 10))

    assert got == expected
    assert commands == {"zrange": 4}  # 10 + 10 + 10 + 5: the short page ends the scan
    assert trips == 4


def test_entries_removed_during_a_scan_shift_no_page(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    """A removal before the scan's position makes the next page's offset stale: the page is
    read again from the timestamp's first member, so nothing is skipped or repeated."""
    backend = _app(redis_url, unique_app_id(request), page=5).state_backend
    expected = _write(backend, [0] * 12 + [1] * 3)  # a run of 12 equal timestamps over 3 pages
    timeline = backend.keys.history_timeline()

    batches = backend.iter_history_in_timerange(BASE, BASE + timedelta(days=1), batch_size=5)
    first = next(batches)
    removed = redis_client.zrange(timeline, 0, 1)  # two members the scan has already passed
    assert redis_client.zrem(timeline, *removed) == 2
    rest = [h for b in batches for h in b]

    assert [(h.timestamp, h.runner_context_id) for h in [*first, *rest]] == expected


def test_a_store_without_a_timeline_is_read_through_the_index_until_backfilled(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    app_id = unique_app_id(request)
    writer = _app(redis_url, app_id).state_backend
    expected = _write(writer, [n // 2 for n in range(30)])
    _forget_timeline(redis_client, writer)

    legacy = _app(redis_url, app_id).state_backend
    measure = Measure(legacy, redis_client, round_trips)
    commands, _trips, got = measure(lambda: _read(legacy, BASE, BASE + timedelta(days=1), 100))
    assert got == expected
    assert "zrange" not in commands and commands.get("evalsha", 0) + commands.get("ft.aggregate", 0) >= 1

    # what an operator runs: `pynenc-redis-stack index migrate` (a dry run first)
    dry = admin.index_migrate(legacy.conf, dry_run=True, out=io.StringIO())
    assert dry.timeline is not None and dry.timeline.per_app[app_id] == 30
    assert f"history timeline of app {app_id!r}: would look at 30 entries" in format_migration(dry)
    assert not redis_client.exists(legacy.keys.history_timeline())
    writer._add_histories([InvocationId("late")], _history("late", BASE + timedelta(hours=1), "rc-late"))
    report = admin.index_migrate(legacy.conf)
    assert report.timeline is not None and report.timeline.per_app[app_id] == 30  # "late" was there
    again = admin.index_migrate(legacy.conf)
    assert again.timeline is not None and app_id not in again.timeline.per_app  # done once
    assert redis_client.zcard(legacy.keys.history_timeline()) == 31

    filled = _app(redis_url, app_id).state_backend
    measure = Measure(filled, redis_client, round_trips)
    commands, _trips, got = measure(lambda: _read(filled, BASE, BASE + timedelta(days=1), 100))
    assert commands == {"zrange": 1}
    assert got == [*expected, (BASE + timedelta(hours=1), "rc-late")]


def test_prune_and_purge_take_entries_out_of_the_timeline(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    backend = _app(redis_url, unique_app_id(request)).state_backend
    old, new = datetime(2020, 1, 1, tzinfo=UTC), datetime.now(UTC)
    for invocation_id, moment in (("old" + HOSTILE, old), ("new" + HOSTILE, new)):
        backend._upsert_invocations([_invocation_dto(invocation_id, "parent")])
        for status in (InvocationStatus.REGISTERED, InvocationStatus.RUNNING, InvocationStatus.SUCCESS):
            record = InvocationStatusRecord(status, "r", moment)
            history = InvocationHistory(InvocationId(invocation_id), record, runner_context_id="r")
            history._timestamp = moment
            backend._add_histories([InvocationId(invocation_id)], history)
    timeline = backend.keys.history_timeline()
    assert redis_client.zcard(timeline) == 6

    report = backend.prune(datetime(2021, 1, 1, tzinfo=UTC))

    assert report.deleted[DocumentKind.INVOCATION] == 1 and report.deleted[DocumentKind.HISTORY] == 3
    left = [h.invocation_id for b in backend.iter_history_in_timerange(old, new) for h in b]
    assert left == ["new" + HOSTILE] * 3
    assert redis_client.zcard(timeline) == 3
    backend.purge()
    assert not redis_client.exists(timeline)
    assert list(backend.iter_history_in_timerange(old, new)) == []
