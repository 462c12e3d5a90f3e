-- Revoke every live token of one subject in one bucket. Index entries whose key
-- is already gone are reaped (journaled as what they were), never journaled twice.
--
-- KEYS[1] the subject's own zset <base>sub:<sub> (its name gives the subject, see
-- include/subjects.lua), KEYS[2] due zset, KEYS[3] journal, KEYS[4] this call's answer
-- (<base>op:<call id>, see answered)
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] reason,
-- ARGV[4] how long the answer is kept, ms
-- Returns the number of tokens revoked.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the bucket's
-- subjects hash, the subject's token keys, their window hashes and the templates hash.
-- @include lifecycle

local answer = redis.call('GET', KEYS[4])
if answer then return tonumber(answer) end
local base, retention, reason = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local revoked = 0
local subject = string.sub(KEYS[1], #base + 5)
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
