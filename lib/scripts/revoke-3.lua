-- Revoke one token. Only if its key existed does it drop the record and the subject
-- index entry and journal `revoked`; a second call (or a resent one) changes nothing
-- and returns 0.
--
-- KEYS[1] token key, KEYS[2] window hash (<base>x:<second of the jti>), KEYS[3] journal
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] jti, ARGV[4] reason
-- Returns 1 if the token was live, 0 otherwise.
-- @include lifecycle

local base, retention, jti, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local window, claims, sub = prepare(base, jti)
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
if window then forget(window, jti, sub) end
journal(base, retention, 'revoked', jti, reason, claims or ('{"jti":"' .. jti .. '"}'), now_ms())
return 1
