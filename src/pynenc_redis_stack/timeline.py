"""The history timeline: every history entry of an app in one sorted set, scored by its
timestamp, for ``iter_history_in_timerange`` (and pynmon's timeline).

Why a set beside the index: a time range is read in time order, and through the history
index each page is a sort of the rows in its window plus a ``LOAD`` of each JSON document,
about twice pynenc-redis's time per entry (docs/performance.md). A ``ZRANGE ... BYSCORE
LIMIT`` of members that hold the whole entry needs neither. Each member is the entry's seq in
12 hex digits followed by the entry (:func:`~pynenc_redis_stack.documents.timeline_member`),
so members are unique and entries of equal timestamp come in arrival order, as the index
orders them by ``seq``. The set is never maintained by hand: the history script adds each
entry, prune's delete script removes it, purge drops the set. The history index keeps every
entry, so operators still ask time questions with ``FT.AGGREGATE`` from ``redis-cli``.

A store written before the timeline existed (versions before 0.4) has entries in no set:
until :func:`backfill` (run by ``pynenc-redis-stack index migrate``) has added every entry of
an app and written the app's completeness key, the backend reads ranges through the index.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack import query
from pynenc_redis_stack.backfill import DerivedStructure, Rows
from pynenc_redis_stack.client import run_raw
from pynenc_redis_stack.keys import AppKeys
from pynenc_redis_stack.scripts import BACKFILL_TIMELINE, Script

_backfill = Script(BACKFILL_TIMELINE, repeatable=True)


def iter_range(
    client: redis.Redis, key: str, bounds: tuple[int, int], page_size: int
) -> Iterator[list[InvocationHistory]]:
    """Yield the timeline's entries with ``bounds[0] <= ts <= bounds[1]`` in pages, in order.

    Each page is one ``ZRANGE BYSCORE LIMIT`` from the last timestamp seen, skipping the
    members of that timestamp already yielded but the last one, which must come back first.
    If it does not, members before it were removed meanwhile (prune) and the offset is stale:
    the page is read again from that timestamp's first member, keeping the members after the
    last one yielded. So no entry is skipped or repeated whatever is added or removed during
    the scan, and a page reads its own rows plus one (the rest of a timestamp's run only after
    a removal).
    """
    low, high = bounds
    start, seen_at_start, last_member = low, 0, b""
    while start <= high:
        overlap = 1 if seen_at_start else 0
        count = page_size + overlap
        members: list[bytes] = run_raw(
            client,
            "ZRANGE",
            key,
            str(start),
            str(high),
            "BYSCORE",
            "LIMIT",
            str(seen_at_start - overlap),
            str(count),
        )
        exhausted = len(members) < count
        if overlap:
            if members and members[0] == last_member:
                members = members[1:]
            else:
                members, exhausted = _after(
                    client, key, (start, high), last_member, seen_at_start + page_size
                )
        page = [docs.history_from_timeline(member) for member in members]
        if page:
            yield [entry for _ts, entry in page]
        if exhausted or not page:
            return
        last_ts = page[-1][0]
        run_length = len(page) - next(
            (i + 1 for i in range(len(page) - 1, -1, -1) if page[i][0] != last_ts), 0
        )
        continues_run = run_length == len(page) and last_ts == start
        seen_at_start = seen_at_start + run_length if continues_run else run_length
        start, last_member = last_ts, members[-1]


def _after(
    client: redis.Redis, key: str, bounds: tuple[int, int], last_member: bytes, count: int
) -> tuple[list[bytes], bool]:
    """The slow path of :func:`iter_range`: read ``count`` members from the first one of
    timestamp ``bounds[0]`` (the last member yielded has that timestamp) and keep those after
    ``last_member``; also tell whether the range is exhausted."""
    start, high = bounds
    members: list[bytes] = run_raw(
        client, "ZRANGE", key, str(start), str(high), "BYSCORE", "LIMIT", "0", str(count)
    )
    # Members come ordered by (ts, bytes); those of ts == start sort by their seq prefix.
    later = [
        member for member in members if member > last_member or docs.history_from_timeline(member)[0] != start
    ]
    return later, len(members) < count


def _add(client: redis.Redis, keys: AppKeys, rows: Rows) -> int:
    """Add a page of an app's history entries to its timeline: the script adds an entry only
    while its document exists (prune may have deleted it since it was read) and no member of
    its seq is there (the history script, or an earlier run, added it)."""
    entry_keys: list[str] = []
    args: list[str] = []
    for row in rows:
        entry = docs.loads(row["doc"])
        seq = entry.pop("seq")
        entry_keys.append(row["__key"])
        args.extend((str(entry["ts"]), f"{seq:0{docs.TIMELINE_SEQ_DIGITS}x}", _member(entry)))
    timeline_and_entries = [keys.history_timeline(), *entry_keys]
    return int(_backfill.run_in(client.pipeline(transaction=False), timeline_and_entries, args)[-1])


def _member(entry: docs.Document) -> str:
    """The member tail of a stored entry document (without its seq), as the history script's
    caller builds it."""
    if "status_record" in entry:  # the nested layout written before 0.2
        entry = docs.history_document(entry["app_id"], docs.history_from_document(entry))
    return docs.timeline_member(entry["invocation_id"], docs.listed_entry(entry))


TIMELINE = DerivedStructure(
    spec_of=lambda schemas: schemas.history,
    complete_key_of=AppKeys.history_timeline_complete,
    stale="has history stored before the history timeline existed (pynenc-redis-stack < 0.4): "
    "time ranges are read through the index",
    steps=(*query.LOAD_KEY, *query.LOAD_DOCUMENT),
    add=_add,
)
"""The history timeline: complete for an app (``TIMELINE.complete``), filled by
``index migrate`` (``TIMELINE.backfill``)."""
