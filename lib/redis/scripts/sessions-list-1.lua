-- The live sessions of one subject (they all lie in its bucket).
--
-- KEYS[1] the bucket's session index <base>sess
-- ARGV[1] base, ARGV[2] sub
-- Returns the JSON of each live session (as its events carry it), oldest first.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the sessions.
-- @include sessions

local base = ARGV[1]
local now = now_ms()
local out = {}
for _, sid in ipairs(session_ids(base, ARGV[2])) do
  local s = session_read(session_key(base, sid))
  if s and session_deadline(s.l, s.i, s.a) > now then out[#out + 1] = session_json(sid, s) end
end
return out
