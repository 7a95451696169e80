"""RedisStackOrchestrator: pynenc's orchestrator on RedisJSON documents and RediSearch indexes.

Per invocation one document (``orchestrator-invocation``) holds the current status, its owner,
retries and the invocation's concurrency keys; lookups by task, call, status, arguments and
age are index queries. A status change reads the document, validates the transition with
pynenc's own ``status_record_transition`` and writes it with a compare-and-set on the
document's ``status_version`` (one script): a writer that lost a race validates again against
what won, so two runners claiming one invocation cannot both succeed.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis
from pynenc import context
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.exceptions import InvocationNotFoundError, InvocationStatusError
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord, status_record_transition
from pynenc.orchestrator.atomic_service import (
    ActiveRunnerInfo,
    AtomicServiceExecution,
    AtomicServiceExecutionStatus,
    AtomicServiceRun,
)
from pynenc.orchestrator.base_orchestrator import BaseBlockingControl, BaseOrchestrator
from pynenc.runner.runner_context import RunnerContext
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.arrival import arrival_stamps, writer_number
from pynenc_redis_stack.core.codec import dumps, from_micros, validated
from pynenc_redis_stack.core.conf import ConfigOrchestratorRedisStack
from pynenc_redis_stack.core.contracts import QueueInspector
from pynenc_redis_stack.core.errors import ConcurrencyLockTimeoutError
from pynenc_redis_stack.core.reads import fetch_all
from pynenc_redis_stack.core.scripts import SlotCalls, json_text
from pynenc_redis_stack.orchestrator import scripts
from pynenc_redis_stack.orchestrator.atomic_services import AtomicServiceExecutions
from pynenc_redis_stack.orchestrator.blocking import RedisStackBlockingControl
from pynenc_redis_stack.orchestrator.child_heartbeats import ChildHeartbeats
from pynenc_redis_stack.orchestrator.documents import (
    argument_pair_tag,
    concurrency_digest,
    running_slot_of,
    status_record_of,
)
from pynenc_redis_stack.orchestrator.store import OrchestratorStore
from pynenc_redis_stack.orchestrator.stranded import ROUTABLE_STATUSES, find_stranded

if TYPE_CHECKING:
    from pynenc.app import Pynenc
    from pynenc.call import Call
    from pynenc.identifiers.call_id import CallId
    from pynenc.invocation.dist_invocation import DistributedInvocation
    from pynenc.task import Task, TaskId

    from pynenc_redis_stack.core.codec import Document
    from pynenc_redis_stack.core.keys import AppKeys, Namespace
    from pynenc_redis_stack.core.schema import IndexSpec

HEARTBEAT_RETENTION_MIN_MS = 24 * 3600 * 1000
"""A runner heartbeat document expires this long (or three dead-runner timeouts, if longer)
after its last heartbeat."""

MAX_STATUS_ATTEMPTS = 100
"""Compare-and-set attempts of one status change. Each lost attempt means another transition
of the same invocation came in between; every status chain is short and ends in a final status
(which refuses further transitions), so this bound is only a guard against a livelock."""

KNOWN_STATUS_DOCUMENTS = 10_000
"""Invocation documents this process last read or wrote, kept to validate the next status
change without reading first (:meth:`RedisStackOrchestrator._known`)."""


def running_slot_leases(
    client: redis.Redis, namespace: Namespace, spec: IndexSpec, keys: AppKeys
) -> set[str]:
    """The lease keys of every running-concurrency slot the app's invocations name (an index
    query over ``spec``, the orchestrator's invocations: a lease is found through the documents
    that name its slot).

    A lease outlives its slot's invocations only if a holder's process died between leaving
    RUNNING and releasing it, and every invocation of that slot was purged since: one small
    hash per such slot, taken over by the slot's next start.
    """
    steps = (*query.load_fields("task_id_key"), *query.has_value(spec, "running_slot"))
    request = query.Aggregate(namespace.alias(spec), query.where(spec, keys.app_id), steps)
    return {
        keys.running_holder(row["task_id_key"], row["running_slot"]) for row in fetch_all(client, request)
    }


class ResendableLock(Lock):
    """redis-py's :class:`~redis.lock.Lock` (blocking, token, expiry) whose acquisition and
    release may be sent again after a lost reply. redis-py's ``SET NX PX`` sent again finds
    its own token and reads as held by another (the router then waits out the lock's TTL);
    here each is a script that answers as its first run did (:data:`.scripts.ACQUIRE_LOCK`,
    :data:`.scripts.RELEASE_LOCK`)."""

    def do_acquire(self, token: str | bytes) -> bool:
        args = [_text(token), str(int(float(self.timeout or 0) * 1000))]
        return bool(scripts.acquire_lock_script.run(self.redis, [self.name], args))

    def do_release(self, expected_token: str | bytes) -> None:
        if not scripts.release_lock_script.run(self.redis, [self.name], [_text(expected_token)]):
            raise LockNotOwnedError("Cannot release a lock that's no longer owned", lock_name=self.name)


def _text(token: str | bytes) -> str:
    return token.decode() if isinstance(token, bytes) else token


class RedisStackOrchestrator(BaseOrchestrator):
    """pynenc orchestrator storing invocation status, ownership, retries, blocking edges,
    runner heartbeats and atomic-service executions as RedisJSON documents, queried through
    RediSearch indexes. Every runner sharing the server's URL (and namespace) sees one state.

    Select it with ``orchestrator_cls = "RedisStackOrchestrator"`` or
    ``PynencBuilder().redis_stack_orchestrator()``.
    """

    def __init__(self, app: Pynenc) -> None:
        super().__init__(app)
        self._blocking_control = RedisStackBlockingControl(self)
        self._child_heartbeats = ChildHeartbeats(self)
        # A runner reads an invocation's status, then changes it several times in a row
        # (pending, running, success): each change validates against the document last read or
        # written here; the compare-and-set on status_version refuses it if another writer
        # came in between (then the document is read, as without it). Saves a JSON.GET per change.
        # No lock: each access is one dict operation (atomic under the GIL), and a lock held
        # by another thread when a ProcessRunner forks would stay held in the child forever.
        self._known_documents: dict[str, Document] = {}
        # Final statuses set auto_purge_ts in the status script; pynenc's call of
        # set_up_invocation_auto_purge right after (same thread) then has nothing to send.
        self._purge_stamped = threading.local()

    @cached_property
    def conf(self) -> ConfigOrchestratorRedisStack:
        return ConfigOrchestratorRedisStack(
            config_values=self.app.config_values,
            config_filepath=self.app.config_filepath,
        )

    @cached_property
    def store(self) -> OrchestratorStore:
        return OrchestratorStore(self.conf, self.app.app_id)

    @cached_property
    def executions(self) -> AtomicServiceExecutions:
        return AtomicServiceExecutions(self.store, self.app)

    @property
    def blocking_control(self) -> BaseBlockingControl:
        return self._blocking_control

    def _key(self, invocation_id: str) -> str:
        return self.store.keys.orchestrator_invocation(invocation_id)

    def _ids(self, **tags: str) -> list[InvocationId]:
        return self._ids_of(self.store.where(self.store.schemas.invocations, **tags))

    def _ids_of(self, request_filter: query.Filter) -> list[InvocationId]:
        keys = self.store.matching_keys(self.store.schemas.invocations, request_filter)
        return [InvocationId(i) for i in self.store.keys.orchestrator_invocation_ids_of(keys)]

    # -- registration and status ---------------------------------------------------------

    def route_call(self, call: Call[Any, Any]) -> DistributedInvocation[Any, Any]:
        """Route ``call`` as pynenc does, atomically across hosts for registration concurrency.

        pynenc looks for a registered invocation of the call, then registers a new one if there
        is none: two routers doing that at once (two hosts, or two runners of one) would both
        register. With registration concurrency on, the look-up, the registration and the
        indexing of its arguments run under one lock per task and concurrency key, so the
        second router finds the first one's invocation.

        :raises ConcurrencyLockTimeoutError: If the lock stays held by another router for
            ``redis_stack_concurrency_lock_sec``.
        """
        concurrency = call.task.conf.registration_concurrency
        if concurrency == ConcurrencyControlType.DISABLED:
            return super().route_call(call)
        digest = concurrency_digest(call.serialized_args_for_concurrency_control(concurrency))
        with self._concurrency_lock(self.store.keys.registration_lock(call.task.task_id.key, digest)):
            return super().route_call(call)

    @contextmanager
    def _concurrency_lock(self, name: str) -> Iterator[None]:
        """Hold the lock ``name`` (:class:`ResendableLock`: redis-py's, acquired and released
        by scripts that may be sent again after a lost reply): a holder that dies blocks others
        ``redis_stack_concurrency_lock_sec`` at most.

        :raises ConcurrencyLockTimeoutError: If another holder keeps it that long.
        """
        seconds = float(self.conf.redis_stack_concurrency_lock_sec)
        lock = ResendableLock(self.store.client, name, timeout=seconds, blocking_timeout=seconds)
        try:
            acquired = lock.acquire()
        except LockError as exc:
            raise ConcurrencyLockTimeoutError(name, seconds) from exc
        if not acquired:
            raise ConcurrencyLockTimeoutError(name, seconds)
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # expired while held: the next holder already went on
                self.app.logger.warning(
                    f"concurrency lock {name} expired while held; raise "
                    "redis_stack_concurrency_lock_sec if routing or starting a task takes this long"
                )

    def _register_new_invocations(
        self,
        invocations: list[DistributedInvocation[Any, Any]],
        runner_id: str | None = None,
    ) -> InvocationStatusRecord:
        """Store each invocation as REGISTERED unless it is stored already (one script call per
        hash slot, a pipeline per batch; ``registered_seq``, the arrival stamp, orders them).

        The record's timestamp is the server's clock at registration.
        """
        record = status_record_transition(None, InvocationStatus.REGISTERED, runner_id)
        spec = self.store.schemas.invocations
        now = None
        for batch in itertools.batched(invocations, self.store.batch_size):
            calls = SlotCalls(scripts.register_invocations_script)
            writer = writer_number(self.store.client, self.store.namespace)
            for invocation, seq in zip(batch, arrival_stamps(len(batch), writer), strict=True):
                document = validated(
                    spec,
                    {
                        "app_id": self.app.app_id,
                        "invocation_id": invocation.invocation_id,
                        "task_id_key": invocation.task.task_id.key,
                        "call_id_key": invocation.call.call_id.key,
                        "status": record.status.value,
                        "runner_id": record.runner_id,
                        "status_version": 0,
                        "retries": 0,
                        "registered_seq": seq,
                        **running_slot_of(invocation),
                    },
                )
                calls.add([self._key(invocation.invocation_id)], [dumps(document)])
            now = calls.run_in(self.store.client.pipeline(transaction=False))[-1]
        return record if now is None else replace(record, timestamp=from_micros(int(now)))

    def _atomic_status_transition(
        self,
        invocation_id: InvocationId,
        status: InvocationStatus,
        runner_id: str | None = None,
    ) -> InvocationStatusRecord:
        """Validate the transition with pynenc's rules, then write it only if the status is
        still the one validated against (compare-and-set on ``status_version``).

        :raises InvocationStatusTransitionError: If pynenc forbids the transition.
        :raises InvocationStatusOwnershipError: If pynenc's ownership rules forbid it.
        :raises KeyError: If the invocation is not registered.
        """
        document = self._known(invocation_id) or self.store.read(self._key(invocation_id))
        if status is InvocationStatus.RUNNING and document is not None and document.get("running_slot"):
            record = self._start_under_running_concurrency(invocation_id, document, runner_id)
        else:
            record, replaced = self._write_status(invocation_id, status, runner_id, document)
            if replaced.get("running_slot") and replaced["status"] == InvocationStatus.RUNNING.value:
                scripts.release_running_slot_script.run(
                    self.store.client, [self._running_holder(replaced)], [self._key(invocation_id)]
                )
        self._child_heartbeats.follow(invocation_id, record)
        return record

    def _running_holder(self, document: Document) -> str:
        return self.store.keys.running_holder(document["task_id_key"], document["running_slot"])

    def _start_under_running_concurrency(
        self, invocation_id: InvocationId, document: Document, runner_id: str | None
    ) -> InvocationStatusRecord:
        """Move an invocation of a task with running concurrency to RUNNING only if no other
        invocation of its slot (task, or task and key arguments) is RUNNING under a live owner.

        pynenc checks the slot, then sets RUNNING: two runners (on two hosts) doing that at
        once would both run. Here the authority is the slot's lease (:meth:`_claim_running_slot`),
        claimed after the status compare-and-set, so a holder is always already RUNNING when
        another starter looks at it: of two starters, the one that claims second sees the
        first RUNNING and undoes its own write before pynenc runs anything. The lease and the
        status live in different hash slots (a cluster keeps the slots of one app on every
        shard), so no one script could hold both. The index query before it only spares the
        writes when the slot is visibly taken. An invocation refused is rerouted, as pynenc's
        own check reroutes it, and its RUNNING transition then fails with pynenc's
        InvocationStatusTransitionError (which the runner expects from a lost race).
        """
        task_key, slot = document["task_id_key"], document["running_slot"]
        running = self._ids(task_id_key=task_key, running_slot=slot, status=InvocationStatus.RUNNING.value)
        others = self._with_live_owners([other for other in running if other != invocation_id])
        if not others:
            record, replaced = self._write_status(
                invocation_id, InvocationStatus.RUNNING, runner_id, document
            )
            try:
                holder = self._claim_running_slot(invocation_id, replaced)
            except BaseException:  # no lease: a RUNNING status left behind would run unguarded
                self._undo_start(invocation_id, replaced)
                raise
            if holder is None:
                return record
            self._undo_start(invocation_id, replaced)
            others = [holder]
        self.app.logger.info(
            f"invocation:{invocation_id} not started: invocation:{others[0]} of its "
            "running-concurrency slot is running; rerouting"
        )
        self.reroute_invocations({invocation_id}, self._context_of(runner_id))
        return self._compare_and_set_status(invocation_id, InvocationStatus.RUNNING, runner_id, None)

    def _claim_running_slot(self, invocation_id: InvocationId, document: Document) -> InvocationId | None:
        """Take the slot's lease for ``invocation_id`` (just set RUNNING): free, held by
        itself, or held by an invocation that is no longer RUNNING or whose owner is dead
        (read here, outside any script: the holder lives in another hash slot; the claim then
        succeeds only if the lease still carries the token read with it).

        :return: None once the lease is taken, else the invocation holding it.
        """
        lease, mine = self._running_holder(document), self._key(invocation_id)
        stale_token = ""
        for _attempt in range(MAX_STATUS_ATTEMPTS):
            outcome, *held = scripts.claim_running_slot_script.run(
                self.store.client, [lease], [mine, uuid.uuid4().hex, stale_token]
            )
            if outcome == "ok":
                return None
            holder_key, holder_token = held
            holder = InvocationId(self.store.keys.orchestrator_invocation_ids_of([holder_key])[0])
            holder_document = self.store.read(holder_key)
            if (
                holder_document is not None
                and holder_document["status"] == InvocationStatus.RUNNING.value
                and self._with_live_owners([holder])
            ):
                return holder
            stale_token = holder_token
        raise RuntimeError(
            f"invocation:{invocation_id}: the lease of its running-concurrency slot changed hands "
            f"{MAX_STATUS_ATTEMPTS} times while it was claimed; other starters keep claiming it"
        )

    def _undo_start(self, invocation_id: InvocationId, replaced: Document) -> None:
        """Put back the status a start replaced (it lost its slot's lease: pynenc has run
        nothing and recorded nothing of it yet). A status moved on meanwhile is left alone."""
        self._forget(invocation_id)
        outcome, *_ = scripts.set_status_if_version_script.run(
            self.store.client,
            [self._key(invocation_id)],
            [
                str(int(replaced["status_version"]) + 1),
                json_text(replaced["status"]),
                json_text(replaced.get("runner_id")),
                json_text(uuid.uuid4().hex),
                "0",
            ],
        )
        if outcome != "ok":
            self.app.logger.warning(
                f"invocation:{invocation_id} lost its running-concurrency slot, and its status "
                f"changed before its start could be undone ({outcome})"
            )

    def _heartbeat_retention_ms(self) -> int:
        """How long a runner's heartbeat document outlives its last heartbeat: long past the
        point where the runner counts as dead (its RUNNING invocations are recovered by then),
        so a dead runner is still seen as dead, then its document goes."""
        return max(HEARTBEAT_RETENTION_MIN_MS, 3 * self._dead_after_micros() // 1000)

    def _dead_after_micros(self) -> int:
        return int(float(self.app.conf.runner_considered_dead_after_minutes) * 60 * 1_000_000)

    def _with_live_owners(self, invocation_ids: list[InvocationId]) -> list[InvocationId]:
        """The ids whose owner is not dead: a runner whose heartbeat document exists and is
        older than ``runner_considered_dead_after_minutes`` (server clock) is dead; one with no
        heartbeat document is not judged (some runners never send one)."""
        if not invocation_ids:
            return []
        documents = self.store.read_many([self._key(i) for i in invocation_ids])
        owners = {d["runner_id"] for d in documents if d is not None and isinstance(d.get("runner_id"), str)}
        if not owners:
            return list(invocation_ids)
        ordered = sorted(owners)
        heartbeats = self.store.read_many([self.store.keys.runner_heartbeat(o) for o in ordered])
        cutoff = self.store.server_micros() - self._dead_after_micros()
        dead = {
            owner
            for owner, heartbeat in zip(ordered, heartbeats, strict=True)
            if heartbeat is not None and int(heartbeat["last_heartbeat_ts"]) < cutoff
        }
        return [
            invocation_id
            for invocation_id, document in zip(invocation_ids, documents, strict=True)
            if document is not None and document.get("runner_id") not in dead
        ]

    def _is_authorize_by_concurrency_control(
        self, invocation: DistributedInvocation[Any, Any], statuses: list[InvocationStatus]
    ) -> bool:
        """pynenc's running-concurrency check, except that an invocation whose owner is dead
        (:meth:`_with_live_owners`) does not hold its slot: otherwise a runner killed while
        running pynenc's recovery task (running concurrency TASK) would keep every later
        recovery from running, for good."""
        concurrency = invocation.task.conf.running_concurrency
        if concurrency == ConcurrencyControlType.DISABLED:
            return True
        holders = self._with_live_owners(
            list(
                self.get_existing_invocations(
                    task=invocation.call.task,
                    key_serialized_arguments=invocation.call.serialized_args_for_concurrency_control(
                        concurrency
                    ),
                    statuses=statuses,
                )
            )
        )
        if not holders:
            return True
        invocation.task.logger.info(
            f"invocation:{invocation.invocation_id} deferred by concurrency_control: "
            f"invocation:{holders[0]} already in status:{statuses} "
            f"(concurrency_control={concurrency.value})"
        )
        return False

    def _context_of(self, runner_id: str | None) -> RunnerContext:
        """The runner context of ``runner_id``: this thread's when it is that runner's (as in a
        runner starting its invocation), else one naming it."""
        current = context.get_runner_context(self.app.app_id)
        if runner_id is None or (current is not None and current.runner_id == runner_id):
            return current or context.get_or_create_runner_context(self.app.app_id)
        return RunnerContext(runner_cls=type(self).__name__, runner_id=runner_id)

    def _compare_and_set_status(
        self,
        invocation_id: InvocationId,
        status: InvocationStatus,
        runner_id: str | None,
        document: Document | None,
    ) -> InvocationStatusRecord:
        """:meth:`_write_status`, for a caller that needs only the record written."""
        return self._write_status(invocation_id, status, runner_id, document)[0]

    def _write_status(
        self,
        invocation_id: InvocationId,
        status: InvocationStatus,
        runner_id: str | None,
        document: Document | None,
    ) -> tuple[InvocationStatusRecord, Document]:
        """Validate against the stored status (``document``, as just read, for the first
        attempt; None: read it), write if it is still the one validated.

        :return: The record written, and the document as it was before the write.
        """
        key = self._key(invocation_id)
        read_here = False
        for attempt in range(MAX_STATUS_ATTEMPTS):
            if attempt or document is None:
                document, read_here = self.store.read(key), True
            if document is None:
                raise KeyError(f"Invocation ID {invocation_id} not found")
            try:
                new_record = status_record_transition(status_record_of(document), status, runner_id)
            except InvocationStatusError:
                if read_here:
                    raise
                # validated against a kept document (or one read before this call), which
                # another writer may have changed since: refuse only what the stored one refuses
                document = None
                continue
            final = new_record.status.is_final()
            token = uuid.uuid4().hex
            args = [
                str(document["status_version"]),
                json_text(new_record.status.value),
                json_text(new_record.runner_id),
                json_text(token),
                "1" if final else "0",
            ]
            outcome, *reply = scripts.set_status_if_version_script.run(self.store.client, [key], args)
            if outcome == "ok":
                written = {
                    **document,
                    "status": new_record.status.value,
                    "runner_id": new_record.runner_id,
                    "status_ts": int(reply[0]),
                    "status_version": int(document["status_version"]) + 1,
                    "status_token": token,
                }
                if final:
                    written["auto_purge_ts"] = int(reply[0])
                    self._purge_stamps().add(invocation_id)
                self._remember(invocation_id, written)
                return replace(new_record, timestamp=from_micros(int(reply[0]))), document
            self._forget(invocation_id)
            if outcome == "missing":
                raise KeyError(f"Invocation ID {invocation_id} not found")
        raise RuntimeError(
            f"invocation:{invocation_id} changed status {MAX_STATUS_ATTEMPTS} times while setting "
            f"status:{status.value}; other writers keep changing it"
        )

    def get_invocation_status_record(self, invocation_id: InvocationId) -> InvocationStatusRecord:
        """:raises KeyError: If the invocation is not registered."""
        document = self.store.read(self._key(invocation_id))
        if document is None:
            raise KeyError(f"Invocation ID {invocation_id} not found")
        # a runner reads the status, then changes it: the change validates against this read
        self._remember(invocation_id, document)
        return status_record_of(document)

    def filter_by_status(
        self,
        invocation_ids: list[InvocationId],
        status_filter: frozenset[InvocationStatus],
    ) -> list[InvocationId]:
        """Keep the ids whose current status is in ``status_filter`` (one ``JSON.MGET`` per batch)."""
        if not invocation_ids or not status_filter:
            return []
        wanted = {status.value for status in status_filter}
        documents = self.store.read_many([self._key(i) for i in invocation_ids])
        return [
            invocation_id
            for invocation_id, document in zip(invocation_ids, documents, strict=True)
            if document is not None and document["status"] in wanted
        ]

    # -- retries -------------------------------------------------------------------------

    def increment_invocation_retries(self, invocation_id: InvocationId) -> None:
        """Count one retry (a script with a fresh token: sent again after a lost reply, it
        counts nothing the second time)."""
        token = json_text(uuid.uuid4().hex)
        scripts.increment_retries_script.run(self.store.client, [self._key(invocation_id)], [token])

    def get_invocation_retries(self, invocation_id: InvocationId) -> int:
        document = self.store.read(self._key(invocation_id))
        return 0 if document is None else int(document.get("retries", 0))

    # -- lookups -------------------------------------------------------------------------

    def get_existing_invocations(
        self,
        task: Task[Any, Any],
        key_serialized_arguments: dict[str, str] | None = None,
        statuses: list[InvocationStatus] | None = None,
    ) -> Iterator[InvocationId]:
        """Ids of ``task``'s invocations holding every given argument pair, in any of ``statuses``."""
        request_filter = self.store.where(self.store.schemas.invocations, task_id_key=task.task_id.key)
        for name, value in (key_serialized_arguments or {}).items():
            request_filter.tag("arg_pairs", argument_pair_tag(name, value))
        if statuses:
            request_filter.tag_in("status", [status.value for status in statuses])
        yield from self._ids_of(request_filter)

    def get_task_invocation_ids(self, task_id: TaskId) -> Iterator[InvocationId]:
        yield from self._ids(task_id_key=task_id.key)

    def get_call_invocation_ids(self, call_id: CallId) -> Iterator[InvocationId]:
        yield from self._ids(call_id_key=call_id.key)

    def _filter(self, task_id: TaskId | None, statuses: list[InvocationStatus] | None) -> query.Filter:
        request_filter = self.store.where(self.store.schemas.invocations)
        if task_id:
            request_filter.tag("task_id_key", task_id.key)
        if statuses:
            request_filter.tag_in("status", [status.value for status in statuses])
        return request_filter

    def get_invocation_ids_paginated(
        self,
        task_id: TaskId | None = None,
        statuses: list[InvocationStatus] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[InvocationId]:
        """A page of ids, newest registration first (a server-side counter orders them)."""
        keys = self.store.sorted_keys(
            self.store.schemas.invocations,
            self._filter(task_id, statuses),
            "registered_seq",
            descending=True,
            offset=offset,
            limit=limit,
        )
        return [InvocationId(i) for i in self.store.keys.orchestrator_invocation_ids_of(keys)]

    def count_invocations(
        self, task_id: TaskId | None = None, statuses: list[InvocationStatus] | None = None
    ) -> int:
        return self.store.count(self.store.schemas.invocations, self._filter(task_id, statuses))

    # -- concurrency control and purge ------------------------------------------------------

    def index_arguments_for_concurrency_control(self, invocation: DistributedInvocation[Any, Any]) -> None:
        """Store the digest of each serialized argument pair, for lookups by arguments or keys."""
        pairs = [
            argument_pair_tag(name, value) for name, value in invocation.call.serialized_arguments.items()
        ]
        scripts.set_if_exists_script.run(
            self.store.client,
            [self._key(invocation.invocation_id)],
            ["$.arg_pairs", json_text(pairs)],
        )

    def set_up_invocation_auto_purge(self, invocation_id: InvocationId) -> None:
        stamped = self._purge_stamps()
        if invocation_id in stamped:  # the final status change of this thread just did it
            stamped.discard(invocation_id)
            return
        scripts.mark_for_purge_script.run(self.store.client, [self._key(invocation_id)], [])

    def _purge_stamps(self) -> set[str]:
        """The invocations whose final status change this thread wrote, with auto_purge_ts,
        and whose set_up_invocation_auto_purge has not come yet (one at a time, in pynenc)."""
        stamps: set[str] | None = getattr(self._purge_stamped, "ids", None)
        if stamps is None:
            stamps = self._purge_stamped.ids = set()
        return stamps

    def _known(self, invocation_id: str) -> Document | None:
        """The document of ``invocation_id`` this process last read or wrote, if kept."""
        return self._known_documents.get(invocation_id)

    def _remember(self, invocation_id: str, document: Document) -> None:
        if len(self._known_documents) >= KNOWN_STATUS_DOCUMENTS:
            self._known_documents.clear()  # a bound, not a cache policy: the next change reads
        self._known_documents[invocation_id] = document

    def _forget(self, invocation_id: str) -> None:
        self._known_documents.pop(invocation_id, None)

    def auto_purge(self) -> None:
        """Delete invocations marked for purge at least ``auto_final_invocation_purge_hours`` ago."""
        hours = float(self.conf.auto_final_invocation_purge_hours)
        cutoff = self.store.server_micros() - int(hours * 3600 * 1_000_000)
        request_filter = self.store.where(self.store.schemas.invocations).at_most("auto_purge_ts", cutoff)
        keys = self.store.matching_keys(self.store.schemas.invocations, request_filter)
        for invocation_id in self.store.keys.orchestrator_invocation_ids_of(keys):
            self.release_waiters(InvocationId(invocation_id))
        self.store.unlink(keys)

    def purge(self) -> None:
        """Delete every orchestrator document of this app, the leases of the running slots
        its invocations name, and its atomic-service lease (and nothing of any other app)."""
        self._known_documents.clear()
        leases = running_slot_leases(
            self.store.client, self.store.namespace, self.store.schemas.invocations, self.store.keys
        )
        for spec in self.store.schemas.all():
            self.store.unlink(self.store.matching_keys(spec, self.store.where(spec)))
        self.store.unlink([*leases, self.store.keys.atomic_service_lease()])

    # -- runners and recovery ----------------------------------------------------------------

    def register_runner_heartbeats(
        self,
        runner_ids: list[str],
        can_run_atomic_service: bool = False,
        consumed_queues: Sequence[str] | None = None,
    ) -> None:
        """Create each runner's document on its first heartbeat, then move its last heartbeat
        (server clock) and settings; one script call per hash slot, a pipeline per batch."""
        store = self.store
        shared_args = [
            json_text(self.app.app_id),
            "1" if can_run_atomic_service else "0",
            json_text(list(consumed_queues or ())),
            str(self._heartbeat_retention_ms()),
        ]
        for batch in itertools.batched(dict.fromkeys(runner_ids), store.batch_size):
            calls = SlotCalls(scripts.heartbeats_script, shared_args)
            for runner_id in batch:
                calls.add([store.keys.runner_heartbeat(runner_id)], [json_text(runner_id)])
            calls.run_in(store.client.pipeline(transaction=False))

    def _get_active_runners(
        self, timeout_seconds: float, can_run_atomic_service: bool | None = None
    ) -> list[ActiveRunnerInfo]:
        """Runners whose last heartbeat is within ``timeout_seconds`` of the server's clock,
        ordered by creation time, then runner id."""
        cutoff = self.store.server_micros() - int(timeout_seconds * 1_000_000)
        spec = self.store.schemas.heartbeats
        request_filter = self.store.where(spec).at_least("last_heartbeat_ts", cutoff)
        if can_run_atomic_service is not None:
            flag = 1 if can_run_atomic_service else 0
            request_filter.between("atomic_service", flag, flag)
        runners = [
            ActiveRunnerInfo(
                runner_id=document["runner_id"],
                creation_time=from_micros(int(document["creation_ts"])),
                last_heartbeat=from_micros(int(document["last_heartbeat_ts"])),
                allow_to_run_atomic_service=bool(document["atomic_service"]),
                consumed_queues=tuple(document.get("consumed_queues", ())),
            )
            for document in self.store.documents(spec, request_filter)
        ]
        return sorted(runners, key=lambda runner: (runner.creation_time, runner.runner_id))

    def get_pending_invocations_for_recovery(self) -> Iterator[InvocationId]:
        """PENDING invocations whose status is older than ``max_pending_seconds`` (server clock)."""
        cutoff = self.store.server_micros() - int(float(self.app.conf.max_pending_seconds) * 1_000_000)
        request_filter = self.store.where(
            self.store.schemas.invocations, status=InvocationStatus.PENDING.value
        )
        yield from self._ids_of(request_filter.at_most("status_ts", cutoff))

    def _get_running_invocations_for_recovery(self, timeout_seconds: float) -> Iterator[InvocationId]:
        """RUNNING invocations whose owner has sent no heartbeat within ``timeout_seconds``."""
        alive = [runner.runner_id for runner in self._get_active_runners(timeout_seconds, None)]
        request_filter = self.store.where(
            self.store.schemas.invocations, status=InvocationStatus.RUNNING.value
        )
        if alive:
            request_filter.excluding(lambda owners: owners.tag_in("runner_id", alive))
        yield from self._ids_of(request_filter)

    def reroute_stranded_invocations(self, grace_seconds: float) -> list[InvocationId]:
        """Route again every invocation whose status has waited ``grace_seconds`` (server clock)
        for a route that never came: in a routable status with no queue entry and no taken
        entry, or left in a status pynenc sets just before rerouting (a writer died between
        the status write and the route, or its connection dropped).

        Found by :func:`~pynenc_redis_stack.orchestrator.stranded.find_stranded`. A duplicate
        route (a race with a slow router) is harmless: the runner skips a queue entry whose
        invocation another runner recorded first.

        :return: The ids routed again.
        """
        broker = self.app.broker
        if not isinstance(broker, QueueInspector):
            return []
        to_route: list[InvocationId] = []
        to_reroute: list[InvocationId] = []
        for invocation_id, status in find_stranded(self.store, broker.queued_and_taken_ids, grace_seconds):
            (to_route if status in ROUTABLE_STATUSES else to_reroute).append(invocation_id)
        routed = [i for i in to_route if self._route_one(i)]
        rerouted = [i for i in to_reroute if self._reroute_one(i)]
        swept = routed + rerouted
        if swept:
            self.app.logger.warning(
                f"{len(swept)} stranded invocation(s) (no queue entry for {grace_seconds:.0f} s) "
                f"routed again: {', '.join(swept[:10])}{' ...' if len(swept) > 10 else ''}"
            )
        return swept

    def _route_one(self, invocation_id: InvocationId) -> bool:
        try:
            invocation = self.app.state_backend.get_invocation(invocation_id)
        except InvocationNotFoundError as error:  # purged from the state backend: nothing could run it
            self.app.logger.warning(f"stranded invocation:{invocation_id} not routed: {error}")
            return False
        self.route_invocation(invocation)
        return True

    def _reroute_one(self, invocation_id: InvocationId) -> bool:
        try:
            self.reroute_invocations({invocation_id}, self._context_of(None))
        except InvocationStatusError as error:  # another writer moved it on first
            self.app.logger.info(f"stranded invocation:{invocation_id} not rerouted: {error}")
            return False
        return True

    # -- atomic-service executions (see atomic_services.py) -------------------------------------

    def try_claim_atomic_service_run(self, runner_ctx: RunnerContext) -> AtomicServiceRun | None:
        """pynenc's claim of this interval's atomic-service run (triggers, recovery); a
        connection error is logged and the claim tried again at the runner's next check.

        pynenc's runner ends its loop on any error here that is not a ``PynencError``: one
        dropped connection would stop the runner for good.
        """
        try:
            return super().try_claim_atomic_service_run(runner_ctx)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self.app.logger.warning(
                f"atomic-service claim of runner:{runner_ctx.runner_id} failed "
                f"({type(error).__name__}: {error}); tried again at the next check"
            )
            return None

    def record_atomic_service_execution_start(
        self,
        atomic_service_run: AtomicServiceRun,
        started_at: datetime | None,
        status: AtomicServiceExecutionStatus = AtomicServiceExecutionStatus.RUNNING,
        reason: str = "",
    ) -> bool:
        return self.executions.record_start(atomic_service_run, started_at, status, reason)

    def finalize_atomic_service_execution(
        self,
        atomic_service_run: AtomicServiceRun,
        end_time: datetime,
        status: AtomicServiceExecutionStatus,
        reason: str = "",
    ) -> None:
        self.executions.finalize(atomic_service_run, end_time, status, reason)

    def get_active_atomic_service_executions(self) -> list[AtomicServiceExecution]:
        return self.executions.active()

    def get_atomic_service_executions_in_timerange(
        self,
        start_time: datetime,
        end_time: datetime,
        limit: int = 1000,
        *,
        runner_id: str | None = None,
        min_duration_seconds: float = 0.0,
    ) -> list[AtomicServiceExecution]:
        return self.executions.in_timerange(
            start_time, end_time, limit, runner_id=runner_id, min_duration_seconds=min_duration_seconds
        )

    def purge_atomic_service_executions(self) -> int:
        return self.executions.purge()
