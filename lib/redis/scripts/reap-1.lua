-- Reap tokens named by keyevents (expired, del, evicted on their keys).
--
-- KEYS[1] journal <base>log
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] reason if a key died before
-- its deadline ('external' for del, 'evicted'), ARGV[4] when the notifications were seen (Redis ms; 0: now),
-- ARGV[5..] jtis
-- Returns how many events were journaled.
-- Found at run time, all in the bucket's slot (see include/keys.lua): each jti's token key,
-- window hash and subject index, and the templates hash.
-- @include lifecycle

local base, retention, early, seen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = now_ms()
-- A reap that ran late (its command queued across an outage) still knows the key was
-- gone when its notification was seen: a DEL before the deadline stays a revocation.
local gone = nil
if seen > 0 then gone = seen end
local n = 0
for i = 5, #ARGV do
  n = n + reap(base, ARGV[i], now, early, retention, gone)
end
return n
