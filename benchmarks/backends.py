"""The three state backends under test, each built the way pynenc builds it, and their load.

Every app uses pynenc's SQLite orchestrator, broker and client data store (its own file), so
pynmon can serve it; only the state backend differs:

- ``redis-stack``: this package's ``RedisStackStateBackend`` (``PynencBuilder().redis_stack``);
- ``pynenc-redis``: pynenc-redis 0.3.0's ``RedisStateBackend`` on the same server, db 0;
- ``sqlite``: pynenc's ``SQLiteStateBackend`` (a temporary file).

All three use the same app id; their keys and files never meet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import pynenc.state_backend.base_state_backend as base_state_backend
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.call import LazyCall
from pynenc.invocation.dist_invocation import DistributedInvocation
from pynenc.invocation.status import InvocationStatusRecord
from pynenc.state_backend.base_state_backend import BaseStateBackend
from tqdm import tqdm

from benchmarks import tasks
from benchmarks.dataset import Dataset
from benchmarks.measure import index_memory_mb, used_memory

OURS = "redis-stack"
PYNENC_REDIS = "pynenc-redis"
SQLITE = "sqlite"
INDEX_NAMES = ("invocations", "history", "runner-contexts", "workflow-runs", "workflow-sub-invocations")
LOAD_BATCH = 100  # invocations per upsert_invocations call, as a runner batch


@dataclass
class Subject:
    """One backend under test, with what its load measured."""

    name: str
    app: Pynenc
    on_redis: bool
    load_seconds: float = 0.0
    memory_bytes: int | None = None  # Redis used_memory delta over the load (Redis backends)
    file_bytes: int | None = None  # SQLite file size after the load
    index_memory_mb: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def backend(self) -> BaseStateBackend:
        return self.app.state_backend


def build_subjects(redis_url: str, app_id: str, workdir: Path) -> list[Subject]:
    """The three backends for ``app_id``; SQLite files go to ``workdir``."""

    def builder(name: str) -> Any:
        return PynencBuilder().app_id(app_id).sqlite(sqlite_db_path=str(workdir / f"{name}.sqlite3"))

    subjects = [
        Subject(OURS, builder(OURS).redis_stack(url=redis_url).build(), on_redis=True),
        Subject(
            PYNENC_REDIS,
            builder(PYNENC_REDIS)
            .custom_config(state_backend_cls="RedisStateBackend", redis_url=redis_url)
            .build(),
            on_redis=True,
        ),
        Subject(SQLITE, builder(SQLITE).build(), on_redis=False),
    ]
    expected = {
        OURS: "RedisStackStateBackend",
        PYNENC_REDIS: "RedisStateBackend",
        SQLITE: "SQLiteStateBackend",
    }
    for subject in subjects:
        actual = type(subject.backend).__name__
        if actual != expected[subject.name]:
            raise RuntimeError(f"{subject.name}: pynenc built {actual}, expected {expected[subject.name]}")
        for function in (*tasks.TASKS, *tasks.WORKFLOWS):
            subject.app.task(function)
    return subjects


def invocation(app: Pynenc, pair: tuple[Any, Any]) -> DistributedInvocation[Any, Any]:
    """The ``DistributedInvocation`` a runner would hold for a dataset row (as ``get_invocation``
    rebuilds it)."""
    inv_dto, call_dto = pair
    return DistributedInvocation.from_dto(inv_dto, call=LazyCall.from_dto(app, call_dto))


class _DatasetClock(datetime):
    """``datetime`` whose ``now()`` is the dataset's time of the status change being written."""

    current: datetime

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _DatasetClock:
        return cls.current  # type: ignore[return-value]


@contextmanager
def dataset_clock() -> Iterator[type[_DatasetClock]]:
    """Make pynenc's ``InvocationHistory`` take its timestamp from the dataset.

    pynenc's public ``add_histories`` stamps each entry with ``datetime.now()``; the dataset
    spreads entries over a fixed range, so the load swaps the module's clock while it writes
    (nothing else changes: every backend still receives pynenc's own call).
    """
    original = base_state_backend.datetime
    base_state_backend.datetime = _DatasetClock
    try:
        yield _DatasetClock
    finally:
        base_state_backend.datetime = original


def load(subject: Subject, data: Dataset, client: redis.Redis) -> None:
    """Write the dataset through the backend's public API, in runner-sized batches."""
    backend = subject.backend
    if subject.name == OURS:
        backend.client  # noqa: B018  first use checks the server and creates the indexes
    before = used_memory(client)
    invocations = [invocation(subject.app, pair) for pair in data.pairs]
    steps = (
        len(data.runner_contexts) + len(invocations) // LOAD_BATCH + len(data.workflows) + len(data.changes)
    )
    started = time.perf_counter()
    with tqdm(total=steps, desc=f"load {subject.name} n={data.n}", unit="call", leave=False) as progress:
        for context in data.runner_contexts:
            backend.store_runner_context(context)
            progress.update()
        for start in range(0, len(invocations), LOAD_BATCH):
            backend.upsert_invocations(invocations[start : start + LOAD_BATCH])
            progress.update()
        for workflow in data.workflows:
            backend.store_workflow_run(workflow)
            progress.update()
        with dataset_clock() as clock:
            for change in data.changes:
                clock.current = change.timestamp
                record = InvocationStatusRecord(
                    change.status, change.runner_context.runner_id, change.timestamp
                )
                backend.add_histories([invocations[i] for i in change.indexes], record, change.runner_context)
                progress.update()
    subject.load_seconds = time.perf_counter() - started
    if subject.on_redis:
        subject.memory_bytes = used_memory(client) - before
    else:
        subject.file_bytes = Path(subject.app.config_values["sqlite_db_path"]).stat().st_size
    if subject.name == OURS:
        namespace = backend.conf.redis_stack_namespace
        aliases = [f"{namespace}:{name}" for name in INDEX_NAMES]
        subject.index_memory_mb = {alias: index_memory_mb(client, alias) for alias in aliases}
