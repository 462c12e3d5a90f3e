-- Sessions (spliced in where a script says "-- @include sessions"; the TypeScript half
-- is lib/sessions/). A session groups the access tokens whose `sid` claim names it and one
-- refresh-token family. Everything of a session lies in its subject's bucket, so one
-- script can end all of it at once; its sid and its tokens' jtis are drawn to fall in
-- that bucket. Per session:
--   <base>s:<sid>   string: the session, packed (one string costs far less than a hash,
--                   whose device field would outgrow Redis' compact encoding):
--                   "<g>,<c>,<l>,<i>,<a>,<pg>,<t>,<r>,<p>,<q>,<#k>,<#s>,<#x>,<#d>,<#j>:<k><s><x><d><j><u>"
--                   g refresh generation, c started (Redis ms), l last used, i idle timeout,
--                   a absolute deadline, pg until when the previous refresh token may be
--                   presented again (the grace window), t its access tokens' lifetime (s,
--                   0: the store's) -- numbers in hex; l and pg in ms after c, a in seconds
--                   after c, i in seconds --, r and p the hashes of the current and the previous
--                   refresh token, q the current one's secret sealed for the holder of the
--                   previous one (for a repeat within the grace window; '' before the first
--                   refresh; lib/sessions/refresh-token.ts), then the byte lengths of k client_id, s scope, x further
--                   claims of its access tokens (JSON object), d device (JSON object) and
--                   j the jtis of its access tokens (run together; expired ones are dropped
--                   as it is written), which follow, and u the subject, last. A session's
--                   tokens are found through it, not through the subject index.
--   <base>sess      hash: sub -> its sids run together, oldest first
--   field "=<sid>"  in the window hash of a second at or before its deadline (the tokens'
--                   time wheel, include/records.lua): the sweeper ends it there, or finds
--                   that it slid later (a refresh leaves the field: deadlines only move
--                   later) and moves the field to its deadline's second
-- No refresh token is stored: only its hash (lib/sessions/refresh-token.ts). A session's
-- deadline, min(l + i, a), is rounded up to a whole second, like a token's exp.
-- Journal entries: `session_started` and `refreshed` carry the access token they issued
-- (jti and record, as an `issued` entry does: that token has no entry of its own) and the
-- session's state "<g>,<c>,<l>,<i>,<a>,<#s>:<s><d>" (s: the session's scope when the
-- token's is narrower); `session_ended` and `reuse_detected` carry the packed session.
-- @include tokens

local SID_LENGTH = 16
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
  if held then remove_id(key, sub, held, sid, SID_LENGTH) end
end

local SESSION = '^(%w+),(%w+),(%w+),(%w+),(%w+),(%w+),(%w+),([%w_-]*),([%w_-]*),([%w_-]*),(%d+),(%d+),(%d+),(%d+),(%d+):()'

-- A packed session as a table (nil when it is not one).
local function session_unpack(v)
  local g, c, l, i, a, pg, t, r, p, q, nk, ns, nx, nd, nj, at = string.match(v, SESSION)
  if not at then return nil end
  local start = tonumber(c, 16)
  local k_at = at + nk
  local s_at = k_at + ns
  local x_at = s_at + nx
  local d_at = x_at + nd
  local j_at = d_at + nj
  return { g = tonumber(g, 16), c = start, l = start + tonumber(l, 16), i = tonumber(i, 16) * 1000, a = start + tonumber(a, 16) * 1000, pg = start + tonumber(pg, 16),
    t = tonumber(t, 16), r = r, p = p, q = q, k = string.sub(v, at, k_at - 1), s = string.sub(v, k_at, s_at - 1), x = string.sub(v, s_at, x_at - 1),
    d = string.sub(v, x_at, d_at - 1), j = string.sub(v, d_at, j_at - 1), u = string.sub(v, j_at) }
end

-- The packed session's numbers, in hex (see the header): one string.format, in C.
local function session_header(s)
  return string.format('%x,%x,%x,%x,%x,%x,%x,', s.g, s.c, math.max(0, s.l - s.c), s.i / 1000, math.max(0, (s.a - s.c) / 1000), math.max(0, s.pg - s.c), s.t)
end

local function session_pack(s)
  return table.concat({ session_header(s), s.r, ',', s.p, ',', s.q, string.format(',%d,%d,%d,%d,%d:', #s.k, #s.s, #s.x, #s.d, #s.j), s.k, s.s, s.x, s.d, s.j, s.u })
end

local function session_read(key)
  local v = redis.call('GET', key)
  return v and session_unpack(v)
end

-- The state a `session_started` or `refreshed` entry carries (see the header).
local function session_state(s, token_scope)
  local scope = s.s ~= token_scope and s.s or ''
  return string.format('%x,%x,%x,%x,%x,%d:', s.g, s.c, math.max(0, s.l - s.c), s.i / 1000, math.max(0, (s.a - s.c) / 1000), #scope) .. scope .. s.d
end

-- The record of a session's next access token (see include/records.lua), from the
-- session: its sub, its further claims and `sid`, `scope` (the session's, or narrower),
-- under template `template` with lifetime `age`; `mode` says which claims the record
-- holds itself as no template does (lib/tokens/records.ts, `forRefresh`): 0 none,
-- 1 client_id, 2 client_id and `members` (iss and aud).
local function session_record(s, sid, template, age, scope, mode, members)
  local extra = { s.x == '' and '{' or string.sub(s.x, 1, -2) .. ',', '"sid":"', sid, '"' }
  if mode ~= '0' then
    extra[#extra + 1] = ',"client_id":'
    extra[#extra + 1] = json_string(s.k)
    if mode == '2' and members ~= '' then
      extra[#extra + 1] = ','
      extra[#extra + 1] = members
    end
  end
  extra[#extra + 1] = '}'
  local x = table.concat(extra)
  return table.concat({ template, ',', age, scope == '' and ',,' or string.format(',%d,', #scope), string.format('%d:', #x), scope, x, s.u })
end

-- True when every scope token of `asked` is one of `granted`'s (RFC 6749 §6 narrowing).
local function scope_within(asked, granted)
  local held = ' ' .. granted .. ' '
  for name in string.gmatch(asked, '%S+') do
    if not string.find(held, ' ' .. name .. ' ', 1, true) then return false end
  end
  return true
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

-- The jtis of a session's access tokens, those past their deadline dropped.
local JTI_LENGTH = 23
local function session_tokens(s, now)
  local out = {}
  for i = 1, #s.j, JTI_LENGTH do
    local jti = string.sub(s.j, i, i + JTI_LENGTH - 1)
    if second_of(jti) * 1000 > now then out[#out + 1] = jti end
  end
  return out
end

-- Adds an access token to its session (expired ones are dropped).
local function session_add_token(s, jti, now)
  local live = session_tokens(s, now)
  live[#live + 1] = jti
  s.j = table.concat(live)
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
  local mine = {}
  for i = 1, #s.j, JTI_LENGTH do
    local jti = string.sub(s.j, i, i + JTI_LENGTH - 1)
    local window, record = prepare(base, jti)
    if record then mine[#mine + 1] = { jti, window, record } end
  end
  redis.call('HGET', sessions_key(base), sub)
  for _, t in ipairs(mine) do
    if redis.call('DEL', token_key(base, t[1])) == 1 then
      redis.call('HDEL', t[2], t[1])
      journal(base, retention, 'revoked', t[1], 'session', t[3], now)
      revoked[#revoked + 1] = t[1]
    else
      reap(base, t[1], now, 'external', retention)
    end
  end
  redis.call('DEL', key)
  session_unschedule(base, sid, session_deadline(s))
  session_unlist(base, sub, sid)
  journal_session(base, retention, 'session_ended', sid, reason, false, false, 'session', packed, now)
  return 1
end

-- The sweeper found "=<sid>" in a due window (include/lifecycle.lua, sweep_due; it drops
-- that field): ends the session if its deadline has passed, or moves the field to the
-- second of its deadline, which a refresh slid later. Returns 1 if it ended one.
session_due = function(base, sid, now, retention)
  local s = session_read(session_key(base, sid))
  if not s then return 0 end
  local deadline = session_deadline(s)
  if deadline <= now then return end_session(base, sid, s.a <= now and 'absolute' or 'idle', now, retention, {}) end
  session_schedule(base, sid, deadline)
  return 0
end
