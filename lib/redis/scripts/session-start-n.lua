-- Start sessions (the startSession calls of concurrent callers, see lib/tokens/batch.ts),
-- each with its first access token (include/sessions.lua). Past a subject's session cap,
-- its oldest sessions end first (reason `limit`).
--
-- KEYS, 2 per session: the session <base>s:<sid>, its first access token <base>t:<jti>
-- ARGV[1] journal retention ("<max entries>/<max age ms>"), ARGV[2] idle timeout (ms),
-- ARGV[3] lifetime (ms), ARGV[4] most sessions per subject, ARGV[5] template count T, then
-- T pairs (template id, template claims as JSON members), then 8 per session: its base,
-- the token's record, client_id, scope, further claims (JSON object or ''), device (JSON
-- object or ''), the refresh token's hash, its access tokens' lifetime (s, 0: the store's)
-- Returns per session { code, Redis ms, jtis revoked by sessions ended past the cap... }:
-- code 1 started, 0 it exists already (a resent command), -1 the token's deadline is not
-- in Redis' future, -2 the template id holds other claims (nothing written for these).
-- Found at run time, all in the bucket's slot (see include/keys.lua): the subject's
-- sessions and their tokens, the session index, and what writing a token and a deadline touches.
-- @include sessions

local retention, idle, lifetime, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local templates = {}
local count = tonumber(ARGV[5])
for i = 0, count - 1 do templates[ARGV[6 + 2 * i]] = ARGV[7 + 2 * i] end
local now = now_ms()
local out = {}
local swept = {}
local a = 6 + 2 * count
for k = 1, #KEYS, 2 do
  local base, record = ARGV[a], ARGV[a + 1]
  local key = KEYS[k]
  local sid, jti, sub = string.sub(key, #base + 3), string.sub(KEYS[k + 1], #base + 3), subject_of(record)
  local template = string.match(record, '^(%w*),')
  local reply
  if redis.call('EXISTS', key) == 1 then
    reply = { 0, now }
  elseif second_of(jti) * 1000 <= now then
    reply = { -1, now }
  elseif template ~= '' and not template_ok(base, template, templates) then
    reply = { -2, now }
  else
    reply = { 1, now }
    -- Keep memory bounded with no lifecycle running: a few overdue tokens and sessions go first.
    if not swept[base] then
      swept[base] = true
      sweep_due(base, due_key(base), now, 4, retention)
    end
    -- The cap: the oldest live sessions end until this one fits (dead sids are dropped).
    local live = {}
    for _, other in ipairs(session_ids(base, sub)) do
      if redis.call('EXISTS', session_key(base, other)) == 1 then live[#live + 1] = other else session_unlist(base, sub, other) end
    end
    local revoked = {}
    for i = 1, #live - cap + 1 do end_session(base, live[i], 'limit', now, retention, revoked) end
    local s = { g = 0, c = now, l = now, i = idle, a = now + lifetime, pg = now, t = tonumber(ARGV[a + 7]), r = ARGV[a + 6], p = '', q = '',
      k = ARGV[a + 2], s = ARGV[a + 3], x = ARGV[a + 4], d = ARGV[a + 5], j = jti, u = sub }
    redis.call('SET', key, session_pack(s))
    session_schedule(base, sid, session_deadline(s))
    local list = sessions_key(base)
    redis.call('HSET', list, sub, (redis.call('HGET', list, sub) or '') .. sid)
    write_token(base, KEYS[k + 1], jti, record, now, retention, true)
    journal_session(base, retention, 'session_started', sid, false, jti, record, 'state', session_state(s, s.s), now)
    for _, t in ipairs(revoked) do reply[#reply + 1] = t end
  end
  out[#out + 1] = reply
  a = a + 8
end
return out
