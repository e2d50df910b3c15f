--[[
  tb-status: how much of each bucket is spoken for (tokens it still has to refill, admitted
  reservations), and how many reservations wait in the queue. Reads only.

  KEYS[1]  bucket hash of the model
  KEYS[2]  queue of the model
  ARGV[1]  window length, ms
  ARGV[2..5]  limits: combined tokens, input, output, requests (0 = off)
  ARGV[6]  clock, epoch ms (-1 = the server's TIME; set only by the differential tests)

  Returns { server now ms, combined tokens, input, output, requests, queue depth, paused until
  ms (0 = not paused), limit factor }, all strings.
]]
--- @include "common"
--- @include "bucket"

local state, queue = KEYS[1], KEYS[2]
local W = tonumber(ARGV[1])
local limit = { tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]) }

local now = clock_ms(ARGV[6])
local us = now * 1000
local current = redis.call('HMGET', state, 't', 'i', 'o', 'r', 'p', 'f', 'fa')
local factor = limit_factor(current[6], current[7], now, W)
-- Time owed converts back to tokens at the rate in force, as acquire charged them.
limit = scale_limits(limit, factor)
local used = { '0', '0', '0', '0' }
for d = 1, 4 do
  if limit[d] > 0 and current[d] then
    local owed = math.max(0, tonumber(current[d]) - us)
    used[d] = fmt(math.ceil(owed * limit[d] / (W * 1000)))
  end
end
local queued = redis.call('ZCARD', queue)
local pause = tonumber(current[5]) or 0
if pause <= now then
  pause = 0
end
return { fmt(now), used[1], used[2], used[3], used[4], fmt(queued), fmt(pause), real(factor) }
