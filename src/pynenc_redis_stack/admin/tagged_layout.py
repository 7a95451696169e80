"""The move of a store written with untagged keys to the hash-tagged layout (``index migrate``).

Versions before this one named documents ``<ns>:<entity>:<app>:<id>...`` with no hash tag,
kept the app's heartbeats, atomic-service lease and the trigger's cron schedule and valid
conditions under untagged per-app keys, and ordered equal timestamps with two global counters
(``<ns>:history-seq``, ``<ns>:orchestrator-seq``). :func:`move_to_tagged_layout` gives every
document and per-app structure its tagged key (:mod:`pynenc_redis_stack.core.keys`), rewrites
the atomic-service lease (which names a document key), splits each app's hash of
running-concurrency holders into one lease per slot, and deletes the counters. Stored ``seq``
and ``registered_seq`` values stay: they are below every arrival stamp, so entries written before the move keep their order and come
before later ones of equal timestamp.

Documents are found with ``SCAN ... MATCH <ns>:<entity>:*`` (a one-off walk of the keyspace)
and each one's new key is computed from the ids its document holds, so a key already tagged
is recognised whatever its ids contain. A key moves with ``COPY`` (its value and expiry; the
indexes follow the copy) then ``UNLINK``: a run killed between the two leaves both, and the
next run finds the copy in place and deletes the original. Every step is idempotent, so an
interrupted run is resumed by running it again. Run it on one server (or a Sentinel master),
with this version's workers stopped, before moving the data to a cluster: a copy crosses hash
slots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import Document, loads
from pynenc_redis_stack.core.command_line import redis_cli_line
from pynenc_redis_stack.core.indexes.executor import index_info
from pynenc_redis_stack.core.keys import (
    AppKeys,
    DocumentKind,
    Namespace,
    decode_segment,
    encode_segment,
    glob_escape,
)
from pynenc_redis_stack.core.schema import SCHEMA_SETS, load_schema_set

if TYPE_CHECKING:
    from pynenc_redis_stack.core.indexes.executor import Progress

SCAN_COUNT = 1000
"""Keys ``SCAN`` looks at per call (and keys per pipeline)."""

type NewKey = Callable[[AppKeys, Document, str], str]
"""The tagged key of a document, from its app's keys, its fields and its current key."""


def _last_segment(key: str) -> str:
    return decode_segment(key.rsplit(":", 1)[1])


DOCUMENTS: dict[str, NewKey] = {
    DocumentKind.INVOCATION: lambda k, d, _key: k.invocation(d["invocation_id"]),
    # the entry id is the key's last segment, in the backend's and the importer's keys alike
    DocumentKind.HISTORY: lambda k, d, key: k.history(d["invocation_id"], _last_segment(key)),
    DocumentKind.RESULT: lambda k, d, _key: k.result(d["owner_id"]),
    DocumentKind.EXCEPTION: lambda k, d, _key: k.exception(d["owner_id"]),
    DocumentKind.WORKFLOW_DATA: lambda k, d, _key: k.workflow_data(d["owner_id"], d["name"]),
    DocumentKind.RUNNER_CONTEXT: lambda k, d, _key: k.runner_context(d["runner_id"]),
    DocumentKind.WORKFLOW_RUN: lambda k, d, _key: k.workflow_run(d["workflow_id"]),
    DocumentKind.WORKFLOW_SUB_INVOCATION: lambda k, d, _key: k.workflow_sub_invocation(
        d["workflow_id"], d["sub_invocation_id"]
    ),
    "orchestrator-invocation": lambda k, d, _key: k.orchestrator_invocation(d["invocation_id"]),
    "orchestrator-wait": lambda k, d, _key: k.orchestrator_wait(d["waiter_id"], d["waited_id"]),
    "runner-heartbeat": lambda k, d, _key: k.runner_heartbeat(d["runner_id"]),
    "atomic-service-execution": lambda k, d, _key: k.atomic_service_execution(d["run_id"]),
    "trigger-event": lambda k, d, _key: k.trigger_event(d["event_id"]),
    "trigger-run": lambda k, d, _key: k.trigger_run(d["trigger_run_id"]),
    "trigger-definition": lambda k, d, _key: k.trigger_definition(d["trigger_id"]),
    "trigger-condition": lambda k, d, _key: k.trigger_condition(d["condition_id"]),
}
"""Every kind of document whose key the tagged layout changed (app infos keep theirs)."""

PER_APP: dict[str, Callable[[AppKeys], str]] = {
    "trigger-valid-conditions": AppKeys.trigger_valid_conditions,
    "trigger-cron": AppKeys.trigger_cron,
}
"""Per-app structures moved to the app's slot, by entity (``<ns>:<entity>:<app>`` before)."""

