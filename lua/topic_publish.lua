-- topic_publish.lua: append an event to a topic stream and wake subscribers.
--
-- KEYS[1]  the topic stream, e.g. fc:topic:{c17}
-- ARGV[1]  entry id: "<seq>-<sub>" for chat topics, or "*"
-- ARGV[2]  approximate MAXLEN the stream is trimmed to
-- ARGV[3]  the sharded Pub/Sub wake channel (SPUBLISH), e.g. fc:wake:{c17}:
--          it must share KEYS[1]'s hash tag (a script may only publish
--          to a channel of its own slot in a Redis Cluster)
-- ARGV[4]  the frame (JSON text) stored in field "f" and published
-- ARGV[5]  idle lifetime of the stream in ms: each append renews it, so a
--          chat without events for that long costs Redis nothing
--          (PostgreSQL keeps every event; sync falls back to it)
--
-- Returns the entry id, or false when an entry with this id (or a later one)
-- is already there: re-publishing after a worker crash is a no-op, so
-- subscribers never see an event twice from the stream.
--
-- The wake message is "<prev> <id>\n<frame>", where prev is the id of the
-- entry before this one. A gateway that last delivered <prev> delivers the
-- frame directly; any other gateway knows it missed something and reads the
-- gap from the stream (XRANGE) before delivering.

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local prev = '0-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  prev = last[1][1]
end

if ARGV[1] ~= '*' then
  local a1, a2 = parse(ARGV[1])
  local b1, b2 = parse(prev)
  if a1 < b1 or (a1 == b1 and a2 <= b2) then
    return false
  end
end

local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1], 'f', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SPUBLISH', ARGV[3], prev .. ' ' .. id .. '\n' .. ARGV[4])
return id
