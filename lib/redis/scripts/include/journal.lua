-- Shared by every script that writes the journal (spliced in where a script says
-- "-- @include journal"). A bucket's keys all start with `base` = "<prefix>{<tag>}:".
-- @include keys

-- Redis server time in ms: every deadline is compared with this clock only.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Appends one entry (`...`: name, value, ...) to the bucket's journal, trimmed as it is
-- written. `retention` is "<max entries>/<max age ms>" (age 0: no age limit); by age it
-- is trimmed once per journal and script run (every entry of a run has the same `at`).
-- The entry's id is its time (Redis ms): no entry has a field for it. The first entry of
-- a run in each journal also publishes that journal's key on the prefix's wake channel,
-- and lifecycles read that bucket: a run that journals many events in a bucket wakes
-- them once, and no notify-keyspace-events letter is needed for it. (One message per
-- bucket, not one per run: the members of a consumer group then race for each bucket's
-- news, and share the work, rather than the first to wake taking every bucket's.)
local retention_text, maxlen, maxage
local woke = {}
local aged = {}
-- The journal of each base, built once per run (a key is a new Lua string each time it is built).
local logs = {}
local function append(base, retention, at, ...)
  local log = logs[base]
  if not log then
    log = log_key(base)
    logs[base] = log
  end
  if retention ~= retention_text then
    retention_text = retention
    maxlen, maxage = string.match(retention, '^(%d+)/(%d+)$')
  end
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', ...)
  if not woke[log] then
    woke[log] = true
    redis.call('PUBLISH', wake_channel(base), log)
  end
  if maxage ~= '0' and not aged[log] then
    aged[log] = true
    redis.call('XTRIM', log, 'MINID', '~', string.format('%d', at - tonumber(maxage)))
  end
  return id
end

-- One token event. It carries the token's record (see include/records.lua), not its
-- claims: readers expand it with the bucket's templates (lib/tokens/records.ts,
-- `claimsOf`). `issued` and `expired` are one field, "<type>", whose value is
-- "<jti> <record>" (" <jti>" for a jti that named no record; only this library's jtis
-- have records, and they hold no space): a few dozen bytes and two strings to read, not
-- six. `revoked` keeps named fields (type, jti, reason, record), which the revocation
-- feed of every earlier version reads too: a store's cache that has not been upgraded
-- yet still hears every revocation, so a rolling upgrade never fails open.
local function journal(base, retention, kind, jti, reason, record, at)
  if kind == 'revoked' then
    if record then return append(base, retention, at, 'type', kind, 'jti', jti, 'reason', reason or '', 'record', record) end
    return append(base, retention, at, 'type', kind, 'jti', jti, 'reason', reason or '')
  end
  if record then return append(base, retention, at, kind, jti .. ' ' .. record) end
  return append(base, retention, at, kind, ' ' .. jti)
end

-- One session event (see include/sessions.lua): its sid, the reason for `session_ended`,
-- the access token it issued for `session_started` and `refreshed` (jti and record: that
-- token has no `issued` entry of its own), and `field` = `payload`, the session's state
-- or the packed session.
local function journal_session(base, retention, kind, sid, reason, jti, record, field, payload, at)
  if jti then return append(base, retention, at, 'type', kind, 'sid', sid, 'jti', jti, 'record', record, field, payload) end
  if reason then return append(base, retention, at, 'type', kind, 'sid', sid, 'reason', reason, field, payload) end
  return append(base, retention, at, 'type', kind, 'sid', sid, field, payload)
end
