--[[
  adjust: charge or refund the difference between what a reservation was charged and what the
  call really used, in the bucket the reservation was charged to.

  KEYS[1]  window hash of the model
  KEYS[2]  ops ring of the model
  ARGV[1]  op id of the reservation
  ARGV[2]  adjust key: names this change of this reservation, so a re-sent adjust counts once
  ARGV[3]  bucket of the reservation
  ARGV[4]  delta: combined tokens (signed)
  ARGV[5]  delta: input tokens (signed)
  ARGV[6]  delta: output tokens (signed)
  ARGV[7]  window length, ms
  ARGV[8]  number of buckets per window (B)
  ARGV[9]  ops ring horizon, ms
  ARGV[10] ops ring capacity
  ARGV[11] pacing bucket, ms (0 or absent = none; see acquire.lua): what moved moves it too
  ARGV[12..15] limits: combined tokens, input, output, requests (0 = off), for the pacing bucket

  Returns { status, applied combined, applied input, applied output }, all strings:
    'ok'        applied (a refund never takes a bucket below zero: applied says what moved)
    'dup'       this adjust key was applied before
    'released'  the reservation was released: nothing to adjust
    'expired'   the bucket has left the window: nothing to adjust
]]
--- @include "common"
--- @include "bucket"

local window, ring = KEYS[1], KEYS[2]
local op, key = ARGV[1], ARGV[2]
local j = tonumber(ARGV[3])
local delta = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) }
local W = tonumber(ARGV[7])
local B = tonumber(ARGV[8])
local horizon = tonumber(ARGV[9])
local capacity = tonumber(ARGV[10])

local now = now_ms()
local state = redis.call('HMGET', window, 'base', 'st', 'si', 'so', 'exp', fmt(chunk_of(j)))
local base = tonumber(state[1])
if not base or j < math.max(base, bucket_of(now, W, B) - B) then
  return { 'expired', '0', '0', '0' }
end
local seen = redis.call('ZSCORE', ring, op)
if seen and tonumber(seen) < 0 then
  return { 'released', '0', '0', '0' }
end
if redis.call('ZSCORE', ring, key) then
  return { 'dup', '0', '0', '0' }
end

local buckets = bucket_store(window)
buckets.seed(chunk_of(j), state[6])
local b = buckets.get(j) or { 0, 0, 0, 0 }
local before = { b[1], b[2], b[3] }
local after = {}
local applied = {}
local sums = { tonumber(state[2]) or 0, tonumber(state[3]) or 0, tonumber(state[4]) or 0 }
for d = 1, 3 do
  after[d] = math.max(0, before[d] + delta[d])
  applied[d] = after[d] - before[d]
  sums[d] = sums[d] + applied[d]
end
buckets.set(j, after[1], after[2], after[3], b[4])
write_window(window, buckets, { 'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]) })
if (tonumber(ARGV[11]) or 0) > 0 then
  pace_move(window, { applied[1], applied[2], applied[3], 0 },
    { tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]) }, W, now * 1000)
end
redis.call('ZADD', ring, now, key)
ring_trim(ring, capacity)
keep_alive(window, ring, tonumber(state[5]) or ttl_needed(now, W, horizon))

return { 'ok', fmt(applied[1]), fmt(applied[2]), fmt(applied[3]) }
