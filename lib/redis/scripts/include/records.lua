-- Record encoding, the Lua half (the TypeScript half is lib/tokens/records.ts).
-- A token's record lives in the hash of its expiry second E, `<base>x:<E>`: field jti ->
--   "<template id>,<exp - iat>,<scope length>,<extra length>:<scope><extra><sub>"
-- where scope (length empty: no scope) and sub are the claims' strings, and extra is
-- the JSON object of any other claims (length 0: none). Lengths are in bytes. One more
-- field, "~" (empty), marks a hash as known to the due index. The claims the tokens of a
-- template share (iss, aud, client_id) are the JSON members in `<base>tpl`, field
-- <template id>. The jti starts with E in base 36 (7 characters), so a jti alone names
-- its record. Records are short so the hashes stay in Redis' compact encoding (values
-- up to 64 bytes, 128 fields). `<base>due` holds one member per expiry second that
-- still has records, scored by its deadline (E * 1000, Redis ms).

-- The expiry second of a jti (its first 7 characters, base 36), or nil.
local function second_of(jti)
  if #jti < 8 then return nil end
  return tonumber(string.sub(jti, 1, 7), 36)
end

-- The subject a record names (its last part), or nil for a malformed record.
local function subject_of(record)
  local scope_len, extra_len, at = string.match(record, '^%w*,%d+,(%d*),(%d+):()')
  if not at then return nil end
  return string.sub(record, at + (tonumber(scope_len) or 0) + tonumber(extra_len))
end

-- The scope a record holds ('' for none; nil for a malformed record).
local function scope_of(record)
  local scope_len, at = string.match(record, '^%w*,%d+,(%d*),%d+:()')
  if not at then return nil end
  return string.sub(record, at, at + (tonumber(scope_len) or 0) - 1)
end

-- A string as JSON (cjson only when something needs escaping: most subjects and scopes do not).
local function json_string(text)
  if string.find(text, '[%c"\\]') then return cjson.encode(text) end
  return '"' .. text .. '"'
end

-- Reads a record: the full claims (JSON: jti, exp, iat, sub, scope, the template's
-- claims, the rest), the subject and the template id; nil for a malformed record.
local function expand(jti, second, fragment, record)
  local template, age, scope_len, extra_len, at = string.match(record, '^(%w*),(%d+),(%d*),(%d+):()')
  if not at then return nil end
  local parts = { '{"jti":"', jti, '","exp":', string.format('%d', second), ',"iat":', string.format('%d', second - tonumber(age)) }
  if scope_len ~= '' then
    local after = at + tonumber(scope_len)
    parts[#parts + 1] = ',"scope":'
    parts[#parts + 1] = json_string(string.sub(record, at, after - 1))
    at = after
  end
  local after = at + tonumber(extra_len)
  local sub = string.sub(record, after)
  parts[#parts + 1] = ',"sub":'
  parts[#parts + 1] = json_string(sub)
  if fragment and fragment ~= '' then
    parts[#parts + 1] = ','
    parts[#parts + 1] = fragment
  end
  if after > at then
    parts[#parts + 1] = ','
    parts[#parts + 1] = string.sub(record, at + 1, after - 2) -- the members of the extra object
  end
  parts[#parts + 1] = '}'
  return table.concat(parts), sub, template
end
