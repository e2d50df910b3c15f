--[[
  acquire: reserve capacity for a batch of requests, in order, each in the first bucket at or
  after the queue's tail where it fits every limit; FIFO across every client of this Redis.
  A batch is what one process had waiting while its previous call was in flight: it gives the
  same results as its requests sent one by one at this moment, for the cost of one call.

  KEYS[1]  window hash of the model
  KEYS[2]  ops ring of the model
  ARGV[1]  window length, ms
  ARGV[2]  number of buckets per window (B)
  ARGV[3]  limit: combined tokens (0 = off)
  ARGV[4]  limit: input tokens (0 = off)
  ARGV[5]  limit: output tokens (0 = off)
  ARGV[6]  limit: requests (0 = off)
  ARGV[7]  ops ring horizon, ms
  ARGV[8]  ops ring capacity
  ARGV[9]  pacing bucket, ms of refill at limit / window (0 = no pacing): every admission must
           also fit a token bucket per limited figure of that size, so the window's quota is
           spread over it (providers that enforce per-minute limits per second)
  ARGV[10] learned limits: largest limit factor (0 = the limits are fixed)
  ARGV[11] learned limits: factor gained per window of pressing demand
  ARGV[12] number of requests in the batch (N)
  then per request, 6 arguments:
    op id (client generated, distinct within a batch; a repeated id is counted once), cost in
    combined tokens, input tokens, output tokens and requests, longest acceptable wait in ms
    (-1 = no bound)

  Returns { server now ms, then per request: status, slot ms, queue position, bucket }. Status:
    'ok'        reserved in that bucket
    'dup'       this op id was reserved before: its original slot, nothing charged again
    'released'  this op id was cancelled before it arrived: nothing charged (bucket -1)
    'wait'      the slot is further away than the longest acceptable wait: nothing charged

  The limits hold over any B + 1 consecutive buckets, so any real window of the configured
  length (which touches at most B + 1 buckets) stays within them; the price is 1/(B+1) of
  capacity. Cost does not depend on how many requests the window holds: the fast path reads
  one hash with HMGET, the slow path at most B + 1 bucket fields.
]]
--- @include "common"
--- @include "bucket"

local window, ring = KEYS[1], KEYS[2]
local W = tonumber(ARGV[1])
local B = tonumber(ARGV[2])
local limit = { tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) }
local horizon = tonumber(ARGV[7])
local capacity = tonumber(ARGV[8])
local pace_ms = tonumber(ARGV[9])
local max_factor = tonumber(ARGV[10])
local learn_step = tonumber(ARGV[11])
local count = tonumber(ARGV[12])
local FIRST, PER = 13, 6

local now = now_ms()
local n = bucket_of(now, W, B)

local state = redis.call('HMGET', window, 'base', 'tail', 'st', 'si', 'so', 'sr', 'exp', fmt(chunk_of(n)), 'p', 'f', 'fa', 'fc',
  'qt', 'qi', 'qo', 'qr', 'fg')
local pause = tonumber(state[9]) or 0
local configured = limit
limit = scale_limits(limit, limit_factor(state[10], state[11], now, W))
local oldest = n - B
local base = tonumber(state[1]) or oldest
local tail = tonumber(state[2]) or (oldest - 1)
local sums = { tonumber(state[3]) or 0, tonumber(state[4]) or 0, tonumber(state[5]) or 0, tonumber(state[6]) or 0 }
local exp = tonumber(state[7]) or 0
local moved = base < oldest
local buckets = bucket_store(window)

