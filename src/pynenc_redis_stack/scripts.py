"""Server-side scripts: atomic multi-key writes that must not interleave with other writers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import orjson
import redis

from pynenc_redis_stack.client import raise_server_error, register_repeatable_script, run
from pynenc_redis_stack.documents import EMPTY_INVOCATION, Document, dumps, listed_entry, timeline_member
from pynenc_redis_stack.keys import RELATIONS

RECORD_HISTORY = """
-- KEYS[1]: the history sequence counter; KEYS[2]: the app's history timeline; then per entry:
-- the invocation key, the entry key, the invocation's history list. ARGV per entry: entry
-- document (JSON object), listed entry (JSON array), ts (epoch us, decimal string), status as
-- JSON, invocation stub, timeline member without its seq; seq is spliced into the JSON texts
-- here (last field of the object, first value of the array, 12 hex digits before the member).
-- Each entry gets the next seq (ties on ts are ordered by arrival) and is stored three times:
-- as its own document (for the history index), at the end of its invocation's history list (so
-- get_history is one LRANGE) and in the app's timeline scored by ts (so a time range is read
-- with ZRANGE; members of equal ts sort by their seq prefix). Invocations stored before 0.2
-- have no list and no "history_list" mark: their history is read through the index, so nothing
-- is listed for them.
-- The invocation's status moves only forward in time: the latest ts wins however writers race
-- or arrive late. An entry whose key exists is skipped: a re-send after a lost reply (the
-- backend's entry keys are new random ids) or a re-import changes nothing, and no entry gets
-- a second seq or a second place in the list.
local written = 0
for i = 0, (#KEYS - 2) / 3 - 1 do
  local invocation_key = KEYS[3 + 3 * i]
  local entry_key = KEYS[4 + 3 * i]
  local list_key = KEYS[5 + 3 * i]
  if redis.call('EXISTS', entry_key) == 0 then
    local ts_text = ARGV[3 + 6 * i]
    local seq_number = redis.call('INCR', KEYS[1])
    local seq = string.format('%d', seq_number)
    redis.call('JSON.SET', entry_key, '$', string.sub(ARGV[1 + 6 * i], 1, -2) .. ',"seq":' .. seq .. '}')
    redis.call('ZADD', KEYS[2], ts_text, string.format('%012x', seq_number) .. ARGV[6 + 6 * i])
    local listed = '[' .. seq .. ',' .. string.sub(ARGV[2 + 6 * i], 2)
    if redis.call('EXISTS', invocation_key) == 0 then
      -- history can precede the invocation's upsert; the upsert merges into this stub
      redis.call('JSON.SET', invocation_key, '$', ARGV[5 + 6 * i])
      redis.call('RPUSH', list_key, listed)
    else
      if redis.call('EXISTS', list_key) == 1
        or redis.call('JSON.GET', invocation_key, '$.history_list') == '[true]' then
        redis.call('RPUSH', list_key, listed)
      end
      local current = tonumber(string.match(redis.call('JSON.GET', invocation_key, '$.status_ts'), '%-?%d+') or '')
      if current == nil or tonumber(ts_text) >= current then
        redis.call('JSON.SET', invocation_key, '$.status', ARGV[4 + 6 * i])
        redis.call('JSON.SET', invocation_key, '$.status_ts', ts_text)
      end
    end
    written = written + 1
  end
end
return written
"""


TIMELINE_FUNCTIONS = """
-- The history timeline (timeline.py): members are the entry's seq in 12 hex digits, then the
-- entry; scored by ts. The member of seq (12 hex digits) at ts, or nil.
local function timeline_member(timeline_key, ts, seq_hex)
  for _, member in ipairs(redis.call('ZRANGE', timeline_key, ts, ts, 'BYSCORE')) do
    if string.sub(member, 1, 12) == seq_hex then return member end
  end
  return nil
end
"""

BACKFILL_TIMELINE = (
    TIMELINE_FUNCTIONS
    + """
-- KEYS[1]: the app's history timeline; then history entry keys. ARGV per entry: its ts, its seq
-- in 12 hex digits, its member without the seq. An entry is added only while its document
-- exists (prune may have deleted it since it was read) and no member of its seq is there (the
-- history script, or an earlier run, added it). Returns the number added.
local added = 0
for i = 2, #KEYS do
  local j = 3 * (i - 2)
  local ts, seq_hex = ARGV[j + 1], ARGV[j + 2]
  if redis.call('EXISTS', KEYS[i]) == 1 and not timeline_member(KEYS[1], ts, seq_hex) then
    redis.call('ZADD', KEYS[1], ts, seq_hex .. ARGV[j + 3])
    added = added + 1
  end
end
return added
"""
)


RELATION_FUNCTIONS = """
-- Relation sets (keys.RELATIONS, relations.py): ARGV[1] is the JSON array of the app's
-- relation-set key prefixes; a set's key is its prefix plus the value's key segment.
local relation_fields = {RELATION_FIELDS}
local relation_paths = {}
for f, name in ipairs(relation_fields) do relation_paths[f] = '$.' .. name end
local relation_prefixes = cjson.decode(ARGV[1])
local function relation_set(f, value)
  -- keys.encode_segment: '%' and ':' escaped, so ':' only separates segments
  return relation_prefixes[f] .. string.gsub(string.gsub(value, '%%', '%%25'), ':', '%%3A')
end
-- The relation values of an invocation document, and whether there is one.
local function relation_values(invocation_key)
  local values = {}
  local raw = redis.call('JSON.GET', invocation_key, unpack(relation_paths))
  if not raw then return values, false end
  local found = cjson.decode(raw)
  for f, path in ipairs(relation_paths) do
    local value = found[path][1]
    if type(value) == 'string' then values[f] = value end
  end
  return values, true
end
""".replace("RELATION_FIELDS", ", ".join(f"'{name}'" for name in RELATIONS))
"""Lua shared by the scripts that keep the relation sets."""

UPSERT_INVOCATIONS = (
    RELATION_FUNCTIONS
    + """
-- KEYS: per invocation, its document key and its call text's key. ARGV[1]: relation-set
-- prefixes (above); then per invocation: its id, the document fields (JSON object, nulls
-- delete), its call text (what get_invocation reads), its relation values (JSON array in
-- keys.RELATIONS order, null for none).
-- Per invocation: create the document if there is none (so the merge never stores nulls,
-- which exists() would count as values), merge the fields (the status owned by history
-- writes is kept), replace the call text whole, and move the id between relation sets
-- where a relation changed. Running it twice changes nothing.
for i = 1, #KEYS / 2 do
  local key = KEYS[2 * i - 1]
  local invocation_id = ARGV[4 * i - 2]
  local before, exists = relation_values(key)
  if not exists then
    redis.call('JSON.SET', key, '$', '"""
    + EMPTY_INVOCATION
    + """')
  end
  redis.call('JSON.MERGE', key, '$', ARGV[4 * i - 1])
  redis.call('SET', KEYS[2 * i], ARGV[4 * i])
  local after = cjson.decode(ARGV[4 * i + 1])
  for f = 1, #relation_fields do
    local new = after[f]
    if new == cjson.null then new = nil end
    if before[f] ~= new then
      if before[f] then redis.call('SREM', relation_set(f, before[f]), invocation_id) end
      if new then redis.call('SADD', relation_set(f, new), invocation_id) end
    end
  end
end
return #KEYS / 2
"""
)

BACKFILL_RELATIONS = (
    RELATION_FUNCTIONS
    + """
-- KEYS: invocation document keys (one app's). ARGV[1]: relation-set prefixes; ARGV[2..]: the
-- invocations' ids. Adds each to the sets of the relations its document holds now (an upsert
-- running alongside moves it under the same atomicity). Returns how many were documents.
local found = 0
for i = 1, #KEYS do
  local values, exists = relation_values(KEYS[i])
  if exists then found = found + 1 end
  for f, value in pairs(values) do
    redis.call('SADD', relation_set(f, value), ARGV[i + 1])
  end
end
return found
"""
)


def lua_literal(value: str) -> str:
    """Return ``value`` as a Lua string literal: ASCII letters and digits as they are, every
    other byte of its UTF-8 form as a three-digit decimal escape (exact for any input)."""
    return (
        '"' + "".join(chr(b) if chr(b).isalnum() and b < 128 else f"\\{b:03d}" for b in value.encode()) + '"'
    )


def lua_call(template: Sequence[str | int]) -> str:
    """Return a Lua ``redis.call(...)`` expression of a :class:`~pynenc_redis_stack.query.Parametrized` template."""
    return (
        "redis.call("
        + ", ".join(f"ARGV[{part + 1}]" if isinstance(part, int) else lua_literal(part) for part in template)
        + ")"
    )


def prepared_read(call: str, reply: Literal["keys", "documents"]) -> str:
    """Return the source of a read-only script running one query and replying with one JSON text.

    Why: redis-py packs every argument and, without ``hiredis``, parses every reply element
    in Python, and for lookups of a few ids those two costs exceed the query's own. A
    prepared query (``call``, rendered by :func:`lua_call`) is sent
    once; each call sends only its values, and the reply is one string ``orjson`` parses in
    C. Read only (``no-writes``), so it also runs on replicas; it adds no round trip. Never
    used for cursors: Lua numbers are doubles and could round a cursor id.

    :param reply: ``keys``: the query's reply as it is (``[total, key, ...]`` for
        ``FT.SEARCH ... NOCONTENT``); ``documents``: ``[total, rows, document, ...]`` with each
        row's last field (``$`` of ``FT.SEARCH``, ``LOAD $ AS doc`` of ``FT.AGGREGATE``)
        embedded as JSON; ``rows`` counts rows, including any whose document vanished meanwhile.
    """
    if reply == "keys":
        return f"#!lua flags=no-writes\nreturn cjson.encode({call})\n"
    return f"""#!lua flags=no-writes
local reply = {call}
local out = {{tostring(reply[1]), '0'}}
local rows = 0
for i = 2, #reply do
  local fields = reply[i]
  if type(fields) == 'table' then
    rows = rows + 1
    local n = #fields
    if n >= 2 and (fields[n - 1] == '$' or fields[n - 1] == 'doc') then
      out[#out + 1] = fields[n]
    end
  end
end
out[2] = tostring(rows)
return '[' .. table.concat(out, ',') .. ']'
"""


class Script:
    """A Lua script sent with ``EVALSHA``, loaded on demand.

    Unlike redis-py's ``Script`` on a pipeline, this adds no ``SCRIPT EXISTS`` round trip.

    :param repeatable: Running it twice with the same keys and arguments changes nothing, so
        the client may send it again when the reply was lost (see :mod:`pynenc_redis_stack.client`).
    """

    def __init__(self, source: str, *, repeatable: bool = False) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        if repeatable:
            register_repeatable_script(self.sha)

    def command(self, keys: list[str], args: list[str]) -> list[Any]:
        """Return the ``EVALSHA`` command for ``keys`` and ``args``."""
        return ["EVALSHA", self.sha, str(len(keys)), *keys, *args]

    def run_in(self, pipe: redis.client.Pipeline, keys: list[str], args: list[str]) -> list[Any]:
        """Execute ``pipe`` with this script appended; one round trip unless the server lost it.

        :return: The pipeline replies.
        """
        run(pipe, *self.command(keys, args))
        commands = list(pipe.command_stack)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if not isinstance(replies[-1], redis.exceptions.NoScriptError):
            _raise_first_error(replies)
            return replies
        # First use on this server (or after a restart / SCRIPT FLUSH): load, then replay.
        run(pipe, "SCRIPT", "LOAD", self.source)
        pipe.execute()
        for command_args, _options in commands:
            run(pipe, *command_args)
        replies = pipe.execute(raise_on_error=False)
        _raise_first_error(replies)
        return replies


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise_server_error(reply)
        if isinstance(reply, Exception):
            raise reply


class InvocationBatch:
    """The keys and arguments of one :data:`UPSERT_INVOCATIONS` call."""

    script = Script(UPSERT_INVOCATIONS, repeatable=True)

    def __init__(self, relation_prefixes: list[str]) -> None:
        self.keys: list[str] = []
        self.args = [orjson.dumps(relation_prefixes).decode()]

    def add(self, invocation_key: str, call_key: str, document: Document, call: str) -> None:
        """Queue one validated invocation document and its call text."""
        self.keys.extend((invocation_key, call_key))
        relations = [document[name] for name in RELATIONS]
        self.args.extend((document["invocation_id"], dumps(document), call, orjson.dumps(relations).decode()))

    def run_in(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Execute ``pipe`` with this batch's script call appended (see :meth:`Script.run_in`)."""
        return self.script.run_in(pipe, self.keys, self.args)


class HistoryBatch:
    """The keys and arguments of one :data:`RECORD_HISTORY` call, entry by entry."""

    script = Script(RECORD_HISTORY, repeatable=True)

    def __init__(self, seq_key: str, timeline_key: str) -> None:
        self.keys = [seq_key, timeline_key]
        self.args: list[str] = []

    def add(self, invocation_key: str, entry_key: str, list_key: str, entry: Document) -> None:
        """Queue one validated history entry document for the invocation at ``invocation_key``
        whose history list is ``list_key`` (the timeline is the batch's: one app's)."""
        stub = {
            "app_id": entry["app_id"],
            "invocation_id": entry["invocation_id"],
            "status": entry["status"],
            "status_ts": entry["ts"],
            "history_list": True,
        }
        document = dumps(entry)  # first: it names a value JSON cannot carry
        listed = listed_entry(entry)
        self.keys.extend((invocation_key, entry_key, list_key))
        self.args.extend(
            (
                document,
                listed,
                str(entry["ts"]),
                dumps(entry["status"]),
                dumps(stub),
                timeline_member(entry["invocation_id"], listed),
            )
        )

    def __len__(self) -> int:
        return (len(self.keys) - 2) // 3

    def run_in(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Execute ``pipe`` with this batch's script call appended (see :meth:`Script.run_in`)."""
        return self.script.run_in(pipe, self.keys, self.args)


PRUNE_INVOCATIONS = (
    RELATION_FUNCTIONS
    + TIMELINE_FUNCTIONS
    + """
-- KEYS[1]: the app's pending-workflows set; KEYS[2]: the app's history timeline; then per
-- invocation, its invocation key, its orchestrator document key, then the keys that belong to
-- it. ARGV[1]: the app's relation-set prefixes; ARGV[2]: the cutoff (epoch us, decimal
-- string); ARGV[3]: the final statuses as a JSON array; ARGV[4]: the prefix of the app's
-- history entry keys; then per invocation, the number of keys that belong to it, the workflows
-- it refers to as a JSON array, and its id. Each history entry deleted leaves the timeline.
-- An invocation is deleted only if its status is still final and older than the cutoff, and
-- its orchestrator document (RedisStackOrchestrator), if any, holds a final status too: one
-- that got a new status after it was selected (re-queued, retried, rerouted...) is left whole,
-- even while the orchestrator has moved it and its history entry is not written yet. The
-- workflows of each deleted invocation join the pending set in the same atomic step, so a run
-- that stops before collecting them leaves them to the next run; its id leaves its relation
-- sets.
-- Returns 1 (deleted) or 0 (kept) per invocation.
local cutoff = tonumber(ARGV[2])
local final = {}
for _, status in ipairs(cjson.decode(ARGV[3])) do
  final[status] = true
end
local history_prefix = ARGV[4]
local function remove_from_timeline(entry_key)
  local raw = redis.call('JSON.GET', entry_key, '$.ts', '$.seq')
  if not raw then return end
  local found = cjson.decode(raw)
  local ts, seq = found['$.ts'][1], found['$.seq'][1]
  if type(ts) ~= 'number' or type(seq) ~= 'number' then return end
  local ts_text = string.format('%d', ts)
  local member = timeline_member(KEYS[2], ts_text, string.format('%012x', seq))
  if member then redis.call('ZREM', KEYS[2], member) end
end
local deleted = {}
local k = 3
for i = 5, #ARGV, 3 do
  local count = tonumber(ARGV[i])
  local invocation_key = KEYS[k]
  local prunable = true  -- an invocation deleted meanwhile: its leftovers go
  local raw = redis.call('JSON.GET', invocation_key, '$.status', '$.status_ts')
  if raw then
    local current = cjson.decode(raw)
    local status = current['$.status'][1]
    local ts = current['$.status_ts'][1]
    prunable = type(ts) == 'number' and ts < cutoff and final[status] == true
  end
  if prunable then
    local orchestrated = redis.call('JSON.GET', KEYS[k + 1], '$.status')
    if orchestrated then
      prunable = final[cjson.decode(orchestrated)[1]] == true
    end
  end
  if prunable then
    for f, value in pairs(relation_values(invocation_key)) do
      redis.call('SREM', relation_set(f, value), ARGV[i + 2])
    end
    for j = k + 2, k + 1 + count do
      if string.sub(KEYS[j], 1, #history_prefix) == history_prefix then remove_from_timeline(KEYS[j]) end
    end
    local first = k
    local last = k + 1 + count
    while first <= last do
      local upto = math.min(first + 999, last)
      redis.call('UNLINK', unpack(KEYS, first, upto))
      first = upto + 1
    end
    local workflows = cjson.decode(ARGV[i + 1])
    if #workflows > 0 then
      redis.call('SADD', KEYS[1], unpack(workflows))
    end
  end
  deleted[#deleted + 1] = prunable and 1 or 0
  k = k + count + 2
end
return deleted
"""
)

prune_invocations_script = Script(PRUNE_INVOCATIONS)
"""Deletes a batch of selected invocations (see :mod:`pynenc_redis_stack.prune`)."""
