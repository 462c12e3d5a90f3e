-- Consumer groups: take over events whose handler has not acknowledged them for
-- `min idle` ms (it threw, or its process died), and move poison events that have
-- been delivered `max deliveries` times to the dead-letter stream instead.
--
-- KEYS[1] journal <base>log, KEYS[2] dead letters <base>dead:<group>
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count,
-- ARGV[5] max deliveries, ARGV[6] dead-letter max length
-- Returns { claimed entries (as XCLAIM), dead-lettered entries { id, deliveries, fields } }.

local group, consumer, idle = ARGV[1], ARGV[2], tonumber(ARGV[3])
local max_deliveries = tonumber(ARGV[5])
local pending = redis.call('XPENDING', KEYS[1], group, 'IDLE', idle, '-', '+', tonumber(ARGV[4]))
local retry, dead = {}, {}
for _, p in ipairs(pending) do
  local id, deliveries = p[1], tonumber(p[4])
  if deliveries >= max_deliveries then
    local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
    if entry then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'source', id, 'deliveries', deliveries, unpack(entry[2]))
      dead[#dead + 1] = { id, deliveries, entry[2] }
    end
    redis.call('XACK', KEYS[1], group, id)
  else
    retry[#retry + 1] = id
  end
end
local claimed = {}
if #retry > 0 then claimed = redis.call('XCLAIM', KEYS[1], group, consumer, idle, unpack(retry)) end
return { claimed, dead }
