-- The live tokens of one subject in one bucket: those in its subject index, and those of
-- its sessions (which list their own, see include/sessions.lua).
--
-- KEYS[1] the subject's own zset <base>sub:<sub> (its name gives the subject; read only
-- when the subject has one, see include/subjects.lua)
-- ARGV[1] base
-- Returns the claims (JSON) of every token whose key still exists.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the bucket's
-- subjects hash, the subject's token keys, their window hashes, the templates hash, and the
-- subject's sessions.
-- @include sessions

local base = ARGV[1]
local sub = string.sub(KEYS[1], #base + 5)
local jtis = subject_tokens(base, sub)
local now = now_ms()
for _, sid in ipairs(session_ids(base, sub)) do
  local s = session_read(session_key(base, sid))
  if s then for _, jti in ipairs(session_tokens(s, now)) do jtis[#jtis + 1] = jti end end
end
local out = {}
for _, jti in ipairs(jtis) do
  if redis.call('EXISTS', token_key(base, jti)) == 1 then
    local _, record = prepare(base, jti)
    if record then out[#out + 1] = claims_of(base, jti, record) end
  end
end
return out
