-- conn_register.lua: register a WebSocket connection of a user and evict the
-- oldest ones beyond the per-user limit.
--
-- KEYS[1]  sorted set of the user's connections, e.g. fc:conns:{u42}
--          (member "<gatewayId>|<connId>", score = connect time in ms)
-- ARGV[1]  the new member
-- ARGV[2]  the most connections the user may hold
-- ARGV[3]  seconds after which the set expires unless refreshed
--
-- Returns the evicted members (oldest first); their gateways close them.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess <= 0 then
  return {}
end
local evicted = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
return evicted
