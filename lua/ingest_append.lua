-- ingest_append.lua: append a client write to an ingest shard, once, unless
-- the shard is full.
--
-- KEYS[1]  the ingest stream shard, e.g. fc:ingest:{3}
-- KEYS[2]  the write's pending marker, e.g. fc:ingest:{3}:pending:42:<frame id>
--          (same hash tag as the shard; the worker deletes it once the
--          entry is processed)
-- ARGV[1]  most entries the shard may hold (INGEST_MAX_LEN)
-- ARGV[2]  the field name of the entry
-- ARGV[3]  the entry (JSON text)
-- ARGV[4]  lifetime of the pending marker in seconds (bounds how long a
--          write whose worker never answers suppresses retries)
-- ARGV[5]  most milliseconds the shard's oldest entry may have waited
--          (0: no limit); beyond it the shard is "lagging"
--
-- Returns the new entry id; "queued" when the same user's write with this
-- frame id is still waiting in the shard (a client retry: not appended
-- again, the first entry's answer is the answer); "full" when the shard
-- already holds ARGV[1] entries (workers are behind or down: the sender
-- is answered `unavailable` instead of Redis growing without bound);
-- "lagging <ms>" when the shard's oldest entry (workers delete entries
-- once settled, so the oldest one still waits) was appended more than
-- ARGV[5] ms ago, by this server's clock: workers are behind, and a write
-- accepted now would wait at least that long. Refusing it bounds the
-- latency of what is accepted and tells the sender to come back.
-- Trimming is never an option here: an ingest entry is an unacknowledged
-- write.

if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'queued'
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return 'full'
end
local max_wait = tonumber(ARGV[5])
if max_wait > 0 then
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #oldest > 0 then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local waited = now - tonumber(string.match(oldest[1][1], '^(%d+)'))
    if waited > max_wait then
      return 'lagging ' .. waited
    end
  end
end
local id = redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], id, 'EX', ARGV[4])
return id
