-- Sessions (spliced in where a script says "-- @include sessions"; the TypeScript half
-- is lib/sessions/). A session groups the access tokens whose `sid` claim names it and one
-- refresh-token family. Everything of a session lies in its subject's bucket, so one
-- script can end all of it at once; its sid and its tokens' jtis are drawn to fall in
-- that bucket. Per session:
--   <base>s:<sid>   hash: u sub, c started (ms), l last used (ms), i idle timeout (ms),
--                   a absolute deadline (ms), g refresh generation, r hash of the current
--                   refresh token, p hash of the one before, pg until when that one may be
--                   presented again (grace, ms), k client_id, s scope, x further claims of
--                   its access tokens (JSON object), d device (JSON object)
--   <base>sess      hash: sub -> its sids run together, oldest first
--   <base>sdue      sorted set: sid -> deadline, min(l + i, a)
--   <base>sg:<sid>  string, PX grace: the pair the last refresh gave, encrypted for the
--                   holder of the refresh token it used (never readable here)
-- No refresh token is stored: only its hash (lib/sessions/refresh-token.ts).
-- @include tokens

local SID_LENGTH = 16

local function session_deadline(last, idle, absolute)
  return math.min(last + idle, absolute)
end

-- The sids of a subject's sessions in this bucket (live or not: the caller checks).
local function session_ids(base, sub)
  local held = redis.call('HGET', sessions_key(base), sub)
  local out = {}
  if not held then return out end
  for i = 1, #held, SID_LENGTH do out[#out + 1] = string.sub(held, i, i + SID_LENGTH - 1) end
  return out
end

local function session_unlist(base, sub, sid)
  local key = sessions_key(base)
  local held = redis.call('HGET', key, sub)
  if not held then return end
  for i = 1, #held, SID_LENGTH do
    if string.sub(held, i, i + SID_LENGTH - 1) == sid then
      local rest = string.sub(held, 1, i - 1) .. string.sub(held, i + SID_LENGTH)
      if rest == '' then redis.call('HDEL', key, sub) else redis.call('HSET', key, sub, rest) end
      return
    end
  end
end

-- A session as the JSON its events carry (`s` is the HMGET of SESSION_FIELDS).
local SESSION_FIELDS = { 'u', 'c', 'l', 'i', 'a', 'k', 's', 'x', 'd', 'g' }
local function session_json(sid, s)
  local parts = { '{"sid":"', sid, '","sub":', json_string(s[1]), ',"createdAt":', s[2], ',"lastUsed":', s[3],
    ',"idleTimeout":', s[4], ',"absoluteExpiresAt":', s[5], ',"generation":', s[10] or '0' }
  if s[6] and s[6] ~= '' then parts[#parts + 1] = ',"clientId":' parts[#parts + 1] = json_string(s[6]) end
  if s[7] and s[7] ~= '' then parts[#parts + 1] = ',"scope":' parts[#parts + 1] = json_string(s[7]) end
  if s[8] and s[8] ~= '' then parts[#parts + 1] = ',"claims":' parts[#parts + 1] = s[8] end
  if s[9] and s[9] ~= '' then parts[#parts + 1] = ',"device":' parts[#parts + 1] = s[9] end
  parts[#parts + 1] = '}'
  return table.concat(parts)
end

-- Ends a session: revokes its live access tokens (reason `session`; one already gone is
-- reaped as what it was), drops the session, and journals `session_ended` with `reason`
-- (idle, absolute, revoked, reuse, limit, logout). Everything is read before anything
-- is written (see `prepare`). Appends the revoked jtis to `revoked`. Returns 1, or 0 if
-- there was no such session.
local function end_session(base, sid, reason, now, retention, revoked)
  local key = session_key(base, sid)
  local s = redis.call('HMGET', key, unpack(SESSION_FIELDS))
  if not s[1] then return 0 end
  local sub = s[1]
  local needle = '"sid":"' .. sid .. '"'
  local mine = {}
  for _, jti in ipairs(subject_tokens(base, sub)) do
    local window, record, rsub = prepare(base, jti)
    if record and string.find(record, needle, 1, true) then mine[#mine + 1] = { jti, window, record, rsub } end
  end
  redis.call('HGET', sessions_key(base), sub)
  for _, t in ipairs(mine) do
    if redis.call('DEL', token_key(base, t[1])) == 1 then
      forget(base, t[2], t[1], t[4])
      journal(base, retention, 'revoked', t[1], 'session', t[3], now)
      revoked[#revoked + 1] = t[1]
    else
      reap(base, t[1], now, 'external', retention)
    end
  end
  redis.call('DEL', key, grace_key(base, sid))
  redis.call('ZREM', session_due_key(base), sid)
  session_unlist(base, sub, sid)
  journal_session(base, retention, 'session_ended', sid, reason, false, session_json(sid, s), now)
  return 1
end

-- Ends up to `budget` sessions whose deadline has passed, earliest first; a session whose
-- idle deadline slid later (a refresh) is put back with its new one. Returns how many ended.
local function sweep_sessions(base, now, budget, retention)
  local due = session_due_key(base)
  local ended = 0
  local revoked = {}
  local seen = 0
  while seen < budget do
    local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
    if not first[1] or tonumber(first[2]) > now then break end
    seen = seen + 1
    local sid = first[1]
    local s = redis.call('HMGET', session_key(base, sid), 'l', 'i', 'a')
    if not s[1] then
      redis.call('ZREM', due, sid)
    else
      local absolute = tonumber(s[3])
      local deadline = session_deadline(tonumber(s[1]), tonumber(s[2]), absolute)
      if deadline > now then
        redis.call('ZADD', due, deadline, sid)
      else
        ended = ended + end_session(base, sid, absolute <= now and 'absolute' or 'idle', now, retention, revoked)
      end
    end
  end
  return ended
end

-- The first session deadline of the bucket (ms), or nil.
local function first_session_deadline(base)
  local first = redis.call('ZRANGE', session_due_key(base), 0, 0, 'WITHSCORES')
  return first[2] and tonumber(first[2]) or nil
end
