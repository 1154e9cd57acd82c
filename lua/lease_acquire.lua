-- lease_acquire.lua: take or renew an exclusive, expiring lease.
--
-- KEYS[1]  the lease, e.g. fc:lease:{ingest:3}
-- ARGV[1]  the holder's id (worker instance id)
-- ARGV[2]  lease lifetime in milliseconds
--
-- Returns 2 when ARGV[1] newly took the lease (nobody held it: first take,
-- expired, or Redis forgot it), 1 when ARGV[1] renewed it, 0 when another
-- holder has it. A new take is when a fenced holder draws a new epoch.

local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 2
end
if holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
