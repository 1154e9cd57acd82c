-- fanout_lag.lua: report this gateway's fan-out lag and read the pool's.
--
-- KEYS[1]  the hash of reports, e.g. fc:fanout_lag (field: gateway node id,
--          value "<lag ms> <Redis time ms>")
-- ARGV[1]  this gateway's node id (<instance>~<nonce>)
-- ARGV[2]  its lag (ms) over its last window
-- ARGV[3]  reports younger than this (ms) count
-- ARGV[4]  reports older than this (ms) are deleted (crashed gateways)
--
-- Stamps the report with Redis's clock, so gateways' clocks never decide
-- which reports are fresh. Returns the highest fresh lag (ms) in the pool.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. now)
local fresh, forget = tonumber(ARGV[3]), tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
local max = 0
for i = 1, #all, 2 do
  local lag, at = string.match(all[i + 1], '^(%d+) (%d+)$')
  local age = at and (now - tonumber(at)) or forget + 1
  if age > forget then
    redis.call('HDEL', KEYS[1], all[i])
  elseif age <= fresh and tonumber(lag) > max then
    max = tonumber(lag)
  end
end
return max
