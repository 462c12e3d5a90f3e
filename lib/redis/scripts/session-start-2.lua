-- Start a session (see include/sessions.lua) with its first access token. Past the
-- subject's session cap, its oldest sessions end first (reason `limit`).
--
-- KEYS[1] the session <base>s:<sid>, KEYS[2] its first access token's key <base>t:<jti>
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] template
-- id ('' none), ARGV[4] its claims (JSON members), ARGV[5] the token's record, ARGV[6] idle
-- timeout (ms), ARGV[7] lifetime (ms), ARGV[8] most sessions per subject, ARGV[9] client_id,
-- ARGV[10] scope, ARGV[11] further claims (JSON object or ''), ARGV[12] device (JSON object
-- or ''), ARGV[13] the hash of the refresh token
-- Returns { code, Redis time (ms), jtis revoked by sessions ended past the cap... }: code 1
-- started, -1 the token's deadline is not in Redis' future, -2 the template id holds other
-- claims (nothing is written for either), 0 the session exists already (a resent command).
-- Found at run time, all in the bucket's slot (see include/keys.lua): the subject's
-- sessions and their tokens, the session index and due set, and what writing a token touches.
-- @include sessions

local base, retention = ARGV[1], ARGV[2]
local key = KEYS[1]
local sid = string.sub(key, #base + 3)
local jti = string.sub(KEYS[2], #base + 3)
local record = ARGV[5]
local sub = subject_of(record)
local now = now_ms()
if redis.call('EXISTS', key) == 1 then return { 0, now } end
if second_of(jti) * 1000 <= now then return { -1, now } end
local templates = { [ARGV[3]] = ARGV[4] }
if ARGV[3] ~= '' and not template_ok(base, ARGV[3], templates) then return { -2, now } end

local out = { 1, now }
local revoked = {}
-- The cap: the oldest live sessions end until this one fits (dead sids are dropped).
local live = {}
for _, other in ipairs(session_ids(base, sub)) do
  if redis.call('EXISTS', session_key(base, other)) == 1 then live[#live + 1] = other else session_unlist(base, sub, other) end
end
for i = 1, #live - tonumber(ARGV[8]) + 1 do end_session(base, live[i], 'limit', now, retention, revoked) end
-- Keep memory bounded with no lifecycle running: a few overdue sessions of the bucket end here.
sweep_sessions(base, now, 4, retention)

local session = { g = 0, c = now, l = now, i = tonumber(ARGV[6]), a = now + tonumber(ARGV[7]), pg = 0, r = ARGV[13], p = '',
  k = ARGV[9], s = ARGV[10], x = ARGV[11], d = ARGV[12], u = sub }
session_write(key, session)
redis.call('ZADD', session_due_key(base), session_deadline(now, session.i, session.a), sid)
local list = sessions_key(base)
redis.call('HSET', list, sub, (redis.call('HGET', list, sub) or '') .. sid)
journal_session(base, retention, 'session_started', sid, false, jti, session_json(sid, session), now)
write_token(base, KEYS[2], jti, record, now, retention)
for _, revoked_jti in ipairs(revoked) do out[#out + 1] = revoked_jti end
return out
