-- Refresh: rotate a session's refresh token and issue its next access token, atomically.
-- The caller signed the access token and sealed the new pair for the holder of the
-- presented refresh token before this runs; which of these happens is decided here:
--   * the presented token is the current one: the new token is written, the refresh
--     token rotates (generation + 1), the idle deadline slides, and the sealed pair is
--     kept for the grace window -> { 'ok', Redis ms, the session's new deadline };
--   * it is the one before, within the grace window (a client retry, two tabs): nothing
--     changes -> { 'again', sealed pair } (the caller opens it: the same new pair);
--   * it is an older one (the caller proved it is ours: `genuine`), or the one before
--     after the grace window: reuse, so theft. `reuse_detected` is journaled and the whole
--     session ends (reason `reuse`) -> { 'reuse', Redis ms, revoked jtis... };
--   * anything else (an ended session, a token never issued) -> { 'invalid' }; a session
--     found past its deadline ends here (idle or absolute) -> { 'invalid', Redis ms, jtis... }.
-- The current token is the only one that rotates, and rotation compares its hash, so two
-- racing refreshes cannot both rotate: there is never more than one live refresh token.
--
-- KEYS[1] the session <base>s:<sid>, KEYS[2] the new access token's key, KEYS[3] the sealed
-- pair <base>sg:<sid>
-- ARGV[1] base, ARGV[2] journal retention, ARGV[3] template id ('' none), ARGV[4] its
-- claims (JSON members), ARGV[5] the new token's record, ARGV[6] the presented token's
-- generation, ARGV[7] its hash, ARGV[8] '1' if its MAC verified (genuine), ARGV[9] the new
-- refresh token's hash, ARGV[10] the sealed pair, ARGV[11] grace window (ms)
-- Found at run time, all in the bucket's slot (see include/keys.lua): the session's tokens,
-- the session index and due set, and what writing a token touches.
-- @include sessions

local base, retention = ARGV[1], ARGV[2]
local key = KEYS[1]
local sid = string.sub(key, #base + 3)
local jti = string.sub(KEYS[2], #base + 3)
local s = session_read(key)
if not s then return { 'invalid' } end
local now = now_ms()
local generation, presented, hash = s.g, tonumber(ARGV[6]), ARGV[7]
local revoked = {}
local function answer(kind)
  local out = { kind, now }
  for _, t in ipairs(revoked) do out[#out + 1] = t end
  return out
end

if session_deadline(s.l, s.i, s.a) <= now then
  end_session(base, sid, s.a <= now and 'absolute' or 'idle', now, retention, revoked)
  return answer('invalid')
end
if presented == generation and hash == s.r then
  if second_of(jti) * 1000 <= now then return { 'late', now } end
  local templates = { [ARGV[3]] = ARGV[4] }
  if ARGV[3] ~= '' and not template_ok(base, ARGV[3], templates) then return { 'template', now } end
  local deadline = session_deadline(now, s.i, s.a)
  s.g, s.r, s.p, s.pg, s.l = generation + 1, ARGV[9], hash, now + tonumber(ARGV[11]), now
  session_write(key, s)
  redis.call('SET', KEYS[3], ARGV[10], 'PX', tonumber(ARGV[11]))
  redis.call('ZADD', session_due_key(base), deadline, sid)
  journal_session(base, retention, 'refreshed', sid, false, jti, session_json(sid, s), now)
  write_token(base, KEYS[2], jti, ARGV[5], now, retention)
  return { 'ok', now, deadline }
end
if presented == generation - 1 and hash == s.p and now < s.pg then
  local sealed = redis.call('GET', KEYS[3])
  if sealed then return { 'again', sealed } end
  return { 'invalid' }
end
if (s.p ~= '' and hash == s.p) or (ARGV[8] == '1' and presented < generation) then
  journal_session(base, retention, 'reuse_detected', sid, false, false, session_json(sid, s), now)
  end_session(base, sid, 'reuse', now, retention, revoked)
  return answer('reuse')
end
return { 'invalid' }
