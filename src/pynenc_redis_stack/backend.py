"""RedisStackStateBackend: pynenc's state backend on RedisJSON documents and RediSearch indexes.

Each method is a key (:mod:`keys`) plus a document (:mod:`documents`) plus one JSON command,
or a query (:mod:`query`) run by :mod:`search`. Lookups never scan the keyspace and never
filter on the client: the indexes declared in ``schemas/`` answer them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus
from pynenc.state_backend.base_state_backend import BaseStateBackend, InvocationHistory

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack import query
from pynenc_redis_stack.client import Client, run
from pynenc_redis_stack.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.errors import InvalidDocumentError
from pynenc_redis_stack.keys import EXCEPTION, RESULT, WORKFLOW_DATA, AppKeys, Namespace
from pynenc_redis_stack.lifecycle import connect
from pynenc_redis_stack.prune import MAX_PRUNE_BATCH, PruneReport, prune_invocations
from pynenc_redis_stack.schema import Schemas, load_schemas
from pynenc_redis_stack.scripts import HistoryBatch
from pynenc_redis_stack.search import PreparedSearch, fetch_all, fetch_complete, iter_cursor, iter_seek

if TYPE_CHECKING:
    from pynenc.app import AppInfo, Pynenc
    from pynenc.invocation.dist_invocation import DistributedInvocation
    from pynenc.invocation.status import InvocationStatusRecord
    from pynenc.models.call_dto import CallDTO
    from pynenc.models.invocation_dto import InvocationDTO
    from pynenc.runner.runner_context import RunnerContext
    from pynenc.workflow import WorkflowIdentity

MAX_PAGE = 10_000
"""Largest page a single query may return (Redis Stack's ``MAXSEARCHRESULTS`` and
``MAXAGGREGATERESULTS``; a server with lower caps is detected and followed)."""


def _order(listed: tuple[tuple[int, int], InvocationHistory]) -> tuple[int, int]:
    return listed[0]


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


class RedisStackStateBackend(BaseStateBackend):
    """pynenc state backend storing invocations, history, runner contexts, workflows and app
    infos as RedisJSON documents, queried through RediSearch indexes.

    Select it with ``state_backend_cls = "RedisStackStateBackend"`` or
    ``PynencBuilder().redis_stack(url=...)``.
    """

    def __init__(self, app: Pynenc) -> None:
        super().__init__(app)
        self._client: Client | None = None
        self._prepared_searches: dict[tuple[str, ...], PreparedSearch] = {}

    @cached_property
    def conf(self) -> ConfigStateBackendRedisStack:
        return ConfigStateBackendRedisStack(
            config_values=self.app.config_values,
            config_filepath=self.app.config_filepath,
        )

    @cached_property
    def namespace(self) -> Namespace:
        return Namespace(self.conf.redis_stack_namespace)

    @cached_property
    def keys(self) -> AppKeys:
        return self.namespace.for_app(self.app.app_id)

    @cached_property
    def schemas(self) -> Schemas:
        return load_schemas()

    @property
    def client(self) -> Client:
        """The Redis client; the first access checks the server and the indexes."""
        if self._client is None:
            self._client = connect(self.conf, self.schemas)
        return self._client

    @cached_property
    def _history_search(self) -> PreparedSearch:
        """An invocation's history entries, when they fit one page."""
        request_filter = query.where(self.schemas.history, self.app.app_id, invocation_id="?")
        return PreparedSearch(query.Search(self._alias("history"), request_filter, self.page_size))

    @property
    def page_size(self) -> int:
        return max(1, min(int(self.conf.redis_stack_batch_size), MAX_PAGE))

    # -- helpers -------------------------------------------------------------------------

    def _alias(self, spec_name: str) -> str:
        return self.namespace.alias(getattr(self.schemas, spec_name))

    def _ids(self, spec_name: str, id_field: str, **tags: str) -> Iterator[InvocationId]:
        spec = getattr(self.schemas, spec_name)
        request = query.Aggregate(
            self._alias(spec_name),
            query.where(spec, self.app.app_id, **tags),
            query.load_fields(id_field),
        )
        for row in fetch_all(self.client, request, self.page_size):
            yield InvocationId(row[id_field])

    def _invocation_ids(self, **tags: str) -> Iterator[InvocationId]:
        """Stream the ids of this app's invocations with exact ``tags`` (unordered).

        One ``FT.SEARCH NOCONTENT`` whose keys carry the ids when the answer fits one reply
        (no document is read); a cursor over the index otherwise.
        """
        names = tuple(tags)
        search = self._prepared_searches.get(names)
        if search is None:
            placeholders = dict.fromkeys(names, "?")
            request_filter = query.where(self.schemas.invocations, self.app.app_id, **placeholders)
            request = query.Search(self._alias("invocations"), request_filter, limit=MAX_PAGE, keys_only=True)
            search = self._prepared_searches[names] = PreparedSearch(request)
        keys = search(self.client, *tags.values())
        if keys is None:
            return self._ids("invocations", "invocation_id", **tags)
        return iter([InvocationId(invocation_id) for invocation_id in self.keys.invocation_ids_of(keys)])

    def _documents(
        self, spec_name: str, request_filter: query.Filter, *steps: str
    ) -> Iterator[docs.Document]:
        request = query.Aggregate(self._alias(spec_name), request_filter, (*steps, *query.LOAD_DOCUMENT))
        for row in fetch_all(self.client, request, self.page_size):
            yield docs.loads(row["doc"])

    def _set_document(self, key: str, spec_name: str, document: docs.Document) -> None:
        run(
            self.client,
            "JSON.SET",
            key,
            "$",
            docs.dumps(docs.validated(getattr(self.schemas, spec_name), document)),
        )

    def _get_value(self, key: str) -> str | None:
        """Return the ``value`` of a payload document, or None if there is none."""
        raw = run(self.client, "JSON.GET", key, "$.value")
        if raw is None:
            return None
        values = docs.loads(raw)
        return str(values[0]) if values else None

    # -- purge ---------------------------------------------------------------------------

    def purge(self) -> None:
        """Delete this app's execution state (and nothing of any other app).

        The app's registration (its app info) stays, as with pynenc's MemStateBackend, so a
        running app remains discoverable.
        """
        for spec in self.schemas.all():
            if spec is self.schemas.app_infos:
                continue
            request = query.Aggregate(
                self.namespace.alias(spec),
                query.where(spec, self.app.app_id),
                tuple(query.LOAD_KEY),
            )
            for rows in iter_cursor(self.client, request, self.page_size):
                keys = [row["__key"] for row in rows]
                if spec is self.schemas.invocations:
                    keys += self.keys.history_lists_of(keys)
                self.client.unlink(*keys)
        self.client.unlink(self.keys.prune_pending_workflows())
        self._runner_context_cache.clear()

    # -- invocations ---------------------------------------------------------------------

    def _upsert_invocations(self, entries: list[tuple[InvocationDTO, CallDTO]]) -> None:
        """Write a batch of invocations in one round trip (one MULTI/EXEC).

        Per invocation: create an empty document if there is none (so the merge below never
        stores ``null`` s, which ``exists()`` would count as values), ``JSON.MERGE`` the fields
        (``null`` deletes; the status owned by history writes is kept), then replace the
        arguments whole (a merge would keep stale argument names).
        """
        if not entries:
            return
        spec = self.schemas.invocations
        pipe = self.client.pipeline(transaction=True)
        for inv_dto, call_dto in entries:
            document = docs.validated(spec, docs.invocation_document(self.app.app_id, inv_dto, call_dto))
            key = self.keys.invocation(inv_dto.invocation_id)
            run(pipe, "JSON.SET", key, "$", docs.EMPTY_INVOCATION, "NX")
            run(pipe, "JSON.MERGE", key, "$", docs.dumps(document))
            run(
                pipe,
                "JSON.SET",
                key,
                "$.serialized_arguments",
                docs.dumps(dict(call_dto.serialized_arguments)),
            )
        pipe.execute()

    def _get_invocation(self, invocation_id: InvocationId) -> tuple[InvocationDTO, CallDTO] | None:
        raw = run(self.client, "JSON.GET", self.keys.invocation(invocation_id))
        if raw is None:
            return None
        document = docs.loads(raw)
        if "task_module" not in document:
            return None  # only a status written before the upsert
        return docs.invocation_from_document(document)

    def get_child_invocations(self, parent_invocation_id: InvocationId) -> Iterator[InvocationId]:
        """Stream the ids of invocations whose parent is ``parent_invocation_id`` (unordered)."""
        return self._invocation_ids(parent_invocation_id=str(parent_invocation_id))

    def get_invocations_by_parent_event(self, parent_event_id: str) -> Iterator[InvocationId]:
        """Stream the ids of invocations triggered by ``parent_event_id`` (unordered)."""
        return self._invocation_ids(parent_event_id=str(parent_event_id))

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
        if tags:
            return self._invocation_ids(**tags)
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
        request_filter = query.where(spec, self.app.app_id)
        if task_key is not None:
            request_filter.tag("task_id_key", task_key)
        if status is not None:
            request_filter.tag("status", InvocationStatus(status).value)
        if since is not None or until is not None:
            low = docs.to_micros(since) if since is not None else docs.MIN_MICROS
            high = docs.to_micros(until) if until is not None else docs.MAX_MICROS
            request_filter.between("status_ts", low, high)
        steps = query.load_fields("invocation_id", "status", "status_ts")
        request = query.Aggregate(self._alias("invocations"), request_filter, steps)
        for row in fetch_all(self.client, request, self.page_size):
            if "status" in row:  # invocations without history yet have no status
                yield (
                    InvocationId(row["invocation_id"]),
                    InvocationStatus(row["status"]),
                    docs.from_micros(int(row["status_ts"])),
                )

    def _workflow_members(self) -> Iterator[InvocationId]:
        spec = self.schemas.invocations
        steps = (*query.load_fields("invocation_id"), *query.has_value(spec, "workflow_id"))
        request = query.Aggregate(self._alias("invocations"), query.where(spec, self.app.app_id), steps)
        for row in fetch_all(self.client, request, self.page_size):
            yield InvocationId(row["invocation_id"])

    # -- history -------------------------------------------------------------------------

    def _history_batch(self, histories: list[InvocationHistory]) -> HistoryBatch:
        batch = HistoryBatch(self.namespace.history_seq())
        for history in histories:
            entry = docs.validated(self.schemas.history, docs.history_document(self.app.app_id, history))
            entry_key = self.keys.history(history.invocation_id, uuid.uuid4().hex)
            invocation_id = history.invocation_id
            batch.add(
                self.keys.invocation(invocation_id), entry_key, self.keys.history_list(invocation_id), entry
            )
        return batch

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
        pipe = self.client.pipeline(transaction=False)
        for context in new_contexts:
            document = docs.validated(
                self.schemas.runner_contexts,
                docs.runner_context_document(self.app.app_id, context),
            )
            run(
                pipe,
                "JSON.SET",
                self.keys.runner_context(context.runner_id),
                "$",
                docs.dumps(document),
            )
        self._history_batch(histories).run_in(pipe)
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

    def _history_pages(
        self, request_filter: query.Filter, bounds: tuple[int, int], page_size: int
    ) -> Iterator[list[InvocationHistory]]:
        request = query.Aggregate(self._alias("history"), request_filter)
        for page in iter_seek(self.client, request, ("ts", "seq"), bounds, page_size):
            yield [docs.history_from_document(entry) for entry in page]

    def _get_history(self, invocation_id: InvocationId) -> list[InvocationHistory]:
        """Return the history in timestamp order (arrival order on equal timestamps).

        One ``LRANGE`` of the invocation's history list. Invocations stored before 0.2 have
        none (nor does one without any entry yet): their entries are found through the history
        index (one ``FT.SEARCH``, or seek pages if more than one reply holds).
        """
        listed = run(self.client, "LRANGE", self.keys.history_list(invocation_id), "0", "-1")
        if listed:
            entries = sorted((docs.history_from_listed(text, invocation_id) for text in listed), key=_order)
            return [entry for _order_key, entry in entries]
        matches = self._history_search(self.client, str(invocation_id))
        if matches is None:
            request_filter = query.where(
                self.schemas.history, self.app.app_id, invocation_id=str(invocation_id)
            )
            pages = self._history_pages(request_filter, (docs.MIN_MICROS, docs.MAX_MICROS), self.page_size)
            return [entry for page in pages for entry in page]
        matches.sort(key=lambda entry: (entry["ts"], entry["seq"]))
        return [docs.history_from_document(entry) for entry in matches]

    def iter_history_in_timerange(
        self, start_time: datetime, end_time: datetime, batch_size: int = 100
    ) -> Iterator[list[InvocationHistory]]:
        """Stream every entry with ``start_time <= timestamp <= end_time`` in timestamp order.

        Pages of ``max(batch_size, redis_stack_batch_size)`` entries are cut into batches of
        ``batch_size``.
        """
        _check_batch_size(batch_size)
        bounds = (docs.to_micros(start_time), docs.to_micros(end_time))
        request_filter = query.where(self.schemas.history, self.app.app_id)
        page_size = min(max(batch_size, self.page_size), MAX_PAGE)
        pages = self._history_pages(request_filter, bounds, page_size)
        for batch in itertools.batched((entry for page in pages for entry in page), batch_size):
            yield list(batch)

    def iter_invocations_in_timerange(
        self, start_time: datetime, end_time: datetime, batch_size: int = 100
    ) -> Iterator[list[InvocationId]]:
        """Stream the ids of invocations with history in the range, each exactly once (unordered)."""
        _check_batch_size(batch_size)
        request_filter = query.where(self.schemas.history, self.app.app_id).between(
            "ts", docs.to_micros(start_time), docs.to_micros(end_time)
        )
        request = query.Aggregate(self._alias("history"), request_filter, query.group_by("invocation_id"))
        rows = fetch_all(self.client, request, min(batch_size, MAX_PAGE))
        for batch in itertools.batched((InvocationId(row["invocation_id"]) for row in rows), batch_size):
            yield list(batch)

    # -- results and exceptions ----------------------------------------------------------

    def _set_result(self, invocation_id: InvocationId, serialized_result: str) -> None:
        document = docs.payload_document(self.app.app_id, RESULT, invocation_id, serialized_result)
        self._set_document(self.keys.result(invocation_id), "payloads", document)

    def _get_result(self, invocation_id: InvocationId) -> str:
        value = self._get_value(self.keys.result(invocation_id))
        if value is None:
            raise KeyError(f"no result stored for invocation {invocation_id!r}")
        return value

    def _set_exception(self, invocation_id: InvocationId, serialized_exception: str) -> None:
        document = docs.payload_document(self.app.app_id, EXCEPTION, invocation_id, serialized_exception)
        self._set_document(self.keys.exception(invocation_id), "payloads", document)

    def _get_exception(self, invocation_id: InvocationId) -> str:
        value = self._get_value(self.keys.exception(invocation_id))
        if value is None:
            raise KeyError(f"no exception stored for invocation {invocation_id!r}")
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
        document = docs.payload_document(self.app.app_id, WORKFLOW_DATA, workflow_id, serialized, name=key)
        self._set_document(self.keys.workflow_data(workflow_id, key), "payloads", document)

    def get_workflow_data(self, workflow_identity: WorkflowIdentity, key: str, default: Any = None) -> Any:
        serialized = self._get_value(self.keys.workflow_data(workflow_identity.workflow_id, key))
        if serialized is None:
            return default
        return self.app.serializer.deserialize(serialized)

    def store_workflow_run(self, workflow_identity: WorkflowIdentity) -> None:
        document = docs.workflow_run_document(self.app.app_id, workflow_identity)
        self._set_document(
            self.keys.workflow_run(workflow_identity.workflow_id),
            "workflow_runs",
            document,
        )

    def get_all_workflow_types(self) -> Iterator[TaskId]:
        """Stream each workflow type with at least one stored run, once."""
        spec = self.schemas.workflow_runs
        steps = (
            *query.load_paths(module="$.workflow_type_module", func="$.workflow_type_func"),
            *query.group_by("workflow_type_key", "module", "func"),
        )
        request = query.Aggregate(self._alias("workflow_runs"), query.where(spec, self.app.app_id), steps)
        for row in fetch_all(self.client, request, self.page_size):
            yield TaskId(row["module"], row["func"])

    def get_all_workflow_runs(self) -> Iterator[WorkflowIdentity]:
        spec = self.schemas.workflow_runs
        for document in self._documents("workflow_runs", query.where(spec, self.app.app_id)):
            yield docs.workflow_run_from_document(document)

    def get_workflow_runs(self, workflow_type: TaskId) -> Iterator[WorkflowIdentity]:
        spec = self.schemas.workflow_runs
        request_filter = query.where(spec, self.app.app_id, workflow_type_key=workflow_type.key)
        for document in self._documents("workflow_runs", request_filter):
            yield docs.workflow_run_from_document(document)

    def store_workflow_sub_invocation(
        self, parent_workflow_id: InvocationId, sub_invocation_id: InvocationId
    ) -> None:
        document = docs.workflow_sub_invocation_document(
            self.app.app_id, parent_workflow_id, sub_invocation_id
        )
        key = self.keys.workflow_sub_invocation(parent_workflow_id, sub_invocation_id)
        self._set_document(key, "workflow_sub_invocations", document)

    def get_workflow_sub_invocations(self, workflow_id: InvocationId) -> Iterator[InvocationId]:
        return self._ids(
            "workflow_sub_invocations",
            "sub_invocation_id",
            workflow_id=str(workflow_id),
        )

    # -- apps ----------------------------------------------------------------------------

    def store_app_info(self, app_info: AppInfo) -> None:
        keys = self.namespace.for_app(app_info.app_id)
        self._set_document(keys.app_info(), "app_infos", docs.app_info_document(app_info))

    def get_app_info(self) -> AppInfo:
        raw = run(self.client, "JSON.GET", self.keys.app_info())
        if raw is None:
            raise ValueError(f"No app info found for app_id '{self.app.app_id}'")
        return docs.app_info_from_document(docs.loads(raw))

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
            info = docs.app_info_from_document(docs.loads(row["doc"]))
            infos[info.app_id] = info
        return infos

    # -- runner contexts -----------------------------------------------------------------

    def _store_runner_context(self, runner_context: RunnerContext) -> None:
        document = docs.runner_context_document(self.app.app_id, runner_context)
        self._set_document(
            self.keys.runner_context(runner_context.runner_id),
            "runner_contexts",
            document,
        )

    def _get_runner_context(self, runner_id: str) -> RunnerContext | None:
        contexts = self._get_runner_contexts([runner_id])
        return contexts[0] if contexts else None

    def _get_runner_contexts(self, runner_ids: list[str]) -> list[RunnerContext]:
        if not runner_ids:
            return []
        raw = run(
            self.client,
            "JSON.MGET",
            *(self.keys.runner_context(r) for r in runner_ids),
            "$",
        )
        return [docs.runner_context_from_document(docs.loads(item)[0]) for item in raw if item is not None]

    def get_matching_runner_contexts(self, partial_id: str) -> Iterator[RunnerContext]:
        """Stream runner contexts whose id contains ``partial_id`` (literal, case-sensitive)."""
        spec = self.schemas.runner_contexts
        steps = query.contains(spec, "runner_id", partial_id)
        for document in self._documents("runner_contexts", query.where(spec, self.app.app_id), *steps):
            yield docs.runner_context_from_document(document)

    # -- retention -----------------------------------------------------------------------

    def prune(self, older_than: datetime, dry_run: bool = False) -> PruneReport:
        """Delete this app's finished invocations whose latest status is older than ``older_than``.

        Only invocations in a final status (success, failed, concurrency-controlled final) are
        deleted; unfinished ones are kept however old. With each go its history, result,
        exception and the workflow links in which it is the sub-invocation; a workflow's run
        and data go once no remaining invocation refers to the workflow. Runner contexts are
        kept. Found through the indexes, batch by batch (see
        :mod:`pynenc_redis_stack.prune`).

        :param older_than: The cutoff; it must be in the past (naive datetimes are UTC).
        :param dry_run: Count what would be deleted, delete nothing.
        :return: The documents deleted (or deletable) per kind.
        :raises PruneRefusedError: If the cutoff is not in the past (use
            :func:`pynenc_redis_stack.prune.prune_invocations` with ``allow_all=True``).
        """
        return prune_invocations(
            self.client,
            self.namespace,
            self.schemas,
            self.app.app_id,
            older_than,
            dry_run=dry_run,
            batch_size=min(self.page_size, MAX_PRUNE_BATCH),
        )
