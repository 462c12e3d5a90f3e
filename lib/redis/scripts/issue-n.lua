-- Issue tokens (the tokens of concurrent callers, see lib/tokens/batch.ts): for each, the
-- live key with its exact deadline, its record in the hash of its expiry second (see
-- include/records.lua), the subject index and one `issued` journal entry carrying the
-- record, atomically; the expiry second goes into the due index once, when its hash is
-- new. Four commands per token in the common case: issuing is the hot path, and every
-- command and every argument a script takes costs Redis more than the command itself,
-- so a token is sent as its key and its record, nothing else.
--
-- KEYS, 1 per token: its token key <base>t:<jti> (the jti follows the base and "t:")
-- ARGV[1] journal retention ("<max entries>/<max age ms>"), ARGV[2] template count T,
-- then T pairs (template id, template claims as JSON members), then per bucket: its base,
-- how many overdue tokens of the bucket to reap first (so memory stays bounded with no
-- lifecycle running), its token count n, then the n tokens' records, in KEYS order (the
-- record starts with its template id, and ends with its subject).
-- Returns one code per token: 1 written, 0 already written (a resent command), -1 its
-- deadline is not in Redis' future, -2 the template id holds other claims in Redis (a
-- short id's collision: the caller writes the record with its claims instead); nothing
-- is written for -1 and -2.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the window hash
-- <base>x:<second>, the due zset <base>due, the subjects hash <base>subs or the subject's
-- own zset <base>sub:<sub> (see include/subjects.lua), the journal <base>log, the
-- templates hash <base>tpl, and what the reaping of overdue tokens and sessions touches.
-- @include sessions

local retention = ARGV[1]
local templates = {}
local count = tonumber(ARGV[2])
for i = 0, count - 1 do templates[ARGV[3 + 2 * i]] = ARGV[4 + 2 * i] end
local start = 3 + 2 * count
local now = now_ms()

-- Reap first: each reap reads before it writes, so a script that fails on a Cluster
-- slot in migration fails before any token is half-written.
local g = start
while g <= #ARGV do
  local budget = tonumber(ARGV[g + 1])
  if budget > 0 then sweep_due(ARGV[g], due_key(ARGV[g]), now, budget, retention) end
  g = g + 3 + tonumber(ARGV[g + 2])
end

local out = {}
local k = 0
g = start
while g <= #ARGV do
  local base, n = ARGV[g], tonumber(ARGV[g + 2])
  local skip = #base + 3 -- "<base>t:"
  for i = g + 3, g + 2 + n do
    k = k + 1
    local key, record = KEYS[k], ARGV[i]
    local jti = string.sub(key, skip)
    local second = second_of(jti)
    -- The template id: the record up to its first comma (a plain find costs less than a pattern).
    local template = string.sub(record, 1, (string.find(record, ',', 1, true) or 1) - 1)
    if second * 1000 <= now then
      out[k] = -1
    elseif template ~= '' and not template_ok(base, template, templates) then
      out[k] = -2
    else
      out[k] = write_token(base, key, jti, record, now, retention, false, second)
    end
  end
  g = g + 3 + n
end
return out
