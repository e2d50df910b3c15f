--[[
  acquire: reserve capacity for one request in the first bucket, at or after the queue's tail,
  where it fits every limit; FIFO across every client of this Redis.

  KEYS[1]  window hash of the model
  KEYS[2]  ops ring of the model
  ARGV[1]  op id (client generated; a repeated id is counted once)
  ARGV[2]  window length, ms
  ARGV[3]  number of buckets per window (B)
  ARGV[4]  cost: combined tokens
  ARGV[5]  cost: input tokens
  ARGV[6]  cost: output tokens
  ARGV[7]  cost: requests
  ARGV[8]  limit: combined tokens (0 = off)
  ARGV[9]  limit: input tokens (0 = off)
  ARGV[10] limit: output tokens (0 = off)
  ARGV[11] limit: requests (0 = off)
  ARGV[12] longest acceptable wait, ms (-1 = no bound)
  ARGV[13] ops ring horizon, ms
  ARGV[14] ops ring capacity
  ARGV[15] learned limits: largest limit factor (0 = the limits are fixed)
  ARGV[16] learned limits: factor gained per window of pressing demand

  Returns { status, slot ms, wait ms, queue position, bucket, server now ms }, all strings:
    'ok'        reserved in that bucket
    'dup'       this op id was reserved before: its original slot, nothing charged again
    'released'  this op id was cancelled before it arrived: nothing charged
    'wait'      the slot is further away than the longest acceptable wait: nothing charged

  The limits hold over any B + 1 consecutive buckets, so any real window of the configured
  length (which touches at most B + 1 buckets) stays within them; the price is 1/(B+1) of
  capacity. Cost does not depend on how many requests the window holds: the fast path reads
  one hash with HMGET, the slow path at most B + 1 bucket fields.
]]
--- @include "common"

local window, ring = KEYS[1], KEYS[2]
local op = ARGV[1]
local W = tonumber(ARGV[2])
local B = tonumber(ARGV[3])
local cost = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local limit = { tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]) }
local max_wait = tonumber(ARGV[12])
local horizon = tonumber(ARGV[13])
local capacity = tonumber(ARGV[14])
local max_factor = tonumber(ARGV[15]) or 0
local learn_step = tonumber(ARGV[16]) or 0

local now = now_ms()
local n = bucket_of(now, W, B)

local state = redis.call('HMGET', window, 'base', 'tail', 'st', 'si', 'so', 'sr', 'exp', fmt(n), 'p', 'f', 'fa', 'fc', 'fg')
local pause = tonumber(state[9]) or 0
limit = scale_limits(limit, limit_factor(state[10], state[11], now, W))
local oldest = n - B
local base = tonumber(state[1]) or oldest
local tail = tonumber(state[2]) or (oldest - 1)
local sums = { tonumber(state[3]) or 0, tonumber(state[4]) or 0, tonumber(state[5]) or 0, tonumber(state[6]) or 0 }
local exp = tonumber(state[7]) or 0
local current = state[8]

-- Buckets older than the window leave the running sums, each once.
if base < oldest then
  if tail < oldest then
    redis.call('DEL', window)
    sums = { 0, 0, 0, 0 }
    exp = 0
    if state[10] then
      redis.call('HSET', window, 'f', state[10], 'fa', state[11], 'fc', state[12] or state[11])
    end
    if pause > now then
      redis.call('HSET', window, 'p', fmt(pause))
    end
  else
    local from = base
    while from < oldest do
      local to = math.min(oldest - 1, from + 127)
      local fields = {}
      for k = from, to do
        fields[#fields + 1] = fmt(k)
      end
      local values = redis.call('HMGET', window, unpack(fields))
      local gone = {}
      for x = 1, #fields do
        if values[x] then
          local t, i, o, r = unpack_bucket(values[x])
          sums[1] = sums[1] - t
          sums[2] = sums[2] - i
          sums[3] = sums[3] - o
          sums[4] = sums[4] - r
          gone[#gone + 1] = fields[x]
        end
      end
      if #gone > 0 then
        redis.call('HDEL', window, unpack(gone))
      end
      from = to + 1
    end
  end
  base = oldest
end

local function fits(used)
  for d = 1, 4 do
    if limit[d] > 0 and used[d] + cost[d] > limit[d] then
      return false
    end
  end
  return true
end

local j, slot, position
local charged = { 0, 0, 0, 0 }
local pressing = true
if tail <= n and pause <= now and fits(sums) then
  pressing = false
  -- Nothing is queued ahead and the sums are exactly the window ending now.
  j, slot, position = n, now, 0
  charged[1], charged[2], charged[3], charged[4] = unpack_bucket(current)
else
  -- Start at the queue's tail and slide the window forward, dropping its oldest bucket each
  -- step, until the request fits. Buckets after the tail are empty, so B + 1 steps suffice.
  -- While paused, nothing is placed before the pause ends.
  local first = math.max(n, tail, bucket_of(pause, W, B))
  local fields = {}
  for k = first - B, first do
    fields[#fields + 1] = fmt(k)
  end
  local values = redis.call('HMGET', window, unpack(fields))
  local buckets = {}
  local used = { 0, 0, 0, 0 }
  for x = 1, B + 1 do
    local t, i, o, r = unpack_bucket(values[x])
    buckets[x] = { t, i, o, r }
    used[1], used[2], used[3], used[4] = used[1] + t, used[2] + i, used[3] + o, used[4] + r
  end
  local step = 0
  while not fits(used) and step <= B do
    step = step + 1
    local out = buckets[step]
    for d = 1, 4 do
      used[d] = used[d] - out[d]
    end
  end
  j = first + step
  if step == 0 then
    charged = buckets[B + 1]
  end
  slot = math.max(now, pause, bucket_start(j, W, B))
  if max_wait >= 0 and slot - now > max_wait then
    return { 'wait', fmt(slot), fmt(slot - now), '0', fmt(j), fmt(now) }
  end
  position = redis.call('ZCOUNT', ring, '(' .. fmt(now), '+inf')
end

for d = 1, 4 do
  charged[d] = charged[d] + cost[d]
  sums[d] = sums[d] + cost[d]
end
tail = math.max(tail, j)
local needed = ttl_needed(math.max(slot, now), W, horizon)
local expire_at = exp
if exp < needed then
  expire_at = needed + W
end
-- Record the op id first: if it is already there, this is a re-sent acquire and nothing more
-- is written (one call where a lookup and an insert would take two).
if redis.call('ZADD', ring, 'NX', slot, op) == 0 then
  local s = tonumber(redis.call('ZSCORE', ring, op))
  if s < 0 then
    return { 'released', '0', '0', '0', '-1', fmt(now) }
  end
  return { 'dup', fmt(s), fmt(math.max(0, s - now)), '0', fmt(bucket_of(s, W, B)), fmt(now) }
end
if pressing and max_factor > 0 and pause <= now then
  learn_limits(window, state[10], state[13], now, W, max_factor, learn_step)
end
redis.call('HSET', window, fmt(j), pack_bucket(charged[1], charged[2], charged[3], charged[4]),
  'base', fmt(base), 'tail', fmt(tail),
  'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr', fmt(sums[4]),
  'exp', fmt(expire_at))
ring_trim(ring, capacity)
if expire_at ~= exp then
  keep_alive(window, ring, expire_at)
end

return { 'ok', fmt(slot), fmt(slot - now), fmt(position), fmt(j), fmt(now) }
