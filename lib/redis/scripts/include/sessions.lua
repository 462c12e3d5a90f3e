-- Sessions (spliced in where a script says "-- @include sessions"; the TypeScript half
-- is lib/sessions/). A session groups the access tokens whose `sid` claim names it and one
-- refresh-token family. Everything of a session lies in its subject's bucket, so one
-- script can end all of it at once; its sid and its tokens' jtis are drawn to fall in
-- that bucket. Per session:
--   <base>s:<sid>   string: the session, packed (one string costs far less than a hash,
--                   whose device field would outgrow Redis' compact encoding):
--                   "<g>,<c>,<l>,<i>,<a>,<pg>,<t>,<r>,<p>,<#k>,<#s>,<#x>,<#d>:<k><s><x><d><u>"
--                   g refresh generation, c started (Redis ms), l last used, i idle timeout,
--                   a absolute deadline, pg until when the previous refresh token may be
--                   presented again (the grace window), t its access tokens' lifetime (s,
--                   0: the store's) -- numbers in base 36, l, a and pg as ms after c --, r and p the hashes of the current and the previous
--                   refresh token, then the byte lengths of k client_id, s scope, x further
--                   claims of its access tokens (JSON object) and d device (JSON object),
--                   which follow, and u the subject, last
--   <base>sess      hash: sub -> its sids run together, oldest first
--   field "=<sid>"  in the window hash of the second its deadline falls in (the tokens'
--                   time wheel, include/records.lua): the sweeper ends it there, or finds
--                   it slid later (a refresh writes the new second's field)
--   <base>sg:<sid>  string, PX grace: the pair the last refresh gave, encrypted for the
--                   holder of the refresh token it used (never readable here)
-- No refresh token is stored: only its hash (lib/sessions/refresh-token.ts). A session's
-- deadline, min(l + i, a), is rounded up to a whole second, like a token's exp.
-- Journal entries: `session_started` and `refreshed` carry the access token they issued
-- (jti and record, as an `issued` entry does: that token has no entry of its own) and the
-- session's state "<g>,<c>,<l>,<i>,<a>,<#s>:<s><d>" (s: the session's scope when the
-- token's is narrower); `session_ended` and `reuse_detected` carry the packed session.
-- @include tokens

local SID_LENGTH = 16
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'

local function b36(n)
  n = math.floor(n)
  if n <= 0 then return '0' end
  local out = {}
  while n > 0 do
    local d = n % 36
    out[#out + 1] = string.sub(DIGITS, d + 1, d + 1)
    n = math.floor(n / 36)
  end
  return string.reverse(table.concat(out))
end

-- The deadline of a session (Redis ms, a whole second).
local function session_deadline(s)
  return math.ceil(math.min(s.l + s.i, s.a) / 1000) * 1000
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

local SESSION = '^(%w+),(%w+),(%w+),(%w+),(%w+),(%w+),(%w+),([%w_-]*),([%w_-]*),(%d+),(%d+),(%d+),(%d+):()'

-- A packed session as a table (nil when it is not one).
local function session_unpack(v)
  local g, c, l, i, a, pg, t, r, p, nk, ns, nx, nd, at = string.match(v, SESSION)
  if not at then return nil end
  local start = tonumber(c, 36)
  local s = { g = tonumber(g, 36), c = start, l = start + tonumber(l, 36), i = tonumber(i, 36), a = start + tonumber(a, 36), pg = start + tonumber(pg, 36),
    t = tonumber(t, 36), r = r, p = p }
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

local function session_pack(s)
  return table.concat({ b36(s.g), ',', b36(s.c), ',', b36(s.l - s.c), ',', b36(s.i), ',', b36(s.a - s.c), ',', b36(math.max(0, s.pg - s.c)), ',', b36(s.t), ',',
    s.r, ',', s.p, ',', #s.k, ',', #s.s, ',', #s.x, ',', #s.d, ':', s.k, s.s, s.x, s.d, s.u })
end

local function session_read(key)
  local v = redis.call('GET', key)
  return v and session_unpack(v)
end

-- The state a `session_started` or `refreshed` entry carries (see the header).
local function session_state(s, token_scope)
  local scope = s.s ~= token_scope and s.s or ''
  return table.concat({ b36(s.g), ',', b36(s.c), ',', b36(s.l - s.c), ',', b36(s.i), ',', b36(s.a - s.c), ',', #scope, ':', scope, s.d })
end

-- Puts a session's deadline in the time wheel (see the header).
local function session_schedule(base, sid, deadline)
  local second = deadline / 1000
  if redis.call('HSET', window_key(base, second), '=' .. sid, '', '~', '') == 2 then
    redis.call('ZADD', due_key(base), 'NX', deadline, second)
  end
end

local function session_unschedule(base, sid, deadline)
  redis.call('HDEL', window_key(base, deadline / 1000), '=' .. sid)
end

-- Ends a session: revokes its live access tokens (reason `session`; one already gone is
-- reaped as what it was), drops the session, and journals `session_ended` with `reason`
-- (idle, absolute, revoked, reuse, limit, logout). Everything is read before anything
-- is written (see `prepare`). Appends the revoked jtis to `revoked`. Returns 1, or 0 if
-- there was no such session.
local function end_session(base, sid, reason, now, retention, revoked)
  local key = session_key(base, sid)
  local packed = redis.call('GET', key)
  local s = packed and session_unpack(packed)
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
  session_unschedule(base, sid, session_deadline(s))
  session_unlist(base, sub, sid)
  journal_session(base, retention, 'session_ended', sid, reason, false, false, 'session', packed, now)
  return 1
end

-- The sweeper found "=<sid>" in a due window (include/lifecycle.lua, sweep_due): ends the
-- session if its deadline has passed; a session that slid later has a field of its own in
-- a later window. Returns 1 if it ended one.
session_due = function(base, sid, now, retention)
  local s = session_read(session_key(base, sid))
  if s and session_deadline(s) <= now then
    return end_session(base, sid, s.a <= now and 'absolute' or 'idle', now, retention, {})
  end
  return 0
end
