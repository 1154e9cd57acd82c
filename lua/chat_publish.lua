-- chat_publish.lua: append a committed chat event to the chat's topic
-- stream, in event order, from the current shard holder only; wake the
-- gateways subscribed to the chat.
--
-- KEYS[1]  the topic stream, e.g. fc:topic:{c17}
-- KEYS[2]  the stream's bookkeeping hash, e.g. fc:topic:{c17}:meta, with
--          fields "event" (eventSeq of the last entry) and "fence" (the
--          highest fencing epoch that published here)
-- ARGV[1]  entry id "<seq>-<sub>"
-- ARGV[2]  approximate MAXLEN the stream is trimmed to
-- ARGV[3]  the sharded Pub/Sub wake channel (SPUBLISH), e.g. fc:wake:{c17}:
--          it must share KEYS[1]'s hash tag (a script may only publish
--          to a channel of its own slot in a Redis Cluster)
-- ARGV[4]  the frame (JSON text) stored in field "f" and published
-- ARGV[5]  idle lifetime of the stream and its hash in ms (renewed by
--          each append; PostgreSQL keeps every event, sync falls back to it)
-- ARGV[6]  the event's eventSeq (contiguous per chat: 1, 2, 3, ...)
-- ARGV[7]  the publisher's fencing epoch (see shared/src/store/fence.rs)
--
-- Returns a pair {status, n}:
--   {"ok", 0}            appended and published
--   {"duplicate", last}  the stream already has this event (a re-publish
--                        after a worker crash): nothing done
--   {"gap", last}        events last+1 .. ARGV[6]-1 are missing: the caller
--                        publishes them (from PostgreSQL) first, then retries
--   {"fenced", epoch}    a holder with a newer epoch already published here:
--                        the caller lost its shard and must stop
-- When the hash is missing (a new chat, an idle-expired stream, Redis
-- restarted) any event is accepted: gateways notice the jump from the wake
-- message's <prev> id and read what they lack from PostgreSQL.
--
-- The wake message is "<prev> <id>\n<frame>", where prev is the id of the
-- entry before this one (see gateway/src/fanout.rs).

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local event = tonumber(ARGV[6])
local epoch = tonumber(ARGV[7])
local meta = redis.call('HMGET', KEYS[2], 'event', 'fence')
local last_event = tonumber(meta[1])
local fence = tonumber(meta[2])

if fence and epoch < fence then
  return {'fenced', fence}
end
if last_event then
  if event <= last_event then
    return {'duplicate', last_event}
  end
  if event > last_event + 1 then
    return {'gap', last_event}
  end
end

local prev = '0-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  prev = last[1][1]
  local a1, a2 = parse(ARGV[1])
  local b1, b2 = parse(prev)
  if a1 < b1 or (a1 == b1 and a2 <= b2) then
    return {'duplicate', last_event or 0}
  end
end

local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1], 'f', ARGV[4])
if fence == nil or epoch > fence then
  fence = epoch
end
redis.call('HSET', KEYS[2], 'event', event, 'fence', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SPUBLISH', ARGV[3], prev .. ' ' .. id .. '\n' .. ARGV[4])
return {'ok', 0}
