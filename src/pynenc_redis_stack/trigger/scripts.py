"""The trigger's server-side scripts: each check-and-set runs as one step on the server."""

from __future__ import annotations

from pynenc_redis_stack.core.scripts import Script

STORE_EVENT = """
-- KEYS[1]: an event document. ARGV[1]: the document (JSON object), whose
-- triggered_invocation_ids are the record's own.
-- Invocations already linked to the event (link_trigger_run_to_events, maybe from another
-- process, between pynenc's two writes of one event) stay linked and counted.
local linked = nil
if redis.call('EXISTS', KEYS[1]) == 1 then
  linked = redis.call('JSON.GET', KEYS[1], '$.triggered_invocation_ids')
end
redis.call('JSON.SET', KEYS[1], '$', ARGV[1])
if linked then
  local ids = cjson.decode(linked)[1]
  if type(ids) == 'table' then
    for _, id in ipairs(ids) do
      local value = cjson.encode(id)
      if redis.call('JSON.ARRINDEX', KEYS[1], '$.triggered_invocation_ids', value)[1] == -1 then
        redis.call('JSON.ARRAPPEND', KEYS[1], '$.triggered_invocation_ids', value)
        redis.call('JSON.NUMINCRBY', KEYS[1], '$.triggered', 1)
      end
    end
  end
end
return 1
"""

LINK_EVENTS = """
-- KEYS: event documents. ARGV[1]: an invocation id (JSON string).
-- Appends the invocation to each event's triggered invocations once (a second link changes
-- nothing) and counts it; an event that is not stored (purged) is left alone.
local linked = 0
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1
    and redis.call('JSON.ARRINDEX', key, '$.triggered_invocation_ids', ARGV[1])[1] == -1 then
    redis.call('JSON.ARRAPPEND', key, '$.triggered_invocation_ids', ARGV[1])
    redis.call('JSON.NUMINCRBY', key, '$.triggered', 1)
    linked = linked + 1
  end
end
return linked
"""

CLAIM_RUN = """
-- KEYS[1]: the app's claimed trigger runs (sorted set: run id -> claim expiry, server ms).
-- ARGV[1]: the trigger run id; ARGV[2]: seconds the claim lasts. The caller has checked that
-- the run is not recorded (its document is in another hash slot): a claim stays until it
-- expires, so a run recorded after that check is still claimed by the pass that ran it.
-- Returns 1: claimed (exactly one caller wins an unclaimed or expired run: the check and the
-- write are one step); 0: claimed by another pass that has not recorded it yet.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + math.floor(tonumber(ARGV[2]) * 1000), ARGV[1])
return 1
"""

STORE_CRON_EXECUTION = """
-- KEYS[1]: the app's last cron executions (hash: condition id -> epoch us); KEYS[2], for a
-- cron tick: the app's valid conditions (hash: valid condition id -> valid condition).
-- ARGV[1]: condition id; ARGV[2]: this execution (epoch us); ARGV[3]: the execution the caller
-- read ('' for never executed); for a tick, ARGV[4] and ARGV[5]: the valid condition's id and
-- JSON. Writes only if the stored execution is still the one read, and then the tick's valid
-- condition in the same step: no tick is stored without its valid condition.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current or '') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if KEYS[2] then
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
end
return 1
"""

ADD_SOURCE_TASK = """
-- KEYS[1]: a trigger condition document. ARGV[1]: the document to start from when there is
-- none yet (the condition's task recorded before the condition itself: app and condition ids,
-- source_task_keys holding this task); ARGV[2]: the task key (JSON string).
-- Adds the task to the condition's source tasks once: a second call changes nothing, and
-- concurrent calls for other tasks of the same condition each add theirs.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('JSON.SET', KEYS[1], '$', ARGV[1])
  return 1
end
local found = redis.call('JSON.ARRINDEX', KEYS[1], '$.source_task_keys', ARGV[2])[1]
if not found then
  -- a document written by register_condition alone has no source tasks yet
  redis.call('JSON.SET', KEYS[1], '$.source_task_keys', '[' .. ARGV[2] .. ']')
  return 1
end
if found == -1 then
  redis.call('JSON.ARRAPPEND', KEYS[1], '$.source_task_keys', ARGV[2])
  return 1
end
return 0
"""

store_event_script = Script(STORE_EVENT, repeatable=True)
link_events_script = Script(LINK_EVENTS, repeatable=True)
# Not repeatable: sent again after a lost reply, a won claim would read as another's (the
# trigger then keeps the run's valid conditions, and the run fires once the claim expires).
claim_run_script = Script(CLAIM_RUN)
# Not repeatable: sent again after a lost reply, its own write would read as another's.
store_cron_execution_script = Script(STORE_CRON_EXECUTION)
add_source_task_script = Script(ADD_SOURCE_TASK, repeatable=True)
