"""Ad-hoc questions over one namespace's documents, for the ``pynenc-redis-stack query``
command and the checks of the other commands: which apps exist; invocations by task, status,
workflow, parent and time; history by invocation and time; runners by partial id; counts
grouped by status, task or runner.

Each question is a :class:`Question`: the ``FT.AGGREGATE`` built with
:mod:`pynenc_redis_stack.core.query` (so ``--explain`` prints exactly what runs), the columns of
its rows, and the ``FT.SEARCH`` that counts its rows for a progress bar. Rows stream through
a cursor (:func:`pynenc_redis_stack.core.reads.iter_cursor`), so answers beyond the server's
10 000-row caps are complete.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Literal

from redis import Redis

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.reads import Row, fetch_complete, iter_cursor
from pynenc_redis_stack.core.schema import Schemas

type TimeRange = tuple[int, int]
"""Inclusive bounds in epoch microseconds."""

type GroupBy = Literal["status", "task", "runner"]

INVOCATION_COLUMNS = (
    "invocation_id",
    "task_id_key",
    "status",
    "status_ts",
    "workflow_id",
    "parent_invocation_id",
)
HISTORY_COLUMNS = ("ts", "invocation_id", "status", "runner_context_id")
RUNNER_COLUMNS = ("runner_id", "runner_cls", "hostname")
TIME_COLUMNS = frozenset({"status_ts", "ts"})
"""Columns holding epoch microseconds."""


@dataclass(frozen=True)
class Question:
    """One question: its request, the columns of its rows, and how to count them.

    :param request: The ``FT.AGGREGATE`` that answers it.
    :param columns: The row fields shown, in order.
    :param total: The ``FT.SEARCH ... LIMIT 0 0`` counting its rows; None when only the
        answer itself tells (a ``FILTER`` step, groups).
    :param order: Numeric fields the whole answer is sorted on, ascending, before it is handed
        out (small answers only); empty: rows in index order, streamed.
    """

    request: query.Aggregate
    columns: tuple[str, ...]
    total: query.Search | None = None
    order: tuple[str, ...] = ()


def app_ids(client: Redis, namespace: Namespace, schemas: Schemas) -> list[str]:
    """Return the apps with documents in ``namespace`` (an invocation or an app info), sorted."""
    found: set[str] = set()
    for spec in (schemas.invocations, schemas.app_infos):
        request = query.Aggregate(namespace.alias(spec), query.Filter(spec), query.group_by("app_id"))
        found.update(str(row["app_id"]) for row in fetch_complete(client, request))
    return sorted(found)


def has_data(client: Redis, namespace: Namespace, schemas: Schemas, app_id: str) -> bool:
    """Return whether ``app_id`` has an invocation or an app info in ``namespace`` (one
    ``FT.SEARCH ... LIMIT 0 0`` per index, which reads no document)."""
    for spec in (schemas.invocations, schemas.app_infos):
        counted = query.Search(namespace.alias(spec), query.where(spec, app_id), limit=0)
        if int(run(client, *counted.args())[0]) > 0:
            return True
    return False


@dataclass(frozen=True)
class InvocationSelection:
    """Which invocations a question covers: those matching every filter given.

    :param time_range: Of the latest status (``status_ts``).
    """

    task: str | None = None
    statuses: Sequence[str] = ()
    workflow: str | None = None
    parent: str | None = None
    time_range: TimeRange | None = None

    @property
    def narrows_invocations(self) -> bool:
        """Whether a filter other than the time range is given."""
        return bool(self.task or self.statuses or self.workflow or self.parent)

    def filter(self, schemas: Schemas, app_id: str) -> query.Filter:
        tags = {"task_id_key": self.task, "workflow_id": self.workflow, "parent_invocation_id": self.parent}
        selected = query.where(
            schemas.invocations, app_id, **{name: value for name, value in tags.items() if value is not None}
        )
        if self.statuses:
            selected.tag_in("status", self.statuses)
        if self.time_range is not None:
            selected.between("status_ts", *self.time_range)
        return selected


def invocations(
    namespace: Namespace, schemas: Schemas, app_id: str, selection: InvocationSelection
) -> Question:
    """Invocations of ``app_id`` in ``selection``."""
    spec = schemas.invocations
    selected = selection.filter(schemas, app_id)
    alias = namespace.alias(spec)
    request = query.Aggregate(alias, selected, query.load_fields(*INVOCATION_COLUMNS))
    return Question(request, INVOCATION_COLUMNS, query.Search(alias, selected, limit=0))


def history(
    namespace: Namespace,
    schemas: Schemas,
    app_id: str,
    *,
    invocation: str | None = None,
    time_range: TimeRange | None = None,
) -> Question:
    """History entries of ``app_id``: of one invocation (in time order, arrival order on
    ties), in a time range (in index order: an answer of any size streams), or both."""
    spec = schemas.history
    selected = query.where(spec, app_id, **({"invocation_id": invocation} if invocation is not None else {}))
    if time_range is not None:
        selected.between("ts", *time_range)
    alias = namespace.alias(spec)
    request = query.Aggregate(alias, selected, query.load_fields(*HISTORY_COLUMNS, "seq"))
    # One invocation's few entries are sorted here: FT.AGGREGATE's SORTBY keeps only 10 rows
    # without MAX, and at most MAXAGGREGATERESULTS with it, silently.
    order = ("ts", "seq") if invocation is not None else ()
    return Question(request, HISTORY_COLUMNS, query.Search(alias, selected, limit=0), order)


def runners(namespace: Namespace, schemas: Schemas, app_id: str, partial: str = "") -> Question:
    """Runner contexts of ``app_id`` whose id contains ``partial`` (literally, case-sensitive)."""
    spec = schemas.runner_contexts
    steps = (*query.contains(spec, "runner_id", partial), *query.load_fields(*RUNNER_COLUMNS))
    request = query.Aggregate(namespace.alias(spec), query.where(spec, app_id), steps)
    return Question(request, RUNNER_COLUMNS)


def counts(
    namespace: Namespace, schemas: Schemas, app_id: str, by: GroupBy, selection: InvocationSelection
) -> Question:
    """Invocations of ``selection`` per status or task, or per runner: the distinct invocations
    each runner context recorded history for (then only ``selection.time_range`` applies, to
    those entries).

    :raises ValueError: If ``by`` is ``runner`` and ``selection`` narrows the invocations.
    """
    if by == "runner":
        if selection.narrows_invocations:
            raise ValueError("count --by runner counts history entries: it takes --since or --between only")
        spec = schemas.history
        selected = query.where(spec, app_id)
        if selection.time_range is not None:
            selected.between("ts", *selection.time_range)
        step = query.count_by("runner_context_id", "invocations", distinct="invocation_id")
        return Question(
            query.Aggregate(namespace.alias(spec), selected, step), ("runner_context_id", "invocations")
        )
    field = {"status": "status", "task": "task_id_key"}[by]
    request = query.Aggregate(
        namespace.alias(schemas.invocations),
        selection.filter(schemas, app_id),
        query.count_by(field, "invocations"),
    )
    return Question(request, (field, "invocations"))


def count_rows(client: Redis, question: Question) -> int | None:
    """Return how many rows ``question`` has, when a search can tell."""
    if question.total is None or question.total.filter.matches_nothing:
        return None if question.total is None else 0
    return int(run(client, *question.total.args())[0])


def answer(client: Redis, question: Question, batch_size: int) -> Generator[list[Row]]:
    """Yield the rows of ``question`` in batches (a cursor: complete past the server's caps);
    a question with an ``order`` in one batch, sorted."""
    if not question.order:
        yield from iter_cursor(client, question.request, batch_size)
        return
    rows = fetch_complete(client, question.request, batch_size)
    yield sorted(rows, key=lambda row: tuple(float(row[name]) for name in question.order))
