-- Shared by every script (spliced in where a script says "-- @include lifecycle").
-- A bucket's keys all start with `base` = "<prefix>{<prefix><b>}:", one hash slot.

-- Redis server time in ms: every deadline is compared with this clock only.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one lifecycle event to the bucket's journal, trimmed as it is written.
-- `retention` is "<max entries>/<max age ms>" (age 0: no age limit).
local function journal(base, retention, kind, jti, reason, claims, at)
  local log = base .. 'log'
  local maxlen, maxage = string.match(retention, '^(%d+)/(%d+)$')
  local fields = { 'type', kind, 'jti', jti, 'at', at }
  if reason then fields[#fields + 1] = 'reason'; fields[#fields + 1] = reason end
  if claims then fields[#fields + 1] = 'claims'; fields[#fields + 1] = claims end
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  if tonumber(maxage) > 0 then
    redis.call('XTRIM', log, 'MINID', '~', string.format('%d', at - tonumber(maxage)))
  end
  return id
end

-- Drop a token's claims and its subject-index entry; returns the claims (JSON) or false.
local function forget(base, jti)
  local claims = redis.call('HGET', base .. 'claims', jti)
  if claims then
    redis.call('HDEL', base .. 'claims', jti)
    local ok, decoded = pcall(cjson.decode, claims)
    if ok and type(decoded) == 'table' and type(decoded.sub) == 'string' then
      redis.call('ZREM', base .. 'sub:' .. decoded.sub, jti)
    end
  end
  return claims
end

-- Journal the end of a token whose key is gone. The ZREM on the due index is the
-- guard: however many callers race (sweepers, keyevent triggers, issue), exactly
-- one of them removes the entry and journals the event.
-- A key gone before its deadline was deleted by someone else (`early` names how).
-- `gone` (optional, Redis ms): when the key was already known to be gone (a `del` or
-- `evicted` notification seen then), for a reap that runs late (queued across an outage).
local function reap(base, jti, now, early, retention, gone)
  local score = redis.call('ZSCORE', base .. 'due', jti)
  if not score then return 0 end
  -- EXISTS also makes Redis expire the key now if its deadline has passed.
  if redis.call('EXISTS', base .. 't:' .. jti) == 1 then return 0 end
  redis.call('ZREM', base .. 'due', jti)
  local claims = forget(base, jti)
  if tonumber(score) <= math.min(now, gone or now) then
    journal(base, retention, 'expired', jti, false, claims, now)
  else
    journal(base, retention, 'revoked', jti, early, claims, now)
  end
  return 1
end
