--[[
  backoff: the provider answered 429 (or overloaded): pause admissions of this model in every
  process, and cut its effective limits (AIMD: multiplicative decrease here, linear recovery
  in the acquire scripts).

  KEYS[1]  state hash of the model (window hash or bucket hash, per the limiter's algorithm)
  ARGV[1]  pause, ms from now (0 = no pause)
  ARGV[2]  window length, ms
  ARGV[3]  factor to multiply the limit by (1 = no cut)
  ARGV[4]  smallest factor
  ARGV[5]  ms after a cut during which further 429s do not cut again (one burst of in-flight
           calls answered 429 together is one signal, not many)
  ARGV[6]  1 when the limits are learned (the factor then does not recover by time; it grows
           again under pressing demand from the end of the pause), else 0

  ARGV[7]  clock, epoch ms (-1 = the server's TIME; set only by the differential tests)

  Returns { paused until ms, limit factor }, strings.
]]
--- @include "common"

local state = KEYS[1]
local pause_ms = tonumber(ARGV[1])
local W = tonumber(ARGV[2])
local cut = tonumber(ARGV[3])
local floor_factor = tonumber(ARGV[4])
local settle_ms = tonumber(ARGV[5])
local learned = ARGV[6] == '1'

local now = clock_ms(ARGV[7])
local current = redis.call('HMGET', state, 'p', 'f', 'fa', 'fc', 'exp')
local pause = math.max(tonumber(current[1]) or 0, now + pause_ms)
local factor = limit_factor(current[2], current[3], now, W)
local last_cut = tonumber(current[4]) or 0
if cut < 1 and now - last_cut >= settle_ms then
  factor = math.max(floor_factor, factor * cut)
  last_cut = now
end

-- The state must outlive the pause and the factor's recovery; the acquire scripts trust 'exp'.
local recovered_at = now + math.ceil((1 - factor) / RECOVERY * W)
local expire_at = math.max(tonumber(current[5]) or 0, pause + W, recovered_at + W)
-- Learned limits do not recover by time ('fa' -1); their growth counts from the pause's end.
local fields = { 'p', fmt(pause), 'f', real(factor), 'fa', learned and '-1' or fmt(now), 'fc', fmt(last_cut), 'exp', fmt(expire_at) }
if learned then
  fields[#fields + 1] = 'fg'
  fields[#fields + 1] = fmt(pause)
end
redis.call('HSET', state, unpack(fields))
redis.call('PEXPIREAT', state, expire_at)

return { fmt(pause), real(factor) }
