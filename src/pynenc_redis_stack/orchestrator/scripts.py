"""The orchestrator's server-side scripts: every check-and-set is one script, so no other
writer runs between its check and its write.

Times are the server's clock (``TIME``, epoch microseconds): runners on several hosts compare
heartbeats, pending ages and purge deadlines against one clock, so a host whose clock is
behind cannot make a live runner look dead.
"""

from __future__ import annotations

from pynenc_redis_stack.core.scripts import Script

_NOW = """
local clock = redis.call('TIME')
local now = string.format('%d', clock[1] * 1000000 + clock[2])
"""

SERVER_TIME = "#!lua flags=no-writes\n" + _NOW + "return now\n"
"""Return the server's clock in epoch microseconds (a decimal string)."""

REGISTER_INVOCATIONS = (
    """
-- KEYS: invocation documents, all in one hash slot (one call per slot, sent in one pipeline).
-- ARGV[i]: the document of KEYS[i] (a JSON object, with its registered_seq: the registering
-- process's arrival stamp, core/arrival.py) without status_ts.
-- A document that exists already is left as it is: registering twice changes nothing.
"""
    + _NOW
    + """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('JSON.SET', KEYS[i], '$', string.sub(ARGV[i], 1, -2) .. ',"status_ts":' .. now .. '}')
  end
end
return now
"""
)

ENCODE_ID = """
-- keys._encode_tagged: the id with '%', ':', '{' and '}' escaped
local function encode_id(id)
  local escaped = string.gsub(string.gsub(id, '%%', '%%25'), ':', '%%3A')
  return (string.gsub(string.gsub(escaped, '{', '%%7B'), '}', '%%7D'))
end
"""

SET_STATUS_IF_VERSION = (
    """
-- KEYS[1]: an invocation document.
-- ARGV[1]: the status_version the caller read and validated the transition against; ARGV[2]:
-- the new status (JSON string); ARGV[3]: the new owner (JSON string, or null: no owner);
-- ARGV[4]: this write's token (JSON string, new for each write); ARGV[5]: 1 when the status is
-- final (auto_purge_ts is set too, as set_up_invocation_auto_purge would right after).
-- The write happens only if no other transition came in between. The token is stored with the
-- write: the same write sent again after a lost reply finds its own token at the next version
-- and answers 'ok' again (with the stored time) instead of 'conflict'.
"""
    + _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local version = string.format('%d', tonumber(ARGV[1]) + 1)
local stored = cjson.decode(redis.call('JSON.GET', KEYS[1], '$.status_version', '$.status_token', '$.status_ts'))
if stored['$.status_version'][1] ~= tonumber(ARGV[1]) then
  if stored['$.status_version'][1] == tonumber(version) and stored['$.status_token'][1] == cjson.decode(ARGV[4]) then
    return {'ok', string.format('%d', stored['$.status_ts'][1])}
  end
  return {'conflict'}
end
local purge = ''
if ARGV[5] == '1' then
  purge = ',"auto_purge_ts":' .. now
end
redis.call('JSON.MERGE', KEYS[1], '$', '{"status":' .. ARGV[2] .. ',"runner_id":' .. ARGV[3]
  .. ',"status_ts":' .. now .. ',"status_version":' .. version .. ',"status_token":' .. ARGV[4] .. purge .. '}')
return {'ok', now}
"""
)

CLAIM_RUNNING_SLOT = """
-- KEYS[1]: a running-concurrency slot's lease (hash: invocation, token).
-- ARGV[1]: the document key of the invocation that just set itself RUNNING; ARGV[2]: this
-- claim's token (new for each claim); ARGV[3]: the token of a holder the caller found stale
-- (not RUNNING, or its owner dead), or '' to claim only a free slot or one it holds.
-- Every claim writes a new token, so a caller that judged a holder stale takes the slot only
-- if nothing claimed it since (not even that holder again). The same claim sent again after a
-- lost reply finds itself the holder and answers 'ok' again.
-- Returns {'ok'} or {'held', holder's document key, holder's token}.
local held = redis.call('HMGET', KEYS[1], 'invocation', 'token')
if not held[1] or held[1] == ARGV[1] or (ARGV[3] ~= '' and held[2] == ARGV[3]) then
  redis.call('HSET', KEYS[1], 'invocation', ARGV[1], 'token', ARGV[2])
  return {'ok'}
end
return {'held', held[1], held[2]}
"""

RELEASE_RUNNING_SLOT = """
-- KEYS[1]: a running-concurrency slot's lease; ARGV[1]: the document key of an invocation
-- that left RUNNING. The lease goes only if that invocation holds it.
if redis.call('HGET', KEYS[1], 'invocation') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

SET_IF_EXISTS = """
-- KEYS[1]: a document; ARGV[1]: a JSON path; ARGV[2]: its new value (JSON). A missing document
-- stays missing (the invocation was purged, or never registered here).
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('JSON.SET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

MARK_FOR_PURGE = (
    """
-- KEYS[1]: an invocation document; its auto_purge_ts becomes the server's clock.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
"""
    + _NOW
    + """
redis.call('JSON.SET', KEYS[1], '$.auto_purge_ts', now)
return 1
"""
)

INCREMENT_RETRIES = """
-- KEYS[1]: an invocation document. ARGV[1]: this increment's token (JSON string, new for each
-- increment). The token is stored with the count: the same increment sent again after a lost
-- reply finds it and counts nothing.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('JSON.GET', KEYS[1], '$.retries_token') == '[' .. ARGV[1] .. ']' then
  return 1
