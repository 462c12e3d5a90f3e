-- Revoke every live token of one subject in one bucket, and end its sessions there (all
-- of a subject's sessions lie in its own bucket, see include/sessions.lua), except the
-- session `except` and its tokens ("log out other devices"; a session's tokens are not in
-- the subject index: ending a session revokes them). Index entries whose key is
-- already gone are reaped (journaled as what they were), never journaled twice.
--
-- KEYS[1] the subject's own zset <base>sub:<sub> (its name gives the subject, see
-- include/subjects.lua), KEYS[2] due zset, KEYS[3] journal, KEYS[4] this call's answer
-- (<base>op:<call id>, see answered)
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] reason,
-- ARGV[4] how long the answer is kept, ms, ARGV[5] the sid of the session to keep ('' none)
-- Returns the number of tokens revoked.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the bucket's
-- subjects hash, the subject's token keys and their window hashes, its sessions.
-- @include sessions

local answer = redis.call('GET', KEYS[4])
if answer then return tonumber(answer) end
local base, retention, reason, except = ARGV[1], ARGV[2], ARGV[3], ARGV[5] or ''
local now = now_ms()
local revoked = 0
local subject = string.sub(KEYS[1], #base + 5)
local ended = {}
for _, sid in ipairs(session_ids(base, subject)) do
  if sid ~= except then end_session(base, sid, 'revoked', now, retention, ended) end
end
revoked = #ended
for _, jti in ipairs(subject_tokens(base, subject)) do
  local key = token_key(base, jti)
  -- Read before writing (see prepare): a key moved away fails the script here.
  if redis.call('EXISTS', key) == 1 then
    local window, record, sub = prepare(base, jti)
    redis.call('DEL', key)
    if window then forget(base, window, jti, sub) end
    subject_remove(base, subject, jti)
    journal(base, retention, 'revoked', jti, reason, record or false, now)
    revoked = revoked + 1
  elseif reap(base, jti, now, 'external', retention) == 0 then
    subject_remove(base, subject, jti) -- a stale index entry: nothing left to report
  end
end
if revoked > 0 then answered(KEYS[4], revoked, ARGV[4]) end
return revoked