LEASE = "atomic-service-lease"
HOLDERS = "running-holders"
COUNTERS = ("history-seq", "orchestrator-seq")


@dataclass
class TaggedLayoutMove:
    """What :func:`move_to_tagged_layout` did (or, on a dry run, would do).

    :ivar moved: Keys given their tagged name, per entity.
    :ivar rewritten: Values naming a document key rewritten (holders and leases).
    :ivar deleted: The global counters deleted.
    """

    moved: Counter[str] = field(default_factory=Counter)
    rewritten: int = 0
    deleted: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.moved.values()) + self.rewritten + len(self.deleted)

    def lines(self, dry_run: bool) -> list[str]:
        """One line per kind of change, for the command's summary."""
        done = "would be " if dry_run else ""
        lines = [
            f"tagged keys: {entity}: {count} {done}moved" for entity, count in self.moved.items() if count
        ]
        if self.rewritten:
            lines.append(f"tagged keys: {self.rewritten} holder and lease values {done}rewritten")
        if self.deleted:
            lines.append(f"tagged keys: counters {', '.join(self.deleted)} {done}deleted")
        return lines


def _scan(
    client: redis.Redis, namespace: Namespace, beat: Callable[[], None]
) -> Iterator[dict[str, list[str]]]:
    """Every key of ``namespace``, a ``SCAN`` page at a time, grouped by entity (one walk of
    the keyspace; ``beat`` after every page, so ``index migrate`` keeps its lock)."""
    start = len(namespace.namespace) + 1
    pattern = glob_escape(namespace.namespace) + ":*"
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, match=pattern, count=SCAN_COUNT)
        page: dict[str, list[str]] = {}
        for key in found:
            page.setdefault(str(key)[start:].split(":", 1)[0], []).append(str(key))
        yield page
        beat()
        if cursor == 0:
            return


