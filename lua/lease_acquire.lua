-- lease_acquire.lua: take or renew an exclusive, expiring lease.
--
-- KEYS[1]  the lease, e.g. fc:lease:{ingest:3}
-- ARGV[1]  the holder's id (worker instance id)
-- ARGV[2]  lease lifetime in milliseconds
--
-- Returns 1 when ARGV[1] holds the lease afterwards (newly taken or renewed),
-- 0 when another holder has it.

local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
