-- Refresh sessions (the refresh calls of concurrent callers, see lib/tokens/batch.ts): for
-- each, rotate its refresh token and write its next access token, atomically. The caller
-- signed the access token and sealed the new pair for the holder of the presented refresh
-- token before this runs; which of these happens is decided here:
--   * the presented token is the current one: the new token is written, the refresh
--     token rotates (generation + 1), the idle deadline slides, and the sealed pair is
--     kept for the grace window -> { 'ok', Redis ms, the session's new deadline };
--   * it is the one before, within the grace window (a client retry, two tabs): nothing
--     changes -> { 'again', sealed pair } (the caller opens it: the same new pair);
--   * it is an older one (the caller proved it is ours: `genuine`), or the one before
--     after the grace window: reuse, so theft. `reuse_detected` is journaled and the whole
--     session ends (reason `reuse`) -> { 'reuse', Redis ms, revoked jtis... };
--   * anything else (an ended session, a token never issued) -> { 'invalid' }; a session
--     found past its deadline ends here (idle or absolute) -> { 'invalid', Redis ms, jtis... };
--   * the new token's deadline is not in Redis' future -> { 'late' }, its template id holds
--     other claims -> { 'template' } (nothing changes for either).
-- Only the current token rotates, and rotation compares its hash, so two racing refreshes
-- cannot both rotate: a session never has more than one live refresh token.
--
-- KEYS, 3 per refresh: the session <base>s:<sid>, the new access token's key, the sealed
-- pair <base>sg:<sid>
-- ARGV[1] journal retention, ARGV[2] grace window (ms), ARGV[3] template count T, then T
-- pairs (template id, claims as JSON members), then 7 per refresh: its base, the new
-- token's record, the presented token's generation, its hash, '1' if its MAC verified
-- (genuine), the new refresh token's hash, the sealed pair
-- Found at run time, all in the bucket's slot (see include/keys.lua): the session's tokens,
-- the session index, and what writing a token and a deadline touches.
-- @include sessions

local retention, grace = ARGV[1], tonumber(ARGV[2])
local templates = {}
local count = tonumber(ARGV[3])
for i = 0, count - 1 do templates[ARGV[4 + 2 * i]] = ARGV[5 + 2 * i] end
local now = now_ms()

local function refresh(base, key, token, sealed_key, record, presented, hash, genuine, new_hash, sealed)
  local sid, jti = string.sub(key, #base + 3), string.sub(token, #base + 3)
  local packed = redis.call('GET', key)
  local s = packed and session_unpack(packed)
  if not s then return { 'invalid' } end
  local revoked = {}
  local function answer(kind)
    local out = { kind, now }
    for _, t in ipairs(revoked) do out[#out + 1] = t end
    return out
  end
  local deadline = session_deadline(s)
  if deadline <= now then
    end_session(base, sid, s.a <= now and 'absolute' or 'idle', now, retention, revoked)
    return answer('invalid')
  end
  if presented == s.g and hash == s.r then
    if second_of(jti) * 1000 <= now then return { 'late' } end
    local template = string.match(record, '^(%w*),')
    if template ~= '' and not template_ok(base, template, templates) then return { 'template' } end
    s.g, s.r, s.p, s.pg, s.l = s.g + 1, new_hash, hash, now + grace, now
    session_add_token(s, jti, now)
    redis.call('SET', key, session_pack(s))
    -- The deadline slid later: its field stays in the earlier window, where the sweeper
    -- finds it and moves it (see include/sessions.lua): no write to the wheel here.
    local next_deadline = session_deadline(s)
    redis.call('SET', sealed_key, sealed, 'PX', grace)
    write_token(base, token, jti, record, now, retention, true)
    journal_session(base, retention, 'refreshed', sid, false, jti, record, 'state', session_state(s, scope_of(record)), now)
    return { 'ok', now, next_deadline }
  end
  if presented == s.g - 1 and hash == s.p and now < s.pg then
    local pair = redis.call('GET', sealed_key)
    if pair then return { 'again', pair } end
    return { 'invalid' }
  end
  if (s.p ~= '' and hash == s.p) or (genuine and presented < s.g) then
    journal_session(base, retention, 'reuse_detected', sid, false, false, false, 'session', packed, now)
    end_session(base, sid, 'reuse', now, retention, revoked)
    return answer('reuse')
  end
  return { 'invalid' }
end

local out = {}
local a = 4 + 2 * count
for k = 1, #KEYS, 3 do
  out[#out + 1] = refresh(ARGV[a], KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4] == '1',
    ARGV[a + 5], ARGV[a + 6])
  a = a + 7
end
return out
