-- Shared by the scripts that read and end tokens (spliced in where a script says
-- "-- @include lifecycle"): reading a token before changing anything, forgetting it,
-- journaling its end exactly once (reap), and sweeping what is due.
-- @include journal
-- @include records
-- @include subjects
-- A revoked token's record is kept as "-<record>" (a record starts with its template id
-- and a comma, never "-"): see `bury`.
local BURIED = 45

-- A token's window key and its record as the hash holds it: nil for a jti that names no
-- record; a buried record (see `bury`) with its mark, and true.
local function read_record(base, jti)
  local second = second_of(jti)
  if not second then return nil, nil, false end
  local window = window_key(base, second)
  local record = redis.call('HGET', window, jti)
  return window, record, record ~= false and string.byte(record, 1) == BURIED
end

-- Reads a token's record and its subject index before anything is written. Redis does
-- not roll a script back: on a Cluster slot in migration, a key that has already moved
-- must fail the script here, not halfway through its writes.
-- Returns the window key, the record (nil when the jti names none, or a buried one) and
-- the subject (nil for a malformed record); for a buried record, also true.
local function prepare(base, jti)
  local window, record, buried = read_record(base, jti)
  if not record then return window, nil, nil end
  if buried then record = string.sub(record, 2) end
  local sub = subject_of(record)
  if sub then subject_touch(base, sub) end
  if buried then return window, nil, sub, true end
  return window, record, sub
end

-- A token's full claims (JSON) from its record and its template; nil without a record.
local function claims_of(base, jti, record)
  if not record then return nil end
  local second = second_of(jti)
  local template = string.match(record, '^(%w*),')
  local fragment = template and template ~= '' and redis.call('HGET', templates_key(base), template)
  local claims = expand(jti, second, fragment, record)
  return claims or ('{"jti":"' .. jti .. '","exp":' .. string.format('%d', second) .. '}')
end

-- Drops a token's record and subject-index entry (after `prepare`).
local function forget(base, window, jti, sub)
  redis.call('HDEL', window, jti)
  if sub then subject_remove(base, sub, jti) end
end

-- What `revoke` leaves of a token it journaled: its record becomes "-<record>", which no
-- reaper journals again, and its subject index entry stays. One write instead of three
-- (dropping the record, reading and rewriting the subject's entry), and the subject is
-- not parsed out of the record (a Lua pattern match): together about a quarter of a
-- revocation's Redis CPU (the redis-cost section of the bench). The sweeper drops both
-- at the token's deadline (`reap` forgets a buried record); `revokeAll` and `list` pass
-- over index entries whose key is gone.
local function bury(window, jti, record)
  redis.call('HSET', window, jti, '-' .. record)
end

-- Keeps a revoking call's answer for as long as its caller waits for it (the store's
-- `timeout`). If the connection drops after Redis ran the script but before the reply
-- arrived, ioredis sends the same command again on the new connection: that run finds
-- the tokens already gone, so it gives back this answer instead of "nothing revoked".
-- Only a call that revoked something keeps one; a run that revoked nothing would
-- answer the same again.
local function answered(key, answer, ttl)
  redis.call('SET', key, answer, 'PX', ttl)
end

-- Journal the end of a token whose key is gone. Its record is the guard: however
-- many callers race (sweepers, keyevent triggers, issue, revoke), exactly one of them
-- finds the record unburied, drops or buries it and journals the event. A buried record
-- is only forgotten, with its subject index entry.
-- A key gone before its deadline was deleted by someone else (`early` names how).
-- `gone` (optional, Redis ms): when the key was already known to be gone (a `del` or
-- `evicted` notification seen then), for a reap that runs late (queued across an outage).
local function reap(base, jti, now, early, retention, gone)
  local second = second_of(jti)
  if not second then return 0 end
  -- EXISTS also makes Redis expire the key now if its deadline has passed.
  if redis.call('EXISTS', token_key(base, jti)) == 1 then return 0 end
  local window, record, sub, buried = prepare(base, jti)
  if buried then forget(base, window, jti, sub) end
  if not record then return 0 end
  forget(base, window, jti, sub)
  if second * 1000 <= math.min(now, gone or now) then
    journal(base, retention, 'expired', jti, false, record, now)
  else
    journal(base, retention, 'revoked', jti, early, record, now)
  end
  return 1
end

-- Set by include/sessions.lua: ends a session whose "=<sid>" field a due window holds.
-- Every script that sweeps includes sessions; without it such a field is left alone.
local session_due = nil

-- Reaps up to `budget` tokens of the due expiry seconds (deadline < now), earliest
-- first. A token key that outlived its second (someone ran PERSIST or PEXPIRE on it)
-- is deleted: a token is dead at its `exp` in every verifier anyway. Expiry seconds
-- left with no records are dropped. Returns how many were reaped and 1 if more are due.
local function sweep_due(base, due, now, budget, retention)
  local reaped = 0
  while budget > 0 do
    local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
    if not first[1] or tonumber(first[2]) >= now then return reaped, 0 end
    local window = window_key(base, tonumber(first[1]))
    local cursor = '0'
    repeat
      local page = redis.call('HSCAN', window, cursor, 'COUNT', budget)
      cursor = page[1]
      local fields = page[2]
      for i = 1, #fields, 2 do
        local jti = fields[i]
        local first_byte = string.byte(jti, 1)
        if first_byte == 61 then -- "=<sid>": a session's deadline (include/sessions.lua)
          if session_due then
            reaped = reaped + session_due(base, string.sub(jti, 2), now, retention)
            redis.call('HDEL', window, jti)
          end
          budget = budget - 1
        elseif first_byte ~= 126 then -- not the "~" mark
          local key = token_key(base, jti)
          if redis.call('EXISTS', key) == 1 then redis.call('DEL', key) end
          if reap(base, jti, now, 'external', retention) == 1 then
            reaped = reaped + 1
          else
            redis.call('HDEL', window, jti) -- not a record of this second: nothing to report
          end
          budget = budget - 1
        end
      end
    until cursor == '0' or budget <= 0
    if cursor ~= '0' then return reaped, 1 end
    -- A full pass reaped every record seen; records cannot be added to a past second.
    local left = redis.call('HLEN', window)
    local marks = 0
    if left > 0 and left < 3 then
      for _, field in ipairs(redis.call('HKEYS', window)) do
        if string.byte(field, 1) == 126 then marks = marks + 1 end
      end
    end
    if left == marks then
      redis.call('DEL', window)
      redis.call('ZREM', due, first[1])
    elseif budget <= 0 then
      return reaped, 1
    end
  end
  return reaped, 1
end
