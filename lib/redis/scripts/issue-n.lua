-- Issue tokens (the tokens of concurrent callers, see lib/batch.ts): for each, the live
-- key with its exact deadline, its record in the hash of its expiry second (see
-- include/records.lua), that second in the due index, the subject index and one
-- `issued` journal entry, atomically. Five commands per token in the common case:
-- issuing is the hot path, and every command a script runs costs Redis more than the
-- command itself.
--
-- KEYS, 6 per token: token key <base>t:<jti>, window hash <base>x:<second>, due zset
-- <base>due, the subject's own zset <base>sub:<sub> (used only once the subject has
-- more than two tokens in the bucket, see include/subjects.lua; its name gives the
-- subject), journal <base>log, templates hash <base>tpl
-- ARGV[1] journal retention ("<max entries>/<max age ms>"), ARGV[2] template count T,
-- then T pairs (template id, template claims as JSON members), then 7 per token: base,
-- jti, expiry second (the JWT's exp), record, template id ('' for none), the claims
-- (JSON, for the journal), how many overdue tokens of its bucket to reap first (so memory
-- stays bounded with no lifecycle running).
-- Returns one code per token: 1 written, 0 already written (a resent command), -1 its
-- deadline is not in Redis' future, -2 the template id holds other claims in Redis (a
-- short id's collision: the caller writes the record with its claims instead); nothing
-- is written for -1 and -2.
-- Found at run time, all in the bucket's slot (see include/keys.lua): what the reaping of
-- overdue tokens touches (window hashes, token keys, subject indexes of due seconds), and
-- the bucket's subjects hash <base>subs.
-- @include lifecycle

local retention = ARGV[1]
local templates = {}
local count = tonumber(ARGV[2])
for i = 0, count - 1 do templates[ARGV[3 + 2 * i]] = ARGV[4 + 2 * i] end
local start = 3 + 2 * count
local now = now_ms()

-- Reap first: each reap reads before it writes, so a script that fails on a Cluster
-- slot in migration fails before any token is half-written.
local a = start
for k = 0, #KEYS - 1, 6 do
  local budget = tonumber(ARGV[a + 6])
  if budget > 0 then sweep_due(ARGV[a], KEYS[k + 3], now, budget, retention) end
  a = a + 7
end

-- Each template of this call, checked once per bucket before it is used: written when
-- missing (also after a wiped database), never overwritten when it holds other claims.
local checked = {}
local function template_ok(key, id)
  local slot = key .. ' ' .. id
  local ok = checked[slot]
  if ok == nil then
    local held = redis.call('HGET', key, id)
    if not held then
      redis.call('HSET', key, id, templates[id])
      ok = true
    else
      ok = held == templates[id]
    end
    checked[slot] = ok
  end
  return ok
end

local out = {}
a = start
for k = 0, #KEYS - 1, 6 do
  local base, jti, second, record, template, claims = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  a = a + 7
  local deadline = tonumber(second) * 1000
  if deadline <= now then
    out[#out + 1] = -1
  elseif template ~= '' and not template_ok(KEYS[k + 6], template) then
    out[#out + 1] = -2
  -- Idempotent: ioredis resends a command whose reply was lost with its connection.
  elseif not redis.call('SET', KEYS[k + 1], '1', 'PXAT', deadline, 'NX') then
    out[#out + 1] = 0
  else
    -- The "~" mark is new only in a new hash: only then is the due index touched.
    local new_second = redis.call('HSET', KEYS[k + 2], jti, record, '~', '') == 2
    if new_second then redis.call('ZADD', KEYS[k + 3], 'NX', deadline, second) end
    subject_add(base, string.sub(KEYS[k + 4], #base + 5), jti, deadline)
    journal(base, retention, 'issued', jti, false, claims, now)
    out[#out + 1] = 1
  end
end
return out
