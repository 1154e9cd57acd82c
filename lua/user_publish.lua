-- user_publish.lua: append events to a user's event stream and wake the
-- gateways holding the user's connections, one wake per event.
--
-- KEYS[1]  the user stream, e.g. fc:ustream:{u17}
-- ARGV[1]  approximate MAXLEN the stream is trimmed to
-- ARGV[2]  the sharded Pub/Sub wake channel (SPUBLISH), e.g. fc:wake:{u17}:
--          it must share KEYS[1]'s hash tag (a script may only publish
--          to a channel of its own slot in a Redis Cluster)
-- ARGV[3]  idle lifetime of the stream in ms, renewed once per call: a
--          user without events for that long costs Redis nothing
-- ARGV[4..] the frames (JSON text), in order, each stored in field "f"
--
-- Returns the entry ids (Redis-assigned), one per frame, in order.
--
-- Several frames in one call cost one round trip, one look-up of the last
-- entry and one PEXPIRE: a worker batch that alerts a user about several
-- messages appends them together.
--
-- Each wake is "<prev> <id>\n<frame>", where prev is the id of the entry
-- before this one. A gateway that last delivered <prev> delivers the frame
-- directly; any other gateway knows it missed something and reads the gap
-- from the stream (XRANGE) before delivering.

local prev = '0-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  prev = last[1][1]
end

local ids = {}
for i = 4, #ARGV do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'f', ARGV[i])
  redis.call('SPUBLISH', ARGV[2], prev .. ' ' .. id .. '\n' .. ARGV[i])
  prev = id
  ids[#ids + 1] = id
end
if #ids > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return ids
