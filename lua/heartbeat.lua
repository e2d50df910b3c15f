--[[
  heartbeat: a limiter instance says it is alive; answers how many are (for failureMode 'local',
  which splits the limits between live instances while Redis is unavailable). The largest count
  seen lately is kept in the model's state hash, where every queue call reads it (capacity.lua):
  a process that started before the others learns how many share the limits from its next call,
  not from its next heartbeat.

  KEYS[1]  instances sorted set of the model (member: instance id, score: last beat, ms)
  KEYS[2]  state hash of the model (window hash or bucket hash): fields 'ni' (largest count)
           and 'nu' (until when it counts, ms)
  ARGV[1]  instance id
  ARGV[2]  how long a beat counts, ms; the largest count is kept as long after it was last seen

  Returns the number of live instances.
]]
--- @include "common"

local key, state = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local now = now_ms()
redis.call('ZADD', key, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. fmt(now - ttl))
redis.call('PEXPIRE', key, 2 * ttl)
local count = redis.call('ZCARD', key)
local kept = redis.call('HMGET', state, 'ni', 'nu')
if count >= (tonumber(kept[1]) or 0) or (tonumber(kept[2]) or 0) < now then
  redis.call('HSET', state, 'ni', fmt(count), 'nu', fmt(now + ttl))
  -- A state hash made here (no call wrote it lately) must not outlive the heartbeats; the next
  -- queue call sets the TTL it needs ('exp' is missing).
  if redis.call('PTTL', state) < 0 then
    redis.call('PEXPIRE', state, 2 * ttl)
  end
end
return count
