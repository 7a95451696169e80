"""Eight processes writing the same invocations at once, through the backend.

2 000 invocations, 5 history entries each: every entry of an invocation is written by a
different process (process ``p`` writes entry ``k`` of invocation ``i`` when
``(i + k) % 8 == p``), each process upserts its share of the invocations, and every process
shuffles its writes (upserts, single entries and batches of entries) with its own seed, so
upserts race history writes and entries of one invocation arrive in any order. Timestamps
are chosen so that some invocations have two entries with the same timestamp (ordered by
arrival) and some get their latest timestamp before an older one arrives.

Afterwards: exactly 2 000 invocations and 5 entries each; ``get_history`` in (timestamp,
arrival) order, arrival read from the server-side ``seq``; the invocation's ``status`` and
``status_ts`` are those of its last entry in that order.
"""

from __future__ import annotations

import multiprocessing
import random
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack.core import codec, query
from pynenc_redis_stack.core.reads import fetch_all
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id

SPAWN = multiprocessing.get_context("spawn")
PROCESSES = 8
INVOCATIONS = 2_000
ENTRIES = 5
STATUSES = (
    InvocationStatus.REGISTERED,
    InvocationStatus.PENDING,
    InvocationStatus.RUNNING,
    InvocationStatus.PAUSED,
    InvocationStatus.SUCCESS,
)
"""Entry ``k`` has status ``STATUSES[k]``: the status names the entry."""
TASK = TaskId("tests.concurrency", "work")
BASE = datetime(2026, 1, 1, tzinfo=UTC)
DEADLINE = 120.0
"""Seconds to wait for the writers; a healthy run needs a fraction of it."""


def timestamp(invocation: int, entry: int) -> datetime:
    """Entries 1 ms apart, except: every 4th invocation has entries 3 and 4 at the same time
    (arrival decides), and the next one has entry 4 *before* entry 3 (entry 3 is latest)."""
    offset = entry
    if invocation % 4 == 0 and entry == 4:
        offset = 3
    elif invocation % 4 == 1 and entry == 4:
        offset = 2
    return BASE + timedelta(seconds=invocation, milliseconds=offset)


def backend_for(url: str, app_id: str) -> RedisStackStateBackend:
    app = PynencBuilder().app_id(app_id).memory().redis_stack(url=url).build()
    return RedisStackStateBackend(app)


def history(invocation: int, entry: int) -> InvocationHistory:
    at = timestamp(invocation, entry)
    record = InvocationStatusRecord(STATUSES[entry], runner_id=f"runner-{entry}", timestamp=at)
    entry_history = InvocationHistory(
        invocation_id=InvocationId(f"inv-{invocation}"),
        status_record=record,
        runner_context_id=f"runner-{entry}",
    )
    entry_history._timestamp = at
    return entry_history


def invocation_pair(invocation: int) -> tuple[InvocationDTO, CallDTO]:
    call = CallId(TASK, f"args-{invocation}")
    return (
        InvocationDTO(InvocationId(f"inv-{invocation}"), call, None, None, None),
        CallDTO(call, {"n": str(invocation)}),
    )


def writer(url: str, app_id: str, process: int, start: Barrier, errors: Any) -> None:
    """Write this process's share in a shuffled order, starting with the others."""
    try:
        backend = backend_for(url, app_id)
        backend.client.ping()  # connect and check the indexes before the race starts
        mine = [(i, k) for i in range(INVOCATIONS) for k in range(ENTRIES) if (i + k) % PROCESSES == process]
        upserts = [i for i in range(INVOCATIONS) if i % PROCESSES == process]
        rng = random.Random(process)
        rng.shuffle(mine)
        rng.shuffle(upserts)
        writes: list[tuple[str, list[Any]]] = []
        while mine or upserts:
            choice = rng.random()
            if upserts and (choice < 0.2 or not mine):
                writes.append(("upsert", [upserts.pop() for _ in range(min(10, len(upserts)))]))
            elif choice < 0.6:
                writes.append(("entry", [mine.pop()]))
            else:
                writes.append(("entries", [mine.pop() for _ in range(min(25, len(mine)))]))
        start.wait(DEADLINE)
        for kind, items in writes:
            if kind == "upsert":
                backend._upsert_invocations([invocation_pair(i) for i in items])
            else:
                backend._record([history(i, k) for i, k in items])
    except BaseException:
        errors.put(traceback.format_exc())
        raise


@pytest.fixture
def app_id(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    app_id = unique_app_id(request)
    yield app_id
    backend_for(redis_url, app_id).purge()


def test_eight_processes_write_the_same_invocations_at_once(app_id: str, redis_url: str) -> None:
    start = SPAWN.Barrier(PROCESSES)
    errors = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=writer, args=(redis_url, app_id, p, start, errors)) for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(DEADLINE)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not failures, "\n".join(failures)
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    backend = backend_for(redis_url, app_id)
    # Every entry as the server stored it: invocation, status (names the entry), ts, seq.
    spec = backend.schemas.history
    request = query.Aggregate(
        backend.namespace.alias(spec),
        query.where(spec, app_id),
        query.load_fields("invocation_id", "status", "ts", "seq"),
    )
    stored: dict[str, list[tuple[int, int, str]]] = {}
    for row in fetch_all(backend.client, request, 1000):
        stored.setdefault(row["invocation_id"], []).append((int(row["ts"]), int(row["seq"]), row["status"]))
    assert len(stored) == INVOCATIONS
    assert {len(entries) for entries in stored.values()} == {ENTRIES}
    seqs = [seq for entries in stored.values() for _ts, seq, _status in entries]
    assert len(set(seqs)) == INVOCATIONS * ENTRIES  # one arrival number per entry

    found = {str(i): (s, t) for i, s, t in backend.find_invocations()}
    assert len(found) == INVOCATIONS
    ties_decided_by_arrival = 0
    for n in range(INVOCATIONS):
        invocation_id = f"inv-{n}"
        expected = sorted(stored[invocation_id])  # (ts, seq): time, then arrival
        got = backend.get_history(InvocationId(invocation_id))
        assert [(codec.to_micros(h.timestamp), h.status_record.status.value) for h in got] == [
            (ts, status) for ts, _seq, status in expected
        ], invocation_id
        latest_ts, _seq, latest_status = expected[-1]
        assert found[invocation_id] == (InvocationStatus(latest_status), codec.from_micros(latest_ts)), (
            invocation_id
        )
        assert backend._get_invocation(InvocationId(invocation_id)) == invocation_pair(n)
        if n % 4 == 1:
            assert latest_status == InvocationStatus.PAUSED.value  # entry 3: entry 4 is older
        if n % 4 == 0:
            ties_decided_by_arrival += latest_status == InvocationStatus.PAUSED.value
    # Both arrival orders of the tied entries happened (each process shuffles its writes).
    assert 0 < ties_decided_by_arrival < INVOCATIONS // 4


def test_a_tie_is_won_by_the_later_arrival(app_id: str, redis_url: str, redis_client: redis.Redis) -> None:
    """The rule the concurrent test relies on, in one process: equal timestamps, the entry
    that arrives last is the current status, and it comes last in the history."""
    backend = backend_for(redis_url, app_id)
    backend._upsert_invocations([invocation_pair(0)])
    backend._record([history(0, 4)])
    backend._record([history(0, 3)])  # same timestamp as entry 4 (invocation 0), arrives later
    got = backend.get_history(InvocationId("inv-0"))
    assert [h.status_record.status for h in got] == [InvocationStatus.SUCCESS, InvocationStatus.PAUSED]
    assert next(backend.find_invocations())[1] == InvocationStatus.PAUSED
