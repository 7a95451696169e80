"""Differential property test: RedisStackStateBackend against pynenc's MemStateBackend.

Hypothesis draws random operation sequences over adversarial identifiers (RediSearch query
syntax, key separators, globs, the substring search form's escapes, edge whitespace and
line breaks, unicode, 2 KiB ids), applies each write to both backends and compares every
answer. Unordered answers are compared as multisets, ordered ones exactly. Our backend runs
with a random page size (1, 2, 3 or 1000) so cursor reads and seek paging are crossed, and
a neighbour app whose id is a near miss of ours (other case, extra space, ...) receives a
random share of the same writes: none of them may show up in our app's answers.

Adaptations to MemStateBackend (its quirks, not contract differences):

- ``_add_histories(ids, history)`` stores the *same* object under every id in Mem, so the
  entries of ids other than ``history.invocation_id`` carry a foreign ``invocation_id``.
  Mem gets one ``_add_histories([id], copy)`` per id instead (what pynenc's own
  ``add_histories`` does); ours gets the batch.
- An invocation's identity (call, parent, event, workflow) and a workflow's identity
  (type, parent) never change once drawn; re-upserts change only the arguments. Mem
  never unlinks a re-parented child, a case pynenc does not produce.
- ``iter_history_in_timerange``: Mem orders equal timestamps by the dict order of their
  invocation ids, not by arrival. Both must agree on the entries and on their timestamp
  order; ours must also keep arrival order among equal timestamps (checked against the
  model, as ``get_history`` is checked against Mem exactly).
- Identifiers are never ``""`` (ours refuses it: InvalidDocumentError) nor contain NUL.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from pynenc import PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend import MemStateBackend
from pynenc.state_backend.base_state_backend import BaseStateBackend, InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id
from tests.integration import strategies as s

_counter = itertools.count()
_MISSING = object()


@dataclass
class Model:
    """What the test has written, to draw related ids and to check orders Mem cannot."""

    pool: list[str] = field(default_factory=list)
    """Every id used so far, in any role (drawn again in other roles)."""
    invocations: dict[str, tuple[InvocationDTO, CallDTO]] = field(default_factory=dict)
    workflows: dict[str, WorkflowIdentity] = field(default_factory=dict)
    contexts: dict[str, RunnerContext] = field(default_factory=dict)
    data_keys: list[tuple[WorkflowIdentity, str]] = field(default_factory=list)
    task_ids: list[TaskId] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    arrivals: list[InvocationHistory] = field(default_factory=list)
    """Every history entry in arrival order (the order ours must keep among equal timestamps)."""

    def remember(self, value: str) -> None:
        if value not in self.pool:
            self.pool.append(value)


class Harness:
    """Both backends under test, plus a neighbour app whose data must never show up."""

    def __init__(self, data: st.DataObject, redis_url: str) -> None:
        self.data = data
        self.model = Model()
        n = next(_counter)
        app_id = f"{data.draw(s.identifiers, label='app id text')}#{n}"
        neighbor_id = data.draw(st.sampled_from(s.variants(app_id)), label="neighbour app id")
        page_size = data.draw(st.sampled_from([1, 2, 3, 1000]), label="page size")
        # Only our app goes through ``app.state_backend`` (which registers the app info, and
        # costs ~0.1 s in pynenc's AppInfo.from_app); the others are constructed directly.
        # Mem gets a plain id of its own: the Pynenc multiton is process-global.
        mem_app = PynencBuilder().app_id(f"prop-mem-{n}").memory().build()
        assert mem_app.conf.state_backend_cls == MemStateBackend.__name__
        self.mem = MemStateBackend(mem_app)
        self.ours = _redis_stack_backend(app_id, redis_url, page_size, register=True)
        self.neighbor = _redis_stack_backend(neighbor_id, redis_url, page_size, register=False)
        assert self.ours.app.app_id == app_id
        assert self.ours.batch_size == page_size
        assert self.ours.get_app_info().app_id == app_id

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.data.draw(strategy, label=label)

    def write(self, method: str, *args: Any) -> None:
        """Apply one write to both backends (and maybe to the neighbour app)."""
        getattr(self.mem, method)(*args)
        getattr(self.ours, method)(*args)
        if self.draw(st.booleans(), "also in neighbour app"):
            getattr(self.neighbor, method)(*args)

    def purge(self) -> None:
        self.ours.purge()
        self.neighbor.purge()

    # -- drawing ids ----------------------------------------------------------------------

    def ident(self, label: str) -> str:
        """A fresh adversarial id, one already used (in any role), or a near miss of one."""
        options = [s.identifiers]
        pool = self.model.pool
        if pool:
            options += [st.sampled_from(pool)] * 2
            near = [v for p in pool[-20:] for v in s.variants(p)]
            if near:
                options.append(st.sampled_from(near))
        value: str = self.draw(st.one_of(options), label)
        self.model.remember(value)
        return value

    def maybe_ident(self, label: str) -> str | None:
        return self.ident(label) if self.draw(st.booleans(), f"has {label}") else None

    def task_id(self, label: str) -> TaskId:
        if self.model.task_ids and self.draw(st.booleans(), f"reuse {label}"):
            return self.draw(st.sampled_from(self.model.task_ids), label)
        task = TaskId(self.draw(s.module_names, f"{label} module"), self.draw(s.func_names, f"{label} func"))
        self.model.task_ids.append(task)
        return task

    def workflow(self, label: str) -> WorkflowIdentity:
        workflow_id = self.ident(f"{label} id")
        known = self.model.workflows.get(workflow_id)
        if known is not None:
            return known
        identity = WorkflowIdentity(
            workflow_id=InvocationId(workflow_id),
            workflow_type=self.task_id(f"{label} type"),
            parent_workflow_id=self.maybe_ident(f"{label} parent"),
        )
        self.model.workflows[workflow_id] = identity
        return identity

    def timestamp(self, label: str) -> datetime:
        options = [s.timestamps]
        if self.model.times:
            options.append(st.sampled_from(self.model.times))
        moment: datetime = self.draw(st.one_of(options), label)
        self.model.times.append(moment)
        return moment

    def context(self, depth: int = 0) -> RunnerContext:
        runner_id = self.ident("runner id")
        if depth == 0 and runner_id in self.model.contexts and self.draw(st.booleans(), "reuse context"):
            return self.model.contexts[runner_id]
        parent = None
        if depth < 2 and self.draw(st.booleans(), "has parent context"):
            parent = self.context(depth + 1)
        context = RunnerContext(
            runner_cls=self.draw(s.identifiers, "runner cls"),
            runner_id=runner_id,
            parent_ctx=parent,
            pid=self.draw(st.integers(0, 2**22), "pid"),
            hostname=self.draw(s.identifiers, "hostname"),
            thread_id=self.draw(st.integers(0, 2**63 - 1), "thread id"),
        )
        self.model.contexts.setdefault(runner_id, context)
        return context

    # -- writes ---------------------------------------------------------------------------

    def upsert(self) -> None:
        entries = []
        for _ in range(self.draw(st.integers(1, 3), "batch size")):
            invocation_id = self.ident("invocation id")
            arguments = self.draw(st.dictionaries(s.payloads, s.payloads, max_size=4), "arguments")
            known = self.model.invocations.get(invocation_id)
            if known is not None:
                inv_dto, old_call = known
                call_dto = CallDTO(call_id=old_call.call_id, serialized_arguments=arguments)
            else:
                call_id = CallId(self.task_id("task"), self.ident("args id"))
                inv_dto = InvocationDTO(
                    invocation_id=InvocationId(invocation_id),
                    call_id=call_id,
                    workflow=self.workflow("workflow") if self.draw(st.booleans(), "in workflow") else None,
                    parent_invocation_id=self.maybe_ident("parent invocation"),
                    parent_event_id=self.maybe_ident("parent event"),
                )
                call_dto = CallDTO(call_id=call_id, serialized_arguments=arguments)
            self.model.invocations[invocation_id] = (inv_dto, call_dto)
            entries.append((inv_dto, call_dto))
        self.write("_upsert_invocations", entries)

    def add_history(self) -> None:
        ids = [
            InvocationId(self.ident("history invocation"))
            for _ in range(self.draw(st.integers(1, 3), "history batch"))
        ]
        record = InvocationStatusRecord(
            status=self.draw(st.sampled_from(list(InvocationStatus)), "status"),
            runner_id=self.maybe_ident("record runner"),
            timestamp=self.timestamp("record timestamp"),
        )
        history = InvocationHistory(
            invocation_id=ids[0],
            status_record=record,
            runner_context_id=self.ident("runner context id"),
            registered_by_inv_id=self.maybe_ident("registered by"),
        )
        history._timestamp = self.timestamp("history timestamp")
        self.ours._add_histories(ids, history)
        if self.draw(st.booleans(), "also in neighbour app"):
            self.neighbor._add_histories(ids, history)
        for invocation_id in ids:
            entry = history
            if invocation_id != history.invocation_id:
                entry = InvocationHistory(
                    invocation_id=invocation_id,
                    status_record=record,
                    runner_context_id=history.runner_context_id,
                    registered_by_inv_id=history.registered_by_inv_id,
                )
                entry._timestamp = history._timestamp
            self.mem._add_histories([invocation_id], entry)
            self.model.arrivals.append(entry)

    def set_payload(self) -> None:
        invocation_id = InvocationId(self.ident("payload owner"))
        value = self.draw(s.payloads, "payload")
        method = self.draw(st.sampled_from(["_set_result", "_set_exception"]), "payload kind")
        self.write(method, invocation_id, value)

    def store_context(self) -> None:
        self.write("store_runner_context", self.context())

    def store_workflow_run(self) -> None:
        self.write("store_workflow_run", self.workflow("run"))

    def store_sub_invocation(self) -> None:
        workflow_id = InvocationId(self.ident("sub workflow"))
        sub_id = InvocationId(self.ident("sub invocation"))
        self.write("store_workflow_sub_invocation", workflow_id, sub_id)

    def set_workflow_data(self) -> None:
        identity = self.workflow("data workflow")
        key = self.ident("data key")
        value = self.draw(s.workflow_values, "data value")
        self.write("set_workflow_data", identity, key, value)
        self.model.data_keys.append((identity, key))

    WRITES = (
        "upsert",
        "upsert",
        "add_history",
        "add_history",
        "set_payload",
        "store_context",
        "store_workflow_run",
        "store_sub_invocation",
        "set_workflow_data",
    )

    # -- comparisons ----------------------------------------------------------------------

    def check_invocation(self, invocation_id: str) -> None:
        inv = InvocationId(invocation_id)
        assert self.ours._get_invocation(inv) == self.mem._get_invocation(inv), inv
        assert self.ours.get_history(inv) == self.mem.get_history(inv), inv
        for method in (
            "get_child_invocations",
            "get_invocations_by_parent_event",
            "get_workflow_sub_invocations",
        ):
            ours = Counter(getattr(self.ours, method)(inv))
            assert ours == Counter(getattr(self.mem, method)(inv)), (method, inv)
            _note(method, ours)
        for method in ("_get_result", "_get_exception"):
            ours_answer = _answer(self.ours, method, inv)
            assert ours_answer == _answer(self.mem, method, inv), (method, inv)
            _note(method, ours_answer[0] == "value")

    def check_workflow_filters(self, workflow_id: str | None, type_key: str | None) -> None:
        ours = Counter(self.ours.get_invocation_ids_by_workflow(workflow_id, type_key))
        assert ours == Counter(self.mem.get_invocation_ids_by_workflow(workflow_id, type_key)), (
            workflow_id,
            type_key,
        )
        _note(
            f"get_invocation_ids_by_workflow(id={workflow_id is not None}, type={type_key is not None})", ours
        )

    def check_matching(self, partial: str) -> None:
        ours = sorted(c.to_json() for c in self.ours.get_matching_runner_contexts(partial))
        assert ours == sorted(c.to_json() for c in self.mem.get_matching_runner_contexts(partial)), partial
        _note("get_matching_runner_contexts", ours)

    def check_runner_contexts(self, runner_ids: list[str]) -> None:
        ours = self.ours._get_runner_contexts(runner_ids)
        assert ours == self.mem._get_runner_contexts(runner_ids), runner_ids
        _note("_get_runner_contexts", ours)

    def check_time_range(self, start: datetime, end: datetime, batch_size: int) -> None:
        ours_batches = list(self.ours.iter_history_in_timerange(start, end, batch_size))
        mem_batches = list(self.mem.iter_history_in_timerange(start, end, batch_size))
        ours = [h for b in ours_batches for h in b]
        mem = [h for b in mem_batches for h in b]
        assert [len(b) for b in ours_batches] == [len(b) for b in mem_batches], (start, end, batch_size)
        assert [h.timestamp for h in ours] == [h.timestamp for h in mem], (start, end)
        assert _tie_groups(ours) == _tie_groups(mem), (start, end)
        arrival_order = sorted(
            (h for h in self.model.arrivals if start <= h.timestamp <= end), key=lambda h: h.timestamp
        )  # sorted() is stable: arrival order among equal timestamps
        assert ours == arrival_order, (start, end)
        _note("iter_history_in_timerange", ours)
        if mem != arrival_order:
            event("Mem's iter_history_in_timerange left arrival order on a tie")

        ours_id_batches = list(self.ours.iter_invocations_in_timerange(start, end, batch_size))
        mem_id_batches = list(self.mem.iter_invocations_in_timerange(start, end, batch_size))
        ours_ids = [i for b in ours_id_batches for i in b]
        assert len(ours_ids) == len(set(ours_ids)), ours_ids
        assert set(ours_ids) == {i for b in mem_id_batches for i in b}, (start, end)
        assert [len(b) for b in ours_id_batches] == [len(b) for b in mem_id_batches], (start, end, batch_size)
        _note("iter_invocations_in_timerange", ours_ids)

    def check_workflows(self) -> None:
        ours_types = sorted(self.ours.get_all_workflow_types(), key=_task_key)
        assert ours_types == sorted(self.mem.get_all_workflow_types(), key=_task_key)
        ours_runs = sorted(self.ours.get_all_workflow_runs(), key=_run_key)
        assert ours_runs == sorted(self.mem.get_all_workflow_runs(), key=_run_key)
        _note("get_all_workflow_runs", ours_runs)
        for task in self.model.task_ids:
            ours = sorted(self.ours.get_workflow_runs(task), key=_run_key)
            assert ours == sorted(self.mem.get_workflow_runs(task), key=_run_key), task
            _note("get_workflow_runs", ours)

    def check_workflow_data(self, identity: WorkflowIdentity, key: str) -> None:
        ours = self.ours.get_workflow_data(identity, key, _MISSING)
        assert ours == self.mem.get_workflow_data(identity, key, _MISSING), (identity, key)
        _note("get_workflow_data", ours is not _MISSING)

    # -- random queries and the final sweep -----------------------------------------------

    def partial_runner_id(self) -> str:
        options = [s.identifiers, st.sampled_from(["*", "?", "-", "|", "\\", '"', " ", "\n", "~", "`", "^"])]
        runner_ids = list(self.model.contexts)
        if runner_ids:
            options.append(st.sampled_from(runner_ids).flatmap(_substrings))
        partial: str = self.draw(st.one_of(options), "partial runner id")
        return partial

    def time_range(self) -> tuple[datetime, datetime]:
        """A range around stored timestamps: one instant, empty, reversed or open-ended."""
        if self.draw(st.integers(0, 5), "open start") == 0:
            start = self.draw(s.range_bounds, "range start")
        else:
            start = self.timestamp("range start")
        ends = [st.just(start), s.range_bounds, s.timestamps]
        if 1 < start.year < 9999:
            ends.append(st.builds(lambda d: start + timedelta(microseconds=d), st.integers(-2, 10**7)))
        return start, self.draw(st.one_of(ends), "range end")

    def random_query(self) -> None:
        kind = self.draw(
            st.sampled_from(["invocation", "workflow", "matching", "contexts", "range", "workflows", "data"]),
            "query",
        )
        if kind == "invocation":
            self.check_invocation(self.ident("queried id"))
        elif kind == "workflow":
            workflow_id = self.maybe_ident("queried workflow")
            type_key = self.task_id("queried type").key if self.draw(st.booleans(), "by type") else None
            self.check_workflow_filters(workflow_id, type_key)
        elif kind == "matching":
            self.check_matching(self.partial_runner_id())
        elif kind == "contexts":
            self.check_runner_contexts(
                [self.ident("context id") for _ in range(self.draw(st.integers(0, 4), "n"))]
            )
        elif kind == "range":
            start, end = self.time_range()
            self.check_time_range(start, end, self.draw(st.integers(1, 7), "batch size"))
        elif kind == "workflows":
            self.check_workflows()
        else:
            if self.model.data_keys and self.draw(st.booleans(), "known data key"):
                identity, key = self.draw(st.sampled_from(self.model.data_keys), "data key")
            else:
                identity, key = self.workflow("queried data"), self.ident("queried key")
            self.check_workflow_data(identity, key)

    def check_everything(self) -> None:
        for value in self.model.pool:
            self.check_invocation(value)
            self.check_workflow_filters(value, None)
            self.check_matching(value)
        for task in self.model.task_ids:
            self.check_workflow_filters(None, task.key)
        for identity in self.model.workflows.values():
            self.check_workflow_filters(identity.workflow_id, identity.workflow_type.key)
        self.check_workflow_filters(None, None)
        self.check_runner_contexts(list(self.model.pool))
        for runner_id in self.model.contexts:
            for partial in {runner_id[:1], runner_id[-1:], runner_id[1:-1]} - {""}:
                self.check_matching(partial)
        self.check_workflows()
        for identity, key in self.model.data_keys:
            self.check_workflow_data(identity, key)
        times = sorted(self.model.times)
        if times:
            for batch_size in (1, 3):
                self.check_time_range(times[0], times[-1], batch_size)
            self.check_time_range(times[len(times) // 2], times[-1], 2)


def _redis_stack_backend(
    app_id: str, redis_url: str, page_size: int, register: bool
) -> RedisStackStateBackend:
    """Our backend for a new app built with the ``redis_stack`` builder plugin.

    :param register: Go through ``app.state_backend`` (which stores the app info) rather
        than constructing the backend directly.
    """
    app = (
        PynencBuilder()
        .app_id(app_id)
        .memory()
        .redis_stack(url=redis_url)
        .custom_config(redis_stack_batch_size=page_size)
        .build()
    )
    assert app.conf.state_backend_cls == RedisStackStateBackend.__name__
    backend = app.state_backend if register else RedisStackStateBackend(app)
    assert isinstance(backend, RedisStackStateBackend)
    return backend


def _substrings(value: str) -> st.SearchStrategy[str]:
    """Non-empty substrings of ``value``, single characters included."""
    return st.tuples(st.integers(0, len(value) - 1), st.integers(1, len(value))).map(
        lambda ij: value[ij[0] : ij[0] + ij[1]]
    )


def _answer(backend: BaseStateBackend, method: str, key: str) -> tuple[str, Any]:
    try:
        return ("value", getattr(backend, method)(key))
    except KeyError:
        return ("missing", None)


def _note(what: str, answer: Any) -> None:
    """Record for ``--hypothesis-show-statistics`` whether a lookup had something to find."""
    event(f"{what}: {'found' if answer else 'empty'}")


def _task_key(task: TaskId) -> tuple[str, str]:
    return (task.module, task.func_name)


def _run_key(run: WorkflowIdentity) -> tuple[str, str, str, bool, str]:
    return (
        run.workflow_id,
        run.workflow_type.module,
        run.workflow_type.func_name,
        run.parent_workflow_id is None,
        run.parent_workflow_id or "",
    )


def _tie_groups(entries: list[InvocationHistory]) -> list[list[str]]:
    """Entries grouped by timestamp, each group in a canonical order (order within ties ignored)."""
    return [
        sorted(_history_key(h) for h in group)
        for _ts, group in itertools.groupby(entries, key=lambda h: h.timestamp)
    ]


def _history_key(h: InvocationHistory) -> str:
    return repr(
        (
            h.invocation_id,
            h.timestamp.astimezone(UTC).isoformat(),
            h.status_record.to_json(),
            h.runner_context_id,
            h.registered_by_inv_id,
        )
    )


@pytest.mark.timeout(600)
@settings(
    max_examples=80,
    # no Phase.explain: re-running the shrunk case to explain it took minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_redis_stack_answers_like_mem(data: st.DataObject, redis_url: str) -> None:
    harness = Harness(data, redis_url)
    try:
        for _ in range(data.draw(st.integers(1, 25), label="steps")):
            if data.draw(st.integers(0, 3), label="write or query"):
                getattr(harness, data.draw(st.sampled_from(Harness.WRITES), label="write"))()
            else:
                harness.random_query()
        harness.check_everything()
    finally:
        harness.purge()


def test_workflow_members_exclude_invocations_outside_workflows(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    """Minimal case found by the property test: with neither filter,
    ``get_invocation_ids_by_workflow()`` must list only invocations that belong to a workflow."""
    mem = MemStateBackend(PynencBuilder().app_id(unique_app_id(request, "-mem")).memory().build())
    ours = _redis_stack_backend(unique_app_id(request), redis_url, 1000, register=False)
    try:
        call = CallId(TaskId("m", "f"), "a")
        outside = InvocationDTO(InvocationId("outside"), call, workflow=None, parent_invocation_id=None)
        inside = InvocationDTO(
            InvocationId("inside"),
            call,
            workflow=WorkflowIdentity(InvocationId("wf"), TaskId("m", "flow")),
            parent_invocation_id=None,
        )
        entries = [(outside, CallDTO(call)), (inside, CallDTO(call))]
        mem._upsert_invocations(entries)
        ours._upsert_invocations(entries)
        assert sorted(mem.get_invocation_ids_by_workflow()) == ["inside"]
        assert sorted(ours.get_invocation_ids_by_workflow()) == ["inside"]
    finally:
        ours.purge()
