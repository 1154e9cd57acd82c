-- token_bucket.lua: take tokens from a token bucket, or say how long to wait.
--
-- KEYS[1]  the bucket (a hash {tokens, ts}), e.g. fc:rl:{u42}:send
-- ARGV[1]  capacity: most tokens the bucket holds (burst size)
-- ARGV[2]  refill rate in tokens per second (may be fractional)
-- ARGV[3]  cost: tokens this action takes
-- ARGV[4]  optional: "probe" to only ask whether `cost` tokens are there
--          (nothing is taken), e.g. before a sign-in whose failure alone
--          is charged
--
-- Returns {allowed, retry_after_ms}: allowed is 1 or 0; retry_after_ms is how
-- long until enough tokens exist (0 when allowed).
--
-- Time comes from the Redis server (TIME), so gateways with skewed clocks
-- share one notion of "now". The key expires once the bucket would be full
-- again, so idle users cost no memory.

local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end

local elapsed = math.max(0, now - ts)
tokens = math.min(capacity, tokens + elapsed * rate / 1000)

local allowed = 0
local retry_after = 0
if tokens >= cost then
  if ARGV[4] ~= 'probe' then
    tokens = tokens - cost
  end
  allowed = 1
else
  retry_after = math.ceil((cost - tokens) * 1000 / rate)
end

redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, retry_after}
