"""Every Redis key, index name and alias name of the package.

Layout (``ns`` is the configured namespace, ``pynenc`` by default)::

    <ns>:<entity>:<app>:<id>[:<id>...]   a JSON document
    <ns>:idx:<index>:v<version>           a physical RediSearch index
    <ns>:idx:<index>:v<version>:r<k>      the k-th rebuild of a drifted index at that version
    <ns>:<index>                          the alias every query goes through
    <ns>:history-seq                      the counter ordering history entries with equal timestamps
    <ns>:prune-pending-workflows:<app>    a set: workflows whose invocations prune deleted, until
                                          prune has collected (or kept) their run and data
    <ns>:lock:index-migrate               the lock serialising ``index migrate`` and ``index drop``
    <ns>:index-check                      a hash: alias -> the checked definition and physical
                                          index (the trusted marker, lifecycle/first_use.py)
    <ns>:orchestrator-seq                 the counter ordering orchestrator registrations
    <ns>:atomic-service-lease:<app>       a lock: the document key of the app's RUNNING
                                          atomic-service execution
    <ns>:broker-queue:{<app>}:<queue>     a sorted set: the queue's invocations (broker.py)
    <ns>:broker-queues:{<app>}            a set: the queue names the app routed to (for purge)
    <ns>:broker-seq:{<app>}               the counter ordering equal priorities first in, first out
    <ns>:broker-taken:{<app>}             a sorted set: taken, not yet acknowledged invocations
    <ns>:client-data:<app>                a hash: the client data store's values by reference key
    <ns>:trigger-event:<app>:<event>      a JSON document: one trigger event (trigger/records.py)
    <ns>:trigger-run:<app>:<run>          a JSON document: one trigger run
    <ns>:trigger-definition:<app>:<trigger>  a JSON document: one trigger definition
    <ns>:trigger-condition:<app>:<condition> a JSON document: one trigger condition, with the
                                          tasks it is sourced from
    <ns>:trigger-valid-conditions:<app>   a hash: valid condition id -> valid condition (the
                                          trigger loop's work queue)
    <ns>:trigger-cron:<app>               a hash: cron condition id -> last execution (epoch us;
                                          the cron schedule, moved by compare-and-set)
    <ns>:trigger-run-claims:<app>         a sorted set: claimed trigger run ids by claim expiry
                                          (leases)

The entity comes before the app so that one index prefix (``<ns>:<entity>:``) covers every
app; documents carry ``app_id`` and every query filters on it. Each id segment escapes ``%``
and ``:`` (as ``%25`` and ``%3A``) so that no two (app, id) pairs share a key, whatever the
ids contain; ids without those two characters read as they are.

The broker's keys put the app in a hash tag (``{<app>}``, with ``{`` and ``}`` also escaped,
as ``%7B``/``%7D``, so the tag is exactly the app): every key one broker script touches is
in the app's hash slot.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Protocol

from pynenc_redis_stack.core.errors import InvalidDocumentError, lone_surrogate, lone_surrogate_message


class IndexSpec(Protocol):
    """What naming an index needs of its spec (:class:`pynenc_redis_stack.core.schema.IndexSpec`,
    which imports this module for :class:`DocumentKind`)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def prefixes(self) -> tuple[str, ...]: ...


_NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


class DocumentKind(StrEnum):
    """The kinds of JSON document the package stores: the one vocabulary of keys, schemas
    (``index.prefixes``), the payload documents' ``kind`` and the import and prune reports.

    Each value is the entity segment of the kind's keys (``<ns>:<kind>:<app>:...``), so it is
    part of the stored layout: never rename one. Members are in report order.
    """

    INVOCATION = "invocation"
    HISTORY = "history"
    RESULT = "result"
    EXCEPTION = "exception"
    RUNNER_CONTEXT = "runner-context"
    WORKFLOW_RUN = "workflow-run"
    WORKFLOW_SUB_INVOCATION = "workflow-sub-invocation"
    WORKFLOW_DATA = "workflow-data"
    APP_INFO = "app-info"


# Keys that hold no document: a work list of prune (not a lookup, no index covers it).
_PRUNE_PENDING_WORKFLOWS = "prune-pending-workflows"

