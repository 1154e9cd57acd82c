-- presence_update.lua: change one user's presence and announce the result
-- when the aggregate status changed.
--
-- KEYS[1]  the user's presence hash, e.g. fc:presence:{u42}
-- ARGV[1]  operation:
--            "conn"   set connection field ARGV[2] to ARGV[3] ("a" active,
--                     "i" idle); ARGV[5], when not "-", replaces the stored
--                     manual state (loaded from PostgreSQL at connect)
--            "drop"   delete connection field ARGV[2]
--            "node"   delete every connection field starting with ARGV[2]
--                     (the sweep of a dead gateway: "c:<node>|")
--            "manual" set the manual state to ARGV[3] ("" clears it)
-- ARGV[2]  connection field "c:<node>|<conn>", or the node prefix
-- ARGV[3]  value
-- ARGV[4]  now, Unix ms
-- ARGV[5]  manual state for "conn", or "-"
-- ARGV[6]  the sharded Pub/Sub channel (SPUBLISH) announcing this user's
--          changes, e.g. fc:wake:{u42}:p (KEYS[1]'s hash tag: a script may
--          only publish to a channel of its own slot in a Redis Cluster)
-- ARGV[7]  the user id (for the announcement)
-- ARGV[8]  how long the hash of a user without connections lives, ms
--
-- Hash fields: "c:<node>|<conn>" per open connection, "m" the manual state
-- (away, dnd, brb), "s" the last announced status, "t" last seen (Unix ms).
--
-- Aggregation (seed 002 §4.1): no connection -> offline; otherwise a manual
-- state wins; otherwise online if any connection is active, else away.
-- "t" moves to now whenever the user is connected at an operation and when
-- the user goes offline, so it is the last moment the user was seen.
--
-- Returns {status, lastSeenMs, changed (1/0)}. On a change it publishes
-- "<userId> <status> <lastSeenMs>" on ARGV[6]; every change of one user
-- runs in this script, so announcements are in the order of the changes.

local key, op, field, value, now = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if op == 'conn' then
  redis.call('HSET', key, field, value)
  if ARGV[5] ~= '-' then
    redis.call('HSET', key, 'm', ARGV[5])
  end
elseif op == 'drop' then
  redis.call('HDEL', key, field)
elseif op == 'node' then
  local all = redis.call('HKEYS', key)
  for _, f in ipairs(all) do
    if string.sub(f, 1, #field) == field then
      redis.call('HDEL', key, f)
    end
  end
elseif op == 'manual' then
  redis.call('HSET', key, 'm', value)
else
  return redis.error_reply('unknown presence operation ' .. op)
end

local active, conns = 0, 0
local fields = redis.call('HGETALL', key)
local manual, announced, seen = '', 'offline', 0
for i = 1, #fields, 2 do
  local f, v = fields[i], fields[i + 1]
  if string.sub(f, 1, 2) == 'c:' then
    conns = conns + 1
    if v == 'a' then active = active + 1 end
  elseif f == 'm' then manual = v
  elseif f == 's' then announced = v
  elseif f == 't' then seen = tonumber(v)
  end
end

local status
if conns == 0 then
  status = 'offline'
elseif manual ~= '' then
  status = manual
elseif active > 0 then
  status = 'online'
else
  status = 'away'
end

if conns > 0 or status ~= announced then
  seen = tonumber(now)
  redis.call('HSET', key, 't', seen)
end
if conns > 0 then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIRE', key, ARGV[8])
end

if status == announced then
  return {status, tostring(seen), 0}
end
redis.call('HSET', key, 's', status)
redis.call('SPUBLISH', ARGV[6], ARGV[7] .. ' ' .. status .. ' ' .. seen)
return {status, tostring(seen), 1}
