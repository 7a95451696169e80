"""Server-side scripts: atomic multi-key writes that must not interleave with other writers."""

from __future__ import annotations

from typing import Any

import redis

from pynenc_redis_stack.core.codec import Document, dumps
from pynenc_redis_stack.core.scripts import Script

RECORD_HISTORY = """
-- KEYS[1]: the history sequence counter; then per entry: the invocation key, the entry key.
-- ARGV per entry: the entry document (JSON object), its ts (epoch us, decimal string), the
-- status change ({"status":...,"status_ts":...}), the invocation stub; seq is spliced into the
-- entry document here (its last field).
-- Each entry gets the next seq (ties on ts are ordered by arrival; one INCRBY per batch) and
-- is stored once, as its own document (the history index answers every history lookup), with
-- NX: an entry whose key exists is skipped (a re-send after a lost reply: the backend's entry
-- keys are new random ids; or a re-import), so nothing is stored twice and the invocation's
-- status is not touched again; the seq it was given stays unused (seq only orders).
-- The invocation's status moves only forward in time: the latest ts wins however writers race
-- or arrive late (one JSON.MERGE, so the invocation is indexed once per entry).
local count = (#KEYS - 1) / 2
local seq = redis.call('INCRBY', KEYS[1], count) - count
local written = 0
for i = 0, count - 1 do
  seq = seq + 1
  local invocation_key = KEYS[2 + 2 * i]
  local entry = string.sub(ARGV[1 + 4 * i], 1, -2) .. ',"seq":' .. string.format('%d', seq) .. '}'
  if redis.call('JSON.SET', KEYS[3 + 2 * i], '$', entry, 'NX') then
    written = written + 1
    local raw = redis.call('JSON.GET', invocation_key, '$.status_ts')
    if not raw then
      -- history can precede the invocation's upsert; the upsert keeps this status
      redis.call('JSON.SET', invocation_key, '$', ARGV[4 + 4 * i])
    else
      local current = tonumber(string.match(raw, '%-?%d+') or '')
      if current == nil or tonumber(ARGV[2 + 4 * i]) >= current then
        redis.call('JSON.MERGE', invocation_key, '$', ARGV[3 + 4 * i])
      end
    end
  end
end
return written
"""


UPSERT_INVOCATIONS = """
-- KEYS: the invocation document keys. ARGV: per invocation, its whole document but the
-- status (a JSON object without nulls).
-- Per invocation: one JSON.SET of the document (so it is indexed once), which replaces an
-- earlier upsert's whole; the status and its time, owned by history writes (one may have come
-- first), are read and kept. Running it twice changes nothing.
for i = 1, #KEYS do
  local document = ARGV[i]
  local current = redis.call('JSON.GET', KEYS[i], '$.status', '$.status_ts')
  if current then
    local status = string.match(current, '"%$%.status":%[("[^"]*")%]')
    local status_ts = string.match(current, '"%$%.status_ts":%[(%-?%d+)%]')
    if status and status_ts then
      document = string.sub(document, 1, -2) .. ',"status":' .. status .. ',"status_ts":' .. status_ts .. '}'
    end
  end
  redis.call('JSON.SET', KEYS[i], '$', document)
end
return #KEYS
"""


class InvocationBatch:
    """The keys and arguments of one :data:`UPSERT_INVOCATIONS` call."""

    script = Script(UPSERT_INVOCATIONS, repeatable=True)

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[str] = []

    def add(self, invocation_key: str, document: Document) -> None:
        """Queue one validated invocation document."""
        self.keys.append(invocation_key)
        self.args.append(dumps(document))

    def run_in(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Execute ``pipe`` with this batch's script call appended (see :meth:`Script.run_in`)."""
        return self.script.run_in(pipe, self.keys, self.args)


class HistoryBatch:
    """The keys and arguments of one :data:`RECORD_HISTORY` call, entry by entry."""

    script = Script(RECORD_HISTORY, repeatable=True)

    def __init__(self, seq_key: str) -> None:
        self.keys = [seq_key]
        self.args: list[str] = []

    def add(self, invocation_key: str, entry_key: str, entry: Document) -> None:
        """Queue one validated history entry document for the invocation at ``invocation_key``."""
        document = dumps(entry)  # first: it names a value JSON cannot carry
        change = {"status": entry["status"], "status_ts": entry["ts"]}
        stub = {"app_id": entry["app_id"], "invocation_id": entry["invocation_id"], **change}
        self.keys.extend((invocation_key, entry_key))
        self.args.extend((document, str(entry["ts"]), dumps(change), dumps(stub)))

    def __len__(self) -> int:
        return (len(self.keys) - 1) // 2

    def run_in(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Execute ``pipe`` with this batch's script call appended (see :meth:`Script.run_in`)."""
        return self.script.run_in(pipe, self.keys, self.args)


PRUNE_INVOCATIONS = """
-- KEYS[1]: the app's pending-workflows set; then per invocation, its invocation key, its
-- orchestrator document key, then the keys that belong to it. ARGV[1]: the cutoff (epoch us,
-- decimal string); ARGV[2]: the final statuses as a JSON array; then per invocation, the
-- number of keys that belong to it and the workflows it refers to as a JSON array.
-- An invocation is deleted only if its status is still final and older than the cutoff, and
-- its orchestrator document (RedisStackOrchestrator), if any, holds a final status too: one
-- that got a new status after it was selected (re-queued, retried, rerouted...) is left whole,
-- even while the orchestrator has moved it and its history entry is not written yet. The
-- workflows of each deleted invocation join the pending set in the same atomic step, so a run
-- that stops before collecting them leaves them to the next run.
-- Returns 1 (deleted) or 0 (kept) per invocation.
local cutoff = tonumber(ARGV[1])
local final = {}
for _, status in ipairs(cjson.decode(ARGV[2])) do
  final[status] = true
end
local deleted = {}
local k = 2
for i = 3, #ARGV, 2 do
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

prune_invocations_script = Script(PRUNE_INVOCATIONS)
"""Deletes a batch of selected invocations (see :mod:`pynenc_redis_stack.admin.retention`)."""
