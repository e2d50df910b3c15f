--[[
  release: give a reservation back, or cancel one whose acquire may not have arrived yet.

  KEYS[1]  window hash of the model
  KEYS[2]  ops ring of the model
  ARGV[1]  op id of the reservation
  ARGV[2]  mode: 'release' (the acquire is known to have run) or 'cancel' (its reply never
           came: it may have run, may run later, or may never run)
  ARGV[3]  bucket of the reservation (-1 when unknown)
  ARGV[4]  charged: combined tokens
  ARGV[5]  charged: input tokens
  ARGV[6]  charged: output tokens
  ARGV[7]  charged: requests
  ARGV[8]  window length, ms
  ARGV[9]  number of buckets per window (B)
  ARGV[10] ops ring horizon, ms
  ARGV[11] ops ring capacity
  ARGV[12] pacing bucket, ms (0 or absent = none; see acquire.lua): what is given back refills it
  ARGV[13..16] limits: combined tokens, input, output, requests (0 = off), for the pacing bucket

  Returns { status }:
    'ok'        the charge was taken back
    'dup'       released before: nothing changed
    'expired'   the bucket has left the window: nothing to take back
    'cancelled' the acquire had not run: a tombstone makes it a no-op if it ever arrives
  Every path but 'dup' leaves a tombstone (the op id scored by minus the release time).
]]
--- @include "common"
--- @include "bucket"

local window, ring = KEYS[1], KEYS[2]
local op, mode = ARGV[1], ARGV[2]
local j = tonumber(ARGV[3])
local charged = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local W = tonumber(ARGV[8])
local B = tonumber(ARGV[9])
local horizon = tonumber(ARGV[10])
local capacity = tonumber(ARGV[11])

local now = now_ms()
local seen = redis.call('ZSCORE', ring, op)
if seen and tonumber(seen) < 0 then
  return { 'dup' }
end
if mode == 'cancel' then
  if not seen then
    j = nil
  else
    j = bucket_of(tonumber(seen), W, B)
  end
end

local function tombstone(expire_at)
  redis.call('ZADD', ring, -now, op)
  ring_trim(ring, capacity)
  redis.call('PEXPIREAT', ring, expire_at)
end

local state = redis.call('HMGET', window, 'base', 'st', 'si', 'so', 'sr', 'exp', fmt(chunk_of(j or 0)))
local base = tonumber(state[1])
local expire_at = tonumber(state[6]) or ttl_needed(now, W, horizon)
if not j then
  tombstone(expire_at)
  return { 'cancelled' }
end
if not base or j < math.max(base, bucket_of(now, W, B) - B) then
  tombstone(expire_at)
  return { 'expired' }
end

local buckets = bucket_store(window)
buckets.seed(chunk_of(j), state[7])
local b = buckets.get(j) or { 0, 0, 0, 0 }
local before = { b[1], b[2], b[3], b[4] }
local sums = { tonumber(state[2]) or 0, tonumber(state[3]) or 0, tonumber(state[4]) or 0, tonumber(state[5]) or 0 }
local after = {}
for d = 1, 4 do
  after[d] = math.max(0, before[d] - charged[d])
  sums[d] = sums[d] - (before[d] - after[d])
end
buckets.set(j, after[1], after[2], after[3], after[4])
write_window(window, buckets, { 'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr', fmt(sums[4]) })
if (tonumber(ARGV[12]) or 0) > 0 then
  local back = {}
  for d = 1, 4 do
    back[d] = after[d] - before[d]
  end
  pace_move(window, back, { tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]) }, W, now * 1000)
end
tombstone(expire_at)
redis.call('PEXPIREAT', window, expire_at)
return { 'ok' }
