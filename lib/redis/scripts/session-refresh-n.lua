-- Refresh sessions (the refresh calls of concurrent callers, see lib/tokens/batch.ts): for
-- each, rotate its refresh token and write its next access token, atomically, with no
-- read before: the caller sends the presented token's hash, the next one's hash and
-- sealed secret, and the next access token's jti (its expiry from the lifetime the caller
-- assumed); its claims come from the session, and the caller signs them after this ran
-- (lib/sessions/sessions.ts). Which of these happens is decided here:
--   * the session's client is not the one the caller authenticated -> { 'other' }, the
--     scope asked for is not within the session's -> { 'scope' } (nothing changes);
--   * the presented token is the current one: the new token is written, the refresh
--     token rotates (generation + 1), the idle deadline slides, the sealed secret is kept
--     for the grace window -> { 'ok', Redis ms, the session's new deadline, sub,
--     client_id, the session's scope, its further claims (JSON or '') };
--   * it is the one before, within the grace window (a client retry, two tabs): nothing
--     changes -> { 'again', jti, record, template claims, sealed secret, current hash }:
--     the caller signs the same token again and opens the same refresh token;
--   * it is an older one (the caller proved it is ours: `genuine`), or the one before
--     after the grace window: reuse, so theft. `reuse_detected` is journaled and the whole
--     session ends (reason `reuse`) -> { 'reuse', Redis ms, revoked jtis... };
--   * anything else (an ended session, a token never issued) -> { 'invalid' }; a session
--     found past its deadline ends here (idle or absolute) -> { 'invalid', Redis ms, jtis... }.
-- What the caller must send again, nothing changed: { 'ttl', lifetime } (the session's
-- tokens live `lifetime` s, not what it assumed), { 'client', client_id } (no template
-- sent for that client), { 'template', client_id } (its id holds other claims here),
-- { 'mac' } (whether an older token is ours decides), { 'late' } (the deadline is not in
-- Redis' future: the caller fails).
-- Only the current token rotates, and rotation compares its hash, so two racing refreshes
-- cannot both rotate: a session never has more than one live refresh token.
--
-- KEYS, 2 per refresh: the session <base>s:<sid>, the new access token's key
-- ARGV[1] journal retention, ARGV[2] grace window (ms), ARGV[3] template count T, then T
-- quadruples (client_id, template id, its claims as JSON members, mode: see
-- `session_record`), then 9 per refresh: its base, the presented token's generation, its
-- hash, whether its MAC verified ('1', '0', '?': not checked), the new refresh token's
-- hash, its sealed secret, the new access token's lifetime (s), the scope asked for ('':
-- the session's), the authenticated client ('': none, else '=' and its client_id)
-- Found at run time, all in the bucket's slot (see include/keys.lua): the session's tokens,
-- the session index, the templates, and what writing a token and a deadline touches.
-- @include sessions

local retention, grace = ARGV[1], tonumber(ARGV[2])
local by_client, templates = {}, {}
local count = tonumber(ARGV[3])
for i = 0, count - 1 do
  local at = 4 + 4 * i
  local template, members, mode = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  by_client[ARGV[at]] = { template, members, mode }
  if template ~= '' and mode ~= '2' then templates[template] = members end
end
local now = now_ms()

local function refresh(base, key, token, presented, hash, genuine, new_hash, sealed, age, asked, client)
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
  if client ~= '' and client ~= '=' .. s.k then return { 'other' } end
  if asked ~= '' and not scope_within(asked, s.s) then return { 'scope' } end
  if presented == s.g and hash == s.r then
    if s.t ~= 0 and s.t ~= tonumber(age) then return { 'ttl', s.t } end
    local use = by_client[s.k]
    if not use then return { 'client', s.k } end
    if second_of(jti) * 1000 <= now then return { 'late' } end
    if use[3] ~= '2' and use[1] ~= '' and not template_ok(base, use[1], templates) then return { 'template', s.k } end
    local scope = asked ~= '' and asked or s.s
    local record = session_record(s, sid, use[1], age, scope, use[3], use[2])
    s.g, s.r, s.p, s.q, s.pg, s.l = s.g + 1, new_hash, hash, sealed, now + grace, now
    session_add_token(s, jti, now)
    redis.call('SET', key, session_pack(s))
    -- The deadline slid later: its field stays in the earlier window, where the sweeper
    -- finds it and moves it (see include/sessions.lua): no write to the wheel here.
    write_token(base, token, jti, record, now, retention, true)
    journal_session(base, retention, 'refreshed', sid, false, jti, record, 'state', session_state(s, scope), now)
    return { 'ok', now, session_deadline(s), s.u, s.k, s.s, s.x }
  end
  if presented == s.g - 1 and hash == s.p and now < s.pg then
    -- The token the rotation wrote is the session's newest (gone if revoked or expired since).
    local last = string.sub(s.j, -JTI_LENGTH)
    if #last ~= JTI_LENGTH then return { 'invalid' } end
    local _, record, buried = read_record(base, last)
    if not record or buried then return { 'invalid' } end
    local template = string.match(record, '^(%w*),')
    local members = template ~= '' and redis.call('HGET', templates_key(base), template) or ''
    return { 'again', last, record, members, s.q, s.r }
  end
  local previous = s.p ~= '' and hash == s.p
  if not previous and presented < s.g and genuine == '?' then return { 'mac' } end
  if previous or (genuine == '1' and presented < s.g) then
    journal_session(base, retention, 'reuse_detected', sid, false, false, false, 'session', packed, now)
    end_session(base, sid, 'reuse', now, retention, revoked)
    return answer('reuse')
  end
  return { 'invalid' }
end

local out = {}
local a = 4 + 4 * count
for k = 1, #KEYS, 2 do
  out[#out + 1] = refresh(ARGV[a], KEYS[k], KEYS[k + 1], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6],
    ARGV[a + 7], ARGV[a + 8])
  a = a + 9
end
return out
