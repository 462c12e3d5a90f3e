-- Writing a token (spliced in where a script says "-- @include tokens"): the issue
-- script's work for one token, shared with the session scripts that issue access tokens.
-- @include lifecycle

-- Each template of this call, checked once per bucket before it is used: written when
-- missing (also after a wiped database), never overwritten when it holds other claims.
-- `templates` maps a template id to its claims (JSON members), as the caller sent them.
local template_checked = {}
local function template_ok(base, id, templates)
  local checked = template_checked[base]
  if not checked then
    checked = {}
    template_checked[base] = checked
  end
  local ok = checked[id]
  if ok == nil then
    local key = templates_key(base)
    local held = redis.call('HGET', key, id)
    if not held then
      redis.call('HSET', key, id, templates[id])
      ok = true
    else
      ok = held == templates[id]
    end
    checked[id] = ok
  end
  return ok
end

-- Writes one token: its key with its deadline (the second its jti names), its record in
-- the hash of that second, the second in the due index when the hash is new, the subject
-- index, and one `issued` journal entry -- unless it is a session's token (`of_session`):
-- its session lists it, and journals it with the session's event (include/sessions.lua).
-- Returns 1 written, 0 already written (a resent command: idempotent), -1 its deadline is
-- not in Redis' future (nothing written).
-- `second` (optional): the jti's second, when the caller has read it already.
local function write_token(base, key, jti, record, now, retention, of_session, second)
  second = second or second_of(jti)
  local deadline = second * 1000
  if deadline <= now then return -1 end
  -- The second written out once, for both the deadline (ms) and the hash's name.
  local text = string.format('%d', second)
  if not redis.call('SET', key, '1', 'PXAT', text .. '000', 'NX') then return 0 end
  -- The "~" mark is new only in a new hash: only then is the due index touched.
  if redis.call('HSET', window_key_of(base, text), jti, record, '~', '') == 2 then
    redis.call('ZADD', due_key(base), 'NX', deadline, second)
  end
  if not of_session then
    subject_add(base, subject_of(record), jti, deadline)
    journal(base, retention, 'issued', jti, false, record, now)
  end
  return 1
end