end
redis.call('JSON.SET', KEYS[1], '$.retries_token', ARGV[1])
redis.call('JSON.NUMINCRBY', KEYS[1], '$.retries', 1)
return 1
"""

HEARTBEATS = (
    """
-- KEYS: runner heartbeat documents, all in one hash slot (one call per slot, sent in one
-- pipeline). ARGV[1]: the app id (JSON string); ARGV[2]: may run
-- atomic services (1 or 0); ARGV[3]: consumed queues (JSON array); ARGV[4]: milliseconds a
-- document outlives its last heartbeat; ARGV[4 + i]: the runner id of KEYS[i] (JSON string).
-- A new runner's creation_ts is this first heartbeat. Each heartbeat moves the document's
-- expiry: a dead runner's document goes by itself.
"""
    + _NOW
    + """
for i, key in ipairs(KEYS) do
  local changes = '"last_heartbeat_ts":' .. now .. ',"atomic_service":' .. ARGV[2]
    .. ',"consumed_queues":' .. ARGV[3]
  if redis.call('EXISTS', key) == 1 then
    redis.call('JSON.MERGE', key, '$', '{' .. changes .. '}')
  else
    redis.call('JSON.SET', key, '$', '{"app_id":' .. ARGV[1] .. ',"runner_id":' .. ARGV[4 + i]
      .. ',"creation_ts":' .. now .. ',' .. changes .. '}')
  end
  redis.call('PEXPIRE', key, ARGV[4])
end
return now
"""
)

START_ATOMIC_SERVICE = (
    """
