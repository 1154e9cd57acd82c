-- lease_release.lua: give up a lease, only if still held by the caller.
--
-- KEYS[1]  the lease, e.g. fc:lease:{ingest:3}
-- ARGV[1]  the holder's id
--
-- Returns 1 when released, 0 when the lease was not the caller's.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
