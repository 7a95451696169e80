"""Answers larger than the server caps (MAXSEARCHRESULTS / MAXAGGREGATERESULTS = 10 000).

A single ``FT.AGGREGATE`` (or ``FT.SEARCH``) never returns more than 10 000 rows on a Redis
Stack configured like its launcher; every lookup here has more matches than that and must
still come back complete, in the promised order, without duplicates.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core.client import run
from tests.conftest import unique_app_id

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend

SERVER_CAP = 10_000

# Five distinct timestamps (with microseconds, to check they survive exactly), 5 000
# entries on each, written in an order that is NOT timestamp order.
BASE = datetime(2024, 3, 1, 12, 0, 0, 123_457, tzinfo=UTC)
TIMESTAMPS = [BASE + timedelta(seconds=s) for s in range(5)]
WRITE_BATCHES = 25
BATCH = 1000
DISTINCT_INVOCATIONS = 12_500  # each written twice: 25 000 entries


def _build(request: pytest.FixtureRequest, redis_url: str, suffix: str, **config: object) -> Pynenc:
    builder = PynencBuilder().app_id(unique_app_id(request, suffix)).memory().redis_stack(url=redis_url)
    builder._config.update(config)
    return builder.build()


def _history(invocation_id: str, moment: datetime, runner_context_id: str = "rc") -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=InvocationId(invocation_id),
        status_record=InvocationStatusRecord(InvocationStatus.RUNNING, runner_id="runner", timestamp=moment),
        runner_context_id=runner_context_id,
    )
    history._timestamp = moment
    return history


def _aggregate_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_FT.AGGREGATE", {}).get("calls", 0))


# -- 25 000 history entries in one time range ----------------------------------------------


class HistoryFixture:
    def __init__(self, app: Pynenc, expected: list[tuple[str, datetime]]) -> None:
        self.app = app
        self.backend: RedisStackStateBackend = app.state_backend
        self.expected = expected  # (invocation id, timestamp) in (timestamp, arrival) order


@pytest.fixture(scope="module")
def history_25k(request: pytest.FixtureRequest, redis_url: str) -> HistoryFixture:
    app = _build(request, redis_url, "-history")
    backend = app.state_backend
    arrival: list[tuple[str, datetime]] = []
    # Outside the range by one microsecond on each side: must never be returned.
    for outside_id, moment in (
        ("outside-low", TIMESTAMPS[0] - timedelta(microseconds=1)),
        ("outside-high", TIMESTAMPS[-1] + timedelta(microseconds=1)),
    ):
        backend._add_histories([InvocationId(outside_id)], _history(outside_id, moment))
    for k in range(WRITE_BATCHES):
        moment = TIMESTAMPS[4 - k % 5]  # newest first, then older ones: arrival != ts order
        ids = [f"inv-{(k * BATCH + i) % DISTINCT_INVOCATIONS:05d}" for i in range(BATCH)]
        backend._add_histories([InvocationId(i) for i in ids], _history("template", moment))
        arrival.extend((i, moment) for i in ids)
    expected = sorted(arrival, key=lambda entry: entry[1])  # stable: arrival order within a ts
    assert len(expected) == 25_000
    return HistoryFixture(app, expected)


def test_history_in_timerange_returns_every_entry_in_order(
    history_25k: HistoryFixture,
) -> None:
    batches = list(
        history_25k.backend.iter_history_in_timerange(TIMESTAMPS[0], TIMESTAMPS[-1], batch_size=3000)
    )

    assert all(0 < len(batch) <= 3000 for batch in batches)
    got = [(str(h.invocation_id), h.timestamp) for batch in batches for h in batch]
    assert len(got) == 25_000 > SERVER_CAP
    assert got == history_25k.expected
    # No duplicates: every id was written exactly twice and comes back exactly twice.
    per_invocation = Counter(invocation_id for invocation_id, _ts in got)
    assert len(per_invocation) == DISTINCT_INVOCATIONS
    assert set(per_invocation.values()) == {2}


def test_partial_history_range_returns_exactly_the_subset(
    history_25k: HistoryFixture,
) -> None:
    """Inclusive bounds, 15 000 entries, and a batch_size above the server cap (one batch)."""
    start, end = TIMESTAMPS[1], TIMESTAMPS[3]
    expected = [entry for entry in history_25k.expected if start <= entry[1] <= end]
    assert len(expected) == 15_000

    batches = list(history_25k.backend.iter_history_in_timerange(start, end, batch_size=20_000))

    assert all(0 < len(batch) <= 20_000 for batch in batches)
    assert [(str(h.invocation_id), h.timestamp) for batch in batches for h in batch] == expected


def test_history_range_bounds_are_inclusive_to_the_microsecond(
    history_25k: HistoryFixture,
) -> None:
    low = TIMESTAMPS[0] - timedelta(microseconds=1)
    entries = [h for batch in history_25k.backend.iter_history_in_timerange(low, low, 10) for h in batch]
    assert [(str(h.invocation_id), h.timestamp) for h in entries] == [("outside-low", low)]


def test_invocations_in_timerange_yields_each_id_once(
    history_25k: HistoryFixture,
) -> None:
    batches = list(
        history_25k.backend.iter_invocations_in_timerange(TIMESTAMPS[0], TIMESTAMPS[-1], batch_size=4000)
    )

    assert all(0 < len(batch) <= 4000 for batch in batches)
    ids = [str(i) for batch in batches for i in batch]
    assert len(ids) == DISTINCT_INVOCATIONS > SERVER_CAP
    assert len(set(ids)) == len(ids)
    assert set(ids) == {f"inv-{n:05d}" for n in range(DISTINCT_INVOCATIONS)}


# -- 12 000 children / event members / workflow members -------------------------------------

CHILDREN = 12_000
PARENT = InvocationId("the-parent")
EVENT = "the-event"
WORKFLOW = WorkflowIdentity(
    workflow_id=InvocationId("the-workflow"),
    workflow_type=TaskId("tests.workflows", "big_flow"),
)


class MembersFixture:
    def __init__(self, app: Pynenc, members: set[str]) -> None:
        self.backend: RedisStackStateBackend = app.state_backend
        self.members = members


@pytest.fixture(scope="module")
def members_12k(request: pytest.FixtureRequest, redis_url: str) -> MembersFixture:
    app = _build(request, redis_url, "-members")
    backend = app.state_backend
    call_id = CallId(TaskId("tests.tasks", "child"), "args")
    members = [f"child-{n:05d}" for n in range(CHILDREN)]
    for start in range(0, CHILDREN, 1000):
        backend._upsert_invocations(
            [
                (
                    InvocationDTO(InvocationId(i), call_id, WORKFLOW, PARENT, EVENT),
                    CallDTO(call_id, {"n": str(n)}),
                )
                for n, i in enumerate(members[start : start + 1000], start)
            ]
        )
    # Decoys: another parent, another event, another workflow of the same type.
    other_wf = WorkflowIdentity(InvocationId("other-workflow"), WORKFLOW.workflow_type)
    backend._upsert_invocations(
        [
            (
                InvocationDTO(
                    InvocationId("decoy"),
                    call_id,
                    other_wf,
                    InvocationId("other-parent"),
                    "other-event",
                ),
                CallDTO(call_id, {}),
            ),
        ]
    )
    return MembersFixture(app, set(members))


def _all_ids(iterator: object) -> list[str]:
    return [str(i) for i in iterator]  # type: ignore[attr-defined]


def test_child_invocations_beyond_the_cap(members_12k: MembersFixture) -> None:
    ids = _all_ids(members_12k.backend.get_child_invocations(PARENT))
    assert len(ids) == CHILDREN > SERVER_CAP
    assert set(ids) == members_12k.members


def test_invocations_by_parent_event_beyond_the_cap(
    members_12k: MembersFixture,
) -> None:
    ids = _all_ids(members_12k.backend.get_invocations_by_parent_event(EVENT))
    assert len(ids) == CHILDREN
    assert set(ids) == members_12k.members


@pytest.mark.parametrize(
    "by",
    ["workflow_id", "workflow_type_key", "both"],
)
def test_invocation_ids_by_workflow_beyond_the_cap(members_12k: MembersFixture, by: str) -> None:
    kwargs = {
        "workflow_id": {"workflow_id": str(WORKFLOW.workflow_id)},
        "workflow_type_key": {"workflow_type_key": WORKFLOW.workflow_type.key},
        "both": {
            "workflow_id": str(WORKFLOW.workflow_id),
            "workflow_type_key": WORKFLOW.workflow_type.key,
        },
    }[by]
    ids = _all_ids(members_12k.backend.get_invocation_ids_by_workflow(**kwargs))
    expected = set(members_12k.members)
    if by == "workflow_type_key":
        expected.add("decoy")  # same type, another run
    assert len(ids) == len(expected)
    assert set(ids) == expected


def test_every_workflow_member_beyond_the_cap(members_12k: MembersFixture) -> None:
    ids = _all_ids(members_12k.backend.get_invocation_ids_by_workflow())
    assert len(ids) == CHILDREN + 1
    assert set(ids) == members_12k.members | {"decoy"}


def _cursor_total(client: redis.Redis, index: str) -> int:
    raw = run(client, "FT.INFO", index)
    info = dict(zip(raw[::2], raw[1::2], strict=False))
    stats = info["cursor_stats"]
    return int(dict(zip(stats[::2], stats[1::2], strict=False))["index_total"])


def test_abandoned_streams_free_their_server_cursors(
    members_12k: MembersFixture, redis_client: redis.Redis
) -> None:
    """A caller that stops early must not leak cursors (the server keeps 128 per index): the
    children lookup past the cap streams a cursor."""
    backend = members_12k.backend
    alias = backend.namespace.alias(backend.schemas.invocations)
    assert _cursor_total(redis_client, alias) == 0
    for _ in range(3):
        stream = backend.get_child_invocations(PARENT)
        assert str(next(stream)) in members_12k.members
        assert _cursor_total(redis_client, alias) == 1  # the rest of the answer waits server-side
        stream.close()  # type: ignore[attr-defined]
        assert _cursor_total(redis_client, alias) == 0


# -- one invocation's history ---------------------------------------------------------------


def test_get_history_orders_equal_timestamps_by_arrival(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    app = _build(request, redis_url, "-paging", redis_stack_batch_size=7)
    backend = app.state_backend
    assert backend.batch_size == 7
    invocation_id = InvocationId("one-invocation")
    moment = datetime(2024, 5, 5, 5, 5, 5, 555_555, tzinfo=UTC)
    for n in range(30):  # 30 separate writes, all with the SAME timestamp
        backend._add_histories(
            [invocation_id],
            _history(str(invocation_id), moment, runner_context_id=f"rc-{n:02d}"),
        )
    backend.get_history(InvocationId("warm-up"))  # indexes prepared before counting

    before = _aggregate_calls(redis_client)
    history = backend.get_history(invocation_id)
    after = _aggregate_calls(redis_client)

    assert [h.runner_context_id for h in history] == [f"rc-{n:02d}" for n in range(30)]
    assert {h.timestamp for h in history} == {moment}
    # one FT.SEARCH: seek pages (FT.AGGREGATE) only past one reply, whatever the page size
    assert after == before


def test_get_history_seek_paging_with_mixed_timestamps(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    """Entries written newest-first, several per timestamp, page size 7: timestamp then arrival order."""
    app = _build(request, redis_url, "-mixed", redis_stack_batch_size=7)
    backend = app.state_backend
    invocation_id = InvocationId("mixed")
    moments = [datetime(2024, 6, 1, tzinfo=UTC) + timedelta(microseconds=m) for m in (3, 2, 1)]
    written = []
    for moment in moments:
        for n in range(8):
            rc = f"{moment.microsecond}-{n}"
            backend._add_histories(
                [invocation_id],
                _history(str(invocation_id), moment, runner_context_id=rc),
            )
            written.append((moment, rc))
    expected = [rc for _moment, rc in sorted(written, key=lambda w: w[0])]

    assert [h.runner_context_id for h in backend.get_history(invocation_id)] == expected
