-- Shared by every script that writes the journal (spliced in where a script says
-- "-- @include journal"). A bucket's keys all start with `base` = "<prefix>{<tag>}:".
-- @include keys

-- Redis server time in ms: every deadline is compared with this clock only.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one lifecycle event to the bucket's journal, trimmed as it is written.
-- `retention` is "<max entries>/<max age ms>" (age 0: no age limit).
local retention_text, maxlen, maxage
local function journal(base, retention, kind, jti, reason, claims, at)
  local log = log_key(base)
  if retention ~= retention_text then
    retention_text = retention
    maxlen, maxage = string.match(retention, '^(%d+)/(%d+)$')
  end
  local id
  if reason and claims then
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at, 'reason', reason, 'claims', claims)
  elseif claims then
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at, 'claims', claims)
  elseif reason then
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at, 'reason', reason)
  else
    id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at)
  end
  if maxage ~= '0' then
    redis.call('XTRIM', log, 'MINID', '~', string.format('%d', at - tonumber(maxage)))
  end
  return id
end
