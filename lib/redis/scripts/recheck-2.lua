-- After the subscriber missed notifications (a reconnect), walk the records of one
-- expiry second and reap tokens whose key is gone, so a DEL or eviction in the gap is
-- still reported as a revocation rather than, later, as an expiry.
--
-- KEYS[1] window hash (<base>x:<second>), KEYS[2] journal
-- ARGV[1] base, ARGV[2] journal retention ("<max entries>/<max age ms>"), ARGV[3] HSCAN cursor, ARGV[4] HSCAN count
-- Returns { next cursor ('0' when done), reaped }.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the token keys of the
-- records walked, their subject indexes and the templates hash.
-- @include lifecycle

local base, retention = ARGV[1], ARGV[2]
local now = now_ms()
local page = redis.call('HSCAN', KEYS[1], ARGV[3], 'COUNT', tonumber(ARGV[4]))
local reaped = 0
local fields = page[2]
for i = 1, #fields, 2 do
  local first_byte = string.byte(fields[i], 1)
  if first_byte ~= 126 and first_byte ~= 61 then -- not the "~" mark, nor a session's deadline
    reaped = reaped + reap(base, fields[i], now, 'external', retention)
  end
end
return { page[1], reaped }
