"""The commands that store documents, built in one place for the backend and the importer.

A write is a key (:mod:`keys`) plus a document (:mod:`documents`, validated against its index
spec) plus a JSON command; history entries go through the history script
(:class:`~pynenc_redis_stack.state_backend.scripts.HistoryBatch`). Nothing here sends on its own: the
backend sends the commands as pynenc's calls come, the importer a batch at a time, so an
imported store holds exactly what the backend would have written.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from pynenc_redis_stack.core import codec
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.keys import AppKeys, DocumentKind
from pynenc_redis_stack.state_backend import documents as docs
from pynenc_redis_stack.state_backend.scripts import HistoryBatch, InvocationBatch

if TYPE_CHECKING:
    from pynenc.app import AppInfo
    from pynenc.models.call_dto import CallDTO
    from pynenc.models.invocation_dto import InvocationDTO
    from pynenc.runner.runner_context import RunnerContext
    from pynenc.state_backend.base_state_backend import InvocationHistory
    from pynenc.workflow import WorkflowIdentity

    from pynenc_redis_stack.core.schema import Schemas

type Command = tuple[str, ...]


@dataclass(frozen=True)
class HistoryEntry:
    """One validated history entry document and the key it is stored under."""

    invocation_id: str
    key: str
    document: codec.Document


class DocumentWrites:
    """Builds the write commands of one app's documents.

    :param keys: The app whose documents are written (and the namespace of their keys).
    :param schemas: The specs every document is validated against before it is written.
    """

    def __init__(self, keys: AppKeys, schemas: Schemas) -> None:
        self.keys = keys
        self.schemas = schemas

    def _set(self, kind: DocumentKind, key: str, document: codec.Document) -> Command:
        """Return the ``JSON.SET`` of a whole document, validated against its index."""
        return ("JSON.SET", key, "$", codec.dumps(codec.validated(self.schemas.for_kind(kind), document)))

    def invocation_batch(self) -> InvocationBatch:
        """Return an empty upsert script call for this app's invocations (see
        :data:`~pynenc_redis_stack.state_backend.scripts.UPSERT_INVOCATIONS`)."""
        return InvocationBatch()

    def add_invocation(self, batch: InvocationBatch, inv: InvocationDTO, call: CallDTO) -> None:
        """Queue the upsert of one invocation (its document validated here) on ``batch``."""
        document = codec.validated(
            self.schemas.invocations, docs.invocation_document(self.keys.app_id, inv, call)
        )
        batch.add_document(self.keys.invocation(inv.invocation_id), document)

    def history_entry(self, history: InvocationHistory) -> HistoryEntry:
        """Return the validated document of a new history entry, under a new random key.

        96 random bits (16 characters): unique in the invocation, and a re-send of the
        history script after a lost reply finds its own keys and changes nothing.
        """
        document = codec.validated(self.schemas.history, docs.history_document(self.keys.app_id, history))
        invocation_id = history.invocation_id
        return HistoryEntry(
            invocation_id, self.keys.history(invocation_id, secrets.token_urlsafe(12)), document
        )

    def imported_history_entry(self, history: InvocationHistory, entry_id: str) -> HistoryEntry:
        """Return the validated document of a copied history entry, under the deterministic
        ``entry_id`` within its invocation (see :meth:`AppKeys.history`)."""
        document = codec.validated(self.schemas.history, docs.history_document(self.keys.app_id, history))
        invocation_id = history.invocation_id
        return HistoryEntry(invocation_id, self.keys.history(invocation_id, entry_id), document)

    def history_batch(self, entries: Iterable[HistoryEntry], writer: int) -> HistoryBatch:
        """Return the history script calls storing ``entries`` (in this order: their ``seq``,
        stamps of ``writer``, :func:`~pynenc_redis_stack.core.arrival.writer_number`)."""
        batch = HistoryBatch(writer)
        for entry in entries:
            batch.add_entry(self.keys.invocation(entry.invocation_id), entry.key, entry.document)
        return batch

    def runner_context(self, context: RunnerContext) -> Command:
        document = docs.runner_context_document(self.keys.app_id, context)
        return self._set(DocumentKind.RUNNER_CONTEXT, self.keys.runner_context(context.runner_id), document)

    def workflow_run(self, workflow: WorkflowIdentity) -> Command:
        document = docs.workflow_run_document(self.keys.app_id, workflow)
        return self._set(DocumentKind.WORKFLOW_RUN, self.keys.workflow_run(workflow.workflow_id), document)

    def workflow_sub_invocation(self, workflow_id: str, sub_invocation_id: str) -> Command:
        document = docs.workflow_sub_invocation_document(self.keys.app_id, workflow_id, sub_invocation_id)
        key = self.keys.workflow_sub_invocation(workflow_id, sub_invocation_id)
        return self._set(DocumentKind.WORKFLOW_SUB_INVOCATION, key, document)

    def result(self, invocation_id: str, value: str) -> Command:
        document = docs.payload_document(self.keys.app_id, DocumentKind.RESULT, invocation_id, value)
        return self._set(DocumentKind.RESULT, self.keys.result(invocation_id), document)

    def exception(self, invocation_id: str, value: str) -> Command:
        document = docs.payload_document(self.keys.app_id, DocumentKind.EXCEPTION, invocation_id, value)
        return self._set(DocumentKind.EXCEPTION, self.keys.exception(invocation_id), document)

    def workflow_data(self, workflow_id: str, data_key: str, value: str) -> Command:
        document = docs.payload_document(
            self.keys.app_id, DocumentKind.WORKFLOW_DATA, workflow_id, value, name=data_key
        )
        return self._set(DocumentKind.WORKFLOW_DATA, self.keys.workflow_data(workflow_id, data_key), document)

    def app_info(self, app_info: AppInfo) -> Command:
        """Return the write of an app info, under the key of the app it describes."""
        keys = self.keys.namespace.for_app(app_info.app_id)
        return self._set(DocumentKind.APP_INFO, keys.app_info(), docs.app_info_document(app_info))


def send(
    pipe: redis.client.Pipeline, commands: Iterable[Command], history: HistoryBatch | None = None
) -> None:
    """Send ``commands``, then the ``history`` script calls (one per slot) if it has entries,
    in one round trip (two the first time the script meets the server)."""
    for command in commands:
        run(pipe, *command)
    if history is not None and len(history):
        history.run_in(pipe)
    elif len(pipe):
        pipe.execute()
