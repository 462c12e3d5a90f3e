-- The live tokens of one subject in one bucket.
--
-- KEYS[1] subject zset
-- ARGV[1] base
-- Returns the claims (JSON) of every token whose key still exists.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the subject's token keys,
-- their window hashes and the templates hash.
-- @include lifecycle

local base = ARGV[1]
local out = {}
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', token_key(base, jti)) == 1 then
    local _, claims = prepare(base, jti)
    if claims then out[#out + 1] = claims end
  end
end
return out