-- Buckets older than the window leave the running sums, each once; chunks left wholly behind
-- go with them.
if moved then
  if tail < oldest then
    redis.call('DEL', window)
    sums = { 0, 0, 0, 0 }
    exp = 0
    state[8] = false
    if state[10] then
      redis.call('HSET', window, 'f', state[10], 'fa', state[11], 'fc', state[12] or state[11])
      if state[17] then
        redis.call('HSET', window, 'fg', state[17])
      end
    end
    if pause > now then
      redis.call('HSET', window, 'p', fmt(pause))
    end
  else
    local from = base
    while from < oldest do
      local to = math.min(oldest - 1, from + 127 * CHUNK)
      local old = bucket_store(window)
      old.load(from, to)
      for k = from, to do
        local b = old.get(k)
        if b then
          sums[1], sums[2], sums[3], sums[4] = sums[1] - b[1], sums[2] - b[2], sums[3] - b[3], sums[4] - b[4]
        end
      end
      local gone = {}
      for c = chunk_of(from), chunk_of(to) do
        if c < chunk_of(oldest) then
          gone[#gone + 1] = fmt(c)
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
buckets.seed(chunk_of(n), state[8])

local max = math.max
local lt, li, lo, lr = limit[1], limit[2], limit[3], limit[4]

-- Pacing: per limited figure, the GCRA arrival time (us) of a bucket holding pace_ms of refill,
-- in the 'q*' fields. The earliest time every figure's bucket has room acts as a pause for that
-- request: nothing is placed before it, and the window's test only gets easier from there on.
local paced = pace_ms > 0
local tau = pace_ms * 1000
local us = now * 1000
local q = { tonumber(state[13]) or 0, tonumber(state[14]) or 0, tonumber(state[15]) or 0, tonumber(state[16]) or 0 }
local limits = { lt, li, lo, lr }
local learned = false

local ids = {}
for k = 1, count do
  ids[k] = ARGV[FIRST + (k - 1) * PER]
end
local seen = redis.call('ZMSCORE', ring, unpack(ids))

local reply = { now }
local r = 1
local added = {}
local a = 0
local ahead -- requests already waiting for a later slot (read once, when first needed)
local latest = now
for k = 1, count do
  local at = FIRST + (k - 1) * PER
  local s = seen[k]
  if s then
    s = tonumber(s)
    if s < 0 then
      reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = 'released', 0, 0, -1
    else
      reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = 'dup', s, 0, bucket_of(s, W, B)
    end
    r = r + 4
  else
    local ct, ci, co, cr = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
    local max_wait = tonumber(ARGV[at + 5])
    local j, slot, position
    local pressing = true
    local held = pause
    local inc
    if paced then
      inc = { 0, 0, 0, 0 }
      local start = us
      local amounts = { ct, ci, co, cr }
      for d = 1, 4 do
        if limits[d] > 0 then
          inc[d] = refill_us(amounts[d], limits[d], W)
          start = max(start, max(q[d], us) + inc[d] - max(tau, inc[d]))
        end
      end
      held = max(pause, math.ceil(start / 1000))
    end
    if tail <= n and held <= now
      and (lt == 0 or sums[1] + ct <= lt) and (li == 0 or sums[2] + ci <= li)
      and (lo == 0 or sums[3] + co <= lo) and (lr == 0 or sums[4] + cr <= lr) then
      -- Nothing is queued ahead and the sums are exactly the window ending now.
      j, slot, position = n, now, 0
      pressing = false
    else
      -- Start at the queue's tail and slide the window forward, dropping its oldest bucket each
      -- step, until the request fits. Buckets after the tail are empty, so B + 1 steps suffice.
      -- While paused, nothing is placed before the pause ends.
      local first = max(n, tail, bucket_of(held, W, B))
      local used = window_used(buckets, first, B)
      local ut, ui, uo, ur = used[1], used[2], used[3], used[4]
      local step = 0
      while step <= B and ((lt > 0 and ut + ct > lt) or (li > 0 and ui + ci > li) or (lo > 0 and uo + co > lo) or (lr > 0 and ur + cr > lr)) do
        local out = buckets.get(first - B + step)
        if out then
          ut, ui, uo, ur = ut - out[1], ui - out[2], uo - out[3], ur - out[4]
        end
        step = step + 1
      end
      j = first + step
      slot = max(now, held, bucket_start(j, W, B))
      if max_wait >= 0 and slot - now > max_wait then
        reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = 'wait', slot, 0, j
        r = r + 4
        slot = nil
      else
        if not ahead then
          ahead = redis.call('ZCOUNT', ring, '(' .. fmt(now), '+inf')
        end
        position = ahead
      end
    end
    if slot then
      buckets.add(j, ct, ci, co, cr)
      if paced then
        -- The bucket is drawn at the slot, not now: slots pushed later by the window still pace.
        for d = 1, 4 do
          if limits[d] > 0 then
            q[d] = max(q[d], slot * 1000) + inc[d]
          end
        end
      end
      sums[1], sums[2], sums[3], sums[4] = sums[1] + ct, sums[2] + ci, sums[3] + co, sums[4] + cr
      if j > tail then
        tail = j
      end
      if slot > now then
        ahead = ahead + 1
        if slot > latest then
          latest = slot
        end
      end
      if pressing and max_factor > 0 and pause <= now then
        -- Learned limits: demand presses against them, so they grow (see learned_factor); the
        -- requests after this one see the grown limits, as they would one by one.
        local grown = learned_factor(state[10], state[17], now, W, max_factor, learn_step)
        state[10], state[11], state[17] = tostring(grown), '-1', fmt(now)
        learned = true
        limits = scale_limits(configured, grown)
        lt, li, lo, lr = limits[1], limits[2], limits[3], limits[4]
      end
      added[a + 1], added[a + 2] = slot, ids[k]
      a = a + 2
      reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = 'ok', slot, position, j
      r = r + 4
    end
  end
end

if #added > 0 or moved then
  local needed = ttl_needed(latest, W, horizon)
  local expire_at = exp
  if exp < needed then
    expire_at = needed + W
  end
  local fields = {
    'base', fmt(base), 'tail', fmt(tail),
    'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr', fmt(sums[4]),
    'exp', fmt(expire_at),
  }
  if learned then
    fields[#fields + 1] = 'f'
    fields[#fields + 1] = state[10]
    fields[#fields + 1] = 'fa'
    fields[#fields + 1] = '-1'
    fields[#fields + 1] = 'fg'
    fields[#fields + 1] = state[17]
  end
  if paced and #added > 0 then
    for d = 1, 4 do
      if limits[d] > 0 then
        fields[#fields + 1] = 'q' .. FIGURES[d]
        fields[#fields + 1] = fmt(q[d])
      end
    end
  end
  write_window(window, buckets, fields)
  if #added > 0 then
    redis.call('ZADD', ring, unpack(added))
    ring_trim(ring, capacity)
  end
  if expire_at ~= exp then
    keep_alive(window, ring, expire_at)
  end
end

return reply
