-- End one session (revokeSession, logout, a refresh token revoked per RFC 7009): its
-- access tokens are revoked and `session_ended` is journaled with the reason given.
-- A resent call gives back the first run's answer (see `answered`).
--
-- KEYS[1] the session <base>s:<sid>, KEYS[2] this call's answer (<base>op:<call id>)
-- ARGV[1] base, ARGV[2] journal retention, ARGV[3] reason (revoked, logout), ARGV[4] how
-- long the answer is kept (ms)
-- Returns { 1 if the session was live, else 0, the jtis revoked... }.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the session's tokens,
-- the session index, its deadline's window hash, the sealed pair.
-- @include sessions

local answer = redis.call('GET', KEYS[2])
if answer then return cjson.decode(answer) end
local base, retention = ARGV[1], ARGV[2]
local sid = string.sub(KEYS[1], #base + 3)
local revoked = {}
local ended = end_session(base, sid, ARGV[3], now_ms(), retention, revoked)
local out = { ended }
for _, jti in ipairs(revoked) do out[#out + 1] = jti end
if ended == 1 then answered(KEYS[2], cjson.encode(out), ARGV[4]) end
return out
