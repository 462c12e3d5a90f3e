-- Reap tokens named by keyevents (expired, del, evicted on their keys).
--
-- KEYS[1] due zset, KEYS[2] claims hash, KEYS[3] journal
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] reason if a key died before
-- its deadline ('external' for del, 'evicted'), ARGV[4..] jtis
-- Returns how many events were journaled.
-- @include lifecycle

local base, retention, early = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local n = 0
for i = 4, #ARGV do
  n = n + reap(base, ARGV[i], now, early, retention)
end
return n
