--[[
  status: what the window ending now holds, and how many reservations wait in the queue.
  Reads only.

  KEYS[1]  window hash of the model
  KEYS[2]  queue of the model
  ARGV[1]  window length, ms
  ARGV[2]  number of buckets per window (B)
  ARGV[3]  clock, epoch ms (-1 = the server's TIME; set only by the differential tests)

  Returns { server now ms, combined tokens, input tokens, output tokens, requests, queue depth,
  paused until ms (0 = not paused), limit factor }, all strings.
]]
--- @include "common"
--- @include "windows"

local window, queue = KEYS[1], KEYS[2]
local W = tonumber(ARGV[1])
local B = tonumber(ARGV[2])

local now = clock_ms(ARGV[3])
local n = bucket_of(now, W, B)
local used = window_used(bucket_store(window), n, B)
local queued = redis.call('ZCARD', queue)
local control = redis.call('HMGET', window, 'p', 'f', 'fa')
local pause = tonumber(control[1]) or 0
if pause <= now then
  pause = 0
end
local factor = limit_factor(control[2], control[3], now, W)

return { fmt(now), fmt(used[1]), fmt(used[2]), fmt(used[3]), fmt(used[4]), fmt(queued), fmt(pause), real(factor) }
