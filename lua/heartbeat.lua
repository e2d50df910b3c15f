--[[
  heartbeat: a limiter instance says it is alive; answers how many are (for failureMode 'local',
  which splits the limits between live instances while Redis is unavailable).

  KEYS[1]  instances sorted set of the model (member: instance id, score: last beat, ms)
  ARGV[1]  instance id
  ARGV[2]  how long a beat counts, ms

  Returns the number of live instances.
]]
--- @include "common"

local key = KEYS[1]
local ttl = tonumber(ARGV[2])
local now = now_ms()
redis.call('ZADD', key, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. fmt(now - ttl))
redis.call('PEXPIRE', key, 2 * ttl)
return redis.call('ZCARD', key)
