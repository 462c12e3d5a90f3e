-- Revoke one token. Only if its key existed does it clean the indexes and journal
-- `revoked`; a second call (or a resent one) changes nothing and returns 0.
--
-- KEYS[1] token key, KEYS[2] claims hash, KEYS[3] due zset, KEYS[4] journal
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] jti, ARGV[4] reason
-- Returns 1 if the token was live, 0 otherwise.
-- @include lifecycle

local base, retention, jti, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local claims, sub = prepare(base, jti)
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[3], jti)
forget(base, jti, sub)
journal(base, retention, 'revoked', jti, reason, claims, now_ms())
return 1
