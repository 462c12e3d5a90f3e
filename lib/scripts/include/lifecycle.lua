-- Shared by every script (spliced in where a script says "-- @include lifecycle").
-- A bucket's keys all start with `base` = "<prefix>{<prefix><b>}:", one hash slot.

-- Redis server time in ms: every deadline is compared with this clock only.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one lifecycle event to the bucket's journal, trimmed as it is written.
local function journal(base, maxlen, kind, jti, reason, claims, at)
  local log = base .. 'log'
  if reason and claims then
    return redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at, 'reason', reason, 'claims', claims)
  elseif reason then
    return redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at, 'reason', reason)
  elseif claims then
    return redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at, 'claims', claims)
  end
  return redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'jti', jti, 'at', at)
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
local function reap(base, jti, now, early, maxlen)
  local score = redis.call('ZSCORE', base .. 'due', jti)
  if not score then return 0 end
  -- EXISTS also makes Redis expire the key now if its deadline has passed.
  if redis.call('EXISTS', base .. 't:' .. jti) == 1 then return 0 end
  redis.call('ZREM', base .. 'due', jti)
  local claims = forget(base, jti)
  if tonumber(score) <= now then
    journal(base, maxlen, 'expired', jti, false, claims, now)
  else
    journal(base, maxlen, 'revoked', jti, early, claims, now)
  end
  return 1
end
