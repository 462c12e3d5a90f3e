-- Issue a token: the live key with its exact deadline, its record in the hash of its
-- expiry second (see include/lifecycle.lua), that second in the due index, the subject
-- index and one `issued` journal entry, atomically. Five commands in the common case:
-- issuing is the hot path, and every command a script runs costs Redis more than the
-- command itself.
--
-- KEYS[1] token key       <base>t:<jti>
-- KEYS[2] window hash     <base>x:<second>
-- KEYS[3] due zset        <base>due
-- KEYS[4] subject zset    <base>sub:<sub>
-- KEYS[5] journal         <base>log
-- KEYS[6] templates hash  <base>tpl
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] jti,
-- ARGV[4] expiry second (the JWT's exp), ARGV[5] record, ARGV[6] template id ('' for none),
-- ARGV[7] template claims (JSON members), ARGV[8] the claims (JSON, for the journal),
-- ARGV[9] 1 to write the template whatever happens (the caller's first token in this bucket)
-- Returns 1 when written, 0 when this jti was already written (a resent command),
-- or the error ERR_DEADLINE_PASSED when the deadline is not in Redis' future.
-- @include journal

local jti, second, template = ARGV[3], ARGV[4], ARGV[6]
local deadline = tonumber(second) * 1000
local now = now_ms()
if deadline <= now then return redis.error_reply('ERR_DEADLINE_PASSED token deadline is not after Redis server time') end

-- Idempotent: ioredis resends a command whose reply was lost with its connection.
if not redis.call('SET', KEYS[1], '1', 'PXAT', deadline, 'NX') then return 0 end
-- The "~" mark is new only in a new hash: only then is the due index touched, and the
-- template (re)written, so a template lost with a wiped database comes back.
local new_second = redis.call('HSET', KEYS[2], jti, ARGV[5], '~', '') == 2
if new_second then redis.call('ZADD', KEYS[3], 'NX', deadline, second) end
if template ~= '' and (new_second or ARGV[9] == '1') then redis.call('HSET', KEYS[6], template, ARGV[7]) end
redis.call('ZADD', KEYS[4], deadline, jti)
journal(ARGV[1], ARGV[2], 'issued', jti, false, ARGV[8], now)
return 1
