-- Consumer groups: before a member handles an entry it read a while ago (a long
-- batch, or a batch read before an outage), and while its handler runs: is the
-- entry still pending to this member? If so, reset its idle time so no other
-- member takes it over meanwhile. If another member took it over (or it was
-- acknowledged), this member must not handle it: the other one does.
--
-- KEYS[1] journal <base>log
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id
-- Returns 1 when the entry is (still) this consumer's, 0 otherwise.

local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
