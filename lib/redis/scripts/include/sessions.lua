-- Sessions (spliced in where a script says "-- @include sessions"; the TypeScript half
-- is lib/sessions/). A session groups the access tokens whose `sid` claim names it and one
-- refresh-token family. Everything of a session lies in its subject's bucket, so one
-- script can end all of it at once; its sid and its tokens' jtis are drawn to fall in
-- that bucket. Per session:
--   <base>s:<sid>   string: the session, packed (one string costs far less than a hash
--                   whose device field outgrows Redis' compact encoding):
--                   "<g>,<c>,<l>,<i>,<a>,<pg>,<r>,<p>,<#k>,<#s>,<#x>,<#d>:<k><s><x><d><u>"
--                   g refresh generation, c started (ms), l last used (ms), i idle timeout
--                   (ms), a absolute deadline (ms), pg until when the previous refresh token
--                   may be presented again (grace, ms), r and p the hashes of the current and
--                   the previous refresh token, then the lengths (bytes) of k client_id,
--                   s scope, x further claims of its access tokens (JSON object), d device
--                   (JSON object), which follow, and u the subject, last
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

-- A session's string as a table (nil when there is none or it is not one).
local SESSION = '^(%d+),(%d+),(%d+),(%d+),(%d+),(%d*),([%w_-]*),([%w_-]*),(%d+),(%d+),(%d+),(%d+):()'
local function session_read(key)
  local v = redis.call('GET', key)
  if not v then return nil end
  local g, c, l, i, a, pg, r, p, nk, ns, nx, nd, at = string.match(v, SESSION)
  if not at then return nil end
  local s = { g = tonumber(g), c = tonumber(c), l = tonumber(l), i = tonumber(i), a = tonumber(a), pg = tonumber(pg) or 0, r = r, p = p }
  local function take(n)
    local part = string.sub(v, at, at + n - 1)
    at = at + n
    return part
  end
  s.k = take(tonumber(nk))
  s.s = take(tonumber(ns))
  s.x = take(tonumber(nx))
  s.d = take(tonumber(nd))
  s.u = string.sub(v, at)
  return s
end

local function session_write(key, s)
  redis.call('SET', key, table.concat({ string.format('%d,%d,%d,%d,%d,%d,', s.g, s.c, s.l, s.i, s.a, s.pg), s.r, ',', s.p, ',',
    #s.k, ',', #s.s, ',', #s.x, ',', #s.d, ':', s.k, s.s, s.x, s.d, s.u }))
end

-- A session as the JSON its events carry (lib/sessions/session-info.ts reads it).
local function session_json(sid, s)
  local parts = { '{"sid":"', sid, '","sub":', json_string(s.u), ',"createdAt":', string.format('%d', s.c), ',"lastUsed":', string.format('%d', s.l),
    ',"idleTimeout":', string.format('%d', s.i), ',"absoluteExpiresAt":', string.format('%d', s.a), ',"generation":', string.format('%d', s.g) }
  if s.k ~= '' then parts[#parts + 1] = ',"clientId":' parts[#parts + 1] = json_string(s.k) end
  if s.s ~= '' then parts[#parts + 1] = ',"scope":' parts[#parts + 1] = json_string(s.s) end
  if s.x ~= '' then parts[#parts + 1] = ',"claims":' parts[#parts + 1] = s.x end
  if s.d ~= '' then parts[#parts + 1] = ',"device":' parts[#parts + 1] = s.d end
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
  local s = session_read(key)
  if not s then return 0 end
  local sub = s.u
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
    local s = session_read(session_key(base, sid))
    if not s then
      redis.call('ZREM', due, sid)
    else
      local absolute = s.a
      local deadline = session_deadline(s.l, s.i, absolute)
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
