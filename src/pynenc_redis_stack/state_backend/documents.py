"""Pure converters between pynenc objects and the JSON documents stored in Redis.

No client here: each function maps one entity to a dict (validated against its index spec,
so a value RediSearch would refuse is rejected before it is written) or back.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core.codec import Document, from_micros, to_micros

if TYPE_CHECKING:
    from pynenc.app import AppInfo

    from pynenc_redis_stack.core.keys import DocumentKind

_MICROSECOND = timedelta(microseconds=1)


def invocation_document(app_id: str, inv: InvocationDTO, call: CallDTO) -> Document:
    """Return the invocation document: the whole invocation (task, arguments, parents,
    workflow) but its status, which history writes own (``status``, ``status_ts``).

    Module and function names are stored apart from ``task_id_key`` because
    ``TaskId.from_key`` cannot split a key back when the function name contains a dot.
    ``None`` values are left out (the upsert replaces the document whole).
    """
    task = call.call_id.task_id
    workflow = inv.workflow
    document = {
        "app_id": app_id,
        "invocation_id": inv.invocation_id,
        "task_id_key": task.key,
        "call_id_key": call.call_id.key,
        "task_module": task.module,
        "task_func": task.func_name,
        "arguments_id": call.call_id.args_id,
        "serialized_arguments": dict(call.serialized_arguments),
        "parent_invocation_id": inv.parent_invocation_id,
        "parent_event_id": inv.parent_event_id,
        "workflow_id": workflow.workflow_id if workflow else None,
        "workflow_type_key": workflow.workflow_type.key if workflow else None,
        "workflow_type_module": workflow.workflow_type.module if workflow else None,
        "workflow_type_func": workflow.workflow_type.func_name if workflow else None,
        "parent_workflow_id": workflow.parent_workflow_id if workflow else None,
    }
    return {name: value for name, value in document.items() if value is not None}


def invocation_from_document(doc: Document) -> tuple[InvocationDTO, CallDTO]:
    """Rebuild the DTO pair from an invocation document (:func:`invocation_document`)."""
    workflow_id = doc.get("workflow_id")
    arguments = dict(doc.get("serialized_arguments") or {})
    if _DTOS_ARE_PLAIN:
        task = _plain(TaskId, module=doc["task_module"], func_name=doc["task_func"])
        call_id = _plain(CallId, task_id=task, args_id=doc["arguments_id"])
        workflow = None
        if workflow_id is not None:
            workflow_type = _plain(
                TaskId, module=doc["workflow_type_module"], func_name=doc["workflow_type_func"]
            )
            workflow = _plain(
                WorkflowIdentity,
                workflow_id=workflow_id,
                workflow_type=workflow_type,
                parent_workflow_id=doc.get("parent_workflow_id"),
            )
        inv = _plain(
            InvocationDTO,
            invocation_id=doc["invocation_id"],
            call_id=call_id,
            workflow=workflow,
            parent_invocation_id=doc.get("parent_invocation_id"),
            parent_event_id=doc.get("parent_event_id"),
        )
        return inv, _plain(CallDTO, call_id=call_id, serialized_arguments=arguments)
    task = TaskId(doc["task_module"], doc["task_func"])
    call_id = CallId(task_id=task, args_id=doc["arguments_id"])
    workflow = None
    if workflow_id is not None:
        workflow = WorkflowIdentity(
            workflow_id=InvocationId(workflow_id),
            workflow_type=TaskId(doc["workflow_type_module"], doc["workflow_type_func"]),
            parent_workflow_id=_inv_id(doc.get("parent_workflow_id")),
        )
    inv = InvocationDTO(
        invocation_id=InvocationId(doc["invocation_id"]),
        call_id=call_id,
        workflow=workflow,
        parent_invocation_id=_inv_id(doc.get("parent_invocation_id")),
        parent_event_id=doc.get("parent_event_id"),
    )
    return inv, CallDTO(call_id=call_id, serialized_arguments=arguments)


_DTO_FIELDS: dict[type, set[str]] = {
    TaskId: {"module", "func_name"},
    CallId: {"task_id", "args_id"},
    WorkflowIdentity: {"workflow_id", "workflow_type", "parent_workflow_id"},
    InvocationDTO: {"invocation_id", "call_id", "workflow", "parent_invocation_id", "parent_event_id"},
    CallDTO: {"call_id", "serialized_arguments"},
}


def _is_plain_dataclass(cls: type, fields: set[str]) -> bool:
    """Whether ``cls`` is a dataclass with exactly ``fields``, kept in its instances'
    ``__dict__``, whose constructor only stores them (no ``__post_init__``)."""
    declared = getattr(cls, "__dataclass_fields__", None)
    return (
        declared is not None
        and set(declared) == fields
        and not hasattr(cls, "__slots__")
        and not hasattr(cls, "__post_init__")
    )


_DTOS_ARE_PLAIN = all(_is_plain_dataclass(cls, fields) for cls, fields in _DTO_FIELDS.items())


def _plain[T](cls: type[T], **fields: Any) -> T:
    """An instance of the frozen dataclass ``cls`` with ``fields`` stored directly.

    A frozen dataclass's constructor sets each field through ``object.__setattr__``: for the
    five objects of an invocation, 2 of the 5 µs :func:`invocation_from_document` took.
    Only used when :data:`_DTOS_ARE_PLAIN` (pynenc's classes have the shape this module
    knows); any other shape goes through the constructors.
    """
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance


def _inv_id(value: str | None) -> InvocationId | None:
    return None if value is None else InvocationId(value)


# -- history -------------------------------------------------------------------------------


def history_document(app_id: str, history: InvocationHistory) -> Document:
    """Return a history entry document; ``seq`` is added by the server-side write.

    Flat, and without the values it would repeat: every history query loads whole entries,
    and RedisJSON serialises a flat document of scalars in half the time of the nested form,
    and memory per invocation is budgeted (docs/performance.md). So the status record's
    status is ``status``; its time ``record_ts`` is stored only when it differs from the
    entry's ``ts`` (``record_utc_offset``, in microseconds, keeps a time zone other than
    UTC); its runner ``runner_id`` only when it is not the entry's runner context (``null``
    when there is none).
    """
    record = history.status_record
    ts = to_micros(history.timestamp)
    document: Document = {
        "app_id": app_id,
        "invocation_id": history.invocation_id,
        "ts": ts,
        "status": record.status.value,
        "runner_context_id": history.runner_context_id,
    }
    record_ts = to_micros(record.timestamp)
    if record_ts != ts:
        document["record_ts"] = record_ts
    offset = record.timestamp.utcoffset()
    if offset:
        document["record_utc_offset"] = offset // _MICROSECOND
    if record.runner_id != history.runner_context_id:
        document["runner_id"] = record.runner_id
    if history.registered_by_inv_id is not None:
        document["registered_by_inv_id"] = history.registered_by_inv_id
    return document


def history_from_document(doc: Document) -> InvocationHistory:
    """Rebuild an :class:`InvocationHistory` with its exact timestamps.

    Reads the flat layout of :func:`history_document` and the nested ``status_record`` one
    that versions before 0.2 wrote.
    """
    timestamp = from_micros(int(doc["ts"]))
    if "status_record" in doc:
        record = InvocationStatusRecord.from_json(doc["status_record"])
    else:
        record_time = from_micros(int(doc["record_ts"])) if "record_ts" in doc else timestamp
        if "record_utc_offset" in doc:
            record_time = record_time.astimezone(timezone(doc["record_utc_offset"] * _MICROSECOND))
        record = InvocationStatusRecord(
            _STATUSES[doc["status"]], doc.get("runner_id", doc["runner_context_id"]), record_time
        )
    return _history(
        doc["invocation_id"], record, doc["runner_context_id"], doc.get("registered_by_inv_id"), timestamp
    )


_STATUSES = {status.value: status for status in InvocationStatus}

_HISTORY_FIELDS = {
    "invocation_id",
    "_timestamp",
    "status_record",
    "runner_context_id",
    "registered_by_inv_id",
}
_HISTORY_HAS_DICT = set(InvocationHistory.__dataclass_fields__) == _HISTORY_FIELDS and not hasattr(
    InvocationHistory, "__slots__"
)


def _history(
    invocation_id: str,
    record: InvocationStatusRecord,
    runner_context_id: str,
    registered_by_inv_id: str | None,
    timestamp: datetime,
) -> InvocationHistory:
    """An :class:`InvocationHistory` with the stored timestamp.

    History reads build thousands of these per page; pynenc's constructor stamps each with
    ``datetime.now()`` (a quarter of the time spent per entry) that would be overwritten at
    once, so when the class is the plain dataclass this module knows, its fields are set
    directly; any other shape goes through the constructor.
    """
    if _HISTORY_HAS_DICT:
        history: InvocationHistory = object.__new__(InvocationHistory)
        history.__dict__.update(
            invocation_id=InvocationId(invocation_id),
            _timestamp=timestamp,
            status_record=record,
            runner_context_id=runner_context_id,
            registered_by_inv_id=registered_by_inv_id,
        )
        return history
    history = InvocationHistory(
        invocation_id=InvocationId(invocation_id),
        status_record=record,
        runner_context_id=runner_context_id,
        registered_by_inv_id=registered_by_inv_id,
    )
    history._timestamp = timestamp
    return history


# -- runner contexts -----------------------------------------------------------------------


def runner_context_document(app_id: str, context: RunnerContext) -> Document:
    """Return a runner context document; ``context`` keeps the whole parent chain."""
    return {
        "app_id": app_id,
        "runner_id": context.runner_id,
        "parent_runner_id": context.parent_ctx.runner_id if context.parent_ctx else None,
        "runner_cls": context.runner_cls,
        "hostname": context.hostname,
        "context": context.to_json(),
    }


def runner_context_from_document(doc: Document) -> RunnerContext:
    """Rebuild a :class:`RunnerContext` (with its parents)."""
    return RunnerContext.from_json(doc["context"])


# -- workflows -----------------------------------------------------------------------------


def workflow_run_document(app_id: str, workflow: WorkflowIdentity) -> Document:
    """Return a workflow run document."""
    return {
        "app_id": app_id,
        "workflow_id": workflow.workflow_id,
        "workflow_type_key": workflow.workflow_type.key,
        "workflow_type_module": workflow.workflow_type.module,
        "workflow_type_func": workflow.workflow_type.func_name,
        "parent_workflow_id": workflow.parent_workflow_id,
    }


def workflow_run_from_document(doc: Document) -> WorkflowIdentity:
    """Rebuild a :class:`WorkflowIdentity`."""
    return WorkflowIdentity(
        workflow_id=InvocationId(doc["workflow_id"]),
        workflow_type=TaskId(doc["workflow_type_module"], doc["workflow_type_func"]),
        parent_workflow_id=_inv_id(doc.get("parent_workflow_id")),
    )


def workflow_sub_invocation_document(app_id: str, workflow_id: str, sub_invocation_id: str) -> Document:
    """Return the document linking a workflow to an invocation that ran inside it."""
    return {
        "app_id": app_id,
        "workflow_id": str(workflow_id),
        "sub_invocation_id": str(sub_invocation_id),
    }


# -- apps and payloads ---------------------------------------------------------------------


def app_info_document(app_info: AppInfo) -> Document:
    """Return an app info document; ``info`` is pynenc's own JSON, kept verbatim."""
    return {"app_id": app_info.app_id, "info": app_info.to_json()}


def app_info_from_document(doc: Document) -> AppInfo:
    """Rebuild an :class:`AppInfo`."""
    from pynenc.app import AppInfo

    return AppInfo.from_json(doc["info"])


def payload_document(
    app_id: str, kind: DocumentKind, owner_id: str, value: str, name: str | None = None
) -> Document:
    """Return a payload document (result, exception or one workflow data value).

    :param kind: ``RESULT``, ``EXCEPTION`` or ``WORKFLOW_DATA`` (stored as its value).
    :param owner_id: The invocation (or workflow) the payload belongs to.
    :param value: The serialised payload; stored, never indexed. ``""`` is a value.
    :param name: The workflow data key, for ``workflow-data``.
    """
    doc: Document = {
        "app_id": app_id,
        "kind": str(kind),
        "owner_id": str(owner_id),
        "value": value,
    }
    if name is not None:
        doc["name"] = name
    return doc
