"""Server-side scripts: atomic multi-key writes that must not interleave with other writers."""

from __future__ import annotations

from pynenc_redis_stack.core.arrival import arrival_stamps
from pynenc_redis_stack.core.codec import Document, dumps
from pynenc_redis_stack.core.scripts import Script, SlotCalls

RECORD_HISTORY = """
-- Every key is in one hash slot (one call per slot: HistoryBatch). Per entry, KEYS: the
-- invocation key, the entry key; ARGV: the entry document (JSON object, with its seq: the
-- writer's arrival stamp, core/arrival.py, ordering entries of equal ts), its ts and seq
-- (decimal strings), the status change ({"status":...,"status_ts":...,"status_seq":...}), the
-- invocation stub.
-- Each entry is stored once, as its own document (the history index answers every history
-- lookup), with NX: an entry whose key exists is skipped (a re-send after a lost reply: the
-- backend's entry keys are new random ids; or a re-import), so nothing is stored twice and
-- the invocation's status is not touched again.
-- The invocation's status is its last entry in (ts, seq) order, the order history reads
-- give, however writers race or arrive late (one JSON.MERGE, so the invocation is indexed
-- once per entry). A status written before seq was kept with it has seq 0.
local written = 0
for i = 0, #KEYS / 2 - 1 do
  local invocation_key = KEYS[1 + 2 * i]
  if redis.call('JSON.SET', KEYS[2 + 2 * i], '$', ARGV[1 + 5 * i], 'NX') then
    written = written + 1
    local raw = redis.call('JSON.GET', invocation_key, '$.status_ts', '$.status_seq')
    if not raw then
      -- history can precede the invocation's upsert; the upsert keeps this status
      redis.call('JSON.SET', invocation_key, '$', ARGV[5 + 5 * i])
    else
      local current = cjson.decode(raw)
      local ts, seq = tonumber(ARGV[2 + 5 * i]), tonumber(ARGV[3 + 5 * i])
      local current_ts = current['$.status_ts'][1]
      local current_seq = current['$.status_seq'][1] or 0
      if current_ts == nil or ts > current_ts or (ts == current_ts and seq > current_seq) then
        redis.call('JSON.MERGE', invocation_key, '$', ARGV[4 + 5 * i])
      end
    end
  end
end
return written
"""


UPSERT_INVOCATIONS = """
-- KEYS: invocation document keys, all in one hash slot (one call per slot:
-- InvocationBatch). ARGV: per invocation, its whole document but the status (a JSON object
-- without nulls).
-- Per invocation: one JSON.SET of the document (so it is indexed once), which replaces an
-- earlier upsert's whole; the status, its time and seq, owned by history writes (one may have
-- come first), are read and kept. Running it twice changes nothing.
for i = 1, #KEYS do
  local document = ARGV[i]
  local current = redis.call('JSON.GET', KEYS[i], '$.status', '$.status_ts', '$.status_seq')
  if current then
    local status = string.match(current, '"%$%.status":%[("[^"]*")%]')
    local status_ts = string.match(current, '"%$%.status_ts":%[(%-?%d+)%]')
    local status_seq = string.match(current, '"%$%.status_seq":%[(%-?%d+)%]')
    if status and status_ts then
      local kept = ',"status":' .. status .. ',"status_ts":' .. status_ts
      if status_seq then
        kept = kept .. ',"status_seq":' .. status_seq
      end
      document = string.sub(document, 1, -2) .. kept .. '}'
    end
  end
  redis.call('JSON.SET', KEYS[i], '$', document)
end
return #KEYS
"""


class InvocationBatch(SlotCalls):
    """The :data:`UPSERT_INVOCATIONS` calls of a batch of invocations, one per slot."""

    script = Script(UPSERT_INVOCATIONS, repeatable=True)

    def __init__(self) -> None:
        super().__init__(InvocationBatch.script)

    def add_document(self, invocation_key: str, document: Document) -> None:
        """Queue one validated invocation document."""
        self.add([invocation_key], [dumps(document)])


class HistoryBatch(SlotCalls):
    """The :data:`RECORD_HISTORY` calls of a batch of entries, one per slot; each entry's
    ``seq`` is its arrival stamp, taken in the order the entries are added."""

    script = Script(RECORD_HISTORY, repeatable=True)

    def __init__(self, writer: int) -> None:
        super().__init__(HistoryBatch.script)
        self.writer = writer
        """The writing process's residue (:func:`~pynenc_redis_stack.core.arrival.writer_number`)."""

    def add_entry(self, invocation_key: str, entry_key: str, entry: Document) -> None:
        """Queue one validated history entry document for the invocation at ``invocation_key``."""
        (seq,) = arrival_stamps(1, self.writer)
        document = dumps({**entry, "seq": seq})  # first: it names a value JSON cannot carry
        change = {"status": entry["status"], "status_ts": entry["ts"], "status_seq": seq}
        stub = {"app_id": entry["app_id"], "invocation_id": entry["invocation_id"], **change}
        args = [document, str(entry["ts"]), str(seq), dumps(change), dumps(stub)]
        self.add([invocation_key, entry_key], args)


PRUNE_INVOCATIONS = """
-- Every key is in one hash slot (one call per slot, sent in one pipeline). Per invocation,
-- KEYS: its invocation key, its orchestrator document key, then the keys that belong to it in
-- its slot. ARGV[1]: the cutoff (epoch us, decimal string); ARGV[2]: the final statuses as a
-- JSON array; then per invocation, the number of keys that belong to it.
-- An invocation is deleted only if its status is still final and older than the cutoff, and
-- its orchestrator document (RedisStackOrchestrator), if any, holds a final status too: one
-- that got a new status after it was selected (re-queued, retried, rerouted...) is left whole,
-- even while the orchestrator has moved it and its history entry is not written yet. (Its
-- workflows joined prune's pending set before this call: a workflow still referenced is kept.)
-- Returns 1 (deleted) or 0 (kept) per invocation.
local cutoff = tonumber(ARGV[1])
local final = {}
for _, status in ipairs(cjson.decode(ARGV[2])) do
  final[status] = true
end
local deleted = {}
local k = 1
for i = 3, #ARGV do
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
  end
  deleted[#deleted + 1] = prunable and 1 or 0
  k = k + count + 2
end
return deleted
"""

prune_invocations_script = Script(PRUNE_INVOCATIONS)
"""Deletes a batch of selected invocations (see :mod:`pynenc_redis_stack.admin.retention`)."""
