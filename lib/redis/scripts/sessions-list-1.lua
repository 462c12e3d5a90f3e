-- The live sessions of one subject (they all lie in its bucket).
--
-- KEYS[1] the bucket's session index <base>sess
-- ARGV[1] base, ARGV[2] sub
-- Returns { sid, packed session, ... } for each live session, oldest first.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the sessions.
-- @include sessions

local base = ARGV[1]
local now = now_ms()
local out = {}
for _, sid in ipairs(session_ids(base, ARGV[2])) do
  local packed = redis.call('GET', session_key(base, sid))
  local s = packed and session_unpack(packed)
  if s and session_deadline(s) > now then
    out[#out + 1] = sid
    out[#out + 1] = packed
  end
end
return out
