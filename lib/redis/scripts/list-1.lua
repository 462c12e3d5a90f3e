-- The live tokens of one subject in one bucket.
--
-- KEYS[1] the subject's own zset <base>sub:<sub> (its name gives the subject; read only
-- when the subject has one, see include/subjects.lua)
-- ARGV[1] base
-- Returns the claims (JSON) of every token whose key still exists.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the bucket's
-- subjects hash, the subject's token keys, their window hashes and the templates hash.
-- @include lifecycle

local base = ARGV[1]
local out = {}
for _, jti in ipairs(subject_tokens(base, string.sub(KEYS[1], #base + 5))) do
  if redis.call('EXISTS', token_key(base, jti)) == 1 then
    local _, record = prepare(base, jti)
    if record then out[#out + 1] = claims_of(base, jti, record) end
  end
end
return out
