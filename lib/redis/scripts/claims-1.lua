-- The claims (JSON) of one token, read from its record, or nil when it has none.
--
-- KEYS[1] window hash (<base>x:<second of the jti>)
-- ARGV[1] base, ARGV[2] jti
-- @include lifecycle

local _, claims = prepare(ARGV[1], ARGV[2])
return claims