-- KEYS[1]: the execution document of this run; KEYS[2]: the app's atomic-service lease (the
-- key of the RUNNING execution's document, a lock); KEYS[3], KEYS[4] (declared once a first
-- call named them): the execution the lease names, its runner's heartbeat document. All are
-- in the app's hash slot. ARGV[1]: the document (JSON object) without
-- status, start_ts, end_ts, duration_us, reason; ARGV[2]: status; ARGV[3]: start (epoch us, or
-- '' for the server's clock); ARGV[4]: reason (JSON string); ARGV[5]: the app's runner
-- heartbeat key prefix; ARGV[6]: microseconds after which a runner without a heartbeat is dead.
-- RUNNING is admitted only if the lease is free, stale (its execution is gone or no longer
-- RUNNING) or already this run's; otherwise the run is stored BLOCKED, zero-width, naming the
-- running one. A RUNNING holder whose runner is dead (killed mid-run: nobody will finalize it)
-- is first ABANDONED, so one killed runner cannot stop every later pass (recovery included)
-- for good. Returns {admitted (1 or 0), start}, or {-1, holder[, heartbeat]}: the keys to
-- declare in KEYS[3] and KEYS[4] and call again with (a script reads only declared keys).
"""
    + _NOW
    + ENCODE_ID
    + """
local start = ARGV[3] ~= '' and ARGV[3] or now
local function store(status, end_ts, reason)
  local text = string.sub(ARGV[1], 1, -2) .. ',"status":"' .. status .. '","start_ts":' .. start
    .. ',"reason":' .. reason
  if end_ts then
    text = text .. ',"end_ts":' .. end_ts .. ',"duration_us":0'
  end
  redis.call('JSON.SET', KEYS[1], '$', text .. '}')
end
if ARGV[2] == 'running' then
  local holder = redis.call('GET', KEYS[2])
  if holder == KEYS[1] and redis.call('EXISTS', KEYS[1]) == 1 then
    return {1, string.match(redis.call('JSON.GET', KEYS[1], '$.start_ts'), '%-?%d+')}
  end
  if holder and holder ~= KEYS[1] and holder ~= KEYS[3] then
    return {-1, holder}
  end
  local held = holder and redis.call('JSON.GET', holder, '$')
  local prior = held and cjson.decode(held)[1]
  if prior and prior.status == 'running' then
    local heartbeat = ARGV[5] .. encode_id(prior.runner_id)
    if heartbeat ~= KEYS[4] then
      return {-1, holder, heartbeat}
    end
    local last = redis.call('JSON.GET', heartbeat, '$.last_heartbeat_ts')
    last = last and tonumber(string.match(last, '%-?%d+'))
    if not last or tonumber(now) - last > tonumber(ARGV[6]) then
      redis.call('JSON.MERGE', holder, '$', '{"status":"abandoned","end_ts":' .. now .. ',"duration_us":'
        .. string.format('%d', tonumber(now) - prior.start_ts) .. ',"reason":'
        .. cjson.encode('runner_dead:' .. prior.runner_id) .. '}')
    else
      local reason = ARGV[4]
      if reason == '""' then
        reason = cjson.encode('prior_running:' .. prior.run_id .. ' runner:' .. prior.runner_id)
      end
      store('blocked', start, reason)
      return {0, start}
    end
  end
  redis.call('SET', KEYS[2], KEYS[1])
  store('running', nil, ARGV[4])
  return {1, start}
end
store(ARGV[2], ARGV[2] == 'blocked' and start or nil, ARGV[4])
return {ARGV[2] == 'blocked' and 0 or 1, start}
"""
)

FINALIZE_ATOMIC_SERVICE = """
-- KEYS[1]: the execution document of a run; KEYS[2]: the app's atomic-service lease. ARGV[1]:
-- the document (JSON object) without status, times and reason, for a run whose start was never
-- stored; ARGV[2]: the terminal status; ARGV[3]: end (epoch us); ARGV[4]: reason (JSON string,
-- '""' keeps the stored one). Only a RUNNING execution changes: the first terminal status wins.
-- The lease is freed if this run holds it.
if redis.call('GET', KEYS[2]) == KEYS[1] then
  redis.call('DEL', KEYS[2])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('JSON.SET', KEYS[1], '$', string.sub(ARGV[1], 1, -2) .. ',"status":"' .. ARGV[2]
    .. '","start_ts":' .. ARGV[3] .. ',"end_ts":' .. ARGV[3] .. ',"duration_us":0,"reason":' .. ARGV[4] .. '}')
  return 1
end
if redis.call('JSON.GET', KEYS[1], '$.status') ~= '["running"]' then
  return 0
end
local start = tonumber(string.match(redis.call('JSON.GET', KEYS[1], '$.start_ts'), '%-?%d+'))
local changes = '"status":"' .. ARGV[2] .. '","end_ts":' .. ARGV[3] .. ',"duration_us":'
  .. string.format('%d', math.max(0, tonumber(ARGV[3]) - start))
if ARGV[4] ~= '""' then
  changes = changes .. ',"reason":' .. ARGV[4]
end
redis.call('JSON.MERGE', KEYS[1], '$', '{' .. changes .. '}')
return 1
"""


# The registration lock (orchestrator.py, _concurrency_lock): redis-py's Lock with these two
# scripts in place of its SET NX and its release, so that both may be sent again after a lost
# reply.

ACQUIRE_LOCK = """
-- KEYS[1]: a lock; ARGV[1]: this holder's token; ARGV[2]: milliseconds it lasts.
-- 1 if the lock is now this token's: taken, or already held by it (the same acquisition sent
-- again after a lost reply); 0 if another token holds it.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

RELEASE_LOCK = """
-- KEYS[1]: a lock; ARGV[1]: this holder's token.
-- 1 if the lock is no longer held: deleted now, or gone already (released by this same call
-- sent before, or expired with no other holder since); 0 if another token holds it (it expired
-- while held and another holder came in).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
if holder then
  return 0
end
return 1
"""

# Scripts whose second run changes nothing are repeatable, so the client may send them again
# after a lost reply (the status compare-and-set and the retry increment through their tokens).
server_time_script = Script(SERVER_TIME, repeatable=True)
register_invocations_script = Script(REGISTER_INVOCATIONS, repeatable=True)
set_status_if_version_script = Script(SET_STATUS_IF_VERSION, repeatable=True)
claim_running_slot_script = Script(CLAIM_RUNNING_SLOT, repeatable=True)
release_running_slot_script = Script(RELEASE_RUNNING_SLOT, repeatable=True)
set_if_exists_script = Script(SET_IF_EXISTS, repeatable=True)
mark_for_purge_script = Script(MARK_FOR_PURGE, repeatable=True)
increment_retries_script = Script(INCREMENT_RETRIES, repeatable=True)
heartbeats_script = Script(HEARTBEATS, repeatable=True)
# a second run finds its own lease and answers as the first did; a BLOCKED attempt's second run
# is admitted only if the holder has finished meanwhile (no overlap either way)
start_atomic_service_script = Script(START_ATOMIC_SERVICE, repeatable=True)
finalize_atomic_service_script = Script(FINALIZE_ATOMIC_SERVICE, repeatable=True)
acquire_lock_script = Script(ACQUIRE_LOCK, repeatable=True)
release_lock_script = Script(RELEASE_LOCK, repeatable=True)