# The orchestrator's documents (RedisStackOrchestrator; indexed by its own schemas).
_ORCHESTRATOR_INVOCATION = "orchestrator-invocation"
_ORCHESTRATOR_WAIT = "orchestrator-wait"
_RUNNER_HEARTBEAT = "runner-heartbeat"
_ATOMIC_SERVICE_EXECUTION = "atomic-service-execution"
_ATOMIC_SERVICE_LEASE = "atomic-service-lease"
_REGISTRATION_LOCK = "registration-lock"

# The broker's and client data store's keys (not documents). The broker's carry the app in a
# hash tag, so its multi-key scripts stay in one cluster slot.
_BROKER_QUEUE = "broker-queue"
_BROKER_QUEUES = "broker-queues"
_BROKER_SEQ = "broker-seq"
_BROKER_TAKEN = "broker-taken"
_BROKER_TAKE_REPLIES = "broker-take-replies"
_BROKER_SWEEP_CLAIM = "broker-sweep-claim"
_RUNNING_HOLDERS = "running-holders"
_CLIENT_DATA = "client-data"

# The trigger's documents (indexed by schemas/trigger_*.yaml) and its queue, schedule and
# lease keys (not documents).
_TRIGGER_EVENT = "trigger-event"
_TRIGGER_RUN = "trigger-run"
_TRIGGER_DEFINITION = "trigger-definition"
_TRIGGER_CONDITION = "trigger-condition"
_TRIGGER_VALID_CONDITIONS = "trigger-valid-conditions"
_TRIGGER_CRON = "trigger-cron"
_TRIGGER_RUN_CLAIMS = "trigger-run-claims"


def encode_segment(value: str) -> str:
    """Escape one key segment so that ``:`` only ever separates segments.

    :raises InvalidDocumentError: If ``value`` holds a lone surrogate (no key can carry it:
        nothing can be stored under it, and a lookup is refused the same way).
    """
    if not value.isascii():  # an ASCII string has no surrogate (the common case, checked in C)
        position = lone_surrogate(value)
        if position is not None:
            raise InvalidDocumentError(lone_surrogate_message("identifier", value, position))
    return value.replace("%", "%25").replace(":", "%3A")


def decode_segment(segment: str) -> str:
    """Invert :func:`encode_segment` (every ``%`` in a segment starts one of its two escapes)."""
    if "%" not in segment:
        return segment
    return segment.replace("%3A", ":").replace("%25", "%")


class Namespace:
    """Names shared by every app of one deployment: index names, aliases, prefixes."""

    def __init__(self, namespace: str) -> None:
        if not _NAMESPACE_PATTERN.match(namespace):
            raise ValueError(
                f"namespace {namespace!r} is invalid: use letters, digits, '_', '.' or '-' "
                "(it starts every key and index name)"
            )
        self.namespace = namespace

    def alias(self, spec: IndexSpec) -> str:
        """Return the stable name queries use for ``spec``'s index."""
        return f"{self.namespace}:{spec.name}"

    def physical_index(self, spec: IndexSpec, version: int | None = None, rebuild: int = 0) -> str:
        """Return the name of the versioned index behind the alias.

        :param version: The schema version; the spec's by default.
        :param rebuild: Which rebuild of a drifted index at that version (0: the first build).
        """
        name = f"{self.namespace}:idx:{spec.name}:v{version or spec.version}"
        return f"{name}:r{rebuild}" if rebuild else name

    def parse_physical_index(self, spec: IndexSpec, name: str) -> tuple[int, int] | None:
        """Return ``(version, rebuild)`` of a physical index name of ``spec``, or None if
        :meth:`physical_index` does not make ``name`` (another package's index).

        ``<ns>:idx:<name>:v3`` is ``(3, 0)``; ``<ns>:idx:<name>:v3:r2`` is ``(3, 2)``.
        """
        match = re.fullmatch(re.escape(f"{self.namespace}:idx:{spec.name}:v") + r"(\d+)(?::r(\d+))?", name)
        if match is None:
            return None
        return int(match.group(1)), int(match.group(2) or 0)

    def lifecycle_lock(self) -> str:
        """Return the key of the lock that serialises ``index migrate`` and ``index drop``."""
        return f"{self.namespace}:lock:index-migrate"

    def index_check(self) -> str:
        """Return the key of the marker of indexes found matching their files (alias -> digest
        and physical index): what lets a new process trust them with one cheap read."""
        return f"{self.namespace}:index-check"

    def prefixes(self, spec: IndexSpec) -> list[str]:
        """Return the key prefixes the index covers (``FT.CREATE ... PREFIX``)."""
        return [f"{self.namespace}:{entity}:" for entity in spec.prefixes]

    def history_seq(self) -> str:
        """Return the counter key that orders history entries of equal timestamp."""
        return f"{self.namespace}:history-seq"

    def orchestrator_seq(self) -> str:
        """Return the counter that orders orchestrator registrations (newest-first pages)."""
        return f"{self.namespace}:orchestrator-seq"

    def for_app(self, app_id: str) -> AppKeys:
        """Return the key builder of one app."""
        return AppKeys(self, app_id)


