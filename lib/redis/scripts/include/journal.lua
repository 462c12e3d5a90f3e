-- Shared by every script that writes the journal (spliced in where a script says
-- "-- @include journal"). A bucket's keys all start with `base` = "<prefix>{<tag>}:".
-- @include keys

-- Redis server time in ms: every deadline is compared with this clock only.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one lifecycle event to the bucket's journal, trimmed as it is written.
-- `retention` is "<max entries>/<max age ms>" (age 0: no age limit). An entry carries
-- the token's record (see include/records.lua), not its claims: readers expand it with
-- the bucket's templates (lib/tokens/records.ts, `claimsOf`), so an `issued` entry is
-- about 100 bytes, not 280. `record` is false when the token had none (a jti that never
-- named a record). The entry's id is its time (Redis ms): it has no field for it.
local retention_text, maxlen, maxage
local aged = {}
local function journal(base, retention, kind, jti, reason, record, at)
  local log = log_key(base)
  if retention ~= retention_text then
    retention_text = retention
    maxlen, maxage = string.match(retention, '^(%d+)/(%d+)$')
  end
  local id
  if reason and record then
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'reason', reason, 'record', record)
  elseif record then
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'record', record)
  elseif reason then
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'reason', reason)
  else
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at)
  end
  -- By age: once per journal and script run (every entry of a run has the same `at`).
  if maxage ~= '0' and not aged[log] then
    aged[log] = true
    redis.call('XTRIM', log, 'MINID', '~', string.format('%d', at - tonumber(maxage)))
  end
  return id
end

-- Append one session event (see include/sessions.lua): its sid, the reason for
-- `session_ended`, the access token it issued for `session_started` and `refreshed` (jti
-- and record: that token has no `issued` entry of its own), and `field` = `payload`, the
-- session's state or the packed session.
local function journal_session(base, retention, kind, sid, reason, jti, record, field, payload, at)
  local args = { 'XADD', log_key(base), 'MAXLEN', '~', '0', '*', 'type', kind, 'sid', sid }
  if reason then args[#args + 1] = 'reason' args[#args + 1] = reason end
  if jti then
    args[#args + 1] = 'jti'
    args[#args + 1] = jti
    args[#args + 1] = 'record'
    args[#args + 1] = record
  end
  args[#args + 1] = field
  args[#args + 1] = payload
  if retention ~= retention_text then
    retention_text = retention
    maxlen, maxage = string.match(retention, '^(%d+)/(%d+)$')
  end
  args[5] = maxlen
  local id = redis.call(unpack(args))
  if maxage ~= '0' and not aged[log_key(base)] then
    aged[log_key(base)] = true
    redis.call('XTRIM', log_key(base), 'MINID', '~', string.format('%d', at - tonumber(maxage)))
  end
  return id
end
