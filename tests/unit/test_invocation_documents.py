"""Invocation documents: the DTO pair read back equals the one written, whether the DTOs are
built directly (pynenc's classes have the shape documents.py knows) or by their constructors."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import pytest
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core import codec
from pynenc_redis_stack.state_backend import documents as docs

TASK = TaskId("orders.tasks", "charge.card")  # a dot in the function name: from_key cannot split it
CALL_ID = CallId(TASK, "args-{1}:|x")
WORKFLOWS = [
    None,
    WorkflowIdentity(InvocationId("wf-1"), TaskId("orders.flows", "checkout")),
    WorkflowIdentity(InvocationId("wf-2"), TaskId("orders.flows", "refund"), InvocationId("wf-1")),
]


def _pair(
    workflow: WorkflowIdentity | None, parent: str | None, event: str | None
) -> tuple[InvocationDTO, CallDTO]:
    inv = InvocationDTO(
        invocation_id=InvocationId("inv-é \"'*?"),
        call_id=CALL_ID,
        workflow=workflow,
        parent_invocation_id=None if parent is None else InvocationId(parent),
        parent_event_id=event,
    )
    return inv, CallDTO(call_id=CALL_ID, serialized_arguments={"amount": "12", "card": '"4111"'})


@pytest.mark.parametrize("plain", [True, False], ids=["direct", "constructors"])
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=["no-workflow", "workflow", "sub-workflow"])
@pytest.mark.parametrize(("parent", "event"), [(None, None), ("parent-1", "event-1")])
def test_invocation_document_round_trips(
    monkeypatch: pytest.MonkeyPatch,
    plain: bool,
    workflow: WorkflowIdentity | None,
    parent: str | None,
    event: str | None,
) -> None:
    assert docs._DTOS_ARE_PLAIN  # pynenc's DTOs are plain dataclasses: the direct path is the one used
    monkeypatch.setattr(docs, "_DTOS_ARE_PLAIN", plain)
    inv, call = _pair(workflow, parent, event)
    stored = orjson.loads(codec.dumps(docs.invocation_document("app", inv, call)))

    read_inv, read_call = docs.invocation_from_document(stored)

    assert (read_inv, read_call) == (inv, call)
    assert hash(read_inv) == hash(inv)
    assert read_call.call_id.key == CALL_ID.key  # cached_property still computed on demand
    assert read_call.call_id.task_id.key == "orders.tasks.charge.card"
    if workflow is not None:
        assert read_inv.workflow is not None
        assert read_inv.workflow.workflow_type.key == workflow.workflow_type.key
        assert read_inv.workflow.is_subworkflow == workflow.is_subworkflow
    with pytest.raises(AttributeError):  # still frozen
        read_inv.parent_event_id = "changed"


@dataclass(frozen=True)
class _WithPostInit:
    module: str
    func_name: str

    def __post_init__(self) -> None:
        if not self.module:
            raise ValueError("module")


@dataclass(frozen=True, slots=True)
class _WithSlots:
    module: str
    func_name: str


@dataclass(frozen=True)
class _WithMoreFields:
    module: str
    func_name: str
    version: int = field(default=1)


@pytest.mark.parametrize(
    ("cls", "plain"),
    [
        (TaskId, True),
        (_WithPostInit, False),
        (_WithSlots, False),
        (_WithMoreFields, False),
        (str, False),
    ],
)
def test_only_the_known_dataclass_shape_is_built_directly(cls: type, plain: bool) -> None:
    assert docs._is_plain_dataclass(cls, {"module", "func_name"}) is plain
