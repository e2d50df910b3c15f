--[[
  reconcile: the provider reported how much room it has left (response headers). Where that is
  less than the limiter's own count leaves, somebody else spends the same quota: charge the
  difference now, so every process sees it. Never refunds: a provider reporting more room than
  the limiter counts changes nothing (our reservations may not have reached it yet).

  KEYS[1]  state hash of the model (window hash or bucket hash, per ARGV[1])
  ARGV[1]  algorithm: 'sliding-window' or 'token-bucket'
  ARGV[2]  window length, ms
  ARGV[3]  sliding window: buckets per window (B); token bucket: bucket size, ms of refill
  ARGV[4..7]   provider's remaining: combined tokens, input, output, requests (-1 = not reported)
  ARGV[8..11]  limits: combined tokens, input, output, requests (0 = off)
  ARGV[12..15] tolerance per figure (the provider's rounding and in-flight noise)
  ARGV[16] clock, epoch ms (-1 = the server's TIME; set only by the differential tests)

  Returns { charged combined, input, output, requests }, strings.
]]
--- @include "common"
--- @include "windows"
--- @include "bucket"

local state = KEYS[1]
local algorithm = ARGV[1]
local W = tonumber(ARGV[2])
local size = tonumber(ARGV[3])
local remaining = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local limit = { tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]) }
local tolerance = { tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]) }

local now = clock_ms(ARGV[16])
local us = now * 1000
local control = redis.call('HMGET', state, 'f', 'fa', 'exp')
limit = scale_limits(limit, limit_factor(control[1], control[2], now, W))
local expire_at = math.max(tonumber(control[3]) or 0, now + 2 * W)
local excess = { 0, 0, 0, 0 }

if algorithm == 'token-bucket' then
  local tat = redis.call('HMGET', state, 't', 'i', 'o', 'r')
  local fields = {}
  for d = 1, 4 do
    if limit[d] > 0 and remaining[d] >= 0 then
      local base = math.max(tonumber(tat[d]) or 0, us)
      local capacity = limit[d] * size / W
      local owed = (base - us) * limit[d] / (W * 1000)
      local room = capacity - owed
      excess[d] = math.floor(room - remaining[d] - tolerance[d])
      if excess[d] > 0 then
        local moved = base + refill_us(excess[d], limit[d], W)
        fields[#fields + 1] = FIGURES[d]
        fields[#fields + 1] = fmt(moved)
        expire_at = math.max(expire_at, math.ceil(moved / 1000) + W)
      else
        excess[d] = 0
      end
    end
  end
  if #fields > 0 then
    redis.call('HSET', state, unpack(fields))
  end
else
  local B = size
  local n = bucket_of(now, W, B)
  local buckets = bucket_store(state)
  local used = window_used(buckets, n, B)
  local any = false
  for d = 1, 4 do
    if limit[d] > 0 and remaining[d] >= 0 then
      excess[d] = math.max(0, math.floor((limit[d] - used[d]) - remaining[d] - tolerance[d]))
      any = any or excess[d] > 0
    end
  end
  if any then
    local meta = redis.call('HMGET', state, 'base', 'last', 'st', 'si', 'so', 'sr')
    local base = tonumber(meta[1]) or (n - B)
    local last = tonumber(meta[2]) or (n - B - 1)
    local sums = { tonumber(meta[3]) or 0, tonumber(meta[4]) or 0, tonumber(meta[5]) or 0, tonumber(meta[6]) or 0 }
    if base < n - B then
      base, sums = window_advance(state, base, last, sums, n - B)
    end
    buckets.add(n, excess[1], excess[2], excess[3], excess[4])
    for d = 1, 4 do
      sums[d] = sums[d] + excess[d]
    end
    write_window(state, buckets, {
      'base', fmt(base), 'last', fmt(math.max(last, n)),
      'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr', fmt(sums[4]),
    })
  end
end

redis.call('HSET', state, 'exp', fmt(expire_at))
redis.call('PEXPIREAT', state, expire_at)
return { fmt(excess[1]), fmt(excess[2]), fmt(excess[3]), fmt(excess[4]) }
