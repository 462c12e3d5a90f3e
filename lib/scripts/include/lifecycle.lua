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

-- The subject index named by a token's claims (JSON), or nil.
local function subject_key(base, claims)
  if not claims then return nil end
  local ok, decoded = pcall(cjson.decode, claims)
  if ok and type(decoded) == 'table' and type(decoded.sub) == 'string' then return base .. 'sub:' .. decoded.sub end
  return nil
end

-- Reads a token's claims and touches its subject index before anything is written.
-- Redis does not roll a script back: on a Cluster slot in migration, a key that has
-- already moved must fail the script here, not halfway through its writes.
-- Returns the claims (JSON, or false) and the subject index key (or nil).
local function prepare(base, jti)
  local claims = redis.call('HGET', base .. 'claims', jti)
  local sub = subject_key(base, claims)
  if sub then redis.call('EXISTS', sub) end
  return claims, sub
end

-- Drops a token's claims and subject-index entry (after `prepare`).
local function forget(base, jti, sub)
  redis.call('HDEL', base .. 'claims', jti)
  if sub then redis.call('ZREM', sub, jti) end
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
  local claims, sub = prepare(base, jti)
  redis.call('ZREM', base .. 'due', jti)
  forget(base, jti, sub)
  if tonumber(score) <= math.min(now, gone or now) then
    journal(base, retention, 'expired', jti, false, claims, now)
  else
    journal(base, retention, 'revoked', jti, early, claims, now)
  end
  return 1
end
