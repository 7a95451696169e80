"""Client data store values nothing refers to: counted by ``health``, deleted by ``prune``.

pynenc names a client data value by the hash of its content and stores it before it writes
whatever refers to it (an invocation's arguments, a result, an exception, a trigger's event
payload, argument filter or provider), and records nowhere who refers to it. So a value is
orphaned when no document of the app (every component's, read through its index) and none of
the trigger's valid conditions holds its reference key, and it was last stored longer than
:data:`GRACE_MS` ago. Each store stamps the value with the storing host's clock in the same
``HSET`` (:func:`~pynenc_redis_stack.client_data_store.store.stored_at_field`): a value stored
again for a document being written now is never taken for an orphan, and the delete script
checks the stamp again. A value stored before stamps existed is stamped by the first prune
that finds it unreferenced, and deleted by a later one.

Cost: one read of every document of the app, only when the client data store holds values.
References held outside this package's components (pynenc's SQLite trigger beside this
client data store) are not seen: prune such an app's client data with ``--keep-client-data``.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Set
from dataclasses import dataclass

import redis
from pynenc.serializer.constants import ReservedKeys

from pynenc_redis_stack.admin.purge import schema_sets_in_use
from pynenc_redis_stack.client_data_store.store import STORED_AT
from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.reads import iter_cursor
from pynenc_redis_stack.core.scripts import Script
from pynenc_redis_stack.core.store import json_mget

GRACE_MS = 3_600_000
"""A value stored within this many milliseconds is kept, referred to or not: it may belong to
a document being written (and hosts' clocks may differ by less than this)."""

REFERENCE = re.compile(re.escape(ReservedKeys.CLIENT_DATA.value) + r":[0-9a-f]{64}")
"""A reference key as pynenc writes it, found anywhere in a document's JSON text (also inside
a JSON string nested in it, such as a serialized exception's data)."""

DELETE_ORPHANS = Script(
    """
-- KEYS[1]: the app's client data hash. ARGV[1]: now (epoch ms); ARGV[2]: values last stored
-- before this (epoch ms) may go; ARGV[3..]: reference keys no document referred to when read.
-- A value stored again since (its stamp moved) stays; one without a stamp is stamped now.
-- Returns the number of values deleted.
local deleted = 0
for i = 3, #ARGV do
  local reference = ARGV[i]
  local stamp_field = '"""
    + STORED_AT
    + """' .. reference
  -- a stamp is written and deleted with its value: one exists only beside its value
  local stamp = redis.call('HGET', KEYS[1], stamp_field)
  if stamp then
    if tonumber(stamp) < tonumber(ARGV[2]) then
      redis.call('HDEL', KEYS[1], reference, stamp_field)
      deleted = deleted + 1
    end
  elseif redis.call('HGET', KEYS[1], reference) then
    redis.call('HSET', KEYS[1], stamp_field, ARGV[1])
  end
end
return deleted
"""
)
# Not repeatable: a second run deletes nothing and would report 0.

BATCH = 500
"""Documents per ``JSON.MGET``, reference keys per delete script."""


@dataclass(frozen=True)
class ClientDataScan:
    """The client data store of one app, against every document of the app."""

    values: int
    """Values stored."""
    orphaned: tuple[str, ...]
    """Reference keys of values no document refers to, last stored before the grace: what
    prune deletes."""
    unstamped: tuple[str, ...] = ()
    """Reference keys of values no document refers to, stored before stamps existed: prune
    stamps them, and deletes them at a run after the grace."""


def scan_client_data(
    client: redis.Redis, namespace: Namespace, app_id: str, ignored: Set[str] = frozenset()
) -> ClientDataScan:
    """Find ``app_id``'s client data values that nothing refers to (reads only).

    :param ignored: Document keys whose references do not count (what a dry run of prune
        would have deleted).
    """
    key = namespace.for_app(app_id).client_data()
    now_ms = int(time.time() * 1000)
    stamps: dict[str, int] = {}
    values: list[str] = []
    for field, raw in client.hscan_iter(key, count=BATCH):
        if field.startswith(STORED_AT):
            stamps[field.removeprefix(STORED_AT)] = int(raw)
        else:
            values.append(field)
    if not values:
        return ClientDataScan(0, ())
    referenced = set(referenced_values(client, namespace, app_id, ignored))
    bound = now_ms - GRACE_MS
    unreferenced = sorted(v for v in values if v not in referenced)
    return ClientDataScan(
        len(values),
        orphaned=tuple(v for v in unreferenced if v in stamps and stamps[v] < bound),
        unstamped=tuple(v for v in unreferenced if v not in stamps),
    )


def referenced_values(
    client: redis.Redis, namespace: Namespace, app_id: str, ignored: Set[str] = frozenset()
) -> Iterator[str]:
    """Yield every reference key found in ``app_id``'s documents (each component's indexes in
    use) but ``ignored`` and in its trigger's valid conditions; a key may come more than once."""
    for schema_set in schema_sets_in_use(client, namespace):
        for spec in schema_set.all():
            request = query.Aggregate(namespace.alias(spec), query.where(spec, app_id), tuple(query.LOAD_KEY))
            for rows in iter_cursor(client, request, BATCH):
                keys = [row["__key"] for row in rows if row["__key"] not in ignored]
                texts = json_mget(client, keys, "$")
                for text in texts:
                    if text:
                        yield from REFERENCE.findall(text)
    for _field, text in client.hscan_iter(namespace.for_app(app_id).trigger_valid_conditions(), count=BATCH):
        yield from REFERENCE.findall(text)


def delete_orphans(client: redis.Redis, namespace: Namespace, app_id: str, scan: ClientDataScan) -> int:
    """Delete the values of ``scan.orphaned`` not stored again since, and stamp those of
    ``scan.unstamped``; return how many were deleted."""
    key = namespace.for_app(app_id).client_data()
    now_ms = int(time.time() * 1000)
    deleted = 0
    for chunk in itertools.batched((*scan.orphaned, *scan.unstamped), BATCH):
        args = [str(now_ms), str(now_ms - GRACE_MS), *chunk]
        deleted += int(DELETE_ORPHANS.run_in(client.pipeline(transaction=False), [key], args)[-1])
    return deleted
