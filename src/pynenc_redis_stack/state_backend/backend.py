"""RedisStackStateBackend: pynenc's state backend on RedisJSON documents and RediSearch indexes.

Each record is one JSON document: a read by id is a key (:mod:`keys`) plus one JSON command,
and every lookup is a query (:mod:`query`) over the indexes declared in ``schemas/``; every
read goes through :class:`~pynenc_redis_stack.core.store.DocumentStore`. Lookups never scan
the keyspace, never filter on the client and never read a structure kept beside the documents.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus
from pynenc.state_backend.base_state_backend import BaseStateBackend, InvocationHistory

from pynenc_redis_stack.core import codec, query
from pynenc_redis_stack.core.arrival import writer_number
from pynenc_redis_stack.core.client import Client, run
from pynenc_redis_stack.core.conf import MAX_PAGE, ConfigStateBackendRedisStack
from pynenc_redis_stack.core.errors import InvalidDocumentError, check_batch_size
from pynenc_redis_stack.core.indexes import connect
from pynenc_redis_stack.core.keys import AppKeys, DocumentKind, Namespace
from pynenc_redis_stack.core.reads import fetch_complete
from pynenc_redis_stack.core.schema import Schemas, load_schemas
from pynenc_redis_stack.core.store import DocumentStore
from pynenc_redis_stack.state_backend import documents as docs
from pynenc_redis_stack.state_backend.purge import purge_state
from pynenc_redis_stack.state_backend.scripts import HistoryBatch
from pynenc_redis_stack.state_backend.writes import Command, DocumentWrites, send

if TYPE_CHECKING:
    from pynenc.app import AppInfo
    from pynenc.invocation.dist_invocation import DistributedInvocation
    from pynenc.invocation.status import InvocationStatusRecord
    from pynenc.models.call_dto import CallDTO
    from pynenc.models.invocation_dto import InvocationDTO
    from pynenc.runner.runner_context import RunnerContext
    from pynenc.workflow import WorkflowIdentity


FIRST_PAGE = 100
"""Matches asked for by the first ``FT.SEARCH`` of a lookup of a few (children, parent event,
a workflow run's members, one invocation's history): most answers fit, and a larger answer
costs one more search of exactly its size (see :meth:`~pynenc_redis_stack.core.store.DocumentStore.stream_keys`).
The server sizes its result heap by the limit: ``LIMIT 0 100`` took 20 µs of server time for
10 children where ``LIMIT 0 10000`` took 28 µs (docs/performance.md)."""


HISTORY_ORDER = ("ts", "seq")
"""History entries are ordered by time, then arrival (``seq``) on equal times."""


class RedisStackStateBackend(BaseStateBackend):
    """pynenc state backend storing invocations, history, runner contexts, workflows and app
    infos as RedisJSON documents, queried through RediSearch indexes.

    Select it with ``state_backend_cls = "RedisStackStateBackend"`` or
    ``PynencBuilder().redis_stack(url=...)``.
    """

    @cached_property
    def conf(self) -> ConfigStateBackendRedisStack:
        return ConfigStateBackendRedisStack(
            config_values=self.app.config_values,
            config_filepath=self.app.config_filepath,
        )

    @cached_property
    def store(self) -> DocumentStore[Schemas]:
        """This app's documents: every read goes through it."""
        return DocumentStore(self.conf, self.app.app_id, load_schemas())

    @property
    def namespace(self) -> Namespace:
        return self.store.namespace

    @property
    def keys(self) -> AppKeys:
        return self.store.keys

    @property
    def schemas(self) -> Schemas:
        return self.store.schemas

    @property
    def client(self) -> Client:
        """The Redis client; the first access checks the server and the indexes."""
        return self.store.client

    @cached_property
    def _writes(self) -> DocumentWrites:
        return DocumentWrites(self.keys, self.schemas)

    @property
    def batch_size(self) -> int:
        return self.store.batch_size

    # -- helpers -------------------------------------------------------------------------

    def _ids(self, kind: DocumentKind, id_field: str, **tags: str) -> Iterator[InvocationId]:
        spec = self.schemas.for_kind(kind)
        for row in self.store.rows(spec, self.store.where(spec, **tags), *query.load_fields(id_field)):
            yield InvocationId(row[id_field])

    def _invocation_ids(self, tags: dict[str, str], limit: int = FIRST_PAGE) -> Iterator[InvocationId]:
        """Stream the ids of this app's invocations with exact ``tags`` (unordered): their keys
        carry the ids, so no document is read (:meth:`DocumentStore.stream_keys`)."""
        spec = self.schemas.invocations
        keys = self.store.stream_keys(spec, self.store.where(spec, **tags), first_page=limit)
        return (InvocationId(self.keys.invocation_ids_of([key])[0]) for key in keys)

    def _write(self, command: Command) -> None:
        run(self.client, *command)

    def _get_value(self, key: str) -> str | None:
        """Return the ``value`` of a payload document, or None if there is none."""
        value = self.store.read_path(key, "$.value")
        return None if value is None else str(value)

    # -- purge ---------------------------------------------------------------------------

    def purge(self) -> None:
        """Delete this app's execution state (and nothing of any other app).

        The app's registration (its app info) stays, as with pynenc's MemStateBackend, so a
        running app remains discoverable.
        """
        purge_state(self.client, self.namespace, self.schemas, self.app.app_id, self.batch_size)
        self._runner_context_cache.clear()

    # -- invocations ---------------------------------------------------------------------

    def _upsert_invocations(self, entries: list[tuple[InvocationDTO, CallDTO]]) -> None:
        """Write a batch of invocation documents in one round trip (one script call, see
        :data:`~pynenc_redis_stack.state_backend.scripts.UPSERT_INVOCATIONS`)."""
        if not entries:
            return
        batch = self._writes.invocation_batch()
        for inv_dto, call_dto in entries:
            self._writes.add_invocation(batch, inv_dto, call_dto)
        batch.run_in(self.client.pipeline(transaction=False))

    def _get_invocation(self, invocation_id: InvocationId) -> tuple[InvocationDTO, CallDTO] | None:
        """One ``JSON.GET`` of the invocation document (None for a document holding only the
        status a history entry wrote before the invocation's upsert)."""
        fields = self.store.read(self.keys.invocation(invocation_id))
        if fields is None or "task_module" not in fields:
            return None
        return docs.invocation_from_document(fields)

    def _related(self, tags: dict[str, str], limit: int = FIRST_PAGE) -> Iterator[InvocationId]:
        """Stream the ids of this app's invocations with every tag value given (unordered)."""
        if not all(tags.values()):
            return iter(())  # never stored: empty identifiers are refused
        return self._invocation_ids(tags, limit)

    def get_child_invocations(self, parent_invocation_id: InvocationId) -> Iterator[InvocationId]:
        """Stream the ids of invocations whose parent is ``parent_invocation_id`` (unordered)."""
        return self._related({"parent_invocation_id": str(parent_invocation_id)})

    def get_invocations_by_parent_event(self, parent_event_id: str) -> Iterator[InvocationId]:
        """Stream the ids of invocations triggered by ``parent_event_id`` (unordered)."""
        return self._related({"parent_event_id": str(parent_event_id)})

    def get_invocation_ids_by_workflow(
        self, workflow_id: str | None = None, workflow_type_key: str | None = None
    ) -> Iterator[InvocationId]:
        """Stream ids of invocations in a workflow run, of a workflow type, or both (intersection).

        With neither, every invocation that belongs to some workflow.
        """
        tags = {}
        if workflow_id:
            tags["workflow_id"] = str(workflow_id)
        if workflow_type_key:
            tags["workflow_type_key"] = str(workflow_type_key)
        if workflow_id:
            return self._related(tags)
        if tags:
            # every run of a type: expected large, so one reply of up to MAX_PAGE
            return self._related(tags, MAX_PAGE)
        return self._workflow_members()

    def find_invocations(
        self,
        *,
        task_key: str | None = None,
        status: InvocationStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[tuple[InvocationId, InvocationStatus, datetime]]:
        """Stream invocations by task, current status and time of that status (operators' query).

        Example: ``find_invocations(task_key="app.tasks.send", status=InvocationStatus.FAILED,
        since=now - timedelta(hours=1))``. Unordered; one ``FT.AGGREGATE`` (plus cursor reads).

        :return: ``(invocation id, current status, time of that status)`` triples.
        """
        spec = self.schemas.invocations
        request_filter = self.store.where(spec)
        if task_key is not None:
            request_filter.tag("task_id_key", task_key)
        if status is not None:
            request_filter.tag("status", InvocationStatus(status).value)
        if since is not None or until is not None:
            low = codec.to_micros(since) if since is not None else codec.MIN_MICROS
            high = codec.to_micros(until) if until is not None else codec.MAX_MICROS
            request_filter.between("status_ts", low, high)
        steps = query.load_fields("invocation_id", "status", "status_ts")
        for row in self.store.rows(spec, request_filter, *steps):
            if "status" in row:  # invocations without history yet have no status
                yield (
                    InvocationId(row["invocation_id"]),
                    InvocationStatus(row["status"]),
                    codec.from_micros(int(row["status_ts"])),
                )

    def _workflow_members(self) -> Iterator[InvocationId]:
        spec = self.schemas.invocations
        steps = (*query.load_fields("invocation_id"), *query.has_value(spec, "workflow_id"))
        for row in self.store.rows(spec, self.store.where(spec), *steps):
            yield InvocationId(row["invocation_id"])

    # -- history -------------------------------------------------------------------------

    def _history_batch(self, histories: list[InvocationHistory]) -> HistoryBatch:
        """The history script call storing ``histories``, each under a new random key (the
        script skips an entry key that exists, so a re-send after a lost reply changes nothing)."""
        entries = (self._writes.history_entry(history) for history in histories)
        return self._writes.history_batch(entries, writer_number(self.client, self.namespace))

    def _record(
        self,
        histories: list[InvocationHistory],
        runner_context: RunnerContext | None = None,
    ) -> None:
        """Store runner contexts not stored yet and history entries, in one round trip."""
        if not histories:
            return
        new_contexts = []
        context = runner_context
        while context is not None:
            if context.runner_id not in self._runner_context_cache:
                new_contexts.append(context)
            context = context.parent_ctx
        commands = [self._writes.runner_context(context) for context in new_contexts]
        send(self.client.pipeline(transaction=False), commands, self._history_batch(histories))
        for context in new_contexts:
            self._runner_context_cache[context.runner_id] = context

    def add_histories(
        self,
        invocations: list[DistributedInvocation[Any, Any]],
        status_record: InvocationStatusRecord,
        runner_context: RunnerContext,
    ) -> None:
        """Record one status change for a batch of invocations in one round trip."""
        histories = [
            InvocationHistory(
                invocation_id=invocation.invocation_id,
                status_record=status_record,
                runner_context_id=runner_context.runner_id,
                registered_by_inv_id=invocation.parent_invocation_id
                if status_record.status == InvocationStatus.REGISTERED
                else None,
            )
            for invocation in invocations
        ]
        self._record(histories, runner_context)

    def add_history(
        self,
        invocation_id: InvocationId,
        status_record: InvocationStatusRecord,
        runner_context: RunnerContext,
    ) -> None:
        """Record one status change of one invocation in one round trip."""
        history = InvocationHistory(
            invocation_id=invocation_id,
            status_record=status_record,
            runner_context_id=runner_context.runner_id,
        )
        self._record([history], runner_context)

    def _add_histories(
        self, invocation_ids: list[InvocationId], invocation_history: InvocationHistory
    ) -> None:
        histories = []
        for invocation_id in invocation_ids:
            history = InvocationHistory(
                invocation_id=invocation_id,
                status_record=invocation_history.status_record,
                runner_context_id=invocation_history.runner_context_id,
                registered_by_inv_id=invocation_history.registered_by_inv_id,
            )
            history._timestamp = invocation_history.timestamp
            histories.append(history)
        self._record(histories)

    def _get_history(self, invocation_id: InvocationId) -> list[InvocationHistory]:
        """Return the history in timestamp order (arrival order on equal timestamps).

        One ``FT.SEARCH`` of the invocation's entries (sorted here: an invocation has a few),
        seek pages in ``(ts, seq)`` order when they exceed one reply.
        """
        spec = self.schemas.history
        request_filter = self.store.where(spec, invocation_id=str(invocation_id))
        bounds = (codec.MIN_MICROS, codec.MAX_MICROS)
        entries = self.store.ordered_documents(
            spec, request_filter, HISTORY_ORDER, bounds, first_page=FIRST_PAGE
        )
        return [docs.history_from_document(entry) for entry in entries]

    def iter_history_in_timerange(
        self, start_time: datetime, end_time: datetime, batch_size: int = 100
    ) -> Iterator[list[InvocationHistory]]:
        """Stream every entry with ``start_time <= timestamp <= end_time`` in timestamp order.

        Seek pages of ``max(batch_size, redis_stack_batch_size)`` entries over the history
        index (:meth:`~pynenc_redis_stack.core.store.DocumentStore.seek_pages`), cut into
        batches of ``batch_size``.
        """
        check_batch_size(batch_size)
        bounds = (codec.to_micros(start_time), codec.to_micros(end_time))
        page_size = min(max(batch_size, self.batch_size), MAX_PAGE)
        spec = self.schemas.history
        pages = self.store.seek_pages(spec, self.store.where(spec), HISTORY_ORDER, bounds, page_size)
        entries = (docs.history_from_document(entry) for page in pages for entry in page)
        for batch in itertools.batched(entries, batch_size):
            yield list(batch)

    def iter_invocations_in_timerange(
        self, start_time: datetime, end_time: datetime, batch_size: int = 100
    ) -> Iterator[list[InvocationId]]:
        """Stream the ids of invocations with history in the range, each exactly once (unordered)."""
        check_batch_size(batch_size)
        spec = self.schemas.history
        request_filter = self.store.where(spec).between(
            "ts", codec.to_micros(start_time), codec.to_micros(end_time)
        )
        steps = query.group_by("invocation_id")
        rows = self.store.rows(spec, request_filter, *steps, batch_size=min(batch_size, MAX_PAGE))
        for batch in itertools.batched((InvocationId(row["invocation_id"]) for row in rows), batch_size):
            yield list(batch)

    # -- results and exceptions ----------------------------------------------------------

    def _set_result(self, invocation_id: InvocationId, serialized_result: str) -> None:
        self._write(self._writes.result(invocation_id, serialized_result))

    def _get_result(self, invocation_id: InvocationId) -> str:
        return self._get_payload(DocumentKind.RESULT, self.keys.result(invocation_id), invocation_id)

    def _set_exception(self, invocation_id: InvocationId, serialized_exception: str) -> None:
        self._write(self._writes.exception(invocation_id, serialized_exception))

    def _get_exception(self, invocation_id: InvocationId) -> str:
        return self._get_payload(DocumentKind.EXCEPTION, self.keys.exception(invocation_id), invocation_id)

    def _get_payload(self, kind: DocumentKind, key: str, invocation_id: InvocationId) -> str:
        value = self._get_value(key)
        if value is None:
            raise KeyError(f"no {kind} stored for invocation {invocation_id!r}")
        return value

    # -- workflows -----------------------------------------------------------------------

    def set_workflow_data(self, workflow_identity: WorkflowIdentity, key: str, value: Any) -> None:
        workflow_id = workflow_identity.workflow_id
        try:
            serialized = self.app.serializer.serialize(value)
        except RecursionError as exc:
            raise InvalidDocumentError(
                f"workflow data {key!r} of workflow {workflow_id!r} is nested too deeply for "
                f"{type(self.app.serializer).__name__} (Python's recursion limit); nothing was "
                "stored. Store it flatter (e.g. a list of records instead of nested levels)."
            ) from exc
        self._write(self._writes.workflow_data(workflow_id, key, serialized))

    def get_workflow_data(self, workflow_identity: WorkflowIdentity, key: str, default: Any = None) -> Any:
        serialized = self._get_value(self.keys.workflow_data(workflow_identity.workflow_id, key))
        if serialized is None:
            return default
        return self.app.serializer.deserialize(serialized)

    def store_workflow_run(self, workflow_identity: WorkflowIdentity) -> None:
        self._write(self._writes.workflow_run(workflow_identity))

    def get_all_workflow_types(self) -> Iterator[TaskId]:
        """Stream each workflow type with at least one stored run, once."""
        spec = self.schemas.workflow_runs
        steps = (
            *query.load_paths(module="$.workflow_type_module", func="$.workflow_type_func"),
            *query.group_by("workflow_type_key", "module", "func"),
        )
        for row in self.store.rows(spec, self.store.where(spec), *steps):
            yield TaskId(row["module"], row["func"])

    def get_all_workflow_runs(self) -> Iterator[WorkflowIdentity]:
        spec = self.schemas.workflow_runs
        for document in self.store.documents(spec, self.store.where(spec)):
            yield docs.workflow_run_from_document(document)

    def get_workflow_runs(self, workflow_type: TaskId) -> Iterator[WorkflowIdentity]:
        spec = self.schemas.workflow_runs
        request_filter = self.store.where(spec, workflow_type_key=workflow_type.key)
        for document in self.store.documents(spec, request_filter):
            yield docs.workflow_run_from_document(document)

    def store_workflow_sub_invocation(
        self, parent_workflow_id: InvocationId, sub_invocation_id: InvocationId
    ) -> None:
        self._write(self._writes.workflow_sub_invocation(parent_workflow_id, sub_invocation_id))

    def get_workflow_sub_invocations(self, workflow_id: InvocationId) -> Iterator[InvocationId]:
        return self._ids(
            DocumentKind.WORKFLOW_SUB_INVOCATION,
            "sub_invocation_id",
            workflow_id=str(workflow_id),
        )

    # -- apps ----------------------------------------------------------------------------

    def store_app_info(self, app_info: AppInfo) -> None:
        self._write(self._writes.app_info(app_info))

    def get_app_info(self) -> AppInfo:
        document = self.store.read(self.keys.app_info())
        if document is None:
            raise ValueError(f"No app info found for app_id '{self.app.app_id}'")
        return docs.app_info_from_document(document)

    @staticmethod
    def discover_app_infos() -> dict[str, AppInfo]:
        """Return every app registered on the server of the default configuration."""
        conf = ConfigStateBackendRedisStack()
        namespace = Namespace(conf.redis_stack_namespace)
        schemas = load_schemas()
        client = connect(conf, schemas)
        request = query.Aggregate(
            namespace.alias(schemas.app_infos),
            query.Filter(schemas.app_infos),
            tuple(query.LOAD_DOCUMENT),
        )
        infos = {}
        for row in fetch_complete(client, request):
            info = docs.app_info_from_document(codec.loads(row["doc"]))
            infos[info.app_id] = info
        return infos

    # -- runner contexts -----------------------------------------------------------------

    def _store_runner_context(self, runner_context: RunnerContext) -> None:
        self._write(self._writes.runner_context(runner_context))

    def _get_runner_context(self, runner_id: str) -> RunnerContext | None:
        contexts = self._get_runner_contexts([runner_id])
        return contexts[0] if contexts else None

    def _get_runner_contexts(self, runner_ids: list[str]) -> list[RunnerContext]:
        documents = self.store.read_many([self.keys.runner_context(r) for r in runner_ids])
        return [docs.runner_context_from_document(document) for document in documents if document is not None]

    def get_matching_runner_contexts(self, partial_id: str) -> Iterator[RunnerContext]:
        """Stream runner contexts whose id contains ``partial_id`` (literal, case-sensitive)."""
        spec = self.schemas.runner_contexts
        steps = query.contains(spec, "runner_id", partial_id)
        for document in self.store.documents(spec, self.store.where(spec), *steps):
            yield docs.runner_context_from_document(document)
