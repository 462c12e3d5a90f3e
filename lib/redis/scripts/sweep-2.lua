-- Reap what is due in one bucket, by Redis server time: tokens past their deadline and
-- sessions past theirs (idle or absolute: their deadlines share the tokens' time wheel,
-- see include/sessions.lua). Touching each due
-- key makes Redis expire it now, however many other keys are resident, so expiry is
-- timely and nothing depends on a notification arriving.
--
-- KEYS[1] due zset, KEYS[2] journal
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] at most this many per call
-- Returns { reaped, ms until the next deadline (-1: none), 1 if more are due now, Redis time in ms }.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the window hashes of due
-- seconds, their token keys and subject indexes, and the bucket's sessions and their due set.
-- @include sessions

local base, retention, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local reaped, more = sweep_due(base, KEYS[1], now, limit, retention)
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_in = -1
if first[2] then next_in = math.max(0, tonumber(first[2]) - now) end
return { reaped, next_in, more, now }
