-- Issue a token: the live key with its exact deadline, its record in the hash of its
-- expiry second, that second in the due index, the subject index and one `issued`
-- journal entry, atomically. When asked, first reaps a few overdue tokens of the
-- bucket, so memory stays bounded with no listener running.
--
-- KEYS[1] token key     <base>t:<jti>
-- KEYS[2] window hash   <base>x:<second>
-- KEYS[3] due zset      <base>due
-- KEYS[4] subject zset  <base>sub:<sub>
-- KEYS[5] journal       <base>log
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] jti,
-- ARGV[4] expiry second (the JWT's exp), ARGV[5] record (see include/lifecycle.lua),
-- ARGV[6] template id ('' for none), ARGV[7] template claims (JSON members),
-- ARGV[8] how many overdue tokens to reap first
-- Returns 1 when written, 0 when this jti was already written (a resent command),
-- or the error ERR_DEADLINE_PASSED when the deadline is not in Redis' future.
-- @include lifecycle

local base, retention, jti, second, record, template = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local deadline = tonumber(second) * 1000
local now = now_ms()
if deadline <= now then return redis.error_reply('ERR_DEADLINE_PASSED token deadline is not after Redis server time') end

-- Reap first: each reap reads before it writes, so a script that fails on a Cluster
-- slot in migration fails before this token is half-written.
local budget = tonumber(ARGV[8])
if budget > 0 then sweep_due(base, KEYS[3], now, budget, retention) end

-- Idempotent: ioredis resends a command whose reply was lost with its connection.
if not redis.call('SET', KEYS[1], '1', 'PXAT', deadline, 'NX') then return 0 end
if template ~= '' then
  redis.call('HSET', KEYS[2], jti, record, '~' .. template, ARGV[7])
else
  redis.call('HSET', KEYS[2], jti, record)
end
redis.call('ZADD', KEYS[3], 'NX', deadline, second)
redis.call('ZADD', KEYS[4], deadline, jti)
journal(base, retention, 'issued', jti, false, expand(jti, tonumber(second), ARGV[7], record), now)
return 1
