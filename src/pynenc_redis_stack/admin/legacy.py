"""The keys an earlier layout kept beside the documents, and their removal by ``index migrate``.

The earlier layout copied data out of the documents to answer lookups without the indexes
(call texts, history lists and timelines, relation sets, completeness keys, a
``history_list`` mark). :func:`clean_legacy` merges each call text into its invocation
document and deletes the rest; this module is the only place that names those keys. Which
keys, how they are found, and why each step is safe to repeat and to run beside writers:
docs/lifecycle.md, "index migrate".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.command_line import redis_cli_line
from pynenc_redis_stack.core.indexes.executor import Progress, index_info
from pynenc_redis_stack.core.keys import DocumentKind, Namespace, encode_segment
from pynenc_redis_stack.core.reads import iter_cursor
from pynenc_redis_stack.core.schema import Schemas
from pynenc_redis_stack.core.scripts import Script


@dataclass(frozen=True)
class LegacyKind:
    """One kind of key of the earlier layout: ``<ns>:<entity>:<app>[:<id>]`` of one Redis type."""

    entity: str
    redis_type: str
    what: str


INVOCATION_CALL = LegacyKind("invocation-call", "string", "invocation call texts")
"""``<ns>:invocation-call:<app>:<invocation>``: the fields the document lacked, as JSON."""
HISTORY_LIST = LegacyKind("history-list", "list", "history lists")
"""``<ns>:history-list:<app>:<invocation>``: ``[seq, ts, status, runner context, {rest}?]`` each."""
HISTORY_TIMELINE = LegacyKind("history-timeline", "zset", "history timelines")
"""``<ns>:history-timeline:<app>``: ``<seq, 12 hex digits>[invocation, ts, ...]`` scored by ts."""
RELATION_SETS = {
    "parent_invocation_id": LegacyKind("children", "set", "relation sets by parent"),
    "parent_event_id": LegacyKind("by-event", "set", "relation sets by parent event"),
    "workflow_id": LegacyKind("by-workflow", "set", "relation sets by workflow"),
    "workflow_type_key": LegacyKind("by-workflow-type", "set", "relation sets by workflow type"),
}
"""``<ns>:<entity>:<app>:<value>``: the ids of the invocations whose field is ``value``."""
RELATION_SETS_COMPLETE = LegacyKind("relation-sets", "string", "relation-set completeness keys")
TIMELINE_COMPLETE = LegacyKind("history-timeline-complete", "string", "timeline completeness keys")
LEGACY_KINDS: tuple[LegacyKind, ...] = (
    INVOCATION_CALL,
    HISTORY_LIST,
    HISTORY_TIMELINE,
    *RELATION_SETS.values(),
    RELATION_SETS_COMPLETE,
    TIMELINE_COMPLETE,
)
"""Every kind of key the earlier layout kept beside the documents."""

HISTORY_LIST_MARK = "history_list"
"""The field earlier invocation documents carried to say their history list was complete."""

SCAN_COUNT = 1000
"""Keys ``SCAN`` looks at per call (and keys per ``UNLINK``)."""

MERGE_CALL_TEXTS = """
-- KEYS: per invocation, its document key and its call text's key. ARGV: per invocation, the
-- call text as read. A call text changed or gone since it was read is left to the next run.
-- It is merged only into a document no upsert of this version wrote (no task_module): such
-- an upsert wrote the whole invocation, which wins. Then the mark goes and the text is deleted.
-- Returns how many call texts were merged.
local merged = 0
for i = 1, #KEYS / 2 do
  local document, text = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('GET', text) == ARGV[i] then
    if redis.call('EXISTS', document) == 1 then
      if #redis.call('JSON.TYPE', document, '$.task_module') == 0 then
        redis.call('JSON.MERGE', document, '$', ARGV[i])
        merged = merged + 1
      end
      redis.call('JSON.DEL', document, '$.history_list')
    end
    redis.call('DEL', text)
  end
end
return merged
"""

merge_call_texts_script = Script(MERGE_CALL_TEXTS, repeatable=True)


@dataclass
class LegacyCleanup:
    """What :func:`clean_legacy` did (or, on a dry run, would do).

    :ivar merged: Call texts merged into their invocation documents.
    :ivar deleted: Keys deleted per kind (:attr:`LegacyKind.what`).
    :ivar unmarked: Invocation documents whose ``history_list`` mark was removed.
    """

    merged: int = 0
    deleted: Counter[str] = field(default_factory=Counter)
    unmarked: int = 0

    @property
    def total(self) -> int:
        return self.merged + sum(self.deleted.values()) + self.unmarked

    def lines(self, dry_run: bool) -> list[str]:
        """One line per kind of key found, for the command's summary."""
        done = "would be " if dry_run else ""
        lines = []
        for what, count in self.deleted.items():
            if what == INVOCATION_CALL.what:
                merged = f", {self.merged} {done}merged into their invocation documents first"
                lines.append(f"earlier layout: {what}: {count} {done}deleted{merged}")
            elif count:
                lines.append(f"earlier layout: {what}: {count} {done}deleted")
        if self.unmarked:
            lines.append(f"earlier layout: {HISTORY_LIST_MARK!r} marks: {self.unmarked} {done}removed")
        return lines


def legacy_key(namespace: Namespace, kind: LegacyKind, app_id: str, *ids: str) -> str:
    """Return the key the earlier layout gave ``kind`` for ``app_id`` (and ``ids``)."""
    return ":".join((namespace.namespace, kind.entity, *(encode_segment(part) for part in (app_id, *ids))))