class AppKeys:
    """Document keys of one app."""

    def __init__(self, namespace: Namespace, app_id: str) -> None:
        if not app_id:
            raise ValueError("app_id cannot be empty")
        self.namespace = namespace
        self.app_id = app_id
        self._app_segment = encode_segment(app_id)
        self._invocation_prefix = self._key(DocumentKind.INVOCATION, "")
        self._app_tag = "{" + self._app_segment.replace("{", "%7B").replace("}", "%7D") + "}"

    def _key(self, entity: str, *ids: str) -> str:
        segments = [self.namespace.namespace, entity, self._app_segment]
        segments.extend(encode_segment(i) for i in ids)
        return ":".join(segments)

    def invocation(self, invocation_id: str) -> str:
        return self._invocation_prefix + encode_segment(invocation_id)  # _key's, on the hot path

    def invocation_ids_of(self, keys: list[str]) -> list[str]:
        """Return the invocation ids of this app's invocation document keys (as the
        invocations index returns them for a query filtered on this app)."""
        start = len(self._invocation_prefix)
        return [decode_segment(key[start:]) for key in keys]

    def history(self, entry_id: str) -> str:
        """The key of a history entry written by the backend: ``entry_id`` is random and unique
        in the app (which invocation it belongs to is in the document). The invocation id
        is not in the key because each key is held twice per entry, in the keyspace and in
        the index's document table (docs/performance.md, memory)."""
        return self._key(DocumentKind.HISTORY, entry_id)

    def imported_history(self, invocation_id: str, entry_id: str) -> str:
        """The key of a history entry copied by ``import-redis`` (and of every entry written
        before 0.4): ``entry_id`` is deterministic within the invocation, so a re-import
        finds what it wrote."""
        return self._key(DocumentKind.HISTORY, invocation_id, entry_id)

    def runner_context(self, runner_id: str) -> str:
        return self._key(DocumentKind.RUNNER_CONTEXT, runner_id)

    def workflow_run(self, workflow_id: str) -> str:
        return self._key(DocumentKind.WORKFLOW_RUN, workflow_id)

    def workflow_sub_invocation(self, workflow_id: str, sub_invocation_id: str) -> str:
        return self._key(DocumentKind.WORKFLOW_SUB_INVOCATION, workflow_id, sub_invocation_id)

    def app_info(self) -> str:
        return self._key(DocumentKind.APP_INFO)

    def result(self, invocation_id: str) -> str:
        return self._key(DocumentKind.RESULT, invocation_id)

    def exception(self, invocation_id: str) -> str:
        return self._key(DocumentKind.EXCEPTION, invocation_id)

    def workflow_data(self, workflow_id: str, data_key: str) -> str:
        return self._key(DocumentKind.WORKFLOW_DATA, workflow_id, data_key)

    def prune_pending_workflows(self) -> str:
        """Return the set of workflows whose collection a prune run still owes (see prune.py)."""
        return self._key(_PRUNE_PENDING_WORKFLOWS)

    # -- the orchestrator's documents ----------------------------------------------------

    def orchestrator_invocation(self, invocation_id: str) -> str:
        return self._key(_ORCHESTRATOR_INVOCATION, invocation_id)

    def orchestrator_invocation_ids_of(self, keys: list[str]) -> list[str]:
        """Return the invocation ids of this app's orchestrator invocation keys."""
        start = len(self._key(_ORCHESTRATOR_INVOCATION, ""))
        return [decode_segment(key[start:]) for key in keys]

    def orchestrator_wait(self, waiter_id: str, waited_id: str) -> str:
        """The blocking edge ``waiter_id`` waits for ``waited_id``."""
        return self._key(_ORCHESTRATOR_WAIT, waiter_id, waited_id)

    def runner_heartbeat(self, runner_id: str) -> str:
        return self._key(_RUNNER_HEARTBEAT, runner_id)

    def atomic_service_execution(self, run_id: str) -> str:
        return self._key(_ATOMIC_SERVICE_EXECUTION, run_id)

    def atomic_service_lease(self) -> str:
        """The lock naming the document of the app's RUNNING atomic-service execution."""
        return self._key(_ATOMIC_SERVICE_LEASE)

    def registration_lock(self, task_key: str, key_arguments_digest: str) -> str:
        """The lock held while one call of a task with registration concurrency is routed."""
        return self._key(_REGISTRATION_LOCK, task_key, key_arguments_digest)

    def running_holders(self) -> str:
        """The hash of running-concurrency slots (field ``<task>:<slot>``) to the document key
        of the invocation that last started in each (checked and set by the status
        compare-and-set, removed when that invocation leaves RUNNING)."""
        return self._key(_RUNNING_HOLDERS)

    def _broker_key(self, entity: str, *ids: str) -> str:
        return ":".join([self.namespace.namespace, entity, self._app_tag, *(encode_segment(i) for i in ids)])

    def broker_queue(self, queue_name: str) -> str:
        """The sorted set of one queue's routed invocations (see :mod:`pynenc_redis_stack.broker`)."""
        return self._broker_key(_BROKER_QUEUE, queue_name)

    def broker_queues(self) -> str:
        """The set of the queue names this app ever routed to, so purge finds every queue."""
        return self._broker_key(_BROKER_QUEUES)

    def broker_seq(self) -> str:
        """The counter numbering routed entries, so equal priorities leave in arrival order."""
        return self._broker_key(_BROKER_SEQ)

    def broker_taken(self) -> str:
        """The sorted set of taken, not yet acknowledged entries, scored by lease deadline."""
        return self._broker_key(_BROKER_TAKEN)

    def broker_take_replies(self) -> str:
        """The hash of each consumer's last take with its attempt token and lease deadline, so
        a take sent again after a lost reply returns the same entry."""
        return self._broker_key(_BROKER_TAKE_REPLIES)

    def broker_sweep_claim(self) -> str:
        """The claim of one stranded-invocation sweep (expires after the recovery interval)."""
        return self._broker_key(_BROKER_SWEEP_CLAIM)

    def client_data(self) -> str:
        """The hash of the client data store's values, by reference key."""
        return self._key(_CLIENT_DATA)

    # -- the trigger's keys ----------------------------------------------------------------

    def trigger_event(self, event_id: str) -> str:
        return self._key(_TRIGGER_EVENT, event_id)

    def trigger_event_ids_of(self, keys: list[str]) -> list[str]:
        """Return the event ids of this app's trigger event document keys."""
        start = len(self._key(_TRIGGER_EVENT, ""))
        return [decode_segment(key[start:]) for key in keys]

    def trigger_run(self, trigger_run_id: str) -> str:
        return self._key(_TRIGGER_RUN, trigger_run_id)

    def trigger_definition(self, trigger_id: str) -> str:
        """The document of one trigger definition."""
        return self._key(_TRIGGER_DEFINITION, trigger_id)

    def trigger_condition(self, condition_id: str) -> str:
        """The document of one trigger condition (with the tasks it is sourced from)."""
        return self._key(_TRIGGER_CONDITION, condition_id)

    def trigger_valid_conditions(self) -> str:
        """The hash of valid conditions waiting for the trigger loop, by valid condition id."""
        return self._key(_TRIGGER_VALID_CONDITIONS)

    def trigger_cron(self) -> str:
        """The hash of the last execution of each cron condition (epoch microseconds)."""
        return self._key(_TRIGGER_CRON)

    def trigger_run_claims(self) -> str:
        """The sorted set of claimed trigger run ids, scored by claim expiry (server ms)."""
        return self._key(_TRIGGER_RUN_CLAIMS)
