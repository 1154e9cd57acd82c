-- ingest_append.lua: append a client write to an ingest shard, unless the
-- shard is full.
--
-- KEYS[1]  the ingest stream shard, e.g. fc:ingest:{3}
-- ARGV[1]  most entries the shard may hold (INGEST_MAX_LEN)
-- ARGV[2]  the field name of the entry
-- ARGV[3]  the entry (JSON text)
--
-- Returns the new entry id, or false when the shard already holds ARGV[1]
-- entries: workers are behind or down, and the sender is answered
-- `unavailable` (retry later) instead of Redis growing without bound.
-- Trimming is never an option here: an ingest entry is an unacknowledged
-- write.

if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return false
end
return redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[3])
