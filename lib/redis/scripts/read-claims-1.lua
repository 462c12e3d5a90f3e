-- The claims (JSON) of one token, read from its record, or nil when it has none.
--
-- KEYS[1] window hash (<base>x:<second of the jti>), which `prepare` derives from the jti again
-- ARGV[1] base, ARGV[2] jti
-- Found at run time, all in the bucket's slot (see include/keys.lua): the templates hash
-- and the token's subject index (read before anything, see `prepare`).
-- @include lifecycle

local _, record = prepare(ARGV[1], ARGV[2])
return claims_of(ARGV[1], ARGV[2], record)
