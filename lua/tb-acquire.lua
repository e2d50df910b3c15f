--[[
  tb-acquire: reserve capacity for one request from continuously refilled buckets (GCRA), FIFO
  across every client of this Redis.

  KEYS[1]  bucket hash of the model
  KEYS[2]  ops ring of the model
  ARGV[1]  op id (client generated; a repeated id is counted once)
  ARGV[2]  window length, ms (a limit refills fully over one window)
  ARGV[3]  bucket size, ms of refill
  ARGV[4..7]   cost: combined tokens, input, output, requests
  ARGV[8..11]  limits: combined tokens, input, output, requests (0 = off)
  ARGV[12] longest acceptable wait, ms (-1 = no bound)
  ARGV[13] ops ring horizon, ms
  ARGV[14] ops ring capacity
  ARGV[15] learned limits: largest limit factor (0 = the limits are fixed)
  ARGV[16] learned limits: factor gained per window of pressing demand

  Returns { status, slot ms, wait ms, queue position, '0', server now ms } as acquire.lua does.

  Each figure's arrival time only grows, so every later request's slot is at or after this
  one's: FIFO. A request larger than the bucket starts when the bucket is full and leaves it in
  debt, rather than never.
]]
--- @include "common"
--- @include "bucket"

local state, ring = KEYS[1], KEYS[2]
local op = ARGV[1]
local W = tonumber(ARGV[2])
local tau = tonumber(ARGV[3]) * 1000
local cost = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local limit = { tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]) }
local max_wait = tonumber(ARGV[12])
local horizon = tonumber(ARGV[13])
local capacity = tonumber(ARGV[14])
local max_factor = tonumber(ARGV[15]) or 0
local learn_step = tonumber(ARGV[16]) or 0

local us = now_us()
local now = math.floor(us / 1000)

local current = redis.call('HMGET', state, 't', 'i', 'o', 'r', 'exp', 'p', 'f', 'fa', 'fg')
local exp = tonumber(current[5]) or 0
limit = scale_limits(limit, limit_factor(current[7], current[8], now, W))
-- While paused, nothing starts before the pause ends.
local paused_until = tonumber(current[6]) or 0
local start = math.max(us, paused_until * 1000)
local after = {}
local latest = us
for d = 1, 4 do
  if limit[d] > 0 then
    local base = math.max(tonumber(current[d]) or 0, us)
    local inc = refill_us(cost[d], limit[d], W)
    after[d] = base + inc
    start = math.max(start, after[d] - math.max(tau, inc))
    latest = math.max(latest, after[d])
  end
end

local slot = now
if start > us then
  slot = math.max(now, math.ceil(start / 1000))
end
if max_wait >= 0 and slot - now > max_wait then
  return { 'wait', fmt(slot), fmt(slot - now), '0', '0', fmt(now) }
end
local position = 0
if slot > now then
  position = redis.call('ZCOUNT', ring, '(' .. fmt(now), '+inf')
end

local fields = {}
for d = 1, 4 do
  if after[d] then
    fields[#fields + 1] = FIGURES[d]
    fields[#fields + 1] = fmt(after[d])
  end
end
local needed = ttl_needed(math.ceil(latest / 1000), 0, horizon)
local expire_at = exp
if exp < needed then
  expire_at = needed + W
end
fields[#fields + 1] = 'exp'
fields[#fields + 1] = fmt(expire_at)
-- Pressing (the request must wait for refill): learned limits grow, written with the rest.
if slot > now and max_factor > 0 and paused_until <= now then
  local grown = learned_factor(current[7], current[9], now, W, max_factor, learn_step)
  for _, v in ipairs({ 'f', tostring(grown), 'fa', '-1', 'fg', fmt(now) }) do
    fields[#fields + 1] = v
  end
end
-- A re-sent acquire finds its op id already recorded and writes nothing more.
if redis.call('ZADD', ring, 'NX', slot, op) == 0 then
  local s = tonumber(redis.call('ZSCORE', ring, op))
  if s < 0 then
    return { 'released', '0', '0', '0', '-1', fmt(now) }
  end
  return { 'dup', fmt(s), fmt(math.max(0, s - now)), '0', '0', fmt(now) }
end
redis.call('HSET', state, unpack(fields))
ring_trim(ring, capacity)
if expire_at ~= exp then
  keep_alive(state, ring, expire_at)
end

return { 'ok', fmt(slot), fmt(slot - now), fmt(position), '0', fmt(now) }
