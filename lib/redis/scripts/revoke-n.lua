-- Revoke tokens (the revocations of concurrent callers, see lib/batch.ts). Only if a
-- token's key existed does it bury the record (see include/lifecycle.lua, bury) and
-- journal `revoked`; a second call changes nothing for that token. A resent call gives back
-- the first run's answer (see answered).
--
-- KEYS, 1 per token: its key; then last this call's answer (<base>op:<call id>)
-- ARGV[1] journal retention ("<max entries>/<max age ms>"), ARGV[2] reason, ARGV[3] how
-- long the answer is kept (ms), then 2 per token: base, jti
-- Returns one code per token: 1 if it was live, 0 otherwise.
-- Found at run time, all in the bucket's slot (see include/keys.lua): each token's window
-- hash (<base>x:<second of the jti>) and the journal (the subject index is not touched).
-- @include lifecycle

local tokens = #KEYS - 1
local answer = redis.call('GET', KEYS[#KEYS])
if answer then
  local out = {}
  for i = 1, tokens do out[i] = string.byte(answer, i) - 48 end
  return out
end
local retention, reason = ARGV[1], ARGV[2]
-- Read everything first (see prepare): a key moved away fails the script before any write.
-- Only the record is read: a revocation buries it and leaves the subject index (see bury).
local windows, records = {}, {}
for i = 0, tokens - 1 do
  local window, record, buried = read_record(ARGV[4 + 2 * i], ARGV[5 + 2 * i])
  windows[i], records[i] = window, not buried and record
end
local now = now_ms()
-- The codes twice: numbers for the reply, and characters for the kept answer (a number
-- written out as text costs Lua a float format).
local out, codes = {}, {}
for i = 0, tokens - 1 do
  local base, jti = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if redis.call('DEL', KEYS[i + 1]) == 0 then
    out[i + 1], codes[i + 1] = 0, '0'
  else
    local record = records[i]
    if record then bury(windows[i], jti, record) end
    journal(base, retention, 'revoked', jti, reason, record, now)
    out[i + 1], codes[i + 1] = 1, '1'
  end
end
if codes[1] then
  local answer = table.concat(codes)
  if string.find(answer, '1', 1, true) then answered(KEYS[#KEYS], answer, ARGV[3]) end
end
return out
