-- A session's access token was verified (the store's `sessions.slideOnVerify`): its idle
-- deadline slides, as a refresh would slide it. Nothing is journaled; a session past its
-- deadline is left for the sweeper. Its deadline field stays where it is (include/sessions.lua).
--
-- KEYS[1] the session <base>s:<sid>
-- ARGV[1] base
-- Returns 1 if it slid, 0 if there is no live session.
-- @include sessions

local s = session_read(KEYS[1])
if not s then return 0 end
local now = now_ms()
if session_deadline(s) <= now then return 0 end
s.l = now
redis.call('SET', KEYS[1], session_pack(s))
return 1
