-- Key names, the Lua half of lib/redis/keys.ts (KeySchema), in one place. A bucket's
-- keys all start with `base` = "<prefix>{<tag>}:", so every key built here from a base
-- lies in that bucket's hash slot: a script may find them at run time (from a jti or a
-- record) and still touch only its own slot, as Redis Cluster requires.

local function token_key(base, jti)
  return base .. 't:' .. jti
end

-- The hash of a second's records, from the second written out in decimal...
local function window_key_of(base, second_text)
  return base .. 'x:' .. second_text
end

-- ...or from the second.
local function window_key(base, second)
  return window_key_of(base, string.format('%d', second))
end

local function templates_key(base)
  return base .. 'tpl'
end

local function subject_key(base, sub)
  return base .. 'sub:' .. sub
end

local function due_key(base)
  return base .. 'due'
end

local function log_key(base)
  return base .. 'log'
end

-- The channel lifecycles wake on (lib/redis/keys.ts, `wake`): the prefix, which `base`
-- ("<prefix>{<tag>}:") starts with, and "wake". A prefix holds no braces (lib/redis/layout.ts).
local function wake_channel(base)
  return string.sub(base, 1, string.find(base, '{', 1, true) - 1) .. 'wake'
end

-- The subjects of a bucket with few live tokens each (see include/subjects.lua).
local function subjects_key(base)
  return base .. 'subs'
end

-- A session (see include/sessions.lua) and what belongs to it, all in its subject's bucket.
local function session_key(base, sid)
  return base .. 's:' .. sid
end

-- The sessions of a bucket's subjects: sub -> their sids run together, oldest first.
local function sessions_key(base)
  return base .. 'sess'
end