def move_to_tagged_layout(
    client: redis.Redis,
    namespace: Namespace,
    *,
    dry_run: bool = False,
    print_line: Callable[[str], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
    progress: Progress | None = None,
) -> TaggedLayoutMove:
    """Give every document and per-app structure of ``namespace`` its hash-tagged key.

    Two walks of the keyspace: the first finds the values naming document keys (holders and
    leases) and rewrites them while those documents can still be read where they name them;
    the second moves the keys.

    :param dry_run: Count, and print through ``print_line`` the commands a run would send;
        change nothing.
    :param heartbeat: Called after every page (``index migrate`` keeps its lock alive).
    :param progress: Receives the share of the keyspace walked.
    """
    report = TaggedLayoutMove()
    show = print_line if dry_run and print_line is not None else None
    beat = heartbeat or (lambda: None)

    def send(commands: Sequence[tuple[str, ...]]) -> None:
        if show is not None:
            for command in commands:
                show(redis_cli_line(list(command)))
        elif not dry_run and commands:
            pipe = client.pipeline(transaction=False)
            for command in commands:
                run(pipe, *command)
            pipe.execute()
        beat()

    total = max(1, _indexed_documents(client, namespace))
    seen = 0

    def advance(walk: int, found: int) -> None:
        nonlocal seen
        seen += found
        if progress is not None:
            progress.update("tagged keys", min(1.0, (walk + seen / total) / 2), f"{seen} keys looked at")

    holders: list[str] = []
    leases: list[str] = []
    for page in _scan(client, namespace, beat):
        holders += page.get(HOLDERS, [])
        leases += page.get(LEASE, [])
        advance(0, sum(map(len, page.values())))
    _split_holders(client, namespace, holders, report, send)
    _move_leases(client, namespace, leases, report, send)
    seen = 0
    for page in _scan(client, namespace, beat):
        for entity, new_key in DOCUMENTS.items():
            if entity in page:
                _move_documents(client, namespace, entity, new_key, page[entity], report, send)
        for entity, per_app_key in PER_APP.items():
            moves = []
            for key in page.get(entity, []):
                segments = key.split(":")
                if len(segments) == 3:  # <ns>:<entity>:<app>; tagged ones have a fourth
                    moves.append((key, per_app_key(namespace.for_app(decode_segment(segments[2])))))
            report.moved[entity] += len(moves)
            if moves:
                send([command for old, new in moves for command in _move(old, new)])
        advance(1, sum(map(len, page.values())))
    counters = [f"{namespace.namespace}:{name}" for name in COUNTERS]
    present = [key for key, exists in zip(counters, _exists(client, counters), strict=True) if exists]
    report.deleted.extend(present)
    send([("UNLINK", key) for key in present])
    if progress is not None:
        progress.update("tagged keys", 1.0, f"{report.total} changes")
        progress.done("tagged keys")
    return report


def _exists(client: redis.Redis, keys: Sequence[str]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        run(pipe, "EXISTS", key)
    return list(pipe.execute())


def _move(old: str, new: str) -> list[tuple[str, ...]]:
    """``COPY`` (value and expiry; refused when ``new`` exists: a rerun after a kill between
    the two commands, whose copy is in place), then ``UNLINK`` of the original."""
    return [("COPY", old, new), ("UNLINK", old)]


def _move_documents(
    client: redis.Redis,
    namespace: Namespace,
    entity: str,
    new_key: NewKey,
    page: list[str],
    report: TaggedLayoutMove,
    send: Callable[[Sequence[tuple[str, ...]]], None],
) -> None:
    pipe = client.pipeline(transaction=False)
    for key in page:
        run(pipe, "JSON.GET", key)
    moves = []
    for key, raw in zip(page, pipe.execute(raise_on_error=False), strict=True):
        if not isinstance(raw, str):
            continue  # gone meanwhile, or not a document
        document = loads(raw)
        if not isinstance(document, dict) or "app_id" not in document:
            continue  # not one of this package's documents
        try:
            target = new_key(namespace.for_app(document["app_id"]), document, key)
        except KeyError:
            continue  # a document without its ids (a status stub before its upsert: its key is kept)
        if target != key:
            moves.append((key, target))
    report.moved[entity] += len(moves)
    send([command for old, new in moves for command in _move(old, new)])


def _split_holders(
    client: redis.Redis,
    namespace: Namespace,
    found: list[str],
    report: TaggedLayoutMove,
    send: Callable[[Sequence[tuple[str, ...]]], None],
) -> None:
    """Turn each app's hash of running-concurrency holders (field ``<task>:<slot>``, value the
    holder's document key) into one lease per slot in that slot's hash slot, naming the
    holder's tagged document, then delete the hash."""
    for holders in found:
        keys = namespace.for_app(decode_segment(holders.split(":")[2]))
        fields = {str(slot): str(value) for slot, value in client.hgetall(holders).items()}
        documents = _invocation_ids(client, list(fields.values()))
        commands: list[tuple[str, ...]] = []
        for field_name, document_key in fields.items():
            invocation_id = documents.get(document_key)
            if invocation_id is None:
                continue  # its invocation is gone: the slot is free
            task_key, slot = field_name.rsplit(":", 1)
            lease = keys.running_holder(task_key, slot)
            commands.append(
                ("HSET", lease, "invocation", keys.orchestrator_invocation(invocation_id), "token", "moved")
            )
        report.rewritten += len(commands)
        send([*commands, ("UNLINK", holders)])


def _invocation_ids(client: redis.Redis, keys: list[str]) -> dict[str, str]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        run(pipe, "JSON.GET", key, "$.invocation_id")
    found = {}
    for key, raw in zip(keys, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(raw, str) and loads(raw):
            found[key] = str(loads(raw)[0])
    return found


def _move_leases(
    client: redis.Redis,
    namespace: Namespace,
    found: list[str],
    report: TaggedLayoutMove,
    send: Callable[[Sequence[tuple[str, ...]]], None],
) -> None:
    """Move each app's atomic-service lease to its tagged key, naming the tagged execution."""
    for lease in found:
        segments = lease.split(":")
        if len(segments) != 3:
            continue  # tagged already
        keys = namespace.for_app(decode_segment(segments[2]))
        holder = run(client, "GET", lease)
        ttl = int(run(client, "PTTL", lease))
        run_id = None
        if holder is not None:
            raw = run(client, "JSON.GET", holder, "$.run_id")
            run_id = str(loads(raw)[0]) if raw and loads(raw) else None
        commands: list[tuple[str, ...]] = []
        if run_id is not None:
            expiry = ("PX", str(ttl)) if ttl > 0 else ()
            commands.append(
                ("SET", keys.atomic_service_lease(), keys.atomic_service_execution(run_id), *expiry)
            )
            report.rewritten += 1
        commands.append(("UNLINK", lease))
        send(commands)


def old_key(namespace: Namespace, entity: str, app_id: str, *ids: str) -> str:
    """The untagged key the earlier layout gave ``entity`` of ``app_id`` (tests plant stores
    with it)."""
    return ":".join((namespace.namespace, entity, *(encode_segment(part) for part in (app_id, *ids))))


def _indexed_documents(client: redis.Redis, namespace: Namespace) -> int:
    """The documents the namespace's indexes hold (``FT.INFO`` ``num_docs``): the progress
    bar's total. Not ``DBSIZE``: it counts every namespace's keys, and the package's ACL rule
    does not grant it."""
    total = 0
    for schema_set in SCHEMA_SETS:
        for spec in load_schema_set(schema_set).all():
            info = index_info(client, namespace.alias(spec))
            total += int(info.get("num_docs", 0)) if info else 0
    return total
