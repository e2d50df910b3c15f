--[[
  tb-settle: charge or refund token-bucket figures after the fact: an adjust (signed deltas),
  a release (the whole charge back) or a cancel (back only if the acquire has run).

  KEYS[1]  bucket hash of the model
  KEYS[2]  ops ring of the model
  ARGV[1]  op id of the reservation
  ARGV[2]  mode: 'adjust', 'release' or 'cancel'
  ARGV[3]  adjust key (mode 'adjust': names this change, so a re-sent adjust counts once)
  ARGV[4..7]   deltas: combined tokens, input, output, requests (signed; negative = refund)
  ARGV[8..11]  limits: combined tokens, input, output, requests (0 = off)
  ARGV[12] window length, ms
  ARGV[13] ops ring horizon, ms
  ARGV[14] ops ring capacity

  Returns { status }: 'ok'; 'dup' (this adjust or release was applied before); 'released'
  (adjust of a released reservation); 'cancelled' (cancel of an acquire that has not run: a
  tombstone makes it a no-op if it ever arrives).
  A refund never fills a bucket beyond full: capacity not used in time is gone, as with the
  provider's own bucket.
]]
--- @include "common"
--- @include "bucket"

local state, ring = KEYS[1], KEYS[2]
local op, mode, key = ARGV[1], ARGV[2], ARGV[3]
local delta = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local limit = { tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]) }
local W = tonumber(ARGV[12])
local horizon = tonumber(ARGV[13])
local capacity = tonumber(ARGV[14])

local us = now_us()
local now = math.floor(us / 1000)
local seen = redis.call('ZSCORE', ring, op)
local released = seen and tonumber(seen) < 0
if mode == 'adjust' then
  if released then
    return { 'released' }
  end
  if redis.call('ZSCORE', ring, key) then
    return { 'dup' }
  end
elseif released then
  return { 'dup' }
end

local current = redis.call('HMGET', state, 't', 'i', 'o', 'r', 'exp', 'f', 'fa')
-- Tokens convert to refill time at the rate in force (after a cut, or as learned), as acquire
-- charged them.
limit = scale_limits(limit, limit_factor(current[6], current[7], now, W))
local expire_at = tonumber(current[5]) or ttl_needed(now, W, horizon)
if mode == 'cancel' and not seen then
  redis.call('ZADD', ring, -now, op)
  ring_trim(ring, capacity)
  redis.call('PEXPIREAT', ring, expire_at)
  return { 'cancelled' }
end

local fields = {}
for d = 1, 4 do
  if limit[d] > 0 and delta[d] ~= 0 and current[d] then
    local moved = move_arrival(tonumber(current[d]), refill_us(delta[d], limit[d], W), us)
    fields[#fields + 1] = FIGURES[d]
    fields[#fields + 1] = fmt(moved)
    expire_at = math.max(expire_at, ttl_needed(math.ceil(moved / 1000), W, horizon))
  end
end
if #fields > 0 then
  redis.call('HSET', state, unpack(fields))
end
if mode == 'adjust' then
  redis.call('ZADD', ring, now, key)
else
  redis.call('ZADD', ring, -now, op)
end
ring_trim(ring, capacity)
keep_alive(state, ring, expire_at)
return { 'ok' }