def scan_pattern(namespace: Namespace, kind: LegacyKind) -> str:
    """Return the ``SCAN MATCH`` pattern of ``kind``'s keys, the namespace glob-escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", namespace.namespace) + f":{kind.entity}:*"


def invocation_key_of(call_key: str, namespace: Namespace) -> str:
    """Return the invocation document key of a call text's key (same app and id segments)."""
    prefix = f"{namespace.namespace}:{INVOCATION_CALL.entity}:"
    return f"{namespace.namespace}:{DocumentKind.INVOCATION}:{call_key[len(prefix) :]}"


def clean_legacy(
    client: redis.Redis,
    namespace: Namespace,
    schemas: Schemas,
    *,
    dry_run: bool = False,
    print_line: Callable[[str], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
    progress: Progress | None = None,
) -> LegacyCleanup:
    """Merge the earlier layout's call texts into their invocation documents and delete every
    other key of :data:`LEGACY_KINDS` and every ``history_list`` mark.

    :param dry_run: Count, and print through ``print_line`` the commands a run would send
        (each merge as a comment); change nothing.
    :param heartbeat: Called after every batch (``index migrate`` keeps its lock alive).
    :param progress: Receives one step per kind of key.
    """
    report = LegacyCleanup()
    show = print_line if dry_run and print_line is not None else None
    steps = len(LEGACY_KINDS) + 1
    for step, kind in enumerate(LEGACY_KINDS):
        if progress is not None:
            progress.update("earlier layout", step / steps, kind.what)
        cursor = 0
        while True:
            cursor, found = client.scan(cursor, match=scan_pattern(namespace, kind), count=SCAN_COUNT)
            if found:
                _clean_page(client, namespace, kind, [str(key) for key in found], report, show, dry_run)
                if heartbeat is not None:
                    heartbeat()
            if cursor == 0:
                break
    if progress is not None:
        progress.update("earlier layout", (steps - 1) / steps, f"{HISTORY_LIST_MARK!r} marks")
    _unmark(client, namespace, schemas, report, show, dry_run, heartbeat)
    if progress is not None:
        progress.update("earlier layout", 1.0, f"{report.total} changes")
        progress.done("earlier layout")
    return report


def _clean_page(
    client: redis.Redis,
    namespace: Namespace,
    kind: LegacyKind,
    found: list[str],
    report: LegacyCleanup,
    show: Callable[[str], None] | None,
    dry_run: bool,
) -> None:
    pipe = client.pipeline(transaction=False)
    for key in found:
        pipe.type(key)
    keys = [key for key, key_type in zip(found, pipe.execute(), strict=True) if key_type == kind.redis_type]
    if not keys:
        return
    if kind is not INVOCATION_CALL:
        report.deleted[kind.what] += len(keys)
        if show is not None:
            for key in keys:
                show(redis_cli_line(["UNLINK", key]))
        elif not dry_run:
            client.unlink(*keys)
        return
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    texts = pipe.execute()
    pairs = [(key, text) for key, text in zip(keys, texts, strict=True) if text is not None]
    report.deleted[kind.what] += len(pairs)
    if dry_run:
        # What the script would do on the store as it is now, as the commands it runs.
        pipe = client.pipeline(transaction=False)
        for key, _text in pairs:
            document = invocation_key_of(key, namespace)
            run(pipe, "EXISTS", document)
            run(pipe, "JSON.TYPE", document, "$.task_module")
        found = pipe.execute(raise_on_error=False)
        for n, (key, text) in enumerate(pairs):
            document = invocation_key_of(key, namespace)
            exists, task_module = found[2 * n], found[2 * n + 1]
            merge = bool(exists) and not task_module
            report.merged += merge
            if show is not None:
                if merge:
                    show(redis_cli_line(["JSON.MERGE", document, "$", text]))
                if exists:
                    show(redis_cli_line(["JSON.DEL", document, f"$.{HISTORY_LIST_MARK}"]))
                show(redis_cli_line(["DEL", key]))
        return
    script_keys = [k for key, _text in pairs for k in (invocation_key_of(key, namespace), key)]
    replies = merge_call_texts_script.run_in(
        client.pipeline(transaction=False), script_keys, [t for _k, t in pairs]
    )
    report.merged += int(replies[-1])


def _unmark(
    client: redis.Redis,
    namespace: Namespace,
    schemas: Schemas,
    report: LegacyCleanup,
    show: Callable[[str], None] | None,
    dry_run: bool,
    heartbeat: Callable[[], None] | None,
) -> None:
    """Remove the ``history_list`` mark from every invocation document holding it."""
    spec = schemas.invocations
    alias = namespace.alias(spec)
    if index_info(client, alias) is None:
        return  # no index yet (a dry run before creating it): nothing to find
    request = query.Aggregate(
        alias, query.Filter(spec), (*query.LOAD_KEY, *query.has_path(f"$.{HISTORY_LIST_MARK}"))
    )
    for rows in iter_cursor(client, request, SCAN_COUNT):
        keys = [row["__key"] for row in rows]
        report.unmarked += len(keys)
        if show is not None:
            for key in keys:
                show(redis_cli_line(["JSON.DEL", key, f"$.{HISTORY_LIST_MARK}"]))
        elif not dry_run:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                run(pipe, "JSON.DEL", key, f"$.{HISTORY_LIST_MARK}")
            pipe.execute()
        if heartbeat is not None:
            heartbeat()
