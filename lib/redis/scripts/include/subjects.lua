-- The subject index: which live tokens a subject has in a bucket (list, revokeAll).
-- Most subjects have one or two live tokens, so they share one hash per bucket,
-- `<base>subs`, field sub -> their jtis run together (each 23 characters): no key of
-- their own, which would cost about 100 bytes and a key creation per subject. A subject
-- with more tokens gets its own sorted set `<base>sub:<sub>` (jti -> deadline), and its
-- field in the hash says so with "*". (The hash's values stay under 64 bytes, Redis'
-- compact-encoding limit.)
-- @include keys

local JTI_LENGTH = 23
local INLINE_TOKENS = 2

-- Drops `id` from the ids of `length` characters run together in field `field` of hash
-- `key` (whose value is `held`); the field goes when none is left. (Also the sessions index.)
local function remove_id(key, field, held, id, length)
  for i = 1, #held, length do
    if string.sub(held, i, i + length - 1) == id then
      local rest = string.sub(held, 1, i - 1) .. string.sub(held, i + length)
      if rest == '' then redis.call('HDEL', key, field) else redis.call('HSET', key, field, rest) end
      return
    end
  end
end

-- Adds a token (deadline in Redis ms) to its subject's index.
local function subject_add(base, sub, jti, deadline)
  local subs = subjects_key(base)
  -- Most subjects are new in the bucket: one command then.
  if redis.call('HSETNX', subs, sub, jti) == 1 then return end
  local held = redis.call('HGET', subs, sub)
  if held ~= '*' and #held >= INLINE_TOKENS * JTI_LENGTH then
    -- Full: first drop the tokens whose key is gone (a revocation leaves its entry, see
    -- include/lifecycle.lua, bury), so a subject that signs out and in again keeps its
    -- field instead of getting a set of its own.
    local live = {}
    for i = 1, #held, JTI_LENGTH do
      local other = string.sub(held, i, i + JTI_LENGTH - 1)
      if redis.call('EXISTS', token_key(base, other)) == 1 then live[#live + 1] = other end
    end
    held = table.concat(live)
  end
  if held == '*' then
    redis.call('ZADD', subject_key(base, sub), deadline, jti)
  elseif #held < INLINE_TOKENS * JTI_LENGTH and #jti == JTI_LENGTH then
    redis.call('HSET', subs, sub, held .. jti)
  else
    local own = subject_key(base, sub)
    for i = 1, #held, JTI_LENGTH do
      local other = string.sub(held, i, i + JTI_LENGTH - 1)
      redis.call('ZADD', own, tonumber(string.sub(other, 1, 7), 36) * 1000, other)
    end
    redis.call('ZADD', own, deadline, jti)
    redis.call('HSET', subs, sub, '*')
  end
end

-- The jtis in a subject's index (live or not: the caller checks).
local function subject_tokens(base, sub)
  local held = redis.call('HGET', subjects_key(base), sub)
  if not held then return {} end
  if held == '*' then return redis.call('ZRANGE', subject_key(base, sub), 0, -1) end
  local out = {}
  for i = 1, #held, JTI_LENGTH do out[#out + 1] = string.sub(held, i, i + JTI_LENGTH - 1) end
  return out
end

-- Reads the subject's entry before anything is written (see `prepare`).
local function subject_touch(base, sub)
  redis.call('HGET', subjects_key(base), sub)
end

-- Drops a token from its subject's index.
local function subject_remove(base, sub, jti)
  local subs = subjects_key(base)
  local held = redis.call('HGET', subs, sub)
  if not held then return end
  if held == '*' then
    local own = subject_key(base, sub)
    redis.call('ZREM', own, jti)
    if redis.call('EXISTS', own) == 0 then redis.call('HDEL', subs, sub) end
    return
  end
  remove_id(subs, sub, held, jti, JTI_LENGTH)
end
