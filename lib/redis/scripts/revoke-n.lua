-- Revoke tokens (the revocations of concurrent callers, see lib/batch.ts). Only if a
-- token's key existed does it drop the record and the subject index entry and journal
-- `revoked`; a second call changes nothing for that token. A resent call gives back
-- the first run's answer (see answered).
--
-- KEYS, 3 per token: token key, window hash (<base>x:<second of the jti>), journal; then
-- last this call's answer (<base>op:<call id>)
-- ARGV[1] journal retention ("<max entries>/<max age ms>"), ARGV[2] reason, ARGV[3] how
-- long the answer is kept (ms), then 2 per token: base, jti
-- Returns one code per token: 1 if it was live, 0 otherwise.
-- Found at run time, all in the bucket's slot (see include/keys.lua): the templates hash and each
-- token's subject index.
-- @include lifecycle

local tokens = (#KEYS - 1) / 3
local answer = redis.call('GET', KEYS[#KEYS])
if answer then
  local out = {}
  for i = 1, tokens do out[i] = string.byte(answer, i) - 48 end
  return out
end
local retention, reason = ARGV[1], ARGV[2]
-- Read everything first (see prepare): a key moved away fails the script before any write.
local found = {}
for i = 0, tokens - 1 do
  local window, record, sub = prepare(ARGV[4 + 2 * i], ARGV[5 + 2 * i])
  found[i] = { window, record or false, sub }
end
local now = now_ms()
local out = {}
local any = false
for i = 0, tokens - 1 do
  local base, jti = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local window, record, sub = found[i][1], found[i][2], found[i][3]
  if redis.call('DEL', KEYS[3 * i + 1]) == 0 then
    out[#out + 1] = 0
  else
    if window then forget(base, window, jti, sub) end
    journal(base, retention, 'revoked', jti, reason, record, now)
    out[#out + 1] = 1
    any = true
  end
end
if any then answered(KEYS[#KEYS], table.concat(out), ARGV[3]) end
return out
