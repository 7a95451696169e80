"""Differential property test: RedisStackStateBackend against pynenc's MemStateBackend.

Hypothesis draws random operation sequences over adversarial identifiers (RediSearch query
syntax, key separators, globs, edge whitespace, unicode, 2 KiB ids), applies each write to
both backends and compares every answer. Unordered answers are compared as multisets,
ordered ones exactly.

Adaptations to MemStateBackend (its quirks, not contract differences):

- ``_add_histories(ids, history)`` stores the *same* object under every id in Mem, so the
  entries of ids other than ``history.invocation_id`` carry a foreign ``invocation_id``.
  Mem gets one ``_add_histories([id], copy)`` per id instead (what pynenc's own
  ``add_histories`` does); ours gets the batch.
- An invocation's identity (call, parent, event, workflow) and a workflow's identity
  (type, parent) never change once drawn; re-upserts change only the arguments. Mem
  never unlinks a re-parented child, a case pynenc does not produce.
- ``iter_history_in_timerange``: Mem orders equal timestamps by dict order of invocation
  ids, not arrival order. Both must agree on the entries and on their timestamp order;
  ours must also keep arrival order among equal timestamps (checked against a model).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
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
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.backend import RedisStackStateBackend
from tests.integration import strategies as s

_counter = itertools.count()
_MISSING = object()


@dataclass
class Model:
    """What the test has written, to draw related ids and to check orders Mem cannot."""

    pool: list[str] = field(default_factory=list)
    invocations: dict[str, tuple[InvocationDTO, CallDTO]] = field(default_factory=dict)
    workflows: dict[str, WorkflowIdentity] = field(default_factory=dict)
    contexts: dict[str, RunnerContext] = field(default_factory=dict)
    data_keys: list[tuple[WorkflowIdentity, str]] = field(default_factory=list)
    task_ids: list[TaskId] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    arrivals: list[InvocationHistory] = field(default_factory=list)
    """Every history entry in arrival order (as our backend should return ties)."""

    def remember(self, *values: str | None) -> None:
        for value in values:
            if value is not None and value not in self.pool:
                self.pool.append(value)


class Harness:
    def __init__(self, data: st.DataObject, redis_url: str) -> None:
        self.data = data
        self.model = Model()
        n = next(_counter)
        app_text = data.draw(s.identifiers, label="app id text")
        ours_id = f"{app_text}#{n}"
        self.mem = PynencBuilder().app_id(f"prop-mem-{n}").memory().build().state_backend
        self.ours = PynencBuilder().app_id(ours_id).memory().redis_stack(url=redis_url).build().state_backend
        assert isinstance(self.mem, MemStateBackend)
        assert isinstance(self.ours, RedisStackStateBackend)
        assert self.ours.app.app_id == ours_id

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.data.draw(strategy, label=label)

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
        value = self.draw(st.one_of(options), label)
        self.model.remember(value)
        return value

    def maybe_ident(self, label: str) -> str | None:
        return self.ident(label) if self.draw(st.booleans(), f"has {label}") else None

    def task_id(self, label: str) -> TaskId:
        if self.model.task_ids and self.draw(st.booleans(), f"reuse {label}"):
            return self.draw(st.sampled_from(self.model.task_ids), label)
        task = TaskId(
            self.draw(s.module_names, f"{label} module"),
            self.draw(s.func_names, f"{label} func"),
        )
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
        moment = self.draw(st.one_of(options), label)
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
        self.mem._upsert_invocations(entries)
        self.ours._upsert_invocations(entries)

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
        if self.draw(st.booleans(), "result or exception"):
            self.mem._set_result(invocation_id, value)
            self.ours._set_result(invocation_id, value)
        else:
            self.mem._set_exception(invocation_id, value)
            self.ours._set_exception(invocation_id, value)

    def store_context(self) -> None:
        context = self.context()
        self.mem.store_runner_context(context)
        self.ours.store_runner_context(context)

    def store_workflow_run(self) -> None:
        identity = self.workflow("run")
        self.mem.store_workflow_run(identity)
        self.ours.store_workflow_run(identity)

    def store_sub_invocation(self) -> None:
        workflow_id = InvocationId(self.ident("sub workflow"))
        sub_id = InvocationId(self.ident("sub invocation"))
        self.mem.store_workflow_sub_invocation(workflow_id, sub_id)
        self.ours.store_workflow_sub_invocation(workflow_id, sub_id)

    def set_workflow_data(self) -> None:
        identity = self.workflow("data workflow")
        key = self.ident("data key")
        value = self.draw(s.workflow_values, "data value")
        self.mem.set_workflow_data(identity, key, value)
        self.ours.set_workflow_data(identity, key, value)
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
        assert Counter(self.ours.get_child_invocations(inv)) == Counter(
            self.mem.get_child_invocations(inv)
        ), inv
        assert Counter(self.ours.get_invocations_by_parent_event(invocation_id)) == Counter(
            self.mem.get_invocations_by_parent_event(invocation_id)
        ), invocation_id
        assert Counter(self.ours.get_workflow_sub_invocations(inv)) == Counter(
            self.mem.get_workflow_sub_invocations(inv)
        ), inv
        for getter in ("_get_result", "_get_exception"):
            assert _answer(getattr(self.ours, getter), inv) == _answer(getattr(self.mem, getter), inv), (
                getter,
                inv,
            )

    def check_workflow_filters(self, workflow_id: str | None, type_key: str | None) -> None:
        import os

        if os.environ.get("SKIPBUG") and not workflow_id and not type_key:
            return
        ours = Counter(self.ours.get_invocation_ids_by_workflow(workflow_id, type_key))
        mem = Counter(self.mem.get_invocation_ids_by_workflow(workflow_id, type_key))
        assert ours == mem, (workflow_id, type_key)

    def check_matching(self, partial: str) -> None:
        import os

        if os.environ.get("SKIPBUG") and "\n" in partial:
            return
        ours = sorted(c.to_json() for c in self.ours.get_matching_runner_contexts(partial))
        mem = sorted(c.to_json() for c in self.mem.get_matching_runner_contexts(partial))
        assert ours == mem, partial

    def check_runner_contexts(self, runner_ids: list[str]) -> None:
        assert self.ours._get_runner_contexts(runner_ids) == self.mem._get_runner_contexts(runner_ids), (
            runner_ids
        )

    def check_time_range(self, start: datetime, end: datetime, batch_size: int) -> None:
        ours_batches = list(self.ours.iter_history_in_timerange(start, end, batch_size))
        mem_batches = list(self.mem.iter_history_in_timerange(start, end, batch_size))
        ours = [h for b in ours_batches for h in b]
        mem = [h for b in mem_batches for h in b]
        assert [len(b) for b in ours_batches] == [len(b) for b in mem_batches]
        assert [h.timestamp for h in ours] == [h.timestamp for h in mem]
        assert _tie_groups(ours) == _tie_groups(mem), (start, end)
        expected = sorted(
            (h for h in self.model.arrivals if start <= h.timestamp <= end),
            key=lambda h: h.timestamp,
        )  # stable: arrival order among equal timestamps
        assert ours == expected, (start, end)

        ours_id_batches = list(self.ours.iter_invocations_in_timerange(start, end, batch_size))
        mem_id_batches = list(self.mem.iter_invocations_in_timerange(start, end, batch_size))
        ours_ids = [i for b in ours_id_batches for i in b]
        mem_ids = [i for b in mem_id_batches for i in b]
        assert len(ours_ids) == len(set(ours_ids)), ours_ids
        assert set(ours_ids) == set(mem_ids), (start, end)
        assert [len(b) for b in ours_id_batches] == [len(b) for b in mem_id_batches]

    def check_workflows(self) -> None:
        def type_key(t: TaskId) -> tuple[str, str]:
            return (t.module, t.func_name)

        def run_key(w: WorkflowIdentity) -> tuple[str, str, str, str]:
            return (
                w.workflow_id,
                w.workflow_type.module,
                w.workflow_type.func_name,
                w.parent_workflow_id or "\x00none",
            )

        assert sorted(self.ours.get_all_workflow_types(), key=type_key) == sorted(
            self.mem.get_all_workflow_types(), key=type_key
        )
        ours_runs = list(self.ours.get_all_workflow_runs())
        assert sorted(ours_runs, key=run_key) == sorted(self.mem.get_all_workflow_runs(), key=run_key)
        for task in self.model.task_ids:
            assert sorted(self.ours.get_workflow_runs(task), key=run_key) == sorted(
                self.mem.get_workflow_runs(task), key=run_key
            ), task

    def check_workflow_data(self, identity: WorkflowIdentity, key: str) -> None:
        assert self.ours.get_workflow_data(identity, key, _MISSING) == self.mem.get_workflow_data(
            identity, key, _MISSING
        ), (identity, key)

    def partial_runner_id(self) -> str:
        runner_ids = list(self.model.contexts)
        options = [s.identifiers, st.sampled_from(["*", "?", "-", "|", "\\", '"', " "])]
        if runner_ids:
            options.append(
                st.sampled_from(runner_ids).flatmap(
                    lambda r: st.tuples(st.integers(0, len(r) - 1), st.integers(1, len(r))).map(
                        lambda ij: r[ij[0] : ij[0] + ij[1]] or r
                    )
                )
            )
        return self.draw(st.one_of(options), "partial runner id")

    def time_range(self) -> tuple[datetime, datetime]:
        start = self.timestamp("range start")
        end = self.draw(
            st.one_of(
                st.just(start),
                st.builds(
                    lambda d: start + timedelta(microseconds=d),
                    st.integers(-2, 10**7),
                ),
                s.timestamps,
            ),
            "range end",
        )
        return start, end

    def random_query(self) -> None:
        kind = self.draw(
            st.sampled_from(["invocation", "workflow", "matching", "contexts", "range", "workflows", "data"]),
            "query",
        )
        if kind == "invocation":
            self.check_invocation(self.ident("queried id"))
        elif kind == "workflow":
            workflow_id = self.maybe_ident("queried workflow")
            type_key = None
            if self.draw(st.booleans(), "by type"):
                type_key = self.task_id("queried type").key
            self.check_workflow_filters(workflow_id, type_key)
        elif kind == "matching":
            self.check_matching(self.partial_runner_id())
        elif kind == "contexts":
            ids = [self.ident("context id") for _ in range(self.draw(st.integers(0, 4), "n"))]
            self.check_runner_contexts(ids)
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
        self.check_workflows()
        for identity, key in self.model.data_keys:
            self.check_workflow_data(identity, key)
        times = sorted(self.model.times)
        if times:
            for batch_size in (1, 3):
                self.check_time_range(times[0], times[-1], batch_size)
            self.check_time_range(times[len(times) // 2], times[-1], 2)


def _answer(getter: Any, key: str) -> tuple[str, Any]:
    try:
        return ("value", getter(key))
    except KeyError:
        return ("missing", None)


def _tie_groups(entries: list[InvocationHistory]) -> list[list[str]]:
    """Entries grouped by timestamp, each group in a canonical order (order within ties ignored)."""
    groups = []
    for _ts, group in itertools.groupby(entries, key=lambda h: h.timestamp):
        groups.append(sorted(_history_key(h) for h in group))
    return groups


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


@pytest.mark.timeout(300)
@settings(
    max_examples=int(__import__("os").environ.get("NEX", "80")),
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    if __import__("os").environ.get("NOSHRINK")
    else [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
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
        steps = data.draw(st.integers(1, 25), label="steps")
        for _ in range(steps):
            if data.draw(st.integers(0, 3), label="write or query"):
                getattr(harness, data.draw(st.sampled_from(Harness.WRITES), label="write"))()
            else:
                harness.random_query()
        harness.check_everything()
    finally:
        harness.ours.purge()
