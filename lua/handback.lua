--[[
  handback: what a process admitted on its own while Redis was unavailable (failureMode 'local'),
  charged to the shared state where it was admitted, so that it leaves the window when it would
  have (charged all at once, it would hold the window for a whole window after the outage). No
  figure is charged beyond its limit: more than that could never have been admitted.

  KEYS[1]  state hash of the model (window hash or bucket hash, per ARGV[1])
  ARGV[1]  algorithm: 'w' sliding window, 'b' token bucket
  ARGV[2]  window length, ms
  ARGV[3]  sliding window: buckets per window (B); token bucket: bucket size, ms of refill
  ARGV[4..7]  limits: combined tokens, input, output, requests (0 = off)
  ARGV[8]  clock, epoch ms (-1 = the server's TIME)
  ARGV[9]  number of admissions K, then K groups, oldest first: how long before now it was
           admitted (ms), combined tokens, input, output, requests

  Returns { charged combined, input, output, requests }, strings.
]]
--- @include "common"
--- @include "windows"
--- @include "bucket"

local state = KEYS[1]
local algorithm = ARGV[1]
local W = tonumber(ARGV[2])
local size = tonumber(ARGV[3])
local limit = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local now = clock_ms(ARGV[8])
local count = tonumber(ARGV[9])
local charged = { 0, 0, 0, 0 }

local function admission(x)
  local at = 10 + (x - 1) * 5
  return now - tonumber(ARGV[at]), { tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]) }
end

if algorithm == 'b' then
  -- The admissions' own arrival line: what of it is still to refill now is charged from now.
  local us = now * 1000
  local tat = { 0, 0, 0, 0 }
  for x = 1, count do
    local at, cost = admission(x)
    for d = 1, 4 do
      if limit[d] > 0 and cost[d] > 0 then
        tat[d] = math.max(tat[d], at * 1000) + refill_us(cost[d], limit[d], W)
      end
    end
  end
  local current = redis.call('HMGET', state, 't', 'i', 'o', 'r')
  local fields = {}
  for d = 1, 4 do
    local owed = math.min(tat[d] - us, size * 1000)
    if limit[d] > 0 and owed > 0 then
      charged[d] = math.ceil(owed * limit[d] / (W * 1000))
      fields[#fields + 1] = FIGURES[d]
      fields[#fields + 1] = fmt(move_arrival(tonumber(current[d]) or 0, owed, us))
    end
  end
  if #fields > 0 then
    redis.call('HSET', state, unpack(fields))
  end
else
  local B = size
  local n = bucket_of(now, W, B)
  local meta = redis.call('HMGET', state, 'base', 'last', 'st', 'si', 'so', 'sr')
  local base = tonumber(meta[1]) or (n - B)
  local last = tonumber(meta[2]) or (n - B - 1)
  local sums = { tonumber(meta[3]) or 0, tonumber(meta[4]) or 0, tonumber(meta[5]) or 0, tonumber(meta[6]) or 0 }
  if base < n - B then
    base, sums = window_advance(state, base, last, sums, n - B)
  end
  local buckets = bucket_store(state)
  for x = 1, count do
    local at, cost = admission(x)
    local j = math.min(bucket_of(at, W, B), n)
    if j >= n - B then
      local add = { 0, 0, 0, 0 }
      for d = 1, 4 do
        add[d] = cost[d]
        if limit[d] > 0 then
          add[d] = math.max(0, math.min(cost[d], limit[d] - sums[d]))
        end
        sums[d] = sums[d] + add[d]
        charged[d] = charged[d] + add[d]
      end
      buckets.add(j, add[1], add[2], add[3], add[4])
      last = math.max(last, j)
    end
  end
  write_window(state, buckets, {
    'base', fmt(base), 'last', fmt(last),
    'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr', fmt(sums[4]),
  })
end

local control = redis.call('HMGET', state, 'exp')
local expire_at = math.max(tonumber(control[1]) or 0, now + 2 * W)
redis.call('HSET', state, 'exp', fmt(expire_at))
redis.call('PEXPIREAT', state, expire_at)
return { fmt(charged[1]), fmt(charged[2]), fmt(charged[3]), fmt(charged[4]) }
