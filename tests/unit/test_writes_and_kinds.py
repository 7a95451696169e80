"""The one vocabulary of document kinds, and the write commands the backend and the importer
share (built without a server: nothing here is sent)."""

from __future__ import annotations

import orjson
import pytest
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO

from pynenc_redis_stack.core.errors import InvalidDocumentError, check_batch_size
from pynenc_redis_stack.core.keys import DocumentKind, Namespace
from pynenc_redis_stack.core.schema import load_schemas
from pynenc_redis_stack.state_backend.writes import DocumentWrites

KEYS = Namespace("ns").for_app("a:pp")
WRITES = DocumentWrites(KEYS, load_schemas())


def test_every_document_kind_is_covered_by_exactly_one_index() -> None:
    covered = [prefix for spec in load_schemas().all() for prefix in spec.prefixes]
    assert sorted(covered) == sorted(DocumentKind)


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        (DocumentKind.INVOCATION, KEYS.invocation("i")),
        (DocumentKind.HISTORY, KEYS.history("i", "e")),
        (DocumentKind.RESULT, KEYS.result("i")),
        (DocumentKind.EXCEPTION, KEYS.exception("i")),
        (DocumentKind.RUNNER_CONTEXT, KEYS.runner_context("r")),
        (DocumentKind.WORKFLOW_RUN, KEYS.workflow_run("w")),
        (DocumentKind.WORKFLOW_SUB_INVOCATION, KEYS.workflow_sub_invocation("w", "i")),
        (DocumentKind.WORKFLOW_DATA, KEYS.workflow_data("w", "k")),
        (DocumentKind.APP_INFO, KEYS.app_info()),
    ],
)
def test_a_document_key_starts_with_its_kind_which_its_index_covers(kind: DocumentKind, key: str) -> None:
    assert key.startswith(f"ns:{kind}:a%3App")
    assert f"ns:{kind}:" in Namespace("ns").prefixes(load_schemas().for_kind(kind))


def test_invocation_upsert_sends_the_whole_invocation_as_one_document() -> None:
    call = CallId(TaskId("m", "f"), "args")
    inv = InvocationDTO(InvocationId("i:1"), call, None, InvocationId("p:1"), None)
    batch = WRITES.invocation_batch()
    WRITES.add_invocation(batch, inv, CallDTO(call, {"x": "1"}))
    ((keys, (document,)),) = batch.calls.values()
    assert keys == [KEYS.invocation("i:1")]
    assert orjson.loads(document) == {
        "app_id": "a:pp",
        "invocation_id": "i:1",
        "task_id_key": "m.f",
        "call_id_key": call.key,
        "task_module": "m",
        "task_func": "f",
        "arguments_id": "args",
        "serialized_arguments": {"x": "1"},
        "parent_invocation_id": "p:1",  # no null: a field without a value is left out
    }


def test_an_invalid_invocation_queues_nothing() -> None:
    call = CallId(TaskId("m", "f"), "args")
    batch = WRITES.invocation_batch()
    with pytest.raises(InvalidDocumentError):
        WRITES.add_invocation(
            batch, InvocationDTO(InvocationId(""), call, None, None, None), CallDTO(call, {})
        )
    assert not batch.calls and len(batch) == 0


@pytest.mark.parametrize(
    ("command", "kind", "key"),
    [
        (WRITES.result("i", ""), DocumentKind.RESULT, KEYS.result("i")),
        (WRITES.exception("i", "boom"), DocumentKind.EXCEPTION, KEYS.exception("i")),
        (WRITES.workflow_data("w", "k", "1"), DocumentKind.WORKFLOW_DATA, KEYS.workflow_data("w", "k")),
    ],
)
def test_payload_documents_carry_their_kind(command: tuple[str, ...], kind: DocumentKind, key: str) -> None:
    assert command[:3] == ("JSON.SET", key, "$")
    document = orjson.loads(command[3])
    assert document["kind"] == str(kind) and type(document["kind"]) is str


def test_a_document_the_index_would_drop_is_refused_before_any_command() -> None:
    with pytest.raises(InvalidDocumentError, match="workflow_id"):
        WRITES.workflow_sub_invocation("", "i")  # '' can never be looked up


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_batch_size_below_one_is_refused(batch_size: int) -> None:
    with pytest.raises(ValueError, match=f"batch_size must be at least 1.*got {batch_size}"):
        check_batch_size(batch_size)
