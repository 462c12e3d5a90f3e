-- After the subscriber missed notifications (a reconnect), walk one bucket's due
-- index and reap tokens whose key is gone, so a DEL or eviction in the gap is
-- still reported as a revocation rather than, later, as an expiry.
--
-- KEYS[1] due zset, KEYS[2] claims hash, KEYS[3] journal
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] ZSCAN cursor, ARGV[4] ZSCAN count
-- Returns { next cursor ('0' when done), reaped }.
-- @include lifecycle

local base, retention = ARGV[1], ARGV[2]
local now = now_ms()
local page = redis.call('ZSCAN', KEYS[1], ARGV[3], 'COUNT', tonumber(ARGV[4]))
local reaped = 0
local entries = page[2]
for i = 1, #entries, 2 do
  reaped = reaped + reap(base, entries[i], now, 'external', retention)
end
return { page[1], reaped }
