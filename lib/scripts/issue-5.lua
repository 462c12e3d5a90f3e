-- Issue a token: the live key with its exact deadline, its claims, the due and
-- subject indexes, and one `issued` journal entry, atomically. Also reaps a few
-- overdue entries of the bucket so memory stays bounded with no listener running.
--
-- KEYS[1] token key   <base>t:<jti>
-- KEYS[2] claims hash <base>claims
-- KEYS[3] due zset    <base>due
-- KEYS[4] subject zset <base>sub:<sub>
-- KEYS[5] journal     <base>log
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] jti,
-- ARGV[4] deadline (epoch ms, = exp * 1000), ARGV[5] claims (JSON), ARGV[6] how many overdue to reap
-- Returns 1 when written, 0 when this jti was already written (a resent command),
-- or the error ERR_DEADLINE_PASSED when the deadline is not in Redis' future.
-- @include lifecycle

local base, retention, jti, deadline, claims = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_ms()
if deadline <= now then return redis.error_reply('ERR_DEADLINE_PASSED token deadline is not after Redis server time') end
-- Idempotent: ioredis resends a command whose reply was lost with its connection.
if redis.call('ZSCORE', KEYS[3], jti) then return 0 end

-- Reap first: each reap reads before it writes, so a script that fails on a Cluster
-- slot in migration fails before this token is half-written.
local overdue = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[6]))
for _, old in ipairs(overdue) do
  reap(base, old, now, 'external', retention)
end

redis.call('SET', KEYS[1], '1', 'PXAT', deadline)
redis.call('HSET', KEYS[2], jti, claims)
redis.call('ZADD', KEYS[3], deadline, jti)
redis.call('ZADD', KEYS[4], deadline, jti)
journal(base, retention, 'issued', jti, false, claims, now)
return 1
