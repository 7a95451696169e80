"""Every Redis key, index name and alias name of the package.

Layout (``ns`` is the configured namespace, ``pynenc`` by default)::

    <ns>:<entity>:<app>:{<id>}[:<id>...] a JSON document; ``{<id>}`` is its hash tag (below)
    <ns>:idx:<index>:v<version>           a physical RediSearch index
    <ns>:idx:<index>:v<version>:r<k>      the k-th rebuild of a drifted index at that version
    <ns>:<index>                          the alias every query goes through
    <ns>:prune-pending-workflows:<app>    a set: workflows whose invocations prune deleted, until
                                          prune has collected (or kept) their run and data
    <ns>:lock:index-migrate               the lock serialising ``index migrate`` and ``index drop``
    <ns>:writers                          the counter giving each writing process its residue
                                          for arrival stamps (one INCR per process, arrival.py)
    <ns>:index-check                      a hash: alias -> the checked definition and physical
                                          index (the trusted marker, lifecycle/first_use.py)
    <ns>:atomic-service-lease:<app>:{<app>}  a lock: the document key of the app's RUNNING
                                          atomic-service execution (in the executions' slot)
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
    <ns>:trigger-valid-conditions:<app>:{<app>}  a hash: valid condition id -> valid condition
                                          (the trigger loop's work queue)
    <ns>:trigger-cron:<app>:{<app>}       a hash: cron condition id -> last execution (epoch us;
                                          the cron schedule, moved by compare-and-set in the
                                          valid conditions' slot)
    <ns>:trigger-run-claims:<app>         a sorted set: claimed trigger run ids by claim expiry
                                          (leases)

The entity comes before the app so that one index prefix (``<ns>:<entity>:``) covers every
app; documents carry ``app_id`` and every query filters on it. Each id segment escapes ``%``
and ``:`` (as ``%25`` and ``%3A``) so that no two (app, id) pairs share a key, whatever the
ids contain; ids without those two characters read as they are.

Hash tags (a cluster hashes only what is between a key's first ``{`` and the next ``}``):
every key one script, transaction or multi-key command touches carries the same tag, and
the tag is the smallest unit that must change atomically, so one app's documents spread over
every shard. Documents are tagged by the id in their key: an invocation's document, its
history entries, result, exception, orchestrator document and its membership of a workflow
(the sub-invocation link) all by the invocation id; a workflow's run and data by the workflow
id; a waiter's blocking edges by the waiter; every other document by its own id. Only small per-app structures carry the app as
their tag: the broker's keys (``<ns>:broker-queue:{<app>}:<queue>``), the atomic-service
lease and executions, the runners' heartbeats (one document per live runner), and the
trigger's valid conditions and cron schedule. In tagged keys
``{`` and ``}`` are escaped as well (``%7B``/``%7D``), in the app segment too, so a key's
first ``{`` always opens its intended tag and the tag is exactly the id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from redis.crc import key_slot

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
_RUNNING_HOLDER = "running-holder"
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


def _encode_tagged(value: str) -> str:
    """Escape one segment of a tagged key: :func:`encode_segment` plus ``{`` and ``}``."""
    return encode_segment(value).replace("{", "%7B").replace("}", "%7D")


def hash_tag(value: str) -> str:
    """Return ``{<value>}``, escaped: the hash tag of the keys grouped by ``value``."""
    return "{" + _encode_tagged(value) + "}"


def glob_escape(text: str) -> str:
    """Escape ``text`` for a ``SCAN MATCH`` pattern so that it matches only itself (ids may
    hold ``*``, ``?``, ``[``; an unescaped app ``a?c`` would also match ``abc``'s keys)."""
    return "".join("\\" + char if char in "\\*?[]^" else char for char in text)


def decode_segment(segment: str) -> str:
    """Invert :func:`encode_segment` and the brace escapes of tagged keys (every ``%`` in a
    segment starts one of its escapes: a literal ``%`` is ``%25``, decoded last)."""
    if "%" not in segment:
        return segment
    return segment.replace("%3A", ":").replace("%7B", "{").replace("%7D", "}").replace("%25", "%")


def decode_tag(segment: str) -> str:
    """Return the id in a ``{<id>}`` key segment."""
    return decode_segment(segment[1:-1])


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

    def writers(self) -> str:
        """Return the counter that numbers writing processes (:mod:`~pynenc_redis_stack.core.arrival`)."""
        return f"{self.namespace}:writers"

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
        self._tagged_app_segment = _encode_tagged(app_id)
        self._app_tag = hash_tag(app_id)
        self._invocation_prefix = self._tagged_prefix(DocumentKind.INVOCATION)

    def _key(self, entity: str, *ids: str) -> str:
        segments = [self.namespace.namespace, entity, self._app_segment]
        segments.extend(encode_segment(i) for i in ids)
        return ":".join(segments)

    def _tagged_prefix(self, entity: str) -> str:
        """``<ns>:<entity>:<app>:``, before the tag of a tagged key."""
        return f"{self.namespace.namespace}:{entity}:{self._tagged_app_segment}:"

    def _tagged(self, entity: str, tag: str, *ids: str) -> str:
        """``<ns>:<entity>:<app>:{<tag>}[:<id>...]``: a key in the hash slot of ``tag``."""
        key = self._tagged_prefix(entity) + hash_tag(tag)
        return ":".join([key, *(_encode_tagged(i) for i in ids)]) if ids else key

    def _app_tagged(self, entity: str) -> str:
        """``<ns>:<entity>:<app>:{<app>}``: a per-app structure in the app's hash slot."""
        return self._tagged_prefix(entity) + self._app_tag

    def _tags_of(self, entity: str, keys: list[str]) -> list[str]:
        """Return the tag ids of this app's ``<ns>:<entity>:<app>:{<id>}`` keys."""
        start = len(self._tagged_prefix(entity))
        return [decode_tag(key[start:]) for key in keys]

    def invocation(self, invocation_id: str) -> str:
        return f"{self._invocation_prefix}{{{_encode_tagged(invocation_id)}}}"  # _tagged's, on the hot path

    def invocation_ids_of(self, keys: list[str]) -> list[str]:
        """Return the invocation ids of this app's invocation document keys (as the
        invocations index returns them for a query filtered on this app)."""
        return self._tags_of(DocumentKind.INVOCATION, keys)

    def history(self, invocation_id: str, entry_id: str) -> str:
        """The key of one history entry of ``invocation_id``, in its invocation's slot (the
        history script writes both). The backend's ``entry_id`` is random, an imported one
        deterministic within the invocation (so a re-import finds what it wrote)."""
        return self._tagged(DocumentKind.HISTORY, invocation_id, entry_id)

    def runner_context(self, runner_id: str) -> str:
        return self._tagged(DocumentKind.RUNNER_CONTEXT, runner_id)

    def workflow_run(self, workflow_id: str) -> str:
        return self._tagged(DocumentKind.WORKFLOW_RUN, workflow_id)

    def workflow_sub_invocation(self, workflow_id: str, sub_invocation_id: str) -> str:
        """In the sub-invocation's slot: prune deletes it with the sub-invocation."""
        return self._tagged(DocumentKind.WORKFLOW_SUB_INVOCATION, sub_invocation_id, workflow_id)

    def app_info(self) -> str:
        return self._key(DocumentKind.APP_INFO)

    def result(self, invocation_id: str) -> str:
        return self._tagged(DocumentKind.RESULT, invocation_id)

    def exception(self, invocation_id: str) -> str:
        return self._tagged(DocumentKind.EXCEPTION, invocation_id)

    def workflow_data(self, workflow_id: str, data_key: str) -> str:
        return self._tagged(DocumentKind.WORKFLOW_DATA, workflow_id, data_key)

    def prune_pending_workflows(self) -> str:
        """Return the set of workflows whose collection a prune run still owes (see prune.py)."""
        return self._key(_PRUNE_PENDING_WORKFLOWS)

    # -- the orchestrator's documents ----------------------------------------------------

    def orchestrator_invocation(self, invocation_id: str) -> str:
        """In the slot of the invocation's state backend documents."""
        return self._tagged(_ORCHESTRATOR_INVOCATION, invocation_id)

    def orchestrator_invocation_ids_of(self, keys: list[str]) -> list[str]:
        """Return the invocation ids of this app's orchestrator invocation keys."""
        return self._tags_of(_ORCHESTRATOR_INVOCATION, keys)

    def orchestrator_wait(self, waiter_id: str, waited_id: str) -> str:
        """The blocking edge ``waiter_id`` waits for ``waited_id`` (in the waiter's slot)."""
        return self._tagged(_ORCHESTRATOR_WAIT, waiter_id, waited_id)

    def runner_heartbeat(self, runner_id: str) -> str:
        """In the app's slot, with the atomic-service lease (one script reads both); one small
        document per live runner, so the app's slot holds little."""
        return self.runner_heartbeat_prefix() + _encode_tagged(runner_id)

    def runner_heartbeat_prefix(self) -> str:
        """What a script puts before a runner id (escaped as :func:`_encode_tagged` does) to
        name the runner's heartbeat document."""
        return self._app_tagged(_RUNNER_HEARTBEAT) + ":"

    def atomic_service_execution(self, run_id: str) -> str:
        """In the app's slot, with the lease that names the RUNNING one (one script reads both)."""
        return f"{self._app_tagged(_ATOMIC_SERVICE_EXECUTION)}:{_encode_tagged(run_id)}"

    def atomic_service_lease(self) -> str:
        """The lock naming the document of the app's RUNNING atomic-service execution."""
        return self._app_tagged(_ATOMIC_SERVICE_LEASE)

    def registration_lock(self, task_key: str, key_arguments_digest: str) -> str:
        """The lock held while one call of a task with registration concurrency is routed."""
        return self._key(_REGISTRATION_LOCK, task_key, key_arguments_digest)

    def running_holder(self, task_key: str, running_slot: str) -> str:
        """The lease on one running-concurrency slot (a hash: ``invocation``, the document key
        of the invocation that started in it, and ``token``, new at each claim), in the slot's
        own hash slot: every slot of an app lives on whichever shard its name falls on."""
        return self._tagged(_RUNNING_HOLDER, f"{task_key}:{running_slot}")

    def running_holder_pattern(self) -> str:
        """``SCAN MATCH`` pattern of this app's running-slot leases (purge finds them by it)."""
        return glob_escape(self._tagged_prefix(_RUNNING_HOLDER)) + "*"

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
        return self._tagged(_TRIGGER_EVENT, event_id)

    def trigger_event_ids_of(self, keys: list[str]) -> list[str]:
        """Return the event ids of this app's trigger event document keys."""
        return self._tags_of(_TRIGGER_EVENT, keys)

    def trigger_run(self, trigger_run_id: str) -> str:
        return self._tagged(_TRIGGER_RUN, trigger_run_id)

    def trigger_definition(self, trigger_id: str) -> str:
        """The document of one trigger definition."""
        return self._tagged(_TRIGGER_DEFINITION, trigger_id)

    def trigger_condition(self, condition_id: str) -> str:
        """The document of one trigger condition (with the tasks it is sourced from)."""
        return self._tagged(_TRIGGER_CONDITION, condition_id)

    def trigger_valid_conditions(self) -> str:
        """The hash of valid conditions waiting for the trigger loop, by valid condition id."""
        return self._app_tagged(_TRIGGER_VALID_CONDITIONS)

    def trigger_cron(self) -> str:
        """The hash of the last execution of each cron condition (epoch microseconds), in the
        valid conditions' slot (a cron tick stores both in one script)."""
        return self._app_tagged(_TRIGGER_CRON)

    def trigger_run_claims(self) -> str:
        """The sorted set of claimed trigger run ids, scored by claim expiry (server ms)."""
        return self._key(_TRIGGER_RUN_CLAIMS)


def group_by_slot(keys: Iterable[str]) -> list[list[str]]:
    """Return ``keys`` grouped by cluster hash slot (each group in the order given, the groups
    in the order of their first key): a multi-key command or script per group is
    cluster-safe."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())
